//! A 2-D convolution layer (stride 1, zero padding): PyTorch's `nn.Conv2d`
//! parameters (`weight` (C_out, C_in, k, k), `bias` (C_out), initialised as
//! candle-nn and PyTorch do) run through the fused im2col op
//! ([`crate::ops::conv2d`]), whose backward is a matrix product where
//! candle's is not.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// A convolution with bias.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Tensor,
    pad: usize,
}

/// A `k`×`k` convolution from `c_in` to `c_out` channels with `pad` zeros
/// on each side, its parameters under `vb`.
pub fn conv2d(c_in: usize, c_out: usize, k: usize, pad: usize, vb: VarBuilder) -> Result<Conv2d> {
    let cfg = candle_nn::Conv2dConfig { padding: pad, ..Default::default() };
    let c = candle_nn::conv2d(c_in, c_out, k, cfg, vb)?;
    let bias = c.bias().cloned().ok_or_else(|| candle_core::Error::Msg("conv2d: built without a bias".into()))?;
    Ok(Conv2d { weight: c.weight().clone(), bias, pad })
}

impl Conv2d {
    /// The convolution followed by a ReLU, fused.
    pub fn forward_relu(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::conv2d::conv2d_relu(x, &self.weight, &self.bias, self.pad)
    }

    /// The convolution, a ReLU and 2×2 max pooling, fused (the output's
    /// sides must be even): (B, C_out, H_out/2, W_out/2).
    pub fn forward_relu_pool(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::conv2d::conv2d_relu_pool(x, &self.weight, &self.bias, self.pad)
    }
}

impl Module for Conv2d {
    /// (B, C_in, H, W) → (B, C_out, H + 2·pad − k + 1, W + 2·pad − k + 1).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::ops::conv2d::conv2d(x, &self.weight, &self.bias, self.pad)
    }
}
