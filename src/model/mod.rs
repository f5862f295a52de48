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

use crate::data::shift::{BatchTensors, Seq2SeqTensors};
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

/// How training computes an encoder–decoder's or language model's loss.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossOptions {
    /// Label smoothing ε in [0, 1): targets 1 − ε on the label, ε spread over the vocabulary.
    pub label_smoothing: f32,
    /// Scheduled sampling: the probability that an encoder–decoder's input token is its own
    /// previous prediction instead of the reference.
    pub scheduled_sampling: f32,
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

    /// Gives an encoder–decoder's encoder its own vocabulary of `v` ids (a
    /// separate source tokenizer): an embedding table of its own, untied
    /// from the decoder's. Other families read no source tokens: no change.
    pub fn set_source_vocab_size(&mut self, v: usize) {
        match self {
            ModelConfig::Seq2seq(m) => m.input = Some(FrontendConfig::Tokens { vocab_size: v, dim: m.emb_dim }),
            ModelConfig::Transformer(m) => {
                m.share_embeddings = false;
                m.input = Some(FrontendConfig::Tokens { vocab_size: v, dim: m.d_model });
            }
            _ => {}
        }
    }

    /// Ids the encoder reads, when it reads its own token vocabulary
    /// (separate source and target vocabularies).
    pub fn source_vocab_size(&self) -> Option<usize> {
        match self {
            ModelConfig::Seq2seq(crate::model::Seq2SeqConfig {
                input: Some(FrontendConfig::Tokens { vocab_size, .. }),
                ..
            })
            | ModelConfig::Transformer(crate::model::TransformerConfig {
                input: Some(FrontendConfig::Tokens { vocab_size, .. }),
                ..
            }) => Some(*vocab_size),
            _ => None,
        }
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
        self.training_loss_sum(batch, rng, LossOptions::default())
    }

    /// [`Model::loss_sum`] as training computes it, with `opts`: token
    /// targets smoothed, and an encoder–decoder's inputs partly its own
    /// predictions. Models that do not predict tokens refuse either.
    pub fn training_loss_sum(
        &self,
        batch: &BatchTensors,
        mut rng: Option<&mut Rng>,
        opts: LossOptions,
    ) -> Result<(Tensor, Tensor)> {
        let eps = opts.label_smoothing;
        if eps > 0.0 && matches!(self, Model::Forecaster(_) | Model::Image(_)) {
            return Err(Error::config("train.label_smoothing", "applies to models that predict tokens"));
        }
        if let BatchTensors::Pairs(b) = batch {
            if let Some(mixed) = self.sampled_inputs(b, rng.as_deref_mut(), opts)? {
                let plain = LossOptions { scheduled_sampling: 0.0, ..opts };
                return self.training_loss_sum(&BatchTensors::Pairs(mixed), rng, plain);
            }
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

    /// The summed loss alone, as training differentiates it: the loss of
    /// [`Model::training_loss_sum`], without the logits. An encoder–decoder's
    /// output layer and loss then run as one op ([`crate::ops::head_loss`]),
    /// which never builds a logits tensor.
    pub fn training_loss(&self, batch: &BatchTensors, mut rng: Option<&mut Rng>, opts: LossOptions) -> Result<Tensor> {
        let BatchTensors::Pairs(b) = batch else {
            return Ok(self.training_loss_sum(batch, rng, opts)?.0);
        };
        if !matches!(self, Model::Seq2seq(_) | Model::Transformer(_)) {
            return Ok(self.training_loss_sum(batch, rng, opts)?.0);
        }
        let mixed = self.sampled_inputs(b, rng.as_deref_mut(), opts)?;
        let b = mixed.as_ref().unwrap_or(b);
        match self {
            Model::Seq2seq(m) => m.head_loss_sum(b, rng, opts.label_smoothing),
            Model::Transformer(m) => m.head_loss_sum(b, rng, opts.label_smoothing),
            _ => unreachable!("checked above"),
        }
    }

    /// The decoder inputs scheduled sampling trains on, when it is on
    /// (`opts.scheduled_sampling` > 0, and training: `rng` given).
    fn sampled_inputs(
        &self,
        b: &Seq2SeqTensors,
        rng: Option<&mut Rng>,
        opts: LossOptions,
    ) -> Result<Option<Seq2SeqTensors>> {
        match rng {
            Some(r) if opts.scheduled_sampling > 0.0 => {
                Ok(Some(self.scheduled_sampling_inputs(b, r, opts.scheduled_sampling)?))
            }
            _ => Ok(None),
        }
    }

    /// Scheduled sampling in two passes (Bengio et al. 2015; the parallel form
    /// of Mihaylova & Martins 2019): a teacher-forced pass without gradient
    /// predicts every next token, then each decoder input after `BOS` is
    /// replaced, with probability `p`, by the prediction made one step before
    /// it. Training on the mixed inputs teaches the decoder to continue from
    /// its own mistakes, which free-running decoding will feed it.
    fn scheduled_sampling_inputs(&self, b: &Seq2SeqTensors, rng: &mut Rng, p: f32) -> Result<Seq2SeqTensors> {
        let (_, logits) = self.loss_sum(&BatchTensors::Pairs(b.clone()), None)?;
        let pred = logits.detach().argmax(candle_core::D::Minus1)?.to_vec2::<u32>()?; // (B, T)
        let mut dec = b.dec_in.to_vec2::<u32>()?;
        let mask = b.label_mask.to_vec2::<f32>()?;
        for ((row, pr), m) in dec.iter_mut().zip(&pred).zip(&mask) {
            for t in 1..row.len() {
                // Position t reads y[t-1]: a real token iff label t is supervised.
                if m[t] > 0.0 && rng.next_f32() < p {
                    row[t] = pr[t - 1];
                }
            }
        }
        let (bn, t) = b.dec_in.dims2()?;
        let flat: Vec<u32> = dec.into_iter().flatten().collect();
        Ok(Seq2SeqTensors { dec_in: Tensor::from_vec(flat, (bn, t), b.dec_in.device())?, ..b.clone() })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::shift::Seq2SeqBatch;
    use crate::data::tokenizer::{BOS, EOS, PAD};
    use crate::data::Pair;

    /// With p = 1 every real decoder input after BOS is the prediction made
    /// one step before; with p = 0 nothing changes; padding is never touched.
    #[test]
    fn scheduled_sampling_feeds_back_the_previous_prediction() {
        let cfg = ModelConfig::Seq2seq(crate::model::Seq2SeqConfig { vocab_size: 12, ..Default::default() });
        let store = crate::nn::ParamStore::new(3, &candle_core::Device::Cpu);
        let model = Model::new(&cfg, store.var_builder()).unwrap();
        let pairs =
            [Pair { source: vec![4, 5, 6], target: vec![7, 8, 9, 10] }, Pair { source: vec![5], target: vec![6] }];
        let refs: Vec<&Pair> = pairs.iter().collect();
        let b = Seq2SeqBatch::new(&refs, PAD, BOS, EOS).tensors(&candle_core::Device::Cpu).unwrap();
        let (_, logits) = model.loss_sum(&BatchTensors::Pairs(b.clone()), None).unwrap();
        let pred = logits.argmax(candle_core::D::Minus1).unwrap().to_vec2::<u32>().unwrap();
        let mut rng = Rng::new(1);
        let all = model.scheduled_sampling_inputs(&b, &mut rng, 1.0).unwrap().dec_in.to_vec2::<u32>().unwrap();
        let none = model.scheduled_sampling_inputs(&b, &mut rng, 0.0).unwrap().dec_in;
        assert_eq!(none.to_vec2::<u32>().unwrap(), b.dec_in.to_vec2::<u32>().unwrap());
        assert_eq!(all[0], vec![BOS, pred[0][0], pred[0][1], pred[0][2], pred[0][3]]);
        assert_eq!(all[1], vec![BOS, pred[1][0], PAD, PAD, PAD], "padding stays padding");
    }
}
