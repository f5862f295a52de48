//! Encoder front-ends: what an encoder–decoder reads, and how it becomes
//! the encoder's input frames (B, S, E). An encoder–decoder is a front-end,
//! an encoder and a decoder trained with the shift; the front-end is the
//! only part that knows the kind of input.
//!
//! | front-end | reads | frames | used by |
//! |---|---|---|---|
//! | [`FrontendConfig::Tokens`] | ids (B, S) u32 | an embedding table | text pairs |
//! | [`FrontendConfig::Frames`] | values (B, S, F) f32 | as they are, or a linear projection | forecasting, digit strips |
//! | [`FrontendConfig::Columns`] | an image's columns (B, W, H) f32 | 3×3 convolutions, then each column's features projected | digit strips |
//!
//! A new kind of input (image patches, audio features) is a new variant
//! of [`FrontendConfig`], a struct implementing [`Frontend`], one arm in
//! [`FrontendConfig::build`] (the registry), and a data source whose batches
//! carry that input as their source tensor. The models, the trainer and the
//! checkpoint code need no change. The built-in tasks and pair files yield
//! token ids, digit strips (`--task digit-strings`) their columns; a run
//! config that asks for frames or columns from token data is refused.

use crate::error::{Error, Result};
use crate::nn::embedding::{embedding_init, Embedding};
use crate::nn::linear::{linear, Linear};
use candle_core::{DType, Module, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Turns what the encoder reads into frames.
pub trait Frontend: std::fmt::Debug + Send + Sync {
    /// `src` (B, S, ...) → frames (B, S, [`Frontend::dim`]).
    fn forward(&self, src: &Tensor) -> Result<Tensor>;
    /// The width of a frame.
    fn dim(&self) -> usize;
}

/// Which front-end, and its shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FrontendConfig {
    /// Token ids (B, S) through an embedding table (V, dim).
    Tokens {
        /// Ids in the vocabulary, e.g. 1004.
        vocab_size: usize,
        /// Embedding width, e.g. 256.
        dim: usize,
    },
    /// Numeric frames (B, S, F): fed as they are, or projected to `proj`
    /// values by a linear layer (weight (proj, F), bias).
    Frames {
        /// Values per frame (F), e.g. 3 for a target and two covariates.
        features: usize,
        /// Width after the projection, e.g. 64; `None` feeds frames as they are.
        proj: Option<usize>,
    },
    /// An image's columns (B, W, H), read with their neighbours: blocks of
    /// 3×3 convolution (padding 1) and ReLU over the image (B, 1, H, W),
    /// with `pool` a 2×2 max pooling after the first block, or the first
    /// `pool_blocks` (each halving the columns: W/2 steps; an odd width
    /// gets a blank column first), then
    /// each column's C·H' features projected to `proj` by a linear layer.
    Columns {
        /// Image height: values per column, e.g. 14 for strips of 8×8 digits.
        height: usize,
        /// Output channels of each convolution block, e.g. [32, 32].
        channels: Vec<usize>,
        /// Width of a frame after the projection, e.g. 128.
        proj: usize,
        /// 2×2 max pooling after the first block (the height must be even).
        #[serde(default)]
        pool: bool,
        /// With `pool`, how many of the first blocks pool (each halving the
        /// columns again), e.g. 2 for speech; default 1.
        #[serde(default = "one", skip_serializing_if = "is_one")]
        pool_blocks: usize,
    },
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl FrontendConfig {
    /// The width of a frame.
    pub fn dim(&self) -> usize {
        match self {
            FrontendConfig::Tokens { dim, .. } => *dim,
            FrontendConfig::Frames { features, proj } => proj.unwrap_or(*features),
            FrontendConfig::Columns { proj, .. } => *proj,
        }
    }

    /// Values per step of what it reads: F for frames, H for columns; 0 for ids.
    pub fn features(&self) -> usize {
        match self {
            FrontendConfig::Tokens { .. } => 0,
            FrontendConfig::Frames { features, .. } => *features,
            FrontendConfig::Columns { height, .. } => *height,
        }
    }

    /// Sets the values per step (from the data): F for frames, H for columns.
    pub fn set_features(&mut self, n: usize) {
        match self {
            FrontendConfig::Tokens { .. } => {}
            FrontendConfig::Frames { features, .. } => *features = n,
            FrontendConfig::Columns { height, .. } => *height = n,
        }
    }

    /// Checks every size; errors name `field` (e.g. `model.input`).
    pub fn validate(&self, field: &str) -> Result<()> {
        let sizes = match self {
            FrontendConfig::Tokens { vocab_size, dim } => vec![("vocab_size", *vocab_size), ("dim", *dim)],
            FrontendConfig::Frames { features, proj } => vec![("features", *features), ("proj", proj.unwrap_or(1))],
            FrontendConfig::Columns { height, channels, proj, pool, pool_blocks } => {
                let pools = if *pool { *pool_blocks } else { 0 };
                if *pool && !(1..=channels.len().max(1)).contains(pool_blocks) {
                    return Err(Error::config(
                        &format!("{field}.pool_blocks"),
                        format!("must be in 1..={} (the convolution blocks)", channels.len()),
                    ));
                }
                if *pool && channels.is_empty() {
                    return Err(Error::config(
                        &format!("{field}.channels"),
                        "pooling follows the first convolution block: give at least one",
                    ));
                }
                if *pool && height % (1 << pools.min(16)) != 0 {
                    return Err(Error::config(
                        &format!("{field}.pool"),
                        format!(
                            "{pools} 2×2 pooling(s) need a height divisible by {}, not {height}",
                            1 << pools.min(16)
                        ),
                    ));
                }
                if let Some(i) = channels.iter().position(|&c| c == 0) {
                    return Err(Error::config(&format!("{field}.channels"), format!("block {i} has 0 channels")));
                }
                let last = channels.last().copied().unwrap_or(1);
                let ins: Vec<usize> = std::iter::once(1).chain(channels.iter().copied()).collect();
                let convs: Vec<[usize; 3]> = ins.iter().zip(channels).map(|(&i, &o)| [i, o, 9]).collect();
                let (cf, pf) = (format!("{field}.channels"), format!("{field}.proj"));
                let mut terms: Vec<(&str, &[usize])> = convs.iter().map(|t| (cf.as_str(), &t[..])).collect();
                let p = [last, height >> pools.min(16), *proj];
                terms.push((pf.as_str(), &p));
                crate::limits::check_params(&terms)?;
                vec![("height", *height), ("proj", *proj)]
            }
        };
        for (name, v) in sizes {
            if v == 0 {
                return Err(Error::config(&format!("{field}.{name}"), "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The registry: builds the front-end with its parameters under `vb`
    /// (`vb.weight` for a token table or a projection). `init` is the
    /// table's initialisation (a projection keeps PyTorch's `nn.Linear` one).
    pub fn build(&self, init: Init, vb: VarBuilder) -> Result<Arc<dyn Frontend>> {
        Ok(match self {
            FrontendConfig::Tokens { vocab_size, dim } => {
                Arc::new(TokenEmbedding(embedding_init(*vocab_size, *dim, init, vb)?))
            }
            FrontendConfig::Frames { features, proj } => Arc::new(Frames {
                features: *features,
                proj: proj.map(|p| linear(*features, p, true, vb)).transpose()?,
            }),
            FrontendConfig::Columns { height, channels, proj, pool, pool_blocks } => {
                let mut convs = Vec::new();
                let mut in_c = 1;
                for (i, &c) in channels.iter().enumerate() {
                    convs.push(crate::nn::conv::conv2d(in_c, c, 3, 1, vb.pp(format!("convs.{i}")))?);
                    in_c = c;
                }
                let pools = if *pool { *pool_blocks } else { 0 };
                let rows = height >> pools;
                Arc::new(Columns { height: *height, convs, pools, proj: linear(in_c * rows, *proj, true, vb)? })
            }
        })
    }
}

/// Token ids through an embedding table.
#[derive(Debug, Clone)]
pub struct TokenEmbedding(pub Embedding);

impl Frontend for TokenEmbedding {
    fn forward(&self, src: &Tensor) -> Result<Tensor> {
        if src.dtype() != DType::U32 || src.rank() != 2 {
            return Err(Error::config(
                "model.input",
                format!("token ids are (B, S) u32, got {:?} {:?}", src.dtype(), src.dims()),
            ));
        }
        Ok(self.0.forward(src)?) // (B, S, E)
    }

    fn dim(&self) -> usize {
        self.0.dim()
    }
}

/// Numeric frames, as they are or projected.
#[derive(Debug, Clone)]
pub struct Frames {
    features: usize,
    proj: Option<Linear>,
}

impl Frontend for Frames {
    fn forward(&self, src: &Tensor) -> Result<Tensor> {
        if src.dtype() != DType::F32 || src.rank() != 3 {
            return Err(Error::config(
                "model.input",
                format!("frames are (B, S, {}) f32, got {:?} {:?}", self.features, src.dtype(), src.dims()),
            ));
        }
        let (_, _, f) = src.dims3()?;
        if f != self.features {
            return Err(Error::config("model.input.features", format!("{} values per frame, got {f}", self.features)));
        }
        Ok(match &self.proj {
            Some(p) => p.forward(src)?,
            None => src.clone(),
        })
    }

    fn dim(&self) -> usize {
        self.proj.as_ref().map_or(self.features, |p| p.weight().dim(0).unwrap_or(0))
    }
}

/// An image's columns, read through convolutions.
#[derive(Debug, Clone)]
pub struct Columns {
    height: usize,
    convs: Vec<crate::nn::conv::Conv2d>,
    /// How many of the first blocks end with 2×2 max pooling.
    pools: usize,
    proj: Linear,
}

impl Frontend for Columns {
    fn forward(&self, src: &Tensor) -> Result<Tensor> {
        if src.dtype() != DType::F32 || src.rank() != 3 || src.dim(2)? != self.height {
            return Err(Error::config(
                "model.input",
                format!("columns are (B, W, {}) f32, got {:?} {:?}", self.height, src.dtype(), src.dims()),
            ));
        }
        let mut x = src.transpose(1, 2)?.unsqueeze(1)?.contiguous()?; // (B, 1, H, W)
        for (i, conv) in self.convs.iter().enumerate() {
            x = if i < self.pools {
                if x.dim(3)? % 2 != 0 {
                    x = x.pad_with_zeros(3, 0, 1)?.contiguous()?; // an even width to pool
                }
                conv.forward_relu_pool(&x)? // (B, C, H/2, W/2)
            } else {
                conv.forward_relu(&x)? // (B, C, H', W')
            };
        }
        let (b, c, h, w) = x.dims4()?;
        let cols = x.permute((0, 3, 1, 2))?.reshape((b, w, c * h))?; // (B, W', C·H')
        Ok(self.proj.forward(&cols)?) // (B, W', proj)
    }

    fn dim(&self) -> usize {
        self.proj.weight().dim(0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn each_front_end_makes_frames_and_refuses_the_wrong_input() {
        let store = crate::nn::ParamStore::new(1, &Device::Cpu);
        let w = Init::Randn { mean: 0.0, stdev: 0.02 };
        let tok = FrontendConfig::Tokens { vocab_size: 7, dim: 5 }.build(w, store.var_builder().pp("emb")).unwrap();
        let ids = Tensor::new(&[[1u32, 2, 3], [4, 5, 6]], &Device::Cpu).unwrap();
        assert_eq!((tok.forward(&ids).unwrap().dims(), tok.dim()), (&[2, 3, 5][..], 5));
        let values = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(tok.forward(&values).unwrap_err().to_string().contains("u32"));
        let raw = FrontendConfig::Frames { features: 4, proj: None }.build(w, store.var_builder().pp("x")).unwrap();
        assert_eq!((raw.forward(&values).unwrap().dims(), raw.dim()), (&[2, 3, 4][..], 4));
        let proj = FrontendConfig::Frames { features: 4, proj: Some(6) };
        let p = proj.build(w, store.var_builder().pp("input_proj")).unwrap();
        assert_eq!((p.forward(&values).unwrap().dims(), p.dim(), proj.dim()), (&[2, 3, 6][..], 6, 6));
        assert!(p.forward(&Tensor::zeros((2, 3, 5), DType::F32, &Device::Cpu).unwrap()).is_err());
        assert!(store.get("input_proj.weight").is_some() && store.get("input_proj.bias").is_some());
        let e = FrontendConfig::Frames { features: 0, proj: None }.validate("model.input").unwrap_err();
        assert!(e.to_string().contains("model.input.features"), "{e}");
    }
}
