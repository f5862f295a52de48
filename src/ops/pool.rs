//! 2×2 max pooling (stride 2) in one pass forward and one backward, the
//! gradient going to the first maximum of each window in row-major order
//! (PyTorch's choice). The composite version below gathers the windows
//! into a new dimension and builds a one-hot mask: five tensors the size
//! of the input, where this op reads it once.

use super::{f32_slice, with_f32};
use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

struct MaxPool2x2;

/// (planes B·C, H, W) of an input with even sides.
fn planes(dims: &[usize]) -> Result<(usize, usize, usize)> {
    let &[b, c, h, w] = dims else { bail!("max_pool_2x2: expects (B, C, H, W), got {dims:?}") };
    if h % 2 != 0 || w % 2 != 0 {
        bail!("max_pool_2x2: {h}×{w} has an odd side")
    }
    Ok((b * c, h, w))
}

/// Offset within a plane of window (oy, ox)'s first maximum, and its value.
#[inline]
fn window_max(p: &[f32], w: usize, oy: usize, ox: usize) -> (usize, f32) {
    let i = 2 * oy * w + 2 * ox;
    let mut best = (i, p[i]);
    for j in [i + 1, i + w, i + w + 1] {
        if p[j] > best.1 {
            best = (j, p[j]);
        }
    }
    best
}

impl CustomOp1 for MaxPool2x2 {
    fn name(&self) -> &'static str {
        "shiftlm-max-pool-2x2"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, h, w) = planes(l.dims())?;
        let x = f32_slice(s, l, "max_pool_2x2")?;
        let (ho, wo) = (h / 2, w / 2);
        let _p = crate::profile::op("max_pool_2x2.fwd", || (format!("{:?}", l.dims()), None));
        let mut y = vec![0f32; n * ho * wo];
        y.par_chunks_mut((ho * wo).max(1)).zip(x.par_chunks((h * w).max(1))).for_each(|(yp, xp)| {
            for oy in 0..ho {
                for ox in 0..wo {
                    yp[oy * wo + ox] = window_max(xp, w, oy, ox).1;
                }
            }
        });
        let d = l.dims();
        Ok((CpuStorage::F32(y), Shape::from((d[0], d[1], ho, wo))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (n, h, w) = planes(x.dims())?;
        let (ho, wo) = (h / 2, w / 2);
        let _p = crate::profile::op("max_pool_2x2.bwd", || (format!("{:?}", x.dims()), None));
        let dx = with_f32(x, "max_pool_2x2", |xs| {
            with_f32(g, "max_pool_2x2", |gs| {
                // Every element is written once, in parallel (no zeroing pass first).
                let mut dx = super::output(n * h * w);
                dx.par_chunks_mut((h * w).max(1)).enumerate().for_each(|(i, dp)| {
                    let (xp, gp) = (&xs[i * h * w..(i + 1) * h * w], &gs[i * ho * wo..(i + 1) * ho * wo]);
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let at = window_max(xp, w, oy, ox).0;
                            let i0 = 2 * oy * w + 2 * ox;
                            for j in [i0, i0 + 1, i0 + w, i0 + w + 1] {
                                dp[j].write(if j == at { gp[oy * wo + ox] } else { 0.0 });
                            }
                        }
                    }
                });
                // SAFETY: the windows tile each plane (even sides), so every element was written.
                unsafe { super::init(dx) }
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// (B, C, H, W) with even H and W → (B, C, H/2, W/2), the maximum of each
/// 2×2 window; the gradient goes to its first maximum.
pub fn max_pool_2x2(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool2x2)
}

/// The composite version (the reference): the windows gathered into a last
/// dimension of 4 and a one-hot mask of each window's first maximum.
pub fn max_pool_2x2_composite(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("max_pool_2x2: {h}×{w} has an odd side")
    }
    let win = x
        .reshape((b, c, h / 2, 2, w / 2, 2))? // (B, C, H/2, 2, W/2, 2)
        .permute((0, 1, 2, 4, 3, 5))? // (B, C, H/2, W/2, 2, 2)
        .reshape((b, c, h / 2, w / 2, 4))?; // (B, C, H/2, W/2, 4), row-major windows
                                            // One-hot at the first maximum of each window (constants for autograd).
    let flat = win.detach();
    let is_max = flat.broadcast_eq(&flat.max_keepdim(D::Minus1)?)?.to_dtype(x.dtype())?;
    let first = (is_max.cumsum(D::Minus1)?.eq(1.0)?.to_dtype(x.dtype())? * &is_max)?;
    win.mul(&first)?.sum(D::Minus1) // (B, C, H/2, W/2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn gradients_match_finite_differences_and_the_composite() {
        check("max_pool_2x2", |t| max_pool_2x2(&t[0]), &[randn(1, &[2, 3, 4, 6])], &[0]);
        let tied = Tensor::new(&[[[[2f32, 2.0, 0.0, 0.0], [1.0, 2.0, 0.0, 0.0]]]], &candle_core::Device::Cpu).unwrap();
        for x in [randn(2, &[3, 2, 6, 8]), tied] {
            parity("max_pool_2x2", |t| max_pool_2x2(&t[0]), |t| max_pool_2x2_composite(&t[0]), &[x], &[0], 0.0);
        }
        assert!(max_pool_2x2(&randn(3, &[1, 1, 3, 4])).is_err());
    }
}
