//! The recurrence op that LSTM and GRU share: the whole sequence as one op,
//! with the forward loop over steps and the backpropagation through time
//! written once, over a `Cell` that supplies what differs (the gate
//! arithmetic of one row, forward and backward).
//!
//! The input projection `x Wᵢₕᵀ + b` of every step is computed before, as
//! one matrix product. Each step then runs the product `h Wₕₕᵀ` (Wₕₕᵀ
//! packed once for all steps) and the cells, split into blocks of rows: a
//! task does both for its own rows, so a step is one fork-join (none on one
//! thread). The backward pass walks the steps in reverse, each task running
//! its rows' cells and then their `d · Wₕₕ`, and ends with `d Wₕₕ` as one
//! pass over all rows and steps. How the rows split never changes a result.
//!
//! Everything stays batch-major, (B, T, ·), as the caller lays it out: step
//! t's rows are T·G (gates) or T·S (states) floats apart, which the matrix
//! products take as strides, so nothing is transposed. A per-row mask
//! carries the old state where it is 0, so the final state of a
//! right-padded sequence is the one at its last real token.
//!
//! Variational dropout (Gal & Ghahramani 2016) on the recurrent state: an
//! optional (B, H) mask multiplies the h that enters `h Wₕₕᵀ` at every step,
//! the same mask at every step of a sequence. The cell itself (an LSTM's
//! `c`, a GRU's `z·h₋₁`) sees the state unmasked.

use super::sgemm::{matmul_packed, PackedRhs};
use super::{f32_slice, sgemm, Uninit};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// What a recurrent cell is: the sizes of its pieces (in multiples of the
/// hidden size H) and the arithmetic of one row.
pub(crate) trait Cell: Sync + Sized + 'static {
    /// The op's name, for errors.
    const NAME: &'static str;
    /// Gate pre-activations per row (LSTM 4, GRU 3): G = GATES·H.
    const GATES: usize;
    /// The state per row (LSTM 2, [h | c]; GRU 1, h): S = STATE·H. Its first
    /// H values are the h that Wₕₕ multiplies.
    const STATE: usize;
    /// Floats kept per row and step for the backward pass: SAVED·H.
    const SAVED: usize;
    /// Columns of the recurrent weight beyond its H (GRU's b_hn column).
    const EXTRA_COLS: usize;
    /// Whether `h Wₕₕᵀ` adds straight into the saved pre-activations (the
    /// input projection is copied there first), so that d xproj is also d
    /// (h Wₕₕᵀ) (LSTM); otherwise it goes to a buffer of its own (GRU).
    const FOLDED: bool;

    /// The cell for the recurrent weight `w` (G, H + EXTRA_COLS).
    fn new(w: &[f32], h: usize) -> Self;

    /// One row, forward: the input pre-activations `x` (G) and `hp = h Wₕₕᵀ`
    /// (G; both empty when FOLDED, where `save` holds their sum on entry),
    /// the previous state `p` (S) → `out` (S) and what the backward pass
    /// needs in `save` (SAVED·H). `m` blends with `p` (0 keeps it).
    #[allow(clippy::too_many_arguments)]
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
    );

    /// One row, backward: `save`, the previous state `p` and the gradient
    /// `d` of the output (S) → `dx` (G, of the input pre-activations), `dhp`
    /// (G, of `h Wₕₕᵀ` and any bias inside it; empty when FOLDED, where it is
    /// `dx`) and the part of d prev that does not go through Wₕₕ, `dp` (S).
    #[allow(clippy::too_many_arguments)]
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
    );

    /// Completes d w (G, H + EXTRA_COLS) beyond its first H columns, from
    /// the gradients of `h Wₕₕᵀ` (B·T rows of G).
    fn finish_weight_grad(&self, _dhp: &[f32], _dw: &mut [f32], _h: usize) {}
}

struct RecurrenceOp<C> {
    mask: StepMask,
    /// Variational dropout: per row, the H multipliers of the h that Wₕₕ reads.
    hmask: Option<Vec<f32>>,
    /// What the cell keeps of every step (B, T, SAVED·H), for the backward pass.
    saved: Mutex<Vec<f32>>,
    cell: std::marker::PhantomData<fn() -> C>,
}

impl<C: Cell> RecurrenceOp<C> {
    /// (B, T, H) of `xproj` (B, T, G) after checking that the weight and the
    /// initial state fit it.
    fn dims(l1: &Layout, l2: &Layout, l3: &Layout) -> Result<(usize, usize, usize)> {
        let (b, t, g) = l1.shape().dims3()?;
        let h = g / C::GATES;
        if g != C::GATES * h
            || l2.shape().dims2()? != (g, h + C::EXTRA_COLS)
            || l3.shape().dims2()? != (b, C::STATE * h)
        {
            bail!("{}: xproj {:?}, w_hh {:?} and state {:?} do not fit", C::NAME, l1.dims(), l2.dims(), l3.dims());
        }
        Ok((b, t, h))
    }
}

impl<C: Cell> CustomOp3 for RecurrenceOp<C> {
    fn name(&self) -> &'static str {
        C::NAME
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
        let (xproj, w, init) = (f32_slice(s1, l1, C::NAME)?, f32_slice(s2, l2, C::NAME)?, f32_slice(s3, l3, C::NAME)?);
        let (b, t, h) = Self::dims(l1, l2, l3)?;
        let name = if C::NAME == "lstm" { "lstm.fwd" } else { "gru.fwd" };
        // One (B×H)·(H×G) product per step.
        let _p = crate::profile::op(name, || {
            (format!("{:?}", l1.dims()), Some(crate::profile::matmul_flops(b * t, C::GATES * h, h)))
        });
        let (g, sw, vw) = (C::GATES * h, C::STATE * h, C::SAVED * h);
        let cell = C::new(w, h);
        // FOLDED: the pre-activations, h Wₕₕᵀ added step by step; else written step by step.
        let mut saved =
            if C::FOLDED { xproj.iter().map(|&v| Uninit::new(v)).collect() } else { super::output(b * t * vw) };
        let mut states = super::output(b * t * sw); // (B, T, S), written step by step
        let mut hp = if C::FOLDED { Vec::new() } else { vec![0f32; b * g] };
        // Wₕₕᵀ (w's first H columns, transposed) is packed once for all steps.
        let w_t = PackedRhs::new(b, h, g, w, ((h + C::EXTRA_COLS) as isize, 1));
        let wide = wide_cell();
        let (sv, ss) = (Rows(saved.as_mut_ptr()), Rows(states.as_mut_ptr()));
        let hps = Floats(hp.as_mut_ptr());
        let (tasks, per) = row_blocks(b, g * h);
        let inner = product_threads(tasks);
        // Rows i0..i1 of one step: their product, then their cells. A task
        // needs only its own rows of the previous step, so each step is one
        // fork-join (none on one thread), and the rows stay in cache between
        // the product and the cells.
        let block = |step: usize, i0: usize, i1: usize, hm: &mut Vec<f32>| {
            // SAFETY: shapes checked above; row r of step s is at (r·T + s)·S in the
            // states, the previous step's rows are complete, and each task
            // writes only rows i0..i1 of this step.
            unsafe {
                let (mut prev, prev_rs) = if step == 0 {
                    (init.as_ptr().add(i0 * sw), sw)
                } else {
                    (ss.ptr().add((i0 * t + step - 1) * sw).cast_const().cast::<f32>(), t * sw)
                };
                let mut prev_s = (1, prev_rs as isize);
                if let Some(m) = &self.hmask {
                    // The h that Wₕₕ reads, masked: (rows, H).
                    hm.resize((i1 - i0) * h, 0.0);
                    for (j, r) in (i0..i1).enumerate() {
                        let src = std::slice::from_raw_parts(prev.add(j * prev_rs), h);
                        for ((d, &v), &k) in hm[j * h..(j + 1) * h].iter_mut().zip(src).zip(&m[r * h..(r + 1) * h]) {
                            *d = v * k;
                        }
                    }
                    (prev, prev_s) = (hm.as_ptr(), (1, h as isize));
                }
                if C::FOLDED {
                    let dst = sv.ptr().add((i0 * t + step) * g).cast::<f32>();
                    matmul_packed(i1 - i0, dst, (1, (t * g) as isize), true, prev, prev_s, &w_t, inner);
                } else {
                    let dst = hps.ptr().add(i0 * g);
                    matmul_packed(i1 - i0, dst, (1, g as isize), false, prev, prev_s, &w_t, inner);
                }
                for r in i0..i1 {
                    let at = r * t + step;
                    let (o, s) = (ss.get(at * sw, sw), sv.get(at * vw, vw));
                    let p: &[f32] = match step {
                        0 => &init[r * sw..(r + 1) * sw],
                        _ => ss.get_init((at - 1) * sw, sw),
                    };
                    let (x, hpr) = if C::FOLDED {
                        (&[][..], &[][..])
                    } else {
                        (&xproj[at * g..(at + 1) * g], std::slice::from_raw_parts(hps.ptr().add(r * g), g))
                    };
                    cell.forward_row(wide, x, hpr, p, o, s, self.mask.at(step, r), h);
                }
            }
        };
        let mut hm = Vec::new();
        for step in 0..t {
            if tasks == 1 {
                block(step, 0, b, &mut hm);
            } else {
                (0..tasks)
                    .into_par_iter()
                    .for_each_init(Vec::new, |hm, k| block(step, k * per, b.min((k + 1) * per), hm));
            }
        }
        // SAFETY: the cells wrote every row of every step (FOLDED: the saved
        // gates started as a copy of xproj).
        let (saved, states) = unsafe { (super::init(saved), super::init(states)) };
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = saved;
        Ok((CpuStorage::F32(states), Shape::from((b, t, sw))))
    }

    fn bwd(
        &self,
        xproj: &Tensor,
        w: &Tensor,
        init: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (b, t, h) = Self::dims(xproj.layout(), w.layout(), init.layout())?;
        let name = if C::NAME == "lstm" { "lstm.bwd" } else { "gru.bwd" };
        // d h_prev per step, and d W over all rows and steps.
        let flops = 2 * crate::profile::matmul_flops(b * t, C::GATES * h, h);
        let _p = crate::profile::op(name, || (format!("{:?}", xproj.dims()), Some(flops)));
        let (g, sw, vw, wcols) = (C::GATES * h, C::STATE * h, C::SAVED * h, h + C::EXTRA_COLS);
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        let w = w.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let init = init.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let (res, grad) = (res.contiguous()?, grad.contiguous()?);
        let cell = C::new(&w, h);
        let mut dx = super::output(b * t * g); // d xproj (B, T, G), written step by step
        let mut dhp = if C::FOLDED { Vec::new() } else { super::output(b * t * g) }; // d (h Wₕₕᵀ + bias)
        let mut dw = vec![0f32; g * wcols];
        let mut carry = vec![0f32; b * sw]; // d state after this step, from later steps
        let mut dprev = vec![0f32; b * sw];
        // Packed once for all steps.
        let w_packed = PackedRhs::new(b, g, h, &w, (1, wcols as isize));
        let wide = wide_cell();
        let (tasks, per) = row_blocks(b, g * h);
        let inner = product_threads(tasks);
        let dx = super::with_f32(&res, C::NAME, |states| {
            super::with_f32(&grad, C::NAME, |grad| {
                let dxs = Rows(dx.as_mut_ptr());
                let dhs = if C::FOLDED { dxs } else { Rows(dhp.as_mut_ptr()) };
                // Rows i0..i1 of one step: their cells, then d hₜ₋₁ of those
                // rows through Wₕₕ (one fork-join per step, as forward).
                let block =
                    |step: usize, carried: &[f32], dprev: Floats, i0: usize, i1: usize, scratch: &mut Vec<f32>| {
                        scratch.resize(sw + if self.hmask.is_some() { (i1 - i0) * h } else { 0 }, 0.0);
                        let (d, dhm) = scratch.split_at_mut(sw);
                        for r in i0..i1 {
                            let at = r * t + step;
                            // d of this step's output: from the loss, and from later steps.
                            for ((d, a), c) in d.iter_mut().zip(&grad[at * sw..(at + 1) * sw]).zip(&carried[r * sw..]) {
                                *d = a + c;
                            }
                            let p = match step {
                                0 => &init[r * sw..(r + 1) * sw],
                                _ => &states[(at - 1) * sw..at * sw],
                            };
                            // SAFETY: each task owns rows i0..i1 of this step's gradients
                            // and of d prev.
                            let (dxr, dp) = unsafe {
                                (dxs.get(at * g, g), std::slice::from_raw_parts_mut(dprev.ptr().add(r * sw), sw))
                            };
                            let dhr = if C::FOLDED { &mut [][..] } else { unsafe { dhs.get(at * g, g) } };
                            let s = &saved[at * vw..(at + 1) * vw];
                            cell.backward_row(wide, s, p, d, dxr, dhr, dp, self.mask.at(step, r), h);
                        }
                        // SAFETY: all buffers are sized from the checked shapes; the
                        // rows written are this task's.
                        unsafe {
                            // d hₜ₋₁ += d hp · Wₕₕ   (rows, G)·(G, H), rows T·G apart
                            let dh = dhs.ptr().add((i0 * t + step) * g).cast_const().cast::<f32>();
                            let (rs, n) = ((t * g) as isize, i1 - i0);
                            let dst = dprev.ptr().add(i0 * sw);
                            match &self.hmask {
                                None => matmul_packed(n, dst, (1, sw as isize), true, dh, (1, rs), &w_packed, inner),
                                Some(m) => {
                                    // Through the mask: d h += (d hp · Wₕₕ) ⊙ m.
                                    let dhm = dhm.as_mut_ptr();
                                    matmul_packed(n, dhm, (1, h as isize), false, dh, (1, rs), &w_packed, inner);
                                    for (j, r) in (i0..i1).enumerate() {
                                        let dst = std::slice::from_raw_parts_mut(dprev.ptr().add(r * sw), h);
                                        let dhm = std::slice::from_raw_parts(dhm.add(j * h), h);
                                        for ((d, &v), &k) in dst.iter_mut().zip(dhm).zip(&m[r * h..]) {
                                            *d += v * k;
                                        }
                                    }
                                }
                            }
                        }
                    };
                let mut scratch = Vec::new();
                for step in (0..t).rev() {
                    let dp = Floats(dprev.as_mut_ptr());
                    if tasks == 1 {
                        block(step, &carry, dp, 0, b, &mut scratch);
                    } else {
                        let carried = &carry;
                        (0..tasks).into_par_iter().for_each_init(Vec::new, |sc, k| {
                            block(step, carried, dp, k * per, b.min((k + 1) * per), sc)
                        });
                    }
                    std::mem::swap(&mut carry, &mut dprev);
                }
                // SAFETY: the cells wrote every row of every step.
                let (dx, dhp) = unsafe { (super::init(dx), super::init(dhp)) };
                let dh: &[f32] = if C::FOLDED { &dx } else { &dhp };
                // d Wₕₕ = Σ d hpᵀ · h_prev over every row and step, into the
                // first H columns of d w.
                // SAFETY: all buffers are sized from the checked shapes.
                match &self.hmask {
                    // SAFETY: all buffers are sized from the checked shapes.
                    None => unsafe {
                        let (hs, gs) = (Strided(&init, sw), Strided(states, sw));
                        recurrent_weight_grad(b, t, h, g, hs, gs, dh, &mut dw, wcols);
                    },
                    Some(m) => {
                        // Wₕₕ read the masked h: its gradient pairs d hp with that.
                        let masked = |src: &[f32], rows: usize, per_row: usize| -> Vec<f32> {
                            let mut out = vec![0f32; rows * h];
                            for (i, o) in out.chunks_mut(h).enumerate() {
                                let r = i / per_row;
                                for ((d, &v), &k) in o.iter_mut().zip(&src[i * sw..i * sw + h]).zip(&m[r * h..]) {
                                    *d = v * k;
                                }
                            }
                            out
                        };
                        let (hi, hs) = (masked(&init, b, 1), masked(states, b * t, t));
                        // SAFETY: the masked copies are (B, H) and (B, T, H).
                        unsafe {
                            recurrent_weight_grad(b, t, h, g, Strided(&hi, h), Strided(&hs, h), dh, &mut dw, wcols)
                        };
                    }
                }
                cell.finish_weight_grad(dh, &mut dw, h);
                dx
            })
        })??;
        let dev = xproj.device();
        Ok((
            Some(Tensor::from_vec(dx, (b, t, g), dev)?),
            Some(Tensor::from_vec(dw, (g, wcols), dev)?),
            Some(Tensor::from_vec(carry, (b, sw), dev)?),
        ))
    }
}

/// Runs the recurrence of cell `C`: `xproj` (B, T, G) the input
/// projections, `w` (G, H + EXTRA_COLS) the recurrent weight, `init` (B, S)
/// the first state, `mask` (B, T) values (1 steps, 0 carries the state) or
/// `None`. Returns every step's state: (B, T, S).
pub(crate) fn run<C: Cell>(xproj: &Tensor, w: &Tensor, init: &Tensor, mask: Option<Vec<f32>>) -> Result<Tensor> {
    run_masked::<C>(xproj, w, init, mask, None)
}

/// [`run`] with variational dropout on the recurrent state: `hmask` (B, H)
/// multiplies the h that Wₕₕ reads at every step.
pub(crate) fn run_masked<C: Cell>(
    xproj: &Tensor,
    w: &Tensor,
    init: &Tensor,
    mask: Option<Vec<f32>>,
    hmask: Option<Vec<f32>>,
) -> Result<Tensor> {
    // FOLDED keeps the gates' pre-activations in the saved buffer, in place.
    const { assert!(!C::FOLDED || C::SAVED == C::GATES, "a folded cell saves its gates") };
    let (b, t, g) = xproj.dims3()?;
    if hmask.as_ref().is_some_and(|m| m.len() != b * (g / C::GATES)) {
        bail!("{}: the recurrent dropout mask is not {b} rows × {} units", C::NAME, g / C::GATES);
    }
    let mask = StepMask::new(mask, b, t, C::NAME)?;
    let op = RecurrenceOp::<C> { mask, hmask, saved: Mutex::new(Vec::new()), cell: std::marker::PhantomData };
    xproj.contiguous()?.apply_op3(&w.contiguous()?, &init.contiguous()?, op)
}

/// Whether the recurrent cells' AVX-512 builds run here (x86-64 builds
/// target AVX2; the cells are also compiled for AVX-512 and chosen at run
/// time, unless `SHIFTLM_ISA=avx2`: [`super::cpu::avx512`]).
pub(crate) fn wide_cell() -> bool {
    #[cfg(target_arch = "x86_64")]
    return super::cpu::avx512();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Batch rows handed to one parallel task of a recurrent step, at least.
pub(crate) const RECURRENT_ROWS: usize = 8;

/// How a recurrent step's B rows split into parallel tasks, each doing
/// `work_per_row` multiply-adds a row: (tasks, rows per task). One task on
/// one thread, or where the step is too small for a fork-join (a few µs) to
/// pay; the split never changes a result (each row is computed alike).
fn row_blocks(b: usize, work_per_row: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads();
    let tasks = if threads > 1 && b * work_per_row >= 1 << 18 { threads.min(b.div_ceil(RECURRENT_ROWS)) } else { 1 };
    let per = b.div_ceil(tasks).max(1);
    // Every block non-empty: 97 rows on 12 threads are 11 blocks of 9, not 12.
    (b.div_ceil(per).max(1), per)
}

/// Threads for the product inside one row block: all of them when the step
/// is a single block (the product then splits as any other does), else 1.
fn product_threads(tasks: usize) -> usize {
    if tasks == 1 {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// A float buffer shared by the parallel row tasks of one recurrent step;
/// each task touches only its own rows.
#[derive(Clone, Copy)]
struct Floats(*mut f32);
// SAFETY: as for `Rows`: the tasks of a step write disjoint rows, and the
// buffer outlives the step.
unsafe impl Send for Floats {}
unsafe impl Sync for Floats {}

impl Floats {
    /// The buffer (a method, so that closures capture the whole `Floats`).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// A recurrence's per-row mask (1 steps, 0 carries the old state), kept
/// step-major so one step's values are together.
pub(crate) struct StepMask(Option<Vec<f32>>, usize);

impl StepMask {
    /// From (B, T) values as callers lay them out, or `None` (every step counts).
    pub(crate) fn new(mask: Option<Vec<f32>>, b: usize, t: usize, op: &str) -> candle_core::Result<Self> {
        if mask.as_ref().is_some_and(|m| m.len() != b * t) {
            bail!("{op}: mask does not cover {b} rows × {t} steps");
        }
        let m = mask.map(|m| (0..t).flat_map(|s| (0..b).map(move |r| (s, r))).map(|(s, r)| m[r * t + s]).collect());
        Ok(Self(m, b))
    }

    /// Row `r`'s value at `step`.
    #[inline]
    pub(crate) fn at(&self, step: usize, r: usize) -> f32 {
        self.0.as_ref().map_or(1.0, |m| m[step * self.1 + r])
    }
}

/// Rows of h: (values, floats from one row's h to the next step's or row's).
pub(crate) struct Strided<'a>(pub(crate) &'a [f32], pub(crate) usize);

/// The recurrent weight's gradient `d W = Σ dᵀ · h_prev` over every row and
/// step of a batch-major recurrence: `d` (B, T, G) the gradients of `h Wᵀ`,
/// `init` the initial h (B rows) and `states` (B, T, ·) the h of every step.
/// Computed as its transpose `Σ h_prevᵀ · d`, (H, ·)·(·, G), so that the wide
/// operand is packed once for all H rows (1.5× faster at H = 64): one product
/// for the first steps (whose h_prev is `init`), then one per row over its
/// later steps. Written into `dw` (G rows `dw_rs` apart, first H columns).
///
/// # Safety
/// The buffers must hold the shapes above.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn recurrent_weight_grad(
    b: usize,
    t: usize,
    h: usize,
    g: usize,
    init: Strided,
    states: Strided,
    d: &[f32],
    dw: &mut [f32],
    dw_rs: usize,
) {
    use sgemm::matmul;
    let dst = (dw_rs as isize, 1);
    let first = (1, (t * g) as isize); // row r's step 0 is r·T·G in
    matmul(h, g, b, dw.as_mut_ptr(), dst, false, init.0.as_ptr(), (init.1 as isize, 1), d.as_ptr(), first);
    for r in (0..b).filter(|_| t > 1) {
        let hp = states.0.as_ptr().add(r * t * states.1); // h of steps 0..T-1 of row r
        let dr = d.as_ptr().add((r * t + 1) * g); // d of steps 1..T
        matmul(h, g, t - 1, dw.as_mut_ptr(), dst, true, hp, (states.1 as isize, 1), dr, (1, g as isize));
    }
}

/// A buffer shared by the parallel row tasks of one recurrent step; each
/// task touches only its own rows.
#[derive(Clone, Copy)]
pub(crate) struct Rows(pub(crate) *mut Uninit);
// SAFETY: the parallel tasks of a step each touch only their own rows
// (`Rows::get`'s contract), and the buffer outlives the step.
unsafe impl Send for Rows {}
unsafe impl Sync for Rows {}

impl Rows {
    /// The buffer (a method, so that closures capture the whole `Rows`).
    pub(crate) fn ptr(self) -> *mut Uninit {
        self.0
    }

    /// # Safety
    /// `at..at + n` must lie inside the buffer, and no other task may use it.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get(&self, at: usize, n: usize) -> &mut [Uninit] {
        std::slice::from_raw_parts_mut(self.0.add(at), n)
    }

    /// # Safety
    /// As [`Rows::get`], and every element of `at..at + n` has been written.
    pub(crate) unsafe fn get_init(&self, at: usize, n: usize) -> &[f32] {
        std::slice::from_raw_parts(self.0.add(at).cast::<f32>(), n)
    }
}
