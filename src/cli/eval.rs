//! `shiftlm eval`

use super::report::{causal_report, json_line, json_value, print_causal, print_examples, print_metrics};
use anyhow::Context;
use shiftlm::config::DataConfig;
use shiftlm::data::loader::windows;
use shiftlm::data::Dataset;
use shiftlm::decode::{DecodeOptions, Strategy};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Evaluate a checkpoint on its validation split (or on --data FILE).

Reports, over supervised tokens only (padding excluded): loss, perplexity,
token accuracy and macro F1 under teacher forcing. For an encoder–decoder also
exact match and token accuracy of free-running decoding (the model reads its
own outputs), so the exposure-bias gap is visible. For a language model,
--data FILE is evaluated whole, window by window.

For a forecaster: MAE, RMSE, MAPE, sMAPE and MASE of the model's forecasts
(rolling origins one step apart, horizon H each, free-running) beside the
naive (last value) and seasonal-naive (one season ago) baselines on the same
windows. --data FILE.csv is read with the columns the model was trained on
(`value` for a model of the built-in series) and scored whole (--split all;
MASE is scaled by its first 70% of rows, as in training); without it, the
run's test split is scored. In --json the model's
metrics are top-level (`mase`, `rmse`, …) and the baselines' are under
`baselines.naive` and `baselines.seasonal_naive`.

Examples:
  shiftlm eval --checkpoint runs/small-rotate
  shiftlm eval --checkpoint runs/small-rotate --beam 4 --json
  shiftlm eval --checkpoint runs/mine --data test.tsv
  shiftlm eval --checkpoint runs/gpt-baby-input --data held_out.txt --json
  shiftlm eval --checkpoint runs/series-synthetic --json
  shiftlm eval --checkpoint runs/series-load --data load-2025.csv --season 24 --json";

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// Run folder (newest complete checkpoint) or one checkpoint-<step> folder.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Evaluate on this file instead of the validation split (pairs, or text for a language model).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Beam width for free-running decoding (1: greedy).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub beam: usize,
    /// Beam length penalty α (0: none; GNMT's ((5+len)/6)^α).
    #[arg(long, default_value_t = 0.6, value_name = "A")]
    pub length_penalty: f32,
    /// Decoded examples to show.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub show: usize,
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
}

/// The series a forecaster checkpoint is evaluated or run on: its own data,
/// or `file` read with the columns it was trained on, scaled with its scaler.
pub(super) fn checkpoint_series(
    ck: &shiftlm::checkpoint::Loaded,
    file: Option<&std::path::Path>,
    season: Option<usize>,
) -> anyhow::Result<shiftlm::data::series::SeriesData> {
    use shiftlm::data::series::{SeriesData, SeriesSpec};
    let (DataConfig::Series(d), Some(m)) = (&ck.config.data, ck.model.forecaster()) else {
        anyhow::bail!("{}: not a forecaster checkpoint", ck.dir.display());
    };
    let mut d = d.clone();
    if let Some(path) = file {
        let spec = d.csv.clone().unwrap_or(SeriesSpec {
            path: path.to_path_buf(),
            targets: vec!["value".into()],
            covariates: Vec::new(),
            timestamp: None,
            fill: Default::default(),
        });
        d.csv = Some(SeriesSpec { path: path.to_path_buf(), ..spec });
    } else if let Some(spec) = d.csv.as_ref().filter(|s| !s.path.exists()) {
        anyhow::bail!("{}: the training data file is gone; pass --data FILE.csv", spec.path.display());
    }
    d.season = season.or(d.season);
    Ok(SeriesData::load(&d, ck.config.train.seed, m.config().scaler.as_ref())?)
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let dev = candle_core::Device::Cpu;
    let ck = shiftlm::checkpoint::load(&a.checkpoint, &dev)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    let extra = serde_json::json!({ "checkpoint": a.checkpoint, "steps": ck.step, "loaded": ck.dir });
    if let Some(model) = ck.model.forecaster() {
        let s = checkpoint_series(&ck, a.data.as_deref(), a.season)?;
        let split = a.split.clone().unwrap_or_else(|| if a.data.is_some() { "all" } else { "test" }.into());
        let rows = match split.as_str() {
            "valid" => s.valid.clone(),
            "all" => 0..s.series.len(),
            _ => s.test.clone(),
        };
        let report = shiftlm::eval::forecast::evaluate(model, &s, &rows, &dev)?;
        if report.windows == 0 {
            anyhow::bail!(
                "the {split} split has no window of context {} + horizon {}",
                model.config().context,
                report.horizon
            );
        }
        super::report::print_forecast(&report, &format!("{split} split (rows {}..{})", rows.start, rows.end));
        if a.json {
            println!("{}", json_value(&report, extra));
        }
        return Ok(());
    }
    if a.season.is_some() || a.split.is_some() {
        anyhow::bail!("--season and --split apply to forecasters");
    }
    if let Some(ctx) = ck.config.model.context() {
        let tokens = match &a.data {
            Some(path) => ck.tokenizer.encode(&shiftlm::data::read_utf8(path)?),
            None => match shiftlm::data::load(&ck.config.data, ck.config.train.seed, Some(&ck.tokenizer))
                .context("loading the run's data (pass --data FILE to evaluate other text)")?
                .0
            {
                Dataset::Text { valid, .. } => valid,
                Dataset::Pairs(_) | Dataset::Series(_) => anyhow::bail!("a language model checkpoint with paired data"),
            },
        };
        if tokens.len() <= ctx {
            anyhow::bail!("the evaluation text has {} tokens; it needs more than the context of {ctx}", tokens.len());
        }
        let batches = windows(&tokens, ck.config.train.batch_size, ctx, 0);
        let stats = shiftlm::eval::teacher_forced(&ck.model, batches.into_iter(), &dev)?;
        let report = causal_report(&stats);
        print_causal(&report);
        if a.json {
            println!("{}", json_value(&report, extra));
        }
        return Ok(());
    }
    let pairs = match &a.data {
        Some(path) => {
            let raw = shiftlm::data::pairs::read_pairs(path)?;
            shiftlm::data::pairs::encode(&ck.tokenizer, &raw, &[]).train
        }
        None => {
            let data = match &ck.config.data {
                // A file the run was trained on may have moved; say so clearly.
                DataConfig::File { path, .. } if !path.exists() => {
                    anyhow::bail!("{}: the training data file is gone; pass --data FILE", path.display())
                }
                d => d.clone(),
            };
            match shiftlm::data::load(&data, ck.config.train.seed, Some(&ck.tokenizer))?.0 {
                Dataset::Pairs(s) => s.valid,
                Dataset::Text { .. } | Dataset::Series(_) => {
                    anyhow::bail!("an encoder–decoder checkpoint with text data")
                }
            }
        }
    };
    let strategy =
        if a.beam > 1 { Strategy::Beam { width: a.beam, length_penalty: a.length_penalty } } else { Strategy::Greedy };
    let opts = DecodeOptions { strategy, max_len: 2 * ck.config.max_target_len + 2 };
    let (report, outputs) = shiftlm::eval::evaluate(&ck.model, &pairs, 256, &opts, &dev)?;
    print_metrics(&report);
    print_examples(&ck.tokenizer, &pairs, &outputs, a.show);
    if a.json {
        println!("{}", json_line(&report, extra));
    }
    Ok(())
}
