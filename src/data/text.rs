//! Plain text for causal language models: one or more UTF-8 files, each a
//! document, tokenized and joined with an end-of-text token between them;
//! the last `valid_fraction` of the stream is held out (as nanoGPT does).

use super::{read_utf8, Dataset, Tokenizer};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where text comes from and how to tokenize it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextConfig {
    /// Text files, e.g. ["input.txt"].
    pub paths: Vec<PathBuf>,
    /// `char`, `byte` or `bpe`.
    pub tokenizer: super::TokenizerKind,
    /// Vocabulary size for `bpe`, e.g. 4096.
    pub bpe_vocab_size: usize,
    /// An existing `tokenizer.json` to use instead of building one.
    pub tokenizer_file: Option<PathBuf>,
    /// Fraction of the stream held out, from its end, e.g. 0.1.
    pub valid_fraction: f64,
    /// The end-of-text id placed between documents (the tokenizer's `</s>`,
    /// or a GPT-2 folder's `<|endoftext|>`), e.g. 2.
    pub eot_id: Option<u32>,
}

/// Tokenizes the files and splits the stream.
pub fn load(cfg: &TextConfig, tokenizer: Option<&Tokenizer>) -> Result<(Dataset, Tokenizer)> {
    if cfg.paths.is_empty() {
        return Err(Error::config("data.paths", "no text files given"));
    }
    let texts = cfg.paths.iter().map(|p| read_utf8(p)).collect::<Result<Vec<_>>>()?;
    let tok = match (tokenizer, &cfg.tokenizer_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => Tokenizer::load(f)?,
        (None, None) => match cfg.tokenizer {
            super::TokenizerKind::Char => Tokenizer::char_from_texts(texts.iter().map(|t| t.as_str())),
            super::TokenizerKind::Byte => Tokenizer::Byte,
            super::TokenizerKind::Bpe => Tokenizer::train_bpe(&texts, cfg.bpe_vocab_size)?,
        },
    };
    let eot = cfg.eot_id.or_else(|| tok.token_id("</s>")).or_else(|| tok.token_id("<|endoftext|>"));
    let mut stream = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            stream.extend(eot);
        }
        stream.extend(tok.encode(t));
    }
    let n_valid = ((stream.len() as f64) * cfg.valid_fraction.clamp(0.0, 0.5)) as usize;
    let valid = stream.split_off(stream.len() - n_valid);
    Ok((Dataset::Text { train: stream, valid }, tok))
}
