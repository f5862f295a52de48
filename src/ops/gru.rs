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
//! and gives `b_hn` its gradient through that column. The loops over steps
//! are the shared recurrence op's ([`super::recurrence`]); this file is the
//! cell, compiled for AVX-512 as well where the CPU has it.

use super::recurrence::Cell;
use super::Uninit;
use super::{sigmoid, tanh};
use candle_core::{Result, Tensor};

/// One row of the cell: input pre-activations `x` (3H), `hp = h Wₕₕᵀ` (3H,
/// no bias), `bn` = b_hn (H), the previous `p` (H) → `out` (H). Saves
/// r, z, n and `hp_n + b_hn` (4H) for the backward pass.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_row(x: &[f32], hp: &[f32], bn: &[f32], p: &[f32], out: &mut [Uninit], save: &mut [Uninit], m: f32, h: usize) {
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
        sr[j].write(r);
        sz[j].write(z);
        sn[j].write(n);
        shn[j].write(hn);
        let next = n + z * (p[j] - n);
        // m = 0 keeps the previous state (padding); m = 1 is exactly `next`.
        out[j].write(if m == 1.0 { next } else { p[j] + m * (next - p[j]) });
    }
}

/// Backward of one row: saved r, z, n, hn (4H), previous `p` (H), `d` the
/// gradient of the output (H) → `dx` (3H, the input pre-activations),
/// `dhp` (3H, of `h Wₕₕᵀ + (0, 0, b_hn)`) and the part of d prev that does
/// not go through Wₕₕ (H).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell_row_bwd(
    s: &[f32],
    p: &[f32],
    d: &[f32],
    dx: &mut [Uninit],
    dhp: &mut [Uninit],
    dp: &mut [f32],
    m: f32,
    h: usize,
) {
    let (r, z, n, hn) = (&s[..h], &s[h..2 * h], &s[2 * h..3 * h], &s[3 * h..4 * h]);
    let (p, d, dx, dhp, dp) = (&p[..h], &d[..h], &mut dx[..3 * h], &mut dhp[..3 * h], &mut dp[..h]);
    for j in 0..h {
        let de = m * d[j]; // through the update; 1 − m carries d straight to p
        let dn = de * (1.0 - z[j]) * (1.0 - n[j] * n[j]);
        let dz = de * (p[j] - n[j]) * z[j] * (1.0 - z[j]);
        let dr = dn * hn[j] * r[j] * (1.0 - r[j]);
        dx[j].write(dr);
        dx[h + j].write(dz);
        dx[2 * h + j].write(dn);
        dhp[j].write(dr);
        dhp[h + j].write(dz);
        dhp[2 * h + j].write(dn * r[j]);
        dp[j] = (1.0 - m) * d[j] + de * z[j];
    }
}

/// The cell compiled for AVX-512; bit-identical to the AVX2 build.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::Uninit;

    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn cell_row(
        x: &[f32],
        hp: &[f32],
        bn: &[f32],
        p: &[f32],
        out: &mut [Uninit],
        save: &mut [Uninit],
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
        dx: &mut [Uninit],
        dhp: &mut [Uninit],
        dp: &mut [f32],
        m: f32,
        h: usize,
    ) {
        super::cell_row_bwd(s, p, d, dx, dhp, dp, m, h)
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn cell(
    wide: bool,
    x: &[f32],
    hp: &[f32],
    bn: &[f32],
    p: &[f32],
    out: &mut [Uninit],
    save: &mut [Uninit],
    m: f32,
    h: usize,
) {
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
    dx: &mut [Uninit],
    dhp: &mut [Uninit],
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

/// The GRU cell for [`super::recurrence`]: the state is h; the recurrent
/// product has its own buffer, since `b_hn` sits inside the reset gate.
pub(crate) struct GruCell {
    /// b_hn (H), the last column of the augmented weight's n rows.
    bn: Vec<f32>,
}

impl Cell for GruCell {
    const NAME: &'static str = "gru";
    const GATES: usize = 3;
    const STATE: usize = 1;
    const SAVED: usize = 4;
    const EXTRA_COLS: usize = 1;
    const FOLDED: bool = false;

    fn new(w: &[f32], h: usize) -> Self {
        GruCell { bn: (2 * h..3 * h).map(|g| w[g * (h + 1) + h]).collect() }
    }

    fn forward_row(
        &self,
        wide: bool,
        x: &[f32],
        hp: &[f32],
        p: &[f32],
        out: &mut [Uninit],
        save: &mut [Uninit],
        m: f32,
        h: usize,
    ) {
        cell(wide, x, hp, &self.bn, p, out, save, m, h)
    }

    fn backward_row(
        &self,
        wide: bool,
        save: &[f32],
        p: &[f32],
        d: &[f32],
        dx: &mut [Uninit],
        dhp: &mut [Uninit],
        dp: &mut [f32],
        m: f32,
        h: usize,
    ) {
        cell_bwd(wide, save, p, d, dx, dhp, dp, m, h)
    }

    /// The bias column: b_hn's gradient is Σ d hp_n over every row and step;
    /// the r and z entries are not read, so theirs is 0.
    fn finish_weight_grad(&self, dhp: &[f32], dw: &mut [f32], h: usize) {
        for (g, v) in super::column_sums(dhp, 3 * h).into_iter().enumerate() {
            dw[g * (h + 1) + h] = if g >= 2 * h { v } else { 0.0 };
        }
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
    super::recurrence::run::<GruCell>(xproj, w_aug, init, mask)
}

/// [`gru`] with variational dropout on the recurrent state: `hmask` (B, H)
/// multiplies the h that the recurrent weight reads (not the `z·h₋₁` the
/// cell carries), the same at every step.
pub fn gru_masked(
    xproj: &Tensor,
    w_aug: &Tensor,
    init: &Tensor,
    mask: Option<Vec<f32>>,
    hmask: Option<Vec<f32>>,
) -> Result<Tensor> {
    super::recurrence::run_masked::<GruCell>(xproj, w_aug, init, mask, hmask)
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
    use crate::ops::recurrence::wide_cell;

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

    /// The recurrent dropout mask: finite-difference gradients (with a step
    /// mask too), and a mask of ones is the plain op bit for bit.
    #[test]
    fn gru_variational_mask_gradients() {
        let (t, b, h) = (4, 3, 5);
        let w_aug = augment(&(randn(22, &[3 * h, h]) * 0.4).unwrap(), &randn(24, &[h])).unwrap();
        let inputs = [randn(21, &[b, t, 3 * h]), w_aug, randn(23, &[b, h])];
        let hm: Vec<f32> = (0..b * h).map(|i| if i % 4 == 2 { 0.0 } else { 1.25 }).collect();
        let steps: Vec<f32> = (0..b * t).map(|i| if i == 7 { 0.0 } else { 1.0 }).collect();
        let f = |x: &[Tensor]| gru_masked(&x[0], &x[1], &x[2], Some(steps.clone()), Some(hm.clone()));
        check("gru (recurrent dropout)", f, &inputs, &[0, 1, 2]);
        let ones = gru_masked(&inputs[0], &inputs[1], &inputs[2], None, Some(vec![1.0; b * h])).unwrap();
        let plain = gru(&inputs[0], &inputs[1], &inputs[2], None).unwrap();
        let v = |x: Tensor| x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v(ones), v(plain));
    }

    /// The AVX-512 cell gives exactly the AVX2 cell's results.
    /// As for the LSTM: steps split into row blocks over threads give the
    /// one-thread results bit for bit (the GRU keeps h Wₕₕᵀ in a buffer of
    /// its own, the path the LSTM does not take).
    #[test]
    fn row_blocks_on_threads_are_bit_identical() {
        let (t, b, h) = (3, 41, 64);
        let inputs = [randn(31, &[b, t, 3 * h]), (randn(32, &[3 * h, h + 1]) * 0.2).unwrap(), randn(33, &[b, h])];
        let m: Vec<f32> = (0..b * t).map(|i| if i % 7 == 2 { 0.0 } else { 1.0 }).collect();
        let hm: Vec<f32> = (0..b * h).map(|i| if i % 3 == 1 { 0.0 } else { 1.5 }).collect();
        let run = |threads: usize, hmask: Option<Vec<f32>>| {
            let f = |x: &[Tensor]| gru_masked(&x[0], &x[1], &x[2], Some(m.clone()), hmask.clone());
            crate::ops::gradcheck::on_threads(threads, f, &inputs)
        };
        for hmask in [None, Some(hm)] {
            let one = run(1, hmask.clone());
            for n in [2, 3, 7] {
                assert_eq!(one, run(n, hmask.clone()), "{n} threads");
            }
        }
    }

    #[test]
    fn the_wide_cell_is_bit_identical() {
        let h = 40;
        let v = |seed, n| randn(seed, &[n]).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (x, hp, bn, p, d) = (v(1, 3 * h), v(2, 3 * h), v(3, h), v(4, h), v(5, h));
        let run = |wide: bool, m: f32| {
            use crate::ops::{init, output};
            let (mut o, mut s) = (output(h), output(4 * h));
            cell(wide, &x, &hp, &bn, &p, &mut o, &mut s, m, h);
            // SAFETY: the cell writes all of them.
            let (o, s) = unsafe { (init(o), init(s)) };
            let (mut dx, mut dh, mut dp) = (output(3 * h), output(3 * h), vec![0f32; h]);
            cell_bwd(wide, &s, &p, &d, &mut dx, &mut dh, &mut dp, m, h);
            // SAFETY: the backward cell writes all of them.
            let (dx, dh) = unsafe { (init(dx), init(dh)) };
            (o, s, dx, dh, dp)
        };
        for m in [1.0, 0.0] {
            assert_eq!(run(false, m), run(wide_cell(), m));
        }
    }
}
