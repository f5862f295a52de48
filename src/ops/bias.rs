//! `x + bias` broadcast over rows. The backward pass is where stock candle
//! is slow: it sums the gradient over the broadcast dimensions with a
//! divide per element. Here it is a blocked column sum.

use super::{column_sums, f32_slice, with_f32, ELEM_BLOCK};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct BiasAddOp;

impl CustomOp2 for BiasAddOp {
    fn name(&self) -> &'static str {
        "shiftlm-bias-add"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (f32_slice(s1, l1, "bias_add")?, f32_slice(s2, l2, "bias_add")?);
        let c = b.len();
        if l1.dims().last() != Some(&c) {
            bail!("bias_add: bias of {c} for input {:?}", l1.dims());
        }
        let mut y = super::output(x.len()); // written row by row
        let block = (ELEM_BLOCK / c).max(1) * c;
        y.par_chunks_mut(block).zip(x.par_chunks(block)).for_each(|(yb, xb)| {
            for (yr, xr) in yb.chunks_exact_mut(c).zip(xb.chunks_exact(c)) {
                for i in 0..c {
                    yr[i] = xr[i] + b[i];
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, b: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let c = b.elem_count();
        let db = with_f32(g, "bias_add", |g| column_sums(g, c))?;
        Ok((Some(g.clone()), Some(Tensor::from_vec(db, b.shape(), b.device())?)))
    }
}

/// `x + bias`: `x` (..., C), `bias` (C).
pub fn bias_add(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&bias.contiguous()?, BiasAddOp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn bias_add_gradients_and_parity() {
        let inputs = [randn(1, &[3, 50, 6]), randn(2, &[6])];
        let f = |t: &[Tensor]| bias_add(&t[0], &t[1]);
        check("bias_add", f, &inputs, &[0, 1]);
        parity("bias_add", f, |t| t[0].broadcast_add(&t[1]), &inputs, &[0, 1], 1e-6);
    }
}
