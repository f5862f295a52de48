//! The LSTM cell (PyTorch's gate order i, f, g, o) for the shared
//! recurrence op ([`super::recurrence`]): `gates = xprojₜ + hₜ₋₁ Wₕₕᵀ`,
//! then `c = f·c₋₁ + i·g`, `h = o·tanh(c)`. The op keeps the gate
//! activations of every step (T·B·4H floats) for the backward pass.

use super::recurrence::Cell;
use super::Uninit;
use super::{sigmoid, tanh};
use candle_core::{Result, Tensor};

/// One row of the cell: gates (4H), prev [h | c] (2H) → out [h | c] (2H).
/// The gates are replaced by their activations (i, f, g, o) for the
/// backward pass.
#[inline(always)]
fn cell_row(g: &mut [f32], p: &[f32], out: &mut [Uninit], m: f32, h: usize) {
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
        oc.write(c);
        oh.write(o * tanh(c));
    }
    if m != 1.0 {
        // Blend with the carried state: m = 0 keeps prev.
        for (o, &pv) in out.iter_mut().zip(p) {
            // SAFETY: written just above.
            let v = unsafe { o.assume_init() };
            o.write(pv + m * (v - pv));
        }
    }
}

/// Backward of one row: activations `a` (i, f, g, o; 4H), prev [h | c],
/// d[h | c] of the output (2H) → d gates (4H, pre-activation) and the part
/// of d prev (2H) that does not go through Wₕₕ.
#[inline(always)]
fn cell_row_bwd(a: &[f32], p: &[f32], d_out: &[f32], dg: &mut [Uninit], dp: &mut [f32], m: f32, h: usize) {
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
        dgi[j].write(dc * gg * i * (1.0 - i));
        dgf[j].write(dc * cp[j] * f * (1.0 - f));
        dgg[j].write(dc * i * (1.0 - gg * gg));
        dgo[j].write(gh * tc * og * (1.0 - og));
        dph[j] = (1.0 - m) * doh[j];
        dpc[j] = dc * f + (1.0 - m) * doc[j];
    }
}

/// The cell compiled for AVX-512 (16 lanes instead of AVX2's 8; 1.8× faster
/// at H = 64), used where the CPU has it. The same operations in the same
/// order: results are bit-identical to the AVX2 build's.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::Uninit;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cell_row(g: &mut [f32], p: &[f32], out: &mut [Uninit], m: f32, h: usize) {
        super::cell_row(g, p, out, m, h)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cell_row_bwd(
        a: &[f32],
        p: &[f32],
        d_out: &[f32],
        dg: &mut [Uninit],
        dp: &mut [f32],
        m: f32,
        h: usize,
    ) {
        super::cell_row_bwd(a, p, d_out, dg, dp, m, h)
    }
}

/// [`cell_row`], on AVX-512 when `wide`.
#[inline(always)]
fn cell(wide: bool, g: &mut [f32], p: &[f32], out: &mut [Uninit], m: f32, h: usize) {
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
fn cell_bwd(wide: bool, a: &[f32], p: &[f32], d_out: &[f32], dg: &mut [Uninit], dp: &mut [f32], m: f32, h: usize) {
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: `wide` is true only where the CPU has AVX-512F.
        return unsafe { wide::cell_row_bwd(a, p, d_out, dg, dp, m, h) };
    }
    let _ = wide;
    cell_row_bwd(a, p, d_out, dg, dp, m, h)
}

/// The LSTM cell for [`super::recurrence`]: the state is [h | c], the
/// recurrent product adds into the saved gates, which the cell replaces by
/// their activations.
pub(crate) struct LstmCell;

impl Cell for LstmCell {
    const NAME: &'static str = "lstm";
    const GATES: usize = 4;
    const STATE: usize = 2;
    const SAVED: usize = 4;
    const EXTRA_COLS: usize = 0;
    const FOLDED: bool = true;

    fn new(_w: &[f32], _h: usize) -> Self {
        LstmCell
    }

    fn forward_row(
        &self,
        wide: bool,
        _x: &[f32],
        _hp: &[f32],
        p: &[f32],
        out: &mut [Uninit],
        save: &mut [Uninit],
        m: f32,
        h: usize,
    ) {
        // SAFETY: a folded cell's saved gates are initialised: a copy of xproj
        // with h Wₕₕᵀ added by the step's product.
        let g = unsafe { &mut *(save as *mut [Uninit] as *mut [f32]) };
        cell(wide, g, p, out, m, h)
    }

    fn backward_row(
        &self,
        wide: bool,
        save: &[f32],
        p: &[f32],
        d: &[f32],
        dx: &mut [Uninit],
        _dhp: &mut [Uninit],
        dp: &mut [f32],
        m: f32,
        h: usize,
    ) {
        cell_bwd(wide, save, p, d, dx, dp, m, h)
    }
}

/// Runs the LSTM recurrence: `xproj` (B, T, 4H) the input projections
/// with both biases, `w_hh` (4H, H), `init` (B, 2H) = [h₀ | c₀], `mask`
/// (B, T) values (1 steps, 0 carries the state) or `None`. Returns every
/// step's [h | c]: (B, T, 2H).
pub fn lstm(xproj: &Tensor, w_hh: &Tensor, init: &Tensor, mask: Option<Vec<f32>>) -> Result<Tensor> {
    super::recurrence::run::<LstmCell>(xproj, w_hh, init, mask)
}

/// [`lstm`] with variational dropout on the recurrent state: `hmask` (B, H)
/// multiplies the h that `w_hh` reads, the same at every step.
pub fn lstm_masked(
    xproj: &Tensor,
    w_hh: &Tensor,
    init: &Tensor,
    mask: Option<Vec<f32>>,
    hmask: Option<Vec<f32>>,
) -> Result<Tensor> {
    super::recurrence::run_masked::<LstmCell>(xproj, w_hh, init, mask, hmask)
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
    use crate::ops::recurrence::wide_cell;

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

    /// The recurrent dropout mask: finite-difference gradients, and a mask of
    /// ones is the plain op bit for bit.
    #[test]
    fn lstm_variational_mask_gradients() {
        let (t, b, h) = (4, 3, 5);
        let inputs = [randn(11, &[b, t, 4 * h]), (randn(12, &[4 * h, h]) * 0.5).unwrap(), randn(13, &[b, 2 * h])];
        let hm: Vec<f32> = (0..b * h).map(|i| if i % 3 == 1 { 0.0 } else { 1.5 }).collect();
        let f = |x: &[Tensor]| lstm_masked(&x[0], &x[1], &x[2], None, Some(hm.clone()));
        check("lstm (recurrent dropout)", f, &inputs, &[0, 1, 2]);
        let ones = lstm_masked(&inputs[0], &inputs[1], &inputs[2], None, Some(vec![1.0; b * h])).unwrap();
        let plain = lstm(&inputs[0], &inputs[1], &inputs[2], None).unwrap();
        assert_eq!(
            ones.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            plain.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    /// A step split into row blocks over threads (a batch big enough for
    /// parallel steps) gives the one-thread results bit for bit, with step
    /// masks and recurrent dropout, forward and backward.
    #[test]
    fn row_blocks_on_threads_are_bit_identical() {
        for (b, threads) in [(37, [2, 3]), (97, [12, 5])] {
            row_blocks_case(b, threads);
        }
    }

    fn row_blocks_case(b: usize, threads: [usize; 2]) {
        let (t, h) = (3, 64);
        let inputs = [randn(21, &[b, t, 4 * h]), (randn(22, &[4 * h, h]) * 0.2).unwrap(), randn(23, &[b, 2 * h])];
        let m: Vec<f32> = (0..b * t).map(|i| if i % 7 == 2 { 0.0 } else { 1.0 }).collect();
        let hm: Vec<f32> = (0..b * h).map(|i| if i % 3 == 1 { 0.0 } else { 1.5 }).collect();
        let run = |threads: usize, hmask: Option<Vec<f32>>| {
            let f = |x: &[Tensor]| lstm_masked(&x[0], &x[1], &x[2], Some(m.clone()), hmask.clone());
            crate::ops::gradcheck::on_threads(threads, f, &inputs)
        };
        for hmask in [None, Some(hm)] {
            let one = run(1, hmask.clone());
            for n in threads {
                assert_eq!(one, run(n, hmask.clone()), "{b} rows on {n} threads");
            }
        }
    }

    /// The AVX-512 cell gives exactly the AVX2 cell's results.
    #[test]
    fn the_wide_cell_is_bit_identical() {
        let h = 40;
        let v = |seed, n| randn(seed, &[n]).flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let (g0, p, d) = (v(4, 4 * h), v(5, 2 * h), v(6, 2 * h));
        let run = |wide: bool, m: f32| {
            use crate::ops::{init, output};
            let (mut g, mut out, mut dg, mut dp) = (g0.clone(), output(2 * h), output(4 * h), vec![0f32; 2 * h]);
            cell(wide, &mut g, &p, &mut out, m, h);
            cell_bwd(wide, &g, &p, &d, &mut dg, &mut dp, m, h);
            // SAFETY: the cells write all of `out` and `dg`.
            let (out, dg) = unsafe { (init(out), init(dg)) };
            (g, out, dg, dp)
        };
        for m in [1.0, 0.0] {
            assert_eq!(run(false, m), run(wide_cell(), m));
        }
    }
}
