//! Evaluation. Teacher-forced metrics (loss, perplexity, token accuracy,
//! macro F1) count supervised positions only; free-running metrics decode
//! with no help from the target, so the gap between the two (exposure bias)
//! is visible side by side.

pub mod forecast;
pub mod image;
pub mod speech;
pub mod strips;
pub mod translation;

use crate::data::shift::Batch;
use crate::data::Pair;
use crate::decode::{decode_by_length, DecodeOptions};
use crate::error::Result;
use crate::model::Model;
use candle_core::{Device, D};
use serde::Serialize;

/// Sums over supervised tokens, accumulated batch by batch.
#[derive(Debug, Clone, Default)]
pub struct TeacherForcedStats {
    /// Summed loss: cross-entropy in nats per token, or the regression loss per forecast value.
    pub loss_sum: f64,
    /// Supervised tokens (forecast values for a forecaster).
    pub tokens: usize,
    /// Supervised tokens whose argmax prediction equals the label.
    pub correct: usize,
    /// Rows seen (token batches only).
    pub sequences: usize,
    /// Rows whose every supervised token is right.
    pub sequences_correct: usize,
    /// Per class: true positives, false positives, false negatives.
    pub per_class: Vec<[usize; 3]>,
}

impl TeacherForcedStats {
    /// Mean loss per supervised token (or value).
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.tokens.max(1) as f64
    }

    /// Token accuracy, a fraction in [0, 1].
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.tokens.max(1) as f64
    }

    /// Unweighted mean F1 over the classes that occur as label or prediction.
    pub fn macro_f1(&self) -> f64 {
        let f1s: Vec<f64> = self
            .per_class
            .iter()
            .filter(|c| c.iter().sum::<usize>() > 0)
            .map(|&[tp, fp, fn_]| 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64)
            .collect();
        f1s.iter().sum::<f64>() / f1s.len().max(1) as f64
    }
}

/// Teacher-forced pass over `batches` (pairs or text windows).
pub fn teacher_forced(model: &Model, batches: impl Iterator<Item = Batch>, dev: &Device) -> Result<TeacherForcedStats> {
    let mut st = TeacherForcedStats::default();
    let phase = match batches.size_hint() {
        (n, Some(m)) if n == m => crate::progress::phase("batches scored (teacher forced)", n),
        _ => crate::progress::phase("batches scored (teacher forced)", 0),
    };
    for batch in batches {
        let t = batch.tensors(dev)?;
        let (loss, logits) = model.loss_sum(&t, None)?;
        st.loss_sum += loss.to_scalar::<f32>()? as f64;
        phase.advance(1);
        if let Batch::Forecast(_) = batch {
            // Values, not tokens: the loss is all there is.
            st.tokens += t.n_supervised();
            continue;
        }
        let v = logits.dim(D::Minus1)?;
        if st.per_class.len() < v {
            st.per_class.resize(v, [0; 3]);
        }
        let pred = logits.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?;
        let (b, tt) = batch.dims();
        let (labels, mask) = (batch.labels(), batch.label_mask());
        for row in 0..b {
            let mut all = true;
            for j in 0..tt {
                let k = row * tt + j;
                if mask[k] == 0.0 {
                    continue;
                }
                let (p, y) = (pred[k] as usize, labels[k] as usize);
                st.tokens += 1;
                if p == y {
                    st.correct += 1;
                    st.per_class[y][0] += 1;
                } else {
                    all = false;
                    st.per_class[p.min(v - 1)][1] += 1;
                    st.per_class[y.min(v - 1)][2] += 1;
                }
            }
            st.sequences += 1;
            st.sequences_correct += all as usize;
        }
    }
    Ok(st)
}

/// Everything `shiftlm eval` reports. Accuracies are fractions in [0, 1].
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Mean cross-entropy per supervised token (teacher forced).
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Teacher-forced token accuracy.
    pub token_accuracy: f64,
    /// Teacher-forced macro F1 over token classes.
    pub macro_f1: f64,
    /// Sequences whose every token is right under teacher forcing.
    pub teacher_forced_exact_match: f64,
    /// Free-running (decoded) sequences equal to the target.
    pub exact_match: f64,
    /// Free-running token accuracy: target positions (EOS included) that the
    /// decoded sequence gets right.
    pub free_running_token_accuracy: f64,
    /// Number of pairs evaluated.
    pub examples: usize,
    /// Supervised target tokens (EOS included) under teacher forcing.
    pub tokens: usize,
    /// Corpus BLEU of the decoded text against the targets, as sacreBLEU
    /// computes it ([`translation::bleu`]); set where text is decoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bleu: Option<f64>,
    /// chrF2 of the decoded text against the targets ([`translation::chrf`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chrf: Option<f64>,
}

/// Teacher-forced metrics of a language model, as `eval` reports them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CausalReport {
    /// Mean cross-entropy per supervised token, in nats.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Fraction of supervised tokens predicted right.
    pub token_accuracy: f64,
    /// Macro F1 over token classes.
    pub macro_f1: f64,
    /// Whole-sequence match has no meaning for free text.
    pub exact_match: Option<f64>,
    /// Supervised tokens evaluated.
    pub tokens: usize,
}

impl CausalReport {
    /// The report of teacher-forced statistics.
    pub fn new(st: &TeacherForcedStats) -> Self {
        Self {
            loss: st.loss(),
            perplexity: st.loss().exp(),
            token_accuracy: st.accuracy(),
            macro_f1: st.macro_f1(),
            exact_match: None,
            tokens: st.tokens,
        }
    }
}

/// Full evaluation of `pairs`: teacher forced, then decoded with `opts`.
/// Returns the report, the decoded outputs (ids, EOS removed) and the wall
/// time the decoding took.
pub fn evaluate(
    model: &Model,
    pairs: &[Pair],
    batch_size: usize,
    opts: &DecodeOptions,
    dev: &Device,
) -> Result<(EvalReport, Vec<Vec<u32>>, std::time::Duration)> {
    let ed = model
        .encoder_decoder()
        .ok_or_else(|| crate::error::Error::config("model", "free-running evaluation needs an encoder–decoder"))?;
    let tf = teacher_forced(model, crate::data::loader::batches(pairs, batch_size).map(Batch::Pairs), dev)?;
    let sources: Vec<&[u32]> = pairs.iter().map(|p| p.source.as_slice()).collect();
    let started = std::time::Instant::now();
    let outputs = decode_by_length(ed, &sources, batch_size, opts, dev)?;
    let decode_time = started.elapsed();
    let (mut exact, mut right, mut total) = (0usize, 0usize, 0usize);
    for (p, out) in pairs.iter().zip(&outputs) {
        exact += (*out == p.target) as usize;
        // Compare position by position, with EOS after both sequences.
        for j in 0..=p.target.len() {
            let want = p.target.get(j);
            let got = out.get(j);
            right += match (want, got) {
                (Some(w), Some(g)) => (w == g) as usize,
                (None, None) => 1, // both ended here: EOS right
                _ => 0,
            };
        }
        total += p.target.len() + 1;
    }
    let n = pairs.len().max(1) as f64;
    let loss = tf.loss();
    Ok((
        EvalReport {
            loss,
            perplexity: loss.exp(),
            token_accuracy: tf.accuracy(),
            macro_f1: tf.macro_f1(),
            teacher_forced_exact_match: tf.sequences_correct as f64 / n,
            exact_match: exact as f64 / n,
            free_running_token_accuracy: right as f64 / total.max(1) as f64,
            examples: pairs.len(),
            tokens: tf.tokens,
            bleu: None,
            chrf: None,
        },
        outputs,
        decode_time,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_by_hand() {
        // class 0: tp 2, fp 0, fn 1 → 0.8; class 1: tp 1, fp 1, fn 0 → 2/3
        let st = TeacherForcedStats { per_class: vec![[2, 0, 1], [1, 1, 0], [0, 0, 0]], ..Default::default() };
        assert!((st.macro_f1() - (0.8 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
