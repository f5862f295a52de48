//! Fused CPU kernels with hand-written backward passes, as candle
//! `CustomOp`s. Stock candle builds a norm, a softmax or a GELU from many
//! small single-threaded kernels and its backward pass from many more
//! (reductions over broadcast dimensions are the slowest); each op here is
//! one pass forward and one pass backward, spread over rayon's threads.
//!
//! Determinism: rows are split into blocks of a fixed size (`ROW_BLOCK`),
//! never into one block per thread, and partial sums are added in block
//! order, so results are the same bit for bit on any number of threads.
//!
//! Every op has a finite-difference gradient check and a parity test
//! against the composite candle ops it replaces (the `composite` functions
//! kept next to each op).

pub mod attention;
pub mod conv2d;
pub mod cpu;
pub mod cross_entropy;
pub mod dropout;
pub mod embedding;
pub mod gelu;
pub mod gru;
pub mod head_loss;
pub mod linear;
pub mod lstm;
pub mod mha;
pub mod norm;
pub mod pool;
pub mod recurrence;
pub mod reference;
pub mod sgemm;
pub mod softmax;
pub mod swiglu;

#[cfg(test)]
pub(crate) mod gradcheck;

use candle_core::{bail, CpuStorage, Layout, Result, Storage, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Rows handed to one parallel task (fixed, so sums never depend on the
/// thread count).
pub(crate) const ROW_BLOCK: usize = 16;

/// Elements handed to one parallel task by element-wise kernels.
pub(crate) const ELEM_BLOCK: usize = 16 * 1024;

/// An element of an [`output`] buffer.
pub(crate) type Uninit = MaybeUninit<f32>;

/// A buffer of `n` floats for an op to overwrite entirely, left
/// uninitialised: zeroing the outputs cost 5–14% of a training step
/// (BENCHMARKS.md, "Reliability"). The op writes every element
/// (`MaybeUninit::write`, or through `as_mut_ptr().cast::<f32>()`), then
/// [`init`] hands the floats on.
pub(crate) fn output(n: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(n);
    // SAFETY: a `MaybeUninit` needs no initialisation.
    unsafe { v.set_len(n) };
    v
}

/// The floats of an [`output`] buffer.
///
/// # Safety
/// Every element must have been written.
pub(crate) unsafe fn init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: `MaybeUninit<f32>` has f32's layout, the allocation is handed
    // over whole, and the caller vouches that every element is initialised.
    Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity())
}

/// The contiguous f32 data behind a CPU storage.
pub(crate) fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = match s {
        CpuStorage::F32(d) => d,
        _ => bail!("{op}: expects f32"),
    };
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{op}: expects a contiguous input"),
    }
}

/// The ids in an integer CPU storage (u32, or i64 as PyTorch writes them).
pub(crate) fn indices(s: &CpuStorage, l: &Layout, op: &str) -> Result<Vec<usize>> {
    let Some((a, b)) = l.contiguous_offsets() else { bail!("{op}: expects contiguous ids") };
    Ok(match s {
        CpuStorage::U32(v) => v[a..b].iter().map(|&x| x as usize).collect(),
        // A negative id (PyTorch's -100 "ignore" label, say) is not a class:
        // refuse it rather than read it as 0.
        CpuStorage::I64(v) => v[a..b]
            .iter()
            .enumerate()
            .map(|(i, &x)| match usize::try_from(x) {
                Ok(x) => Ok(x),
                Err(_) => bail!("{op}: id {x} at position {i} is negative (mask such positions out instead)"),
            })
            .collect::<Result<_>>()?,
        _ => bail!("{op}: ids must be u32 or i64"),
    })
}

/// Runs `f` on the contiguous f32 data of `t` (copied first if strided).
pub(crate) fn with_f32<R>(t: &Tensor, op: &str, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => Ok(f(f32_slice(s, layout, op)?)),
        _ => bail!("{op}: only the CPU is supported"),
    }
}

#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// One attention row's softmax, in place: the visible scores `vis` ←
/// softmax(scale · vis) (scale > 0), the `hidden` ones ← 0. Compiled for
/// AVX-512 too and chosen at run time (1.4× faster for a Transformer
/// forecaster's attention, where it is a fifth of the step); the same
/// operations in the same order, so the two builds agree bit for bit.
#[inline]
pub(crate) fn softmax_row(vis: &mut [f32], hidden: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if cpu::avx512() {
        // SAFETY: the CPU has AVX-512F (checked just above).
        return unsafe { softmax_row_wide(vis, hidden, scale) };
    }
    softmax_row_body(vis, hidden, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn softmax_row_wide(vis: &mut [f32], hidden: &mut [f32], scale: f32) {
    softmax_row_body(vis, hidden, scale)
}

#[inline(always)]
fn softmax_row_body(vis: &mut [f32], hidden: &mut [f32], scale: f32) {
    let m = max(vis) * scale;
    vis.iter_mut().for_each(|v| *v = exp(*v * scale - m));
    let inv = 1.0 / sum(vis);
    vis.iter_mut().for_each(|v| *v *= inv);
    hidden.iter_mut().for_each(|v| *v = 0.0);
}

/// Σ a, eight lanes at a time so that the compiler vectorises it.
#[inline]
pub(crate) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = a.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for k in 0..8 {
            acc[k] += c[k];
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// max a (−∞ when empty), eight lanes at a time.
#[inline]
pub(crate) fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = a.chunks_exact(8);
    let rest = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for k in 0..8 {
            acc[k] = acc[k].max(c[k]);
        }
    }
    acc.iter().fold(rest, |m, &v| m.max(v))
}

/// Σ a·b, eight lanes at a time.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    acc.iter().sum::<f32>() + rest
}

/// Column sums of a (rows, cols) matrix, in fixed row blocks added in order.
pub(crate) fn column_sums(g: &[f32], cols: usize) -> Vec<f32> {
    let parts: Vec<Vec<f32>> = g
        .par_chunks(ROW_BLOCK * 4 * cols.max(1))
        .map(|block| {
            let mut acc = vec![0f32; cols];
            for row in block.chunks_exact(cols) {
                acc.iter_mut().zip(row).for_each(|(a, &x)| *a += x);
            }
            acc
        })
        .collect();
    add_parts(parts, cols)
}

/// Adds per-block partial sums in block order.
pub(crate) fn add_parts(parts: Vec<Vec<f32>>, n: usize) -> Vec<f32> {
    let mut out = vec![0f32; n];
    for p in parts {
        out.iter_mut().zip(&p).for_each(|(o, x)| *o += x);
    }
    out
}

/// A fast, vectorisable e^x for f32: range reduction by ln 2 and a
/// degree-7 Taylor polynomial (relative error below 4e-7); exactly 0 below
/// −87.3, where e^x leaves the normal f32 range, and +∞ above 88.7.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let xc = x.clamp(-87.3, 88.72);
    let xc = if xc.is_nan() { 0.0 } else { xc }; // NaN is handled at the end
                                                 // Round to nearest by adding and subtracting 1.5·2²³ (`f32::round` is a
                                                 // libm call on baseline x86-64; this stays in vector registers).
    const MAGIC: f32 = 12_582_912.0;
    let k = (xc * std::f32::consts::LOG2_E + MAGIC) - MAGIC;
    // r = x − k·ln2, with ln2 split in two for accuracy; |r| ≤ ln2/2.
    let r = xc - k * 0.693_145_75 - k * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // 2^k in two halves, so k = 128 (just below f32::MAX) stays finite.
    // SAFETY: k is an integer in [−126, 128] after the clamp, so the
    // conversion is exact (and, unlike `as`, compiles to one vector
    // instruction).
    let k: i32 = unsafe { k.to_int_unchecked() };
    let (k1, k2) = (k >> 1, k - (k >> 1));
    let v = p * f32::from_bits(((k1 + 127) as u32) << 23) * f32::from_bits(((k2 + 127) as u32) << 23);
    if x < -87.3 {
        0.0
    } else if x > 88.72 {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_exp_is_accurate() {
        let mut worst = 0f64;
        let mut x = -87f32;
        while x < 88.7 {
            let want = (x as f64).exp();
            let got = super::exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(super::exp(-200.0), 0.0);
        assert_eq!(super::exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(super::exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(super::exp(90.0), f32::INFINITY);
        assert!(super::exp(f32::NAN).is_nan());
    }
}
