//! The whole GRU recurrence over a sequence as one op (PyTorch's gate order
//! r, z, n):
//!
//! ```text
//! r = σ(x_r + h W_rᵀ)        (b_ir + b_hr folded into x_r, likewise z)
//! z = σ(x_z + h W_zᵀ)
//! n = tanh(x_n + r ∘ (h W_nᵀ + b_hn))
//! h' = n + z ∘ (h − n)
//! ```
//!
//! `b_hn` sits inside the reset gate, so it cannot be folded into the input
//! projection; it travels as the last column of an augmented weight
//! `[Wₕₕ | (0, 0, b_hn)]` (3H, H + 1), which keeps the op at three inputs
//! and gives `b_hn` its gradient through that column. Layout and masking as
//! in [`super::lstm`]: batch-major throughout, one product per step with
//! Wₕₕ packed once, and the cell compiled for AVX-512 where the CPU has it.

use super::sgemm::{matmul_packed, PackedRhs};
use super::{f32_slice, sigmoid, tanh, wide_cell, Rows, StepMask, Strided, RECURRENT_ROWS};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// One row of the cell: input pre-activations `x` (3H), `hp = h Wₕₕᵀ` (3H,
/// no bias), `bn` = b_hn (H), the previous `p` (H) → `out` (H). Saves
/// r, z, n and `hp_n + b_hn` (4H) for the backward pass.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_row(x: &[f32], hp: &[f32], bn: &[f32], p: &[f32], out: &mut [f32], save: &mut [f32], m: f32, h: usize) {
    let (x, hp, bn, p, out) = (&x[..3 * h], &hp[..3 * h], &bn[..h], &p[..h], &mut out[..h]);
    let (sr, rest) = save.split_at_mut(h);
    let (sz, rest) = rest.split_at_mut(h);
    let (sn, shn) = rest.split_at_mut(h);
    let (sz, sn, shn) = (&mut sz[..h], &mut sn[..h], &mut shn[..h]);
    for j in 0..h {
        let r = sigmoid(x[j] + hp[j]);
        let z = sigmoid(x[h + j] + hp[h + j]);
        let hn = hp[2 * h + j] + bn[j];
        let n = tanh(x[2 * h + j] + r * hn);
        (sr[j], sz[j], sn[j], shn[j]) = (r, z, n, hn);
        let next = n + z * (p[j] - n);
        // m = 0 keeps the previous state (padding); m = 1 is exactly `next`.
        out[j] = if m == 1.0 { next } else { p[j] + m * (next - p[j]) };
    }
}

/// Backward of one row: saved r, z, n, hn (4H), previous `p` (H), `d` the
/// gradient of the output (H) → `dx` (3H, the input pre-activations),
/// `dhp` (3H, of `h Wₕₕᵀ + (0, 0, b_hn)`) and the part of d prev that does
/// not go through Wₕₕ (H).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_row_bwd(s: &[f32], p: &[f32], d: &[f32], dx: &mut [f32], dhp: &mut [f32], dp: &mut [f32], m: f32, h: usize) {
    let (r, z, n, hn) = (&s[..h], &s[h..2 * h], &s[2 * h..3 * h], &s[3 * h..4 * h]);
    let (p, d, dx, dhp, dp) = (&p[..h], &d[..h], &mut dx[..3 * h], &mut dhp[..3 * h], &mut dp[..h]);
    for j in 0..h {
        let de = m * d[j]; // through the update; 1 − m carries d straight to p
        let dn = de * (1.0 - z[j]) * (1.0 - n[j] * n[j]);
        let dz = de * (p[j] - n[j]) * z[j] * (1.0 - z[j]);
        let dr = dn * hn[j] * r[j] * (1.0 - r[j]);
        (dx[j], dx[h + j], dx[2 * h + j]) = (dr, dz, dn);
        (dhp[j], dhp[h + j], dhp[2 * h + j]) = (dr, dz, dn * r[j]);
        dp[j] = (1.0 - m) * d[j] + de * z[j];
    }
}

/// The cell compiled for AVX-512; bit-identical to the AVX2 build.
#[cfg(target_arch = "x86_64")]
mod wide {
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn cell_row(
        x: &[f32],
        hp: &[f32],
        bn: &[f32],
        p: &[f32],
        out: &mut [f32],
        save: &mut [f32],
        m: f32,
        h: usize,
    ) {
        super::cell_row(x, hp, bn, p, out, save, m, h)
    }

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn cell_row_bwd(
        s: &[f32],
        p: &[f32],
        d: &[f32],
        dx: &mut [f32],
        dhp: &mut [f32],
        dp: &mut [f32],
        m: f32,
        h: usize,
    ) {
        super::cell_row_bwd(s, p, d, dx, dhp, dp, m, h)
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell(wide: bool, x: &[f32], hp: &[f32], bn: &[f32], p: &[f32], out: &mut [f32], save: &mut [f32], m: f32, h: usize) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is true only where the CPU has AVX-512F.
        return unsafe { wide::cell_row(x, hp, bn, p, out, save, m, h) };
    }
    let _ = wide;
    cell_row(x, hp, bn, p, out, save, m, h)
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_bwd(
    wide: bool,
    s: &[f32],
    p: &[f32],
    d: &[f32],
    dx: &mut [f32],
    dhp: &mut [f32],
    dp: &mut [f32],
    m: f32,
    h: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is true only where the CPU has AVX-512F.
        return unsafe { wide::cell_row_bwd(s, p, d, dx, dhp, dp, m, h) };
    }
    let _ = wide;
    cell_row_bwd(s, p, d, dx, dhp, dp, m, h)
}

struct GruOp {
    mask: StepMask,
    /// r, z, n and hn of every step (B, T, 4H), for the backward pass.
    saved: Mutex<Vec<f32>>,
}

impl CustomOp3 for GruOp {
    fn name(&self) -> &'static str {
        "shiftlm-gru"
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
        let (xproj, w, init) = (f32_slice(s1, l1, "gru")?, f32_slice(s2, l2, "gru")?, f32_slice(s3, l3, "gru")?);
        let (b, t, g3) = l1.shape().dims3()?;
        let h = g3 / 3;
        if g3 != 3 * h || l2.shape().dims2()? != (g3, h + 1) || l3.shape().dims2()? != (b, h) {
            bail!("gru: xproj {:?}, augmented w_hh {:?} and state {:?} do not fit", l1.dims(), l2.dims(), l3.dims());
        }
        let bn: Vec<f32> = (2 * h..3 * h).map(|g| w[g * (h + 1) + h]).collect();
        let mut saved = super::output(b * t * 4 * h); // written step by step
        let mut states = super::output(b * t * h); // (B, T, H), written step by step
        let mut hp = vec![0f32; b * 3 * h];
        // SAFETY: w is (3H, H + 1), alive for the whole loop; Wₕₕᵀ (its first H
        // columns, transposed) is packed once for all steps.
        let w_t = unsafe { PackedRhs::new(b, h, 3 * h, w.as_ptr(), ((h + 1) as isize, 1)) };
        let wide = wide_cell();
        let (sv, ss) = (Rows(saved.as_mut_ptr()), Rows(states.as_mut_ptr()));
        for step in 0..t {
            // SAFETY: shapes checked above; row r of step s is at (r·T + s)·H in the
            // states, and the previous step's rows are complete.
            unsafe {
                let (prev, prev_rs) =
                    if step == 0 { (init.as_ptr(), h) } else { (ss.0.add((step - 1) * h).cast_const(), t * h) };
                matmul_packed(b, hp.as_mut_ptr(), (1, 3 * h as isize), false, prev, (1, prev_rs as isize), &w_t);
            }
            hp.par_chunks(3 * h).enumerate().with_min_len(RECURRENT_ROWS).for_each(|(r, hpr)| {
                let at = r * t + step;
                // SAFETY: each task owns row r of this step; the previous step is only read.
                let (o, s) = unsafe { (ss.get(at * h, h), sv.get(at * 4 * h, 4 * h)) };
                let p: &[f32] = match step {
                    0 => &init[r * h..(r + 1) * h],
                    _ => unsafe { ss.get((at - 1) * h, h) },
                };
                cell(wide, &xproj[at * 3 * h..], hpr, &bn, p, o, s, self.mask.at(step, r), h);
            });
        }
        *self.saved.lock().expect("gru saved") = saved;
        Ok((CpuStorage::F32(states), Shape::from((b, t, h))))
    }

    fn bwd(
        &self,
        xproj: &Tensor,
        w: &Tensor,
        init: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, g3) = xproj.dims3()?;
        let h = g3 / 3;
        let saved = self.saved.lock().expect("gru saved");
        let w = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let init = init.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let (res, grad) = (res.contiguous()?, grad.contiguous()?);
        let mut dx = super::output(b * t * 3 * h); // d xproj (B, T, 3H), written step by step
        let mut dhp = super::output(b * t * 3 * h); // d (h Wₕₕᵀ + b), written step by step
        let mut dw = vec![0f32; 3 * h * (h + 1)];
        let mut carry = vec![0f32; b * h];
        let mut dprev = vec![0f32; b * h];
        // SAFETY: w is (3H, H + 1), alive for the whole loop; packed once for all steps.
        let w_packed = unsafe { PackedRhs::new(b, 3 * h, h, w.as_ptr(), (1, (h + 1) as isize)) };
        let wide = wide_cell();
        super::with_f32(&res, "gru", |states| {
            super::with_f32(&grad, "gru", |grad| {
                let (dxs, dhs) = (Rows(dx.as_mut_ptr()), Rows(dhp.as_mut_ptr()));
                for step in (0..t).rev() {
                    let carried = &carry;
                    let rows = dprev.par_chunks_mut(h).enumerate().with_min_len(RECURRENT_ROWS);
                    rows.for_each_init(
                        || vec![0f32; h],
                        |d, (r, dp)| {
                            let at = r * t + step;
                            for ((d, a), c) in d.iter_mut().zip(&grad[at * h..(at + 1) * h]).zip(&carried[r * h..]) {
                                *d = a + c;
                            }
                            let p = match step {
                                0 => &init[r * h..(r + 1) * h],
                                _ => &states[(at - 1) * h..at * h],
                            };
                            // SAFETY: each task owns row r of this step's gradients.
                            let (dxr, dhr) = unsafe { (dxs.get(at * 3 * h, 3 * h), dhs.get(at * 3 * h, 3 * h)) };
                            let s = &saved[at * 4 * h..(at + 1) * 4 * h];
                            cell_bwd(wide, s, p, d, dxr, dhr, dp, self.mask.at(step, r), h);
                        },
                    );
                    // SAFETY: all buffers are sized from the checked shapes.
                    unsafe {
                        // d hₜ₋₁ += d hp · Wₕₕ   (B, 3H)·(3H, H), rows T·3H apart
                        let dh = dhs.0.add(step * 3 * h).cast_const();
                        let rs = (t * 3 * h) as isize;
                        matmul_packed(b, dprev.as_mut_ptr(), (1, h as isize), true, dh, (1, rs), &w_packed);
                    }
                    std::mem::swap(&mut carry, &mut dprev);
                }
                // d Wₕₕ = Σ d hpᵀ · h_prev, into the first H columns of the augmented
                // weight's gradient.
                // SAFETY: all buffers are sized from the checked shapes.
                unsafe {
                    let (hs, gs) = (Strided(&init, h), Strided(states, h));
                    super::recurrent_weight_grad(b, t, h, 3 * h, hs, gs, &dhp, &mut dw, h + 1);
                }
                // The bias column: b_hn's gradient is Σ d hp_n over every row and
                // step; the r and z entries are not read, so theirs is 0.
                for (g, v) in super::column_sums(&dhp, 3 * h).into_iter().enumerate() {
                    dw[g * (h + 1) + h] = if g >= 2 * h { v } else { 0.0 };
                }
            })
        })??;
        let dev = xproj.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, t, 3 * h), dev)?),
            Some(Tensor::from_vec(dw, (3 * h, h + 1), dev)?),
            Some(Tensor::from_vec(carry, (b, h), dev)?),
        ))
    }
}

/// `[Wₕₕ | (0, 0, b_hn)]`: the augmented weight [`gru`] takes, (3H, H + 1).
pub fn augment(w_hh: &Tensor, b_hn: &Tensor) -> Result<Tensor> {
    let h = w_hh.dim(1)?;
    let col = Tensor::cat(&[&Tensor::zeros(2 * h, w_hh.dtype(), w_hh.device())?, b_hn], 0)?.unsqueeze(1)?;
    Tensor::cat(&[w_hh, &col], 1)
}

/// Runs the GRU recurrence: `xproj` (B, T, 3H) the input projections with
/// b_ih and the r, z parts of b_hh folded in, `w_aug` (3H, H + 1) from
/// [`augment`], `init` (B, H), `mask` (B, T) values (1 steps, 0 carries the
/// state) or `None`. Returns every step's h: (B, T, H).
pub fn gru(xproj: &Tensor, w_aug: &Tensor, init: &Tensor, mask: Option<Vec<f32>>) -> Result<Tensor> {
    let (b, t, _) = xproj.dims3()?;
    let mask = StepMask::new(mask, b, t, "gru")?;
    xproj.contiguous()?.apply_op3(
        &w_aug.contiguous()?,
        &init.contiguous()?,
        GruOp { mask, saved: Mutex::new(Vec::new()) },
    )
}

/// The composite version, one step at a time (the reference).
pub fn gru_composite(xproj: &Tensor, w_aug: &Tensor, init: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let h = init.dim(1)?;
    let (w, bn) = (w_aug.narrow(1, 0, h)?, w_aug.narrow(1, h, 1)?.squeeze(1)?.narrow(0, 2 * h, h)?);
    let mut prev = init.clone();
    let mut out = Vec::new();
    for step in 0..xproj.dim(1)? {
        let x = xproj.narrow(1, step, 1)?.squeeze(1)?;
        let hp = prev.matmul(&w.t()?)?;
        let rz = candle_nn::ops::sigmoid(&(x.narrow(1, 0, 2 * h)? + hp.narrow(1, 0, 2 * h)?)?)?;
        let (r, z) = (rz.narrow(1, 0, h)?, rz.narrow(1, h, h)?);
        let hn = hp.narrow(1, 2 * h, h)?.broadcast_add(&bn)?;
        let n = (x.narrow(1, 2 * h, h)? + (r * hn)?)?.tanh()?;
        let next = (&n + (z * (&prev - &n)?)?)?;
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
    fn gru_gradients_and_parity() {
        for (t, b, h, tol) in [(4, 11, 3, 5e-6), (5, 20, 32, 2e-5)] {
            let w_aug = augment(&(randn(2, &[3 * h, h]) * 0.4).unwrap(), &randn(4, &[h])).unwrap();
            let inputs = [randn(1, &[b, t, 3 * h]), w_aug, randn(3, &[b, h])];
            let m: Vec<f32> = (0..b * t).map(|i| if i % 5 == 3 { 0.0 } else { 1.0 }).collect();
            let mt = Tensor::from_vec(m.clone(), (b, t), &candle_core::Device::Cpu).unwrap();
            for mask in [None, Some(m.clone())] {
                let f = |x: &[Tensor]| gru(&x[0], &x[1], &x[2], mask.clone());
                if h < 8 {
                    check("gru", f, &inputs, &[0, 1, 2]);
                }
                let c = |x: &[Tensor]| gru_composite(&x[0], &x[1], &x[2], mask.as_ref().map(|_| &mt));
                parity("gru", f, c, &inputs, &[0, 1, 2], tol);
            }
        }
    }

    /// The AVX-512 cell gives exactly the AVX2 cell's results.
    #[test]
    fn the_wide_cell_is_bit_identical() {
        let h = 40;
        let v = |seed, n| randn(seed, &[n]).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (x, hp, bn, p, d) = (v(1, 3 * h), v(2, 3 * h), v(3, h), v(4, h), v(5, h));
        let run = |wide: bool, m: f32| {
            let (mut o, mut s) = (vec![0f32; h], vec![0f32; 4 * h]);
            cell(wide, &x, &hp, &bn, &p, &mut o, &mut s, m, h);
            let (mut dx, mut dh, mut dp) = (vec![0f32; 3 * h], vec![0f32; 3 * h], vec![0f32; h]);
            cell_bwd(wide, &s, &p, &d, &mut dx, &mut dh, &mut dp, m, h);
            (o, s, dx, dh, dp)
        };
        for m in [1.0, 0.0] {
            assert_eq!(run(false, m), run(wide_cell(), m));
        }
    }
}
