//! A progress bar fed by the library's metrics sink.

use indicatif::{ProgressBar, ProgressStyle};
use shiftlm::train::{EvalRecord, MetricsSink, StepMetrics};
use std::path::Path;

pub struct Progress {
    bar: ProgressBar,
    smoothed: Option<f32>,
}

impl Progress {
    pub fn new(steps: usize, done: usize) -> Self {
        let bar = ProgressBar::new(steps as u64);
        bar.set_position(done as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Self { bar, smoothed: None }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl MetricsSink for Progress {
    fn on_step(&mut self, m: &StepMetrics) {
        // An exponential moving average reads better than a noisy batch loss.
        let s = match self.smoothed {
            Some(s) => 0.95 * s + 0.05 * m.loss,
            None => m.loss,
        };
        self.smoothed = Some(s);
        self.bar.set_position(m.step as u64);
        self.bar.set_message(format!("loss {s:.4} lr {:.1e} |g| {:.2} {:.0} tok/s", m.lr, m.grad_norm, m.tokens_per_s));
    }

    fn on_eval(&mut self, e: &EvalRecord) {
        let acc = e.valid_token_accuracy.map_or(String::new(), |a| format!("  token acc {a:.3}"));
        self.bar.println(format!("step {:>6}  valid loss {:.4}{acc}", e.step, e.valid_loss));
    }

    fn on_checkpoint(&mut self, step: usize, dir: &Path) {
        tracing::info!(step, dir = %dir.display(), "checkpoint written");
    }
}
