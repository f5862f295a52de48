//! Fused softmax over the last dimension, with an optional scale and
//! causal mask: `softmax(scale · x)` where query row i of T (after `offset`
//! cached positions) sees only keys j ≤ offset + i. Masked entries are
//! exactly 0. Backward: dx = scale · y ⊙ (g − Σⱼ gⱼ yⱼ).

use super::{dot, exp, f32_slice, sum, with_f32, ROW_BLOCK};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

#[derive(Clone, Copy)]
struct SoftmaxOp {
    scale: f32,
    /// (T, offset): rows cycle through T queries; query i sees keys ≤ offset + i.
    causal: Option<(usize, usize)>,
}

impl SoftmaxOp {
    /// Keys row `r` may see.
    #[inline]
    fn visible(&self, r: usize, s: usize) -> usize {
        match self.causal {
            Some((t, offset)) => (offset + r % t + 1).min(s),
            None => s,
        }
    }
}

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "shiftlm-softmax"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout) -> Result<(CpuStorage, Shape)> {
        let _p = crate::profile::op("softmax.fwd", || (format!("{:?}", l1.dims()), None));
        let x = f32_slice(s1, l1, "softmax")?;
        let s = l1.dims().last().copied().unwrap_or(1).max(1);
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(ROW_BLOCK * s).zip(x.par_chunks(ROW_BLOCK * s)).enumerate().for_each(|(blk, (yb, xb))| {
            for (k, (yr, xr)) in yb.chunks_exact_mut(s).zip(xb.chunks_exact(s)).enumerate() {
                let n = self.visible(blk * ROW_BLOCK + k, s);
                let (yr, xr) = (&mut yr[..n], &xr[..n]);
                let m = super::max(xr) * self.scale; // scale > 0
                yr.iter_mut().zip(xr).for_each(|(o, &v)| *o = exp(v * self.scale - m));
                let inv = 1.0 / sum(yr);
                yr.iter_mut().for_each(|o| *o *= inv);
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let _p = crate::profile::op("softmax.bwd", || (format!("{:?}", _x.dims()), None));
        let s = y.dims().last().copied().unwrap_or(1).max(1);
        let dx = with_f32(y, "softmax", |y| {
            with_f32(g, "softmax", |g| {
                let mut dx = vec![0f32; y.len()];
                dx.par_chunks_mut(ROW_BLOCK * s)
                    .zip(y.par_chunks(ROW_BLOCK * s).zip(g.par_chunks(ROW_BLOCK * s)))
                    .enumerate()
                    .for_each(|(blk, (db, (yb, gb)))| {
                        for (k, ((dr, yr), gr)) in
                            db.chunks_exact_mut(s).zip(yb.chunks_exact(s)).zip(gb.chunks_exact(s)).enumerate()
                        {
                            let n = self.visible(blk * ROW_BLOCK + k, s);
                            let gy = dot(&gr[..n], &yr[..n]);
                            for i in 0..n {
                                dr[i] = self.scale * yr[i] * (gr[i] - gy);
                            }
                        }
                    });
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, y.shape(), y.device())?))
    }
}

/// Softmax over the last dimension.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxOp { scale: 1.0, causal: None })
}

/// `softmax(scale · x)` over the last dimension of attention scores `x`
/// (B, H, T, S): query i (of T, following `offset` cached positions) sees
/// keys j ≤ offset + i; the rest get exactly 0.
pub fn causal_softmax(x: &Tensor, scale: f64, offset: usize) -> Result<Tensor> {
    let t = x.dim(x.rank().saturating_sub(2))?;
    x.contiguous()?.apply_op1(SoftmaxOp { scale: scale as f32, causal: Some((t, offset)) })
}

/// Scaled softmax without a mask.
pub fn scaled_softmax(x: &Tensor, scale: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(SoftmaxOp { scale: scale as f32, causal: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn softmax_gradients_and_parity() {
        let inputs = [randn(1, &[2, 3, 5, 7])];
        check("softmax", |t| softmax(&t[0]), &inputs, &[0]);
        let composite = |t: &[Tensor]| crate::ops::reference::softmax_composite(&t[0]);
        parity("softmax", |t| softmax(&t[0]), composite, &inputs, &[0], 1e-6);
    }

    #[test]
    fn causal_softmax_gradients_and_parity() {
        for (t, offset) in [(5usize, 0usize), (3, 4)] {
            let s = t + offset;
            let inputs = [randn(2, &[2, 3, t, s])];
            let scale = 0.37;
            let f = |x: &[Tensor]| causal_softmax(&x[0], scale, offset);
            check("causal_softmax", f, &inputs, &[0]);
            let mask = crate::ops::reference::causal_mask(t, offset, &candle_core::Device::Cpu).unwrap();
            let composite =
                |x: &[Tensor]| crate::ops::reference::softmax_composite(&(&x[0] * scale)?.broadcast_add(&mask)?);
            parity("causal_softmax", f, composite, &inputs, &[0], 1e-6);
            let y = f(&inputs).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for (r, row) in y.chunks(s).enumerate() {
                assert!(row[offset + r % t + 1..].iter().all(|&v| v == 0.0), "row {r} sees the future");
            }
        }
    }
}
