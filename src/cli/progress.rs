//! A progress bar fed by the library's metrics sink; it also announces the
//! run when it starts. And bars for the library's long phases (decoding a
//! test set, scoring a shift curve), drawn under the training bar.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use shiftlm::train::{EvalRecord, MetricsSink, RunStart, StepMetrics};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// Every bar of the process, so that a phase's bar and the training bar
/// are drawn together instead of over each other.
pub fn bars() -> &'static MultiProgress {
    static BARS: OnceLock<MultiProgress> = OnceLock::new();
    BARS.get_or_init(MultiProgress::new)
}

/// Draws each of the library's phases ([`shiftlm::progress`]) as a bar
/// (a spinner when its length is unknown), cleared when it ends.
#[derive(Default)]
struct PhaseBars(Mutex<HashMap<u64, ProgressBar>>);

impl shiftlm::progress::Observer for PhaseBars {
    fn begin(&self, id: u64, what: &str, total: u64) {
        let (bar, template) = match total {
            0 => (ProgressBar::new_spinner(), "{spinner} [{elapsed_precise}] {msg}"),
            n => (ProgressBar::new(n), "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg} ETA {eta}"),
        };
        bar.set_style(ProgressStyle::with_template(template).expect("valid template").progress_chars("=> "));
        bar.set_message(what.to_string());
        let bar = bars().add(bar);
        if total == 0 {
            // Nothing to count: the spinner and the clock show it is alive.
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
        }
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(id, bar);
    }

    fn advance(&self, id: u64, done: u64) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            bar.set_position(done);
        }
    }

    fn end(&self, id: u64) {
        if let Some(bar) = self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            bar.finish_and_clear();
            bars().remove(&bar);
        }
    }
}

/// Shows the library's long phases as bars when standard error is a
/// terminal.
pub fn show_phases() {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        shiftlm::progress::set_observer(Some(Arc::new(PhaseBars::default())));
    }
}

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
            bars().remove(bar);
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
        let bar = bars().add(ProgressBar::new(r.steps as u64));
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
            // A hidden bar (standard error is not a terminal) prints nothing.
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    fn on_checkpoint(&mut self, step: usize, dir: &Path) {
        tracing::info!(step, dir = %dir.display(), "checkpoint written");
    }
}
