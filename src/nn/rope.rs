//! Rotary position embeddings (Su et al. 2021) in the Hugging Face Llama
//! convention: `x·cos + rotate_half(x)·sin`, where rotate_half swaps the two
//! halves of the head dimension with a sign, and cos/sin repeat the
//! frequencies over both halves. Composite ops, so gradients flow
//! (`candle_nn::rotary_emb` has no backward pass).

use candle_core::{Device, Result, Tensor, D};

/// Cos and sin tables for positions `0..max_pos`.
#[derive(Debug, Clone)]
pub struct Rope {
    cos: Tensor, // (P, D)
    sin: Tensor, // (P, D)
}

impl Rope {
    /// Tables for heads of width `head_dim` (even) and positions `0..max_pos`, frequencies
    /// `theta^(−2i / head_dim)` with `theta` e.g. 10000.
    pub fn new(head_dim: usize, max_pos: usize, theta: f64, dev: &Device) -> Result<Self> {
        let half = head_dim / 2;
        let inv: Vec<f64> = (0..half).map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)).collect();
        let mut cos = Vec::with_capacity(max_pos * head_dim);
        let mut sin = Vec::with_capacity(max_pos * head_dim);
        for p in 0..max_pos {
            for _half in 0..2 {
                for f in &inv {
                    let a = p as f64 * f;
                    cos.push(a.cos() as f32);
                    sin.push(a.sin() as f32);
                }
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (max_pos, head_dim), dev)?,
            sin: Tensor::from_vec(sin, (max_pos, head_dim), dev)?,
        })
    }

    /// `x` (B, H, T, D) at positions `offset..offset+T`.
    pub fn apply(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let (_b, _h, t, d) = x.dims4()?;
        let cos = self.cos.narrow(0, offset, t)?.to_dtype(x.dtype())?;
        let sin = self.sin.narrow(0, offset, t)?.to_dtype(x.dtype())?;
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?
    }

    /// `x` (B, T, H·D), heads side by side as a projection writes them, at
    /// positions `offset..offset+T`: the same values as [`Rope::apply`] on
    /// the split heads, without moving the heads first.
    pub fn apply_packed(&self, x: &Tensor, n_head: usize, offset: usize) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let d = c / n_head;
        let x = x.reshape((b, t, n_head, d))?;
        let cos = self.cos.narrow(0, offset, t)?.to_dtype(x.dtype())?.reshape((t, 1, d))?;
        let sin = self.sin.narrow(0, offset, t)?.to_dtype(x.dtype())?.reshape((t, 1, d))?;
        let x1 = x.narrow(D::Minus1, 0, d / 2)?;
        let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
        let rotated = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        (x.broadcast_mul(&cos)? + rotated.broadcast_mul(&sin)?)?.reshape((b, t, c))
    }

    /// Positions the tables cover, P.
    pub fn max_positions(&self) -> usize {
        self.cos.dim(0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_heads_rotate_exactly_as_split_heads() {
        let dev = Device::Cpu;
        let rope = Rope::new(4, 10, 10000.0, &dev).unwrap();
        let x = crate::ops::gradcheck::randn(1, &[2, 3, 3 * 4]); // (B, T, H·D), H = 3
        let packed = rope.apply_packed(&x, 3, 5).unwrap();
        let split = x.reshape((2, 3, 3, 4)).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
        let want = rope.apply(&split, 5).unwrap().transpose(1, 2).unwrap().reshape((2, 3, 12)).unwrap();
        let (a, b) = (
            packed.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
    }
}
