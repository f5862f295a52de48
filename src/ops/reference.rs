//! Composite candle versions of what the fused ops compute: the references
//! their parity tests compare against, and the fallbacks where a fused op
//! does not apply. Built from candle primitives only, so every one has
//! candle's own backward pass.

use candle_core::{Result, Tensor, D};

/// Softmax over the last dimension. The row maximum is detached: it only
/// keeps `exp` in range and its gradient is zero.
pub fn softmax_composite(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let e = xs.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Log-softmax over the last dimension.
pub fn log_softmax(xs: &Tensor) -> Result<Tensor> {
    let max = xs.max_keepdim(D::Minus1)?.detach();
    let shifted = xs.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

/// The additive causal mask for `t` new queries after `offset` cached
/// positions: (T, offset+T), 0 where query i may see key j (j ≤ offset+i).
pub fn causal_mask(t: usize, offset: usize, dev: &candle_core::Device) -> Result<Tensor> {
    let s = offset + t;
    let m: Vec<f32> =
        (0..t).flat_map(|i| (0..s).map(move |j| if j <= offset + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(m, (t, s), dev)
}
