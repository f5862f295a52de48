//! How to train: the `train` table of a run config (steps, batch, optimizer,
//! schedule, evaluation and checkpoint cadence, what stays frozen). Plain
//! serde data, saved in every checkpoint's `config.json`.

use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::ops::cpu::Precision;
use crate::optim::{OptimizerConfig, Schedule};
use serde::{Deserialize, Serialize};

/// What to do when a loss or gradient is NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonFinitePolicy {
    /// Stop with an error naming the step (no checkpoint is written).
    Stop,
    /// Skip the update, count it, and go on.
    Skip,
}

/// Which evaluation picks the best checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelectBy {
    /// The lowest teacher-forced validation loss.
    Loss,
    /// The highest BLEU of greedy decoding of the validation pairs (encoder–decoders).
    Bleu,
}

/// How to train. Saved in every checkpoint's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps, e.g. 2000.
    pub steps: usize,
    /// Examples per micro-batch, e.g. 64.
    pub batch_size: usize,
    /// Micro-batches per optimizer step; the loss is averaged over all their
    /// supervised tokens together, e.g. 1.
    pub grad_accum: usize,
    /// Seed for initialisation, data order and dropout, e.g. 1337.
    pub seed: u64,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Clip the global gradient norm to this; 0 turns clipping off, e.g. 1.0.
    pub grad_clip: f32,
    /// Evaluate on the validation split every N steps (and always at the end), e.g. 250.
    pub eval_every: usize,
    /// Most validation batches per evaluation of text data (0: all), e.g. 200.
    pub eval_batches: usize,
    /// Write a checkpoint every N steps (and at the end, and at each new best), e.g. 500.
    pub save_every: usize,
    /// Checkpoints kept besides the best, newest first, e.g. 3.
    pub keep_last: usize,
    /// Stop after this many evaluations without a better validation loss (0: never), e.g. 5.
    pub patience: usize,
    /// `stop` or `skip` on a NaN/infinite loss or gradient.
    pub on_nonfinite: NonFinitePolicy,
    /// Label smoothing ε for models that predict tokens: the training target
    /// is 1 − ε on the label and ε spread over the vocabulary (0: off; 0.1 is
    /// the Transformer paper's). Validation loss is always the plain one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub label_smoothing: f32,
    /// Token batching for encoder–decoders: batches of at most this many padded
    /// positions, sentences bucketed by length (0: `batch_size` pairs each), e.g. 4096.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub batch_tokens: usize,
    /// Scheduled sampling for encoder–decoders: the probability that a decoder
    /// input token is the model's own previous prediction (two passes; see
    /// `Model::training_loss_sum`) instead of the reference (0: off). A
    /// forecaster's is `model.scheduled_sampling`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scheduled_sampling: f32,
    /// What picks the best checkpoint (kept by rotation, counted by `patience`);
    /// when set, training ends by evaluating that checkpoint rather than the
    /// final weights. Unset: the lowest validation loss is kept, and the final
    /// weights are evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_by: Option<SelectBy>,
    /// Parameters that do not train (fine-tuning); nothing by default.
    #[serde(default, skip_serializing_if = "Freeze::is_none")]
    pub freeze: Freeze,
    /// Forecasters: evaluate every this many epochs of training windows
    /// instead, at least every 10 steps and at most every `eval_every` (0:
    /// off, `eval_every` as it is; the forecasting presets use 5). On a short
    /// series a model overfits within a few epochs, so the best checkpoint
    /// is searched at the grain of the data; `--eval-every N` turns it off.
    /// The run's saved config holds the resulting `eval_every`. `patience`
    /// counts evaluations, so it counts these finer ones.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_every_epochs: f32,
    /// The matrix products' operands: f32 (the default) or bf16 (CPUs with
    /// AVX512_BF16; f32 master weights, activations and optimizer state).
    /// A resumed run keeps its precision.
    #[serde(default, skip_serializing_if = "is_f32")]
    pub precision: Precision,
}

fn is_f32(p: &Precision) -> bool {
    *p == Precision::F32
}

fn is_zero(x: &f32) -> bool {
    *x == 0.0
}

fn is_zero_usize(x: &usize) -> bool {
    *x == 0
}

/// What a fine-tune leaves frozen: no gradient, no optimizer state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    /// Token (and learned position) embeddings.
    #[serde(default)]
    pub embeddings: bool,
    /// The first N blocks (GPT-2, Llama).
    #[serde(default)]
    pub blocks: usize,
    /// Everything but the head: the final norm and the output projection
    /// (for a tied GPT-2/Llama head, the token embedding that serves as it).
    #[serde(default)]
    pub all_but_head: bool,
}

impl Freeze {
    /// Whether nothing is frozen.
    pub fn is_none(&self) -> bool {
        *self == Freeze::default()
    }

    /// Whether parameter `name` of `model` is frozen.
    pub fn freezes(&self, model: &ModelConfig, name: &str) -> bool {
        let embedding =
            name.contains("embed") || name.contains(".wte.") || name.contains(".wpe.") || name.starts_with("shared.");
        let block = |i: usize| match model {
            ModelConfig::Gpt2(_) => name.starts_with(&format!("transformer.h.{i}.")),
            ModelConfig::Llama(_) => name.starts_with(&format!("model.layers.{i}.")),
            _ => false,
        };
        let head = match model {
            ModelConfig::Gpt2(_) => name.starts_with("transformer.ln_f.") || name == "transformer.wte.weight",
            ModelConfig::Llama(c) => {
                name == "model.norm.weight"
                    || name == "lm_head.weight"
                    || (c.tie_word_embeddings && name == "model.embed_tokens.weight")
            }
            _ => name.contains(".out.") || name.starts_with("out."),
        };
        (self.all_but_head && !head) || (self.embeddings && embedding) || (0..self.blocks).any(block)
    }

    /// An error if `blocks` is set for a model without blocks, or exceeds the model's count.
    pub fn validate(&self, model: &ModelConfig) -> Result<()> {
        let n_blocks = match model {
            ModelConfig::Gpt2(c) => c.n_layer,
            ModelConfig::Llama(c) => c.num_hidden_layers,
            _ if self.blocks > 0 => {
                return Err(Error::config("train.freeze.blocks", "applies to GPT-2 and Llama models"))
            }
            _ => 0,
        };
        if self.blocks > n_blocks {
            return Err(Error::config(
                "train.freeze.blocks",
                format!("{} but the model has {n_blocks} blocks", self.blocks),
            ));
        }
        Ok(())
    }
}

impl TrainConfig {
    /// `eval_every` for a run over `windows` training examples: with
    /// `eval_every_epochs` set, that many epochs (of `batch_size ×
    /// grad_accum` examples per step) rounded, within [min(10, eval_every),
    /// eval_every]; otherwise `eval_every` as it is.
    pub fn eval_every_for(&self, windows: usize) -> usize {
        if self.eval_every_epochs <= 0.0 || self.eval_every == 0 {
            return self.eval_every;
        }
        let per_epoch = windows as f64 / (self.batch_size * self.grad_accum).max(1) as f64;
        let steps = (per_epoch * self.eval_every_epochs as f64).round() as usize;
        steps.clamp(10.min(self.eval_every), self.eval_every)
    }

    /// An error naming the first invalid field: zero steps, batch size or accumulation, a
    /// negative or non-finite clip, or a bad optimizer or schedule.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in
            [("train.steps", self.steps), ("train.batch_size", self.batch_size), ("train.grad_accum", self.grad_accum)]
        {
            if v == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        crate::limits::check_sizes(&[("train.batch_size", self.batch_size), ("train.grad_accum", self.grad_accum)])?;
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return Err(Error::config("train.grad_clip", "must be finite and >= 0"));
        }
        if !(0.0..=1.0).contains(&self.scheduled_sampling) {
            return Err(Error::config("train.scheduled_sampling", "must be in [0, 1]"));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(Error::config("train.label_smoothing", "must be in [0, 1)"));
        }
        self.optimizer.validate()?;
        self.schedule.validate(self.steps)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn validation_every_few_epochs_of_a_short_series() {
        let mut t = crate::config::RunConfig::preset("series").unwrap().train;
        assert_eq!((t.eval_every, t.eval_every_epochs, t.batch_size), (200, 5.0, 32));
        assert_eq!(t.eval_every_for(46), 10); // 7 steps, raised to 10
        assert_eq!(t.eval_every_for(167), 26); // 5.2 steps an epoch
        assert_eq!(t.eval_every_for(100_000), 200); // at most eval_every
        t.eval_every_epochs = 0.0;
        assert_eq!(t.eval_every_for(46), 200);
    }
}
