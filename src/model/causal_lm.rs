//! The decoder-only skeleton that GPT-2 and Llama share (nanoGPT's
//! model.py): token embedding → pre-norm blocks of causal self-attention and
//! an MLP, each added back to the residual stream → final norm → a head
//! that projects onto the vocabulary. The families fill it with their own
//! parts ([`gpt2`](mod@super::gpt2), [`llama`](mod@super::llama)):
//!
//! | part | GPT-2 | Llama |
//! |---|---|---|
//! | positions | learned, added to the embedding | rotary, on q and k in every block |
//! | norm | LayerNorm | RMSNorm |
//! | q, k, v | one packed Conv1D (`c_attn`) | three linear layers, fewer k/v heads (GQA) |
//! | MLP | Conv1D → GELU → Conv1D | SwiGLU |
//! | head | tied to the embedding | tied or its own |
//!
//! Training and whole-sequence scoring run attention as one fused op
//! ([`crate::ops::attention`]); incremental decoding goes through the
//! key/value cache and the composite path.

use crate::error::Result;
use crate::nn::causal_attention::{attend, split_heads, KvCache};
use crate::nn::dropout::{dropout, dropout_add};
use crate::nn::embedding::Embedding;
use crate::nn::layer_norm::{LayerNorm, RmsNorm};
use crate::nn::linear::{Conv1D, Linear};
use crate::nn::rope::Rope;
use crate::rng::Rng;
use candle_core::Tensor;

/// A normalisation layer.
#[derive(Debug, Clone)]
pub(crate) enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
        }
    }
}

/// A projection: GPT-2's Conv1D (weight (in, out)) or a linear layer
/// (weight (out, in)), either with its LoRA adapter.
#[derive(Debug, Clone)]
pub(crate) enum Proj {
    Conv(Conv1D),
    Linear(Linear),
}

impl Proj {
    fn forward_t(&self, x: &Tensor, rng: Option<&mut Rng>) -> candle_core::Result<Tensor> {
        match self {
            Proj::Conv(p) => p.forward_t(x, rng),
            Proj::Linear(p) => p.forward_t(x, rng),
        }
    }
}

/// Where q, k and v come from.
#[derive(Debug, Clone)]
pub(crate) enum Qkv {
    /// One projection writing q, k and v side by side (GPT-2's `c_attn`).
    Packed(Proj),
    /// Three projections (Llama's `q_proj`, `k_proj`, `v_proj`).
    Split { q: Proj, k: Proj, v: Proj },
}

/// Causal self-attention with H query heads over H_kv key/value heads.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub qkv: Qkv,
    /// The output projection (B, T, H·D) → (B, T, C).
    pub out: Proj,
    pub n_head: usize,
    pub n_kv_head: usize,
}

impl Attention {
    /// `x` (B, T, C) → (B, T, C); `rope` rotates q and k (Llama), `cache`
    /// holds the keys and values of earlier positions.
    fn forward(
        &self,
        x: &Tensor,
        rope: Option<&Rope>,
        cache: Option<&mut KvCache>,
        mut rng: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let (h, h_kv) = (self.n_head, self.n_kv_head);
        let y = match (&self.qkv, rope, cache) {
            // GPT-2 training and scoring: the projection's output is the fused op's input as it is.
            (Qkv::Packed(p), None, None) => {
                crate::ops::attention::grouped_causal_self_attention(&p.forward_t(x, rng.as_deref_mut())?, h, h_kv)?
            }
            (qkv, rope, cache) => {
                let (q, k, v) = match qkv {
                    Qkv::Packed(p) => {
                        let qkv = p.forward_t(x, rng.as_deref_mut())?; // (B, T, (H + 2·H_kv)·D)
                        let d = qkv.dim(2)? / (h + 2 * h_kv);
                        (
                            qkv.narrow(2, 0, h * d)?,
                            qkv.narrow(2, h * d, h_kv * d)?,
                            qkv.narrow(2, (h + h_kv) * d, h_kv * d)?,
                        )
                    }
                    Qkv::Split { q, k, v } => (
                        q.forward_t(x, rng.as_deref_mut())?,
                        k.forward_t(x, rng.as_deref_mut())?,
                        v.forward_t(x, rng.as_deref_mut())?,
                    ),
                };
                match cache {
                    // Training and scoring: rotate in place, then one fused op.
                    None => {
                        let (q, k) = match rope {
                            Some(r) => (r.apply_packed(&q, h, 0)?, r.apply_packed(&k, h_kv, 0)?),
                            None => (q, k),
                        };
                        crate::ops::attention::grouped_causal_self_attention(&Tensor::cat(&[q, k, v], 2)?, h, h_kv)?
                    }
                    // Decoding: heads split, rotated at their positions, keys and values cached.
                    Some(cache) => {
                        let offset = cache.len();
                        let (q, k) = (split_heads(&q, h)?, split_heads(&k, h_kv)?.contiguous()?);
                        let (q, k) = match rope {
                            Some(r) => (r.apply(&q.contiguous()?, offset)?, r.apply(&k, offset)?),
                            None => (q, k),
                        };
                        let (k, v) = cache.append(k, split_heads(&v, h_kv)?.contiguous()?)?;
                        attend(&q, &k, &v, offset)?
                    }
                }
            }
        }; // (B, T, H·D)
        self.out.forward_t(&y, rng)
    }
}

/// The position-wise MLP.
#[derive(Debug, Clone)]
pub(crate) enum Mlp {
    /// fc → GELU → proj (GPT-2); `tanh` picks GPT-2's approximation over exact GELU.
    Gelu { fc: Proj, proj: Proj, tanh: bool },
    /// down(silu(gate(x)) ⊙ up(x)) (SwiGLU, Shazeer 2020; Llama).
    SwiGlu { gate: Proj, up: Proj, down: Proj },
}

impl Mlp {
    fn forward(&self, x: &Tensor, mut rng: Option<&mut Rng>) -> candle_core::Result<Tensor> {
        match self {
            Mlp::Gelu { fc, proj, tanh } => {
                let h = fc.forward_t(x, rng.as_deref_mut())?;
                let h = if *tanh { crate::ops::gelu::gelu_tanh(&h)? } else { crate::ops::gelu::gelu_erf(&h)? };
                proj.forward_t(&h, rng)
            }
            Mlp::SwiGlu { gate, up, down } => {
                let g = crate::ops::swiglu::swiglu(
                    &gate.forward_t(x, rng.as_deref_mut())?,
                    &up.forward_t(x, rng.as_deref_mut())?,
                )?;
                down.forward_t(&g, rng)
            }
        }
    }
}

/// One pre-norm block: `x + attn(norm₁(x))`, then `x + mlp(norm₂(x))`,
/// with dropout on each branch.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub norm_1: Norm,
    pub attn: Attention,
    pub norm_2: Norm,
    pub mlp: Mlp,
    pub dropout: f32,
}

impl Block {
    fn forward(
        &self,
        x: &Tensor,
        rope: Option<&Rope>,
        cache: Option<&mut KvCache>,
        mut rng: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let y = self.attn.forward(&self.norm_1.forward(x)?, rope, cache, rng.as_deref_mut())?;
        let x = dropout_add(x, &y, self.dropout, rng.as_deref_mut())?;
        let y = self.mlp.forward(&self.norm_2.forward(&x)?, rng.as_deref_mut())?;
        dropout_add(&x, &y, self.dropout, rng)
    }
}

/// How a position enters the model.
#[derive(Debug, Clone)]
pub(crate) enum Positions {
    /// A learned (P, C) table added to the token embedding (GPT-2's `wpe`).
    Learned(Tensor),
    /// Rotary positions on q and k in every block (Llama).
    Rotary(Rope),
}

/// A decoder-only language model.
#[derive(Debug, Clone)]
pub struct CausalLm {
    pub(crate) embed: Embedding, // (V, C)
    pub(crate) positions: Positions,
    /// Dropout on the embedding (GPT-2's `embd_pdrop`).
    pub(crate) embed_dropout: f32,
    pub(crate) blocks: Vec<Block>,
    pub(crate) norm_f: Norm,
    pub(crate) head: Embedding, // (V, C): the token embedding itself when tied
    /// Context length, and the config field that sets it (for errors).
    pub(crate) max_positions: (usize, &'static str),
}

impl CausalLm {
    /// `ids` (B, T) → logits (B, T, V). With `cache` (one per block), the
    /// ids continue the cached positions. `rng` enables dropout.
    pub fn forward(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut [KvCache]>,
        mut rng: Option<&mut Rng>,
    ) -> Result<Tensor> {
        let (_b, t) = ids.dims2()?;
        let offset = cache.as_ref().map_or(0, |c| c[0].len());
        let (max, field) = self.max_positions;
        super::check_positions(field, offset + t, max)?;
        let tok = self.embed.forward(ids)?; // (B, T, C)
        let (x, rope) = match &self.positions {
            Positions::Learned(wpe) => (tok.broadcast_add(&wpe.narrow(0, offset, t)?.unsqueeze(0)?)?, None),
            Positions::Rotary(rope) => (tok, Some(rope)),
        };
        let mut x = dropout(&x, self.embed_dropout, rng.as_deref_mut())?;
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, rope, cache.as_deref_mut().map(|c| &mut c[i]), rng.as_deref_mut())?;
        }
        let x = self.norm_f.forward(&x)?;
        Ok(self.head.project(&x)?)
    }

    /// Blocks, one key/value cache each.
    pub fn n_layer(&self) -> usize {
        self.blocks.len()
    }

    /// Context length.
    pub fn max_positions(&self) -> usize {
        self.max_positions.0
    }
}
