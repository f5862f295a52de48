//! Token embedding: a (vocab_size, dim) table looked up by id, with
//! PyTorch's name (`weight`) and initialisation (standard normal).

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Tensor, // (V, C)
}

pub fn embedding(vocab_size: usize, dim: usize, vb: VarBuilder) -> Result<Embedding> {
    let weight = vb.get_with_hints((vocab_size, dim), "weight", Init::Randn { mean: 0.0, stdev: 1.0 })?;
    Ok(Embedding { weight })
}

impl Embedding {
    /// (B, T) ids → (B, T, C)
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let c = self.weight.dim(1)?;
        self.weight.index_select(&ids.flatten_all()?, 0)?.reshape((b, t, c))
    }
}
