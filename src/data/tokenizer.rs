//! Tokenizers: text (or synthetic symbols) to ids and back.
//!
//! shiftlm's own tokenizers (character, byte, symbol) share four special ids
//! at the front of the vocabulary, so the shift core never asks which one is
//! in use; byte-level BPE is trained with the `tokenizers` crate, and any
//! `tokenizer.json` can be loaded. Every tokenizer is saved as a
//! `tokenizer.json` that the Hugging Face `tokenizers` library loads and that
//! encodes text to the same ids: characters as a BPE model without merges,
//! bytes as GPT-2's byte-level BPE without merges, symbols as a word-level model.

use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;

/// Padding; never supervised.
pub const PAD: u32 = 0;
/// Start of sequence: the first decoder input.
pub const BOS: u32 = 1;
/// End of sequence (and end of text between documents).
pub const EOS: u32 = 2;
/// A character the tokenizer has never seen.
pub const UNK: u32 = 3;
/// Number of special ids before the first ordinary token.
pub const N_SPECIAL: u32 = 4;
const SPECIAL_NAMES: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];

/// A tokenizer, saved with the model as `tokenizer.json`.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    /// One id per character seen in the training data.
    Char {
        /// The known characters, sorted; character i has id `N_SPECIAL + i`.
        chars: Vec<char>,
    },
    /// One id per byte: every string round-trips, nothing is unknown.
    Byte,
    /// Synthetic tasks: `n` symbols written as space-separated integers.
    Symbols {
        /// Number of symbols; symbol k has id `N_SPECIAL + k`.
        n: usize,
    },
    /// Any other `tokenizer.json` (e.g. trained BPE, GPT-2's).
    Hf(Box<tokenizers::Tokenizer>),
    /// No tokens: a forecaster reads numbers. Checkpoints write no
    /// `tokenizer.json` for it.
    Values,
    /// Separate source and target vocabularies (`--shared-vocab false`): the
    /// encoder reads [`Tokenizer::source`]; everything else (`encode`,
    /// `decode`, `vocab_size`, the special ids, `tokenizer.json`) is the
    /// target side, the decoder's vocabulary. A checkpoint keeps the source
    /// side in `source_tokenizer.json`.
    Pair {
        /// What the encoder reads.
        source: Box<Tokenizer>,
        /// What the decoder writes.
        target: Box<Tokenizer>,
    },
}

impl PartialEq for Tokenizer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Tokenizer::Values, Tokenizer::Values) => true,
            (Tokenizer::Pair { source: s, target: t }, Tokenizer::Pair { source: s2, target: t2 }) => {
                s == s2 && t == t2
            }
            (Tokenizer::Pair { .. }, _) | (_, Tokenizer::Pair { .. }) => false,
            _ => matches!((self.to_json(), other.to_json()), (Ok(a), Ok(b)) if a == b),
        }
    }
}

/// Puts a trained unigram vocabulary (`[piece, score]` pairs) in an order
/// that does not depend on hashing. The trainer gives the characters it
/// must keep but never scored the lowest score plus 0.0001·k, k in hash
/// order, and lists equal scores in hash order: here those characters get
/// their steps in character order, and ties are broken by the piece.
fn canonical_unigram_pieces(pieces: &mut [Value]) {
    const STEP: f64 = 1e-4;
    let score = |v: &Value| v[1].as_f64().unwrap_or(0.0);
    let text = |v: &Value| v[0].as_str().unwrap_or("").to_string();
    let base = pieces.iter().map(score).fold(f64::INFINITY, f64::min);
    let n = pieces.len() as f64;
    let stepped = |v: &Value| {
        let k = (score(v) - base) / STEP;
        text(v).chars().count() == 1 && k < n + 1.0 && (k - k.round()).abs() < 1e-6
    };
    let mut chars: Vec<String> = pieces.iter().filter(|v| stepped(v)).map(text).collect();
    chars.sort();
    let mut k = 0.0;
    for v in pieces.iter_mut() {
        if stepped(v) {
            // Reassigned in character order below.
            v[1] = Value::from(base);
        }
    }
    for c in &chars {
        if let Some(v) = pieces.iter_mut().find(|v| text(v) == *c && score(v) == base && v.get(2).is_none()) {
            v[1] = Value::from(base + k * STEP);
            v.as_array_mut().expect("pair").push(Value::Null); // mark as done
            k += 1.0;
        }
    }
    for v in pieces.iter_mut() {
        v.as_array_mut().expect("pair").truncate(2);
    }
    pieces.sort_by(|a, b| score(b).total_cmp(&score(a)).then_with(|| text(a).cmp(&text(b))));
}

/// GPT-2's reversible map from bytes to printable characters.
fn bytes_to_unicode() -> Vec<char> {
    let mut table = vec!['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).expect("valid")
        } else {
            n += 1;
            char::from_u32(255 + n).expect("valid")
        };
    }
    table
}

impl Tokenizer {
    /// A character tokenizer over every character in `texts`, sorted, so
    /// the same data always gives the same ids.
    pub fn char_from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let set: BTreeSet<char> = texts.into_iter().flat_map(|t| t.chars()).collect();
        Tokenizer::Char { chars: set.into_iter().collect() }
    }

    /// Byte-level BPE (GPT-2 style) trained on `texts` with the `tokenizers`
    /// crate, with shiftlm's four specials first. Deterministic for the same
    /// texts and size.
    pub fn train_bpe(texts: &[String], vocab_size: usize) -> Result<Self> {
        use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
        use tokenizers::pre_tokenizers::byte_level::ByteLevel;
        use tokenizers::{AddedToken, NormalizerWrapper, PostProcessorWrapper, TokenizerBuilder};
        let err = |e: tokenizers::Error| Error::config("data.tokenizer", format!("BPE training failed: {e}"));
        let mut trainer = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(vocab_size)
            .min_frequency(2)
            .special_tokens(SPECIAL_NAMES.iter().map(|s| AddedToken::from(*s, true)).collect())
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut tok = TokenizerBuilder::<BPE, NormalizerWrapper, ByteLevel, PostProcessorWrapper, ByteLevel>::new()
            .with_model(BPE::default())
            .with_normalizer(None)
            .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)))
            .with_post_processor(None)
            .with_decoder(Some(ByteLevel::default()))
            .build()
            .map_err(err)?;
        tok.train(&mut trainer, texts.iter()).map_err(err)?;
        let json = tok.to_string(false).map_err(err)?;
        Self::from_json_str(&json, Path::new("<trained BPE>"))
    }

    /// A unigram language-model tokenizer (Kudo 2018, SentencePiece's
    /// default) trained on `texts` with the `tokenizers` crate: words split
    /// at spaces, each marked by a leading `▁`, so decoding restores the
    /// spaces. shiftlm's four specials come first; a character never seen in
    /// training becomes `<unk>`. Deterministic for the same texts and size.
    pub fn train_unigram(texts: &[String], vocab_size: usize) -> Result<Self> {
        use tokenizers::models::unigram::{Unigram, UnigramTrainerBuilder};
        use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
        use tokenizers::utils::parallelism::{get_parallelism, set_parallelism};
        use tokenizers::{
            AddedToken, NormalizerWrapper, OffsetReferential, OffsetType, PostProcessorWrapper, PreTokenizedString,
            PreTokenizer, TokenizerBuilder,
        };
        let err = |e: tokenizers::Error| Error::config("data.tokenizer", format!("unigram training failed: {e}"));
        let trainer = UnigramTrainerBuilder::default()
            .show_progress(false)
            .vocab_size(vocab_size.min(u32::MAX as usize) as u32)
            .special_tokens(SPECIAL_NAMES.iter().map(|s| AddedToken::from(*s, true)).collect())
            .unk_token(Some(SPECIAL_NAMES[UNK as usize].to_string()))
            .build()
            .map_err(|e| Error::config("data.tokenizer", format!("unigram trainer: {e}")))?;
        let space = Metaspace::new('▁', PrependScheme::Always, true);
        // The crate's own `train` counts words in a randomly seeded hash map
        // and sums EM statistics in parallel, so two runs can give different
        // vocabularies. Counting here in sorted order and training on one
        // thread makes the tokenizer a function of the texts alone.
        let mut words = std::collections::BTreeMap::<String, u32>::new();
        for text in texts {
            let mut pts = PreTokenizedString::from(text.as_str());
            space.pre_tokenize(&mut pts).map_err(err)?;
            for (w, _, _) in pts.get_splits(OffsetReferential::Original, OffsetType::Char) {
                *words.entry(w.to_string()).or_default() += 1;
            }
        }
        let parallel = get_parallelism();
        set_parallelism(false);
        let mut model = Unigram::default();
        let trained = trainer.do_train(words.into_iter().collect(), &mut model);
        set_parallelism(parallel);
        let specials = trained.map_err(err)?;
        let mut tok = TokenizerBuilder::<Unigram, NormalizerWrapper, Metaspace, PostProcessorWrapper, Metaspace>::new()
            .with_model(model)
            .with_normalizer(None)
            .with_pre_tokenizer(Some(space.clone()))
            .with_post_processor(None)
            .with_decoder(Some(space))
            .build()
            .map_err(err)?;
        tok.add_special_tokens(&specials);
        let mut json: Value = serde_json::from_str(&tok.to_string(false).map_err(err)?).expect("valid JSON");
        if let Some(vocab) = json["model"]["vocab"].as_array_mut() {
            canonical_unigram_pieces(&mut vocab[N_SPECIAL as usize..]);
        }
        Self::from_json_str(&json.to_string(), Path::new("<trained unigram>"))
    }

    /// The tokenizer of the encoder's input: the source side of a
    /// [`Tokenizer::Pair`], else this one (a shared vocabulary).
    pub fn source(&self) -> &Tokenizer {
        match self {
            Tokenizer::Pair { source, .. } => source,
            t => t,
        }
    }

    /// The tokenizer of the decoder's output: the target side of a
    /// [`Tokenizer::Pair`], else this one.
    pub fn target(&self) -> &Tokenizer {
        match self {
            Tokenizer::Pair { target, .. } => target,
            t => t,
        }
    }

    /// Total ids, specials included.
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Pair { target, .. } => target.vocab_size(),
            Tokenizer::Char { chars } => N_SPECIAL as usize + chars.len(),
            Tokenizer::Byte => N_SPECIAL as usize + 256,
            Tokenizer::Symbols { n } => N_SPECIAL as usize + n,
            Tokenizer::Hf(t) => t.get_vocab_size(true),
            Tokenizer::Values => 0,
        }
    }

    /// Text to ids (no BOS/EOS). Only a `tokenizers` tokenizer can fail;
    /// its reason is kept.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(match self {
            Tokenizer::Pair { target, .. } => target.encode(text)?,
            Tokenizer::Char { chars } => text
                .chars()
                .map(|c| match chars.binary_search(&c) {
                    Ok(i) => i as u32 + N_SPECIAL,
                    Err(_) => UNK,
                })
                .collect(),
            Tokenizer::Byte => text.bytes().map(|b| b as u32 + N_SPECIAL).collect(),
            Tokenizer::Symbols { n } => text
                .split_whitespace()
                .map(|w| match w.parse::<usize>() {
                    Ok(k) if k < *n => k as u32 + N_SPECIAL,
                    _ => UNK,
                })
                .collect(),
            Tokenizer::Hf(t) => t
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| Error::Tokenizer { msg: format!("cannot encode the text: {e}") })?,
            Tokenizer::Values => Vec::new(),
        })
    }

    /// Text to ids, each with the byte range of `text` its token covers
    /// (no BOS/EOS); the ids are those of [`Tokenizer::encode`].
    pub fn encode_with_offsets(&self, text: &str) -> Result<Vec<(u32, std::ops::Range<usize>)>> {
        Ok(match self {
            Tokenizer::Pair { target, .. } => target.encode_with_offsets(text)?,
            Tokenizer::Char { .. } => {
                let ids = self.encode(text)?;
                ids.into_iter().zip(text.char_indices().map(|(at, c)| at..at + c.len_utf8())).collect()
            }
            Tokenizer::Byte => text.bytes().enumerate().map(|(at, b)| (b as u32 + N_SPECIAL, at..at + 1)).collect(),
            Tokenizer::Symbols { .. } => {
                let ids = self.encode(text)?;
                let words = text.split_whitespace().map(|w| {
                    let at = w.as_ptr() as usize - text.as_ptr() as usize;
                    at..at + w.len()
                });
                ids.into_iter().zip(words).collect()
            }
            Tokenizer::Hf(t) => {
                let e = t
                    .encode(text, false)
                    .map_err(|e| Error::Tokenizer { msg: format!("cannot encode the text: {e}") })?;
                e.get_ids().iter().zip(e.get_offsets()).map(|(&id, &(a, b))| (id, a..b)).collect()
            }
            Tokenizer::Values => Vec::new(),
        })
    }

    /// This tokenizer with `tokens` as special tokens, each one id, added at
    /// the end of the vocabulary where it lacks them (a chat template's
    /// `<|im_start|>`); shiftlm's own tokenizers become `tokenizers` ones
    /// that encode everything else to the same ids. Unchanged when it has
    /// them all.
    pub fn with_special_tokens(&self, tokens: &[&str]) -> Result<Tokenizer> {
        let missing: Vec<&str> = tokens.iter().copied().filter(|t| self.token_id(t).is_none()).collect();
        if missing.is_empty() {
            return Ok(self.clone());
        }
        if matches!(self, Tokenizer::Pair { .. } | Tokenizer::Values) {
            return Err(Error::Tokenizer {
                msg: "special tokens are added to a language model's tokenizer only".into(),
            });
        }
        let text = serde_json::to_string(&self.to_json()?).expect("JSON serialises");
        let mut t: tokenizers::Tokenizer =
            text.parse().map_err(|e| Error::Tokenizer { msg: format!("cannot read itself back: {e}") })?;
        let added: Vec<tokenizers::AddedToken> =
            missing.iter().map(|s| tokenizers::AddedToken::from(s.to_string(), true)).collect();
        t.add_special_tokens(&added);
        Ok(Tokenizer::Hf(Box::new(t)))
    }

    /// Ids to text; special ids are dropped (UNK becomes U+FFFD). Only a
    /// `tokenizers` tokenizer can fail; its reason is kept.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(match self {
            Tokenizer::Pair { target, .. } => target.decode(ids)?,
            Tokenizer::Byte => {
                let bytes: Vec<u8> = ids
                    .iter()
                    .filter(|&&i| (N_SPECIAL..N_SPECIAL + 256).contains(&i))
                    .map(|&i| (i - N_SPECIAL) as u8)
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Tokenizer::Symbols { .. } => ids
                .iter()
                .filter(|&&i| i >= N_SPECIAL || i == UNK)
                .map(|&i| self.token_str(i))
                .collect::<Vec<_>>()
                .join(" "),
            Tokenizer::Char { .. } => {
                ids.iter().filter(|&&i| i >= N_SPECIAL || i == UNK).map(|&i| self.token_str(i)).collect()
            }
            Tokenizer::Hf(t) => t
                .decode(ids, true)
                .map_err(|e| Error::Tokenizer { msg: format!("cannot decode {} ids: {e}", ids.len()) })?,
            Tokenizer::Values => String::new(),
        })
    }

    /// How one id prints on its own (specials by name), for previews.
    pub fn token_str(&self, id: u32) -> String {
        match self {
            Tokenizer::Hf(t) => return t.id_to_token(id).unwrap_or_else(|| format!("<{id}?>")),
            Tokenizer::Pair { target, .. } => return target.token_str(id),
            _ => {}
        }
        if id < N_SPECIAL {
            return if id == UNK { "\u{FFFD}".to_string() } else { SPECIAL_NAMES[id as usize].to_string() };
        }
        let k = (id - N_SPECIAL) as usize;
        match self {
            Tokenizer::Char { chars } => chars.get(k).map(|c| c.to_string()),
            Tokenizer::Byte => (k < 256).then(|| {
                let b = k as u8;
                if b.is_ascii_graphic() || b == b' ' {
                    (b as char).to_string()
                } else {
                    format!("\\x{b:02x}")
                }
            }),
            Tokenizer::Symbols { n } => (k < *n).then(|| k.to_string()),
            Tokenizer::Hf(_) | Tokenizer::Pair { .. } => unreachable!("handled above"),
            Tokenizer::Values => None,
        }
        .unwrap_or_else(|| format!("<{id}?>"))
    }

    /// The id of a special token by its text, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        match self {
            Tokenizer::Hf(t) => t.token_to_id(token),
            Tokenizer::Pair { target, .. } => target.token_id(token),
            _ => SPECIAL_NAMES.iter().position(|s| *s == token).map(|i| i as u32),
        }
    }

    /// The `tokenizer.json` document (Hugging Face format); the target
    /// side's for a [`Tokenizer::Pair`].
    pub fn to_json(&self) -> Result<Value> {
        if let Tokenizer::Pair { target, .. } = self {
            return target.to_json();
        }
        let added: Vec<Value> = SPECIAL_NAMES
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
            .collect();
        let mut vocab = serde_json::Map::new();
        for (i, s) in SPECIAL_NAMES.iter().enumerate() {
            vocab.insert(s.to_string(), json!(i));
        }
        let bpe = |vocab: serde_json::Map<String, Value>| json!({"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": []});
        let doc = |pre: Value, decoder: Value, model: Value| json!({"version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null, "pre_tokenizer": pre, "post_processor": null, "decoder": decoder, "model": model});
        Ok(match self {
            Tokenizer::Char { chars } => {
                for (i, c) in chars.iter().enumerate() {
                    vocab.insert(c.to_string(), json!(i as u32 + N_SPECIAL));
                }
                doc(Value::Null, json!({"type": "Fuse"}), bpe(vocab))
            }
            Tokenizer::Byte => {
                for (b, c) in bytes_to_unicode().into_iter().enumerate() {
                    vocab.insert(c.to_string(), json!(b as u32 + N_SPECIAL));
                }
                let bl =
                    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
                doc(bl.clone(), bl, bpe(vocab))
            }
            Tokenizer::Symbols { n } => {
                for k in 0..*n {
                    vocab.insert(k.to_string(), json!(k as u32 + N_SPECIAL));
                }
                doc(
                    json!({"type": "WhitespaceSplit"}),
                    Value::Null,
                    json!({"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}),
                )
            }
            Tokenizer::Hf(t) => {
                let text =
                    t.to_string(false).map_err(|e| Error::Tokenizer { msg: format!("cannot write itself: {e}") })?;
                serde_json::from_str(&text).map_err(|e| Error::Tokenizer { msg: format!("wrote invalid JSON: {e}") })?
            }
            Tokenizer::Values => {
                return Err(Error::Tokenizer { msg: "a forecaster reads values and has no tokenizer.json".into() })
            }
            Tokenizer::Pair { .. } => unreachable!("handled above"),
        })
    }

    /// Recognises shiftlm's own tokenizers (so encoding stays exact and
    /// fast); anything else is handed to the `tokenizers` crate.
    fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let ours = v["added_tokens"].as_array().is_some_and(|a| {
            a.len() == 4
                && a.iter().enumerate().all(|(i, t)| t["id"] == json!(i) && t["content"] == json!(SPECIAL_NAMES[i]))
        });
        let model = &v["model"];
        let no_merges = model["merges"].as_array().is_some_and(|m| m.is_empty());
        let ordered = |vocab: &serde_json::Map<String, Value>| -> Option<Vec<String>> {
            let mut toks = vec![String::new(); vocab.len()];
            for (k, id) in vocab {
                *toks.get_mut(id.as_u64()? as usize)? = k.clone();
            }
            (toks.get(..4)? == SPECIAL_NAMES).then(|| toks[4..].to_vec())
        };
        // Only a document identical to what shiftlm writes takes the fast
        // path; anything else (a normalizer, other pre-tokenizer settings…)
        // goes to the `tokenizers` crate, which then decides the ids.
        let exact = |t: Tokenizer| t.to_json().is_ok_and(|j| j == v).then_some(t);
        if ours {
            if let Some(toks) = model["vocab"].as_object().and_then(ordered) {
                match (model["type"].as_str(), v["pre_tokenizer"]["type"].as_str()) {
                    (Some("BPE"), None) if no_merges && v["decoder"]["type"] == "Fuse" => {
                        let chars: Option<Vec<char>> = toks
                            .iter()
                            .map(|t| {
                                let mut c = t.chars();
                                match (c.next(), c.next()) {
                                    (Some(ch), None) => Some(ch),
                                    _ => None,
                                }
                            })
                            .collect();
                        if let Some(t) = chars
                            .filter(|c| c.windows(2).all(|w| w[0] < w[1]))
                            .and_then(|chars| exact(Tokenizer::Char { chars }))
                        {
                            return Ok(t);
                        }
                    }
                    (Some("BPE"), Some("ByteLevel"))
                        if no_merges
                            && toks == bytes_to_unicode().iter().map(|c| c.to_string()).collect::<Vec<_>>() =>
                    {
                        if let Some(t) = exact(Tokenizer::Byte) {
                            return Ok(t);
                        }
                    }
                    (Some("WordLevel"), Some("WhitespaceSplit"))
                        if toks.iter().enumerate().all(|(i, t)| *t == i.to_string()) =>
                    {
                        if let Some(t) = exact(Tokenizer::Symbols { n: toks.len() }) {
                            return Ok(t);
                        }
                    }
                    _ => {}
                }
            }
        }
        let t: tokenizers::Tokenizer =
            text.parse().map_err(|e| bad(format!("not a tokenizer.json the tokenizers library accepts: {e}")))?;
        Ok(Tokenizer::Hf(Box::new(t)))
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, &self.to_json_bytes()?)
    }

    /// The `tokenizer.json` contents, pretty-printed.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec_pretty(&self.to_json()?).expect("JSON serialises"))
    }

    /// Reads any `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_json_bytes(&crate::io::read(path)?, path)
    }

    /// Reads a `tokenizer.json` already in memory; errors name `path`.
    pub fn from_json_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), msg: format!("not valid UTF-8: {e}") })?;
        Self::from_json_str(text, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn byte_round_trips(s in any::<String>()) {
            let t = Tokenizer::Byte;
            prop_assert_eq!(t.decode(&t.encode(&s).unwrap()).unwrap(), s);
        }

        #[test]
        fn char_round_trips_on_its_alphabet(s in any::<String>()) {
            let t = Tokenizer::char_from_texts([s.as_str()]);
            let ids = t.encode(&s).unwrap();
            prop_assert!(ids.iter().all(|&i| i >= N_SPECIAL && (i as usize) < t.vocab_size()));
            prop_assert_eq!(t.decode(&ids).unwrap(), s);
        }

        #[test]
        fn symbols_round_trip(xs in proptest::collection::vec(0usize..50, 0..20)) {
            let t = Tokenizer::Symbols { n: 50 };
            let s = xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(t.decode(&t.encode(&s).unwrap()).unwrap(), s);
        }
    }

    #[test]
    fn unknown_chars_become_unk() {
        let t = Tokenizer::char_from_texts(["abc"]);
        assert_eq!(t.encode("az").unwrap(), vec![N_SPECIAL, UNK]);
        assert_eq!(t.vocab_size(), 7);
    }

    /// Our tokenizer.json files load in the `tokenizers` library and encode
    /// to the same ids, and load back here as the same tokenizer.
    #[test]
    fn saved_json_is_a_real_tokenizer_json() {
        let text = "Hello, wörld!\n  tabs\tand ünïcode ☃ 123";
        for t in [Tokenizer::char_from_texts([text]), Tokenizer::Byte, Tokenizer::Symbols { n: 200 }] {
            let json = serde_json::to_string(&t.to_json().unwrap()).unwrap();
            let hf: tokenizers::Tokenizer = json.parse().unwrap();
            let input = if matches!(t, Tokenizer::Symbols { .. }) { "1 22 199 7" } else { text };
            assert_eq!(hf.encode(input, false).unwrap().get_ids(), t.encode(input).unwrap().as_slice(), "{t:?}");
            assert_eq!(hf.decode(&t.encode(input).unwrap(), true).unwrap(), input, "{t:?}");
            let back = Tokenizer::from_json_str(&json, Path::new("x")).unwrap();
            assert!(!matches!(back, Tokenizer::Hf(_)));
            assert_eq!(back.encode(input).unwrap(), t.encode(input).unwrap());
            // With a normalizer it is no longer ours: the tokenizers crate decides.
            let mut v = t.to_json().unwrap();
            v["normalizer"] = serde_json::json!({"type": "Lowercase"});
            let other = Tokenizer::from_json_str(&v.to_string(), Path::new("x")).unwrap();
            assert!(matches!(other, Tokenizer::Hf(_)), "{t:?}");
        }
    }

    #[test]
    fn bpe_training_is_deterministic_and_round_trips() {
        let texts: Vec<String> =
            (0..200).map(|i| format!("the quick brown fox {i} jumps over the lazy dog; the end.\n")).collect();
        let a = Tokenizer::train_bpe(&texts, 300).unwrap();
        let b = Tokenizer::train_bpe(&texts, 300).unwrap();
        assert_eq!(a, b);
        assert!(matches!(a, Tokenizer::Hf(_)));
        assert!(a.vocab_size() <= 300 && a.vocab_size() > 260);
        assert_eq!(a.token_id("</s>"), Some(EOS));
        let s = "the lazy fox jumps ünïcode";
        let ids = a.encode(s).unwrap();
        assert!(ids.len() < s.len());
        assert_eq!(a.decode(&ids).unwrap(), s);
    }

    #[test]
    fn unigram_training_is_deterministic_and_round_trips() {
        // Words made of recurring syllables, as in a real language.
        let syl = ["ein", "ma", "ne", "rü", "to", "ku", "sa", "le", "ßen", "hun"];
        let word = |k: usize| format!("{}{}{}", syl[k % 10], syl[(k / 10) % 10], syl[(k / 100) % 10]);
        let texts: Vec<String> = (0..2000usize)
            .map(|i| (0..6).map(|j| word((i * 37 + j * 101) % 600)).collect::<Vec<_>>().join(" ") + ".")
            .collect();
        let a = Tokenizer::train_unigram(&texts, 120).unwrap();
        assert_eq!(a, Tokenizer::train_unigram(&texts, 120).unwrap());
        assert!(a.vocab_size() <= 120 && a.vocab_size() > 40, "{}", a.vocab_size());
        assert_eq!((a.token_id("<pad>"), a.token_id("</s>"), a.token_id("<unk>")), (Some(PAD), Some(EOS), Some(UNK)));
        for s in ["einmarü tokusa.", "leßen  hunein   sa.", "ü"] {
            let ids = a.encode(s).unwrap();
            assert!(ids.iter().all(|&i| i >= N_SPECIAL), "{s}: {ids:?}");
            assert_eq!(a.decode(&ids).unwrap(), s);
        }
        // Training sentences are read in pieces longer than a character.
        let ids: usize = texts.iter().map(|t| a.encode(t).unwrap().len()).sum();
        let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
        assert!(ids < chars, "{ids} ids for {chars} characters");
        // Never seen: <unk>, not an error.
        assert!(a.encode("☃").unwrap().contains(&UNK));
    }

    /// The `tokenizers` library's failures are errors, not empty ids.
    #[test]
    fn a_tokenizer_that_cannot_encode_says_so() {
        // WordLevel whose unknown token is missing from its own vocabulary.
        let json = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,
            "pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,
            "model":{"type":"WordLevel","vocab":{"a":0},"unk_token":"[UNK]"}}"#;
        let t = Tokenizer::from_json_str(json, Path::new("tokenizer.json")).unwrap();
        assert_eq!(t.encode("a a").unwrap(), vec![0, 0]);
        let e = t.encode("a b").unwrap_err().to_string();
        assert!(e.starts_with("tokenizer: cannot encode"), "{e}");
    }

    /// A forecaster has no tokenizer.json: writing one is an error, not `null`.
    #[test]
    fn a_values_tokenizer_writes_no_json() {
        let e = Tokenizer::Values.to_json_bytes().unwrap_err().to_string();
        assert!(e.contains("no tokenizer.json"), "{e}");
    }
}
