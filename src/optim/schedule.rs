//! Learning-rate schedules. The rate of a step is a pure function of the
//! step, so a resumed run needs no schedule state.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The shape of the learning rate after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// The base rate throughout (after warmup).
    Constant,
    /// Cosine decay from the base rate to the floor at the last step.
    Cosine,
    /// Linear decay from the base rate to the floor at the last step.
    Linear,
    /// The Transformer paper's: the base rate at the end of warmup, then
    /// decaying as 1/√step (rate · √(warmup / step)), never below the floor.
    InverseSqrt,
}

/// Linear warmup, then constant, cosine, linear or inverse-square-root decay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The shape after warmup, e.g. `cosine`.
    pub kind: ScheduleKind,
    /// Steps of linear warmup from 0, e.g. 100.
    pub warmup_steps: usize,
    /// The floor as a fraction of the base rate, e.g. 0.1.
    pub min_lr_ratio: f64,
    /// Step at which decay ends (usually the run's last step), e.g. 2000.
    pub decay_steps: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { kind: ScheduleKind::Constant, warmup_steps: 0, min_lr_ratio: 0.1, decay_steps: 0 }
    }
}

impl Schedule {
    /// An error if `min_lr_ratio` is outside [0, 1] or `warmup_steps` exceeds the run's `steps`.
    pub fn validate(&self, steps: usize) -> Result<()> {
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(Error::config("train.schedule.min_lr_ratio", "must be in [0, 1]"));
        }
        if self.warmup_steps > steps {
            return Err(Error::config(
                "train.schedule.warmup_steps",
                format!("{} exceeds the run's {steps} steps", self.warmup_steps),
            ));
        }
        Ok(())
    }

    /// The rate at `step` (1-based) for base rate `lr`.
    pub fn lr(&self, lr: f64, step: usize) -> f64 {
        if step <= self.warmup_steps {
            return lr * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let span = self.decay_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let floor = lr * self.min_lr_ratio;
        match self.kind {
            ScheduleKind::Constant => lr,
            ScheduleKind::Cosine => floor + (lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            ScheduleKind::Linear => lr - (lr - floor) * progress,
            ScheduleKind::InverseSqrt => (lr * (self.warmup_steps.max(1) as f64 / step as f64).sqrt()).max(floor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay_to_floor() {
        let s = Schedule { kind: ScheduleKind::Cosine, warmup_steps: 10, min_lr_ratio: 0.1, decay_steps: 110 };
        assert!((s.lr(1.0, 5) - 0.5).abs() < 1e-12);
        assert!((s.lr(1.0, 10) - 1.0).abs() < 1e-12);
        assert!((s.lr(1.0, 60) - 0.55).abs() < 1e-12);
        assert!((s.lr(1.0, 110) - 0.1).abs() < 1e-12);
        assert!((s.lr(1.0, 500) - 0.1).abs() < 1e-12);
        let l = Schedule { kind: ScheduleKind::Linear, ..s.clone() };
        assert!((l.lr(1.0, 60) - 0.55).abs() < 1e-12);
        assert_eq!(Schedule::default().lr(0.3, 77), 0.3);
        let r = Schedule { kind: ScheduleKind::InverseSqrt, warmup_steps: 100, min_lr_ratio: 0.01, decay_steps: 0 };
        assert!((r.lr(1.0, 50) - 0.5).abs() < 1e-12);
        assert!((r.lr(1.0, 100) - 1.0).abs() < 1e-12);
        assert!((r.lr(1.0, 400) - 0.5).abs() < 1e-12);
        assert!((r.lr(1.0, 10_000) - 0.1).abs() < 1e-12);
        assert!((r.lr(1.0, 100_000_000) - 0.01).abs() < 1e-12);
    }
}
