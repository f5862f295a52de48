//! LayerNorm and RMSNorm layers over our fused ops ([`crate::ops::norm`]),
//! which have a backward pass (candle's fused `layer_norm`/`rms_norm` and
//! the fast path of `candle_nn::LayerNorm` do not: candle issues #3011,
//! #3752). Statistics are taken over the last dimension in f32, as PyTorch
//! does.

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// `y = (x − mean) / √(var + ε) · weight + bias` (GPT-2's `ln_*`).
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor, // (C)
    bias: Tensor,   // (C)
    eps: f64,
}

/// A LayerNorm over the last dimension of width `dim`: `weight` starts at 1, `bias` at 0; `eps` e.g. 1e-5.
pub fn layer_norm(dim: usize, eps: f64, vb: VarBuilder) -> Result<LayerNorm> {
    Ok(LayerNorm {
        weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
        bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
        eps,
    })
}

impl LayerNorm {
    /// (..., C) → (..., C)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::norm::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

/// `y = x / √(mean(x²) + ε) · weight` (Llama's `*_layernorm`, `norm`).
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor, // (C)
    eps: f64,
}

/// An RMSNorm over the last dimension of width `dim`: `weight` starts at 1; `eps` e.g. 1e-5.
pub fn rms_norm(dim: usize, eps: f64, vb: VarBuilder) -> Result<RmsNorm> {
    Ok(RmsNorm { weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?, eps })
}

impl RmsNorm {
    /// (..., C) → (..., C)
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::norm::rms_norm(x, &self.weight, self.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Central differences against backprop, for both norms.
    #[test]
    fn gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let store = crate::nn::ParamStore::new(3, &dev);
        let vb = store.var_builder();
        let ln = layer_norm(5, 1e-5, vb.pp("ln")).unwrap();
        let rms = rms_norm(5, 1e-5, vb.pp("rms")).unwrap();
        let mut rng = crate::rng::Rng::new(1);
        let xs: Vec<f32> = (0..15).map(|_| rng.normal()).collect();
        let w: Vec<f32> = (0..15).map(|_| rng.normal()).collect();
        let wt = Tensor::from_vec(w, (3, 5), &dev).unwrap();
        for which in 0..2 {
            let f = |x: &Tensor| -> f64 {
                let y = if which == 0 { ln.forward(x) } else { rms.forward(x) }.unwrap();
                (y * &wt).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64
            };
            let x = Var::from_vec(xs.clone(), (3, 5), &dev).unwrap();
            let y = if which == 0 { ln.forward(x.as_tensor()) } else { rms.forward(x.as_tensor()) }.unwrap();
            let g = (y * &wt).unwrap().sum_all().unwrap().backward().unwrap();
            let g = g.get(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for i in 0..15 {
                let h = 1e-2f32;
                let mut p = xs.clone();
                p[i] += h;
                let mut m = xs.clone();
                m[i] -= h;
                let fd = (f(&Tensor::from_vec(p, (3, 5), &dev).unwrap())
                    - f(&Tensor::from_vec(m, (3, 5), &dev).unwrap()))
                    / (2.0 * h as f64);
                assert!(
                    (fd - g[i] as f64).abs() < 2e-2 * fd.abs().max(1.0),
                    "norm {which} x[{i}]: fd {fd} vs {}",
                    g[i]
                );
            }
        }
    }
}
