//! The output head and the training loss in one op: for hidden states h
//! (N, C) and an output matrix W (V, C) (a tied embedding), the summed,
//! weighted cross-entropy Σᵢ mᵢ · CE(hᵢ Wᵀ, yᵢ), with label smoothing ε as
//! in [`super::cross_entropy`]. The weights mᵢ are the label mask (0 on
//! padding).
//!
//! The logits are written once, into the op's own buffer rather than a
//! tensor, and the backward pass turns them into their gradient in place
//! before the two products dh = D W and dW = Dᵀ h. Composed of a linear op
//! and a cross-entropy op, candle's autograd instead allocates the logits'
//! gradient, a zero tensor to accumulate it into and their sum: three more
//! N×V buffers a step (51 MB each for a Multi30k batch of 1,600 target
//! tokens and 8,000 ids), written and read in full.

use super::sgemm::matmul;
use super::{exp, f32_slice, with_f32, ROW_BLOCK};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;
use std::sync::Mutex;

/// Replaces each x of `row` by e^(x − m) and returns their sum (eight lanes
/// at a time, so that the compiler vectorises it).
fn exp_in_place(row: &mut [f32], m: f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for k in 0..8 {
            c[k] = exp(c[k] - m);
            acc[k] += c[k];
        }
    }
    let mut rest = 0.0;
    for x in chunks.into_remainder() {
        *x = exp(*x - m);
        rest += *x;
    }
    acc.iter().sum::<f32>() + rest
}

/// The forward pass's e^(logit − row max) (N×V) and each row's (log Σ exp, max).
type Saved = (Vec<f32>, Vec<(f32, f32)>);

struct HeadLossOp {
    labels: Vec<u32>,
    weights: Vec<f32>,
    eps: f32,
    /// What the forward pass keeps for the backward.
    saved: Mutex<Option<Saved>>,
}

impl HeadLossOp {
    fn dims(&self, lh: &Layout, lw: &Layout) -> Result<(usize, usize, usize)> {
        let (n, c) = lh.shape().dims2()?;
        let (v, cw) = lw.shape().dims2()?;
        if cw != c {
            bail!("head_loss: hidden states {:?} do not fit the output matrix {:?}", lh.dims(), lw.dims());
        }
        if self.labels.len() != n || self.weights.len() != n {
            bail!("head_loss: {} labels and {} weights for {n} rows", self.labels.len(), self.weights.len());
        }
        if let Some((row, &bad)) = self.labels.iter().enumerate().find(|(_, &l)| l as usize >= v) {
            bail!("head_loss: label {bad} at row {row} is outside the vocabulary of {v}");
        }
        Ok((n, c, v))
    }
}

impl HeadLossOp {
    /// The loss of logits h Wᵀ (+ b); keeps the logits for the backward pass.
    fn forward(
        &self,
        h: &[f32],
        lh: &Layout,
        w: &[f32],
        lw: &Layout,
        b: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, v) = self.dims(lh, lw)?;
        if b.is_some_and(|b| b.len() != v) {
            bail!("head_loss: a bias of {} for {v} ids", b.map_or(0, <[f32]>::len));
        }
        let _p = crate::profile::op("head_loss.fwd", || {
            (format!("{:?}·{:?}", lh.dims(), lw.dims()), Some(crate::profile::matmul_flops(n, v, c)))
        });
        let mut logits = super::output(n * v);
        // SAFETY: logits (n×v), h (n×c) and Wᵀ (the (c×v) view of W) are sized above.
        let mut logits = unsafe {
            matmul(
                n,
                v,
                c,
                logits.as_mut_ptr().cast(),
                (1, v as isize),
                false,
                h.as_ptr(),
                (1, c as isize),
                w.as_ptr(),
                (c as isize, 1),
            );
            super::init(logits) // the product wrote every element
        };
        let eps = self.eps;
        let mut lse = vec![(0f32, 0f32); n]; // (log Σ exp, max) of each row
        let mut loss = vec![0f32; n];
        lse.par_chunks_mut(ROW_BLOCK)
            .zip(loss.par_chunks_mut(ROW_BLOCK))
            .zip(logits.par_chunks_mut(ROW_BLOCK * v))
            .enumerate()
            .for_each(|(blk, ((lb, sb), xb))| {
                for (j, ((l, s), row)) in lb.iter_mut().zip(sb.iter_mut()).zip(xb.chunks_exact_mut(v)).enumerate() {
                    let i = blk * ROW_BLOCK + j;
                    if self.weights[i] == 0.0 {
                        continue;
                    }
                    if let Some(b) = b {
                        row.iter_mut().zip(b).for_each(|(x, bv)| *x += bv);
                    }
                    let mean = if eps > 0.0 { super::sum(row) / v as f32 } else { 0.0 };
                    let label = row[self.labels[i] as usize];
                    // The row becomes e^(x − max), which the backward pass
                    // scales into the softmax instead of exponentiating again.
                    let m = super::max(row);
                    *l = (m + exp_in_place(row, m).ln(), m);
                    *s = l.0 - (1.0 - eps) * label - eps * mean;
                }
            });
        // Summed in row order: the same total on any number of threads.
        let total: f64 = loss.iter().zip(&self.weights).map(|(&l, &m)| l as f64 * m as f64).sum();
        *self.saved.lock().expect("not poisoned") = Some((logits, lse));
        Ok((CpuStorage::F32(vec![total as f32]), Shape::from(())))
    }

    /// (dh, dW, db), each only where that input is tracked.
    fn backward(
        &self,
        h_t: &Tensor,
        w_t: &Tensor,
        b_t: Option<&Tensor>,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, v) = self.dims(h_t.layout(), w_t.layout())?;
        let _p = crate::profile::op("head_loss.bwd", || {
            let products = u64::from(h_t.track_op()) + u64::from(w_t.track_op());
            (format!("{:?}·{:?}", h_t.dims(), w_t.dims()), Some(products * crate::profile::matmul_flops(n, v, c)))
        });
        let Some((mut d, lse)) = self.saved.lock().expect("not poisoned").take() else {
            bail!("head_loss: the backward pass runs once, after the forward pass");
        };
        let g = g.to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1::<f32>()?[0];
        let (eps, uniform) = (self.eps, self.eps / v as f32);
        // D = g · m · (softmax − (1 − ε) one-hot − ε/V), in place of the logits.
        d.par_chunks_mut(ROW_BLOCK * v).enumerate().for_each(|(blk, db)| {
            for (j, row) in db.chunks_exact_mut(v).enumerate() {
                let i = blk * ROW_BLOCK + j;
                let scale = g * self.weights[i];
                if scale == 0.0 {
                    row.fill(0.0);
                    continue;
                }
                // The row holds e^(x − max) and lse = max + ln Σ: softmax = e · e^(max − lse).
                let (l, m) = lse[i];
                let to_p = scale * exp(m - l);
                row.iter_mut().for_each(|x| *x = to_p * *x - scale * uniform);
                row[self.labels[i] as usize] -= scale * (1.0 - eps);
            }
        });
        let dev = h_t.device();
        let (ci, vi) = (c as isize, v as isize);
        let dh = if h_t.track_op() {
            let dh = with_f32(w_t, "head_loss", |w| {
                let mut dh = super::output(n * c);
                // SAFETY: dh (n×c) = D (n×v) · W (v×c), sizes checked above.
                unsafe {
                    matmul(n, c, v, dh.as_mut_ptr().cast(), (1, ci), false, d.as_ptr(), (1, vi), w.as_ptr(), (1, ci));
                    super::init(dh)
                }
            })?;
            Some(Tensor::from_vec(dh, (n, c), dev)?)
        } else {
            None
        };
        let dw = if w_t.track_op() {
            let dw = with_f32(h_t, "head_loss", |h| {
                let mut dw = super::output(v * c);
                // SAFETY: dWᵀ (c×v) = hᵀ (the (c×n) view of h) · D (n×v), written
                // transposed into dW (v×c): the kernel packs the small hᵀ rather
                // than a transposed view of the large D.
                unsafe {
                    matmul(c, v, n, dw.as_mut_ptr().cast(), (ci, 1), false, h.as_ptr(), (ci, 1), d.as_ptr(), (1, vi));
                    super::init(dw)
                }
            })?;
            Some(Tensor::from_vec(dw, (v, c), dev)?)
        } else {
            None
        };
        let db = match b_t {
            Some(b) if b.track_op() => Some(Tensor::from_vec(super::column_sums(&d, v), v, dev)?),
            _ => None,
        };
        Ok((dh, dw, db))
    }
}

impl CustomOp2 for HeadLossOp {
    fn name(&self) -> &'static str {
        "shiftlm-head-loss"
    }

    fn cpu_fwd(&self, sh: &CpuStorage, lh: &Layout, sw: &CpuStorage, lw: &Layout) -> Result<(CpuStorage, Shape)> {
        self.forward(f32_slice(sh, lh, "head_loss")?, lh, f32_slice(sw, lw, "head_loss")?, lw, None)
    }

    fn bwd(&self, h: &Tensor, w: &Tensor, _res: &Tensor, g: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dh, dw, _) = self.backward(h, w, None, g)?;
        Ok((dh, dw))
    }
}

/// With a bias: logits h Wᵀ + b.
impl CustomOp3 for HeadLossOp {
    fn name(&self) -> &'static str {
        "shiftlm-head-loss-bias"
    }

    fn cpu_fwd(
        &self,
        sh: &CpuStorage,
        lh: &Layout,
        sw: &CpuStorage,
        lw: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let b = f32_slice(sb, lb, "head_loss")?;
        self.forward(f32_slice(sh, lh, "head_loss")?, lh, f32_slice(sw, lw, "head_loss")?, lw, Some(b))
    }

    fn bwd(
        &self,
        h: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        self.backward(h, w, Some(b), g)
    }
}

/// Σᵢ mᵢ · CE(hᵢ Wᵀ + b, yᵢ) with label smoothing `eps`: `h` (N, C), `w`
/// (V, C), `b` (V) or none, `labels` (N) u32, `weights` (N) f32 (the label
/// mask) → a scalar. The same as the summed
/// [`super::cross_entropy::smoothed_cross_entropy`] of the logits, times
/// `weights`, without a logits tensor.
pub fn head_loss(
    h: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    labels: &Tensor,
    weights: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    if !(0.0..1.0).contains(&eps) {
        bail!("head_loss: label smoothing {eps} is not in [0, 1)");
    }
    let labels: Vec<u32> = labels.flatten_all()?.to_dtype(candle_core::DType::U32)?.to_vec1()?;
    let weights: Vec<f32> = weights.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
    let n = h.dims().first().copied().unwrap_or(0);
    if labels.len() != n || weights.len() != n {
        bail!("head_loss: {} labels and {} weights for {n} rows", labels.len(), weights.len());
    }
    // Rows of weight 0 (padding) cost the head's products and count for
    // nothing: only the others go in (a third of a Multi30k batch of 64
    // sentences is padding).
    let keep: Vec<u32> = (0..weights.len() as u32).filter(|&i| weights.get(i as usize) != Some(&0.0)).collect();
    let (h, labels, weights) = if keep.len() < weights.len() && !keep.is_empty() {
        let rows = Tensor::from_vec(keep.clone(), keep.len(), h.device())?;
        let pick = |v: &[u32]| keep.iter().map(|&i| v[i as usize]).collect::<Vec<_>>();
        let w: Vec<f32> = keep.iter().map(|&i| weights[i as usize]).collect();
        (h.index_select(&rows, 0)?, pick(&labels), w)
    } else {
        (h.clone(), labels, weights)
    };
    let op = HeadLossOp { labels, weights, eps, saved: Mutex::new(None) };
    match b {
        Some(b) => h.contiguous()?.apply_op3(&w.contiguous()?, &b.contiguous()?, op),
        None => h.contiguous()?.apply_op2(&w.contiguous()?, op),
    }
}

/// The composite it replaces: the linear head, then the masked cross-entropy.
pub fn head_loss_composite(
    h: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    labels: &Tensor,
    weights: &Tensor,
    eps: f32,
) -> Result<Tensor> {
    let mut logits = h.matmul(&w.t()?)?;
    if let Some(b) = b {
        logits = logits.broadcast_add(b)?;
    }
    super::cross_entropy::smoothed_cross_entropy_composite(&logits, labels, eps)?.mul(weights)?.sum_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gradcheck::{check, parity, randn};
    use candle_core::Device;

    #[test]
    fn head_loss_gradients_and_parity() {
        let dev = Device::Cpu;
        let labels = Tensor::new(&[3u32, 0, 6, 6, 1, 2, 5, 4, 0], &dev).unwrap();
        let weights = Tensor::new(&[1f32, 1., 0., 1., 1., 0., 1., 1., 1.], &dev).unwrap();
        let inputs = [randn(1, &[9, 5]), randn(2, &[7, 5]), randn(3, &[7])];
        for eps in [0.0, 0.1] {
            let f = |t: &[Tensor]| head_loss(&t[0], &t[1], None, &labels, &weights, eps);
            check("head_loss", f, &inputs[..2], &[0, 1]);
            let c = |t: &[Tensor]| head_loss_composite(&t[0], &t[1], None, &labels, &weights, eps);
            parity("head_loss", f, c, &inputs[..2], &[0, 1], 5e-6);
            let f = |t: &[Tensor]| head_loss(&t[0], &t[1], Some(&t[2]), &labels, &weights, eps);
            check("head_loss with a bias", f, &inputs, &[0, 1, 2]);
            let c = |t: &[Tensor]| head_loss_composite(&t[0], &t[1], Some(&t[2]), &labels, &weights, eps);
            parity("head_loss with a bias", f, c, &inputs, &[0, 1, 2], 5e-6);
        }
        // More rows than a row block, and a frozen output matrix: no dW.
        let (n, v) = (ROW_BLOCK + 5, 11);
        let labels = Tensor::from_vec((0..n as u32).map(|i| i % v as u32).collect(), n, &dev).unwrap();
        let weights = Tensor::from_vec((0..n).map(|i| (i % 3 != 0) as u32 as f32).collect(), n, &dev).unwrap();
        let inputs = [randn(3, &[n, 4]), randn(4, &[v, 4])];
        let f = |t: &[Tensor]| head_loss(&t[0], &t[1], None, &labels, &weights, 0.1);
        let c = |t: &[Tensor]| head_loss_composite(&t[0], &t[1], None, &labels, &weights, 0.1);
        parity("head_loss, many rows", f, c, &inputs, &[0, 1], 5e-6);
        let h = candle_core::Var::from_tensor(&inputs[0]).unwrap();
        let grads = head_loss(h.as_tensor(), &inputs[1], None, &labels, &weights, 0.0).unwrap().backward().unwrap();
        assert!(grads.get(&inputs[1]).is_none() && grads.get(h.as_tensor()).is_some());
    }

    #[test]
    fn labels_outside_the_vocabulary_and_bad_smoothing_are_errors() {
        let dev = Device::Cpu;
        let (h, w) = (randn(1, &[2, 3]), randn(2, &[4, 3]));
        let ones = Tensor::ones(2, candle_core::DType::F32, &dev).unwrap();
        let err = head_loss(&h, &w, None, &Tensor::new(&[1u32, 4], &dev).unwrap(), &ones, 0.0).unwrap_err().to_string();
        assert!(err.contains("label 4"), "{err}");
        assert!(head_loss(&h, &w, None, &Tensor::new(&[1u32, 2], &dev).unwrap(), &ones, 1.0).is_err());
        let short = randn(5, &[3]);
        let err = head_loss(&h, &w, Some(&short), &Tensor::new(&[1u32, 2], &dev).unwrap(), &ones, 0.0).unwrap_err();
        assert!(err.to_string().contains("bias"), "{err}");
    }
}
