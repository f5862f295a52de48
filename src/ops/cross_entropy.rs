//! Fused cross-entropy: −log softmax(logits)\[label\] per row, one pass
//! forward (log-sum-exp) and one backward (softmax − one-hot). Which rows
//! count is the caller's mask (padding never counts; see `nn::loss`).
//!
//! With label smoothing ε (Szegedy et al. 2016) the target is (1 − ε) on
//! the label plus ε spread evenly over all V ids, so a row's loss is
//! (1 − ε)·(−log p_label) + ε·mean_j(−log p_j) = lse − (1 − ε)·x_label −
//! ε·mean(x), and its gradient softmax − (1 − ε)·one-hot − ε/V.

use super::{exp, f32_slice, with_f32, ROW_BLOCK};
use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

struct CrossEntropyOp {
    /// log Σ exp of every row, kept by the forward pass for the backward.
    lse: std::sync::Mutex<Vec<f32>>,
    /// Label smoothing ε in [0, 1).
    smoothing: f32,
}

/// log Σ exp(row).
#[inline]
pub(crate) fn log_sum_exp(row: &[f32]) -> f32 {
    let m = super::max(row);
    let mut acc = [0f32; 8];
    let chunks = row.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().map(|&v| exp(v - m)).sum();
    for c in chunks {
        for k in 0..8 {
            acc[k] += exp(c[k] - m);
        }
    }
    m + (acc.iter().sum::<f32>() + rest).ln()
}

impl CustomOp2 for CrossEntropyOp {
    fn name(&self) -> &'static str {
        "shiftlm-cross-entropy"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let _p = crate::profile::op("cross_entropy.fwd", || (format!("{:?}", l1.dims()), None));
        let x = f32_slice(s1, l1, "cross_entropy")?;
        let (n, v) = l1.shape().dims2()?;
        let y = super::indices(s2, l2, "cross_entropy")?;
        if y.len() != n {
            bail!("cross_entropy: {} labels for {n} rows", y.len());
        }
        if let Some((row, &bad)) = y.iter().enumerate().find(|(_, &l)| l >= v) {
            bail!("cross_entropy: label {bad} at row {row} is outside the vocabulary of {v}");
        }
        let eps = self.smoothing;
        let mut lse = vec![0f32; n];
        // ε · mean of each row (only computed when smoothing).
        let mut spread = vec![0f32; n];
        lse.par_chunks_mut(ROW_BLOCK).zip(spread.par_chunks_mut(ROW_BLOCK)).zip(x.par_chunks(ROW_BLOCK * v)).for_each(
            |((lb, sb), xb)| {
                for ((l, m), row) in lb.iter_mut().zip(sb.iter_mut()).zip(xb.chunks_exact(v)) {
                    *l = log_sum_exp(row);
                    if eps > 0.0 {
                        *m = eps * super::sum(row) / v as f32;
                    }
                }
            },
        );
        let out: Vec<f32> = (0..n).map(|r| lse[r] - (1.0 - eps) * x[r * v + y[r]] - spread[r]).collect();
        *self.lse.lock().expect("cross_entropy lse") = lse;
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let _p = crate::profile::op("cross_entropy.bwd", || (format!("{:?}", x.dims()), None));
        let (_n, v) = x.dims2()?;
        let y: Vec<usize> =
            y.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?.into_iter().map(|l| l as usize).collect();
        let g = g.to_vec1::<f32>()?;
        let guard = self.lse.lock().expect("cross_entropy lse");
        let lse: &[f32] = &guard;
        let eps = self.smoothing;
        let dx = with_f32(x, "cross_entropy", |x| {
            let mut dx = vec![0f32; x.len()];
            dx.par_chunks_mut(ROW_BLOCK * v).zip(x.par_chunks(ROW_BLOCK * v)).enumerate().for_each(
                |(blk, (db, xb))| {
                    for (k, (dr, row)) in db.chunks_exact_mut(v).zip(xb.chunks_exact(v)).enumerate() {
                        let r = blk * ROW_BLOCK + k;
                        let gr = g[r];
                        if gr == 0.0 {
                            continue; // a masked row: its gradient is exactly 0
                        }
                        let (l, even) = (lse[r], eps / v as f32);
                        for (d, &xv) in dr.iter_mut().zip(row) {
                            *d = gr * (exp(xv - l) - even);
                        }
                        dr[y[r]] -= gr * (1.0 - eps);
                    }
                },
            );
            dx
        })?;
        Ok((Some(Tensor::from_vec(dx, x.shape(), x.device())?), None))
    }
}

/// −log softmax(logits)\[label\] per row: `logits` (N, V) f32, `labels` (N)
/// u32 → (N).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    smoothed_cross_entropy(logits, labels, 0.0)
}

/// [`cross_entropy`] against targets smoothed by `eps` in [0, 1): (1 − ε)
/// on the label and ε/V on every id.
pub fn smoothed_cross_entropy(logits: &Tensor, labels: &Tensor, eps: f32) -> Result<Tensor> {
    if !(0.0..1.0).contains(&eps) {
        bail!("cross_entropy: label smoothing {eps} is not in [0, 1)");
    }
    logits.contiguous()?.apply_op2(&labels.contiguous()?, CrossEntropyOp { lse: Default::default(), smoothing: eps })
}

/// The composite version that [`cross_entropy`] replaces (the reference).
pub fn cross_entropy_composite(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    super::reference::log_softmax(logits)?.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg()
}

/// The composite version of [`smoothed_cross_entropy`] (the reference).
pub fn smoothed_cross_entropy_composite(logits: &Tensor, labels: &Tensor, eps: f32) -> Result<Tensor> {
    let logp = super::reference::log_softmax(logits)?;
    let nll = logp.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg()?;
    let uniform = logp.mean(1)?.neg()?;
    (nll * (1.0 - eps as f64))? + (uniform * eps as f64)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};

    #[test]
    fn cross_entropy_gradients_and_parity() {
        let labels =
            Tensor::new(&[3u32, 0, 6, 6, 1, 2, 5, 4, 0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3], &candle_core::Device::Cpu)
                .unwrap();
        let logits = (randn(1, &[19, 7]) * 3.0).unwrap();
        let inputs = [logits];
        let f = |t: &[Tensor]| cross_entropy(&t[0], &labels);
        check("cross_entropy", f, &inputs, &[0]);
        let c = |t: &[Tensor]| cross_entropy_composite(&t[0], &labels);
        parity("cross_entropy", f, c, &inputs, &[0], 2e-6);
    }

    #[test]
    fn smoothed_cross_entropy_gradients_and_parity() {
        let labels = Tensor::new(&[3u32, 0, 6, 6, 1, 2, 5, 4, 0, 1, 2], &candle_core::Device::Cpu).unwrap();
        let inputs = [(randn(2, &[11, 7]) * 3.0).unwrap()];
        let f = |t: &[Tensor]| smoothed_cross_entropy(&t[0], &labels, 0.1);
        check("smoothed cross_entropy", f, &inputs, &[0]);
        let c = |t: &[Tensor]| smoothed_cross_entropy_composite(&t[0], &labels, 0.1);
        parity("smoothed cross_entropy", f, c, &inputs, &[0], 2e-6);
        // ε = 0 is the plain loss, bit for bit.
        let plain = cross_entropy(&inputs[0], &labels).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(smoothed_cross_entropy(&inputs[0], &labels, 0.0).unwrap().to_vec1::<f32>().unwrap(), plain);
        assert!(smoothed_cross_entropy(&inputs[0], &labels, 1.0).is_err());
    }

    #[test]
    fn negative_labels_are_an_error_not_class_0() {
        let labels = Tensor::new(&[2i64, -100], &candle_core::Device::Cpu).unwrap();
        let err = cross_entropy(&randn(1, &[2, 7]), &labels).unwrap_err().to_string();
        assert!(err.contains("-100") && err.contains("negative"), "{err}");
    }

    #[test]
    fn labels_outside_the_vocabulary_are_an_error() {
        let labels = Tensor::new(&[7u32], &candle_core::Device::Cpu).unwrap();
        let err = cross_entropy(&randn(1, &[1, 7]), &labels).unwrap_err().to_string();
        assert!(err.contains("label 7"), "{err}");
    }
}
