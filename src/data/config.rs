//! Where a run's data comes from: the `data` table of a run config (a
//! built-in task, a file of pairs, text files or a numeric series) and the
//! tokenizer to build for it.

use super::tasks::TaskSpec;
use super::text::TextConfig;
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
    /// Byte-level BPE trained on the data with the `tokenizers` crate.
    Bpe,
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// A built-in synthetic task.
    Task(TaskSpec),
    /// A TSV or JSONL file of pairs.
    File {
        /// The TSV or JSONL file (format detected from the extension, else the content).
        path: PathBuf,
        /// The tokenizer to build from the training split.
        tokenizer: TokenizerKind,
        /// Fraction held out for validation, e.g. 0.1.
        valid_fraction: f64,
        /// Vocabulary size of a `bpe` tokenizer, e.g. 2000 (the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bpe_vocab_size: Option<usize>,
        /// An existing `tokenizer.json` to use instead of building one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokenizer_file: Option<PathBuf>,
    },
    /// Plain text files, for causal language models.
    Text(TextConfig),
    /// A numeric series (CSV or built-in), for forecasters.
    Series(super::series::SeriesConfig),
    /// Labelled images, for image classifiers.
    Images(super::images::ImageDataConfig),
    /// Spoken clips, for keyword classifiers and speech recognisers.
    Speech(super::audio::speech::SpeechDataConfig),
}
