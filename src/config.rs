//! Run configuration: plain serde data with presets as associated functions.
//! The resolved config is saved as `config.json` beside the weights, so that
//! evaluation and decoding need nothing but the checkpoint folder.

use crate::data::tasks::{TaskKind, TaskSpec};
use crate::error::{Error, Result};
use crate::model::seq2seq::AttentionKind;
use crate::model::Seq2SeqConfig;
use crate::nn::rnn::CellKind;
use crate::train::{OptimizerConfig, Schedule, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which tokenizer to build for a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// One id per character seen in the data.
    Char,
    /// One id per byte (never an unknown token).
    Byte,
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// A built-in synthetic task.
    Task(TaskSpec),
    /// A TSV or JSONL file of pairs.
    File {
        path: PathBuf,
        tokenizer: TokenizerKind,
        /// Fraction held out for validation, e.g. 0.1.
        valid_fraction: f64,
    },
}

/// Everything about a run. Saved as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The preset this config started from, e.g. `small`.
    pub preset: String,
    pub model: Seq2SeqConfig,
    pub train: TrainConfig,
    pub data: DataConfig,
    /// Longest target (tokens) seen in training; decoding stops at twice this.
    pub max_target_len: usize,
    /// shiftlm version that wrote the config.
    pub version: String,
}

impl RunConfig {
    pub const PRESETS: &'static str = "small, seed, tiny";

    /// A preset by name:
    /// - `small` (the default): rotate-by-1 over 20 symbols, lengths 4–12,
    ///   a 1-layer LSTM of 128 with Luong attention; trains to ≥ 95% exact
    ///   match in about two minutes on two cores.
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
        let train = |steps, lr, eval_every| TrainConfig {
            steps,
            batch_size: 64,
            seed: 1337,
            optimizer: OptimizerConfig { lr, ..Default::default() },
            schedule: Schedule::default(),
            grad_clip: 1.0,
            eval_every,
        };
        let (model, train, task) = match name {
            "small" => (
                Seq2SeqConfig { emb_dim: 64, hidden: 128, attention: AttentionKind::Dot, ..Default::default() },
                train(1500, 3e-3, 250),
                task(20, 4, 12, 20_000, 500),
            ),
            "seed" => (Seq2SeqConfig::default(), train(3000, 1e-3, 500), task(1000, 10, 10, 50_000, 1000)),
            "tiny" => (
                Seq2SeqConfig { emb_dim: 16, hidden: 32, attention: AttentionKind::Dot, ..Default::default() },
                train(150, 1e-2, 0),
                task(8, 2, 5, 2000, 100),
            ),
            _ => {
                return Err(Error::Unknown { what: "preset", name: name.to_string(), known: Self::PRESETS.to_string() })
            }
        };
        Ok(Self {
            preset: name.to_string(),
            model: Seq2SeqConfig { cell: CellKind::Lstm, ..model },
            train,
            max_target_len: task.max_len,
            data: DataConfig::Task(task),
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// Checks every field; the error names the first impossible one.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        match &self.data {
            DataConfig::Task(t) => t.validate(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_round_trip_through_json() {
        for name in ["small", "seed", "tiny"] {
            let c = RunConfig::preset(name).unwrap();
            c.validate().unwrap();
            let back: RunConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
        assert!(RunConfig::preset("huge").unwrap_err().to_string().contains("small"));
    }

    #[test]
    fn impossible_configs_are_named() {
        let mut c = RunConfig::preset("tiny").unwrap();
        c.model.dropout = 1.5;
        assert!(c.validate().unwrap_err().to_string().contains("model.dropout"));
        let mut c = RunConfig::preset("tiny").unwrap();
        c.train.steps = 0;
        assert!(c.validate().unwrap_err().to_string().contains("train.steps"));
    }
}
