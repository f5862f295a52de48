//! Models. Each is built with `Model::new(&cfg, vb)`, where the dotted
//! `vb.pp(..)` names are the safetensors keys (tests guard them).
//! [`ModelConfig`] and [`Model`] put every family behind one interface for
//! the trainer, the checkpoint code and the decoders.

pub mod causal_lm;
pub mod encdec;
pub mod forecaster;
pub mod gpt2;
pub mod llama;
pub mod seq2seq;
pub mod transformer;

pub use causal_lm::CausalLm;
pub use encdec::{DecState, EncDec};
pub use forecaster::{Forecaster, ForecasterConfig, ForecasterKind};
pub use gpt2::{gpt2, Gpt2, Gpt2Config, GptActivation};
pub use llama::{llama, Llama, LlamaConfig};
pub use seq2seq::{Seq2Seq, Seq2SeqConfig};
pub use transformer::{TransformerConfig, TransformerSeq2Seq};

use crate::data::shift::BatchTensors;
use crate::error::{Error, Result};
use crate::nn::causal_attention::KvCache;
use crate::nn::loss::sequence_loss_sum;
use crate::rng::Rng;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Refuses a forward pass that needs more positions than the model has.
pub(crate) fn check_positions(field: &str, needed: usize, max: usize) -> Result<()> {
    if needed > max {
        return Err(Error::config(field, format!("{needed} positions requested, the model has {max}")));
    }
    Ok(())
}

/// Which model, and its shape. Saved in every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelConfig {
    /// RNN encoder–decoder (LSTM/GRU, optional attention).
    Seq2seq(Seq2SeqConfig),
    /// Decoder-only Transformer, GPT-2 layout.
    Gpt2(Gpt2Config),
    /// Decoder-only Transformer, Llama layout.
    Llama(LlamaConfig),
    /// Transformer encoder–decoder.
    Transformer(TransformerConfig),
    /// Numeric forecaster (RNN encoder–decoder or Transformer encoder).
    Forecaster(ForecasterConfig),
}

impl ModelConfig {
    pub fn validate(&self) -> Result<()> {
        match self {
            ModelConfig::Seq2seq(c) => c.validate(),
            ModelConfig::Gpt2(c) => c.validate(),
            ModelConfig::Llama(c) => c.validate(),
            ModelConfig::Transformer(c) => c.validate(),
            ModelConfig::Forecaster(c) => c.validate(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            ModelConfig::Seq2seq(c) => c.vocab_size,
            ModelConfig::Gpt2(c) => c.vocab_size,
            ModelConfig::Llama(c) => c.vocab_size,
            ModelConfig::Transformer(c) => c.vocab_size,
            ModelConfig::Forecaster(_) => 0,
        }
    }

    pub fn set_vocab_size(&mut self, v: usize) {
        match self {
            ModelConfig::Seq2seq(c) => c.vocab_size = v,
            ModelConfig::Gpt2(c) => c.vocab_size = v,
            ModelConfig::Llama(c) => c.vocab_size = v,
            ModelConfig::Transformer(c) => c.vocab_size = v,
            ModelConfig::Forecaster(_) => {}
        }
    }

    /// Sets a language model's start and end-of-text ids (from its tokenizer).
    pub fn set_special_ids(&mut self, bos: u32, eos: u32) {
        match self {
            // GPT-2 starts and ends documents with the same <|endoftext|>.
            ModelConfig::Gpt2(c) => (c.bos_token_id, c.eos_token_id) = (eos, eos),
            ModelConfig::Llama(c) => (c.bos_token_id, c.eos_token_id) = (bos, eos),
            ModelConfig::Seq2seq(_) | ModelConfig::Transformer(_) | ModelConfig::Forecaster(_) => {}
        }
    }

    /// Whether the model reads one stream of text (decoder-only).
    pub fn is_causal(&self) -> bool {
        matches!(self, ModelConfig::Gpt2(_) | ModelConfig::Llama(_))
    }

    /// Whether the model forecasts numbers.
    pub fn is_forecaster(&self) -> bool {
        matches!(self, ModelConfig::Forecaster(_))
    }

    /// Context length of a causal model.
    pub fn context(&self) -> Option<usize> {
        match self {
            ModelConfig::Gpt2(c) => Some(c.n_positions),
            ModelConfig::Llama(c) => Some(c.max_position_embeddings),
            _ => None,
        }
    }

    /// `config.json` fields for `transformers`, when the family has a layout there.
    /// The LoRA adapters this model carries, if any.
    pub fn lora(&self) -> Option<&crate::nn::lora::LoraConfig> {
        match self {
            ModelConfig::Gpt2(c) => c.lora.as_ref(),
            ModelConfig::Llama(c) => c.lora.as_ref(),
            _ => None,
        }
    }

    /// Sets (or removes) the LoRA adapters; only GPT-2 and Llama take them.
    pub fn set_lora(&mut self, lora: Option<crate::nn::lora::LoraConfig>) -> crate::Result<()> {
        match self {
            ModelConfig::Gpt2(c) => c.lora = lora,
            ModelConfig::Llama(c) => c.lora = lora,
            _ if lora.is_none() => {}
            _ => return Err(crate::Error::config("lora", "LoRA applies to GPT-2 and Llama models")),
        }
        Ok(())
    }

    pub fn to_hf(&self) -> Option<serde_json::Value> {
        match self {
            ModelConfig::Gpt2(c) => Some(c.to_hf()),
            ModelConfig::Llama(c) => Some(c.to_hf()),
            _ => None,
        }
    }

    /// Tensor names in a safetensors file that belong to no parameter but
    /// are harmless (buffers some `transformers` versions save).
    pub fn ignorable(&self, name: &str) -> bool {
        match self {
            ModelConfig::Gpt2(_) => {
                name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") || name == "lm_head.weight"
            }
            ModelConfig::Llama(c) => {
                name.ends_with("rotary_emb.inv_freq") || (c.tie_word_embeddings && name == "lm_head.weight")
            }
            _ => false,
        }
    }
}

/// A model of any family.
#[derive(Debug, Clone)]
pub enum Model {
    Seq2seq(Seq2Seq),
    /// GPT-2 or Llama.
    Causal(CausalLm),
    Transformer(TransformerSeq2Seq),
    Forecaster(Forecaster),
}

impl Model {
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg {
            ModelConfig::Seq2seq(c) => Model::Seq2seq(Seq2Seq::new(c, vb)?),
            ModelConfig::Gpt2(c) => Model::Causal(gpt2(c, vb)?),
            ModelConfig::Llama(c) => Model::Causal(llama(c, vb)?),
            ModelConfig::Transformer(c) => Model::Transformer(TransformerSeq2Seq::new(c, vb)?),
            ModelConfig::Forecaster(c) => Model::Forecaster(Forecaster::new(c, vb)?),
        })
    }

    /// The RNN encoder–decoder, if this is one.
    pub fn seq2seq(&self) -> Option<&Seq2Seq> {
        match self {
            Model::Seq2seq(m) => Some(m),
            _ => None,
        }
    }

    /// Either encoder–decoder, for the decoders.
    pub fn encoder_decoder(&self) -> Option<EncDec<'_>> {
        match self {
            Model::Seq2seq(m) => Some(EncDec::Rnn(m)),
            Model::Transformer(m) => Some(EncDec::Transformer(m)),
            _ => None,
        }
    }

    /// Causal forward: `ids` (B, T) → logits (B, T, V), continuing `cache`.
    /// `None` for an encoder–decoder.
    pub fn causal_forward(
        &self,
        ids: &Tensor,
        cache: Option<&mut [KvCache]>,
        rng: Option<&mut Rng>,
    ) -> Option<Result<Tensor>> {
        match self {
            Model::Causal(m) => Some(m.forward(ids, cache, rng)),
            _ => None,
        }
    }

    /// The forecaster, if this is one.
    pub fn forecaster(&self) -> Option<&Forecaster> {
        match self {
            Model::Forecaster(m) => Some(m),
            _ => None,
        }
    }

    /// Summed cross-entropy over the batch's supervised tokens, and the
    /// logits (B, T, V); for a forecaster, the summed regression loss over
    /// the forecast values, and the forecast (B, H, N). `rng` enables dropout.
    pub fn loss_sum(&self, batch: &BatchTensors, rng: Option<&mut Rng>) -> Result<(Tensor, Tensor)> {
        match (self, batch) {
            (Model::Seq2seq(m), BatchTensors::Pairs(b)) => m.loss_sum(b, rng),
            (Model::Transformer(m), BatchTensors::Pairs(b)) => m.loss_sum(b, rng),
            (Model::Forecaster(m), BatchTensors::Forecast(b)) => m.loss_sum(b, rng),
            (Model::Forecaster(_), _) | (_, BatchTensors::Forecast(_)) => {
                Err(Error::config("model", "forecasters train on numeric series, and only forecasters do"))
            }
            (_, BatchTensors::Causal(b)) => {
                let logits = self
                    .causal_forward(&b.inputs, None, rng)
                    .ok_or_else(|| Error::config("model", "an encoder–decoder cannot train on plain text"))??;
                let loss = sequence_loss_sum(&logits, &b.labels, b.mask.as_ref())?;
                Ok((loss, logits))
            }
            _ => Err(Error::config("model", "a causal language model cannot train on pairs")),
        }
    }

    /// An empty key/value cache, one entry per block.
    pub fn new_cache(&self) -> Vec<KvCache> {
        let n = match self {
            Model::Causal(m) => m.n_layer(),
            _ => 0,
        };
        vec![KvCache::default(); n]
    }
}

/// An integer field of a `transformers` `config.json`, or an error naming it.
pub(crate) fn hf_usize(v: &serde_json::Value, k: &str) -> std::result::Result<usize, String> {
    v.get(k).and_then(|x| x.as_u64()).map(|x| x as usize).ok_or_else(|| format!("missing or non-integer \"{k}\""))
}
