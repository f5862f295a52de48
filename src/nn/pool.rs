//! 2×2 max pooling with a correct gradient.
//!
//! candle 0.11's `max_pool2d` backward multiplies the upstream gradient by
//! the share of maxima in each window where it should divide by it: with
//! one maximum per 2×2 window every gradient comes out a quarter of the
//! truth (measured against central differences in f64; candle-core
//! `backprop.rs`, `Op::MaxPool2D`). Here the window is gathered into a last
//! dimension of 4 and the first maximum (in row-major order, PyTorch's
//! choice) is picked by a one-hot mask, so the whole gradient goes to it.
//! Ties are common, not rare: where a convolution reads only zero padding
//! or black background its outputs all equal its bias, and candle's `max`
//! reduction would hand the full gradient to every tied element.

use candle_core::{Result, Tensor, D};

/// (B, C, H, W) with even H and W → (B, C, H/2, W/2), the maximum of each
/// 2×2 window.
pub fn max_pool_2x2(x: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("max_pool_2x2: {h}×{w} has an odd side")
    }
    let win = x
        .reshape((b, c, h / 2, 2, w / 2, 2))? // (B, C, H/2, 2, W/2, 2)
        .permute((0, 1, 2, 4, 3, 5))? // (B, C, H/2, W/2, 2, 2)
        .reshape((b, c, h / 2, w / 2, 4))?; // (B, C, H/2, W/2, 4), row-major windows
                                            // One-hot at the first maximum of each window (constants for autograd).
    let flat = win.detach();
    let is_max = flat.broadcast_eq(&flat.max_keepdim(D::Minus1)?)?.to_dtype(x.dtype())?;
    let first = (is_max.cumsum(D::Minus1)?.eq(1.0)?.to_dtype(x.dtype())? * &is_max)?;
    win.mul(&first)?.sum(D::Minus1) // (B, C, H/2, W/2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Same values as candle's pooling, and a gradient that matches central
    /// differences (candle's own is a quarter of it).
    #[test]
    fn pools_and_differentiates_correctly() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::rand(0f64, 1.0, (2, 3, 4, 6), &dev).unwrap()).unwrap();
        let ours = max_pool_2x2(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().max_pool2d(2).unwrap();
        assert_eq!(
            ours.flatten_all().unwrap().to_vec1::<f64>().unwrap(),
            theirs.flatten_all().unwrap().to_vec1::<f64>().unwrap()
        );
        let r = Tensor::randn(0f64, 1.0, (2, 3, 2, 3), &dev).unwrap();
        let f = |x: &Tensor| max_pool_2x2(x).unwrap().mul(&r).unwrap().sum_all().unwrap();
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
        assert!(max_pool_2x2(&Tensor::zeros((1, 1, 3, 4), candle_core::DType::F32, &dev).unwrap()).is_err());
        // Ties: the whole gradient goes to the first maximum, as in PyTorch.
        let tied = Var::from_tensor(&Tensor::new(&[[[[2f32, 2.0], [1.0, 2.0]]]], &dev).unwrap()).unwrap();
        let y = max_pool_2x2(tied.as_tensor()).unwrap();
        assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), [2.0]);
        let g = y.sum_all().unwrap().backward().unwrap();
        let g = g.get(tied.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(g, [1.0, 0.0, 0.0, 0.0]);
    }
}
