//! The whole LSTM recurrence over a sequence as one op (PyTorch's gate
//! order i, f, g, o). The input projection `x Wᵢₕᵀ + b` of every step is
//! computed before, as one matrix product; this op runs
//! `gates = xprojₜ + hₜ₋₁ Wₕₕᵀ` and the cell for each step, and the whole
//! backpropagation through time in its backward pass. It stores the gates
//! of every step (T·B·4H floats) for the backward pass.
//!
//! A per-row mask carries the old state where it is 0, so the final state
//! of a right-padded sequence is the one at its last real token.

use super::f32_slice;
use super::sgemm::{matmul, matmul_packed, PackedRhs};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + super::exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (super::exp(2.0 * x) + 1.0)
}

/// One row of the cell: gates (4H), prev [h | c] (2H) → out [h | c] (2H).
/// The gates are replaced by their activations (i, f, g, o) for the
/// backward pass.
#[inline]
fn cell_row(g: &mut [f32], p: &[f32], out: &mut [f32], m: f32, h: usize) {
    // Activations first, each a simple loop the compiler vectorises.
    g[..2 * h].iter_mut().for_each(|v| *v = sigmoid(*v));
    g[2 * h..3 * h].iter_mut().for_each(|v| *v = tanh(*v));
    g[3 * h..4 * h].iter_mut().for_each(|v| *v = sigmoid(*v));
    let (i, f, gg, o) = (&g[..h], &g[h..2 * h], &g[2 * h..3 * h], &g[3 * h..4 * h]);
    let cp = &p[h..2 * h];
    let (oh, oc) = out.split_at_mut(h);
    let gates = i.iter().zip(f).zip(gg).zip(o).zip(cp);
    for (((((&i, &f), &g), &o), &cp), (oh, oc)) in gates.zip(oh.iter_mut().zip(oc.iter_mut())) {
        let c = f * cp + i * g;
        *oc = c;
        *oh = o * tanh(c);
    }
    if m != 1.0 {
        // Blend with the carried state: m = 0 keeps prev.
        for (o, &pv) in out.iter_mut().zip(p) {
            *o = pv + m * (*o - pv);
        }
    }
}

/// Backward of one row: activations `a` (i, f, g, o; 4H), prev [h | c],
/// d[h | c] of the output (2H) → d gates (4H, pre-activation) and the part
/// of d prev (2H) that does not go through Wₕₕ.
#[inline]
fn cell_row_bwd(a: &[f32], p: &[f32], d_out: &[f32], dg: &mut [f32], dp: &mut [f32], m: f32, h: usize) {
    // Every slice exactly h long, so the loop has no bounds checks and vectorises.
    let (ai, af, ag, ao) = (&a[..h], &a[h..2 * h], &a[2 * h..3 * h], &a[3 * h..4 * h]);
    let cp = &p[h..2 * h];
    let (doh, doc) = (&d_out[..h], &d_out[h..2 * h]);
    let (dgi, rest) = dg.split_at_mut(h);
    let (dgf, rest) = rest.split_at_mut(h);
    let (dgg, dgo) = rest.split_at_mut(h);
    let (dgf, dgg, dgo) = (&mut dgf[..h], &mut dgg[..h], &mut dgo[..h]);
    let (dph, dpc) = dp.split_at_mut(h);
    let dpc = &mut dpc[..h];
    for j in 0..h {
        let (i, f, gg, og) = (ai[j], af[j], ag[j], ao[j]);
        let c = f * cp[j] + i * gg;
        let tc = tanh(c);
        let (gh, gc) = (m * doh[j], m * doc[j]);
        let dc = gc + gh * og * (1.0 - tc * tc);
        dgi[j] = dc * gg * i * (1.0 - i);
        dgf[j] = dc * cp[j] * f * (1.0 - f);
        dgg[j] = dc * i * (1.0 - gg * gg);
        dgo[j] = gh * tc * og * (1.0 - og);
        dph[j] = (1.0 - m) * doh[j];
        dpc[j] = dc * f + (1.0 - m) * doc[j];
    }
}

/// (D0, D1, X) → (D1, D0, X): batch-major ↔ step-major.
fn swap01(src: &[f32], d0: usize, d1: usize, x: usize) -> Vec<f32> {
    let mut out = super::output(src.len()); // every (i, j) row is copied
    for i in 0..d0 {
        for j in 0..d1 {
            out[(j * d0 + i) * x..(j * d0 + i + 1) * x].copy_from_slice(&src[(i * d1 + j) * x..(i * d1 + j + 1) * x]);
        }
    }
    out
}

/// Batch rows handed to one parallel task.
const ROWS: usize = 8;

struct LstmOp {
    /// Per step and row (T·B): 1 steps, 0 carries the old state.
    mask: Option<Vec<f32>>,
    /// The gate activations and states of every step (step-major), kept for
    /// the backward pass.
    gates: Mutex<Vec<f32>>,
    states: Mutex<Vec<f32>>,
}

impl LstmOp {
    fn mask(&self, t: usize, b: usize) -> &[f32] {
        self.mask.as_ref().map_or(&[][..], |m| &m[t * b..(t + 1) * b])
    }
}

impl CustomOp3 for LstmOp {
    fn name(&self) -> &'static str {
        "shiftlm-lstm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (xproj, w, init) = (f32_slice(s1, l1, "lstm")?, f32_slice(s2, l2, "lstm")?, f32_slice(s3, l3, "lstm")?);
        let (b, t, g4) = l1.shape().dims3()?;
        let h = g4 / 4;
        if g4 != 4 * h || l2.shape().dims2()? != (g4, h) || l3.shape().dims2()? != (b, 2 * h) {
            bail!("lstm: xproj {:?}, w_hh {:?} and state {:?} do not fit", l1.dims(), l2.dims(), l3.dims());
        }
        if self.mask.as_ref().is_some_and(|m| m.len() != t * b) {
            bail!("lstm: mask does not cover {t} steps × {b} rows");
        }
        let mut gates = swap01(xproj, b, t, 4 * h); // (T, B, 4H); h Wₕₕᵀ is added step by step
        let mut states = super::output(t * b * 2 * h); // (T, B, 2H), written step by step
                                                       // SAFETY: w is (4H, H), alive for the whole loop; Wₕₕᵀ is packed once for all steps.
        let w_t = unsafe { PackedRhs::new(h, 4 * h, w.as_ptr(), (h as isize, 1)) };
        for step in 0..t {
            let (done, rest) = states.split_at_mut(step * b * 2 * h);
            let prev = if step == 0 { init } else { &done[(step - 1) * b * 2 * h..] };
            let gs = &mut gates[step * b * 4 * h..(step + 1) * b * 4 * h];
            // SAFETY: shapes checked above; prev rows are 2H apart.
            unsafe {
                matmul_packed(b, gs.as_mut_ptr(), (1, 4 * h as isize), true, prev.as_ptr(), (1, 2 * h as isize), &w_t);
            }
            let mask = self.mask(step, b);
            rest[..b * 2 * h]
                .par_chunks_mut(ROWS * 2 * h)
                .zip(gs.par_chunks_mut(ROWS * 4 * h).zip(prev[..b * 2 * h].par_chunks(ROWS * 2 * h)))
                .enumerate()
                .for_each(|(blk, (ob, (gb, pb)))| {
                    for (k, ((o, g), p)) in ob
                        .chunks_exact_mut(2 * h)
                        .zip(gb.chunks_exact_mut(4 * h))
                        .zip(pb.chunks_exact(2 * h))
                        .enumerate()
                    {
                        cell_row(g, p, o, mask.get(blk * ROWS + k).copied().unwrap_or(1.0), h);
                    }
                });
        }
        *self.gates.lock().expect("lstm gates") = gates;
        let out = swap01(&states, t, b, 2 * h); // (B, T, 2H)
        *self.states.lock().expect("lstm states") = states;
        Ok((CpuStorage::F32(out), Shape::from((b, t, 2 * h))))
    }

    fn bwd(
        &self,
        xproj: &Tensor,
        w: &Tensor,
        init: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, g4) = xproj.dims3()?;
        let h = g4 / 4;
        let gates = self.gates.lock().expect("lstm gates");
        let states = self.states.lock().expect("lstm states");
        let w = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let init = init.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let grad = super::with_f32(grad, "lstm", |g| swap01(g, b, t, 2 * h))?; // (T, B, 2H)
        let mut dgates = super::output(t * b * 4 * h); // = d xproj, written step by step
        let mut dw = vec![0f32; 4 * h * h];
        let mut carry = vec![0f32; b * 2 * h]; // d state after this step, from later steps
        let mut dprev = vec![0f32; b * 2 * h];
        // SAFETY: w is (4H, H), alive for the whole loop; packed once for all steps.
        let w_packed = unsafe { PackedRhs::new(4 * h, h, w.as_ptr(), (1, h as isize)) };
        for step in (0..t).rev() {
            let prev = if step == 0 { &init[..] } else { &states[(step - 1) * b * 2 * h..step * b * 2 * h] };
            let gs = &gates[step * b * 4 * h..(step + 1) * b * 4 * h];
            let d_out: Vec<f32> =
                grad[step * b * 2 * h..(step + 1) * b * 2 * h].iter().zip(&carry).map(|(a, c)| a + c).collect();
            let dg = &mut dgates[step * b * 4 * h..(step + 1) * b * 4 * h];
            let mask = self.mask(step, b);
            dg.par_chunks_mut(ROWS * 4 * h)
                .zip(dprev.par_chunks_mut(ROWS * 2 * h))
                .zip(gs.par_chunks(ROWS * 4 * h).zip(prev.par_chunks(ROWS * 2 * h)))
                .zip(d_out.par_chunks(ROWS * 2 * h))
                .enumerate()
                .for_each(|(blk, (((dgb, dpb), (gb, pb)), db))| {
                    let rows = dgb
                        .chunks_exact_mut(4 * h)
                        .zip(dpb.chunks_exact_mut(2 * h))
                        .zip(gb.chunks_exact(4 * h))
                        .zip(pb.chunks_exact(2 * h))
                        .zip(db.chunks_exact(2 * h));
                    for (k, ((((dg, dp), g), p), d)) in rows.enumerate() {
                        cell_row_bwd(g, p, d, dg, dp, mask.get(blk * ROWS + k).copied().unwrap_or(1.0), h);
                    }
                });
            // SAFETY: all buffers are sized from the checked shapes.
            unsafe {
                // d hₜ₋₁ += d gates · Wₕₕ   (B, 4H)·(4H, H)
                matmul_packed(
                    b,
                    dprev.as_mut_ptr(),
                    (1, 2 * h as isize),
                    true,
                    dg.as_ptr(),
                    (1, 4 * h as isize),
                    &w_packed,
                );
            }
            std::mem::swap(&mut carry, &mut dprev);
        }
        // d Wₕₕ = Σₜ d gatesₜᵀ · hₜ₋₁: two products over all steps at once
        // (4H, T·B)·(T·B, H), rather than T small ones.
        // SAFETY: all buffers are sized from the checked shapes.
        unsafe {
            let (g4, h2) = (4 * h as isize, 2 * h as isize);
            matmul(
                4 * h,
                h,
                b,
                dw.as_mut_ptr(),
                (1, h as isize),
                false,
                dgates.as_ptr(),
                (g4, 1),
                init.as_ptr(),
                (1, h2),
            );
            if t > 1 {
                let rest = dgates[b * 4 * h..].as_ptr();
                matmul(
                    4 * h,
                    h,
                    (t - 1) * b,
                    dw.as_mut_ptr(),
                    (1, h as isize),
                    true,
                    rest,
                    (g4, 1),
                    states.as_ptr(),
                    (1, h2),
                );
            }
        }
        let dev = xproj.device();
        Ok((
            Some(Tensor::from_vec(swap01(&dgates, t, b, 4 * h), (b, t, 4 * h), dev)?),
            Some(Tensor::from_vec(dw, (4 * h, h), dev)?),
            Some(Tensor::from_vec(carry, (b, 2 * h), dev)?),
        ))
    }
}

/// Runs the LSTM recurrence: `xproj` (B, T, 4H) the input projections
/// with both biases, `w_hh` (4H, H), `init` (B, 2H) = [h₀ | c₀], `mask`
/// (B, T) values (1 steps, 0 carries the state) or `None`. Returns every
/// step's [h | c]: (B, T, 2H).
pub fn lstm(xproj: &Tensor, w_hh: &Tensor, init: &Tensor, mask: Option<Vec<f32>>) -> Result<Tensor> {
    let (b, t, _) = xproj.dims3()?;
    if mask.as_ref().is_some_and(|m| m.len() != b * t) {
        bail!("lstm: mask does not cover {b} rows × {t} steps");
    }
    // Step-major inside: mask[step · B + row].
    let mask = mask.map(|m| (0..t).flat_map(|s| (0..b).map(move |r| (s, r))).map(|(s, r)| m[r * t + s]).collect());
    xproj.contiguous()?.apply_op3(
        &w_hh.contiguous()?,
        &init.contiguous()?,
        LstmOp { mask, gates: Mutex::new(Vec::new()), states: Mutex::new(Vec::new()) },
    )
}

/// The composite version, one step at a time (the reference).
pub fn lstm_composite(xproj: &Tensor, w_hh: &Tensor, init: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let hd = init.dim(1)? / 2;
    let mut prev = init.clone();
    let mut out = Vec::new();
    for step in 0..xproj.dim(1)? {
        let gates = (xproj.narrow(1, step, 1)?.squeeze(1)? + prev.narrow(1, 0, hd)?.matmul(&w_hh.t()?)?)?;
        let sig = candle_nn::ops::sigmoid(&gates)?;
        let (i, f, o) = (sig.narrow(1, 0, hd)?, sig.narrow(1, hd, hd)?, sig.narrow(1, 3 * hd, hd)?);
        let gg = gates.narrow(1, 2 * hd, hd)?.tanh()?;
        let c = ((f * prev.narrow(1, hd, hd)?)? + (i * gg)?)?;
        let h = (o * c.tanh()?)?;
        let next = Tensor::cat(&[&h, &c], 1)?;
        prev = match mask {
            Some(m) => (&prev + (next - &prev)?.broadcast_mul(&m.narrow(1, step, 1)?)?)?,
            None => next,
        };
        out.push(prev.clone());
    }
    Tensor::stack(&out, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn lstm_gradients_and_parity() {
        let (t, b, h) = (4, 11, 3);
        let inputs = [randn(1, &[b, t, 4 * h]), (randn(2, &[4 * h, h]) * 0.5).unwrap(), randn(3, &[b, 2 * h])];
        let m: Vec<f32> = (0..b * t).map(|i| if i % 5 == 3 { 0.0 } else { 1.0 }).collect();
        let mt = Tensor::from_vec(m.clone(), (b, t), &candle_core::Device::Cpu).unwrap();
        for mask in [None, Some(m.clone())] {
            let f = |x: &[Tensor]| lstm(&x[0], &x[1], &x[2], mask.clone());
            check("lstm", f, &inputs, &[0, 1, 2]);
            let c = |x: &[Tensor]| lstm_composite(&x[0], &x[1], &x[2], mask.as_ref().map(|_| &mt));
            parity("lstm", f, c, &inputs, &[0, 1, 2], 5e-6);
        }
    }
}
