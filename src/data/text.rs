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
            super::TokenizerKind::Unigram => Tokenizer::train_unigram(&texts, cfg.bpe_vocab_size)?,
        },
    };
    let eot =
        cfg.eot_id.or_else(|| ["</s>", "<|endoftext|>", "<|end_of_text|>"].into_iter().find_map(|t| tok.token_id(t)));
    if eot.is_none() && texts.len() > 1 {
        // Joining documents with nothing between them would teach the model
        // that one runs straight into the next.
        let at = cfg.tokenizer_file.as_ref().map_or("the tokenizer".to_string(), |f| f.display().to_string());
        return Err(Error::config(
            "data.paths",
            format!(
                "{at} has no end-of-text token (</s>, <|endoftext|> or <|end_of_text|>) to put between the {} documents; give one file or a tokenizer with one",
                texts.len()
            ),
        ));
    }
    let mut stream = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        if i > 0 {
            stream.extend(eot);
        }
        let ids = tok.encode(t)?;
        if tokenizer.is_some() {
            super::warn_unknown(&tok, &ids, &cfg.paths[i]);
        }
        stream.extend(ids);
    }
    let n_valid = ((stream.len() as f64) * cfg.valid_fraction.clamp(0.0, 0.5)) as usize;
    let valid = stream.split_off(stream.len() - n_valid);
    Ok((Dataset::Text { train: stream, valid }, tok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_never_joined_without_an_end_of_text_token() {
        let d = tempfile::tempdir().unwrap();
        let tok = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
            "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"a":0,"b":1,"[UNK]":2},"unk_token":"[UNK]"}}"#;
        std::fs::write(d.path().join("tokenizer.json"), tok).unwrap();
        for (name, text) in [("one.txt", "a b a b a b"), ("two.txt", "b a b a b a")] {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        let cfg = |paths: &[&str]| TextConfig {
            paths: paths.iter().map(|p| d.path().join(p)).collect(),
            tokenizer: super::super::TokenizerKind::Char,
            bpe_vocab_size: 0,
            tokenizer_file: Some(d.path().join("tokenizer.json")),
            valid_fraction: 0.1,
            eot_id: None,
        };
        let e = load(&cfg(&["one.txt", "two.txt"]), None).unwrap_err().to_string();
        assert!(e.contains("no end-of-text token") && e.contains("tokenizer.json"), "{e}");
        load(&cfg(&["one.txt"]), None).unwrap(); // one document needs no separator
    }
}
