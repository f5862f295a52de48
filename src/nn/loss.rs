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
    let (b, t, v) = logits.dims3()?;
    let (logits, labels) = (logits.reshape((b * t, v))?, labels.flatten_all()?);
    match mask {
        Some(m) => masked_cross_entropy_sum(&logits, &labels, &m.flatten_all()?),
        None => crate::ops::cross_entropy::cross_entropy(&logits, &labels)?.sum_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
