//! Paired text data: a TSV (`source<TAB>target[<TAB>ignored…]`) or JSONL
//! (`{"source": …, "target": …}`) file, or parallel files with one sentence
//! per line (Multi30k's `train.en` and `train.de`). Validation pairs come
//! from given files, or are split off by a hash of each pair, so the split
//! never depends on the seed or file order.
//!
//! Empty lines: a blank TSV/JSONL line is skipped; in parallel files a pair
//! whose two sides are both blank is skipped (a warning counts them), and a
//! pair with one blank side is an error naming both files and the line,
//! since a sentence translated as nothing is almost always misaligned data.

use super::{read_utf8, Pair, Splits};
use crate::data::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One pair of strings, with the line it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextPair {
    /// The source text (the `prompt` of a prompt/response JSONL line).
    pub source: String,
    /// The target text (the `response` of a prompt/response JSONL line).
    pub target: String,
    /// The 1-based line of the file it came from.
    pub line: usize,
}

/// File formats for paired data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairFormat {
    /// Tab-separated: `source<TAB>target`, further columns ignored.
    Tsv,
    /// One JSON object per line with string `source` and `target` (or `prompt` and `response`).
    Jsonl,
}

impl PairFormat {
    /// `.jsonl`/`.json` is JSONL, `.tsv`/`.txt` TSV; otherwise the first
    /// non-blank line decides (`{` means JSONL).
    pub fn detect(path: &Path, text: &str) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "json" | "ndjson") => PairFormat::Jsonl,
            Some("tsv" | "txt") => PairFormat::Tsv,
            _ if text.trim_start().starts_with('{') => PairFormat::Jsonl,
            _ => PairFormat::Tsv,
        }
    }
}

/// Reads every pair of a TSV or JSONL file. Blank lines are skipped; any
/// other bad line is an error naming the file and line.
pub fn read_pairs(path: &Path) -> Result<Vec<TextPair>> {
    let text = read_utf8(path)?;
    let format = PairFormat::detect(path, &text);
    let bad = |line: usize, msg: String| Error::BadLine { path: path.to_path_buf(), line, msg };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        let (source, target) = match format {
            PairFormat::Tsv => {
                let mut cols = raw.split('\t');
                match (cols.next(), cols.next()) {
                    (Some(s), Some(t)) => (s.to_string(), t.to_string()),
                    _ => return Err(bad(line, "expected 'source<TAB>target', found one column".into())),
                }
            }
            PairFormat::Jsonl => {
                let v: serde_json::Value =
                    serde_json::from_str(raw).map_err(|e| bad(line, format!("not valid JSON: {e}")))?;
                let obj = v
                    .as_object()
                    .ok_or_else(|| bad(line, "expected a JSON object with \"source\" and \"target\"".into()))?;
                let field = |k: &str| -> Result<String> {
                    match obj.get(k) {
                        Some(serde_json::Value::String(s)) => Ok(s.clone()),
                        Some(_) => Err(bad(line, format!("\"{k}\" must be a string"))),
                        None => Err(bad(line, format!("missing key \"{k}\""))),
                    }
                };
                // {"prompt": …, "response": …} (instruction tuning) reads the same way.
                if obj.contains_key("prompt") || obj.contains_key("response") {
                    (field("prompt")?, field("response")?)
                } else {
                    (field("source")?, field("target")?)
                }
            }
        };
        out.push(TextPair { source, target, line });
    }
    if out.is_empty() {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    Ok(out)
}

/// Reads parallel files: line `i` of `target` translates line `i` of
/// `source`. The line counts must match; see the module notes for blanks.
pub fn read_parallel(source: &Path, target: &Path) -> Result<Vec<TextPair>> {
    let (src, tgt) = (read_utf8(source)?, read_utf8(target)?);
    let lines = |t: &str| -> Vec<String> { t.lines().map(|l| l.strip_suffix('\r').unwrap_or(l).to_string()).collect() };
    let (src, tgt) = (lines(&src), lines(&tgt));
    if src.len() != tgt.len() {
        return Err(Error::BadFile {
            path: source.to_path_buf(),
            msg: format!(
                "{} lines, but its target side {} has {}: parallel files need one line per sentence on both sides",
                src.len(),
                target.display(),
                tgt.len()
            ),
        });
    }
    let mut out = Vec::with_capacity(src.len());
    let mut blank = 0;
    for (i, (s, t)) in src.into_iter().zip(tgt).enumerate() {
        let line = i + 1;
        match (s.trim().is_empty(), t.trim().is_empty()) {
            (true, true) => blank += 1,
            (false, false) => out.push(TextPair { source: s, target: t, line }),
            (s_blank, _) => {
                let (empty, other) = if s_blank { (source, target) } else { (target, source) };
                return Err(Error::BadLine {
                    path: empty.to_path_buf(),
                    line,
                    msg: format!(
                        "empty, but line {line} of {} is not: remove the pair from both files or translate it",
                        other.display()
                    ),
                });
            }
        }
    }
    if blank > 0 {
        tracing::warn!("{} and {}: skipped {blank} pair(s) of blank lines", source.display(), target.display());
    }
    if out.is_empty() {
        return Err(Error::EmptyFile { path: source.to_path_buf() });
    }
    Ok(out)
}

/// Pairs from a TSV/JSONL file, or from parallel files when `target` is given.
pub fn read(path: &Path, target: Option<&Path>) -> Result<Vec<TextPair>> {
    match target {
        Some(t) => read_parallel(path, t),
        None => read_pairs(path),
    }
}

/// FNV-1a, for a split that depends on content only.
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3))
}

/// Splits pairs: about `valid_fraction` go to validation, chosen by a hash
/// of the pair. With two or more pairs, neither side is left empty.
pub fn split(pairs: Vec<TextPair>, valid_fraction: f64) -> (Vec<TextPair>, Vec<TextPair>) {
    let n = pairs.len();
    let cut = (valid_fraction.clamp(0.0, 1.0) * 10_000.0) as u64;
    let (mut valid, mut train): (Vec<_>, Vec<_>) =
        pairs.into_iter().partition(|p| fnv1a(&format!("{}\t{}", p.source, p.target)) % 10_000 < cut);
    if n >= 2 && valid.is_empty() {
        valid.push(train.pop().expect("n >= 2"));
    } else if n >= 2 && train.is_empty() {
        train.push(valid.pop().expect("n >= 2"));
    }
    (train, valid)
}

/// Tokenizes both splits: sources with [`Tokenizer::source`], targets with
/// the tokenizer itself (the same one unless the vocabularies are separate).
pub fn encode(tok: &Tokenizer, train: &[TextPair], valid: &[TextPair]) -> Result<Splits> {
    let enc = |ps: &[TextPair]| -> Result<Vec<Pair>> {
        ps.iter()
            .map(|p| Ok(Pair { source: tok.source().encode(&p.source)?, target: tok.encode(&p.target)? }))
            .collect()
    };
    Ok(Splits { train: enc(train)?, valid: enc(valid)? })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(name: &str, content: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::File::create(&path).unwrap().write_all(content).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_tsv_and_jsonl() {
        let (_d, p) = file("a.tsv", b"ab\tba\textra\n\ncd\tdc\r\n");
        let pairs = read_pairs(&p).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!((pairs[1].source.as_str(), pairs[1].target.as_str(), pairs[1].line), ("cd", "dc", 3));
        let (_d, p) = file("a.jsonl", b"{\"source\": \"x\", \"target\": \"y\"}\n");
        assert_eq!(read_pairs(&p).unwrap()[0].target, "y");
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let (_d, p) = file("a.tsv", b"ab\tba\nonly-one-column\n");
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("a.tsv:2:") && e.contains("one column"), "{e}");
        let (_d, p) = file("b.jsonl", b"{\"source\": \"x\", \"target\": \"y\"}\n{\"source\": \"x\"}\n");
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("b.jsonl:2:") && e.contains("target"), "{e}");
        let (_d, p) = file("c.jsonl", b"[1, 2]\n");
        assert!(read_pairs(&p).unwrap_err().to_string().contains("c.jsonl:1:"));
        let (_d, p) = file("d.tsv", b"ok\tok\n\xff\xfe\tx\n");
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("d.tsv:2:") && e.contains("UTF-8"), "{e}");
        let (_d, p) = file("e.tsv", b"\n \n");
        assert!(read_pairs(&p).unwrap_err().to_string().contains("empty"));
    }

    #[test]
    fn reads_parallel_files_and_refuses_misaligned_ones() {
        let dir = tempfile::tempdir().unwrap();
        let w = |n: &str, b: &[u8]| {
            let p = dir.path().join(n);
            std::fs::write(&p, b).unwrap();
            p
        };
        let (en, de) = (w("a.en", b"a dog\r\n\nthe cat\n"), w("a.de", b"ein Hund\n\ndie Katze"));
        let pairs = read(&en, Some(&de)).unwrap();
        assert_eq!(pairs.len(), 2);
        assert_eq!((pairs[1].source.as_str(), pairs[1].target.as_str(), pairs[1].line), ("the cat", "die Katze", 3));
        let short = w("b.de", b"ein Hund\n");
        let e = read_parallel(&en, &short).unwrap_err().to_string();
        assert!(e.contains("a.en") && e.contains("b.de") && e.contains("3 lines") && e.contains("has 1"), "{e}");
        let hole = w("c.de", b"ein Hund\n\n\n");
        let e = read_parallel(&en, &hole).unwrap_err().to_string();
        assert!(e.contains("c.de:3:") && e.contains("a.en"), "{e}");
        let bad = w("d.de", b"ein Hund\n\n\xff\n");
        let e = read_parallel(&en, &bad).unwrap_err().to_string();
        assert!(e.contains("d.de:3:") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn split_is_deterministic_and_never_empty() {
        let pairs: Vec<TextPair> =
            (0..200).map(|i| TextPair { source: format!("s{i}"), target: format!("t{i}"), line: i + 1 }).collect();
        let (t1, v1) = split(pairs.clone(), 0.1);
        let mut rev = pairs.clone();
        rev.reverse();
        let (_, v2) = split(rev, 0.1);
        let mut a: Vec<_> = v1.iter().map(|p| p.line).collect();
        let mut b: Vec<_> = v2.iter().map(|p| p.line).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        assert!(v1.len() > 5 && v1.len() < 40 && t1.len() + v1.len() == 200);
        let (t, v) = split(pairs[..2].to_vec(), 0.0);
        assert_eq!((t.len(), v.len()), (1, 1));
    }
}
