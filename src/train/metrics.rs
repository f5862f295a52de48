//! Where training reports: the [`MetricsSink`] trait and the sinks that write
//! `RUN/metrics.jsonl` (one JSON object per step or evaluation) and
//! TensorBoard scalars in `RUN/tb/`. The binary adds a progress bar.

use super::tensorboard::TensorBoardWriter;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// One optimizer step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// The step, counting from 1.
    pub step: usize,
    /// Completed passes over the training data.
    pub epoch: usize,
    /// Mean cross-entropy over this step's supervised tokens.
    pub loss: f32,
    /// Learning rate of this step, after warmup and decay.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Supervised tokens in this step (all micro-batches).
    pub tokens: usize,
    /// Supervised tokens per second since this process started training.
    pub tokens_per_s: f64,
    /// Seconds since this process started training.
    pub elapsed_s: f64,
}

/// One evaluation on the validation split (teacher forced; a forecaster's
/// runs free, and its loss is over scaled values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// The step evaluated at.
    pub step: usize,
    /// Mean loss per supervised token on the validation split (a forecaster: per forecast
    /// value, on scaled values).
    pub valid_loss: f64,
    /// Next-token accuracy; `None` for a forecaster, which predicts values.
    pub valid_token_accuracy: Option<f64>,
    /// BLEU of greedy decoding of the validation pairs (with `select_by = "bleu"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_bleu: Option<f64>,
}

/// What a run is about to do, reported once before its first step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunStart {
    /// Every parameter of the model.
    pub params: usize,
    /// The parameters that train (fewer when some are frozen or LoRA is on).
    pub trainable: usize,
    /// A one-line summary of the data, e.g. "20000 pairs (500 held out)".
    pub data: String,
    /// The step the run starts from (0 unless resumed).
    pub step: usize,
    /// The step the run trains to.
    pub steps: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// The run folder.
    pub run: PathBuf,
    /// The model a fine-tune starts from.
    pub from: Option<PathBuf>,
    /// What `tokens_per_s` counts: `tokens`, `images` or `values`.
    pub unit: &'static str,
}

/// Receives training events. Every method has a no-op default.
pub trait MetricsSink {
    /// Called once, before the first step.
    fn on_start(&mut self, _r: &RunStart) {}
    /// Called after each step that updated the weights (not for skipped batches).
    fn on_step(&mut self, _m: &StepMetrics) {}
    /// Called after each evaluation on the validation split.
    fn on_eval(&mut self, _e: &EvalRecord) {}
    /// Called after checkpoint `dir` of step `step` is written.
    fn on_checkpoint(&mut self, _step: usize, _dir: &Path) {}
    /// Called before a checkpoint is written: make what was logged durable.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Drops every event: the sink of a data-parallel rank other than 0.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl MetricsSink for NullSink {}

/// Forwards every event to several sinks.
pub struct Tee<'a>(pub Vec<&'a mut dyn MetricsSink>);

impl MetricsSink for Tee<'_> {
    fn on_start(&mut self, r: &RunStart) {
        self.0.iter_mut().for_each(|s| s.on_start(r));
    }
    fn on_step(&mut self, m: &StepMetrics) {
        self.0.iter_mut().for_each(|s| s.on_step(m));
    }
    fn on_eval(&mut self, e: &EvalRecord) {
        self.0.iter_mut().for_each(|s| s.on_eval(e));
    }
    fn on_checkpoint(&mut self, step: usize, dir: &Path) {
        self.0.iter_mut().for_each(|s| s.on_checkpoint(step, dir));
    }
    fn flush(&mut self) -> Result<()> {
        self.0.iter_mut().try_for_each(|s| s.flush())
    }
}

/// Keeps every step's loss (for tests and the library's own checks).
#[derive(Debug, Default)]
pub struct LossHistory(pub Vec<f32>);

impl MetricsSink for LossHistory {
    fn on_step(&mut self, m: &StepMetrics) {
        self.0.push(m.loss);
    }
}

/// A line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A training step.
    Train(StepMetrics),
    /// An evaluation.
    Eval(EvalRecord),
}

impl Record {
    /// The step the record belongs to.
    pub fn step(&self) -> usize {
        match self {
            Record::Train(m) => m.step,
            Record::Eval(e) => e.step,
        }
    }
}

/// Reads `metrics.jsonl`. A torn last line (a crash mid-write: no newline
/// at its end) is skipped; any other line that is not a record is an error
/// naming its line, so that nothing is silently dropped.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let text = crate::io::read(path)?;
    let text = String::from_utf8_lossy(&text);
    let torn = !text.is_empty() && !text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            Err(_) if torn && i + 1 == lines.len() => {}
            Err(_) if line.trim().is_empty() => {}
            Err(e) => {
                return Err(Error::BadLine {
                    path: path.to_path_buf(),
                    line: i + 1,
                    msg: format!("not a metrics record: {e}"),
                })
            }
        }
    }
    Ok(out)
}

/// Appends to `RUN/metrics.jsonl`.
pub struct JsonlSink {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    error: Option<Error>,
}

impl JsonlSink {
    /// Opens `path` for appending. Records after `resume_step` (logged after
    /// the checkpoint a run resumes from) are dropped first, so the log
    /// matches the run that continues.
    pub fn open(path: &Path, resume_step: usize) -> Result<Self> {
        if path.exists() {
            let kept: Vec<String> = read_jsonl(path)?
                .into_iter()
                .filter(|r| r.step() <= resume_step)
                .map(|r| serde_json::to_string(&r).expect("record serialises"))
                .collect();
            let mut text = kept.join("\n");
            if !text.is_empty() {
                text.push('\n');
            }
            crate::io::write_atomic(path, text.as_bytes())?;
        }
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
        Ok(Self { file: std::io::BufWriter::new(f), path: path.to_path_buf(), error: None })
    }

    fn write(&mut self, r: &Record) {
        let mut line = serde_json::to_string(r).expect("record serialises");
        line.push('\n');
        if let Err(e) = self.file.write_all(line.as_bytes()) {
            self.error.get_or_insert(Error::io(&self.path, e));
        }
    }
}

impl MetricsSink for JsonlSink {
    fn on_step(&mut self, m: &StepMetrics) {
        self.write(&Record::Train(m.clone()));
    }
    fn on_eval(&mut self, e: &EvalRecord) {
        self.write(&Record::Eval(e.clone()));
    }
    fn flush(&mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.file.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Scalars for TensorBoard: `train/loss`, `train/lr`, `train/grad_norm`,
/// `valid/loss`, `valid/token_accuracy`.
pub struct TensorBoardSink {
    writer: TensorBoardWriter,
    error: Option<Error>,
}

impl TensorBoardSink {
    /// A sink writing a new event file in `dir` (created if needed).
    pub fn create(dir: &Path) -> Result<Self> {
        Ok(Self { writer: TensorBoardWriter::create(dir)?, error: None })
    }

    fn put(&mut self, tag: &str, step: usize, v: f32) {
        if let Err(e) = self.writer.scalar(tag, step, v) {
            self.error.get_or_insert(e);
        }
    }
}

impl MetricsSink for TensorBoardSink {
    fn on_step(&mut self, m: &StepMetrics) {
        self.put("train/loss", m.step, m.loss);
        self.put("train/lr", m.step, m.lr as f32);
        self.put("train/grad_norm", m.step, m.grad_norm);
    }
    fn on_eval(&mut self, e: &EvalRecord) {
        self.put("valid/loss", e.step, e.valid_loss as f32);
        if let Some(a) = e.valid_token_accuracy {
            self.put("valid/token_accuracy", e.step, a as f32);
        }
        if let Some(b) = e.valid_bleu {
            self.put("valid/bleu", e.step, b as f32);
        }
    }
    fn flush(&mut self) -> Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval_line(step: usize) -> String {
        serde_json::to_string(&Record::Eval(EvalRecord {
            step,
            valid_loss: 1.0,
            valid_token_accuracy: None,
            valid_bleu: None,
        }))
        .unwrap()
    }

    #[test]
    fn only_a_torn_last_line_is_skipped_and_nothing_is_rewritten_away() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("metrics.jsonl");
        std::fs::write(&p, format!("{}\n{}\n{{\"kind\":\"ev", eval_line(1), eval_line(2))).unwrap();
        assert_eq!(read_jsonl(&p).unwrap().len(), 2); // a crash mid-write
        let corrupt = format!("{}\nnot json\n{}\n", eval_line(1), eval_line(2));
        std::fs::write(&p, &corrupt).unwrap();
        let e = read_jsonl(&p).unwrap_err().to_string();
        assert!(e.contains("metrics.jsonl:2"), "{e}");
        assert!(JsonlSink::open(&p, 5).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), corrupt, "the file is left as it was");
    }
}
