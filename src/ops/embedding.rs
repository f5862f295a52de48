//! Fused embedding lookup: rows of a (V, C) table by id. The backward pass
//! adds each position's gradient into its id's row of a fresh (V, C)
//! gradient, in position order (candle instead zero-fills, copies the whole
//! table and adds). Columns are split across threads, so every row's sum is
//! taken in the same order on any number of threads.

use super::{f32_slice, with_f32, ELEM_BLOCK};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct EmbeddingOp;

impl CustomOp2 for EmbeddingOp {
    fn name(&self) -> &'static str {
        "shiftlm-embedding"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _p = crate::profile::op("embedding.fwd", || (format!("{:?}", l1.dims()), None));
        let w = f32_slice(s1, l1, "embedding")?;
        let (v, c) = l1.shape().dims2()?;
        let ids = super::indices(s2, l2, "embedding")?;
        if let Some((pos, &bad)) = ids.iter().enumerate().find(|(_, &i)| i >= v) {
            bail!("embedding: id {bad} at position {pos} is outside the vocabulary of {v}");
        }
        let mut y = super::output(ids.len() * c); // every row is copied
        let rows = (ELEM_BLOCK / c.max(1)).max(1);
        y.par_chunks_mut(rows * c).enumerate().for_each(|(blk, yb)| {
            for (k, row) in yb.chunks_exact_mut(c).enumerate() {
                let id = ids[blk * rows + k];
                row.iter_mut().zip(&w[id * c..(id + 1) * c]).for_each(|(o, &v)| _ = o.write(v));
            }
        });
        let mut dims = l2.dims().to_vec();
        dims.push(c);
        // SAFETY: every row was copied above.
        Ok((CpuStorage::F32(unsafe { super::init(y) }), Shape::from(dims)))
    }

    fn bwd(&self, w: &Tensor, ids_t: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _p = crate::profile::op("embedding.bwd", || (format!("{:?}", w.dims()), None));
        if !w.track_op() {
            return Ok((None, None)); // a frozen table
        }
        let (v, c) = w.dims2()?;
        let ids: Vec<usize> = ids_t
            .flatten_all()?
            .to_dtype(candle_core::DType::U32)?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|i| i as usize)
            .collect();
        let dw = with_f32(g, "embedding", |g| {
            // Column blocks in parallel; within a block, positions in order.
            const COLS: usize = 64;
            let blocks: Vec<(usize, Vec<f32>)> = (0..c.div_ceil(COLS))
                .into_par_iter()
                .map(|cb| {
                    let (c0, c1) = (cb * COLS, ((cb + 1) * COLS).min(c));
                    let wdt = c1 - c0;
                    let mut acc = vec![0f32; v * wdt];
                    for (pos, &id) in ids.iter().enumerate() {
                        let src = &g[pos * c + c0..pos * c + c1];
                        acc[id * wdt..(id + 1) * wdt].iter_mut().zip(src).for_each(|(a, x)| *a += x);
                    }
                    (c0, acc)
                })
                .collect();
            let mut dw = vec![0f32; v * c];
            for (c0, acc) in blocks {
                let wdt = acc.len() / v.max(1);
                for r in 0..v {
                    dw[r * c + c0..r * c + c0 + wdt].copy_from_slice(&acc[r * wdt..(r + 1) * wdt]);
                }
            }
            dw
        })?;
        Ok((Some(Tensor::from_vec(dw, (v, c), w.device())?), None))
    }
}

/// Rows of `weight` (V, C) for `ids` (any shape, u32) → (ids..., C).
pub fn embedding(weight: &Tensor, ids: &Tensor) -> Result<Tensor> {
    weight.contiguous()?.apply_op2(&ids.contiguous()?, EmbeddingOp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn embedding_gradients_and_parity() {
        let ids = Tensor::new(&[[3u32, 0, 6, 6], [1, 2, 5, 3]], &candle_core::Device::Cpu).unwrap();
        let inputs = [randn(1, &[7, 70])];
        let f = |t: &[Tensor]| embedding(&t[0], &ids);
        check("embedding", f, &inputs, &[0]);
        let c = |t: &[Tensor]| t[0].index_select(&ids.flatten_all()?, 0)?.reshape((2, 4, 70));
        parity("embedding", f, c, &inputs, &[0], 1e-6);
        let bad = Tensor::new(&[7u32], &candle_core::Device::Cpu).unwrap();
        assert!(embedding(&inputs[0], &bad).unwrap_err().to_string().contains("id 7"));
    }
}
