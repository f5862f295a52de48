//! Image classifiers: a grey-scale image (B, 1, H, W) to class logits (B, C).
//!
//! - `cnn`: blocks of 3×3 convolution (padding 1), ReLU and 2×2 max pooling
//!   (stride 2, skipped once a side is odd), then a hidden linear layer with
//!   ReLU and the class head. Convolution, ReLU and pooling are one fused
//!   op ([`crate::ops::conv2d`]): im2col matrix products (candle's CPU
//!   `conv2d` backward is correct but slow), and pooling with the gradient
//!   candle's `max_pool2d` gets wrong ([`crate::nn::pool`] says why). The
//!   gradient test below and the PyTorch golden test guard both.
//! - `row_lstm` / `row_gru`: shiftlm's own reading of an image, its rows as a
//!   sequence (H steps of W pixels) through the fused LSTM or GRU, the final
//!   hidden state into the class head.
//! - `mlp`: the pixels flattened through a hidden layer with ReLU: every
//!   input position has its own weights, so it is the model most hurt by a
//!   shift (the speech benchmarks' position-bound baseline).
//! - `conv_lstm` / `conv_gru`: the CNN's convolution blocks (pooling while
//!   both sides are even), then the feature map's columns as a sequence
//!   through an LSTM or GRU, its outputs averaged over time into the class
//!   head: the keyword spotter for log-mel spectrograms (mel × time), where
//!   a column is one moment of sound.
//!
//! Names follow PyTorch: `convs.{i}.weight`/`.bias` (`nn.Conv2d`),
//! `hidden.weight`, `head.weight` (`nn.Linear`), `rnn.weight_ih_l0`, … (`nn.LSTM`).

use crate::data::shift::ImageTensors;
use crate::error::{Error, Result};
use crate::nn::conv::{conv2d, Conv2d};
use crate::nn::dropout::dropout;
use crate::nn::linear::{linear, Linear};
use crate::nn::rnn::{CellKind, Rnn};
use crate::rng::Rng;
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

/// Which classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageKind {
    /// Convolutions, ReLU and max pooling, then two linear layers.
    Cnn,
    /// The rows as a sequence through an LSTM.
    RowLstm,
    /// The rows as a sequence through a GRU.
    RowGru,
    /// The pixels through one hidden layer.
    Mlp,
    /// Convolutions, then the columns through an LSTM, averaged over time.
    ConvLstm,
    /// Convolutions, then the columns through a GRU, averaged over time.
    ConvGru,
}

impl ImageKind {
    /// Whether it starts with convolution blocks.
    pub fn has_convs(self) -> bool {
        matches!(self, ImageKind::Cnn | ImageKind::ConvLstm | ImageKind::ConvGru)
    }

    /// The recurrent cell it reads a sequence with, if any.
    pub fn cell(self) -> Option<CellKind> {
        match self {
            ImageKind::RowLstm | ImageKind::ConvLstm => Some(CellKind::Lstm),
            ImageKind::RowGru | ImageKind::ConvGru => Some(CellKind::Gru),
            ImageKind::Cnn | ImageKind::Mlp => None,
        }
    }
}

/// An image classifier's shape. Saved in every checkpoint's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// `cnn`, `row_lstm`, `row_gru`, `mlp`, `conv_lstm` or `conv_gru`.
    pub kind: ImageKind,
    /// Image width in pixels (set from the data).
    pub width: usize,
    /// Image height in pixels (set from the data).
    pub height: usize,
    /// Number of classes (set from the data).
    pub n_classes: usize,
    /// Their names, by label (set from the data; empty: the labels' numbers).
    #[serde(default)]
    pub classes: Vec<String>,
    /// CNN: output channels of each convolution block, e.g. [32, 64].
    #[serde(default)]
    pub channels: Vec<usize>,
    /// Width of the hidden linear layer (CNN) or of the recurrent state.
    pub hidden: usize,
    /// Dropout before the class head during training.
    #[serde(default)]
    pub dropout: f32,
}

impl ImageConfig {
    /// A small CNN or row-RNN for images of `width`×`height` in `n_classes` classes.
    pub fn new(kind: ImageKind, width: usize, height: usize, n_classes: usize) -> Self {
        let (channels, hidden) = match kind {
            ImageKind::Cnn => (vec![32, 64], 128),
            ImageKind::ConvLstm | ImageKind::ConvGru => (vec![32, 32], 128),
            ImageKind::RowLstm | ImageKind::RowGru | ImageKind::Mlp => (Vec::new(), 128),
        };
        Self { kind, width, height, n_classes, classes: Vec::new(), channels, hidden, dropout: 0.0 }
    }

    /// The feature map after the convolution blocks: (channels, height, width).
    pub fn conv_output(&self) -> (usize, usize, usize) {
        let (mut h, mut w) = (self.height, self.width);
        for _ in &self.channels {
            if h % 2 == 0 && w % 2 == 0 {
                (h, w) = (h / 2, w / 2);
            }
        }
        (self.channels.last().copied().unwrap_or(1), h, w)
    }

    /// Checks every field; the error names the first impossible one.
    pub fn validate(&self) -> Result<()> {
        super::check_sizes(&[
            ("model.width", self.width),
            ("model.height", self.height),
            ("model.n_classes", self.n_classes),
            ("model.hidden", self.hidden),
        ])?;
        if self.n_classes < 2 {
            return Err(Error::config("model.n_classes", "a classifier needs at least 2 classes"));
        }
        if !self.classes.is_empty() && self.classes.len() != self.n_classes {
            return Err(Error::config(
                "model.classes",
                format!("{} names for {} classes", self.classes.len(), self.n_classes),
            ));
        }
        match self.kind {
            k if k.has_convs() && self.channels.is_empty() => {
                return Err(Error::config(
                    "model.channels",
                    "a CNN needs at least one convolution block, e.g. [32, 64]",
                ))
            }
            k if k.has_convs() => {
                let named: Vec<(&str, usize)> = self.channels.iter().map(|&c| ("model.channels", c)).collect();
                super::check_sizes(&named)?;
            }
            _ if !self.channels.is_empty() => {
                return Err(Error::config(
                    "model.channels",
                    "convolution channels apply to kind = \"cnn\", \"conv_lstm\" or \"conv_gru\"",
                ))
            }
            _ => {}
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config("model.dropout", "must be in [0, 1)"));
        }
        let (c, h, w) = self.conv_output();
        let ins: Vec<usize> = std::iter::once(1).chain(self.channels.iter().copied()).collect();
        let convs: Vec<[usize; 3]> = ins.iter().zip(&self.channels).map(|(&i, &o)| [i, o, 9]).collect();
        let mut terms: Vec<(&str, &[usize])> = convs.iter().map(|t| ("model.channels", &t[..])).collect();
        let (a, b) = ([c, h, w, self.hidden], [4, self.hidden, self.hidden + self.width.max(c * h)]);
        terms.push(("model.hidden", &a));
        terms.push(("model.hidden", &b));
        super::check_params(&terms)
    }
}

/// A built image classifier.
#[derive(Debug, Clone)]
pub struct ImageClassifier {
    cfg: ImageConfig,
    convs: Vec<Conv2d>,
    hidden: Option<Linear>,
    rnn: Option<Rnn>,
    head: Linear,
}

impl ImageClassifier {
    /// Parameters under `vb` (names as in the module docs).
    pub fn new(cfg: &ImageConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let mut convs = Vec::new();
        let mut in_c = 1;
        for (i, &c) in cfg.channels.iter().enumerate() {
            convs.push(conv2d(in_c, c, 3, 1, vb.pp(format!("convs.{i}")))?);
            in_c = c;
        }
        let (c, h, w) = cfg.conv_output();
        let (hidden, rnn) = match cfg.kind.cell() {
            None => (Some(linear(c * h * w, cfg.hidden, true, vb.pp("hidden"))?), None),
            Some(cell) => {
                // A row of W pixels per step, or a column of C·H' features.
                let step = if cfg.kind.has_convs() { c * h } else { cfg.width };
                (None, Some(Rnn::new(cell, step, cfg.hidden, 1, 0.0, 1.0, vb.pp("rnn"))?))
            }
        };
        let head_in = cfg.hidden;
        let head = linear(head_in, cfg.n_classes, true, vb.pp("head"))?;
        Ok(Self { cfg: cfg.clone(), convs, hidden, rnn, head })
    }

    /// The config it was built from.
    pub fn config(&self) -> &ImageConfig {
        &self.cfg
    }

    /// Images (B, 1, H, W) in [0, 1] → logits (B, C); `rng` enables dropout.
    pub fn forward(&self, x: &Tensor, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let b = x.dim(0)?;
        let mut y = x.clone();
        for conv in &self.convs {
            // 3×3 with padding 1 keeps the size: pool while both sides are even.
            let (_, _, h, w) = y.dims4()?;
            y = if h % 2 == 0 && w % 2 == 0 {
                conv.forward_relu_pool(&y)? // (B, C, H/2, W/2)
            } else {
                conv.forward_relu(&y)? // (B, C, H, W)
            };
        }
        let z = match (&self.rnn, &self.hidden) {
            (Some(rnn), _) if self.convs.is_empty() => {
                // (B, 1, H, W) → rows as steps (B, H, W) → last state (B, hidden).
                let rows = y.squeeze(1)?;
                let (_, states) = rnn.forward(&rows, None, None, rng.as_deref_mut())?;
                states[0].h.clone()
            }
            (Some(rnn), _) => {
                // (B, C, H', W') → columns as steps (B, W', C·H') → outputs
                // (B, W', hidden) → their mean over time (B, hidden).
                let (_, c, h, w) = y.dims4()?;
                let cols = y.permute((0, 3, 1, 2))?.reshape((b, w, c * h))?;
                let (out, _) = rnn.forward(&cols, None, None, rng.as_deref_mut())?;
                out.mean(1)?
            }
            (None, Some(hidden)) => hidden.forward(&y.reshape((b, ()))?)?.relu()?, // (B, hidden)
            (None, None) => unreachable!("built with one of them"),
        };
        let z = dropout(&z, self.cfg.dropout, rng)?;
        Ok(self.head.forward(&z)?)
    }

    /// Summed cross-entropy over the batch, and the logits (B, C).
    pub fn loss_sum(&self, batch: &ImageTensors, rng: Option<&mut Rng>) -> Result<(Tensor, Tensor)> {
        let logits = self.forward(&batch.images, rng)?;
        let loss = {
            let _loss = crate::profile::phase("loss");
            crate::ops::cross_entropy::cross_entropy(&logits, &batch.labels)?.sum_all()?
        };
        Ok((loss, logits))
    }
}

impl super::Family for ImageConfig {
    fn validate(&self) -> Result<()> {
        ImageConfig::validate(self)
    }

    fn build(&self, vb: VarBuilder) -> Result<super::Model> {
        Ok(super::Model::Image(ImageClassifier::new(self, vb)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A small classifier of `kind` with seeded weights, and its parameters.
    fn build(kind: ImageKind) -> (Vec<(String, candle_core::Var)>, ImageClassifier) {
        let store = crate::nn::ParamStore::new(7, &Device::Cpu);
        let mut cfg = ImageConfig::new(kind, 8, 6, 3);
        cfg.channels = if kind.has_convs() { vec![4, 5] } else { Vec::new() };
        cfg.hidden = 7;
        let m = ImageClassifier::new(&cfg, store.var_builder()).unwrap();
        (store.vars(), m)
    }

    fn batch() -> ImageTensors {
        let dev = Device::Cpu;
        let px: Vec<f32> = (0..2 * 48).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
        ImageTensors {
            images: Tensor::from_vec(px, (2, 1, 6, 8), &dev).unwrap(),
            labels: Tensor::new(&[2u32, 0], &dev).unwrap(),
            n_supervised: 2,
        }
    }

    /// Every trainable tensor gets a finite, nonzero gradient.
    #[test]
    fn every_parameter_gets_a_gradient() {
        for kind in [
            ImageKind::Cnn,
            ImageKind::RowLstm,
            ImageKind::RowGru,
            ImageKind::Mlp,
            ImageKind::ConvLstm,
            ImageKind::ConvGru,
        ] {
            let (vars, m) = build(kind);
            let (loss, logits) = m.loss_sum(&batch(), None).unwrap();
            assert_eq!(logits.dims(), [2, 3]);
            let g = loss.backward().unwrap();
            for (name, v) in &vars {
                let gv = g.get(v.as_tensor()).unwrap_or_else(|| panic!("{kind:?} {name}: no gradient"));
                let a = gv.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
                assert!(a.is_finite() && a > 0.0, "{kind:?} {name}: {a}");
            }
        }
    }

    /// The CNN's gradients (convolutions and pooling included) match central
    /// differences of the loss.
    #[test]
    fn cnn_gradients_match_finite_differences() {
        let (vars, m) = build(ImageKind::Cnn);
        // Zero rows make windows of tied maxima (the convolutions' bias alone).
        let b = batch();
        let zeros = b.images.narrow(2, 0, 3).unwrap().zeros_like().unwrap();
        let images = Tensor::cat(&[&zeros, &b.images.narrow(2, 3, 3).unwrap()], 2).unwrap();
        let b = ImageTensors { images, ..b };
        let loss = |m: &ImageClassifier| m.loss_sum(&b, None).unwrap().0.to_scalar::<f32>().unwrap() as f64;
        let g = m.loss_sum(&b, None).unwrap().0.backward().unwrap();
        let mut checked = 0;
        for name in ["convs.0.weight", "convs.0.bias", "convs.1.bias", "convs.1.weight", "hidden.weight"] {
            let v = &vars.iter().find(|(n, _)| n == name).unwrap().1;
            let analytic = g.get(v.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let base = v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for k in (0..base.len()).step_by(base.len().div_ceil(6)) {
                let at = |d: f32| {
                    let mut w = base.clone();
                    w[k] += d;
                    v.set(&Tensor::from_vec(w, v.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap();
                    loss(&m)
                };
                let central = |eps: f32| (at(eps) - at(-eps)) / (2.0 * eps as f64);
                let (coarse, fine) = (central(4e-3), central(2e-3));
                v.set(&Tensor::from_vec(base.clone(), v.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap();
                // A ReLU or pooling switch within the step makes the two
                // estimates disagree: no derivative to compare there.
                if (coarse - fine).abs() > 1e-2 * fine.abs().max(1e-2) {
                    continue;
                }
                let a = analytic[k] as f64;
                assert!((a - fine).abs() <= 2e-2 * fine.abs().max(a.abs()) + 2e-3, "{name}[{k}]: {a} vs {fine}");
                checked += 1;
            }
        }
        assert!(checked >= 20, "only {checked} points were smooth enough to check");
    }

    #[test]
    fn impossible_shapes_are_refused() {
        let mut c = ImageConfig::new(ImageKind::Cnn, 8, 8, 10);
        c.channels.clear();
        assert!(c.validate().unwrap_err().to_string().contains("model.channels"));
        let mut c = ImageConfig::new(ImageKind::RowLstm, 8, 8, 1);
        assert!(c.validate().unwrap_err().to_string().contains("model.n_classes"));
        c.n_classes = 10;
        c.channels = vec![4];
        assert!(c.validate().unwrap_err().to_string().contains("kind = \"cnn\""));
        // Every convolution is counted before anything is allocated.
        let mut huge = ImageConfig::new(ImageKind::Cnn, 8, 8, 10);
        huge.channels = vec![1 << 20, 1 << 20, 1];
        assert!(huge.validate().unwrap_err().to_string().contains("model.channels"));
        assert_eq!(ImageConfig::new(ImageKind::Cnn, 28, 28, 10).conv_output(), (64, 7, 7));
        let mut odd = ImageConfig::new(ImageKind::Cnn, 7, 7, 10);
        odd.channels = vec![4, 4];
        assert_eq!(odd.conv_output(), (4, 7, 7));
    }
}
