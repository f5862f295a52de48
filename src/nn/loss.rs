//! Cross-entropy over supervised positions only. Padding never counts: the
//! mask comes from the shift core. The sum is returned, not the mean, so
//! that gradient accumulation can divide by the token count of all
//! micro-batches together.

use candle_core::{Result, Tensor};

/// Σ over supervised positions of −log p(label). `logits` (N, V), `labels`
/// (N) u32, `mask` (N) f32 (1 supervised, 0 ignored). Returns a scalar.
pub fn masked_cross_entropy_sum(logits: &Tensor, labels: &Tensor, mask: &Tensor) -> Result<Tensor> {
    crate::ops::cross_entropy::cross_entropy(logits, labels)?.mul(mask)?.sum_all()
    // (N) → ()
}

/// [`masked_cross_entropy_sum`] over a whole batch of sequences: `logits`
/// (B, T, V), `labels` (B, T), `mask` (B, T) or `None` when every position
/// is supervised (language-model windows).
pub fn sequence_loss_sum(logits: &Tensor, labels: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    smoothed_sequence_loss_sum(logits, labels, mask, 0.0)
}

/// [`sequence_loss_sum`] with label smoothing `eps` (0: none), for training.
pub fn smoothed_sequence_loss_sum(logits: &Tensor, labels: &Tensor, mask: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    let _loss = crate::profile::phase("loss");
    let (b, t, v) = logits.dims3()?;
    let (logits, labels) = (logits.reshape((b * t, v))?, labels.flatten_all()?);
    let per_row = crate::ops::cross_entropy::smoothed_cross_entropy(&logits, &labels, eps)?;
    match mask {
        Some(m) => per_row.mul(&m.flatten_all()?)?.sum_all(),
        None => per_row.sum_all(),
    }
}

/// The loss a forecaster is trained with, on scaled values.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegressionLoss {
    /// Squared error (the default).
    #[default]
    Mse,
    /// Absolute error.
    Mae,
    /// Squared below `delta`, linear above (PyTorch's `HuberLoss`).
    Huber {
        /// Where the loss turns from squared to linear, in scaled units, e.g. 1.0.
        delta: f32,
    },
}

/// Σ of the element-wise loss between `pred` and `target` (same shape).
/// Returns a scalar; divide by the element count for PyTorch's mean.
pub fn regression_loss_sum(pred: &Tensor, target: &Tensor, kind: RegressionLoss) -> Result<Tensor> {
    let _loss = crate::profile::phase("loss");
    let e = (pred - target)?;
    match kind {
        RegressionLoss::Mse => e.sqr()?.sum_all(),
        RegressionLoss::Mae => e.abs()?.sum_all(),
        RegressionLoss::Huber { delta } => {
            // 0.5 q² + δ (|e| − q) with q = min(|e|, δ): both pieces of
            // Huber's loss in one differentiable expression.
            let a = e.abs()?;
            let q = a.minimum(delta as f64)?;
            ((q.sqr()? * 0.5)? + ((a - &q)? * delta as f64)?)?.sum_all()
        }
    }
}

/// Σ of the pinball (quantile) loss of `pred` (…, Q), one value per level
/// in `levels`, against `target` (…): for error e = y − ŷ_q at level q,
/// max(q·e, (q − 1)·e). Its minimiser is the q-quantile of the target.
pub fn pinball_loss_sum(pred: &Tensor, target: &Tensor, levels: &[f32]) -> Result<Tensor> {
    let _loss = crate::profile::phase("loss");
    let q = Tensor::new(levels, pred.device())?.to_dtype(pred.dtype())?; // (Q)
    let e = target.unsqueeze(target.rank())?.broadcast_sub(pred)?; // (…, Q)
    let over = e.broadcast_mul(&q)?;
    let under = e.broadcast_mul(&(q - 1.0)?)?;
    over.maximum(&under)?.sum_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn regression_losses_match_hand_values_and_finite_differences() {
        let dev = Device::Cpu;
        let p = Tensor::new(&[0.5f32, -2.0, 3.0], &dev).unwrap();
        let y = Tensor::new(&[0f32, 0.0, 3.5], &dev).unwrap();
        let v = |k| regression_loss_sum(&p, &y, k).unwrap().to_scalar::<f32>().unwrap();
        assert!((v(RegressionLoss::Mse) - (0.25 + 4.0 + 0.25)).abs() < 1e-6);
        assert!((v(RegressionLoss::Mae) - 3.0).abs() < 1e-6);
        // δ = 1: 0.5·0.25, 1·(2 − 0.5), 0.5·0.25
        assert!((v(RegressionLoss::Huber { delta: 1.0 }) - (0.125 + 1.5 + 0.125)).abs() < 1e-6);
        for k in [RegressionLoss::Mse, RegressionLoss::Mae, RegressionLoss::Huber { delta: 0.7 }] {
            let y = Tensor::new(&[[0.3f32, -0.2, 0.9, 1.4, -1.1]; 3], &dev).unwrap();
            let f = |xs: &[Tensor]| regression_loss_sum(&xs[0], &y, k);
            crate::ops::gradcheck::check("regression loss", f, &[crate::ops::gradcheck::randn(5, &[3, 5])], &[0]);
        }
    }

    #[test]
    fn pinball_loss_matches_hand_values_and_finite_differences() {
        let dev = Device::Cpu;
        // y = 1; predictions 0 (under by 1) and 3 (over by 2) at q = 0.1 and 0.9.
        let p = Tensor::new(&[[0f32, 3.0], [3.0, 0.0]], &dev).unwrap(); // (2 values, Q = 2)
        let y = Tensor::new(&[1f32, 1.0], &dev).unwrap();
        let v = pinball_loss_sum(&p, &y, &[0.1, 0.9]).unwrap().to_scalar::<f32>().unwrap();
        // 0.1·1 + 0.1·2 (q = 0.9 over by 2: (1 − 0.9)·2) + 0.9·2 (q = 0.1 over by 2) + 0.9·1.
        let want = 0.1 * 1.0 + (1.0 - 0.9) * 2.0 + (1.0 - 0.1) * 2.0 + 0.9 * 1.0;
        assert!((v - want).abs() < 1e-6, "{v} vs {want}");
        let y = Tensor::new(&[[0.3f32, -0.2, 0.9, 1.4]; 3], &dev).unwrap();
        let f = |xs: &[Tensor]| pinball_loss_sum(&xs[0], &y, &[0.1, 0.5, 0.9]);
        // (A seed whose values all sit more than the step 0.01 from a kink.)
        crate::ops::gradcheck::check("pinball loss", f, &[crate::ops::gradcheck::randn(11, &[3, 4, 3])], &[0]);
    }

    #[test]
    fn ignores_masked_positions() {
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[0f32, 0.], [5., -5.], [1., 2.]], &dev).unwrap();
        let labels = Tensor::new(&[0u32, 1, 1], &dev).unwrap();
        let mask = Tensor::new(&[1f32, 0., 1.], &dev).unwrap();
        let l = masked_cross_entropy_sum(&logits, &labels, &mask).unwrap().to_scalar::<f32>().unwrap();
        let expected = 2f32.ln() + (1.0 + (-1f32).exp()).ln();
        assert!((l - expected).abs() < 1e-6, "{l} vs {expected}");
    }
}
