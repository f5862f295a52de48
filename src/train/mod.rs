//! The training loop: batch → forward → masked loss → backward → clip →
//! step(lr(step)) → log → eval. The library never prints: progress and
//! metrics go to a [`MetricsSink`].

pub mod optim;
pub mod schedule;

use crate::data::loader::{batches, Loader};
use crate::data::Splits;
use crate::error::{Error, Result};
use crate::eval::{teacher_forced, TeacherForcedStats};
use crate::model::Seq2Seq;
use crate::nn::ParamStore;
use crate::rng::Rng;
pub use optim::{Optimizer, OptimizerConfig, OptimizerKind};
pub use schedule::{Schedule, ScheduleKind};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How to train. Saved in every checkpoint's `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps, e.g. 2000.
    pub steps: usize,
    /// Examples per batch, e.g. 64.
    pub batch_size: usize,
    /// Seed for initialisation, data order and dropout, e.g. 1337.
    pub seed: u64,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Clip the global gradient norm to this; 0 turns clipping off. E.g. 1.0.
    pub grad_clip: f32,
    /// Evaluate on the validation split every N steps (0: only at the end), e.g. 250.
    pub eval_every: usize,
}

impl TrainConfig {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::config("train.steps", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return Err(Error::config("train.grad_clip", "must be finite and >= 0"));
        }
        self.optimizer.validate()?;
        self.schedule.validate(self.steps)
    }
}

/// One optimizer step, as reported to the sink.
#[derive(Debug, Clone, Serialize)]
pub struct StepMetrics {
    pub step: usize,
    pub epoch: usize,
    /// Mean cross-entropy over this batch's supervised tokens.
    pub loss: f32,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Supervised tokens in this batch.
    pub tokens: usize,
    /// Supervised tokens per second since the run started.
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

/// Where training reports. The binary draws progress bars from it; tests
/// collect losses.
pub trait MetricsSink {
    fn on_step(&mut self, _m: &StepMetrics) {}
    fn on_eval(&mut self, _step: usize, _m: &TeacherForcedStats) {}
}

/// A sink that keeps every step's loss.
#[derive(Debug, Default)]
pub struct LossHistory(pub Vec<f32>);

impl MetricsSink for LossHistory {
    fn on_step(&mut self, m: &StepMetrics) {
        self.0.push(m.loss);
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    pub steps: usize,
    pub final_loss: f32,
    pub tokens_per_s: f64,
    pub elapsed_s: f64,
}

/// Trains `model` (whose weights live in `store`) on `data.train`.
pub fn train(
    model: &Seq2Seq,
    store: &ParamStore,
    data: &Splits,
    cfg: &TrainConfig,
    sink: &mut dyn MetricsSink,
) -> Result<TrainOutcome> {
    cfg.validate()?;
    let dev = store.device().clone();
    let mut loader = Loader::new(data.train.clone(), cfg.batch_size, cfg.seed);
    let mut opt = Optimizer::new(store.vars(), cfg.optimizer.clone())?;
    let mut dropout_rng = Rng::derive(cfg.seed, "dropout");
    let (start, mut tokens, mut last_loss) = (Instant::now(), 0usize, f32::NAN);
    for step in 1..=cfg.steps {
        let batch = loader.next_batch().tensors(&dev)?;
        let (loss_sum, _) = model.loss_sum(&batch, Some(&mut dropout_rng))?;
        let loss = (loss_sum / batch.n_supervised as f64)?;
        last_loss = loss.to_scalar::<f32>()?;
        if !last_loss.is_finite() {
            return Err(Error::NonFinite { what: "loss", step });
        }
        let grads = loss.backward()?;
        let grad_norm = opt.grad_norm(&grads)?;
        if !grad_norm.is_finite() {
            return Err(Error::NonFinite { what: "gradient", step });
        }
        let lr = cfg.schedule.lr(cfg.optimizer.lr, step);
        opt.step(&grads, lr, clip_scale(grad_norm, cfg.grad_clip))?;
        tokens += batch.n_supervised;
        let elapsed_s = start.elapsed().as_secs_f64();
        sink.on_step(&StepMetrics {
            step,
            epoch: loader.epoch(),
            loss: last_loss,
            lr,
            grad_norm,
            tokens: batch.n_supervised,
            tokens_per_s: tokens as f64 / elapsed_s.max(1e-9),
            elapsed_s,
        });
        if cfg.eval_every > 0 && step % cfg.eval_every == 0 && step < cfg.steps {
            let stats = teacher_forced(model, batches(&data.valid, cfg.batch_size), &dev)?;
            tracing::info!(step, valid_loss = stats.loss(), "evaluated");
            sink.on_eval(step, &stats);
        }
    }
    let elapsed_s = start.elapsed().as_secs_f64();
    Ok(TrainOutcome {
        steps: cfg.steps,
        final_loss: last_loss,
        tokens_per_s: tokens as f64 / elapsed_s.max(1e-9),
        elapsed_s,
    })
}

/// The factor that brings the gradient norm down to `max_norm` (1 if it is
/// already below, or clipping is off).
pub fn clip_scale(norm: f32, max_norm: f32) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        (max_norm / (norm + 1e-6)) as f64
    } else {
        1.0
    }
}
