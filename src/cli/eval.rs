//! `shiftlm eval`

use super::report::{json_value, print_causal, print_examples, print_forecast, print_metrics};
use anyhow::Context;
use shiftlm::api::{self, EvalJob, EvalOutcome, Split};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Evaluate a checkpoint on its validation split (or on --data FILE).

Reports, over supervised tokens only (padding excluded): loss, perplexity,
token accuracy and macro F1 under teacher forcing. For an encoder–decoder also
exact match and token accuracy of free-running decoding (the model reads its
own outputs), so the exposure-bias gap is visible. For a language model,
--data FILE is evaluated whole, window by window.

For a forecaster: MAE, RMSE, MAPE, sMAPE and MASE of the model's forecasts
(rolling origins one step apart, horizon H each, free-running) beside
baselines on the same windows: naive (last value), seasonal naive (one season
ago), and three classical models fitted on the training rows only and run
with those parameters over each window's history: AR(p) with the order chosen
by AIC, ETS with its components chosen by AICc, and Theta. --data FILE.csv is
read with the columns the model was trained on (`value` for a model of the
built-in series) and scored whole (--split all; MASE is scaled by its first
70% of rows, and the classical models are fitted on them, as in training);
without it, the run's test split is scored. In --json the model's metrics are
top-level (`mase`, `rmse`, …) and the baselines' are under `baselines.naive`,
`baselines.seasonal_naive`, `baselines.ar`, `baselines.ets` and
`baselines.theta` (each classical one with `model`, e.g. ETS(M,Ad,N), or
null when it cannot be fitted).

Examples:
  shiftlm eval --checkpoint runs/small-rotate
  shiftlm eval --checkpoint runs/small-rotate --beam 4 --json
  shiftlm eval --checkpoint runs/mine --data test.tsv
  shiftlm eval --checkpoint runs/train --source test.en --target test.de --beam 5 --output hyp.de
  shiftlm eval --checkpoint runs/gpt-baby-input --data held_out.txt --json
  shiftlm eval --checkpoint runs/series-synthetic --json
  shiftlm eval --checkpoint runs/series-load --data load-2025.csv --season 24 --json
  shiftlm eval --checkpoint runs/cnn-digits --shift-curve 0..6 --json

For an image classifier: top-1 accuracy, macro F1 and the confusion matrix on
the run's test set (or on --data DIR: its test/ or t10k set if it has one,
else every image), `shift_curve` (accuracy with every image moved k pixels in
a random direction, zero fill) and `consistency` (how often the predictions
for two random shifts within ±2 and ±4 agree).

For a digit-strings model: `exact_match` and `cer` (character error rate) on the
run's test strips (or on strips made from the digits of --data DIR), with the
same shift curve and consistency, a strip counting only if all of it is read
right.
  shiftlm eval --checkpoint runs/digit-strings --shift-curve 0..4 --json

For a speech model: `accuracy` (keywords) or `exact_match`, `cer` and `wer`
(transcripts) on the run's held-out voices (or on the clips of --data DIR),
`shift_curve` ([{\"shift_ms\", \"accuracy\"}]: every clip moved that far either
way), `consistency` (two random offsets within ±200 ms agree), and the same
figures on the flite voices under `unseen_engine`.
  shiftlm eval --checkpoint runs/spoken-digits --shift-curve-ms 0,50,100,200,400 --json";

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Run folder (newest complete checkpoint) or one checkpoint-<step> folder.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Evaluate on this file instead of the validation split (pairs, or text for a language
    /// model; a folder of images for an image classifier).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Encoder–decoders: evaluate on parallel files, this one the source side (with --target).
    #[arg(long, value_name = "FILE", conflicts_with = "data", requires = "target")]
    pub source: Option<PathBuf>,
    /// Encoder–decoders: the target side of --source, line by line.
    #[arg(long, value_name = "FILE", requires = "source")]
    pub target: Option<PathBuf>,
    /// Encoder–decoders: write every free-running output here, one line per pair, in the
    /// input's order (detokenised: ready for `shiftlm score` or sacrebleu).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Replace --output if it exists.
    #[arg(long)]
    pub force: bool,
    /// Encoder–decoders: beam width for free-running decoding (default 1: greedy).
    #[arg(long, value_name = "K")]
    pub beam: Option<usize>,
    /// Encoder–decoders: beam length penalty α (0: none; GNMT's ((5+len)/6)^α; default 0.6).
    #[arg(long, value_name = "A")]
    pub length_penalty: Option<f32>,
    /// Encoder–decoders: decoded examples to show (default 5).
    #[arg(long, value_name = "N")]
    pub show: Option<usize>,
    /// End with one JSON line of metrics on standard output.
    #[arg(long)]
    pub json: bool,
    /// Forecasting: season length for seasonal naive and MASE (default: the run's, or inferred).
    #[arg(long, value_name = "N", help_heading = "Forecasting")]
    pub season: Option<usize>,
    /// Forecasting: which rows' forecasts to score: test, valid, or all (default: test for
    /// the run's own data, all for --data FILE.csv).
    #[arg(long, value_name = "SPLIT", value_parser = ["test", "valid", "all"], help_heading = "Forecasting")]
    pub split: Option<String>,
    /// Images and digit strips: measure accuracy (exact match for strips) with every
    /// image moved 0..K pixels (a random direction each; default 0..6).
    #[arg(long, value_name = "0..K", value_parser = parse_curve, help_heading = "Images")]
    pub shift_curve: Option<usize>,
    /// Speech: measure recognition with every clip moved by each of these offsets in ms
    /// (either way, drawn per clip; default 0,50,100,200,400).
    #[arg(long, value_name = "MS,MS,…", value_delimiter = ',', help_heading = "Speech")]
    pub shift_curve_ms: Option<Vec<u32>>,
}

fn parse_curve(s: &str) -> Result<usize, String> {
    let k = s.strip_prefix("0..").map(|k| k.strip_prefix('=').unwrap_or(k)).unwrap_or(s);
    k.trim()
        .parse::<usize>()
        .ok()
        .filter(|&k| k <= shiftlm::data::augment::MAX_SHIFT)
        .ok_or_else(|| format!("{s:?}: write 0..K with K a whole number of pixels up to 64, e.g. 0..6"))
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    if let Some(out) = &a.output {
        let inputs: Vec<&std::path::Path> =
            [&a.data, &a.source, &a.target].into_iter().flatten().map(|p| p.as_path()).collect();
        shiftlm::io::check_new(out, a.force, &inputs)?;
    }
    let job = EvalJob {
        checkpoint: a.checkpoint.clone(),
        data: a.data.clone().or(a.source.clone()),
        target: a.target.clone(),
        beam: a.beam,
        length_penalty: a.length_penalty,
        show: a.show,
        season: a.season,
        split: a.split.as_deref().map(|s| match s {
            "valid" => Split::Valid,
            "all" => Split::All,
            _ => Split::Test,
        }),
        shift_curve: a.shift_curve,
        shift_curve_ms: a.shift_curve_ms.clone(),
    };
    let r = api::evaluate(&job).with_context(|| format!("evaluating {}", a.checkpoint.display()))?;
    let extra = serde_json::json!({ "checkpoint": a.checkpoint, "steps": r.step, "loaded": r.dir });
    if a.output.is_some() && !matches!(r.outcome, EvalOutcome::Pairs { .. }) {
        anyhow::bail!("--output writes an encoder–decoder's outputs; {} is not one", a.checkpoint.display());
    }
    let line = match &r.outcome {
        EvalOutcome::Panel { report, split } => {
            super::report::print_panel(report, &format!("{} split", split.name()));
            json_value(report, extra)
        }
        EvalOutcome::Forecast { report, split, rows } => {
            print_forecast(report, &format!("{} split (rows {}..{})", split.name(), rows.start, rows.end));
            json_value(report, extra)
        }
        EvalOutcome::Causal(report) => {
            print_causal(report);
            json_value(report, extra)
        }
        EvalOutcome::Pairs { report, examples, hypotheses, decode_s } => {
            print_metrics(report);
            print_examples(examples);
            let per_s = report.examples as f64 / decode_s.max(1e-9);
            let how = a.beam.filter(|&b| b > 1).map_or("greedy".to_string(), |b| format!("beam {b}"));
            eprintln!("decoded {} sources in {decode_s:.2} s ({per_s:.1} sentences/s, {how})", report.examples);
            if let Some(out) = &a.output {
                // One line per pair, whatever the model emits.
                let lines: Vec<String> = hypotheses.iter().map(|h| h.replace(['\n', '\r'], " ")).collect();
                let mut text = lines.join("\n");
                text.push('\n');
                shiftlm::io::write_atomic(out, text.as_bytes())?;
                eprintln!("wrote {} outputs to {}", hypotheses.len(), out.display());
            }
            let mut extra = extra;
            extra["decode_s"] = serde_json::json!(decode_s);
            extra["sentences_per_s"] = serde_json::json!(per_s);
            json_value(report, extra)
        }
        EvalOutcome::Image(report) => {
            super::report::print_image(report, "test set");
            json_value(report, extra)
        }
        EvalOutcome::Strips(report) => {
            super::report::print_strips(report, "test strips");
            json_value(report, extra)
        }
        EvalOutcome::Speech(report) => {
            super::report::print_speech(report, "test clips");
            json_value(report, extra)
        }
    };
    if a.json {
        println!("{line}");
    }
    Ok(())
}
