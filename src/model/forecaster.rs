//! Forecasters: a window of the past, (B, L, F) scaled values (targets
//! first, then covariates), predicts the next H values of the targets,
//! (B, H, N). Both kinds read each window relative to its last observed
//! target value and predict changes from it (as NLinear does), so an
//! untrained model starts near the naive forecast and a trend that leaves
//! the training range changes nothing the network sees.
//!
//! - `lstm` / `gru`: an RNN encoder reads the past; its final state starts
//!   an RNN decoder rolled out H steps. Step t reads the previous value and
//!   predicts `previous + head(h_t)`. In training it reads the targets
//!   shifted right by one, the last observed value first (the shift core's
//!   [`numeric_teacher_forcing`](crate::data::shift::numeric_teacher_forcing));
//!   with scheduled sampling each row reads its own previous prediction
//!   instead with probability p. Evaluation and forecasting always read the
//!   model's own predictions.
//! - `transformer`: the Transformer encoder (pre-LN blocks of the
//!   encoder–decoder) over the projected past with learned positions, and a
//!   direct multi-step head on the last position: `last + head(z)`.
//! - `nlinear` / `dlinear` (Zeng et al. 2023, "Are Transformers Effective
//!   for Time Series Forecasting?"): one linear map from the whole window
//!   (L × F values, flattened) to the horizon (H × N). NLinear maps the
//!   relative window directly; DLinear first splits it, channel by channel,
//!   into a trend (a centred moving average of `ma_kernel` steps, the ends
//!   padded with the first and last values) and the remainder, and sums a
//!   linear map of each. With one input column this is the papers' model.
//!
//! Any kind may sit behind RevIN (`revin`, Kim et al. 2022, without its
//! affine map): each window's columns are standardised by their own
//! statistics, and the forecast mapped back.
//!
//! Names: `encoder.weight_ih_l0`, `decoder.…`, `head.weight` (PyTorch's
//! `nn.LSTM`/`nn.GRU`/`nn.Linear`); `input_proj`, `embed_positions.weight`,
//! `encoder.layers.{i}.…`, `layer_norm`, `head` for the Transformer;
//! `linear` (NLinear), `linear_seasonal` and `linear_trend` (DLinear).

use super::frontend::{Frontend, FrontendConfig};
use crate::data::series::Scaler;
use crate::data::shift::ForecastTensors;
use crate::error::{Error, Result};
use crate::nn::dropout::dropout;
use crate::nn::layer_norm::{layer_norm, LayerNorm};
use crate::nn::linear::{linear, linear_init, Linear};
use crate::nn::loss::{pinball_loss_sum, regression_loss_sum, RegressionLoss};
use crate::nn::rnn::{CellKind, Rnn};
use crate::rng::Rng;
use candle_core::{Module, Tensor};
use candle_nn::{Init, VarBuilder};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::transformer::EncoderLayer;

/// Which forecaster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForecasterKind {
    /// An LSTM encoder whose final state starts an LSTM decoder rolled out H steps.
    Lstm,
    /// A GRU encoder whose final state starts a GRU decoder rolled out H steps.
    Gru,
    /// Transformer encoder with a direct multi-step head on the last position.
    Transformer,
    /// One linear map from the window (relative to its last value) to the horizon.
    #[serde(rename = "nlinear")]
    NLinear,
    /// Linear maps of the window's moving-average trend and its remainder, summed.
    #[serde(rename = "dlinear")]
    DLinear,
    /// N-BEATS' generic stack (Oreshkin et al. 2020): blocks of ReLU layers,
    /// each subtracting its backcast from the window the next one reads and
    /// adding its forecast to the sum.
    #[serde(rename = "nbeats")]
    NBeats,
}

impl ForecasterKind {
    /// The name `--model` takes and `config.json` holds.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lstm => "lstm",
            Self::Gru => "gru",
            Self::Transformer => "transformer",
            Self::NLinear => "nlinear",
            Self::DLinear => "dlinear",
            Self::NBeats => "nbeats",
        }
    }
}

/// A forecaster's shape and loss. Saved in every checkpoint's `config.json`,
/// with the scaler fitted on the training split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForecasterConfig {
    /// `lstm`, `gru` or `transformer`.
    pub kind: ForecasterKind,
    /// Values per past step: the targets, then the covariates (set from the data).
    pub n_inputs: usize,
    /// Target columns forecast together (set from the data).
    pub n_targets: usize,
    /// Past steps the model reads (L), e.g. 168.
    pub context: usize,
    /// Future steps it predicts (H), e.g. 24.
    pub horizon: usize,
    /// RNN width, or the Transformer's model width, e.g. 64.
    pub hidden: usize,
    /// RNN layers (encoder and decoder each), Transformer blocks, or the
    /// ReLU layers of each N-BEATS block, e.g. 1.
    pub n_layer: usize,
    /// Attention heads (Transformer), e.g. 4.
    pub n_head: usize,
    /// Feed-forward width (Transformer), e.g. 128.
    pub d_ff: usize,
    /// Dropout between layers and before the head, e.g. 0.1.
    pub dropout: f32,
    /// `mse` (default), `mae`, or `{ huber = { delta = 1.0 } }`, on scaled values.
    pub loss: RegressionLoss,
    /// Probability that a decoder step reads its own previous prediction
    /// instead of the true value in training (RNN kinds), e.g. 0.25.
    pub scheduled_sampling: f32,
    /// The scaler fitted on the training split; set by the trainer.
    #[serde(default)]
    pub scaler: Option<Scaler>,
    /// DLinear's moving-average length, odd, e.g. 25 (the paper's).
    #[serde(default = "default_ma_kernel")]
    pub ma_kernel: usize,
    /// Reversible instance normalisation (Kim et al. 2022, "RevIN"): each
    /// window's columns are standardised by their own mean and spread over
    /// the L steps before the network reads them, and the forecast is mapped
    /// back with the targets' statistics. For any kind. Without RevIN's
    /// learned affine map: the model reads targets relative to their last
    /// value, which cancels the shift, and a linear model's scale.
    #[serde(default)]
    pub revin: bool,
    /// Quantile levels to forecast, ascending, including 0.5, e.g. [0.1,
    /// 0.5, 0.9]: the head predicts each, trained with the pinball loss
    /// (`loss` is then unused), and the median is the point forecast (the
    /// one an RNN decoder reads back). Empty: a point forecast.
    #[serde(default)]
    pub quantiles: Vec<f32>,
    /// N-BEATS: blocks in the stack, e.g. 3.
    #[serde(default = "default_blocks")]
    pub blocks: usize,
}

fn default_ma_kernel() -> usize {
    25
}

fn default_blocks() -> usize {
    3
}

impl Default for ForecasterConfig {
    /// One LSTM layer of 64 reading a week of hourly values (168) and
    /// forecasting a day (24).
    fn default() -> Self {
        Self {
            kind: ForecasterKind::Lstm,
            n_inputs: 1,
            n_targets: 1,
            context: 168,
            horizon: 24,
            hidden: 64,
            n_layer: 1,
            n_head: 4,
            d_ff: 128,
            dropout: 0.0,
            loss: RegressionLoss::Mse,
            scheduled_sampling: 0.0,
            scaler: None,
            ma_kernel: default_ma_kernel(),
            revin: false,
            quantiles: Vec::new(),
            blocks: default_blocks(),
        }
    }
}

impl ForecasterConfig {
    /// Checks the shape and loss: sizes at least 1, `n_targets <= n_inputs`, `hidden` divisible by `n_head`
    /// (Transformer), dropout in [0, 1), scheduled sampling in [0, 1], a positive Huber delta, and a scaler
    /// with `n_inputs` columns.
    pub fn validate(&self) -> Result<()> {
        super::check_sizes(&[
            ("model.n_inputs", self.n_inputs),
            ("model.n_targets", self.n_targets),
            ("model.context", self.context),
            ("model.horizon", self.horizon),
            ("model.hidden", self.hidden),
            ("model.n_layer", self.n_layer),
            ("model.n_head", self.n_head),
            ("model.d_ff", self.d_ff),
        ])?;
        let (c, l, q) = (self.hidden, self.n_layer, self.quantiles.len().max(1));
        // Positions, per layer ≤ 8C² + 2C·F (or an RNN's 8C²), the head (H·N·C).
        super::check_params(&[
            ("model.context", &[self.context, c]),
            ("model.n_layer", &[l, 8, c, c + self.d_ff]),
            ("model.horizon", &[self.horizon, self.n_targets, q, c]),
            ("model.context", &[2, self.context, self.n_inputs, self.horizon, self.n_targets, q]), // DLinear's two maps
        ])?;
        super::check_sizes(&[("model.ma_kernel", self.ma_kernel)])?;
        if self.n_targets > self.n_inputs {
            return Err(Error::config("model.n_inputs", "must count the targets and the covariates"));
        }
        if self.kind == ForecasterKind::Transformer && !self.hidden.is_multiple_of(self.n_head) {
            return Err(Error::config(
                "model.hidden",
                format!("{} is not divisible by n_head {}", self.hidden, self.n_head),
            ));
        }
        if self.kind == ForecasterKind::NBeats {
            super::check_sizes(&[("model.blocks", self.blocks)])?;
        }
        if self.kind == ForecasterKind::DLinear && self.ma_kernel.is_multiple_of(2) {
            return Err(Error::config(
                "model.ma_kernel",
                format!("{} is even; the moving average is centred, so it must be odd", self.ma_kernel),
            ));
        }
        if !self.quantiles.is_empty() {
            let q = &self.quantiles;
            if q.iter().any(|&v| !(v > 0.0 && v < 1.0)) || q.windows(2).any(|w| w[0] >= w[1]) {
                return Err(Error::config(
                    "model.quantiles",
                    "levels must be ascending, each strictly between 0 and 1",
                ));
            }
            if !q.contains(&0.5) {
                return Err(Error::config("model.quantiles", "must include 0.5: the median is the point forecast"));
            }
            super::check_sizes(&[("model.quantiles", q.len())])?;
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::config("model.dropout", "must be in [0, 1)"));
        }
        if !(0.0..=1.0).contains(&self.scheduled_sampling) {
            return Err(Error::config("model.scheduled_sampling", "must be in [0, 1]"));
        }
        if let RegressionLoss::Huber { delta } = self.loss {
            if !(delta > 0.0 && delta.is_finite()) {
                return Err(Error::config("model.loss.huber.delta", "must be positive"));
            }
        }
        self.input().validate("model")?;
        if let Some(s) = &self.scaler {
            if s.shift.len() != self.n_inputs || s.scale.len() != self.n_inputs {
                return Err(Error::config("model.scaler", format!("must have {} columns", self.n_inputs)));
            }
        }
        Ok(())
    }
}

impl ForecasterConfig {
    /// Where the point forecast (the median, level 0.5) sits among the Q
    /// outputs per value; 0 for a point forecaster.
    pub fn median_index(&self) -> usize {
        self.quantiles.iter().position(|&q| q == 0.5).unwrap_or(0)
    }

    /// The encoder's front-end: the past's values as they are (RNN kinds),
    /// or projected to the model width (Transformer).
    pub fn input(&self) -> FrontendConfig {
        let proj = (self.kind == ForecasterKind::Transformer).then_some(self.hidden);
        FrontendConfig::Frames { features: self.n_inputs, proj }
    }
}

#[derive(Debug, Clone)]
enum Net {
    Rnn {
        encoder: Rnn,
        decoder: Rnn,
    },
    Transformer {
        positions: Tensor, // (L, C)
        layers: Vec<EncoderLayer>,
        norm: LayerNorm,
    },
    /// NLinear: `head` maps the flattened window.
    NLinear,
    /// DLinear: `head` maps the remainder, `trend` the moving average.
    DLinear {
        average: Tensor, // (L, L): trend = average · window, per column
        trend: Linear,
    },
    /// N-BEATS' generic stack; `head` is the last block's forecast layer.
    NBeats {
        blocks: Vec<NBeatsBlock>,
    },
}

/// One N-BEATS block: ReLU layers over the residual window, then a linear
/// backcast (what it explains of the window) and a linear forecast.
#[derive(Debug, Clone)]
struct NBeatsBlock {
    layers: Vec<Linear>,
    /// `None` in the last block: no block reads its backcast.
    backcast: Option<Linear>,
    /// `None` in the last block, whose forecast layer is the forecaster's `head`.
    forecast: Option<Linear>,
}

/// The centred moving average over `l` steps as an (L, L) matrix A, trend =
/// A·x: row t averages the `k` values around t, positions before the first
/// or after the last reading those ends (DLinear's replicate padding).
fn moving_average(l: usize, k: usize, dev: &candle_core::Device) -> candle_core::Result<Tensor> {
    let half = (k / 2) as isize;
    let mut a = vec![0f32; l * l];
    for t in 0..l {
        for j in -half..=half {
            let s = (t as isize + j).clamp(0, l as isize - 1) as usize;
            a[t * l + s] += 1.0 / k as f32;
        }
    }
    Tensor::from_vec(a, (l, l), dev)
}

/// A forecaster of any kind.
#[derive(Debug, Clone)]
pub struct Forecaster {
    cfg: ForecasterConfig,
    /// The past (B, L, F) → the encoder's frames.
    input: Arc<dyn Frontend>,
    net: Net,
    head: Linear,
}

/// RevIN's variance floor (the paper's ε).
const REVIN_EPS: f64 = 1e-5;

impl Forecaster {
    /// Validates `cfg` and builds the forecaster, its parameters under `vb`.
    pub fn new(cfg: &ForecasterConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        // Each target's head outputs Q values: one per quantile, or the point.
        let (c, n) = (cfg.hidden, cfg.n_targets * cfg.quantiles.len().max(1));
        let w = Init::Randn { mean: 0.0, stdev: 0.02 };
        let (input, net, head) = match cfg.kind {
            ForecasterKind::Lstm | ForecasterKind::Gru => {
                let cell = if cfg.kind == ForecasterKind::Lstm { CellKind::Lstm } else { CellKind::Gru };
                let input = cfg.input().build(w, vb.pp("input_proj"))?; // no parameters: values as they are
                let rnn = |inputs, vb| Rnn::new(cell, inputs, c, cfg.n_layer, cfg.dropout, 1.0, vb);
                let decoder = rnn(cfg.n_targets, vb.pp("decoder"))?;
                let net = Net::Rnn { encoder: rnn(input.dim(), vb.pp("encoder"))?, decoder };
                (input, net, linear(c, n, true, vb.pp("head"))?)
            }
            ForecasterKind::Transformer => {
                let layers = (0..cfg.n_layer)
                    .map(|i| EncoderLayer::new(c, cfg.n_head, cfg.d_ff, vb.pp("encoder").pp("layers").pp(i)))
                    .collect::<candle_core::Result<_>>()?;
                let input = cfg.input().build(w, vb.pp("input_proj"))?;
                let net = Net::Transformer {
                    positions: vb.pp("embed_positions").get_with_hints((cfg.context, c), "weight", w)?,
                    layers,
                    norm: layer_norm(c, 1e-5, vb.pp("layer_norm"))?,
                };
                (input, net, linear_init(c, cfg.horizon * n, true, w, vb.pp("head"))?)
            }
            ForecasterKind::NBeats => {
                let input = cfg.input().build(w, vb.pp("input_proj"))?; // no parameters: values as they are
                let (lf, hn) = (cfg.context * cfg.n_inputs, cfg.horizon * n);
                let mut blocks = Vec::with_capacity(cfg.blocks);
                let mut head = None;
                for i in 0..cfg.blocks {
                    let vb = vb.pp("blocks").pp(i);
                    let layers = (0..cfg.n_layer)
                        .map(|j| linear(if j == 0 { lf } else { c }, c, true, vb.pp("layers").pp(j)))
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    let forecast = linear_init(c, hn, true, w, vb.pp("forecast"))?;
                    let (backcast, forecast) = if i + 1 == cfg.blocks {
                        head = Some(forecast);
                        (None, None)
                    } else {
                        (Some(linear_init(c, lf, true, w, vb.pp("backcast"))?), Some(forecast))
                    };
                    blocks.push(NBeatsBlock { layers, backcast, forecast });
                }
                let head = head.ok_or_else(|| Error::config("model.blocks", "N-BEATS needs at least one block"))?;
                (input, Net::NBeats { blocks }, head)
            }
            ForecasterKind::NLinear | ForecasterKind::DLinear => {
                let input = cfg.input().build(w, vb.pp("input_proj"))?; // no parameters: values as they are
                let (lf, hn) = (cfg.context * cfg.n_inputs, cfg.horizon * n);
                if cfg.kind == ForecasterKind::NLinear {
                    (input, Net::NLinear, linear_init(lf, hn, true, w, vb.pp("linear"))?)
                } else {
                    let average = moving_average(cfg.context, cfg.ma_kernel, vb.device())?;
                    let trend = linear_init(lf, hn, true, w, vb.pp("linear_trend"))?;
                    (input, Net::DLinear { average, trend }, linear_init(lf, hn, true, w, vb.pp("linear_seasonal"))?)
                }
            }
        };
        Ok(Self { cfg: cfg.clone(), input, net, head })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ForecasterConfig {
        &self.cfg
    }

    /// `past` (B, L, F) → point forecast (B, H, N), scaled: the median of a
    /// quantile forecaster. With `dec_in` (B, H, N) an RNN decoder is
    /// teacher-forced (scheduled sampling applies when `rng` is given);
    /// without it the decoder reads its own (median) predictions.
    pub fn forward(&self, past: &Tensor, dec_in: Option<&Tensor>, rng: Option<&mut Rng>) -> Result<Tensor> {
        let y = self.forward_quantiles(past, dec_in, rng)?; // (B, H, N, Q)
        Ok(y.narrow(3, self.median_index(), 1)?.squeeze(3)?)
    }

    fn median_index(&self) -> usize {
        self.cfg.median_index()
    }

    /// [`Self::forward`] with every quantile: (B, H, N, Q), Q = 1 for a
    /// point forecaster. Quantiles are as the head predicts them (they may
    /// cross before training has ordered them).
    pub fn forward_quantiles(&self, past: &Tensor, dec_in: Option<&Tensor>, rng: Option<&mut Rng>) -> Result<Tensor> {
        let (_, l, f) = past.dims3()?;
        let n = self.cfg.n_targets;
        if l != self.cfg.context || f != self.cfg.n_inputs {
            return Err(Error::config(
                "model.context",
                format!(
                    "the model reads windows of {} steps × {} values, got {l} × {f}",
                    self.cfg.context, self.cfg.n_inputs
                ),
            ));
        }
        if !self.cfg.revin {
            return self.relative_to_last(past, dec_in, rng);
        }
        // RevIN: each window's columns standardised by their own statistics.
        let mean = past.mean_keepdim(1)?; // (B, 1, F)
        let std = (past.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)? + REVIN_EPS)?.sqrt()?; // (B, 1, F)
        let (mean_n, std_n) = (mean.narrow(2, 0, n)?, std.narrow(2, 0, n)?);
        let x = past.broadcast_sub(&mean)?.broadcast_div(&std)?;
        let d = dec_in.map(|d| d.broadcast_sub(&mean_n)?.broadcast_div(&std_n)).transpose()?;
        let y = self.relative_to_last(&x, d.as_ref(), rng)?; // (B, H, N, Q), standardised
                                                             // Back with the targets' statistics.
        Ok(y.broadcast_mul(&std_n.unsqueeze(3)?)?.broadcast_add(&mean_n.unsqueeze(3)?)?)
    }

    /// [`Self::forward`] after RevIN: the window read relative to its last
    /// target value, the forecast added back to it.
    fn relative_to_last(&self, past: &Tensor, dec_in: Option<&Tensor>, rng: Option<&mut Rng>) -> Result<Tensor> {
        let (b, l, f) = past.dims3()?;
        let (h, n, p) = (self.cfg.horizon, self.cfg.n_targets, self.cfg.dropout);
        let last = past.narrow(1, l - 1, 1)?.narrow(2, 0, n)?.contiguous()?; // (B, 1, N)
                                                                             // Targets relative to the last observed value; covariates as they are.
        let offset = if f > n {
            Tensor::cat(&[&last, &last.zeros_like()?.narrow(2, 0, 1)?.repeat((1, 1, f - n))?], 2)?
        } else {
            last.clone()
        };
        let past = &past.broadcast_sub(&offset)?; // (B, L, F)
        let dec_in = dec_in.map(|d| d.broadcast_sub(&last)).transpose()?;
        let dec_in = dec_in.as_ref();
        Ok(self.relative(past, dec_in, rng, (b, l, h, n, p))?.broadcast_add(&last.unsqueeze(3)?)?)
    }

    /// [`Self::forward`] on windows relative to their last value: returns
    /// the forecast relative to it, (B, H, N, Q).
    fn relative(
        &self,
        past: &Tensor,
        dec_in: Option<&Tensor>,
        mut rng: Option<&mut Rng>,
        (b, l, h, n, p): (usize, usize, usize, usize, f32),
    ) -> Result<Tensor> {
        let last = Tensor::zeros((b, 1, n), past.dtype(), past.device())?;
        let q = self.cfg.quantiles.len().max(1);
        match &self.net {
            Net::Transformer { positions, layers, norm } => {
                let x = self.input.forward(past)?.broadcast_add(&positions.unsqueeze(0)?)?; // (B, L, C)
                let mut x = dropout(&x, p, rng.as_deref_mut())?;
                for layer in layers {
                    x = layer.forward(&x, None, p, rng.as_deref_mut())?;
                }
                let z = norm.forward(&x.narrow(1, l - 1, 1)?)?; // (B, 1, C)
                let z = dropout(&z, p, rng.as_deref_mut())?;
                Ok(self.head.forward(&z)?.reshape((b, h, n, q))?) // (B, H, N, Q)
            }
            Net::NLinear => {
                let z = dropout(&past.reshape((b, l * past.dim(2)?))?, p, rng.as_deref_mut())?; // (B, L·F)
                Ok(self.head.forward(&z)?.reshape((b, h, n, q))?) // (B, H, N, Q)
            }
            Net::NBeats { blocks } => {
                let mut x = past.reshape((b, l * past.dim(2)?))?; // (B, L·F), the residual window
                let mut y: Option<Tensor> = None;
                for block in blocks {
                    let mut z = x.clone();
                    for layer in &block.layers {
                        z = dropout(&layer.forward(&z)?.relu()?, p, rng.as_deref_mut())?;
                        // (B, C)
                    }
                    if let Some(backcast) = &block.backcast {
                        x = (x - backcast.forward(&z)?)?;
                    }
                    let f = block.forecast.as_ref().unwrap_or(&self.head).forward(&z)?; // (B, H·N·Q)
                    y = Some(match y {
                        Some(y) => (y + f)?,
                        None => f,
                    });
                }
                let y = y.ok_or_else(|| Error::config("model.blocks", "N-BEATS needs at least one block"))?;
                Ok(y.reshape((b, h, n, q))?)
            }
            Net::DLinear { average, trend } => {
                let f = past.dim(2)?;
                // The trend of each column: (B, F, L) · Aᵀ, back to (B, L, F).
                let cols = past.transpose(1, 2)?.contiguous()?.reshape((b * f, l))?;
                let smooth = cols.matmul(&average.t()?)?.reshape((b, f, l))?.transpose(1, 2)?.contiguous()?;
                let rest = (past - &smooth)?;
                let flat = |x: &Tensor| x.reshape((b, l * f));
                let y = (self.head.forward(&flat(&rest)?)? + trend.forward(&flat(&smooth)?)?)?; // (B, H·N·Q)
                Ok(y.reshape((b, h, n, q))?)
            }
            Net::Rnn { encoder, decoder } => {
                let (_, mut states) = encoder.forward(&self.input.forward(past)?, None, None, rng.as_deref_mut())?;
                let sampling = self.cfg.scheduled_sampling > 0.0 && rng.is_some();
                if let (Some(d), false) = (dec_in, sampling) {
                    // Teacher forcing: the whole shifted horizon in one pass.
                    let (out, _) = decoder.forward(d, Some(&states), None, rng.as_deref_mut())?; // (B, H, C)
                    let out = dropout(&out, p, rng.as_deref_mut())?;
                    let step = self.head.forward(&out)?.reshape((b, h, n, q))?;
                    return Ok(step.broadcast_add(&d.unsqueeze(3)?)?); // (B, H, N, Q)
                }
                let mut prev = last;
                let mut steps = Vec::with_capacity(h);
                for t in 0..h {
                    let (out, next) = decoder.forward(&prev, Some(&states), None, rng.as_deref_mut())?; // (B, 1, C)
                    states = next;
                    let out = dropout(&out, p, rng.as_deref_mut())?;
                    let yq = self.head.forward(&out)?.reshape((b, 1, n, q))?.broadcast_add(&prev.unsqueeze(3)?)?;
                    let y = yq.narrow(3, self.median_index(), 1)?.squeeze(3)?; // (B, 1, N), the point read back
                    prev = match (dec_in, rng.as_deref_mut()) {
                        // Scheduled sampling: each row reads its own (detached)
                        // prediction with probability p, else the true value.
                        (Some(d), Some(r)) if t + 1 < h => {
                            let own: Vec<f32> = (0..b)
                                .map(|_| if r.next_f32() < self.cfg.scheduled_sampling { 1.0 } else { 0.0 })
                                .collect();
                            let own = Tensor::from_vec(own, (b, 1, 1), past.device())?;
                            let truth = d.narrow(1, t + 1, 1)?;
                            (&truth + y.detach().sub(&truth)?.broadcast_mul(&own)?)?
                        }
                        _ => y,
                    };
                    steps.push(yq);
                }
                Ok(Tensor::cat(&steps, 1)?) // (B, H, N, Q)
            }
        }
    }

    /// Summed loss over the batch's values (the pinball loss summed over
    /// the quantiles, for a quantile forecaster), and the point forecast (B, H, N).
    pub fn loss_sum(&self, batch: &ForecastTensors, rng: Option<&mut Rng>) -> Result<(Tensor, Tensor)> {
        let all = self.forward_quantiles(&batch.past, batch.dec_in.as_ref(), rng)?; // (B, H, N, Q)
        let pred = all.narrow(3, self.median_index(), 1)?.squeeze(3)?;
        if self.cfg.quantiles.is_empty() {
            return Ok((regression_loss_sum(&pred, &batch.labels, self.cfg.loss)?, pred));
        }
        Ok((pinball_loss_sum(&all, &batch.labels, &self.cfg.quantiles)?, pred))
    }
}

impl super::Family for ForecasterConfig {
    fn validate(&self) -> Result<()> {
        ForecasterConfig::validate(self)
    }

    fn build(&self, vb: VarBuilder) -> Result<super::Model> {
        Ok(super::Model::Forecaster(Forecaster::new(self, vb)?))
    }

    fn encoder_input(&self) -> Option<FrontendConfig> {
        Some(self.input())
    }
}
