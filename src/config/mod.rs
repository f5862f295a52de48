//! Run configuration: plain serde data with presets as associated functions.
//! The resolved config is saved as `config.json` beside the weights, so that
//! evaluation and decoding need nothing but the checkpoint folder.

use crate::data::tasks::{TaskKind, TaskSpec};
use crate::data::text::TextConfig;
use crate::error::{Error, Result};
use crate::model::seq2seq::AttentionKind;
use crate::model::{Gpt2Config, LlamaConfig, ModelConfig, Seq2SeqConfig, TransformerConfig};
use crate::nn::rnn::CellKind;
use crate::optim::{OptimizerConfig, OptimizerKind, Schedule, ScheduleKind};

pub mod train;
use serde::{Deserialize, Serialize};
use std::path::Path;
pub use train::{Freeze, NonFinitePolicy, TrainConfig};

pub use crate::data::{DataConfig, TokenizerKind};

/// Everything about a run. Saved as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The preset this config started from, e.g. `small`.
    pub preset: String,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub data: DataConfig,
    /// Longest target (tokens) seen in training; decoding stops at twice this.
    pub max_target_len: usize,
    /// shiftlm version that wrote the config.
    pub version: String,
}

impl RunConfig {
    pub const PRESETS: &'static str =
        "small, seed, tiny, transformer, transformer-tiny, gpt-baby, gpt-small, gpt-tiny, llama-baby, llama-tiny, series, series-tiny";

    /// A preset by name:
    /// - `small` (the default): rotate-by-1 over 20 symbols, lengths 4–12,
    ///   a 1-layer LSTM of 128 with Luong attention; trains to ≥ 95% exact
    ///   match in about a minute on two cores.
    /// - `seed`: the Keras teacher-forcing reference: vocabulary 1000,
    ///   length 10, Embedding 256 → LSTM 128, no attention, Adam 1e-3, batch 64.
    /// - `tiny`: a seconds-long run for tests and smoke checks.
    pub fn preset(name: &str) -> Result<Self> {
        let task = |vocab, min_len, max_len, n_train, n_valid| TaskSpec {
            kind: TaskKind::Rotate,
            vocab,
            min_len,
            max_len,
            shift: 1,
            n_train,
            n_valid,
        };
        let train = |steps, batch_size, lr, eval_every| TrainConfig {
            steps,
            batch_size,
            grad_accum: 1,
            seed: 1337,
            optimizer: OptimizerConfig { lr, ..Default::default() },
            schedule: Schedule::default(),
            grad_clip: 1.0,
            eval_every,
            eval_batches: 200,
            save_every: 500,
            keep_last: 3,
            patience: 0,
            on_nonfinite: NonFinitePolicy::Stop,
            freeze: Default::default(),
        };
        let seq2seq = |c: Seq2SeqConfig| ModelConfig::Seq2seq(Seq2SeqConfig { cell: CellKind::Lstm, ..c });
        let (model, train, data, max_target_len) = match name {
            "small" => (
                seq2seq(Seq2SeqConfig {
                    emb_dim: 64,
                    hidden: 128,
                    attention: AttentionKind::Dot,
                    ..Default::default()
                }),
                train(1500, 64, 3e-3, 250),
                DataConfig::Task(task(20, 4, 12, 20_000, 500)),
                12,
            ),
            "seed" => (
                seq2seq(Seq2SeqConfig::default()),
                train(3000, 64, 1e-3, 500),
                DataConfig::Task(task(1000, 10, 10, 50_000, 1000)),
                10,
            ),
            "tiny" => (
                seq2seq(Seq2SeqConfig { emb_dim: 16, hidden: 32, attention: AttentionKind::Dot, ..Default::default() }),
                train(150, 64, 1e-2, 0),
                DataConfig::Task(task(8, 2, 5, 2000, 100)),
                5,
            ),
            "transformer" | "transformer-tiny" => {
                let tiny = name == "transformer-tiny";
                let (c, layers, steps) = if tiny { (32, 1, 200) } else { (128, 2, 1500) };
                let model = ModelConfig::Transformer(TransformerConfig {
                    vocab_size: 1004,
                    d_model: c,
                    n_head: if tiny { 2 } else { 4 },
                    n_encoder_layer: layers,
                    n_decoder_layer: layers,
                    d_ff: 4 * c,
                    max_positions: 64,
                    dropout: 0.0,
                    share_embeddings: true,
                    input: None,
                });
                let mut t = train(steps, 64, if tiny { 3e-3 } else { 1e-3 }, if tiny { 0 } else { 250 });
                t.optimizer.kind = OptimizerKind::Adamw;
                t.schedule = Schedule {
                    kind: ScheduleKind::Cosine,
                    warmup_steps: steps / 10,
                    min_lr_ratio: 0.1,
                    decay_steps: steps,
                };
                let data = if tiny { task(8, 2, 5, 2000, 100) } else { task(20, 4, 12, 20_000, 500) };
                let max = data.max_len;
                (model, t, DataConfig::Task(data), max)
            }
            // nanoGPT's CPU "baby GPT" (config/train_shakespeare_char.py with
            // --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
            // --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0).
            "gpt-baby" | "gpt-small" | "gpt-tiny" | "llama-baby" | "llama-tiny" => {
                let (layers, heads, width, ctx, batch, steps) = match name {
                    "gpt-baby" | "llama-baby" => (4, 4, 128, 64, 12, 2000),
                    "gpt-small" => (6, 6, 384, 256, 16, 5000),
                    _ => (2, 2, 32, 16, 8, 100),
                };
                let model = if name.starts_with("llama") {
                    ModelConfig::Llama(LlamaConfig {
                        vocab_size: 260, // replaced by the tokenizer's size
                        hidden_size: width,
                        intermediate_size: (8 * width / 3).div_ceil(8) * 8,
                        num_hidden_layers: layers,
                        num_attention_heads: heads,
                        num_key_value_heads: heads,
                        max_position_embeddings: ctx,
                        rms_norm_eps: 1e-5,
                        rope_theta: 10000.0,
                        tie_word_embeddings: true,
                        dropout: 0.0,
                        bos_token_id: crate::data::tokenizer::BOS,
                        eos_token_id: crate::data::tokenizer::EOS,
                        lora: None,
                    })
                } else {
                    // The vocabulary size is replaced by the tokenizer's.
                    ModelConfig::Gpt2(Gpt2Config::nano(260, layers, heads, width, ctx))
                };
                let mut t = train(steps, batch, 1e-3, (steps / 8).max(1));
                // nanoGPT: AdamW β₂ 0.99, weight decay 0.1, 100 warmup steps,
                // cosine decay to lr/10 at the last step.
                t.optimizer = OptimizerConfig {
                    kind: OptimizerKind::Adamw,
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.99,
                    eps: 1e-8,
                    weight_decay: 0.1,
                };
                t.schedule = Schedule {
                    kind: ScheduleKind::Cosine,
                    warmup_steps: (steps / 20).min(100),
                    min_lr_ratio: 0.1,
                    decay_steps: steps,
                };
                t.save_every = (steps / 4).max(1);
                let data = DataConfig::Text(TextConfig {
                    paths: Vec::new(),
                    tokenizer: TokenizerKind::Char,
                    bpe_vocab_size: 4096,
                    tokenizer_file: None,
                    valid_fraction: 0.1,
                    eot_id: None,
                });
                (model, t, data, 0)
            }
            // Forecasting: an LSTM encoder–decoder reading a week of hourly
            // values and forecasting the next day, on the built-in series.
            "series" | "series-tiny" => {
                let tiny = name == "series-tiny";
                let model = ModelConfig::Forecaster(crate::model::ForecasterConfig {
                    hidden: if tiny { 16 } else { 64 },
                    context: if tiny { 48 } else { 168 },
                    horizon: if tiny { 12 } else { 24 },
                    ..Default::default()
                });
                let steps = if tiny { 100 } else { 1200 };
                let mut t = train(steps, 32, 3e-3, if tiny { 0 } else { 200 });
                t.schedule = Schedule {
                    kind: ScheduleKind::Cosine,
                    warmup_steps: steps / 20,
                    min_lr_ratio: 0.1,
                    decay_steps: steps,
                };
                t.eval_batches = 20; // validation windows beyond 20 batches are evenly sampled
                let data = crate::data::series::SeriesConfig {
                    synthetic_len: if tiny { 24 * 7 * 4 } else { 24 * 7 * 24 },
                    ..Default::default()
                };
                (model, t, DataConfig::Series(data), 0)
            }
            _ => {
                return Err(Error::Unknown { what: "preset", name: name.to_string(), known: Self::PRESETS.to_string() })
            }
        };
        Ok(Self {
            preset: name.to_string(),
            model,
            train,
            data,
            max_target_len,
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// A causal model sized for `bytes` of training text: a small model for
    /// a small file, nanoGPT's baby GPT up to a few megabytes, a wider one
    /// (with byte-level BPE) beyond. `family` is `gpt2` or `llama`.
    pub fn for_text(family: &str, bytes: u64) -> Result<Self> {
        let fam = if family == "llama" { "llama" } else { "gpt" };
        if bytes >= 5_000_000 && fam == "gpt" {
            let mut c = Self::preset("gpt-small")?;
            if let DataConfig::Text(t) = &mut c.data {
                t.tokenizer = TokenizerKind::Bpe;
            }
            return Ok(c);
        }
        let mut c = Self::preset(&format!("{fam}-baby"))?;
        if bytes < 50_000 {
            // Little text: fewer, narrower layers and fewer steps overfit less.
            match &mut c.model {
                ModelConfig::Gpt2(m) => {
                    m.n_layer = 2;
                    m.n_embd = 64;
                }
                ModelConfig::Llama(m) => {
                    m.num_hidden_layers = 2;
                    m.hidden_size = 64;
                    m.intermediate_size = 176;
                }
                _ => {}
            }
            c.train.steps = 1000;
            c.train.schedule.decay_steps = 1000;
            c.train.eval_every = 125;
            c.train.save_every = 250;
        }
        Ok(c)
    }

    /// The id a causal model's text starts from and ends with.
    pub fn model_eos(&self) -> u32 {
        match &self.model {
            ModelConfig::Gpt2(m) => m.eos_token_id,
            ModelConfig::Llama(m) => m.eos_token_id,
            _ => crate::data::tokenizer::EOS,
        }
    }

    /// Applies a TOML file (any subset of the config's keys; unknown keys are
    /// an error) and then `--set key.path=value` overrides, in that order.
    pub fn with_overrides(self, file: Option<&Path>, sets: &[String]) -> Result<Self> {
        let mut v = serde_json::to_value(&self).expect("config serialises");
        let mut source = String::from("config");
        if let Some(path) = file {
            source = path.display().to_string();
            let text = crate::data::read_utf8(path)?;
            let t: toml::Value = toml::from_str(&text)
                .map_err(|e| Error::ConfigFile { source_name: source.clone(), msg: e.to_string() })?;
            merge(&mut v, serde_json::to_value(t).expect("TOML maps to JSON"));
        }
        for s in sets {
            let (key, raw) = s.split_once('=').ok_or_else(|| Error::ConfigFile {
                source_name: format!("--set {s}"),
                msg: "expected KEY=VALUE, e.g. train.optimizer.lr=0.003".into(),
            })?;
            // A TOML literal (number, bool, string in quotes, array); else a bare string.
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .map(|t| serde_json::to_value(t).expect("TOML maps to JSON"))
                .unwrap_or_else(|| serde_json::Value::String(raw.to_string()));
            let mut slot = &mut v;
            for part in key.trim().split('.') {
                slot = slot
                    .as_object_mut()
                    .ok_or_else(|| Error::ConfigFile {
                        source_name: format!("--set {s}"),
                        msg: format!("'{part}' is inside a value, not a table"),
                    })?
                    .entry(part)
                    .or_insert(serde_json::Value::Null);
            }
            *slot = value;
            source = format!("--set {s}");
        }
        let cfg: RunConfig =
            serde_json::from_value(v).map_err(|e| Error::ConfigFile { source_name: source, msg: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every field; the error names the first impossible one.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        let series_data = matches!(self.data, DataConfig::Series(_));
        if series_data != self.model.is_forecaster() {
            return Err(Error::config(
                "data",
                if series_data {
                    "a numeric series trains a forecaster (family \"forecaster\")"
                } else {
                    "a forecaster trains on a numeric series (a CSV file or the built-in series)"
                },
            ));
        }
        let causal_data = matches!(self.data, DataConfig::Text(_));
        // A causal model also takes a file of prompt/response pairs.
        let prompts = self.model.is_causal() && matches!(self.data, DataConfig::File { .. });
        if causal_data != self.model.is_causal() && !prompts && !series_data {
            return Err(Error::config(
                "data",
                if causal_data {
                    "plain text trains a causal model (gpt2 or llama), not an encoder–decoder"
                } else {
                    "paired data trains an encoder–decoder; a causal model needs plain text"
                },
            ));
        }
        match &self.data {
            DataConfig::Text(t) => {
                if !(0.0..0.5).contains(&t.valid_fraction) {
                    return Err(Error::config("data.valid_fraction", "must be in [0, 0.5)"));
                }
                Ok(())
            }
            DataConfig::Task(t) => t.validate(),
            DataConfig::Series(s) => s.validate(),
            DataConfig::File { valid_fraction, .. } => {
                if (0.0..1.0).contains(valid_fraction) {
                    Ok(())
                } else {
                    Err(Error::config("data.valid_fraction", "must be in [0, 1)"))
                }
            }
        }
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_files_and_sets_override_presets_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("run.toml");
        std::fs::write(&f, "[train]\nsteps = 42\n[train.optimizer]\nlr = 0.5\n[model]\ncell = \"gru\"\n").unwrap();
        let c = RunConfig::preset("tiny")
            .unwrap()
            .with_overrides(Some(&f), &["train.batch_size=7".into(), "model.dropout=0.25".into()])
            .unwrap();
        assert_eq!((c.train.steps, c.train.optimizer.lr, c.train.batch_size), (42, 0.5, 7));
        let ModelConfig::Seq2seq(m) = &c.model else { panic!("seq2seq") };
        assert_eq!((m.cell, m.dropout), (CellKind::Gru, 0.25));
        std::fs::write(&f, "[train]\nstepz = 42\n").unwrap();
        let e = RunConfig::preset("tiny").unwrap().with_overrides(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("run.toml") && e.contains("stepz"), "{e}");
        std::fs::write(&f, "[train\n").unwrap();
        let e = RunConfig::preset("tiny").unwrap().with_overrides(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("run.toml") && e.contains("line 1"), "{e}");
        let e = RunConfig::preset("tiny")
            .unwrap()
            .with_overrides(None, &["train.optimizr.lr=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("optimizr"), "{e}");
        let e =
            RunConfig::preset("tiny").unwrap().with_overrides(None, &["train.steps=0".into()]).unwrap_err().to_string();
        assert!(e.contains("train.steps"), "{e}");
    }

    #[test]
    fn presets_validate_and_round_trip_through_json() {
        for name in [
            "small",
            "seed",
            "tiny",
            "transformer",
            "transformer-tiny",
            "gpt-baby",
            "gpt-small",
            "gpt-tiny",
            "llama-baby",
            "llama-tiny",
            "series",
            "series-tiny",
        ] {
            let mut c = RunConfig::preset(name).unwrap();
            c.model.set_vocab_size(65);
            c.validate().unwrap();
            let back: RunConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
        assert!(RunConfig::preset("huge").unwrap_err().to_string().contains("small"));
    }

    #[test]
    fn impossible_configs_are_named() {
        let mut c = RunConfig::preset("tiny").unwrap();
        if let ModelConfig::Seq2seq(m) = &mut c.model {
            m.dropout = 1.5;
        }
        assert!(c.validate().unwrap_err().to_string().contains("model.dropout"));
        let mut c = RunConfig::preset("tiny").unwrap();
        c.train.steps = 0;
        assert!(c.validate().unwrap_err().to_string().contains("train.steps"));
    }
}
