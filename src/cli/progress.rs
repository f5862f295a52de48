//! A progress bar fed by the library's metrics sink; it also announces the
//! run when it starts.

use indicatif::{ProgressBar, ProgressStyle};
use shiftlm::train::{EvalRecord, MetricsSink, RunStart, StepMetrics};
use std::path::Path;

#[derive(Default)]
pub struct Progress {
    bar: Option<ProgressBar>,
    smoothed: Option<f32>,
    /// What the throughput counts ("tok", "img", "val").
    unit: &'static str,
}

impl Progress {
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl MetricsSink for Progress {
    fn on_start(&mut self, r: &RunStart) {
        self.unit = match r.unit {
            "images" => "img",
            "values" => "val",
            _ => "tok",
        };
        match &r.from {
            Some(from) => eprintln!(
                "fine-tuning {} of {} parameters from {} on {}, {} steps of {} → {}",
                r.trainable,
                r.params,
                from.display(),
                r.data,
                r.steps,
                r.batch_size,
                r.run.display()
            ),
            None => {
                if r.step > 0 {
                    eprintln!("resuming {} at step {} of {}", r.run.display(), r.step, r.steps);
                }
                eprintln!(
                    "training {} parameters on {}, {} steps of {}×{} → {}",
                    r.params,
                    r.data,
                    r.steps,
                    r.grad_accum,
                    r.batch_size,
                    r.run.display()
                );
            }
        }
        let bar = ProgressBar::new(r.steps as u64);
        bar.set_position(r.step as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        self.bar = Some(bar);
    }

    fn on_step(&mut self, m: &StepMetrics) {
        // An exponential moving average reads better than a noisy batch loss.
        let s = match self.smoothed {
            Some(s) => 0.95 * s + 0.05 * m.loss,
            None => m.loss,
        };
        self.smoothed = Some(s);
        if let Some(bar) = &self.bar {
            bar.set_position(m.step as u64);
            bar.set_message(format!(
                "loss {s:.4} lr {:.1e} |g| {:.2} {:.0} {}/s",
                m.lr, m.grad_norm, m.tokens_per_s, self.unit
            ));
        }
    }

    fn on_eval(&mut self, e: &EvalRecord) {
        let acc = e.valid_token_accuracy.map_or(String::new(), |a| format!("  token acc {a:.3}"));
        let bleu = e.valid_bleu.map_or(String::new(), |b| format!("  BLEU {b:.2}"));
        let line = format!("step {:>6}  valid loss {:.4}{acc}{bleu}", e.step, e.valid_loss);
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn on_checkpoint(&mut self, step: usize, dir: &Path) {
        tracing::info!(step, dir = %dir.display(), "checkpoint written");
    }
}
