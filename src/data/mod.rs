//! Data: text and synthetic tasks become token ids (`tokenizer`, `tasks`,
//! `pairs`), the shift core turns targets into decoder inputs and labels
//! (`shift`), and the loader cuts seeded, padded batches (`loader`).

pub mod audio;
pub mod augment;
pub mod chat;
pub mod config;
pub mod images;
pub mod loader;
pub mod pairs;
pub mod season;
pub mod series;
pub mod shift;
pub mod tasks;
pub mod text;
pub mod tokenizer;

pub use config::{DataConfig, TokenizerKind};
pub use loader::Loader;
pub use shift::{Batch, Seq2SeqBatch};
pub use tokenizer::Tokenizer;

/// One training example for an encoder–decoder: source and target token ids,
/// without BOS/EOS (the shift core adds them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Source token ids, fed to the encoder.
    pub source: Vec<u32>,
    /// Target token ids, which the decoder learns to produce.
    pub target: Vec<u32>,
}

/// A dataset split in two, deterministically.
#[derive(Debug, Clone)]
pub struct Splits {
    /// The training pairs.
    pub train: Vec<Pair>,
    /// The held-out validation pairs.
    pub valid: Vec<Pair>,
}

/// Training data of either kind.
#[derive(Debug, Clone)]
pub enum Dataset {
    /// Source/target pairs, for encoder–decoders.
    Pairs(Splits),
    /// One token stream per split, for causal language models.
    Text {
        /// The training token stream.
        train: Vec<u32>,
        /// The held-out validation token stream.
        valid: Vec<u32>,
    },
    /// A numeric series, for forecasters.
    Series(series::SeriesData),
    /// Labelled images, for image classifiers.
    Images(images::ImageData),
    /// Strips of digit images and what they read, for an encoder–decoder.
    Strips(images::strips::StripData),
    /// Spoken clips: keywords for a classifier, or transcripts for an encoder–decoder.
    Speech(audio::speech::SpeechData),
    /// Conversations for a language model, assistant turns supervised.
    Chat {
        /// The training conversations.
        train: Vec<chat::Dialogue>,
        /// The held-out conversations.
        valid: Vec<chat::Dialogue>,
    },
}

impl Dataset {
    /// The pairs, if this is paired data.
    pub fn pairs(&self) -> Option<&Splits> {
        match self {
            Dataset::Pairs(s) => Some(s),
            Dataset::Text { .. }
            | Dataset::Series(_)
            | Dataset::Images(_)
            | Dataset::Strips(_)
            | Dataset::Speech(_)
            | Dataset::Chat { .. } => None,
        }
    }

    /// A one-line summary for logs, e.g. "20000 pairs (500 held out)".
    pub fn describe(&self) -> String {
        match self {
            Dataset::Pairs(s) => format!("{} pairs ({} held out)", s.train.len(), s.valid.len()),
            Dataset::Text { train, valid } => format!("{} tokens ({} held out)", train.len(), valid.len()),
            Dataset::Series(s) => s.describe(),
            Dataset::Images(d) => d.describe(),
            Dataset::Strips(d) => d.describe(),
            Dataset::Speech(d) => d.describe(),
            Dataset::Chat { train, valid } => {
                let turns = |d: &[chat::Dialogue]| d.iter().map(|d| d.ids.len()).sum::<usize>();
                format!(
                    "{} conversations, {} tokens ({} conversations held out)",
                    train.len(),
                    turns(train),
                    valid.len()
                )
            }
        }
    }
}

use crate::error::{Error, Result};
use std::path::Path;

/// Reads a whole text file, gzip-compressed or not (Multi30k ships as
/// `train.en.gz`), refusing a missing, empty or non-UTF-8 file with an error
/// that names the file (and the line of the first bad byte).
pub fn read_utf8(path: &Path) -> Result<String> {
    let text = read_text(path)?;
    if text.bytes().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    Ok(text)
}

/// [`read_utf8`] that accepts a blank file (a hypothesis file of empty lines).
pub fn read_text(path: &Path) -> Result<String> {
    let mut bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::BadFile { path: path.to_path_buf(), msg: format!("not a readable gzip file: {e}") })?;
        bytes = out;
    }
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..offset].iter().filter(|&&b| b == b'\n').count();
        Error::NotUtf8 { path: path.to_path_buf(), line, offset }
    })
}

/// Warns (a `tracing` event) when text read from `source` had symbols the
/// tokenizer does not know, which became `<unk>`: a checkpoint's
/// tokenizer reused on new data (eval, fine-tune) silently loses them
/// otherwise. Only shiftlm's own tokenizers map unknown symbols to `<unk>`.
pub fn warn_unknown<'a>(tok: &Tokenizer, ids: impl IntoIterator<Item = &'a u32>, source: &Path) {
    if !matches!(tok.target(), Tokenizer::Char { .. } | Tokenizer::Symbols { .. }) {
        return;
    }
    let unknown = ids.into_iter().filter(|&&i| i == tokenizer::UNK).count();
    if unknown > 0 {
        tracing::warn!(
            "{}: {unknown} symbol(s) are not in the tokenizer's vocabulary and became <unk>",
            source.display()
        );
    }
}

/// [`warn_unknown`] for pairs read from `source` (and `target`, for
/// parallel files): one warning for both sides when they share a
/// vocabulary, one per side when they do not.
pub fn warn_unknown_pairs<'a>(
    tok: &Tokenizer,
    pairs: impl Iterator<Item = &'a Pair> + Clone,
    source: &Path,
    target: Option<&Path>,
) {
    if matches!(tok, Tokenizer::Pair { .. }) {
        warn_unknown(tok.source(), pairs.clone().flat_map(|p| &p.source), source);
        warn_unknown(tok, pairs.flat_map(|p| &p.target), target.unwrap_or(source));
    } else {
        warn_unknown(tok, pairs.flat_map(|p| p.source.iter().chain(&p.target)), source);
    }
}

/// A tokenizer of `kind` built from `texts` (subwords: `bpe_vocab` ids,
/// 2000 by default).
pub(crate) fn build_tokenizer<'a>(
    kind: TokenizerKind,
    bpe_vocab: Option<usize>,
    texts: impl Iterator<Item = &'a String>,
) -> Result<Tokenizer> {
    Ok(match kind {
        TokenizerKind::Byte => Tokenizer::Byte,
        TokenizerKind::Char => Tokenizer::char_from_texts(texts.map(String::as_str)),
        TokenizerKind::Bpe | TokenizerKind::Unigram => {
            let _phase = crate::progress::phase("training the tokenizer", 0);
            let texts: Vec<String> = texts.cloned().collect();
            let n = bpe_vocab.unwrap_or(2000);
            if kind == TokenizerKind::Bpe {
                Tokenizer::train_bpe(&texts, n)?
            } else {
                Tokenizer::train_unigram(&texts, n)?
            }
        }
    })
}

/// Loads the data a config names: generates a task, or reads and splits a
/// file. A tokenizer is built from the training split unless one is given
/// (evaluating or resuming a checkpoint reuses the checkpoint's).
pub fn load(cfg: &DataConfig, seed: u64, tokenizer: Option<&Tokenizer>) -> Result<(Dataset, Tokenizer)> {
    match cfg {
        DataConfig::Task(spec) => {
            let tok = tokenizer.cloned().unwrap_or_else(|| spec.tokenizer());
            Ok((Dataset::Pairs(spec.generate(seed)?), tok))
        }
        DataConfig::File {
            path,
            target,
            valid,
            valid_target,
            tokenizer: kind,
            valid_fraction,
            bpe_vocab_size,
            tokenizer_file,
            shared_vocab,
        } => {
            let all = pairs::read(path, target.as_deref())?;
            let (train, valid) = match valid {
                Some(v) => (all, pairs::read(v, valid_target.as_deref())?),
                None => pairs::split(all, *valid_fraction),
            };
            let tok = match (tokenizer, tokenizer_file) {
                (Some(t), _) => t.clone(),
                (None, Some(file)) => Tokenizer::load(file)?,
                // One vocabulary for both sides (joint subwords, as for Multi30k's shared BPE).
                (None, None) if *shared_vocab => {
                    build_tokenizer(*kind, *bpe_vocab_size, train.iter().flat_map(|p| [&p.source, &p.target]))?
                }
                (None, None) => Tokenizer::Pair {
                    source: Box::new(build_tokenizer(*kind, *bpe_vocab_size, train.iter().map(|p| &p.source))?),
                    target: Box::new(build_tokenizer(*kind, *bpe_vocab_size, train.iter().map(|p| &p.target))?),
                },
            };
            let splits = pairs::encode(&tok, &train, &valid)?;
            if tokenizer.is_some() {
                warn_unknown_pairs(&tok, splits.train.iter().chain(&splits.valid), path, target.as_deref());
            }
            Ok((Dataset::Pairs(splits), tok))
        }
        DataConfig::Text(t) => text::load(t, tokenizer),
        DataConfig::Chat(c) => chat::load(c, tokenizer),
        // Forecasters read values: no tokenizer (the scaler plays its part).
        DataConfig::Series(s) => Ok((Dataset::Series(series::SeriesData::load(s, seed, None)?), Tokenizer::Values)),
        // Classifiers read pixels: no tokenizer.
        DataConfig::Images(c) => match &c.strings {
            None => Ok((Dataset::Images(images::ImageData::load(c)?), Tokenizer::Values)),
            // Strips are read out as text: one character per class.
            Some(s) => {
                let strips = images::strips::StripData::new(&images::ImageData::load(c)?, s)?;
                let tok = tokenizer.cloned().unwrap_or_else(|| {
                    let names: Vec<String> = strips.symbols.iter().map(|c| c.to_string()).collect();
                    Tokenizer::char_from_texts(names.iter().map(String::as_str))
                });
                Ok((Dataset::Strips(strips), tok))
            }
        },
        DataConfig::Speech(c) => {
            let d = audio::speech::SpeechData::load(c, &|_, _| {})?;
            // Keywords are classes; transcripts are written in characters.
            let tok = match tokenizer {
                Some(t) => t.clone(),
                None if c.strings => Tokenizer::char_from_texts(d.train.texts.iter().map(String::as_str)),
                None => Tokenizer::Values,
            };
            if c.strings {
                // Every transcript must be written in the training texts' characters.
                let unseen = d.unseen_engine.iter().map(|u| &**u);
                for set in [&*d.valid, &*d.test].into_iter().chain(unseen) {
                    loader::clip_targets(set, &tok)?;
                }
            }
            Ok((Dataset::Speech(d), tok))
        }
    }
}
