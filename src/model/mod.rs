//! Models. Each is built with `Model::new(&cfg, vb)`, where the dotted
//! `vb.pp(..)` names are the safetensors keys (tests guard them).
//! [`ModelConfig`] and [`Model`] put every family behind one interface for
//! the trainer, the checkpoint code and the decoders.

pub mod causal_lm;
pub mod encdec;
pub mod forecaster;
pub mod frontend;
pub mod gpt2;
pub mod image;
pub mod llama;
pub mod seq2seq;
pub mod transformer;

pub use causal_lm::CausalLm;
pub use encdec::{DecState, EncDec};
pub use forecaster::{Forecaster, ForecasterConfig, ForecasterKind};
pub use frontend::{Frontend, FrontendConfig};
pub use gpt2::{gpt2, Gpt2, Gpt2Config, GptActivation};
pub use image::{ImageClassifier, ImageConfig, ImageKind};
pub use llama::{llama, Llama, LlamaConfig};
pub use seq2seq::{Seq2Seq, Seq2SeqConfig};
pub use transformer::{TransformerConfig, TransformerSeq2Seq};

use crate::data::shift::BatchTensors;
use crate::error::{Error, Result};
use crate::nn::causal_attention::KvCache;
use crate::nn::lora::LoraConfig;
use crate::nn::loss::smoothed_sequence_loss_sum;
use crate::rng::Rng;
use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

pub(crate) use crate::limits::{check_params, check_sizes};
pub use crate::limits::{MAX_PARAMS, MAX_SIZE};

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
    /// Image classifier (CNN or row-RNN).
    Image(ImageConfig),
}

/// What every family's config answers. [`ModelConfig`] dispatches to it in
/// one place, [`ModelConfig::family`]: a new family is a variant there, a
/// config implementing this trait and the model it builds.
pub trait Family {
    /// Checks every field; the error names the first impossible one.
    fn validate(&self) -> Result<()>;
    /// The model this config describes, its parameters created under `vb`.
    fn build(&self, vb: VarBuilder) -> Result<Model>;
    /// Ids in the vocabulary; 0 for a family that reads values.
    fn vocab_size(&self) -> usize {
        0
    }
    /// Sizes the vocabulary from the tokenizer.
    fn set_vocab_size(&mut self, _v: usize) {}
    /// A language model's start and end-of-text ids (from its tokenizer).
    fn set_special_ids(&mut self, _bos: u32, _eos: u32) {}
    /// A causal language model's context length.
    fn context(&self) -> Option<usize> {
        None
    }
    /// The LoRA adapters this model carries, if any.
    fn lora(&self) -> Option<&LoraConfig> {
        None
    }
    /// Sets (or removes) LoRA adapters, where the family takes them.
    fn set_lora(&mut self, lora: Option<LoraConfig>) -> Result<()> {
        match lora {
            None => Ok(()),
            Some(_) => Err(Error::config("lora", "LoRA applies to GPT-2 and Llama models")),
        }
    }
    /// `config.json` fields for `transformers`, when the family has a layout there.
    fn to_hf(&self) -> Option<serde_json::Value> {
        None
    }
    /// Tensor names in a safetensors file that belong to no parameter but
    /// are harmless (buffers some `transformers` versions save).
    fn ignorable(&self, _name: &str) -> bool {
        false
    }
    /// What an encoder–decoder's encoder reads; `None` for a decoder-only model.
    fn encoder_input(&self) -> Option<FrontendConfig> {
        None
    }
}

impl ModelConfig {
    /// The family's config behind the common interface: the registry.
    pub fn family(&self) -> &dyn Family {
        match self {
            ModelConfig::Seq2seq(c) => c,
            ModelConfig::Gpt2(c) => c,
            ModelConfig::Llama(c) => c,
            ModelConfig::Transformer(c) => c,
            ModelConfig::Forecaster(c) => c,
            ModelConfig::Image(c) => c,
        }
    }

    /// [`ModelConfig::family`], to change.
    pub fn family_mut(&mut self) -> &mut dyn Family {
        match self {
            ModelConfig::Seq2seq(c) => c,
            ModelConfig::Gpt2(c) => c,
            ModelConfig::Llama(c) => c,
            ModelConfig::Transformer(c) => c,
            ModelConfig::Forecaster(c) => c,
            ModelConfig::Image(c) => c,
        }
    }

    /// Checks every field; the error names the first impossible one.
    pub fn validate(&self) -> Result<()> {
        self.family().validate()
    }

    /// Ids in the vocabulary (0 for a forecaster).
    pub fn vocab_size(&self) -> usize {
        self.family().vocab_size()
    }

    /// Sizes the vocabulary from the tokenizer.
    pub fn set_vocab_size(&mut self, v: usize) {
        self.family_mut().set_vocab_size(v)
    }

    /// Sets a language model's start and end-of-text ids (from its tokenizer).
    pub fn set_special_ids(&mut self, bos: u32, eos: u32) {
        self.family_mut().set_special_ids(bos, eos)
    }

    /// Whether the model reads one stream of text (decoder-only).
    pub fn is_causal(&self) -> bool {
        self.family().context().is_some()
    }

    /// Whether the model classifies images.
    pub fn is_image(&self) -> bool {
        matches!(self, ModelConfig::Image(_))
    }

    /// Whether the model forecasts numbers.
    pub fn is_forecaster(&self) -> bool {
        matches!(self, ModelConfig::Forecaster(_))
    }

    /// Context length of a causal model.
    pub fn context(&self) -> Option<usize> {
        self.family().context()
    }

    /// The LoRA adapters this model carries, if any.
    pub fn lora(&self) -> Option<&LoraConfig> {
        self.family().lora()
    }

    /// Sets (or removes) the LoRA adapters; only GPT-2 and Llama take them.
    pub fn set_lora(&mut self, lora: Option<LoraConfig>) -> Result<()> {
        self.family_mut().set_lora(lora)
    }

    /// `config.json` fields for `transformers`, when the family has a layout there.
    pub fn to_hf(&self) -> Option<serde_json::Value> {
        self.family().to_hf()
    }

    /// Tensor names in a safetensors file that belong to no parameter but
    /// are harmless (buffers some `transformers` versions save).
    pub fn ignorable(&self, name: &str) -> bool {
        self.family().ignorable(name)
    }
}

/// A model of any family.
#[derive(Debug, Clone)]
pub enum Model {
    /// The RNN encoder–decoder.
    Seq2seq(Seq2Seq),
    /// GPT-2 or Llama.
    Causal(CausalLm),
    /// The Transformer encoder–decoder.
    Transformer(TransformerSeq2Seq),
    /// A time-series forecaster (LSTM, GRU or Transformer).
    Forecaster(Forecaster),
    /// An image classifier.
    Image(ImageClassifier),
}

impl Model {
    /// The model `cfg` describes, its parameters created under `vb` (whose
    /// dotted names are the safetensors keys).
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        cfg.family().build(vb)
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

    /// The image classifier inside, if this is one.
    pub fn image(&self) -> Option<&ImageClassifier> {
        match self {
            Model::Image(m) => Some(m),
            _ => None,
        }
    }

    /// The forecaster inside, if this is one.
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
        self.training_loss_sum(batch, rng, 0.0)
    }

    /// [`Model::loss_sum`] with the token targets smoothed by `label_smoothing`
    /// (ε on every id, 1 − ε on the label), as training uses it; models that
    /// do not predict tokens refuse an ε above 0.
    pub fn training_loss_sum(
        &self,
        batch: &BatchTensors,
        rng: Option<&mut Rng>,
        label_smoothing: f32,
    ) -> Result<(Tensor, Tensor)> {
        let eps = label_smoothing;
        if eps > 0.0 && matches!(self, Model::Forecaster(_) | Model::Image(_)) {
            return Err(Error::config("train.label_smoothing", "applies to models that predict tokens"));
        }
        match (self, batch) {
            (Model::Seq2seq(m), BatchTensors::Pairs(b)) => m.smoothed_loss_sum(b, rng, eps),
            (Model::Transformer(m), BatchTensors::Pairs(b)) => m.smoothed_loss_sum(b, rng, eps),
            (Model::Forecaster(m), BatchTensors::Forecast(b)) => m.loss_sum(b, rng),
            (Model::Image(m), BatchTensors::Images(b)) => m.loss_sum(b, rng),
            (Model::Image(_), _) | (_, BatchTensors::Images(_)) => {
                Err(Error::config("model", "image classifiers train on images, and only they do"))
            }
            (Model::Forecaster(_), _) | (_, BatchTensors::Forecast(_)) => {
                Err(Error::config("model", "forecasters train on numeric series, and only forecasters do"))
            }
            (_, BatchTensors::Causal(b)) => {
                let logits = self
                    .causal_forward(&b.inputs, None, rng)
                    .ok_or_else(|| Error::config("model", "an encoder–decoder cannot train on plain text"))??;
                let loss = smoothed_sequence_loss_sum(&logits, &b.labels, b.mask.as_ref(), eps)?;
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
