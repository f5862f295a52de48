//! The shift core: the only place in shiftlm where targets move.
//!
//! A decoder learns to emit token t+1 from tokens up to t. Every task reaches
//! its decoder through one of these functions:
//! - [`teacher_forcing`]: encoder–decoders read `[BOS] + y` and are scored on
//!   `y + [EOS]`;
//! - [`causal_window`]: language models read `x[s..s+T]` and are scored on
//!   `x[s+1..s+T+1]`;
//! - [`rotate_left`]: the seed's own "shift" example, used as a data transform;
//! - [`forecast_window`] and [`numeric_teacher_forcing`]: forecasters read a
//!   window of the past and are scored on the `H` values that follow it; a
//!   decoder rolled out over the horizon reads the last observed value and
//!   then the targets shifted right by one;
//! - [`translate_image`]: the input shift of image recognition, an image
//!   moved by whole pixels (augmentation draws the offsets, `data::augment`;
//!   evaluation measures accuracy against them);
//! - [`Seq2SeqBatch::new`]: pads a batch and builds the masks, so padding is
//!   never supervised and EOS always is (masks come from lengths, never from
//!   token values, so a tokenizer whose pad id equals its EOS id is safe).

use crate::data::Pair;
use candle_core::{Device, Tensor};

/// Decoder input and labels for one target sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeacherForced {
    /// `[BOS] + y`
    pub decoder_input: Vec<u32>,
    /// `y + [EOS]`
    pub labels: Vec<u32>,
}

/// Teacher forcing: the decoder reads the target shifted right by one, with
/// `bos` first, and is scored against the target followed by `eos`.
pub fn teacher_forcing(target: &[u32], bos: u32, eos: u32) -> TeacherForced {
    let mut decoder_input = Vec::with_capacity(target.len() + 1);
    decoder_input.push(bos);
    decoder_input.extend_from_slice(target);
    let mut labels = Vec::with_capacity(target.len() + 1);
    labels.extend_from_slice(target);
    labels.push(eos);
    TeacherForced { decoder_input, labels }
}

/// The causal-LM window starting at `start`: inputs `x[start..start+t]`,
/// labels `x[start+1..start+t+1]`. `None` when the text is too short.
pub fn causal_window(x: &[u32], start: usize, t: usize) -> Option<(&[u32], &[u32])> {
    let end = start.checked_add(t)?.checked_add(1)?;
    (end <= x.len()).then(|| (&x[start..start + t], &x[start + 1..end]))
}

/// The forecasting window starting at `start`: the past `x[start..start+L]`
/// and the `h` values after it, `x[start+L..start+L+H]`. `None` when the
/// series is too short.
pub fn forecast_window(x: &[f32], start: usize, l: usize, h: usize) -> Option<(&[f32], &[f32])> {
    let end = start.checked_add(l)?.checked_add(h)?;
    (l > 0 && h > 0 && end <= x.len()).then(|| (&x[start..start + l], &x[start + l..end]))
}

/// Every window start of a series of `len` values, `stride` apart, each
/// with room for `l` past and `h` future values.
pub fn forecast_starts(len: usize, l: usize, h: usize, stride: usize) -> Vec<usize> {
    match len.checked_sub(l + h) {
        Some(last) if l > 0 && h > 0 => (0..=last).step_by(stride.max(1)).collect(),
        _ => Vec::new(),
    }
}

/// Teacher forcing over a numeric horizon: the decoder reads the last
/// observed value and then the targets shifted right by one
/// (`[x_last, y₀, …, y_{H−2}]`) and is scored against `y` itself.
pub fn numeric_teacher_forcing(past: &[f32], future: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let start = past.last().copied().unwrap_or(0.0);
    let dec_in = std::iter::once(start).chain(future.iter().copied()).take(future.len()).collect();
    (dec_in, future.to_vec())
}

/// The seed's shift: rotate a sequence left by `k` (`[1,2,3,4,5]`, k=1 →
/// `[2,3,4,5,1]`). `k` may exceed the length; an empty sequence stays empty.
pub fn rotate_left<T: Clone>(seq: &[T], k: usize) -> Vec<T> {
    if seq.is_empty() {
        return Vec::new();
    }
    let k = k % seq.len();
    seq[k..].iter().chain(&seq[..k]).cloned().collect()
}

/// A padded encoder–decoder batch, row-major, with masks built from lengths.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq2SeqBatch {
    /// Batch size B.
    pub b: usize,
    /// Padded source length S.
    pub s: usize,
    /// Padded decoder length T (longest target + 1).
    pub t: usize,
    /// (B, S) source ids, `pad` after each source.
    pub src: Vec<u32>,
    /// (B, S) 1.0 on real source tokens, 0.0 on padding.
    pub src_mask: Vec<f32>,
    /// (B, T) decoder input `[BOS] + y`, padded.
    pub dec_in: Vec<u32>,
    /// (B, T) labels `y + [EOS]`, padded.
    pub labels: Vec<u32>,
    /// (B, T) 1.0 where a label is supervised.
    pub label_mask: Vec<f32>,
    /// Number of supervised label positions.
    pub n_supervised: usize,
}

impl Seq2SeqBatch {
    /// Pads `pairs` to the longest source and target in the batch.
    pub fn new(pairs: &[&Pair], pad: u32, bos: u32, eos: u32) -> Self {
        let b = pairs.len();
        let s = pairs.iter().map(|p| p.source.len()).max().unwrap_or(0).max(1);
        let t = pairs.iter().map(|p| p.target.len() + 1).max().unwrap_or(1);
        let mut out = Seq2SeqBatch {
            b,
            s,
            t,
            src: vec![pad; b * s],
            src_mask: vec![0.0; b * s],
            dec_in: vec![pad; b * t],
            labels: vec![pad; b * t],
            label_mask: vec![0.0; b * t],
            n_supervised: 0,
        };
        for (i, p) in pairs.iter().enumerate() {
            out.src[i * s..i * s + p.source.len()].copy_from_slice(&p.source);
            out.src_mask[i * s..i * s + p.source.len()].fill(1.0);
            let tf = teacher_forcing(&p.target, bos, eos);
            let n = tf.labels.len();
            out.dec_in[i * t..i * t + n].copy_from_slice(&tf.decoder_input);
            out.labels[i * t..i * t + n].copy_from_slice(&tf.labels);
            out.label_mask[i * t..i * t + n].fill(1.0);
            out.n_supervised += n;
        }
        out
    }

    /// The batch as tensors on `dev`.
    pub fn tensors(&self, dev: &Device) -> candle_core::Result<Seq2SeqTensors> {
        let (b, s, t) = (self.b, self.s, self.t);
        Ok(Seq2SeqTensors {
            src: Tensor::from_slice(&self.src, (b, s), dev)?,
            src_mask: Tensor::from_slice(&self.src_mask, (b, s), dev)?,
            src_has_pad: self.src_mask.contains(&0.0),
            dec_in: Tensor::from_slice(&self.dec_in, (b, t), dev)?,
            labels: Tensor::from_slice(&self.labels, (b, t), dev)?,
            label_mask: Tensor::from_slice(&self.label_mask, (b, t), dev)?,
            n_supervised: self.n_supervised,
        })
    }

    /// The target of row `i` as it was before the shift (no BOS/EOS).
    pub fn target(&self, i: usize) -> Vec<u32> {
        let row = i * self.t;
        let n = self.label_mask[row..row + self.t].iter().filter(|&&m| m > 0.0).count();
        self.labels[row..row + n.saturating_sub(1)].to_vec()
    }
}

/// [`Seq2SeqBatch`] on a device.
#[derive(Debug, Clone)]
pub struct Seq2SeqTensors {
    /// (B, S) u32 source ids, or whatever the encoder's front-end reads
    /// (numeric frames are (B, S, F) f32).
    pub src: Tensor,
    /// (B, S) f32, 1.0 on real source tokens, 0.0 on padding.
    pub src_mask: Tensor,
    /// Whether any source is shorter than S (so `src_mask` matters).
    pub src_has_pad: bool,
    /// (B, T) u32 decoder input `[BOS] + y`, padded.
    pub dec_in: Tensor,
    /// (B, T) u32 labels `y + [EOS]`, padded.
    pub labels: Tensor,
    /// (B, T) f32, 1.0 where a label is supervised.
    pub label_mask: Tensor,
    /// Number of supervised label positions.
    pub n_supervised: usize,
}

/// A batch of causal-LM windows: inputs `x[s..s+T]`, labels `x[s+1..s+T+1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CausalBatch {
    /// Batch size B.
    pub b: usize,
    /// Window length T.
    pub t: usize,
    /// (B, T) inputs.
    pub inputs: Vec<u32>,
    /// (B, T) labels: the inputs shifted left by one.
    pub labels: Vec<u32>,
    /// (B, T): 1.0 where the label is supervised (every position of a text
    /// window; the response part of a prompt/response row).
    pub label_mask: Vec<f32>,
}

impl CausalBatch {
    /// The windows of `tokens` starting at `starts`, each `t` long. Every
    /// start must leave room for the shifted label (`start + t < len`).
    pub fn new(tokens: &[u32], starts: &[usize], t: usize) -> Self {
        let b = starts.len();
        let mut inputs = Vec::with_capacity(b * t);
        let mut labels = Vec::with_capacity(b * t);
        for &s in starts {
            let (x, y) = causal_window(tokens, s, t).expect("window inside the text");
            inputs.extend_from_slice(x);
            labels.extend_from_slice(y);
        }
        Self { b, t, inputs, labels, label_mask: vec![1.0; b * t] }
    }

    /// Prompt/response examples for a language model: each row reads
    /// `prompt ++ response ++ [EOS]` shifted as any text (labels are the
    /// inputs one to the left), but only the labels that are response tokens
    /// or the closing EOS are supervised; the prompt's, and the padding's,
    /// are masked. Rows keep their first `t + 1` tokens and are padded (with
    /// `eos`, masked) to the longest row.
    pub fn prompt_response(pairs: &[&super::Pair], t: usize, eos: u32) -> Self {
        let seqs: Vec<(Vec<u32>, usize)> = pairs
            .iter()
            .map(|p| {
                let mut s: Vec<u32> = p.source.iter().chain(&p.target).copied().collect();
                s.push(eos);
                s.truncate(t + 1);
                (s, p.source.len())
            })
            .collect();
        let b = seqs.len();
        let width = seqs.iter().map(|(s, _)| s.len().saturating_sub(1)).max().unwrap_or(0).max(1);
        let (mut inputs, mut labels, mut label_mask) =
            (vec![eos; b * width], vec![eos; b * width], vec![0f32; b * width]);
        for (row, (s, prompt_len)) in seqs.iter().enumerate() {
            for i in 0..s.len().saturating_sub(1) {
                let k = row * width + i;
                inputs[k] = s[i];
                labels[k] = s[i + 1];
                // Label i is token i + 1: supervised once it is past the prompt.
                label_mask[k] = if i + 1 >= *prompt_len { 1.0 } else { 0.0 };
            }
        }
        Self { b, t: width, inputs, labels, label_mask }
    }

    /// Conversations for a language model: each row reads the rendered
    /// conversation shifted as any text, and label i (token i + 1) is
    /// supervised where that token belongs to an assistant turn. Rows keep
    /// their first `t + 1` tokens and are padded (with `pad`, masked) to the
    /// longest row.
    pub fn dialogues(rows: &[&super::chat::Dialogue], t: usize, pad: u32) -> Self {
        let b = rows.len();
        let len = |d: &super::chat::Dialogue| d.ids.len().min(t + 1);
        let width = rows.iter().map(|d| len(d).saturating_sub(1)).max().unwrap_or(0).max(1);
        let (mut inputs, mut labels, mut label_mask) =
            (vec![pad; b * width], vec![pad; b * width], vec![0f32; b * width]);
        for (row, d) in rows.iter().enumerate() {
            for i in 0..len(d).saturating_sub(1) {
                let k = row * width + i;
                inputs[k] = d.ids[i];
                labels[k] = d.ids[i + 1];
                label_mask[k] = if d.supervised[i + 1] { 1.0 } else { 0.0 };
            }
        }
        Self { b, t: width, inputs, labels, label_mask }
    }

    /// The batch as tensors on `dev`; the mask is left out when every label is supervised.
    pub fn tensors(&self, dev: &Device) -> candle_core::Result<CausalTensors> {
        let n_supervised = self.label_mask.iter().filter(|&&m| m > 0.0).count();
        let mask = (n_supervised < self.label_mask.len())
            .then(|| Tensor::from_slice(&self.label_mask, (self.b, self.t), dev))
            .transpose()?;
        Ok(CausalTensors {
            inputs: Tensor::from_slice(&self.inputs, (self.b, self.t), dev)?,
            labels: Tensor::from_slice(&self.labels, (self.b, self.t), dev)?,
            mask,
            n_supervised,
        })
    }
}

/// [`CausalBatch`] on a device.
#[derive(Debug, Clone)]
pub struct CausalTensors {
    /// (B, T) u32 input ids.
    pub inputs: Tensor,
    /// (B, T) u32 labels: the inputs shifted left by one.
    pub labels: Tensor,
    /// (B, T) f32, 1.0 where a label is supervised; `None` when every label is.
    pub mask: Option<Tensor>,
    /// Number of supervised label positions.
    pub n_supervised: usize,
}

/// A batch of forecasting windows, row-major: the past `x[s..s+L]` of every
/// column and the `H` target values after it.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastBatch {
    /// Batch size B.
    pub b: usize,
    /// Past steps L.
    pub l: usize,
    /// Horizon H.
    pub h: usize,
    /// Values per past step F (targets, then covariates).
    pub f: usize,
    /// Targets N (the first N columns).
    pub n: usize,
    /// (B, L, F) the past.
    pub past: Vec<f32>,
    /// (B, H, N) the decoder's teacher-forced input `[x_last, y₀, …]`, for
    /// training; `None` for evaluation, where it reads its own predictions.
    pub dec_in: Option<Vec<f32>>,
    /// (B, H, N) the values that follow the window.
    pub labels: Vec<f32>,
}

impl ForecastBatch {
    /// Windows of `columns` (each a whole series, targets first; `n`
    /// targets) starting at `starts`, each with room for `l + h` values.
    pub fn new(columns: &[Vec<f32>], n: usize, starts: &[usize], l: usize, h: usize, teacher_forced: bool) -> Self {
        let (b, f) = (starts.len(), columns.len());
        let mut past = vec![0f32; b * l * f];
        let mut dec_in = vec![0f32; b * h * n];
        let mut labels = vec![0f32; b * h * n];
        for (row, &s) in starts.iter().enumerate() {
            for (c, col) in columns.iter().enumerate() {
                let (x, y) = forecast_window(col, s, l, h).expect("window inside the series");
                for (i, &v) in x.iter().enumerate() {
                    past[(row * l + i) * f + c] = v;
                }
                if c < n {
                    let (d, y) = numeric_teacher_forcing(x, y);
                    for i in 0..h {
                        dec_in[(row * h + i) * n + c] = d[i];
                        labels[(row * h + i) * n + c] = y[i];
                    }
                }
            }
        }
        Self { b, l, h, f, n, past, dec_in: teacher_forced.then_some(dec_in), labels }
    }

    /// The batch as tensors on `dev`.
    pub fn tensors(&self, dev: &Device) -> candle_core::Result<ForecastTensors> {
        let (b, h, n) = (self.b, self.h, self.n);
        Ok(ForecastTensors {
            past: Tensor::from_slice(&self.past, (b, self.l, self.f), dev)?,
            dec_in: self.dec_in.as_ref().map(|d| Tensor::from_slice(d, (b, h, n), dev)).transpose()?,
            labels: Tensor::from_slice(&self.labels, (b, h, n), dev)?,
            n_supervised: b * h * n,
        })
    }
}

/// [`ForecastBatch`] on a device.
#[derive(Debug, Clone)]
pub struct ForecastTensors {
    /// (B, L, F) f32 past values of every column.
    pub past: Tensor,
    /// (B, H, N) f32 teacher-forced decoder input; `None` for evaluation.
    pub dec_in: Option<Tensor>,
    /// (B, H, N) f32 target values that follow the window.
    pub labels: Tensor,
    /// Number of supervised values, B·H·N.
    pub n_supervised: usize,
}

/// A batch of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    /// Padded source/target pairs for an encoder–decoder.
    Pairs(Seq2SeqBatch),
    /// Token windows (or prompt/response rows) for a language model.
    Causal(CausalBatch),
    /// Numeric windows for a forecaster.
    Forecast(ForecastBatch),
    /// Labelled images for a classifier.
    Images(ImageBatch),
    /// Image strips and the text they read, for an encoder–decoder.
    Strips(StripBatch),
}

/// [`Batch`] on a device.
#[derive(Debug, Clone)]
pub enum BatchTensors {
    /// An encoder–decoder batch.
    Pairs(Seq2SeqTensors),
    /// A language-model batch.
    Causal(CausalTensors),
    /// A forecasting batch.
    Forecast(ForecastTensors),
    /// An image batch.
    Images(ImageTensors),
}

impl BatchTensors {
    /// Supervised tokens, or forecast values.
    pub fn n_supervised(&self) -> usize {
        match self {
            BatchTensors::Pairs(b) => b.n_supervised,
            BatchTensors::Causal(b) => b.n_supervised,
            BatchTensors::Forecast(b) => b.n_supervised,
            BatchTensors::Images(b) => b.n_supervised,
        }
    }
}

impl Batch {
    /// The batch as tensors on `dev`.
    pub fn tensors(&self, dev: &Device) -> candle_core::Result<BatchTensors> {
        Ok(match self {
            Batch::Pairs(b) => BatchTensors::Pairs(b.tensors(dev)?),
            Batch::Causal(b) => BatchTensors::Causal(b.tensors(dev)?),
            Batch::Forecast(b) => BatchTensors::Forecast(b.tensors(dev)?),
            Batch::Images(b) => BatchTensors::Images(b.tensors(dev)?),
            Batch::Strips(b) => BatchTensors::Pairs(b.tensors(dev)?),
        })
    }

    /// (B, T): rows and label positions per row (T = H for forecasts).
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Batch::Pairs(b) => (b.b, b.t),
            Batch::Causal(b) => (b.b, b.t),
            Batch::Forecast(b) => (b.b, b.h),
            Batch::Images(b) => (b.labels.len(), 1),
            Batch::Strips(b) => (b.text.b, b.text.t),
        }
    }

    /// Token labels (B·T); empty for forecasts, whose labels are values.
    pub fn labels(&self) -> &[u32] {
        match self {
            Batch::Pairs(b) => &b.labels,
            Batch::Causal(b) => &b.labels,
            Batch::Forecast(_) => &[],
            Batch::Images(b) => &b.labels,
            Batch::Strips(b) => &b.text.labels,
        }
    }

    /// 1.0 where a token label is supervised; empty for forecasts.
    pub fn label_mask(&self) -> &[f32] {
        match self {
            Batch::Pairs(b) => &b.label_mask,
            Batch::Causal(b) => &b.label_mask,
            Batch::Forecast(_) => &[],
            Batch::Images(b) => &b.label_mask,
            Batch::Strips(b) => &b.text.label_mask,
        }
    }
}

/// Images and their class labels: nothing is shifted in the labels; the
/// input shift happened to the pixels (augmentation, or an evaluation's
/// offsets).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBatch {
    /// Image height in pixels.
    pub h: usize,
    /// Image width in pixels.
    pub w: usize,
    /// B × H × W pixels in [0, 1].
    pub pixels: Vec<f32>,
    /// One class per image (B).
    pub labels: Vec<u32>,
    /// All ones (B): every label is supervised.
    pub label_mask: Vec<f32>,
}

impl ImageBatch {
    /// A batch of `labels.len()` images of `h`×`w`, `pixels` row by row.
    pub fn new(h: usize, w: usize, pixels: Vec<f32>, labels: Vec<u32>) -> Self {
        debug_assert_eq!(pixels.len(), labels.len() * h * w);
        let label_mask = vec![1.0; labels.len()];
        Self { h, w, pixels, labels, label_mask }
    }

    /// The batch as tensors on `dev`.
    pub fn tensors(&self, dev: &Device) -> candle_core::Result<ImageTensors> {
        let b = self.labels.len();
        Ok(ImageTensors {
            images: Tensor::from_slice(&self.pixels, (b, 1, self.h, self.w), dev)?,
            labels: Tensor::from_slice(&self.labels, b, dev)?,
            n_supervised: b,
        })
    }
}

/// Both shifts at once: the strip's pixels may be moved (the input shift)
/// and the text it reads is shifted for the decoder (`[BOS] + y` in,
/// `y + [EOS]` scored), exactly as for text pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct StripBatch {
    /// Strip height in pixels: the values per column.
    pub h: usize,
    /// Strip width in pixels: the encoder's steps.
    pub w: usize,
    /// B × H × W pixels in [0, 1], row by row.
    pub pixels: Vec<f32>,
    /// The texts, teacher-forced and padded (no source ids: the pixels are the source).
    pub text: Seq2SeqBatch,
}

impl StripBatch {
    /// A batch of `targets.len()` strips of `h`×`w` reading `targets` (ids).
    pub fn new(h: usize, w: usize, pixels: Vec<f32>, targets: Vec<Vec<u32>>, pad: u32, bos: u32, eos: u32) -> Self {
        debug_assert_eq!(pixels.len(), targets.len() * h * w);
        let pairs: Vec<Pair> = targets.into_iter().map(|target| Pair { source: Vec::new(), target }).collect();
        let refs: Vec<&Pair> = pairs.iter().collect();
        Self { h, w, pixels, text: Seq2SeqBatch::new(&refs, pad, bos, eos) }
    }

    /// The batch as encoder–decoder tensors: the source is the strip's
    /// columns, (B, W, H) f32, none of them padding.
    pub fn tensors(&self, dev: &Device) -> candle_core::Result<Seq2SeqTensors> {
        let b = self.text.b;
        let mut t = self.text.tensors(dev)?;
        t.src = strip_columns(&Tensor::from_slice(&self.pixels, (b, self.h, self.w), dev)?)?;
        t.src_mask = Tensor::ones((b, self.w), candle_core::DType::F32, dev)?;
        t.src_has_pad = false;
        Ok(t)
    }
}

/// Strips (B, H, W) → their columns as encoder steps (B, W, H).
pub fn strip_columns(x: &Tensor) -> candle_core::Result<Tensor> {
    x.transpose(1, 2)?.contiguous()
}

/// [`ImageBatch`] on a device.
#[derive(Debug, Clone)]
pub struct ImageTensors {
    /// (B, 1, H, W) f32 pixels in [0, 1].
    pub images: Tensor,
    /// (B) u32 classes.
    pub labels: Tensor,
    /// B.
    pub n_supervised: usize,
}

/// What fills the pixels an image shift brings in from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fill {
    /// Black (0), like RandomCrop with zero padding.
    #[default]
    Zero,
    /// The pixels pushed out on the other side (a circular shift).
    Wrap,
}

/// An image (`h` rows of `w` pixels) moved `dx` pixels right and `dy` down
/// (negative: left, up): output pixel (x, y) is input pixel (x − dx, y − dy),
/// or `fill` where that is outside.
pub fn translate_image<T: Copy + Default>(img: &[T], w: usize, h: usize, dx: i64, dy: i64, fill: Fill) -> Vec<T> {
    let mut out = vec![T::default(); w * h];
    let (wi, hi) = (w as i64, h as i64);
    for y in 0..hi {
        let sy = match fill {
            Fill::Zero => y - dy,
            Fill::Wrap => (y - dy).rem_euclid(hi.max(1)),
        };
        if !(0..hi).contains(&sy) {
            continue;
        }
        for x in 0..wi {
            let sx = match fill {
                Fill::Zero => x - dx,
                Fill::Wrap => (x - dx).rem_euclid(wi.max(1)),
            };
            if (0..wi).contains(&sx) {
                out[(y * wi + x) as usize] = img[(sy * wi + sx) as usize];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forecast_windows_shift_the_series() {
        let x: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let (past, fut) = forecast_window(&x, 2, 3, 2).unwrap();
        assert_eq!((past, fut), (&[2.0, 3.0, 4.0][..], &[5.0, 6.0][..]));
        assert!(forecast_window(&x, 6, 3, 2).is_none());
        assert_eq!(forecast_starts(10, 3, 2, 2), vec![0, 2, 4]);
        assert_eq!(forecast_starts(10, 3, 2, 1).last(), Some(&5));
        assert!(forecast_starts(4, 3, 2, 1).is_empty());
        let (dec_in, labels) = numeric_teacher_forcing(past, fut);
        assert_eq!((dec_in, labels), (vec![4.0, 5.0], vec![5.0, 6.0]));
        // Two columns (a target and a covariate), two windows.
        let cov: Vec<f32> = x.iter().map(|v| -v).collect();
        let b = ForecastBatch::new(&[x.clone(), cov], 1, &[0, 4], 3, 2, true);
        assert_eq!(&b.past[..6], &[0.0, -0.0, 1.0, -1.0, 2.0, -2.0]);
        assert_eq!(&b.past[6..], &[4.0, -4.0, 5.0, -5.0, 6.0, -6.0]);
        assert_eq!(b.labels, vec![3.0, 4.0, 7.0, 8.0]);
        assert_eq!(b.dec_in, Some(vec![2.0, 3.0, 6.0, 7.0]));
        assert_eq!(ForecastBatch::new(&[x], 1, &[0], 3, 2, false).dec_in, None);
    }

    #[test]
    fn dialogue_rows_supervise_the_assistant_tokens_they_predict() {
        use crate::data::chat::Dialogue;
        // user 10 11, assistant 20 21 (end 5), user 12, assistant 22 (end 5).
        let d1 = Dialogue {
            ids: vec![10, 11, 20, 21, 5, 12, 22, 5],
            supervised: vec![false, false, true, true, true, false, true, true],
        };
        let d2 = Dialogue { ids: vec![13, 23, 5], supervised: vec![false, true, true] };
        let b = CausalBatch::dialogues(&[&d1, &d2], 16, 0);
        assert_eq!((b.b, b.t), (2, 7));
        assert_eq!(&b.inputs[..7], &[10, 11, 20, 21, 5, 12, 22]);
        assert_eq!(&b.labels[..7], &[11, 20, 21, 5, 12, 22, 5]);
        // Label i is token i + 1: supervised when that token is the assistant's.
        assert_eq!(&b.label_mask[..7], &[0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!(&b.inputs[7..], &[13, 23, 0, 0, 0, 0, 0]);
        assert_eq!(&b.label_mask[7..], &[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        // Cut to the context's t + 1 tokens.
        let c = CausalBatch::dialogues(&[&d1], 3, 0);
        assert_eq!((c.inputs, c.labels, c.label_mask), (vec![10, 11, 20], vec![11, 20, 21], vec![0.0, 1.0, 1.0]));
    }

    #[test]
    fn prompt_response_rows_supervise_only_the_response_and_eos() {
        let p1 = Pair { source: vec![10, 11, 12], target: vec![20, 21] };
        let p2 = Pair { source: vec![13], target: vec![22] };
        let b = CausalBatch::prompt_response(&[&p1, &p2], 16, 2);
        // Row 1 reads 10 11 12 20 21 and predicts 11 12 20 21 </s>.
        assert_eq!((b.b, b.t), (2, 5));
        assert_eq!(&b.inputs[..5], &[10, 11, 12, 20, 21]);
        assert_eq!(&b.labels[..5], &[11, 12, 20, 21, 2]);
        assert_eq!(&b.label_mask[..5], &[0.0, 0.0, 1.0, 1.0, 1.0]);
        // Row 2 (13 → 22 </s>) is padded; padding is never supervised.
        assert_eq!(&b.inputs[5..7], &[13, 22]);
        assert_eq!(&b.labels[5..7], &[22, 2]);
        assert_eq!(&b.label_mask[5..], &[1.0, 1.0, 0.0, 0.0, 0.0]);
        // Every supervised label is the next input of its row.
        for row in 0..2 {
            for i in 0..4 {
                if b.label_mask[row * 5 + i + 1] > 0.0 {
                    assert_eq!(b.labels[row * 5 + i], b.inputs[row * 5 + i + 1]);
                }
            }
        }
        // Truncated to the context: the first t + 1 tokens.
        let c = CausalBatch::prompt_response(&[&p1], 3, 2);
        assert_eq!(
            (c.inputs.clone(), c.labels.clone(), c.label_mask.clone()),
            (vec![10, 11, 12], vec![11, 12, 20], vec![0.0, 0.0, 1.0])
        );
        assert_eq!(b.tensors(&Device::Cpu).unwrap().n_supervised, 5);
    }

    #[test]
    fn seed_rotate_example() {
        assert_eq!(rotate_left(&[1, 2, 3, 4, 5], 1), vec![2, 3, 4, 5, 1]);
        assert_eq!(rotate_left(&[1, 2, 3], 4), vec![2, 3, 1]);
        assert!(rotate_left::<u32>(&[], 3).is_empty());
    }

    #[test]
    fn teacher_forcing_example() {
        let tf = teacher_forcing(&[7, 8, 9], 1, 2);
        assert_eq!(tf.decoder_input, vec![1, 7, 8, 9]);
        assert_eq!(tf.labels, vec![7, 8, 9, 2]);
    }

    #[test]
    fn causal_batch_labels_are_inputs_shifted() {
        let x: Vec<u32> = (10..30).collect();
        let b = CausalBatch::new(&x, &[0, 5], 4);
        assert_eq!(b.inputs, vec![10, 11, 12, 13, 15, 16, 17, 18]);
        assert_eq!(b.labels, vec![11, 12, 13, 14, 16, 17, 18, 19]);
    }

    #[test]
    fn causal_window_example() {
        let x = [10, 11, 12, 13, 14];
        assert_eq!(causal_window(&x, 1, 3), Some((&[11, 12, 13][..], &[12, 13, 14][..])));
        assert_eq!(causal_window(&x, 2, 3), None);
    }

    #[test]
    fn eos_is_supervised_even_when_pad_equals_eos() {
        let p = Pair { source: vec![5], target: vec![6] };
        let q = Pair { source: vec![5, 5, 5], target: vec![6, 6, 6] };
        let batch = Seq2SeqBatch::new(&[&p, &q], 2, 1, 2);
        // Row 0: labels [6, EOS(=2), pad(=2), pad(=2)], mask [1, 1, 0, 0].
        assert_eq!(&batch.labels[..4], &[6, 2, 2, 2]);
        assert_eq!(&batch.label_mask[..4], &[1.0, 1.0, 0.0, 0.0]);
        assert_eq!(batch.n_supervised, 2 + 4);
        assert_eq!(batch.target(0), vec![6]);
    }

    fn pairs_strategy() -> impl Strategy<Value = Vec<Pair>> {
        let seq = || proptest::collection::vec(4u32..40, 0..12);
        proptest::collection::vec((seq(), seq()).prop_map(|(source, target)| Pair { source, target }), 1..8)
    }

    proptest! {
        #[test]
        fn labels_are_decoder_inputs_shifted_left(pairs in pairs_strategy(), pad in 0u32..3) {
            let refs: Vec<&Pair> = pairs.iter().collect();
            let batch = Seq2SeqBatch::new(&refs, pad, 1, 2);
            let t = batch.t;
            let mut supervised = 0;
            for (i, p) in pairs.iter().enumerate() {
                let row = i * t;
                for j in 0..t {
                    let m = batch.label_mask[row + j];
                    if j < p.target.len() {
                        // A supervised label is the next decoder input.
                        prop_assert_eq!(m, 1.0);
                        prop_assert_eq!(batch.labels[row + j], batch.dec_in[row + j + 1]);
                        prop_assert_eq!(batch.labels[row + j], p.target[j]);
                    } else if j == p.target.len() {
                        // EOS is always kept, whatever the pad id.
                        prop_assert_eq!(m, 1.0);
                        prop_assert_eq!(batch.labels[row + j], 2);
                    } else {
                        // Padding is never supervised.
                        prop_assert_eq!(m, 0.0);
                        prop_assert_eq!(batch.dec_in[row + j], pad);
                    }
                    supervised += m as usize;
                }
                prop_assert_eq!(batch.dec_in[row], 1);
                prop_assert_eq!(batch.target(i), p.target.clone());
                let real = batch.src_mask[i * batch.s..(i + 1) * batch.s].iter().filter(|&&m| m == 1.0).count();
                prop_assert_eq!(real, p.source.len());
            }
            let expected: usize = pairs.iter().map(|p| p.target.len() + 1).sum();
            prop_assert_eq!(supervised, expected);
            prop_assert_eq!(batch.n_supervised, expected);
        }

        #[test]
        fn causal_labels_are_inputs_shifted(x in proptest::collection::vec(0u32..100, 2..64), t in 1usize..16, start in 0usize..64) {
            match causal_window(&x, start, t) {
                Some((inp, lab)) => {
                    prop_assert_eq!(inp.len(), t);
                    prop_assert_eq!(lab.len(), t);
                    for j in 0..t - 1 {
                        prop_assert_eq!(lab[j], inp[j + 1]);
                    }
                    prop_assert_eq!(lab[t - 1], x[start + t]);
                }
                None => prop_assert!(start + t + 1 > x.len()),
            }
        }

        #[test]
        fn rotation_is_a_permutation_and_composes(x in proptest::collection::vec(0u32..100, 0..20), a in 0usize..30, b in 0usize..30) {
            let r = rotate_left(&x, a);
            let mut s1 = r.clone();
            s1.sort();
            let mut s2 = x.clone();
            s2.sort();
            prop_assert_eq!(s1, s2);
            prop_assert_eq!(rotate_left(&r, b), rotate_left(&x, a + b));
        }
    }

    #[test]
    fn images_shift_by_whole_pixels() {
        // 3×2: rows [1 2 3] [4 5 6].
        let img = [1, 2, 3, 4, 5, 6];
        assert_eq!(translate_image(&img, 3, 2, 0, 0, Fill::Zero), img);
        assert_eq!(translate_image(&img, 3, 2, 1, 0, Fill::Zero), [0, 1, 2, 0, 4, 5]);
        assert_eq!(translate_image(&img, 3, 2, -1, 1, Fill::Zero), [0, 0, 0, 2, 3, 0]);
        assert_eq!(translate_image(&img, 3, 2, 1, 0, Fill::Wrap), [3, 1, 2, 6, 4, 5]);
        assert_eq!(translate_image(&img, 3, 2, -4, 3, Fill::Wrap), [5, 6, 4, 2, 3, 1]);
        assert_eq!(translate_image(&img, 3, 2, 9, 0, Fill::Zero), [0; 6]);
    }
}
