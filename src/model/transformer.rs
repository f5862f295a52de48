//! The Transformer encoder–decoder (Vaswani et al. 2017) in the pre-LN
//! arrangement (Xiong et al. 2020): a bidirectional encoder over the source
//! and a decoder with causal self-attention and cross-attention, trained on
//! the teacher-forcing shift `[BOS] + y → y + [EOS]`. Learned positions,
//! GELU (tanh) feed-forward, a final LayerNorm on each side, and the output
//! head tied to the decoder embedding. Names follow BART's layout
//! (`encoder.layers.0.self_attn.q_proj`, …).

use super::frontend::{Frontend, FrontendConfig, TokenEmbedding};
use crate::data::shift::Seq2SeqTensors;
use crate::error::{Error, Result};
use crate::nn::causal_attention::KvCache;
use crate::nn::dropout::{dropout, dropout_add};
use crate::nn::embedding::{embedding_init, Embedding};
use crate::nn::layer_norm::{layer_norm, LayerNorm};
use crate::nn::linear::{linear_init, Linear};
use crate::nn::loss::smoothed_sequence_loss_sum;
use crate::ops::head_loss::head_loss;
use crate::ops::mha::{attention, attention_rows};
use crate::rng::Rng;
use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The shape of a Transformer encoder–decoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Ids in the target vocabulary (shared with the source unless `input`
    /// gives the source its own), specials included.
    pub vocab_size: usize,
    /// Width, e.g. 128.
    pub d_model: usize,
    /// Attention heads, e.g. 4.
    pub n_head: usize,
    /// Encoder blocks, e.g. 2.
    pub n_encoder_layer: usize,
    /// Decoder blocks, e.g. 2.
    pub n_decoder_layer: usize,
    /// Feed-forward width, e.g. 512.
    pub d_ff: usize,
    /// Longest source or target (positions), e.g. 64.
    pub max_positions: usize,
    /// Dropout on embeddings and residual branches, e.g. 0.1.
    pub dropout: f32,
    /// One embedding for source, target and output head (true), or separate
    /// source and target embeddings (false; the head stays tied to the target's).
    pub share_embeddings: bool,
    /// What the encoder reads, projected to `d_model`; by default (`None`)
    /// token ids of the shared vocabulary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<FrontendConfig>,
}

impl TransformerConfig {
    /// Checks the shape: sizes at least 1, `d_model` divisible by `n_head`, dropout in [0, 1), and a
    /// front-end of width `d_model` (tokens only when `share_embeddings`).
    pub fn validate(&self) -> Result<()> {
        super::check_sizes(&[
            ("model.vocab_size", self.vocab_size),
            ("model.d_model", self.d_model),
            ("model.n_head", self.n_head),
            ("model.n_encoder_layer", self.n_encoder_layer),
            ("model.n_decoder_layer", self.n_decoder_layer),
            ("model.d_ff", self.d_ff),
            ("model.max_positions", self.max_positions),
        ])?;
        let (v, c, f) = (self.vocab_size, self.d_model, self.d_ff);
        let layers = self.n_encoder_layer + self.n_decoder_layer;
        // Embeddings and positions, and per layer ≤ 8C² of attention and 2CF of feed-forward.
        super::check_params(&[
            ("model.vocab_size", &[2, v, c]),
            ("model.max_positions", &[2, self.max_positions, c]),
            ("model.n_encoder_layer", &[layers, 8, c, c]),
            ("model.d_ff", &[layers, 2, c, f]),
        ])?;
        if !self.d_model.is_multiple_of(self.n_head) {
            return Err(Error::config("model.d_model", "must be divisible by n_head"));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config("model.dropout", "must be in [0, 1)"));
        }
        if let Some(input) = &self.input {
            // Tokens here are a source vocabulary of the encoder's own.
            if matches!(input, FrontendConfig::Tokens { .. }) && self.share_embeddings {
                return Err(Error::config(
                    "model.share_embeddings",
                    "the source has a vocabulary of its own (model.input): set share_embeddings = false",
                ));
            }
            input.validate("model.input")?;
            if input.dim() != self.d_model {
                return Err(Error::config(
                    "model.input",
                    format!("frames of {} for a model of {}", input.dim(), self.d_model),
                ));
            }
            if self.share_embeddings && !matches!(input, FrontendConfig::Tokens { .. }) {
                return Err(Error::config("model.share_embeddings", "the source is not tokens: nothing to share"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    out_proj: Linear,
    n_head: usize,
}

impl Attention {
    fn new(c: usize, n_head: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let w = Init::Randn { mean: 0.0, stdev: 0.02 };
        Ok(Self {
            q_proj: linear_init(c, c, true, w, vb.pp("q_proj"))?,
            k_proj: linear_init(c, c, true, w, vb.pp("k_proj"))?,
            v_proj: linear_init(c, c, true, w, vb.pp("v_proj"))?,
            out_proj: linear_init(c, c, true, w, vb.pp("out_proj"))?,
            n_head,
        })
    }

    /// Keys and values of `x` (B, S, C), heads side by side (B, S, C) each.
    fn kv(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((self.k_proj.forward(x)?, self.v_proj.forward(x)?))
    }

    /// Queries of `x` (B, T, C) attending to keys and values (B, S, C) →
    /// the projected output (B, T, C), by the fused op.
    fn attend(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        key_lens: Option<&[usize]>,
        causal: bool,
    ) -> candle_core::Result<Tensor> {
        let q = self.q_proj.forward(x)?;
        self.out_proj.forward(&attention(&q, k, v, self.n_head, key_lens, causal)?)
    }
}

#[derive(Debug, Clone)]
struct FeedForward {
    fc1: Linear,
    fc2: Linear,
}

impl FeedForward {
    fn new(c: usize, ff: usize, vb: &VarBuilder) -> candle_core::Result<Self> {
        let w = Init::Randn { mean: 0.0, stdev: 0.02 };
        Ok(Self { fc1: linear_init(c, ff, true, w, vb.pp("fc1"))?, fc2: linear_init(ff, c, true, w, vb.pp("fc2"))? })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.fc2.forward(&crate::ops::gelu::gelu_tanh(&self.fc1.forward(x)?)?)
    }
}

/// A pre-LN encoder block: self-attention, then feed-forward, each added
/// back to the residual stream. Shared with the Transformer forecaster.
#[derive(Debug, Clone)]
pub(crate) struct EncoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    ff: FeedForward,
    final_layer_norm: LayerNorm,
}

impl EncoderLayer {
    /// Block of width `c` with `n_head` heads and feed-forward width `ff`;
    /// `vb` is the block's prefix (e.g. `encoder.layers.0`).
    pub(crate) fn new(c: usize, n_head: usize, ff: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        Ok(Self {
            self_attn: Attention::new(c, n_head, vb.pp("self_attn"))?,
            self_attn_layer_norm: layer_norm(c, 1e-5, vb.pp("self_attn_layer_norm"))?,
            ff: FeedForward::new(c, ff, &vb)?,
            final_layer_norm: layer_norm(c, 1e-5, vb.pp("final_layer_norm"))?,
        })
    }

    /// `x` (B, S, C) → (B, S, C); row b's keys past `key_lens[b]` are padding.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        key_lens: Option<&[usize]>,
        p: f32,
        mut rng: Option<&mut Rng>,
    ) -> candle_core::Result<Tensor> {
        let h = self.self_attn_layer_norm.forward(x)?;
        let (k, v) = self.self_attn.kv(&h)?;
        let y = self.self_attn.attend(&h, &k, &v, key_lens, false)?;
        let x = dropout_add(x, &y, p, rng.as_deref_mut())?;
        let y = self.ff.forward(&self.final_layer_norm.forward(&x)?)?;
        dropout_add(&x, &y, p, rng)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    encoder_attn: Attention,
    encoder_attn_layer_norm: LayerNorm,
    ff: FeedForward,
    final_layer_norm: LayerNorm,
}

/// Decoding state: the encoder's output and, per decoder layer, the
/// self-attention cache and the cross-attention keys and values.
#[derive(Debug, Clone)]
pub struct TransformerState {
    /// Per source, its real (unpadded) length; `None` when nothing is padded.
    pub src_lens: Option<Vec<usize>>,
    /// Per row of the decoder, the source it translates (a row of
    /// `cross_kv` and `src_lens`); `None`: row b translates source b. Beam
    /// search reorders rows without copying the encoder's output.
    pub source_rows: Option<Vec<usize>>,
    /// Per decoder layer, the self-attention keys and values of the steps
    /// so far, (B, S, C) each: positions along dim 1.
    pub self_cache: Vec<KvCache>,
    /// Per decoder layer, cross-attention keys and values of the encoder
    /// output, (sources, S, C) each: computed once per source.
    pub cross_kv: Vec<(Tensor, Tensor)>,
}

impl TransformerState {
    /// Rows `idx` of everything (beam search reorders hypotheses with it).
    pub fn select(&self, idx: &Tensor) -> candle_core::Result<Self> {
        let rows = idx.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?;
        let sources = match &self.source_rows {
            Some(s) => rows.iter().map(|&r| s.get(r as usize).copied()).collect::<Option<Vec<usize>>>(),
            None => Some(rows.iter().map(|&r| r as usize).collect()),
        };
        let Some(sources) = sources else {
            candle_core::bail!(
                "beam rows {rows:?} for a state of {} rows",
                self.source_rows.as_ref().map_or(0, Vec::len)
            );
        };
        Ok(Self {
            src_lens: self.src_lens.clone(),
            source_rows: Some(sources),
            self_cache: self.self_cache.iter().map(|c| c.select(idx)).collect::<candle_core::Result<_>>()?,
            cross_kv: self.cross_kv.clone(),
        })
    }
}

/// The Transformer encoder–decoder.
#[derive(Debug, Clone)]
pub struct TransformerSeq2Seq {
    cfg: TransformerConfig,
    enc_input: Arc<dyn Frontend>, // → (B, S, C)
    dec_embed: Embedding,         // (V, C), also the output head
    enc_pos: Tensor,              // (P, C)
    dec_pos: Tensor,              // (P, C)
    encoder: Vec<EncoderLayer>,
    enc_norm: LayerNorm,
    decoder: Vec<DecoderLayer>,
    dec_norm: LayerNorm,
}

impl TransformerSeq2Seq {
    /// Validates `cfg` and builds the model, its parameters under `vb`.
    pub fn new(cfg: &TransformerConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let (c, v, p) = (cfg.d_model, cfg.vocab_size, cfg.max_positions);
        let w = Init::Randn { mean: 0.0, stdev: 0.02 };
        let (enc_input, dec_embed): (Arc<dyn Frontend>, _) = match &cfg.input {
            None if cfg.share_embeddings => {
                let e = embedding_init(v, c, w, vb.pp("shared"))?;
                (Arc::new(TokenEmbedding(e.clone())), e)
            }
            None => (
                Arc::new(TokenEmbedding(embedding_init(v, c, w, vb.pp("encoder").pp("embed_tokens"))?)),
                embedding_init(v, c, w, vb.pp("decoder").pp("embed_tokens"))?,
            ),
            Some(input) => {
                let at = if matches!(input, FrontendConfig::Tokens { .. }) { "embed_tokens" } else { "input_proj" };
                (
                    input.build(w, vb.pp("encoder").pp(at))?,
                    embedding_init(v, c, w, vb.pp("decoder").pp("embed_tokens"))?,
                )
            }
        };
        let enc = vb.pp("encoder");
        let dec = vb.pp("decoder");
        let ln = |vb: VarBuilder| layer_norm(c, 1e-5, vb);
        let encoder = (0..cfg.n_encoder_layer)
            .map(|i| EncoderLayer::new(c, cfg.n_head, cfg.d_ff, enc.pp("layers").pp(i)))
            .collect::<candle_core::Result<_>>()?;
        let decoder = (0..cfg.n_decoder_layer)
            .map(|i| {
                let l = dec.pp("layers").pp(i);
                Ok(DecoderLayer {
                    self_attn: Attention::new(c, cfg.n_head, l.pp("self_attn"))?,
                    self_attn_layer_norm: ln(l.pp("self_attn_layer_norm"))?,
                    encoder_attn: Attention::new(c, cfg.n_head, l.pp("encoder_attn"))?,
                    encoder_attn_layer_norm: ln(l.pp("encoder_attn_layer_norm"))?,
                    ff: FeedForward::new(c, cfg.d_ff, &l)?,
                    final_layer_norm: ln(l.pp("final_layer_norm"))?,
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            enc_input,
            dec_embed,
            enc_pos: enc.pp("embed_positions").get_with_hints((p, c), "weight", w)?,
            dec_pos: dec.pp("embed_positions").get_with_hints((p, c), "weight", w)?,
            encoder,
            enc_norm: ln(enc.pp("layer_norm"))?,
            decoder,
            dec_norm: ln(dec.pp("layer_norm"))?,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// Frames (B, T, C) plus the positions `offset..offset+T`.
    fn positioned(&self, x: Tensor, pos: &Tensor, offset: usize) -> Result<Tensor> {
        let t = x.dim(1)?;
        super::check_positions("model.max_positions", offset + t, self.cfg.max_positions)?;
        Ok(x.broadcast_add(&pos.narrow(0, offset, t)?.unsqueeze(0)?)?)
    }

    /// Encodes `src` (B, S) with `src_mask` (B, S; 0 on padding) and
    /// returns the decoder's starting state.
    pub fn start(
        &self,
        src: &Tensor,
        src_mask: Option<&Tensor>,
        mut rng: Option<&mut Rng>,
    ) -> Result<TransformerState> {
        let p = self.cfg.dropout;
        let src_lens = src_mask.map(key_lengths).transpose()?;
        let x = self.positioned(self.enc_input.forward(src)?, &self.enc_pos, 0)?;
        let mut x = dropout(&x, p, rng.as_deref_mut())?;
        for l in &self.encoder {
            x = l.forward(&x, src_lens.as_deref(), p, rng.as_deref_mut())?;
        }
        let memory = self.enc_norm.forward(&x)?; // (B, S, C)
        let cross_kv = self.decoder.iter().map(|l| l.encoder_attn.kv(&memory)).collect::<candle_core::Result<_>>()?;
        Ok(TransformerState {
            src_lens,
            source_rows: None,
            self_cache: vec![KvCache::default(); self.decoder.len()],
            cross_kv,
        })
    }

    /// Decoder over `dec_in` (B, T), continuing `state` → logits (B, T, V).
    pub fn decode(&self, dec_in: &Tensor, state: &mut TransformerState, rng: Option<&mut Rng>) -> Result<Tensor> {
        Ok(self.dec_embed.project(&self.decode_hidden(dec_in, state, rng)?)?)
    }

    /// The summed loss of [`Self::smoothed_loss_sum`] with the output head
    /// and the loss fused ([`head_loss`]): no logits tensor (training).
    pub fn head_loss_sum(&self, batch: &Seq2SeqTensors, mut rng: Option<&mut Rng>, eps: f32) -> Result<Tensor> {
        let mask = batch.src_has_pad.then_some(&batch.src_mask);
        let mut state = self.start(&batch.src, mask, rng.as_deref_mut())?;
        let h = self.decode_hidden(&batch.dec_in, &mut state, rng)?; // (B, T, C)
        let (b, t, c) = h.dims3()?;
        let _loss = crate::profile::phase("loss");
        Ok(head_loss(&h.reshape((b * t, c))?, self.dec_embed.weight(), None, &batch.labels, &batch.label_mask, eps)?)
    }

    /// The decoder's final hidden states (B, T, C), before the output head.
    fn decode_hidden(
        &self,
        dec_in: &Tensor,
        state: &mut TransformerState,
        mut rng: Option<&mut Rng>,
    ) -> Result<Tensor> {
        let p = self.cfg.dropout;
        let offset = state.self_cache.first().map_or(0, |c| c.len_on(1));
        let _ = dec_in.dims2()?;
        let x = self.positioned(self.dec_embed.forward(dec_in)?, &self.dec_pos, offset)?;
        let mut x = dropout(&x, p, rng.as_deref_mut())?;
        for (i, l) in self.decoder.iter().enumerate() {
            let h = l.self_attn_layer_norm.forward(&x)?;
            let (k, v) = l.self_attn.kv(&h)?;
            let (k, v) = state.self_cache[i].append_in_place(1, k, v)?;
            // Query t sees the cached steps and itself: keys up to offset + t.
            let y = l.self_attn.attend(&h, &k, &v, None, true)?;
            x = dropout_add(&x, &y, p, rng.as_deref_mut())?;
            let h = l.encoder_attn_layer_norm.forward(&x)?;
            let (ck, cv) = &state.cross_kv[i];
            let q = l.encoder_attn.q_proj.forward(&h)?;
            let (lens, rows) = (state.src_lens.as_deref(), state.source_rows.as_deref());
            let y = l.encoder_attn.out_proj.forward(&attention_rows(
                &q,
                ck,
                cv,
                l.encoder_attn.n_head,
                lens,
                rows,
                false,
            )?)?;
            x = dropout_add(&x, &y, p, rng.as_deref_mut())?;
            let y = l.ff.forward(&l.final_layer_norm.forward(&x)?)?;
            x = dropout_add(&x, &y, p, rng.as_deref_mut())?;
        }
        Ok(self.dec_norm.forward(&x)?)
    }

    /// Summed cross-entropy over supervised tokens, and the logits.
    pub fn loss_sum(&self, batch: &Seq2SeqTensors, rng: Option<&mut Rng>) -> Result<(Tensor, Tensor)> {
        self.smoothed_loss_sum(batch, rng, 0.0)
    }

    /// [`Self::loss_sum`] against targets smoothed by `eps` (training).
    pub fn smoothed_loss_sum(
        &self,
        batch: &Seq2SeqTensors,
        mut rng: Option<&mut Rng>,
        eps: f32,
    ) -> Result<(Tensor, Tensor)> {
        let mask = batch.src_has_pad.then_some(&batch.src_mask);
        let mut state = self.start(&batch.src, mask, rng.as_deref_mut())?;
        let logits = self.decode(&batch.dec_in, &mut state, rng)?;
        let loss = smoothed_sequence_loss_sum(&logits, &batch.labels, Some(&batch.label_mask), eps)?;
        Ok((loss, logits))
    }
}

/// Per row of `mask` (B, S; 1 on real positions, 0 on padding), how many
/// positions are real. Padding must come last, as the batcher puts it.
fn key_lengths(mask: &Tensor) -> Result<Vec<usize>> {
    let rows = mask.to_dtype(candle_core::DType::F32)?.to_vec2::<f32>()?;
    rows.iter()
        .map(|r| {
            let n = r.iter().take_while(|&&m| m > 0.5).count();
            if r[n..].iter().any(|&m| m > 0.5) {
                return Err(Error::setting("a source mask must put its padding last"));
            }
            Ok(n)
        })
        .collect()
}

impl super::Family for TransformerConfig {
    fn validate(&self) -> Result<()> {
        TransformerConfig::validate(self)
    }

    fn build(&self, vb: VarBuilder) -> Result<super::Model> {
        Ok(super::Model::Transformer(TransformerSeq2Seq::new(self, vb)?))
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn set_vocab_size(&mut self, v: usize) {
        self.vocab_size = v;
    }

    fn encoder_input(&self) -> Option<FrontendConfig> {
        Some(self.input.clone().unwrap_or(FrontendConfig::Tokens { vocab_size: self.vocab_size, dim: self.d_model }))
    }
}
