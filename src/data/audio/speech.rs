//! Spoken data for recognition: clips read from a folder, split, placed on a
//! fixed canvas and turned into log-mel features.
//!
//! A folder is one of:
//! - transcripts: `train.tsv` (and optionally `test.tsv`, `valid.tsv`,
//!   `unseen_engine.tsv`), or any single `*.tsv`, each line
//!   `path<TAB>text` with the path relative to the TSV (the built-in corpus
//!   is written this way, [`super::corpus`]);
//! - one subfolder per label holding WAVs (the Speech Commands layout; a
//!   subfolder whose name starts with `_`, like `_background_noise_`, is
//!   skipped, and `testing_list.txt`/`validation_list.txt` are honoured).
//!
//! Clips are read as 16 kHz mono ([`super::wav::read`]) and trimmed of the
//! silence at both ends (10 ms frames quieter than −40 dB of the loudest).
//! Every clip of a run sits on one canvas: the longest training clip plus
//! `pad_ms` on either side, so that a clip moved up to `pad_ms` from the
//! centre loses nothing. The model reads the canvas's log-mel features as
//! an image: `n_mels` rows (low frequencies first) by frames.

use super::augment::{add_noise, SpeechAugment};
use super::mel::{LogMel, MelConfig};
use super::SAMPLE_RATE;
use crate::data::shift::Fill;
use crate::error::{Error, Result};
use crate::rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Labelled clips.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Clips {
    /// Each clip, 16 kHz mono, its silent ends trimmed.
    pub audio: Vec<Vec<f32>>,
    /// What each says: a keyword ("seven") or a transcript ("4071").
    pub texts: Vec<String>,
    /// Where each came from, for messages.
    pub paths: Vec<PathBuf>,
}

impl Clips {
    /// Number of clips.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// The clips at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Clips {
        Clips {
            audio: idx.iter().map(|&i| self.audio[i].clone()).collect(),
            texts: idx.iter().map(|&i| self.texts[i].clone()).collect(),
            paths: idx.iter().map(|&i| self.paths[i].clone()).collect(),
        }
    }
}

/// Where a speech run's clips come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeechSource {
    /// The built-in espeak-ng/flite corpus in this folder, made on first
    /// use (`--task spoken-digits`, `--task spoken-strings`).
    Corpus(PathBuf),
    /// Your clips (`--data DIR`).
    Dir(PathBuf),
}

/// The `data` table of a speech run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechDataConfig {
    /// Where the clips come from.
    pub source: SpeechSource,
    /// Transcripts for an encoder–decoder (`spoken-strings`) instead of
    /// keywords for a classifier (`spoken-digits`).
    #[serde(default)]
    pub strings: bool,
    /// The log-mel front-end.
    #[serde(default)]
    pub features: MelConfig,
    /// How training clips are perturbed (`--augment`).
    #[serde(default)]
    pub augment: SpeechAugment,
    /// Share of the training clips held out for validation, e.g. 0.1.
    pub valid_fraction: f64,
    /// Room on either side of the longest training clip, in ms, e.g. 400.
    pub pad_ms: u32,
    /// The canvas length in ms; set from the data when training starts
    /// (and kept, so a checkpoint reads clips as it was trained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canvas_ms: Option<u32>,
}

impl SpeechDataConfig {
    /// The folder holding the clips: the corpus's task folder, or yours.
    pub fn dir(&self) -> PathBuf {
        match &self.source {
            SpeechSource::Corpus(d) => d.join(if self.strings { "strings" } else { "digits" }),
            SpeechSource::Dir(d) => d.clone(),
        }
    }
}

/// The default home of the built-in corpus: `$SHIFTLM_DATA/speech`, else
/// `$XDG_CACHE_HOME/shiftlm/speech`, else `~/.cache/shiftlm/speech`.
pub fn default_corpus_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SHIFTLM_DATA") {
        return PathBuf::from(d).join("speech");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("shiftlm").join("speech")
}

/// A run's clips: split, with their canvas and classes.
#[derive(Debug, Clone)]
pub struct SpeechData {
    /// Clips to train on.
    pub train: Arc<Clips>,
    /// Held out of training for validation.
    pub valid: Arc<Clips>,
    /// The test set (held-out voices, for the corpus).
    pub test: Arc<Clips>,
    /// A second test set from another engine (the corpus's flite voices).
    pub unseen_engine: Option<Arc<Clips>>,
    /// Keyword classes in label order (empty for transcripts).
    pub classes: Vec<String>,
    /// Transcripts rather than keywords.
    pub strings: bool,
    /// The feature extractor.
    pub features: Features,
    /// Samples on the canvas.
    pub canvas: usize,
    /// Where the clips came from.
    pub source: String,
}

/// The share of a folder held out for testing when it has no test set.
pub const TEST_FRACTION: f64 = 0.2;
/// Most clips read from a folder.
pub const MAX_CLIPS: usize = 1 << 21;
/// Most audio held in memory, in samples (2³¹: about 37 hours at 16 kHz, 8 GiB).
pub const MAX_SAMPLES: usize = 1 << 31;

impl SpeechData {
    /// Reads, trims and splits the clips `cfg` names (making the built-in
    /// corpus first if need be; `progress` hears about that).
    pub fn load(cfg: &SpeechDataConfig, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<SpeechData> {
        if !(0.0..1.0).contains(&cfg.valid_fraction) {
            return Err(Error::config("data.valid_fraction", "must be in [0, 1)"));
        }
        cfg.augment.validate()?;
        let features = Features::new(&cfg.features)?;
        if let SpeechSource::Corpus(d) = &cfg.source {
            super::corpus::ensure(d, &super::corpus::CorpusConfig::default(), progress)?;
        }
        let dir = cfg.dir();
        let sets = read_dir(&dir)?;
        let (mut train, test) = match sets.test {
            Some(t) => (sets.train, t),
            None => split(&sets.train, TEST_FRACTION, 0),
        };
        let valid = match sets.valid {
            Some(v) => v,
            None if cfg.valid_fraction > 0.0 => {
                let (t, v) = split(&train, cfg.valid_fraction, 1);
                train = t;
                v
            }
            None => Clips::default(),
        };
        if train.is_empty() || test.is_empty() {
            return Err(Error::config("data", format!("{}: too few clips to train and test on", dir.display())));
        }
        let classes = if cfg.strings { Vec::new() } else { keyword_classes(&train.texts) };
        let mut unseen = sets.unseen_engine;
        if !cfg.strings {
            for (what, set) in [("validation", Some(&valid)), ("test", Some(&test)), ("unseen-engine", unseen.as_ref())]
            {
                if let Some(i) = set.and_then(|s| s.texts.iter().position(|t| !classes.contains(t))) {
                    let s = set.expect("found in it");
                    return Err(Error::bad_file(
                        &s.paths[i],
                        format!("a {what} clip says {:?}, which no training clip does", s.texts[i]),
                    ));
                }
            }
        }
        let hop = cfg.features.hop_length;
        let canvas = match cfg.canvas_ms {
            Some(ms) => ms as usize * SAMPLE_RATE as usize / 1000,
            None => {
                let (i, longest) =
                    train.audio.iter().map(Vec::len).enumerate().max_by_key(|&(_, n)| n).unwrap_or((0, 0));
                let pad = cfg.pad_ms as usize * SAMPLE_RATE as usize / 1000;
                if longest + 2 * pad > 60 * SAMPLE_RATE as usize {
                    return Err(Error::bad_file(
                        &train.paths[i],
                        format!("{} ms of sound plus data.speech.pad_ms = {} on either side is more than the 60 s a canvas holds", longest / 16, cfg.pad_ms),
                    ));
                }
                // Frames (1 + hops) a multiple of 4, so two 2×2 poolings halve
                // them evenly, and the canvas a whole number of ms (16
                // samples), so that `canvas_ms` saves it exactly.
                let mut hops = (longest + 2 * pad).div_ceil(hop);
                hops += (3 + 4 - hops % 4) % 4;
                let mut canvas = hops * hop;
                // A hop that is not a whole number of ms: the next whole ms
                // with 1 + ⌊canvas / hop⌋ a multiple of 4 (within 4 hops).
                while !canvas.is_multiple_of(16) || (canvas / hop) % 4 != 3 {
                    canvas += 16 - canvas % 16;
                }
                canvas
            }
        };
        if canvas == 0 || canvas > 61 * SAMPLE_RATE as usize {
            return Err(Error::config("data.speech.canvas_ms", "the canvas must be 1 ms to 60 s"));
        }
        Ok(SpeechData {
            train: Arc::new(train),
            valid: Arc::new(valid),
            test: Arc::new(test),
            unseen_engine: unseen.take().map(Arc::new),
            classes,
            strings: cfg.strings,
            features,
            canvas,
            source: dir.display().to_string(),
        })
    }

    /// The canvas length in ms.
    pub fn canvas_ms(&self) -> u32 {
        (self.canvas * 1000 / SAMPLE_RATE as usize) as u32
    }

    /// Frames on the canvas: the model's width.
    pub fn frames(&self) -> usize {
        self.features.cfg.frames(self.canvas)
    }

    /// Each clip's label (its class's index); keywords only.
    pub fn labels(&self, clips: &Clips) -> Vec<u32> {
        clips.texts.iter().map(|t| self.classes.iter().position(|c| c == t).unwrap_or(0) as u32).collect()
    }

    /// A one-line summary for logs.
    pub fn describe(&self) -> String {
        let what = if self.strings { "transcribed".to_string() } else { format!("{}-keyword", self.classes.len()) };
        let unseen = self.unseen_engine.as_ref().map_or(String::new(), |u| format!(" + {} unseen-engine", u.len()));
        format!(
            "{} training, {} validation and {} test{unseen} {what} clips on a {} ms canvas ({})",
            self.train.len(),
            self.valid.len(),
            self.test.len(),
            self.canvas_ms(),
            self.source
        )
    }

    /// The features of `clip` placed `offset` samples from the canvas's
    /// centre, unperturbed (evaluation): `n_mels` × frames.
    pub fn features_at(&self, clip: &[f32], offset: i64) -> Vec<f32> {
        self.features.extract(&place(clip, self.canvas, offset, Fill::Zero))
    }

    /// The features of `clip` perturbed by `aug` with draws from `rng` (training).
    pub fn augmented(&self, clip: &[f32], aug: &SpeechAugment, rng: &mut Rng) -> Vec<f32> {
        if aug.is_identity() {
            return self.features_at(clip, 0);
        }
        let (x, offset) = aug.perturb(clip, SAMPLE_RATE, rng);
        let mut canvas = place(&x, self.canvas, offset, aug.mode);
        if let Some(snr) = aug.snr_db {
            let power = x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32;
            add_noise(&mut canvas, power, snr, rng);
        }
        let mut f = self.features.extract(&canvas);
        let cfg = &self.features.cfg;
        let hop_ms = cfg.hop_length as f32 * 1000.0 / SAMPLE_RATE as f32;
        aug.mask(&mut f, cfg.n_mels, self.frames(), hop_ms, 0.0, rng);
        f
    }

    /// Features of many clips at their offsets, in parallel: B × `n_mels` × frames.
    pub fn features_batch(&self, clips: &Clips, idx: &[usize], offsets: &[i64]) -> Vec<f32> {
        let per: Vec<Vec<f32>> =
            idx.par_iter().zip(offsets).map(|(&i, &o)| self.features_at(&clips.audio[i], o)).collect();
        per.concat()
    }
}

/// `clip` on a canvas of `n` samples: centred, then moved `offset` samples
/// (later when positive). Zero fill loses what leaves the canvas; wrap rolls
/// it round. A clip longer than the canvas is cut about its centre.
pub fn place(clip: &[f32], n: usize, offset: i64, mode: Fill) -> Vec<f32> {
    let mut out = vec![0f32; n];
    if n == 0 {
        return out;
    }
    let start = (n as i64 - clip.len() as i64).div_euclid(2) + offset;
    for (k, &v) in clip.iter().enumerate() {
        let t = start + k as i64;
        match mode {
            Fill::Zero if (0..n as i64).contains(&t) => out[t as usize] = v,
            Fill::Zero => {}
            Fill::Wrap if clip.len() <= n => out[t.rem_euclid(n as i64) as usize] = v,
            // A clip longer than the canvas cannot wrap without overlapping itself.
            Fill::Wrap if (0..n as i64).contains(&t) => out[t as usize] = v,
            Fill::Wrap => {}
        }
    }
    out
}

/// Log-mel features scaled for a network: ln(1 + power·10⁶) / 10, so that
/// digital silence is exactly 0 (the value the convolutions pad with) and
/// speech lies roughly in [0, 2]. Laid out `n_mels` rows by frames.
#[derive(Debug, Clone)]
pub struct Features {
    /// The spectrogram's shape.
    pub cfg: MelConfig,
    mel: Arc<LogMel>,
}

impl Features {
    /// An extractor for 16 kHz clips.
    pub fn new(cfg: &MelConfig) -> Result<Self> {
        Ok(Self { cfg: cfg.clone(), mel: Arc::new(LogMel::new(cfg, SAMPLE_RATE)?) })
    }

    /// The features of `x`: `n_mels` × frames.
    pub fn extract(&self, x: &[f32]) -> Vec<f32> {
        let p = self.mel.power(x); // (frames, n_mels)
        let m = self.cfg.n_mels;
        let frames = p.len() / m;
        let mut out = vec![0f32; p.len()];
        for t in 0..frames {
            for k in 0..m {
                out[k * frames + t] = (p[t * m + k] * 1e6).ln_1p() * 0.1;
            }
        }
        out
    }
}

/// The sets a folder holds.
struct Sets {
    train: Clips,
    valid: Option<Clips>,
    test: Option<Clips>,
    unseen_engine: Option<Clips>,
}

/// The clips of `dir` to evaluate a model on, as `SpeechData` with the
/// checkpoint's features, canvas and `classes` (keywords; empty for
/// transcripts): the folder's test set if it has one (`test.tsv`,
/// `testing_list.txt`), otherwise every clip; and its unseen-engine set.
/// A keyword the model does not know is refused, naming the clip.
pub fn for_eval(cfg: &SpeechDataConfig, dir: &Path, classes: Vec<String>) -> Result<SpeechData> {
    let sets = read_dir(dir)?;
    let test = match sets.test {
        Some(t) => t,
        None => {
            let mut all = sets.train;
            if let Some(v) = sets.valid {
                all.audio.extend(v.audio);
                all.texts.extend(v.texts);
                all.paths.extend(v.paths);
            }
            all
        }
    };
    if test.is_empty() {
        return Err(Error::bad_file(dir, "holds no clips to evaluate".to_string()));
    }
    if !cfg.strings {
        for set in std::iter::once(&test).chain(sets.unseen_engine.as_ref()) {
            if let Some(i) = set.texts.iter().position(|t| !classes.contains(t)) {
                return Err(Error::bad_file(
                    &set.paths[i],
                    format!("says {:?}, which is not a keyword the model knows ({})", set.texts[i], classes.join(", ")),
                ));
            }
        }
    }
    let canvas = cfg.canvas_ms.map_or(SAMPLE_RATE as usize, |ms| ms as usize * SAMPLE_RATE as usize / 1000);
    Ok(SpeechData {
        train: Arc::new(Clips::default()),
        valid: Arc::new(Clips::default()),
        test: Arc::new(test),
        unseen_engine: sets.unseen_engine.map(Arc::new),
        classes,
        strings: cfg.strings,
        features: Features::new(&cfg.features)?,
        canvas,
        source: dir.display().to_string(),
    })
}

/// Whether `dir` looks like spoken data: a `*.tsv` transcript, or WAVs in
/// its subfolders.
pub fn looks_like_audio(dir: &Path) -> bool {
    let entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    entries.iter().any(|p| p.extension().is_some_and(|e| e == "tsv"))
        || entries
            .iter()
            .filter(|p| p.is_dir())
            .any(|d| std::fs::read_dir(d).is_ok_and(|mut r| r.any(|e| e.is_ok_and(|e| is_wav(&e.path())))))
}

fn is_wav(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("wav"))
}

fn read_dir(dir: &Path) -> Result<Sets> {
    if !dir.is_dir() {
        return Err(Error::io(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder")));
    }
    let tsv = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
    if let Some(train) = tsv("train.tsv") {
        // An optional set with no clips (comments only) is no set.
        let opt = |name: &str| -> Result<Option<Clips>> {
            Ok(tsv(name).map(|p| read_tsv(&p)).transpose()?.filter(|c| !c.is_empty()))
        };
        return Ok(Sets {
            train: read_tsv(&train)?,
            valid: opt("valid.tsv")?,
            test: opt("test.tsv")?,
            unseen_engine: opt("unseen_engine.tsv")?,
        });
    }
    let mut tsvs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tsv"))
        .collect();
    tsvs.sort();
    match tsvs.as_slice() {
        [one] => return Ok(Sets { train: read_tsv(one)?, valid: None, test: None, unseen_engine: None }),
        [] => {}
        _ => return Err(Error::bad_file(
            dir,
            "holds several .tsv files: name them train.tsv, test.tsv (and valid.tsv, unseen_engine.tsv), or keep one"
                .to_string(),
        )),
    }
    read_folders(dir)
}

/// `path<TAB>text` lines; the error names the file and line.
pub fn read_tsv(path: &Path) -> Result<Clips> {
    let text = crate::data::read_utf8(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |msg: String| Error::BadLine { path: path.to_path_buf(), line: i + 1, msg };
        let (p, t) = line.split_once('\t').ok_or_else(|| bad("expected path<TAB>text".into()))?;
        if t.contains('\t') {
            return Err(bad("the text holds a tab; expected path<TAB>text".into()));
        }
        let t = t.trim();
        if t.is_empty() {
            return Err(bad(format!("{p}: the text is empty")));
        }
        let wav = base.join(p.trim());
        if !wav.is_file() {
            return Err(bad(format!("{}: no such file", wav.display())));
        }
        entries.push((wav, t.to_string()));
    }
    if entries.len() > MAX_CLIPS {
        return Err(Error::bad_file(path, format!("{} clips; at most {MAX_CLIPS} are read", entries.len())));
    }
    read_clips(entries)
}

/// One subfolder per label; `testing_list.txt` and `validation_list.txt`
/// (paths relative to `dir`) pick the test and validation clips.
fn read_folders(dir: &Path) -> Result<Sets> {
    let list = |name: &str| -> Result<Option<std::collections::HashSet<String>>> {
        let p = dir.join(name);
        if !p.is_file() {
            return Ok(None);
        }
        Ok(Some(crate::data::read_utf8(&p)?.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()))
    };
    let (testing, validation) = (list("testing_list.txt")?, list("validation_list.txt")?);
    let mut labels: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('_')))
        .collect();
    labels.sort();
    let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
    for l in &labels {
        let name = l.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let mut wavs: Vec<PathBuf> = std::fs::read_dir(l)
            .map_err(|e| Error::io(l, e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_wav(p))
            .collect();
        wavs.sort();
        for w in wavs {
            let rel = format!("{name}/{}", w.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default());
            let to = if testing.as_ref().is_some_and(|s| s.contains(&rel)) {
                &mut test
            } else if validation.as_ref().is_some_and(|s| s.contains(&rel)) {
                &mut valid
            } else {
                &mut train
            };
            to.push((w, name.clone()));
        }
    }
    if train.len() + valid.len() + test.len() == 0 {
        return Err(Error::bad_file(
            dir,
            "holds no clips: give a train.tsv (path<TAB>text) or one subfolder of WAVs per label".to_string(),
        ));
    }
    if train.len() + valid.len() + test.len() > MAX_CLIPS {
        return Err(Error::bad_file(dir, format!("more than {MAX_CLIPS} clips")));
    }
    let some = |v: Vec<(PathBuf, String)>, listed: bool| -> Result<Option<Clips>> {
        if listed {
            read_clips(v).map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(Sets {
        train: read_clips(train)?,
        valid: some(valid, validation.is_some())?,
        test: some(test, testing.is_some())?,
        unseen_engine: None,
    })
}

/// Reads and trims every clip, in parallel, in order.
/// The headers are read first: audio past [`MAX_SAMPLES`] in all is refused
/// before any is loaded.
fn read_clips(entries: Vec<(PathBuf, String)>) -> Result<Clips> {
    // At 16 kHz; a header that cannot be read counts 0 here and is named by `read`.
    let total: u64 = entries
        .par_iter()
        .map(|(p, _)| {
            hound::WavReader::open(p).map_or(0, |r| {
                u64::from(r.duration()) * u64::from(SAMPLE_RATE) / u64::from(r.spec().sample_rate.max(1))
            })
        })
        .sum();
    if total > MAX_SAMPLES as u64 {
        return Err(Error::config(
            "data",
            format!("{} hours of audio is more than shiftlm holds in memory (37)", total / 57_600_000),
        ));
    }
    let audio: Vec<Vec<f32>> =
        entries.par_iter().map(|(p, _)| super::wav::read(p).map(|x| trim(&x))).collect::<Result<_>>()?;
    let (paths, texts) = entries.into_iter().unzip();
    Ok(Clips { audio, texts, paths })
}

/// `x` without the silence at its ends: 10 ms frames whose RMS is below
/// 1% (−40 dB) of the loudest frame's, keeping one frame of margin.
pub fn trim(x: &[f32]) -> Vec<f32> {
    const FRAME: usize = SAMPLE_RATE as usize / 100;
    let rms: Vec<f32> =
        x.chunks(FRAME).map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt()).collect();
    let loud = rms.iter().copied().fold(0f32, f32::max);
    if loud == 0.0 {
        return x.to_vec();
    }
    let first = rms.iter().position(|&r| r >= 0.01 * loud).unwrap_or(0);
    let last = rms.iter().rposition(|&r| r >= 0.01 * loud).unwrap_or(rms.len() - 1);
    let (a, b) = (first.saturating_sub(1) * FRAME, ((last + 2) * FRAME).min(x.len()));
    x[a..b].to_vec()
}

/// A seeded split: the last `fraction` of a shuffled order held out.
pub fn split(all: &Clips, fraction: f64, seed: u64) -> (Clips, Clips) {
    let mut idx: Vec<usize> = (0..all.len()).collect();
    Rng::derive(seed, "speech-split").shuffle(&mut idx);
    let n = ((all.len() as f64 * fraction).round() as usize).clamp(usize::from(all.len() > 1), all.len());
    let (a, b) = idx.split_at(all.len() - n);
    (all.select(a), all.select(b))
}

/// The keyword classes: the distinct texts, sorted, or in counting order
/// when they are all digit words ("zero" … "nine").
fn keyword_classes(texts: &[String]) -> Vec<String> {
    let set: std::collections::BTreeSet<&String> = texts.iter().collect();
    let digits = super::corpus::DIGITS;
    if set.iter().all(|t| digits.contains(&t.as_str())) {
        return digits.iter().filter(|d| set.iter().any(|t| t == d)).map(|d| d.to_string()).collect();
    }
    set.into_iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placing_centres_shifts_and_wraps() {
        let clip = [1.0, 2.0, 3.0];
        assert_eq!(place(&clip, 7, 0, Fill::Zero), [0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0]);
        assert_eq!(place(&clip, 7, 2, Fill::Zero), [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0]);
        assert_eq!(place(&clip, 7, 3, Fill::Zero), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
        assert_eq!(place(&clip, 7, 3, Fill::Wrap), [3.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
        assert_eq!(place(&clip, 7, -3, Fill::Zero), [2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Longer than the canvas: cut about the centre.
        assert_eq!(place(&[1.0, 2.0, 3.0, 4.0, 5.0], 3, 0, Fill::Wrap), [2.0, 3.0, 4.0]);
    }

    /// The canvas is a whole number of ms (so `canvas_ms` saves it exactly)
    /// and its frames a multiple of 4, for any hop.
    #[test]
    fn the_canvas_is_whole_ms_and_four_frames_for_any_hop() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a")).unwrap();
        for (i, n) in [3000usize, 5111].iter().enumerate() {
            let x: Vec<f32> = (0..*n).map(|k| (k as f32 * 0.3).sin() * 0.5).collect();
            super::super::wav::write(&d.path().join(format!("a/{i}.wav")), &x, SAMPLE_RATE).unwrap();
        }
        for hop in [100, 160, 200, 123, 400] {
            let mut cfg = SpeechDataConfig {
                source: SpeechSource::Dir(d.path().to_path_buf()),
                strings: true,
                features: MelConfig { hop_length: hop, ..Default::default() },
                augment: Default::default(),
                valid_fraction: 0.0,
                pad_ms: 37,
                canvas_ms: None,
            };
            let s = SpeechData::load(&cfg, &|_, _| {}).unwrap();
            assert_eq!((s.canvas % 16, s.frames() % 4), (0, 0), "hop {hop}");
            assert!(s.canvas >= s.train.audio.iter().map(Vec::len).max().unwrap() + 2 * 37 * 16, "hop {hop}");
            cfg.canvas_ms = Some(s.canvas_ms());
            assert_eq!(SpeechData::load(&cfg, &|_, _| {}).unwrap().frames(), s.frames(), "hop {hop}");
        }
    }

    #[test]
    fn trimming_keeps_the_sound_and_a_frame_of_margin() {
        let mut x = vec![0f32; 16_000];
        for (i, v) in x[4000..8000].iter_mut().enumerate() {
            *v = (i as f32 * 0.3).sin();
        }
        let t = trim(&x);
        assert_eq!(t.len(), 4000 + 2 * 160);
        assert_eq!(trim(&[0.0; 10]), vec![0.0; 10]);
    }

    #[test]
    fn silence_is_zero_and_sound_is_not() {
        let f = Features::new(&MelConfig::default()).unwrap();
        let z = f.extract(&vec![0f32; 1600]);
        assert_eq!(z.len(), 40 * 11);
        assert!(z.iter().all(|&v| v == 0.0));
        let s: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.2).sin() * 0.5).collect();
        let v = f.extract(&s);
        assert!(v.iter().all(|x| x.is_finite() && *x >= 0.0) && v.iter().cloned().fold(0f32, f32::max) > 0.5);
    }
}
