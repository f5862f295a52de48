//! Fused GELU, exact (erf) or with the tanh approximation, one pass forward
//! and one backward. The exact form uses an erf accurate to 1.5e-7
//! (Abramowitz & Stegun 7.1.26), vectorisable unlike libm's.

use super::{exp, f32_slice, with_f32, ELEM_BLOCK};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// erf(x), absolute error ≤ 1.5e-7.
#[cfg(test)]
fn erf(x: f32) -> f32 {
    erf_with(x, exp(-x * x))
}

/// erf(x) given e = exp(−x²), which GELU's derivative needs as well.
#[inline(always)]
fn erf_with(x: f32, e: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    (1.0 - poly * e).copysign(x)
}

/// tanh(u) = 1 − 2 / (e^{2u} + 1).
#[inline(always)]
fn tanh(u: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * u) + 1.0)
}

#[derive(Clone, Copy)]
struct GeluOp {
    /// The tanh approximation (GPT-2's `gelu_new`) instead of erf.
    tanh: bool,
}

impl GeluOp {
    #[inline(always)]
    fn value<const TANH: bool>(x: f32) -> f32 {
        if TANH {
            0.5 * x * (1.0 + tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
        } else {
            0.5 * x * (1.0 + erf_with(x * FRAC_1_SQRT_2, exp(-0.5 * x * x)))
        }
    }

    #[inline(always)]
    fn derivative<const TANH: bool>(x: f32) -> f32 {
        if TANH {
            let t = tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x));
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x)
        } else {
            let e = exp(-0.5 * x * x); // e^{−x²/2}: both erf(x/√2) and φ(x) need it
            0.5 * (1.0 + erf_with(x * FRAC_1_SQRT_2, e)) + x * FRAC_1_SQRT_2PI * e
        }
    }
}

impl CustomOp1 for GeluOp {
    fn name(&self) -> &'static str {
        "shiftlm-gelu"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        let _p = crate::profile::op("gelu.fwd", || (format!("{:?}", l1.dims()), None));
        let x = f32_slice(s1, l1, "gelu")?;
        let mut y = super::output(x.len()); // written element by element
        let tanh = self.tanh;
        y.par_chunks_mut(ELEM_BLOCK).zip(x.par_chunks(ELEM_BLOCK)).for_each(|(yb, xb)| {
            #[cfg(target_arch = "x86_64")]
            if super::cpu::avx512() {
                // SAFETY: the CPU has AVX-512F.
                return unsafe { wide::forward(tanh, yb, xb) };
            }
            forward_block(tanh, yb, xb)
        });
        // SAFETY: every element was written above.
        Ok((CpuStorage::F32(unsafe { super::init(y) }), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let _p = crate::profile::op("gelu.bwd", || (format!("{:?}", x.dims()), None));
        let tanh = self.tanh;
        let dx = with_f32(x, "gelu", |x| {
            with_f32(g, "gelu", |g| {
                let mut dx = super::output(x.len()); // written element by element
                dx.par_chunks_mut(ELEM_BLOCK).zip(x.par_chunks(ELEM_BLOCK).zip(g.par_chunks(ELEM_BLOCK))).for_each(
                    |(db, (xb, gb))| {
                        #[cfg(target_arch = "x86_64")]
                        if super::cpu::avx512() {
                            // SAFETY: the CPU has AVX-512F.
                            return unsafe { wide::backward(tanh, db, xb, gb) };
                        }
                        backward_block(tanh, db, xb, gb)
                    },
                );
                // SAFETY: every element was written above.
                unsafe { super::init(dx) }
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// GELU of a block: `y = gelu(x)`. One loop per form, so that each is a
/// branch-free vector loop.
#[inline(always)]
fn forward_block(tanh: bool, y: &mut [super::Uninit], x: &[f32]) {
    if tanh {
        y.iter_mut().zip(x).for_each(|(o, &v)| _ = o.write(GeluOp::value::<true>(v)));
    } else {
        y.iter_mut().zip(x).for_each(|(o, &v)| _ = o.write(GeluOp::value::<false>(v)));
    }
}

/// The backward pass of a block: `dx = g · gelu'(x)`.
#[inline(always)]
fn backward_block(tanh: bool, dx: &mut [super::Uninit], x: &[f32], g: &[f32]) {
    let it = dx.iter_mut().zip(x).zip(g);
    if tanh {
        it.for_each(|((d, &v), &gv)| _ = d.write(gv * GeluOp::derivative::<true>(v)));
    } else {
        it.for_each(|((d, &v), &gv)| _ = d.write(gv * GeluOp::derivative::<false>(v)));
    }
}

/// The blocks compiled for AVX-512 (16 lanes instead of AVX2's 8), chosen
/// at run time; the same operations in the same order, so bit-identical.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::super::Uninit;

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward(tanh: bool, y: &mut [Uninit], x: &[f32]) {
        super::forward_block(tanh, y, x)
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward(tanh: bool, dx: &mut [Uninit], x: &[f32], g: &[f32]) {
        super::backward_block(tanh, dx, x, g)
    }
}

/// GELU with the tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluOp { tanh: true })
}

/// Exact GELU, `x Φ(x)` (PyTorch's `nn.GELU()`).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(GeluOp { tanh: false })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn erf_is_accurate() {
        for i in -600..600 {
            let x = i as f32 / 100.0;
            let want = candle_core::cpu::erf::erf_f64(x as f64);
            assert!((erf(x) as f64 - want).abs() < 5e-7, "erf({x}) = {} vs {want}", erf(x));
        }
    }

    #[test]
    fn gelu_gradients_and_parity() {
        let inputs = [(randn(1, &[5, 9]) * 2.0).unwrap()];
        check("gelu_tanh", |t| gelu_tanh(&t[0]), &inputs, &[0]);
        check("gelu_erf", |t| gelu_erf(&t[0]), &inputs, &[0]);
        parity("gelu_tanh", |t| gelu_tanh(&t[0]), |t| t[0].gelu(), &inputs, &[0], 1e-6);
        parity("gelu_erf", |t| gelu_erf(&t[0]), |t| t[0].gelu_erf(), &inputs, &[0], 1e-6);
    }
}
