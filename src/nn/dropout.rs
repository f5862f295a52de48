//! Inverted dropout drawing its mask from shiftlm's own seeded stream (candle's
//! dropout uses an unseeded generator, which would break reproducible runs).

use crate::rng::Rng;
use candle_core::{Result, Tensor};

/// Zeroes each element with probability `p` and scales the rest by
/// 1/(1-p). With no generator (evaluation) or `p == 0` it is the identity.
pub fn dropout(x: &Tensor, p: f32, rng: Option<&mut Rng>) -> Result<Tensor> {
    let rng = match rng {
        Some(r) if p > 0.0 => r,
        _ => return Ok(x.clone()),
    };
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count()).map(|_| if rng.next_f32() < p { 0.0 } else { keep }).collect();
    x.mul(&Tensor::from_vec(mask, x.shape(), x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn identity_in_eval_and_unbiased_in_training() {
        let x = Tensor::ones(10_000, candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(dropout(&x, 0.5, None).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap(), 10_000.0);
        let mut rng = Rng::new(1);
        let y = dropout(&x, 0.3, Some(&mut rng)).unwrap();
        let mean = y.mean_all().unwrap().to_scalar::<f32>().unwrap();
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
    }
}
