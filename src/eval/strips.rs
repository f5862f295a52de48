//! How well an encoder–decoder reads digit strips, and how robust it is to
//! the input shift: `exact_match` (the whole string right), `cer` (character
//! error rate: edit distance over the reference length), the teacher-forced
//! loss, and the same `shift_curve` and `consistency` as for single images
//! ([`super::image`]), where a strip counts as right only if all of it is.
//! Decoding is greedy and never sees the target.

use super::image::{robustness, ShiftPoint};
use crate::data::images::strips::Strips;
use crate::data::loader::{strip_batches, strip_targets};
use crate::data::shift::{strip_columns, translate_image, Fill};
use crate::data::Tokenizer;
use crate::decode::{decode_frames, DecodeOptions, EncDec, Strategy};
use crate::error::Result;
use crate::model::Model;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One strip, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StripExample {
    /// What the strip reads.
    pub target: String,
    /// What the model read.
    pub output: String,
    /// Whether they are equal.
    pub correct: bool,
}

/// An encoder–decoder's report on a set of strips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StripReport {
    /// Strips evaluated.
    pub strips: usize,
    /// Mean teacher-forced cross-entropy per supervised token (EOS included).
    pub loss: f64,
    /// Strips read exactly right (greedy decoding).
    pub exact_match: f64,
    /// Character error rate: summed edit distance over summed reference length.
    pub cer: f64,
    /// Exact match with every strip moved k pixels, k = 0..=K.
    pub shift_curve: Vec<ShiftPoint>,
    /// How often the strings read under two random shifts agree, keyed by
    /// the largest shift ("2", "4").
    pub consistency: BTreeMap<String, f64>,
    /// The first strips and what was read.
    pub examples: Vec<StripExample>,
}

/// Levenshtein distance between two id sequences.
pub fn edit_distance(a: &[u32], b: &[u32]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// What the model reads on each strip moved by its offset (ids, no EOS).
pub fn read(
    model: EncDec<'_>,
    strips: &Strips,
    offsets: &[(i64, i64)],
    max_len: usize,
    dev: &Device,
) -> Result<Vec<Vec<u32>>> {
    let im = &strips.images;
    let (w, h) = (im.width, im.height);
    let opts = DecodeOptions { strategy: Strategy::Greedy, max_len };
    let mut out = Vec::with_capacity(im.len());
    let idx: Vec<usize> = (0..im.len()).collect();
    let phase = crate::progress::phase("strips read", idx.len());
    for chunk in idx.chunks(256) {
        let mut pixels = Vec::with_capacity(chunk.len() * w * h);
        for &i in chunk {
            let (dx, dy) = offsets[i];
            pixels.extend(translate_image(&im.image_f32(i), w, h, dx, dy, Fill::Zero));
        }
        let frames = strip_columns(&Tensor::from_vec(pixels, (chunk.len(), h, w), dev)?)?; // (B, W, H)
        out.extend(decode_frames(model, &frames, &opts, dev)?);
        phase.advance(chunk.len());
    }
    Ok(out)
}

/// The report on `strips`, with the shift curve up to `max_shift` and the
/// first `show` strips as examples.
pub fn evaluate(
    model: &Model,
    tok: &Tokenizer,
    strips: &Strips,
    max_shift: usize,
    show: usize,
    dev: &Device,
) -> Result<StripReport> {
    let ed = model
        .encoder_decoder()
        .ok_or_else(|| crate::error::Error::config("model", "digit strips are read by an encoder–decoder"))?;
    strips.images.validate(std::path::Path::new("the strips evaluated"))?;
    let targets = strip_targets(strips, tok)?;
    let max_len = targets.iter().map(Vec::len).max().unwrap_or(0) + 2;
    let tf = super::teacher_forced(model, strip_batches(strips, tok, 256)?.into_iter(), dev)?;
    let n = strips.len();
    let ratio = |a: usize| a as f64 / n.max(1) as f64;
    let exact = |outs: &[Vec<u32>]| outs.iter().zip(&targets).filter(|(o, t)| o == t).count();
    let clean = read(ed, strips, &vec![(0, 0); n], max_len, dev)?;
    let errors: usize = clean.iter().zip(&targets).map(|(o, t)| edit_distance(o, t)).sum();
    let chars: usize = targets.iter().map(Vec::len).sum();
    let read_at = |offsets: &[(i64, i64)]| read(ed, strips, offsets, max_len, dev);
    let (shift_curve, consistency) = robustness(&clean, max_shift, read_at, |o: &[Vec<u32>]| ratio(exact(o)))?;
    let examples = clean
        .iter()
        .zip(&strips.texts)
        .take(show)
        .map(|(o, t)| {
            let output = tok.decode(o)?;
            Ok(StripExample { target: t.clone(), correct: output == *t, output })
        })
        .collect::<Result<_>>()?;
    Ok(StripReport {
        strips: n,
        loss: tf.loss(),
        exact_match: ratio(exact(&clean)),
        cer: errors as f64 / chars.max(1) as f64,
        shift_curve,
        consistency,
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_by_hand() {
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 2, 3]), 0);
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 3]), 1); // a deletion
        assert_eq!(edit_distance(&[1, 3], &[1, 2, 3]), 1); // an insertion
        assert_eq!(edit_distance(&[1, 2, 3], &[1, 4, 3]), 1); // a substitution
        assert_eq!(edit_distance(&[], &[5, 6]), 2);
        assert_eq!(edit_distance(&[7, 8, 9], &[9, 8, 7]), 2);
    }
}
