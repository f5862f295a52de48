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
use super::sgemm::{matmul_packed, PackedRhs};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

use super::{sigmoid, tanh, wide_cell, Rows, StepMask, Strided, RECURRENT_ROWS};

/// One row of the cell: gates (4H), prev [h | c] (2H) → out [h | c] (2H).
/// The gates are replaced by their activations (i, f, g, o) for the
/// backward pass.
#[inline(always)]
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
#[inline(always)]
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

/// The cell compiled for AVX-512 (16 lanes instead of AVX2's 8; 1.8× faster
/// at H = 64), used where the CPU has it. The same operations in the same
/// order: results are bit-identical to the AVX2 build's.
#[cfg(target_arch = "x86_64")]
mod wide {
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cell_row(g: &mut [f32], p: &[f32], out: &mut [f32], m: f32, h: usize) {
        super::cell_row(g, p, out, m, h)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cell_row_bwd(
        a: &[f32],
        p: &[f32],
        d_out: &[f32],
        dg: &mut [f32],
        dp: &mut [f32],
        m: f32,
        h: usize,
    ) {
        super::cell_row_bwd(a, p, d_out, dg, dp, m, h)
    }
}

/// [`cell_row`], on AVX-512 when `wide`.
#[inline(always)]
fn cell(wide: bool, g: &mut [f32], p: &[f32], out: &mut [f32], m: f32, h: usize) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is true only where the CPU has AVX-512F.
        return unsafe { wide::cell_row(g, p, out, m, h) };
    }
    let _ = wide;
    cell_row(g, p, out, m, h)
}

/// [`cell_row_bwd`], on AVX-512 when `wide`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_bwd(wide: bool, a: &[f32], p: &[f32], d_out: &[f32], dg: &mut [f32], dp: &mut [f32], m: f32, h: usize) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is true only where the CPU has AVX-512F.
        return unsafe { wide::cell_row_bwd(a, p, d_out, dg, dp, m, h) };
    }
    let _ = wide;
    cell_row_bwd(a, p, d_out, dg, dp, m, h)
}

struct LstmOp {
    mask: StepMask,
    /// The gate activations of every step (B, T, 4H), kept for the
    /// backward pass (the states are the op's output).
    gates: Mutex<Vec<f32>>,
}

// Everything stays batch-major, (B, T, ·), as the caller lays it out: step
// t's rows are T·4H (gates) or T·2H (states) floats apart, which the matrix
// products take as strides, so nothing is transposed.
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
        let mut gates = xproj.to_vec(); // (B, T, 4H); h Wₕₕᵀ is added step by step
        let mut states = super::output(b * t * 2 * h); // (B, T, 2H), written step by step
                                                       // SAFETY: w is (4H, H), alive for the whole loop; Wₕₕᵀ is packed once for all steps.
        let w_t = unsafe { PackedRhs::new(b, h, 4 * h, w.as_ptr(), (h as isize, 1)) };
        let wide = wide_cell();
        let (gs, ss) = (Rows(gates.as_mut_ptr()), Rows(states.as_mut_ptr()));
        for step in 0..t {
            // SAFETY: shapes checked above; row r of step s is at (r·T + s)·4H in the
            // gates and (r·T + s)·2H in the states; the previous step's rows are complete.
            unsafe {
                let (prev, prev_rs) = if step == 0 {
                    (init.as_ptr(), 2 * h)
                } else {
                    (ss.0.add((step - 1) * 2 * h).cast_const(), t * 2 * h)
                };
                let dst = gs.0.add(step * 4 * h);
                matmul_packed(b, dst, (1, (t * 4 * h) as isize), true, prev, (1, prev_rs as isize), &w_t);
            }
            (0..b).into_par_iter().with_min_len(RECURRENT_ROWS).for_each(|r| {
                // SAFETY: each task owns row r of this step; the previous step is only read.
                let (g, o) = unsafe { (gs.get((r * t + step) * 4 * h, 4 * h), ss.get((r * t + step) * 2 * h, 2 * h)) };
                let p: &[f32] = match step {
                    0 => &init[r * 2 * h..(r + 1) * 2 * h],
                    _ => unsafe { ss.get((r * t + step - 1) * 2 * h, 2 * h) },
                };
                cell(wide, g, p, o, self.mask.at(step, r), h);
            });
        }
        *self.gates.lock().expect("lstm gates") = gates;
        Ok((CpuStorage::F32(states), Shape::from((b, t, 2 * h))))
    }

    fn bwd(
        &self,
        xproj: &Tensor,
        w: &Tensor,
        init: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, g4) = xproj.dims3()?;
        let h = g4 / 4;
        let gates = self.gates.lock().expect("lstm gates");
        let w = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let init = init.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let res = res.contiguous()?;
        let grad = grad.contiguous()?;
        let mut dgates = super::output(b * t * 4 * h); // = d xproj (B, T, 4H), written step by step
        let mut dw = vec![0f32; 4 * h * h];
        let mut carry = vec![0f32; b * 2 * h]; // d state after this step, from later steps
        let mut dprev = vec![0f32; b * 2 * h];
        // SAFETY: w is (4H, H), alive for the whole loop; packed once for all steps.
        let w_packed = unsafe { PackedRhs::new(b, 4 * h, h, w.as_ptr(), (1, h as isize)) };
        let wide = wide_cell();
        super::with_f32(&res, "lstm", |states| {
            super::with_f32(&grad, "lstm", |grad| {
                let dgs = Rows(dgates.as_mut_ptr());
                for step in (0..t).rev() {
                    let carried = &carry;
                    let rows = dprev.par_chunks_mut(2 * h).enumerate().with_min_len(RECURRENT_ROWS);
                    rows.for_each_init(
                        || vec![0f32; 2 * h],
                        |d, (r, dp)| {
                            let at = (r * t + step) * 2 * h;
                            // d of this step's output: from the loss, and from later steps.
                            for ((d, a), c) in d.iter_mut().zip(&grad[at..at + 2 * h]).zip(&carried[r * 2 * h..]) {
                                *d = a + c;
                            }
                            let p = match step {
                                0 => &init[r * 2 * h..(r + 1) * 2 * h],
                                _ => &states[at - 2 * h..at],
                            };
                            let g = &gates[(r * t + step) * 4 * h..(r * t + step + 1) * 4 * h];
                            // SAFETY: each task owns row r of this step's d gates.
                            let dg = unsafe { dgs.get((r * t + step) * 4 * h, 4 * h) };
                            cell_bwd(wide, g, p, d, dg, dp, self.mask.at(step, r), h);
                        },
                    );
                    // SAFETY: all buffers are sized from the checked shapes.
                    unsafe {
                        // d hₜ₋₁ += d gates · Wₕₕ   (B, 4H)·(4H, H), gate rows T·4H apart
                        let dg = dgs.0.add(step * 4 * h).cast_const();
                        matmul_packed(
                            b,
                            dprev.as_mut_ptr(),
                            (1, 2 * h as isize),
                            true,
                            dg,
                            (1, (t * 4 * h) as isize),
                            &w_packed,
                        );
                    }
                    std::mem::swap(&mut carry, &mut dprev);
                }
                // d Wₕₕ = Σ d gatesᵀ · h_prev over every row and step.
                // SAFETY: all buffers are sized from the checked shapes.
                unsafe {
                    let (hs, gs) = (Strided(&init, 2 * h), Strided(states, 2 * h));
                    super::recurrent_weight_grad(b, t, h, 4 * h, hs, gs, &dgates, &mut dw, h);
                }
            })
        })??;
        let dev = xproj.device();
        Ok((
            Some(Tensor::from_vec(dgates, (b, t, 4 * h), dev)?),
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
    let mask = StepMask::new(mask, b, t, "lstm")?;
    xproj.contiguous()?.apply_op3(
        &w_hh.contiguous()?,
        &init.contiguous()?,
        LstmOp { mask, gates: Mutex::new(Vec::new()) },
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
        // Large enough for the packed AVX-512 products, with strided rows.
        let (t, b, h) = (5, 20, 32);
        let inputs = [randn(7, &[b, t, 4 * h]), (randn(8, &[4 * h, h]) * 0.2).unwrap(), randn(9, &[b, 2 * h])];
        let m: Vec<f32> = (0..b * t).map(|i| if i % 7 == 2 { 0.0 } else { 1.0 }).collect();
        let mt = Tensor::from_vec(m.clone(), (b, t), &candle_core::Device::Cpu).unwrap();
        let f = |x: &[Tensor]| lstm(&x[0], &x[1], &x[2], Some(m.clone()));
        let c = |x: &[Tensor]| lstm_composite(&x[0], &x[1], &x[2], Some(&mt));
        parity("lstm (wide)", f, c, &inputs, &[0, 1, 2], 2e-5);
    }

    /// The AVX-512 cell gives exactly the AVX2 cell's results.
    #[test]
    fn the_wide_cell_is_bit_identical() {
        let h = 40;
        let v = |seed, n| randn(seed, &[n]).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (g0, p, d) = (v(4, 4 * h), v(5, 2 * h), v(6, 2 * h));
        let run = |wide: bool, m: f32| {
            let (mut g, mut out, mut dg, mut dp) =
                (g0.clone(), vec![0f32; 2 * h], vec![0f32; 4 * h], vec![0f32; 2 * h]);
            cell(wide, &mut g, &p, &mut out, m, h);
            cell_bwd(wide, &g, &p, &d, &mut dg, &mut dp, m, h);
            (g, out, dg, dp)
        };
        for m in [1.0, 0.0] {
            assert_eq!(run(false, m), run(wide_cell(), m));
        }
    }
}
