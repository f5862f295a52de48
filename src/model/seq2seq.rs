//! The seed model: an RNN encoder whose final state starts an RNN decoder
//! that reads the target shifted right (`[BOS] + y`) and predicts `y + [EOS]`
//! (the Keras teacher-forcing example), with optional GRU cells, stacked
//! layers, dropout and Luong dot attention over the encoder outputs.
//!
//! Inference is split as in the reference: [`Seq2Seq::encode`] once, then
//! [`Seq2Seq::decode`] one step at a time, carrying the decoder state.

use super::frontend::{Frontend, FrontendConfig};
use crate::data::shift::Seq2SeqTensors;
use crate::error::{Error, Result};
use crate::nn::attention::LuongAttention;
use crate::nn::dropout::dropout;
use crate::nn::embedding::{embedding, Embedding};
use crate::nn::linear::{linear, Linear};
use crate::nn::loss::smoothed_sequence_loss_sum;
use crate::nn::rnn::{CellKind, Rnn, RnnState};
use crate::rng::Rng;
use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Attention over encoder outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// The decoder sees the source only through the encoder's final state.
    None,
    /// Luong dot-product attention.
    Dot,
}

/// The encoder–decoder's shape. Saved in every checkpoint's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2SeqConfig {
    /// Ids in the target vocabulary (and the source's, unless `input` gives the
    /// source its own), specials included (1004 for the seed).
    pub vocab_size: usize,
    /// Embedding width, e.g. 256.
    pub emb_dim: usize,
    /// RNN hidden width, e.g. 128.
    pub hidden: usize,
    /// Stacked RNN layers in encoder and decoder, e.g. 1.
    pub n_layer: usize,
    /// `lstm` or `gru`.
    pub cell: CellKind,
    /// `none` (the seed) or `dot`.
    pub attention: AttentionKind,
    /// Dropout on embeddings, between layers and before the output, e.g. 0.1.
    pub dropout: f32,
    /// Initial LSTM forget-gate bias added to PyTorch's init, e.g. 1.0.
    pub forget_bias: f32,
    /// Variational dropout (Gal & Ghahramani 2016) in every RNN layer of
    /// encoder and decoder: one mask per sequence, the same at every step, on
    /// the layer's input, its recurrent state and the stack's output (0: off).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub variational_dropout: f32,
    /// What the encoder reads; by default (`None`) token ids of the shared
    /// vocabulary through an `emb_dim` table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<FrontendConfig>,
}

impl Default for Seq2SeqConfig {
    /// The seed: Embedding 256 → LSTM 128, no attention.
    fn default() -> Self {
        Self {
            vocab_size: 1004,
            emb_dim: 256,
            hidden: 128,
            n_layer: 1,
            cell: CellKind::Lstm,
            attention: AttentionKind::None,
            dropout: 0.0,
            forget_bias: 1.0,
            variational_dropout: 0.0,
            input: None,
        }
    }
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

impl Seq2SeqConfig {
    /// Checks the shape: sizes at least 1, dropout in [0, 1), and a valid front-end.
    pub fn validate(&self) -> Result<()> {
        super::check_sizes(&[
            ("model.vocab_size", self.vocab_size),
            ("model.emb_dim", self.emb_dim),
            ("model.hidden", self.hidden),
            ("model.n_layer", self.n_layer),
        ])?;
        let (v, e, h, l) = (self.vocab_size, self.emb_dim, self.hidden, self.n_layer);
        // Two embeddings, the output layer, and per layer (both sides) 4H·(E + H) gates.
        super::check_params(&[
            ("model.vocab_size", &[3, v, e.max(h)]),
            ("model.n_layer", &[2, l, 4, h, e.max(h) + h]),
        ])?;
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config("model.dropout", format!("must be in [0, 1), got {}", self.dropout)));
        }
        if !(0.0..1.0).contains(&self.variational_dropout) {
            return Err(Error::config(
                "model.variational_dropout",
                format!("must be in [0, 1), got {}", self.variational_dropout),
            ));
        }
        // `input = { kind = "tokens" }` is a source vocabulary of its own
        // (separate vocabularies); unset, the encoder reads the shared one.
        self.input().validate("model.input")
    }

    /// The encoder's front-end.
    pub fn input(&self) -> FrontendConfig {
        self.input.clone().unwrap_or(FrontendConfig::Tokens { vocab_size: self.vocab_size, dim: self.emb_dim })
    }
}

/// What the encoder hands the decoder.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// (B, S, H) top-layer outputs, for attention.
    pub outputs: Tensor,
    /// (B, 1, S) −1e9 on source padding; `None` when there is none.
    pub bias: Option<Tensor>,
    /// Final state of every layer: the decoder's initial state.
    pub states: Vec<RnnState>,
}

impl Encoded {
    /// Rows `idx` (B') of everything, for beam search.
    pub fn select(&self, idx: &Tensor) -> Result<Self> {
        Ok(Self {
            outputs: self.outputs.index_select(idx, 0)?,
            bias: self.bias.as_ref().map(|b| b.index_select(idx, 0)).transpose()?,
            states: self.states.iter().map(|s| s.select(idx)).collect::<candle_core::Result<_>>()?,
        })
    }
}

/// The encoder–decoder.
#[derive(Debug, Clone)]
pub struct Seq2Seq {
    cfg: Seq2SeqConfig,
    enc_input: Arc<dyn Frontend>,
    enc_rnn: Rnn,
    dec_emb: Embedding,
    dec_rnn: Rnn,
    attn: Option<LuongAttention>,
    out: Linear,
}

impl Seq2Seq {
    /// Validates `cfg` and builds the model, its parameters under `vb`.
    pub fn new(cfg: &Seq2SeqConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let (e, h, v) = (cfg.emb_dim, cfg.hidden, cfg.vocab_size);
        let rnn = |i, vb: VarBuilder| {
            Rnn::new(cfg.cell, i, h, cfg.n_layer, cfg.dropout, cfg.forget_bias, vb.pp("rnn"))
                .map(|r| r.with_variational(cfg.variational_dropout))
        };
        let enc = vb.pp("encoder");
        let dec = vb.pp("decoder");
        let input = cfg.input();
        let at = if matches!(input, FrontendConfig::Tokens { .. }) { "embedding" } else { "input_proj" };
        // PyTorch's nn.Embedding initialisation: standard normal.
        let enc_input = input.build(Init::Randn { mean: 0.0, stdev: 1.0 }, enc.pp(at))?;
        Ok(Self {
            cfg: cfg.clone(),
            enc_rnn: rnn(enc_input.dim(), enc)?,
            enc_input,
            dec_emb: embedding(v, e, dec.pp("embedding"))?,
            dec_rnn: rnn(e, dec.clone())?,
            attn: match cfg.attention {
                AttentionKind::Dot => Some(LuongAttention::new(h, dec.clone())?),
                AttentionKind::None => None,
            },
            out: linear(h, v, true, dec.pp("out"))?,
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &Seq2SeqConfig {
        &self.cfg
    }

    /// `src` (B, S) ids (or what the front-end reads); `src_mask` (B, S), 0
    /// on padding, or `None` if the batch has no padding.
    pub fn encode(&self, src: &Tensor, src_mask: Option<&Tensor>, mut rng: Option<&mut Rng>) -> Result<Encoded> {
        let x = dropout(&self.enc_input.forward(src)?, self.cfg.dropout, rng.as_deref_mut())?; // (B, S, E)
        let (outputs, states) = self.enc_rnn.forward(&x, None, src_mask, rng)?;
        let bias = match src_mask {
            Some(m) => Some((m.affine(1e9, -1e9)?).unsqueeze(1)?), // (B, 1, S): 0 real, −1e9 pad
            None => None,
        };
        Ok(Encoded { outputs, bias, states })
    }

    /// Decoder over `dec_in` (B, T) from `states` → logits (B, T, V) and the
    /// new states. Step-by-step decoding calls it with T = 1.
    pub fn decode(
        &self,
        enc: &Encoded,
        dec_in: &Tensor,
        states: &[RnnState],
        rng: Option<&mut Rng>,
    ) -> Result<(Tensor, Vec<RnnState>)> {
        let (h, states) = self.decode_hidden(enc, dec_in, states, rng)?;
        Ok((self.out.forward(&h)?, states))
    }

    /// [`Self::decode`] up to the output layer: hidden states (B, T, H).
    fn decode_hidden(
        &self,
        enc: &Encoded,
        dec_in: &Tensor,
        states: &[RnnState],
        mut rng: Option<&mut Rng>,
    ) -> Result<(Tensor, Vec<RnnState>)> {
        let x = dropout(&self.dec_emb.forward(dec_in)?, self.cfg.dropout, rng.as_deref_mut())?; // (B, T, E)
        let (h, states) = self.dec_rnn.forward(&x, Some(states), None, rng.as_deref_mut())?; // (B, T, H)
        let h = match &self.attn {
            Some(a) => a.forward(&h, &enc.outputs, enc.bias.as_ref())?,
            None => h,
        };
        Ok((dropout(&h, self.cfg.dropout, rng)?, states))
    }

    /// The summed loss of [`Self::smoothed_loss_sum`] with the output layer
    /// and the loss fused ([`crate::ops::head_loss`]): no logits tensor
    /// (training). An output layer with a LoRA adapter takes the plain path.
    pub fn head_loss_sum(&self, batch: &Seq2SeqTensors, mut rng: Option<&mut Rng>, eps: f32) -> Result<Tensor> {
        if self.out.has_lora() {
            return Ok(self.smoothed_loss_sum(batch, rng, eps)?.0);
        }
        let mask = batch.src_has_pad.then_some(&batch.src_mask);
        let enc = self.encode(&batch.src, mask, rng.as_deref_mut())?;
        let (h, _) = self.decode_hidden(&enc, &batch.dec_in, &enc.states, rng)?; // (B, T, H)
        let (b, t, c) = h.dims3()?;
        let _loss = crate::profile::phase("loss");
        let (w, bias) = (self.out.weight(), self.out.bias());
        Ok(crate::ops::head_loss::head_loss(&h.reshape((b * t, c))?, w, bias, &batch.labels, &batch.label_mask, eps)?)
    }

    /// Teacher-forced logits (B, T, V) for a batch.
    pub fn forward(&self, batch: &Seq2SeqTensors, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let mask = batch.src_has_pad.then_some(&batch.src_mask);
        let enc = self.encode(&batch.src, mask, rng.as_deref_mut())?;
        let (logits, _) = self.decode(&enc, &batch.dec_in, &enc.states, rng)?;
        Ok(logits)
    }

    /// Summed cross-entropy over supervised tokens, and the logits.
    pub fn loss_sum(&self, batch: &Seq2SeqTensors, rng: Option<&mut Rng>) -> Result<(Tensor, Tensor)> {
        self.smoothed_loss_sum(batch, rng, 0.0)
    }

    /// [`Self::loss_sum`] against targets smoothed by `eps` (training).
    pub fn smoothed_loss_sum(
        &self,
        batch: &Seq2SeqTensors,
        rng: Option<&mut Rng>,
        eps: f32,
    ) -> Result<(Tensor, Tensor)> {
        let logits = self.forward(batch, rng)?;
        let loss = smoothed_sequence_loss_sum(&logits, &batch.labels, Some(&batch.label_mask), eps)?;
        Ok((loss, logits))
    }
}

impl super::Family for Seq2SeqConfig {
    fn validate(&self) -> Result<()> {
        Seq2SeqConfig::validate(self)
    }

    fn build(&self, vb: VarBuilder) -> Result<super::Model> {
        Ok(super::Model::Seq2seq(Seq2Seq::new(self, vb)?))
    }

    fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    fn set_vocab_size(&mut self, v: usize) {
        self.vocab_size = v;
    }

    fn encoder_input(&self) -> Option<FrontendConfig> {
        Some(self.input())
    }
}
