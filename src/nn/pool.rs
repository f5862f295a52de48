//! 2×2 max pooling with a correct gradient.
//!
//! candle 0.11's `max_pool2d` backward multiplies the upstream gradient by
//! the share of maxima in each window where it should divide by it: with
//! one maximum per 2×2 window every gradient comes out a quarter of the
//! truth (measured against central differences in f64; candle-core
//! `backprop.rs`, `Op::MaxPool2D`). Here the whole gradient goes to the
//! first maximum of each window (in row-major order, PyTorch's choice):
//! [`crate::ops::pool`] does it in one pass, and its composite reference
//! gathers the windows and picks that maximum with a one-hot mask.
//! Ties are common, not rare: where a convolution reads only zero padding
//! or black background its outputs all equal its bias, and candle's `max`
//! reduction would hand the full gradient to every tied element.

pub use crate::ops::pool::{max_pool_2x2, max_pool_2x2_composite};

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var};

    /// Same values as candle's pooling, and a gradient that matches central
    /// differences in f64 (candle's own is a quarter of it). The composite
    /// reference is checked here; `ops::pool` checks the fused op against it.
    #[test]
    fn pools_and_differentiates_correctly() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::rand(0f64, 1.0, (2, 3, 4, 6), &dev).unwrap()).unwrap();
        let ours = max_pool_2x2_composite(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().max_pool2d(2).unwrap();
        assert_eq!(
            ours.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            theirs.flatten_all().unwrap().to_vec1::<f64>().unwrap()
        );
        let r = Tensor::randn(0f64, 1.0, (2, 3, 2, 3), &dev).unwrap();
        let f = |x: &Tensor| max_pool_2x2_composite(x).unwrap().mul(&r).unwrap().sum_all().unwrap();
        let g = f(x.as_tensor()).backward().unwrap();
        let analytic = g.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        let base = x.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for k in 0..base.len() {
            let at = |d: f64| {
                let mut v = base.clone();
                v[k] += d;
                f(&Tensor::from_vec(v, (2, 3, 4, 6), &dev).unwrap()).to_scalar::<f64>().unwrap()
            };
            let numeric = (at(1e-6) - at(-1e-6)) / 2e-6;
            assert!((analytic[k] - numeric).abs() < 1e-6, "[{k}]: {} vs {numeric}", analytic[k]);
        }
        // candle's own backward gives a quarter (the bug this file avoids;
        // this fails once candle fixes it, and the workaround can go).
        let theirs = x.as_tensor().max_pool2d(2).unwrap().mul(&r).unwrap().sum_all().unwrap().backward().unwrap();
        let theirs = theirs.get(x.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert!(theirs.iter().zip(&analytic).all(|(t, a)| (4.0 * t - a).abs() < 1e-9));
        assert!(max_pool_2x2_composite(&Tensor::zeros((1, 1, 3, 4), candle_core::DType::F32, &dev).unwrap()).is_err());
        // Ties: the whole gradient goes to the first maximum, as in PyTorch.
        let tied = Var::from_tensor(&Tensor::new(&[[[[2f32, 2.0], [1.0, 2.0]]]], &dev).unwrap()).unwrap();
        let y = max_pool_2x2_composite(tied.as_tensor()).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [2.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(tied.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, [1.0, 0.0, 0.0, 0.0]);
    }
}
