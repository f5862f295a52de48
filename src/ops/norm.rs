//! Fused LayerNorm and RMSNorm over the last dimension. The backward pass
//! recomputes each row's mean and 1/σ from x instead of storing them.

use super::{add_parts, dot, f32_slice, sum, with_f32, ROW_BLOCK};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

/// (mean, 1/√(var + ε)) of one row.
#[inline]
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
    for c in chunks {
        for k in 0..8 {
            let d = c[k] - mean;
            acc[k] += d * d;
        }
    }
    let var = (acc.iter().sum::<f32>() + rest) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// 1/√(mean(x²) + ε) of one row.
#[inline]
fn rms(x: &[f32], eps: f32) -> f32 {
    1.0 / (dot(x, x) / x.len() as f32 + eps).sqrt()
}

struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "shiftlm-layer-norm"
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
        let _p = crate::profile::op("layer_norm.fwd", || (format!("{:?}", l1.dims()), None));
        let (x, w, b) =
            (f32_slice(s1, l1, "layer_norm")?, f32_slice(s2, l2, "layer_norm")?, f32_slice(s3, l3, "layer_norm")?);
        let c = w.len();
        if l1.dims().last() != Some(&c) || b.len() != c {
            bail!("layer_norm: input {:?}, weight ({c}) and bias ({}) do not fit", l1.dims(), b.len());
        }
        let mut y = super::output(x.len()); // written row by row
        y.par_chunks_mut(ROW_BLOCK * c).zip(x.par_chunks(ROW_BLOCK * c)).for_each(|(yb, xb)| {
            for (yr, xr) in yb.chunks_exact_mut(c).zip(xb.chunks_exact(c)) {
                let (mean, rstd) = moments(xr, self.eps);
                for i in 0..c {
                    yr[i].write((xr[i] - mean) * rstd * w[i] + b[i]);
                }
            }
        });
        // SAFETY: the shapes were checked, so every row was written.
        Ok((CpuStorage::F32(unsafe { super::init(y) }), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let _p = crate::profile::op("layer_norm.bwd", || (format!("{:?}", x.dims()), None));
        let c = w.elem_count();
        let wv = w.flatten_all()?.to_vec1::<f32>()?;
        let (dx, dw, db) = with_f32(x, "layer_norm", |x| {
            with_f32(g, "layer_norm", |g| {
                let mut dx = super::output(x.len()); // written row by row
                let parts: Vec<(Vec<f32>, Vec<f32>)> = dx
                    .par_chunks_mut(ROW_BLOCK * c)
                    .zip(x.par_chunks(ROW_BLOCK * c).zip(g.par_chunks(ROW_BLOCK * c)))
                    .map(|(dxb, (xb, gb))| {
                        let (mut dw, mut db) = (vec![0f32; c], vec![0f32; c]);
                        let mut xhat = vec![0f32; c];
                        let mut dxhat = vec![0f32; c];
                        for ((dxr, xr), gr) in dxb.chunks_exact_mut(c).zip(xb.chunks_exact(c)).zip(gb.chunks_exact(c)) {
                            let (mean, rstd) = moments(xr, self.eps);
                            for i in 0..c {
                                xhat[i] = (xr[i] - mean) * rstd;
                                dxhat[i] = gr[i] * wv[i];
                                dw[i] += gr[i] * xhat[i];
                                db[i] += gr[i];
                            }
                            let a = sum(&dxhat) / c as f32;
                            let bb = dot(&dxhat, &xhat) / c as f32;
                            for i in 0..c {
                                dxr[i].write(rstd * (dxhat[i] - a - xhat[i] * bb));
                            }
                        }
                        (dw, db)
                    })
                    .collect();
                let (dws, dbs): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
                // SAFETY: every row was written (the forward pass checked the shapes).
                (unsafe { super::init(dx) }, add_parts(dws, c), add_parts(dbs, c))
            })
        })??;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, w.shape(), dev)?),
            Some(Tensor::from_vec(db, w.shape(), dev)?),
        ))
    }
}

/// `(x − mean) / √(var + ε) · weight + bias` over the last dimension.
/// `x` (..., C), `weight` and `bias` (C).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&weight.contiguous()?, &bias.contiguous()?, LayerNormOp { eps: eps as f32 })
}

/// The composite-op LayerNorm that [`layer_norm`] replaces (the reference).
pub fn layer_norm_composite(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(weight)?.broadcast_add(bias)
}

struct RmsNormOp {
    eps: f32,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "shiftlm-rms-norm"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _p = crate::profile::op("rms_norm.fwd", || (format!("{:?}", l1.dims()), None));
        let (x, w) = (f32_slice(s1, l1, "rms_norm")?, f32_slice(s2, l2, "rms_norm")?);
        let c = w.len();
        if l1.dims().last() != Some(&c) {
            bail!("rms_norm: input {:?} does not fit the weight ({c})", l1.dims());
        }
        let mut y = super::output(x.len()); // written row by row
        y.par_chunks_mut(ROW_BLOCK * c).zip(x.par_chunks(ROW_BLOCK * c)).for_each(|(yb, xb)| {
            for (yr, xr) in yb.chunks_exact_mut(c).zip(xb.chunks_exact(c)) {
                let r = rms(xr, self.eps);
                for i in 0..c {
                    yr[i].write(xr[i] * r * w[i]);
                }
            }
        });
        // SAFETY: the shapes were checked, so every row was written.
        Ok((CpuStorage::F32(unsafe { super::init(y) }), l1.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _p = crate::profile::op("rms_norm.bwd", || (format!("{:?}", x.dims()), None));
        let c = w.elem_count();
        let wv = w.flatten_all()?.to_vec1::<f32>()?;
        let (dx, dw) = with_f32(x, "rms_norm", |x| {
            with_f32(g, "rms_norm", |g| {
                let mut dx = super::output(x.len()); // written row by row
                let parts: Vec<Vec<f32>> = dx
                    .par_chunks_mut(ROW_BLOCK * c)
                    .zip(x.par_chunks(ROW_BLOCK * c).zip(g.par_chunks(ROW_BLOCK * c)))
                    .map(|(dxb, (xb, gb))| {
                        let mut dw = vec![0f32; c];
                        let mut xhat = vec![0f32; c];
                        let mut dxhat = vec![0f32; c];
                        for ((dxr, xr), gr) in dxb.chunks_exact_mut(c).zip(xb.chunks_exact(c)).zip(gb.chunks_exact(c)) {
                            let r = rms(xr, self.eps);
                            for i in 0..c {
                                xhat[i] = xr[i] * r;
                                dxhat[i] = gr[i] * wv[i];
                                dw[i] += gr[i] * xhat[i];
                            }
                            let bb = dot(&dxhat, &xhat) / c as f32;
                            for i in 0..c {
                                dxr[i].write(r * (dxhat[i] - xhat[i] * bb));
                            }
                        }
                        dw
                    })
                    .collect();
                // SAFETY: every row was written (the forward pass checked the shapes).
                (unsafe { super::init(dx) }, add_parts(parts, c))
            })
        })??;
        let dev = x.device();
        Ok((Some(Tensor::from_vec(dx, x.shape(), dev)?), Some(Tensor::from_vec(dw, w.shape(), dev)?)))
    }
}

/// `x / √(mean(x²) + ε) · weight` over the last dimension.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&weight.contiguous()?, RmsNormOp { eps: eps as f32 })
}

/// The composite-op RMSNorm that [`rms_norm`] replaces (the reference).
pub fn rms_norm_composite(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(weight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    /// A weight that does not fit the last dimension used to leave rows of
    /// the output unwritten (uninitialised memory); now it is an error.
    #[test]
    fn a_weight_of_the_wrong_width_is_an_error() {
        let x = randn(1, &[4, 6]);
        let e = layer_norm(&x, &randn(2, &[4]), &randn(3, &[4]), 1e-5).unwrap_err().to_string();
        assert!(e.contains("layer_norm") && e.contains("do not fit"), "{e}");
        let e = layer_norm(&x, &randn(2, &[6]), &randn(3, &[5]), 1e-5).unwrap_err().to_string();
        assert!(e.contains("bias (5)"), "{e}");
        let e = rms_norm(&x, &randn(2, &[4]), 1e-5).unwrap_err().to_string();
        assert!(e.contains("rms_norm") && e.contains("does not fit"), "{e}");
    }

    #[test]
    fn layer_norm_gradients_and_parity() {
        let inputs = [randn(1, &[37, 24]), randn(2, &[24]), randn(3, &[24])];
        let f = |t: &[Tensor]| layer_norm(&t[0], &t[1], &t[2], 1e-5);
        check("layer_norm", f, &inputs, &[0, 1, 2]);
        let c = |t: &[Tensor]| layer_norm_composite(&t[0], &t[1], &t[2], 1e-5);
        parity("layer_norm", f, c, &inputs, &[0, 1, 2], 2e-5);
    }

    #[test]
    fn rms_norm_gradients_and_parity() {
        let inputs = [randn(4, &[3, 13, 20]), randn(5, &[20])];
        let f = |t: &[Tensor]| rms_norm(&t[0], &t[1], 1e-6);
        check("rms_norm", f, &inputs, &[0, 1]);
        let c = |t: &[Tensor]| rms_norm_composite(&t[0], &t[1], 1e-6);
        parity("rms_norm", f, c, &inputs, &[0, 1], 2e-5);
    }
}
