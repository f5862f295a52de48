//! How well an image classifier recognises, and how robust it is to the
//! input shift:
//! - top-1 `accuracy`, `macro_f1` and the confusion matrix on clean images;
//! - `shift_curve`: accuracy with every image moved k pixels (a random
//!   offset with max(|dx|, |dy|) = k, zero fill), k = 0..=K;
//! - `consistency`: how often the predictions for two random offsets in
//!   [−K, K]² agree, within ±2 and ±4 (Zhang 2019, "Making Convolutional
//!   Networks Shift-Invariant Again").
//!
//! Offsets are drawn from fixed seeds, so two runs are measured on the same
//! shifted images.

use crate::data::images::Images;
use crate::data::shift::{translate_image, Fill, ImageBatch};
use crate::error::Result;
use crate::model::ImageClassifier;
use crate::rng::Rng;
use candle_core::{Device, D};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Accuracy at one shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftPoint {
    /// Pixels moved (the larger of |dx| and |dy|).
    pub shift: usize,
    /// Top-1 accuracy of the shifted images.
    pub accuracy: f64,
}

/// A classifier's report on a set of images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageReport {
    /// Images evaluated.
    pub images: usize,
    /// Mean cross-entropy on the clean images.
    pub loss: f64,
    /// Top-1 accuracy on the clean images.
    pub accuracy: f64,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// Class names, indexing `confusion`.
    pub classes: Vec<String>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Accuracy at shifts 0..=K.
    pub shift_curve: Vec<ShiftPoint>,
    /// Agreement of predictions under two random shifts, keyed by the
    /// largest shift ("2", "4").
    pub consistency: BTreeMap<String, f64>,
}

/// Predictions (and the summed loss) for `images` each moved by its offset.
pub fn predict(
    model: &ImageClassifier,
    images: &Images,
    offsets: &[(i64, i64)],
    dev: &Device,
) -> Result<(Vec<u32>, f64)> {
    let (w, h) = (images.width, images.height);
    let (mut preds, mut loss) = (Vec::with_capacity(images.len()), 0.0);
    let idx: Vec<usize> = (0..images.len()).collect();
    let phase = crate::progress::phase("images classified", idx.len());
    for chunk in idx.chunks(256) {
        let mut pixels = Vec::with_capacity(chunk.len() * w * h);
        for &i in chunk {
            let (dx, dy) = offsets[i];
            pixels.extend(translate_image(&images.image_f32(i), w, h, dx, dy, Fill::Zero));
        }
        let batch = ImageBatch::new(h, w, pixels, chunk.iter().map(|&i| images.labels[i]).collect());
        let (l, logits) = model.loss_sum(&batch.tensors(dev)?, None)?;
        loss += l.to_scalar::<f32>()? as f64;
        preds.extend(logits.argmax(D::Minus1)?.to_vec1::<u32>()?);
        phase.advance(chunk.len());
    }
    Ok((preds, loss))
}

/// A uniformly drawn offset with max(|dx|, |dy|) = k.
fn ring_offset(k: usize, rng: &mut Rng) -> (i64, i64) {
    if k == 0 {
        return (0, 0);
    }
    let k = k as i64;
    // The ring's 8k cells: walk its perimeter.
    let n = rng.below(8 * k as usize) as i64;
    let side = n / (2 * k);
    let t = n % (2 * k) - k;
    match side {
        0 => (t, -k),
        1 => (k, t),
        2 => (-t, k),
        _ => (-k, -t),
    }
}

/// What a model's predictions (`P` per input, compared with `==`) do under
/// the input shift: the shift curve, `right(predictions)` at k = 0 (from
/// `clean`) and on inputs moved to the ring of radius k = 1..=`max_shift`,
/// and the consistency within ±2 and ±4. `predict(offsets)` predicts every
/// input moved by its offset. Offsets come from fixed seeds, so every model
/// is measured on the same shifted inputs.
pub(crate) fn robustness<P: PartialEq>(
    clean: &[P],
    max_shift: usize,
    mut predict: impl FnMut(&[(i64, i64)]) -> Result<Vec<P>>,
    right: impl Fn(&[P]) -> f64,
) -> Result<(Vec<ShiftPoint>, BTreeMap<String, f64>)> {
    let n = clean.len();
    let mut shift_curve = vec![ShiftPoint { shift: 0, accuracy: right(clean) }];
    for k in 1..=max_shift {
        let mut rng = Rng::derive(k as u64, "shift-curve");
        let offsets: Vec<(i64, i64)> = (0..n).map(|_| ring_offset(k, &mut rng)).collect();
        shift_curve.push(ShiftPoint { shift: k, accuracy: right(&predict(&offsets)?) });
    }
    let mut consistency = BTreeMap::new();
    for k in [2usize, 4] {
        let mut rng = Rng::derive(k as u64, "consistency");
        let mut draw = || -> Vec<(i64, i64)> {
            (0..n).map(|_| (rng.below(2 * k + 1) as i64 - k as i64, rng.below(2 * k + 1) as i64 - k as i64)).collect()
        };
        let (a, b) = (draw(), draw());
        let (pa, pb) = (predict(&a)?, predict(&b)?);
        let agree = pa.iter().zip(&pb).filter(|(x, y)| x == y).count();
        consistency.insert(k.to_string(), agree as f64 / n.max(1) as f64);
    }
    Ok((shift_curve, consistency))
}

/// The report on `images`, with the shift curve up to `max_shift`.
/// `images` must be the model's size and name its classes (the error says
/// which does not).
pub fn evaluate(model: &ImageClassifier, images: &Images, max_shift: usize, dev: &Device) -> Result<ImageReport> {
    images.validate(std::path::Path::new("the images evaluated"))?;
    let m = model.config();
    if images.classes.len() != m.n_classes || (images.width, images.height) != (m.width, m.height) {
        return Err(crate::error::Error::config(
            "images",
            format!(
                "{} classes of {}×{} images; the model knows {} classes of {}×{}",
                images.classes.len(),
                images.width,
                images.height,
                m.n_classes,
                m.width,
                m.height
            ),
        ));
    }
    let n = images.len();
    let c = images.classes.len();
    let (clean, loss) = predict(model, images, &vec![(0, 0); n], dev)?;
    let mut confusion = vec![vec![0usize; c]; c];
    for (&p, &y) in clean.iter().zip(&images.labels) {
        confusion[y as usize][p as usize] += 1;
    }
    let correct = |preds: &[u32]| preds.iter().zip(&images.labels).filter(|(p, y)| p == y).count();
    let ratio = |a: usize| a as f64 / n.max(1) as f64;
    // Over the classes present in the labels or the predictions, as
    // scikit-learn's `f1_score(average="macro")`.
    let f1s: Vec<f64> = (0..c)
        .filter_map(|k| {
            let tp = confusion[k][k] as f64;
            let fp = (0..c).map(|t| confusion[t][k]).sum::<usize>() as f64 - tp;
            let fn_ = confusion[k].iter().sum::<usize>() as f64 - tp;
            (tp + fp + fn_ > 0.0).then(|| 2.0 * tp / (2.0 * tp + fp + fn_))
        })
        .collect();
    let predict_at = |offsets: &[(i64, i64)]| Ok(predict(model, images, offsets, dev)?.0);
    let (shift_curve, consistency) = robustness(&clean, max_shift, predict_at, |p: &[u32]| ratio(correct(p)))?;
    Ok(ImageReport {
        images: n,
        loss: loss / n.max(1) as f64,
        accuracy: ratio(correct(&clean)),
        macro_f1: f1s.iter().sum::<f64>() / f1s.len().max(1) as f64,
        classes: images.classes.clone(),
        confusion,
        shift_curve,
        consistency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_offsets_cover_the_ring_evenly() {
        let mut rng = Rng::new(3);
        let mut seen = BTreeMap::new();
        for _ in 0..8000 {
            let (dx, dy) = ring_offset(2, &mut rng);
            assert_eq!(dx.abs().max(dy.abs()), 2, "({dx}, {dy})");
            *seen.entry((dx, dy)).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 16, "{seen:?}");
        assert!(seen.values().all(|&c| (350..650).contains(&c)), "{seen:?}");
        assert_eq!(ring_offset(0, &mut rng), (0, 0));
    }
}
