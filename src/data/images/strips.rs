//! Digit strings: strips of 1 to `max_len` digit images side by side, with
//! random spacing, for an encoder–decoder that reads the strip's columns and
//! emits its digits (`--task digit-strings`).
//!
//! Geometry, for digits of w×h pixels: a margin m = max(3, h/4) of blank
//! canvas on every side (so a shift of up to m pixels loses no ink), gaps of
//! 1..=g pixels between digits with g = max(2, w/4) (digits never touch:
//! many 8×8 digits fill their whole width), and the whole group
//! placed at a random horizontal offset within the free width. Every strip of
//! a set has one size, (h + 2m) × (2m + L·w + (L−1)·g) for L = `max_len`:
//! 14×54 for the embedded 8×8 digits, 42×182 for MNIST's 28×28.
//!
//! Training strips are made from the training digit images only, validation
//! and test strips from the held-out ones, so every test strip is unseen ink.
//! Like the image splits, the strips are drawn from fixed seeds (not the
//! run's `--seed`), so every run of a source reads the same strips.

use super::Images;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// How many strips, and how long.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringsConfig {
    /// Most digits in a strip, e.g. 5 (a strip has 1..=max_len).
    pub max_len: usize,
    /// Training strips, e.g. 20000.
    pub train: usize,
    /// Validation strips, e.g. 500.
    pub valid: usize,
    /// Test strips, e.g. 2000.
    pub test: usize,
}

impl Default for StringsConfig {
    fn default() -> Self {
        Self { max_len: 5, train: 20_000, valid: 500, test: 2_000 }
    }
}

/// Most digits in a strip.
pub const MAX_LEN: usize = 32;
/// Most strips in a set.
pub const MAX_STRIPS: usize = 1 << 22;

impl StringsConfig {
    /// Checks the counts; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_LEN).contains(&self.max_len) {
            return Err(Error::config("data.images.strings.max_len", format!("must be in 1..={MAX_LEN}")));
        }
        for (name, n) in [("train", self.train), ("valid", self.valid), ("test", self.test)] {
            if n > MAX_STRIPS || (n == 0 && name != "valid") {
                return Err(Error::config(
                    &format!("data.images.strings.{name}"),
                    format!("must be in 1..={MAX_STRIPS}"),
                ));
            }
        }
        Ok(())
    }

    /// The strip's size (width, height) for digits of `w`×`h`.
    pub fn strip_size(&self, w: usize, h: usize) -> (usize, usize) {
        let (m, g) = margins(w, h);
        (2 * m + self.max_len * w + (self.max_len - 1) * g, h + 2 * m)
    }
}

/// (margin, largest gap) for digits of `w`×`h`.
fn margins(w: usize, h: usize) -> (usize, usize) {
    ((h / 4).max(3), (w / 4).max(2))
}

/// Strips and what each reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Strips {
    /// The strips as images (labels: the number of digits, for statistics).
    pub images: Images,
    /// What each strip reads, e.g. "4071".
    pub texts: Vec<String>,
}

impl Strips {
    /// Number of strips.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// The symbol each class writes: its name, which must be one character
/// (the error says which is not).
pub fn symbols(digits: &Images, source: &str) -> Result<Vec<char>> {
    digits
        .classes
        .iter()
        .map(|c| {
            let mut it = c.chars();
            match (it.next(), it.next()) {
                (Some(ch), None) if !ch.is_whitespace() => Ok(ch),
                _ => Err(Error::config(
                    "data",
                    format!("{source}: class {c:?} is not one character; digit strings are written with one character per class (digits 0-9)"),
                )),
            }
        })
        .collect()
}

/// `n` strips of `digits` (seeded by `seed` and `what`, e.g. "train").
pub fn make(digits: &Images, cfg: &StringsConfig, n: usize, seed: u64, what: &str, source: &str) -> Result<Strips> {
    let syms = symbols(digits, source)?;
    let (w, h) = (digits.width, digits.height);
    let (sw, sh) = cfg.strip_size(w, h);
    let (m, g) = margins(w, h);
    let bytes = sw.checked_mul(sh).and_then(|p| p.checked_mul(n));
    if bytes.is_none_or(|b| b > super::idx::MAX_BYTES) {
        return Err(Error::config(
            "data.images.strings",
            format!("{n} strips of {sw}×{sh} pixels are more than 4 GiB: make fewer or shorter ones"),
        ));
    }
    if digits.is_empty() && n > 0 {
        return Err(Error::config("data", format!("{source}: no {what} digit images to make strips of")));
    }
    let mut rng = Rng::derive(seed, &format!("strips-{what}"));
    let mut pixels = vec![0u8; sw * sh * n];
    let (mut texts, mut labels) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (s, canvas) in pixels.chunks_mut((sw * sh).max(1)).take(n).enumerate() {
        let len = 1 + rng.below(cfg.max_len);
        let picks: Vec<usize> = (0..len).map(|_| rng.below(digits.len())).collect();
        let gaps: Vec<usize> = (1..len).map(|_| 1 + rng.below(g)).collect();
        let used = len * w + gaps.iter().sum::<usize>();
        let mut x = m + rng.below(sw - 2 * m - used + 1);
        for (k, &i) in picks.iter().enumerate() {
            let img = digits.image(i);
            for r in 0..h {
                canvas[(m + r) * sw + x..(m + r) * sw + x + w].copy_from_slice(&img[r * w..(r + 1) * w]);
            }
            x += w + gaps.get(k).copied().unwrap_or(0);
        }
        texts.push(picks.iter().map(|&i| syms[digits.labels[i] as usize]).collect());
        labels.push(len as u32);
        debug_assert_eq!(texts.len(), s + 1);
    }
    let classes = (0..=cfg.max_len).map(|l| l.to_string()).collect();
    let images = Images { width: sw, height: sh, max_value: digits.max_value, pixels, labels, classes };
    Ok(Strips { images, texts })
}

/// Training, validation and test strips, from disjoint digit images.
#[derive(Debug, Clone, PartialEq)]
pub struct StripData {
    /// Strips of the training digits.
    pub train: Strips,
    /// Strips of the validation digits (of the training digits when none are held out).
    pub valid: Strips,
    /// Strips of the test digits.
    pub test: Strips,
    /// The characters strips are written with (class names).
    pub symbols: Vec<char>,
    /// Where the digits came from.
    pub source: String,
}

impl StripData {
    /// Strips made from split digit images.
    pub fn new(digits: &super::ImageData, cfg: &StringsConfig) -> Result<Self> {
        cfg.validate()?;
        let src = &digits.source;
        let valid_digits = if digits.valid.is_empty() { &digits.train } else { &digits.valid };
        Ok(Self {
            train: make(&digits.train, cfg, cfg.train, 0, "train", src)?,
            valid: make(valid_digits, cfg, cfg.valid, 0, "valid", src)?,
            test: make(&digits.test, cfg, cfg.test, 0, "test", src)?,
            symbols: symbols(&digits.train, src)?,
            source: src.clone(),
        })
    }

    /// A one-line summary for logs.
    pub fn describe(&self) -> String {
        format!(
            "{} training, {} validation and {} test strips of {}×{} (from {})",
            self.train.len(),
            self.valid.len(),
            self.test.len(),
            self.train.images.width,
            self.train.images.height,
            self.source
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> Images {
        // Ten 4×4 "digits": digit d is a block of value d + 1.
        let pixels = (0..10u8).flat_map(|d| [d + 1; 16]).collect();
        Images {
            width: 4,
            height: 4,
            max_value: 16,
            pixels,
            labels: (0..10).collect(),
            classes: (0..10).map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn strips_read_their_digits_left_to_right_and_are_seeded() {
        let cfg = StringsConfig { max_len: 4, train: 50, valid: 0, test: 1 };
        let s = make(&digits(), &cfg, 50, 3, "train", "blocks").unwrap();
        assert_eq!(s, make(&digits(), &cfg, 50, 3, "train", "blocks").unwrap());
        assert_ne!(s, make(&digits(), &cfg, 50, 4, "train", "blocks").unwrap());
        let (w, h) = (s.images.width, s.images.height);
        assert_eq!((w, h), cfg.strip_size(4, 4));
        assert_eq!((w, h), (6 + 16 + 3 * 2, 10));
        let mut lens = std::collections::BTreeSet::new();
        for (i, text) in s.texts.iter().enumerate() {
            // Read the middle row: each run of one value is one digit.
            let row = &s.images.image(i)[(h / 2) * w..(h / 2 + 1) * w];
            assert!(row[..3].iter().chain(&row[w - 3..]).all(|&p| p == 0), "ink in the margin");
            // Runs of one value: a run of 4k pixels is k equal digits side by side.
            let mut read = String::new();
            for run in row.chunk_by(|a, b| a == b).filter(|r| r[0] != 0) {
                assert_eq!(run.len() % 4, 0, "strip {i}: a cut digit");
                read.extend(std::iter::repeat_n(char::from(b'0' + run[0] - 1), run.len() / 4));
            }
            assert_eq!(&read, text);
            assert_eq!(s.images.labels[i] as usize, text.len());
            lens.insert(text.len());
        }
        assert_eq!(lens.into_iter().collect::<Vec<_>>(), [1, 2, 3, 4]);
    }

    #[test]
    fn ink_is_whole_digits_and_names_must_be_one_character() {
        let cfg = StringsConfig { max_len: 5, train: 20, valid: 0, test: 1 };
        let s = make(&digits(), &cfg, 20, 1, "train", "blocks").unwrap();
        for (i, text) in s.texts.iter().enumerate() {
            let ink = s.images.image(i).iter().filter(|&&p| p > 0).count();
            assert_eq!(ink, 16 * text.len(), "strip {i} ({text})");
            let sum: usize = s.images.image(i).iter().map(|&p| p as usize).sum();
            let want: usize = text.bytes().map(|b| 16 * (b - b'0' + 1) as usize).sum();
            assert_eq!(sum, want, "strip {i} ({text})");
        }
        let mut named = digits();
        named.classes[3] = "three".into();
        let e = make(&named, &cfg, 2, 0, "train", "words").unwrap_err().to_string();
        assert!(e.contains("\"three\"") && e.contains("words"), "{e}");
        let bad = StringsConfig { max_len: 0, ..cfg };
        assert!(bad.validate().unwrap_err().to_string().contains("data.images.strings.max_len"));
        let huge = StringsConfig { max_len: 32, train: MAX_STRIPS, valid: 0, test: 1 };
        let mut big = digits();
        (big.width, big.height) = (4096, 4096);
        big.pixels = vec![0; 4096 * 4096 * 10];
        assert!(make(&big, &huge, MAX_STRIPS, 0, "train", "big").unwrap_err().to_string().contains("4 GiB"));
    }
}
