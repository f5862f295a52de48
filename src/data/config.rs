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
    /// A unigram language model (SentencePiece's default) trained on the data.
    Unigram,
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum DataConfig {
    /// A built-in synthetic task.
    Task(TaskSpec),
    /// A TSV or JSONL file of pairs, or parallel files (one sentence per line).
    File {
        /// The TSV or JSONL file (format detected from the extension, else the content),
        /// or, with `target`, the source side of parallel files.
        path: PathBuf,
        /// Parallel files: the target side, line `i` translating line `i` of `path`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<PathBuf>,
        /// Validation pairs from this file (TSV/JSONL, or the source side with
        /// `valid_target`) instead of a hashed `valid_fraction` of the training pairs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid: Option<PathBuf>,
        /// Parallel validation files: the target side of `valid`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_target: Option<PathBuf>,
        /// The tokenizer to build from the training split.
        tokenizer: TokenizerKind,
        /// Fraction held out for validation, e.g. 0.1 (unused when `valid` is given).
        valid_fraction: f64,
        /// Vocabulary size of a `bpe` or `unigram` tokenizer, e.g. 2000 (the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bpe_vocab_size: Option<usize>,
        /// An existing `tokenizer.json` to use instead of building one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokenizer_file: Option<PathBuf>,
        /// One vocabulary trained on both sides (true, the default), or one
        /// per side (false): the source's for the encoder, the target's for
        /// the decoder.
        #[serde(default = "yes", skip_serializing_if = "is_true")]
        shared_vocab: bool,
    },
    /// Plain text files, for causal language models.
    Text(TextConfig),
    /// Conversations, for causal language models (dialogue fine-tuning).
    Chat(super::chat::ChatDataConfig),
    /// A numeric series (CSV or built-in), for forecasters.
    Series(super::series::SeriesConfig),
    /// Labelled images, for image classifiers.
    Images(super::images::ImageDataConfig),
    /// Spoken clips, for keyword classifiers and speech recognisers.
    Speech(super::audio::speech::SpeechDataConfig),
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}
