//! Token embedding: a (vocab_size, dim) table looked up by id, with
//! PyTorch's name (`weight`) and initialisation (standard normal).

use candle_core::{Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// A (V, C) table of token vectors: ids (B, T) → (B, T, C).
#[derive(Debug, Clone)]
pub struct Embedding {
    weight: Tensor, // (V, C)
}

/// A (vocab_size, dim) embedding named `weight` under `vb`, initialised standard normal as in PyTorch.
pub fn embedding(vocab_size: usize, dim: usize, vb: VarBuilder) -> Result<Embedding> {
    embedding_init(vocab_size, dim, Init::Randn { mean: 0.0, stdev: 1.0 }, vb)
}

/// An embedding with an explicit initialisation (GPT-style normal(0, 0.02)).
pub fn embedding_init(vocab_size: usize, dim: usize, init: Init, vb: VarBuilder) -> Result<Embedding> {
    Ok(Embedding { weight: vb.get_with_hints((vocab_size, dim), "weight", init)? })
}

impl Embedding {
    /// The output projection that reuses this table (weight tying, Press &
    /// Wolf 2017), or an untied head stored the same way: (B, T, C) → (B, T, V).
    pub fn project(&self, x: &Tensor) -> Result<Tensor> {
        use crate::ops::linear::{linear, WeightLayout};
        linear(x, &self.weight, None, WeightLayout::OutIn)
    }

    /// The table (V, C): the output matrix of a tied head.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The width of a row, C.
    pub fn dim(&self) -> usize {
        self.weight.dim(1).unwrap_or(0)
    }

    /// (B, T) ids → (B, T, C)
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        let _ = ids.dims2()?;
        crate::ops::embedding::embedding(&self.weight, ids)
    }
}
