//! Softmax and log-softmax as composite candle ops, so gradients flow (the
//! fused `candle_nn::ops::softmax_last_dim` has no backward pass). The row
//! maximum is detached: it only keeps `exp` in range and its gradient is zero.

use candle_core::{Result, Tensor};

/// Softmax over the last dimension (the fused op, [`crate::ops::softmax`]).
pub fn softmax(xs: &Tensor) -> Result<Tensor> {
    crate::ops::softmax::softmax(xs)
}

pub use crate::ops::reference::{log_softmax, softmax_composite};

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_definition_and_has_gradient() {
        let dev = Device::Cpu;
        let x = Var::from_vec(vec![1f32, 2., 3., -1., 0., 100.], (2, 3), &dev).unwrap();
        let p = softmax(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        let z: f32 = [1f32, 2., 3.].iter().map(|v| v.exp()).sum();
        assert!((p[0][2] - 3f32.exp() / z).abs() < 1e-6);
        assert!((p[1][2] - 1.0).abs() < 1e-6);
        let l = log_softmax(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert!((l[0][0] - (1.0 - z.ln())).abs() < 1e-5);
        // d/dx sum(log_softmax(x)[:, 0]) = onehot(0) - softmax(x)
        let loss = log_softmax(x.as_tensor()).unwrap().narrow(1, 0, 1).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let g = g.get(&x).unwrap().to_vec2::<f32>().unwrap();
        assert!((g[0][0] - (1.0 - p[0][0])).abs() < 1e-5 && (g[0][1] + p[0][1]).abs() < 1e-5);
    }
}
