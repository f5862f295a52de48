//! `shiftlm forecast`

use anyhow::Context;
use shiftlm::api::{self, ForecastJob};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Forecast the next H values of a series with a trained forecaster.

The model reads the last L rows before the forecast origin (L and H are the
checkpoint's context and horizon) and rolls its forecast out over the
horizon. By default the origin is the end of the file: a forecast of the
unknown future. With --origin N the first N rows are the history and the rows
after it are shown as the actual values, to see how a forecast would have
done.

Writes a CSV (step, timestamp, one column per target, and actual_<target>
where the actual value is known; future timestamps continue the file's last
interval when they are numbers or dates) and a PNG of the history, the
forecast and the actual values. --data is read with the columns the model was
trained on and scaled with the checkpoint's scaler; without it, the run's own
data is used.

Examples:
  shiftlm forecast --checkpoint runs/series-synthetic
  shiftlm forecast --checkpoint runs/nile-auto                  # a --model auto run: its choice
  shiftlm forecast --checkpoint runs/stores --series s1         # one series of a model trained with --id
  shiftlm forecast --checkpoint runs/series-co2 --data data/co2_mauna_loa_weekly.csv --origin 2000
  shiftlm forecast --checkpoint runs/series-load --data load.csv --out next-day.csv --plot next-day.png --json";

#[derive(clap::Args, Debug)]
pub struct ForecastArgs {
    /// Run folder (newest complete checkpoint) or one checkpoint-<step> folder of a
    /// forecaster, or the run folder of `train --ensemble N` or `train --model auto`.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// CSV file with the columns the model was trained on (default: the run's own data).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Rows of history before the forecast (default: all of them, forecasting the future).
    #[arg(long, value_name = "N")]
    pub origin: Option<usize>,
    /// Forecast CSV to write (default: forecast.csv in the run folder).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// PNG to draw (default: the --out path with .png).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// History rows drawn before the origin (default: the larger of the context and 3 horizons).
    #[arg(long, value_name = "N")]
    pub history: Option<usize>,
    /// End with one JSON line (paths, origin, forecast values) on standard output.
    #[arg(long)]
    pub json: bool,
    /// Replace the CSV and PNG if they exist (without it, an existing file is an error; the data file is never replaced).
    #[arg(long)]
    pub force: bool,
    /// The series to forecast, by its id, for a model trained on many series (--id COLUMN).
    #[arg(long, value_name = "ID")]
    pub series: Option<String>,
}

pub fn run(a: ForecastArgs) -> anyhow::Result<()> {
    let job = ForecastJob {
        checkpoint: a.checkpoint.clone(),
        data: a.data.clone(),
        origin: a.origin,
        out: a.out.clone(),
        plot: a.plot.clone(),
        history: a.history,
        force: a.force,
        series: a.series.clone(),
    };
    let f = api::forecast(&job).with_context(|| format!("forecasting with {}", a.checkpoint.display()))?;
    let (h, n) = (f.horizon, f.targets.len());
    eprintln!(
        "forecast of {h} steps after row {} (history of {} rows; {} actual values known)",
        f.origin, f.origin, f.actual_known
    );
    for step in 0..h.min(8) {
        let vals: Vec<String> = (0..n).map(|c| format!("{:.4}", f.forecast[step * n + c])).collect();
        eprintln!("  step {:>3}  {:<20} {}", step + 1, f.timestamps[step], vals.join("  "));
    }
    if h > 8 {
        eprintln!("  … ({} more in the CSV)", h - 8);
    }
    eprintln!("wrote {} and {}", f.csv.display(), f.png.display());
    if a.json {
        println!("{}", serde_json::to_value(&f)?);
    }
    Ok(())
}
