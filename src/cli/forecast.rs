//! `shiftlm forecast`

use anyhow::Context;
use shiftlm::chart::{Chart, Series};
use shiftlm::data::series::extrapolate_timestamps;
use std::fmt::Write;
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
  shiftlm forecast --checkpoint runs/series-co2 --data data/co2_mauna_loa_weekly.csv --origin 2000
  shiftlm forecast --checkpoint runs/series-load --data load.csv --out next-day.csv --plot next-day.png --json";

#[derive(clap::Args, Debug)]
pub struct ForecastArgs {
    /// Run folder (newest complete checkpoint) or one checkpoint-<step> folder of a forecaster.
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
}

pub fn run(a: ForecastArgs) -> anyhow::Result<()> {
    let dev = candle_core::Device::Cpu;
    let ck = shiftlm::checkpoint::load(&a.checkpoint, &dev)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    let model = ck.model.forecaster().ok_or_else(|| {
        anyhow::anyhow!("{}: not a forecaster (train one with --task series or --data FILE.csv)", ck.dir.display())
    })?;
    let s = super::eval::checkpoint_series(&ck, a.data.as_deref(), None)?;
    let (l, h, n, len) = (model.config().context, model.config().horizon, s.n_targets, s.series.len());
    let origin = a.origin.unwrap_or(len);
    if origin < l || origin > len {
        anyhow::bail!("--origin {origin}: the model needs {l} rows of history and the data has {len} rows");
    }
    let pred = shiftlm::eval::forecast::forecast_at(model, &s, origin, &dev)?; // (H, N)

    // Timestamps: the file's where it has them, then its last interval continued.
    let stamps: Vec<String> = match &s.series.timestamps {
        Some(ts) => {
            let mut v: Vec<String> = ts[origin..len.min(origin + h)].to_vec();
            let missing = h - v.len();
            v.extend(extrapolate_timestamps(&ts[..len], missing));
            v
        }
        None => (origin..origin + h).map(|r| r.to_string()).collect(),
    };
    let names = &s.series.names[..n];
    let known = len.min(origin + h) - origin;
    let mut csv = String::from("step,timestamp");
    names.iter().for_each(|t| write!(csv, ",{}", quote(t)).unwrap());
    if known > 0 {
        names.iter().for_each(|t| write!(csv, ",{}", quote(&format!("actual_{t}"))).unwrap());
    }
    csv.push('\n');
    for step in 0..h {
        write!(csv, "{},{}", step + 1, quote(&stamps[step])).unwrap();
        (0..n).for_each(|c| write!(csv, ",{}", pred[step * n + c]).unwrap());
        if known > 0 {
            for c in 0..n {
                match s.series.columns[c].get(origin + step).filter(|_| step < known) {
                    Some(v) => write!(csv, ",{v}").unwrap(),
                    None => csv.push(','),
                }
            }
        }
        csv.push('\n');
    }
    let run = if ck.dir.join("manifest.json").exists() { ck.dir.parent().unwrap_or(&ck.dir) } else { &ck.dir };
    let out = a.out.clone().unwrap_or_else(|| run.join("forecast.csv"));
    let png = a.plot.clone().unwrap_or_else(|| out.with_extension("png"));
    shiftlm::checkpoint::write_atomic(&out, csv.as_bytes())?;

    let history = a.history.unwrap_or(l.max(3 * h)).min(origin);
    type Line = (String, Vec<(f64, f64)>, [u8; 3]); // label, points, colour
    let mut lines: Vec<Line> = Vec::new();
    for (c, name) in names.iter().enumerate() {
        let col = &s.series.columns[c];
        let name = if n > 1 { format!(" ({name})") } else { String::new() };
        let point = |r: usize| (r as f64, col[r] as f64);
        lines.push((format!("history{name}"), (origin - history..origin).map(point).collect(), [90, 90, 90]));
        // The forecast line starts from the last observed value.
        let fc =
            std::iter::once(point(origin - 1)).chain((0..h).map(|i| ((origin + i) as f64, pred[i * n + c] as f64)));
        lines.push((format!("forecast{name}"), fc.collect(), [214, 39, 40]));
        if known > 0 {
            lines.push((format!("actual{name}"), (origin..origin + known).map(point).collect(), [31, 119, 180]));
        }
    }
    let at = s.series.timestamps.as_ref().and_then(|t| t.get(origin - 1)).map_or(String::new(), |t| format!(" ({t})"));
    let kind = format!("{:?}", model.config().kind).to_lowercase();
    let chart = Chart {
        title: &format!("{}: {kind} forecast of {h} steps after row {origin}{at}", names.join(", ")),
        x_label: "row of the data",
        y_label: &names.join(", "),
        series: lines
            .iter()
            .map(|(label, points, color)| Series {
                label,
                points: points.clone(),
                color: *color,
                markers: !label.starts_with("history"),
            })
            .collect(),
        vlines: vec![origin as f64 - 0.5],
        width: 1000,
        height: 500,
    };
    shiftlm::checkpoint::write_atomic(&png, &chart.to_png())?;
    eprintln!("forecast of {h} steps after row {origin} (history of {origin} rows; {known} actual values known)");
    for step in 0..h.min(8) {
        let vals: Vec<String> = (0..n).map(|c| format!("{:.4}", pred[step * n + c])).collect();
        eprintln!("  step {:>3}  {:<20} {}", step + 1, stamps[step], vals.join("  "));
    }
    if h > 8 {
        eprintln!("  … ({} more in the CSV)", h - 8);
    }
    eprintln!("wrote {} and {}", out.display(), png.display());
    if a.json {
        let v = serde_json::json!({
            "csv": out, "png": png, "origin": origin, "horizon": h, "targets": names,
            "timestamps": stamps, "forecast": pred, "actual_known": known,
        });
        println!("{v}");
    }
    Ok(())
}

/// A CSV field, quoted when it holds a comma, quote or newline.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
