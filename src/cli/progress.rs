//! A progress bar fed by the library's metrics sink.

use indicatif::{ProgressBar, ProgressStyle};
use shiftlm::eval::TeacherForcedStats;
use shiftlm::train::{MetricsSink, StepMetrics};

pub struct Progress {
    bar: ProgressBar,
    smoothed: Option<f32>,
    pub evals: Vec<(usize, f64, f64)>,
}

impl Progress {
    pub fn new(steps: usize) -> Self {
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        Self { bar, smoothed: None, evals: Vec::new() }
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

    fn on_eval(&mut self, step: usize, m: &TeacherForcedStats) {
        self.bar.println(format!("step {step:>6}  valid loss {:.4}  token acc {:.3}", m.loss(), m.accuracy()));
        self.evals.push((step, m.loss(), m.accuracy()));
    }
}
