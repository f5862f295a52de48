//! How well a speech model recognises held-out clips, and how robust it is
//! to the input shift in time:
//! - keywords: top-1 `accuracy`, the teacher-forced `loss` and the confusion
//!   matrix; transcripts: `exact_match`, `cer` and `wer` (edit distance over
//!   the reference's characters or words; a transcript of digits without
//!   spaces counts each digit as a word, as each is spoken as one);
//! - `shift_curve`: the same with every clip placed ±s ms from the canvas's
//!   centre (the sign drawn per clip), for each s asked for;
//! - `consistency`: how often the predictions for two random offsets within
//!   ±200 ms agree.
//!
//! Offsets come from fixed seeds, so every model is measured on the same
//! shifted clips. Decoding is greedy and never sees the transcript.

use super::strips::{edit_distance, StripExample};
use crate::data::audio::speech::{Clips, SpeechData};
use crate::data::audio::SAMPLE_RATE;
use crate::data::loader::{clip_targets, speech_batches};
use crate::data::shift::{strip_columns, ImageBatch};
use crate::data::Tokenizer;
use crate::decode::{decode_frames, DecodeOptions, Strategy};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::rng::Rng;
use candle_core::{Device, Tensor, D};
use serde::{Deserialize, Serialize};

/// The offsets of the default shift curve, in ms.
pub const SHIFT_CURVE_MS: [u32; 5] = [0, 50, 100, 200, 400];
/// The widest offset of the consistency measure, in ms.
pub const CONSISTENCY_MS: u32 = 200;

/// Recognition at one offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftPointMs {
    /// How far every clip was moved, either way, in ms.
    pub shift_ms: u32,
    /// Keyword accuracy, or the share of transcripts exactly right.
    pub accuracy: f64,
    /// Character error rate (transcripts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cer: Option<f64>,
}

/// A speech model's report on a set of clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeechReport {
    /// Clips evaluated.
    pub clips: usize,
    /// Mean teacher-forced cross-entropy (per clip, or per supervised token).
    pub loss: f64,
    /// Keywords: top-1 accuracy on the centred clips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Transcripts: the share read exactly right.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact_match: Option<f64>,
    /// Transcripts: character error rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cer: Option<f64>,
    /// Transcripts: word error rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wer: Option<f64>,
    /// Keywords: class names, indexing `confusion`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Keywords: `confusion[true][predicted]` counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confusion: Vec<Vec<usize>>,
    /// Recognition with the clips moved ±s ms.
    pub shift_curve: Vec<ShiftPointMs>,
    /// How often two random offsets within ±200 ms give the same prediction.
    pub consistency: f64,
    /// The same figures on the clips of an engine never trained on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unseen_engine: Option<Box<SpeechReport>>,
    /// The first transcripts and what was read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<StripExample>,
}

/// What a model predicts for every clip at its offset (in samples): a
/// class, or a transcript's ids.
#[derive(Debug, Clone, PartialEq)]
enum Predictions {
    Classes(Vec<u32>),
    Texts(Vec<Vec<u32>>),
}

/// Predictions for `clips` each placed at its offset.
fn predict(
    model: &Model,
    data: &SpeechData,
    clips: &Clips,
    offsets: &[i64],
    max_len: usize,
    dev: &Device,
) -> Result<Predictions> {
    let (h, w) = (data.features.cfg.n_mels, data.frames());
    let idx: Vec<usize> = (0..clips.len()).collect();
    let (mut classes, mut texts) = (Vec::new(), Vec::new());
    let phase = crate::progress::phase("clips recognised", idx.len());
    for chunk in idx.chunks(128) {
        let feats = data.features_batch(clips, chunk, &chunk.iter().map(|&i| offsets[i]).collect::<Vec<_>>());
        if let Some(m) = model.image() {
            let b = ImageBatch::new(h, w, feats, vec![0; chunk.len()]);
            let logits = m.forward(&b.tensors(dev)?.images, None)?;
            classes.extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
        } else {
            let ed = model
                .encoder_decoder()
                .ok_or_else(|| Error::config("model", "speech is read by a classifier or an encoder–decoder"))?;
            let frames = strip_columns(&Tensor::from_vec(feats, (chunk.len(), h, w), dev)?)?; // (B, W, H)
            let opts = DecodeOptions { strategy: Strategy::Greedy, max_len };
            texts.extend(decode_frames(ed, &frames, &opts, dev)?);
        }
        phase.advance(chunk.len());
    }
    Ok(if model.image().is_some() { Predictions::Classes(classes) } else { Predictions::Texts(texts) })
}

/// Words of a transcript for the word error rate: whitespace-separated, or
/// each character of a transcript of digits without spaces.
fn words(text: &str) -> Vec<String> {
    if !text.contains(char::is_whitespace) && text.chars().all(|c| c.is_ascii_digit()) {
        text.chars().map(String::from).collect()
    } else {
        text.split_whitespace().map(String::from).collect()
    }
}

/// Word error rate of `outputs` against `refs`.
fn wer(outputs: &[String], refs: &[String]) -> f64 {
    let (mut errors, mut total) = (0, 0);
    for (o, r) in outputs.iter().zip(refs) {
        let mut vocab: Vec<String> = Vec::new();
        let mut id = |w: String| -> u32 {
            let i = vocab.iter().position(|v| *v == w).unwrap_or_else(|| {
                vocab.push(w);
                vocab.len() - 1
            });
            i as u32
        };
        let (a, b): (Vec<u32>, Vec<u32>) =
            (words(o).into_iter().map(&mut id).collect(), words(r).into_iter().map(&mut id).collect());
        errors += edit_distance(&a, &b);
        total += b.len();
    }
    errors as f64 / total.max(1) as f64
}

/// The report on `clips`, with the shift curve at `shifts_ms` and the first
/// `show` transcripts as examples.
pub fn evaluate(
    model: &Model,
    tok: &Tokenizer,
    data: &SpeechData,
    clips: &Clips,
    shifts_ms: &[u32],
    show: usize,
    dev: &Device,
) -> Result<SpeechReport> {
    let n = clips.len();
    if n == 0 {
        return Err(Error::config("data", "no clips to evaluate"));
    }
    let targets = if data.strings { clip_targets(clips, tok)? } else { Vec::new() };
    let labels = data.labels(clips);
    let max_len = targets.iter().map(Vec::len).max().unwrap_or(0) + 2;
    let tf = super::teacher_forced(model, speech_batches(data, clips, tok, 128)?.into_iter(), dev)?;
    let ratio = |a: usize| a as f64 / n as f64;
    let chars: usize = targets.iter().map(Vec::len).sum();
    // (accuracy or exact match, CER) of a set of predictions.
    let score = |p: &Predictions| -> (f64, Option<f64>) {
        match p {
            Predictions::Classes(c) => (ratio(c.iter().zip(&labels).filter(|(a, b)| a == b).count()), None),
            Predictions::Texts(t) => {
                let exact = t.iter().zip(&targets).filter(|(a, b)| a == b).count();
                let errors: usize = t.iter().zip(&targets).map(|(o, r)| edit_distance(o, r)).sum();
                (ratio(exact), Some(errors as f64 / chars.max(1) as f64))
            }
        }
    };
    let at = |offsets: &[i64]| predict(model, data, clips, offsets, max_len, dev);
    let clean = at(&vec![0; n])?;
    let samples = |ms: u32| i64::from(ms) * i64::from(SAMPLE_RATE) / 1000;
    let mut shift_curve = Vec::new();
    for &s in shifts_ms {
        let p = if s == 0 {
            clean.clone()
        } else {
            let mut rng = Rng::derive(u64::from(s), "speech-shift-curve");
            at(&(0..n).map(|_| if rng.below(2) == 0 { -samples(s) } else { samples(s) }).collect::<Vec<_>>())?
        };
        let (accuracy, cer) = score(&p);
        shift_curve.push(ShiftPointMs { shift_ms: s, accuracy, cer });
    }
    let mut rng = Rng::derive(u64::from(CONSISTENCY_MS), "speech-consistency");
    let k = samples(CONSISTENCY_MS);
    let mut draw = || -> Vec<i64> { (0..n).map(|_| rng.below(2 * k as usize + 1) as i64 - k).collect() };
    let (a, b) = (draw(), draw());
    let agree = match (at(&a)?, at(&b)?) {
        (Predictions::Classes(x), Predictions::Classes(y)) => x.iter().zip(&y).filter(|(p, q)| p == q).count(),
        (Predictions::Texts(x), Predictions::Texts(y)) => x.iter().zip(&y).filter(|(p, q)| p == q).count(),
        _ => 0,
    };
    let (acc, cer) = score(&clean);
    let mut report = SpeechReport {
        clips: n,
        loss: tf.loss(),
        accuracy: None,
        exact_match: None,
        cer,
        wer: None,
        classes: Vec::new(),
        confusion: Vec::new(),
        shift_curve,
        consistency: ratio(agree),
        unseen_engine: None,
        examples: Vec::new(),
    };
    match clean {
        Predictions::Classes(c) => {
            let k = data.classes.len();
            let mut confusion = vec![vec![0usize; k]; k];
            for (&p, &y) in c.iter().zip(&labels) {
                confusion[y as usize][(p as usize).min(k - 1)] += 1;
            }
            report.accuracy = Some(acc);
            report.classes = data.classes.clone();
            report.confusion = confusion;
        }
        Predictions::Texts(t) => {
            let outputs: Vec<String> = t.iter().map(|o| tok.decode(o)).collect::<Result<_>>()?;
            report.exact_match = Some(acc);
            report.wer = Some(wer(&outputs, &clips.texts));
            report.examples = outputs
                .iter()
                .zip(&clips.texts)
                .take(show)
                .map(|(o, r)| StripExample { target: r.clone(), output: o.clone(), correct: o == r })
                .collect();
        }
    }
    Ok(report)
}

/// The report on the test clips, with the unseen engine's beside it.
pub fn evaluate_all(
    model: &Model,
    tok: &Tokenizer,
    data: &SpeechData,
    shifts_ms: &[u32],
    show: usize,
    dev: &Device,
) -> Result<SpeechReport> {
    let mut r = evaluate(model, tok, data, &data.test, shifts_ms, show, dev)?;
    if let Some(u) = &data.unseen_engine {
        r.unseen_engine = Some(Box::new(evaluate(model, tok, data, u, shifts_ms, show, dev)?));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_error_rate_counts_digits_as_words() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(wer(&s(&["4071"]), &s(&["4071"])), 0.0);
        assert_eq!(wer(&s(&["471"]), &s(&["4071"])), 0.25);
        assert_eq!(wer(&s(&["turn left now"]), &s(&["turn right"])), 1.0);
        assert_eq!(words("12 34"), ["12", "34"]);
    }
}
