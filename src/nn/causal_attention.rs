//! Multi-head causal self-attention with grouped key/value heads and a
//! key/value cache for incremental decoding. Scores use our composite
//! softmax, so gradients flow; the mask is additive (−∞ above the diagonal).

use super::softmax::softmax;
use candle_core::{Result, Tensor};

/// Cached keys and values of one layer: (B, H_kv, S, D) each.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    pub k: Option<Tensor>,
    pub v: Option<Tensor>,
}

impl KvCache {
    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dim(2).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends new keys and values and returns the whole history.
    pub fn append(&mut self, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let (k, v) = match (&self.k, &self.v) {
            (Some(pk), Some(pv)) => (Tensor::cat(&[pk, &k], 2)?, Tensor::cat(&[pv, &v], 2)?),
            _ => (k, v),
        };
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        Ok((k, v))
    }
}

/// The additive causal mask for `t` new queries after `offset` cached
/// positions: (T, offset+T), 0 where query i may see key j (j ≤ offset+i).
pub fn causal_mask(t: usize, offset: usize, dev: &candle_core::Device) -> Result<Tensor> {
    let s = offset + t;
    let m: Vec<f32> =
        (0..t).flat_map(|i| (0..s).map(move |j| if j <= offset + i { 0.0 } else { f32::NEG_INFINITY })).collect();
    Tensor::from_vec(m, (t, s), dev)
}

/// softmax(q kᵀ / √D + mask) v with the causal mask for queries after
/// `offset` cached positions. See [`attend_with_bias`].
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, offset: usize) -> Result<Tensor> {
    let t = q.dim(2)?;
    if t > 1 || offset > 0 {
        attend_with_bias(q, k, v, Some(&causal_mask(t, offset, q.device())?))
    } else {
        attend_with_bias(q, k, v, None)
    }
}

/// softmax(q kᵀ / √D + bias) v. `q` (B, H, T, D); `k`, `v` (B, H_kv, S, D)
/// with H a multiple of H_kv; `bias` broadcasts to (B, H, T, S) (−∞ where a
/// query must not look). Returns (B, T, H·D).
pub fn attend_with_bias(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let h_kv = k.dim(1)?;
    let (k, v) = if h_kv != h {
        // Grouped-query attention: each kv head serves h / h_kv query heads.
        let rep = h / h_kv;
        let expand = |x: &Tensor| -> Result<Tensor> {
            let (b, hk, s, d) = x.dims4()?;
            x.unsqueeze(2)?.expand((b, hk, rep, s, d))?.reshape((b, hk * rep, s, d))
        };
        (expand(k)?, expand(v)?)
    } else {
        (k.clone(), v.clone())
    };
    let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? / (d as f64).sqrt())?; // (B, H, T, S)
    let scores = match bias {
        Some(b) => scores.broadcast_add(b)?,
        None => scores,
    };
    let y = softmax(&scores)?.matmul(&v.contiguous()?)?; // (B, H, T, D)
    y.transpose(1, 2)?.reshape((b, t, h * d))
}

/// Splits (B, T, H·D) into heads: (B, H, T, D).
pub fn split_heads(x: &Tensor, n_head: usize) -> Result<Tensor> {
    let (b, t, c) = x.dims3()?;
    x.reshape((b, t, n_head, c / n_head))?.transpose(1, 2)
}
