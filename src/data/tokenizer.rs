//! Tokenizers: text (or synthetic symbols) to ids and back. All share the same
//! four special ids at the front of the vocabulary, so the shift core and the
//! models never ask which tokenizer is in use.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// Padding; never supervised.
pub const PAD: u32 = 0;
/// Start of sequence: the first decoder input.
pub const BOS: u32 = 1;
/// End of sequence: the last label.
pub const EOS: u32 = 2;
/// A character the tokenizer has never seen.
pub const UNK: u32 = 3;
/// Number of special ids before the first ordinary token.
pub const N_SPECIAL: u32 = 4;
const SPECIAL_NAMES: [&str; 4] = ["<pad>", "<s>", "</s>", "<unk>"];

/// A tokenizer, saved with the model as `tokenizer.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Tokenizer {
    /// One id per character seen in the training data.
    Char { chars: Vec<char> },
    /// One id per byte: every string round-trips, nothing is unknown.
    Byte,
    /// Synthetic tasks: `n` symbols written as space-separated integers.
    Symbols { n: usize },
}

impl Tokenizer {
    /// A character tokenizer over every character in `texts`, sorted, so
    /// the same data always gives the same ids.
    pub fn char_from_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let set: BTreeSet<char> = texts.into_iter().flat_map(|t| t.chars()).collect();
        Tokenizer::Char { chars: set.into_iter().collect() }
    }

    /// Total ids, specials included.
    pub fn vocab_size(&self) -> usize {
        N_SPECIAL as usize
            + match self {
                Tokenizer::Char { chars } => chars.len(),
                Tokenizer::Byte => 256,
                Tokenizer::Symbols { n } => *n,
            }
    }

    /// Text to ids (no BOS/EOS).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        match self {
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
        }
    }

    /// Ids to text; special ids are dropped (UNK becomes U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
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
        }
    }

    /// How one id prints on its own (specials by name), for previews.
    pub fn token_str(&self, id: u32) -> String {
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
        }
        .unwrap_or_else(|| format!("<{id}?>"))
    }

    /// Whether ids are printed with spaces between them.
    pub fn spaced(&self) -> bool {
        matches!(self, Tokenizer::Symbols { .. })
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("tokenizer serialises");
        crate::checkpoint::write_atomic(path, &json)
    }

    /// Reads `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), msg: format!("not a shiftlm tokenizer: {e}") })
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
            prop_assert_eq!(t.decode(&t.encode(&s)), s);
        }

        #[test]
        fn char_round_trips_on_its_alphabet(s in any::<String>()) {
            let t = Tokenizer::char_from_texts([s.as_str()]);
            let ids = t.encode(&s);
            prop_assert!(ids.iter().all(|&i| i >= N_SPECIAL && (i as usize) < t.vocab_size()));
            prop_assert_eq!(t.decode(&ids), s);
        }

        #[test]
        fn symbols_round_trip(xs in proptest::collection::vec(0usize..50, 0..20)) {
            let t = Tokenizer::Symbols { n: 50 };
            let s = xs.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
            prop_assert_eq!(t.decode(&t.encode(&s)), s);
        }
    }

    #[test]
    fn unknown_chars_become_unk() {
        let t = Tokenizer::char_from_texts(["abc"]);
        assert_eq!(t.encode("az"), vec![N_SPECIAL, UNK]);
        assert_eq!(t.vocab_size(), 7);
    }
}
