//! Multi-head causal self-attention with grouped key/value heads and a
//! key/value cache for incremental decoding. Scores go through our fused
//! softmax (it has a backward pass); the causal mask and the 1/√D scale are
//! fused into it.

use super::softmax::softmax;
use candle_core::{Result, Tensor};

/// Cached keys and values of one layer: (B, H_kv, S, D) each.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Keys (B, H_kv, S, D); `None` before the first step.
    pub k: Option<Tensor>,
    /// Values (B, H_kv, S, D); `None` before the first step.
    pub v: Option<Tensor>,
}

impl KvCache {
    /// Positions already cached.
    pub fn len(&self) -> usize {
        self.len_on(2)
    }

    /// Positions already cached, counted along `dim` (see [`KvCache::append_on`]).
    pub fn len_on(&self, dim: usize) -> usize {
        self.k.as_ref().map_or(0, |k| k.dim(dim).unwrap_or(0))
    }

    /// Whether no position is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends new keys and values and returns the whole history.
    pub fn append(&mut self, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        self.append_on(2, k, v)
    }

    /// [`KvCache::append`] for keys and values whose positions lie along
    /// `dim`: the Transformer encoder–decoder keeps them as (B, S, C), dim 1.
    pub fn append_on(&mut self, dim: usize, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let (k, v) = match (&self.k, &self.v) {
            (Some(pk), Some(pv)) => (Tensor::cat(&[pk, &k], dim)?, Tensor::cat(&[pv, &v], dim)?),
            _ => (k, v),
        };
        self.k = Some(k.clone());
        self.v = Some(v.clone());
        Ok((k, v))
    }
}

pub use crate::ops::reference::causal_mask;

/// softmax(q kᵀ / √D + mask) v with the causal mask for queries after
/// `offset` cached positions. See [`attend_with_bias`].
/// The mask and the 1/√D scale are fused into the softmax
/// ([`crate::ops::softmax::causal_softmax`]).
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, offset: usize) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (k, v) = repeat_kv(k, v, h)?;
    let scores = q.contiguous()?.matmul(&k.t()?.contiguous()?)?; // (B, H, T, S)
    let p = crate::ops::softmax::causal_softmax(&scores, 1.0 / (d as f64).sqrt(), offset)?;
    let y = p.matmul(&v.contiguous()?)?; // (B, H, T, D)
    y.transpose(1, 2)?.reshape((b, t, h * d))
}

/// Grouped-query attention: each of H_kv key/value heads serves H / H_kv
/// query heads. (B, H_kv, S, D) → (B, H, S, D).
fn repeat_kv(k: &Tensor, v: &Tensor, h: usize) -> Result<(Tensor, Tensor)> {
    let h_kv = k.dim(1)?;
    if h_kv == h {
        return Ok((k.clone(), v.clone()));
    }
    let rep = h / h_kv;
    let expand = |x: &Tensor| -> Result<Tensor> {
        let (b, hk, s, d) = x.dims4()?;
        x.unsqueeze(2)?.expand((b, hk, rep, s, d))?.reshape((b, hk * rep, s, d))
    };
    Ok((expand(k)?, expand(v)?))
}

/// softmax(q kᵀ / √D + bias) v. `q` (B, H, T, D); `k`, `v` (B, H_kv, S, D)
/// with H a multiple of H_kv; `bias` broadcasts to (B, H, T, S) (−∞ where a
/// query must not look). Returns (B, T, H·D).
pub fn attend_with_bias(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    let (k, v) = repeat_kv(k, v, h)?;
    let scores = q.contiguous()?.matmul(&k.t()?.contiguous()?)?; // (B, H, T, S)
    let p = match bias {
        Some(bias) => softmax(&(scores / (d as f64).sqrt())?.broadcast_add(bias)?)?,
        None => crate::ops::softmax::scaled_softmax(&scores, 1.0 / (d as f64).sqrt())?,
    };
    let y = p.matmul(&v.contiguous()?)?; // (B, H, T, D)
    y.transpose(1, 2)?.reshape((b, t, h * d))
}

/// Splits (B, T, H·D) into heads: (B, H, T, D).
pub fn split_heads(x: &Tensor, n_head: usize) -> Result<Tensor> {
    let (b, t, c) = x.dims3()?;
    x.reshape((b, t, n_head, c / n_head))?.transpose(1, 2)
}

/// Causal self-attention of packed `qkv` (B, T, (H + 2·H_kv)·D), H query
/// heads then H_kv key and H_kv value heads, from split heads and
/// [`attend`]: the reference for the fused
/// [`crate::ops::attention::grouped_causal_self_attention`].
pub fn causal_self_attention_composite(qkv: &Tensor, n_head: usize, n_kv_head: usize) -> Result<Tensor> {
    let d = qkv.dim(2)? / (n_head + 2 * n_kv_head);
    let (c, c_kv) = (n_head * d, n_kv_head * d);
    let q = split_heads(&qkv.narrow(2, 0, c)?, n_head)?;
    let k = split_heads(&qkv.narrow(2, c, c_kv)?, n_kv_head)?;
    let v = split_heads(&qkv.narrow(2, c + c_kv, c_kv)?, n_kv_head)?;
    attend(&q, &k, &v, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::attention::grouped_causal_self_attention;
    use crate::ops::gradcheck::{parity, randn};

    #[test]
    fn fused_causal_attention_matches_the_composite() {
        for (seed, dims, n_head, n_kv_head, tol) in [
            (1, [2, 5, 3 * 6], 2, 2, 2e-6),
            (2, [3, 17, 3 * 16], 4, 4, 5e-6),
            // Longer than one query block (QB = 64), the last block partial.
            (3, [2, 150, 3 * 8], 2, 2, 5e-6),
            // Grouped-query: 6 query heads over 2 and over 3 key/value heads.
            (4, [2, 9, (6 + 2 * 2) * 4], 6, 2, 5e-6),
            (5, [1, 80, (6 + 2 * 3) * 4], 6, 3, 5e-6),
        ] {
            let inputs = [randn(seed, &dims)];
            let f = |x: &[Tensor]| grouped_causal_self_attention(&x[0], n_head, n_kv_head);
            let c = |x: &[Tensor]| causal_self_attention_composite(&x[0], n_head, n_kv_head);
            parity("causal_attention", f, c, &inputs, &[0], tol);
        }
    }
}
