//! Forecast jobs: a forecaster reads the last L rows before an origin and
//! forecasts the next H; the result is written as a CSV (with the actual
//! values where they are known) and drawn as a PNG.

use super::evaluate::checkpoint_series;
use crate::chart::{Chart, Series as ChartSeries};
use crate::data::series::{extrapolate_timestamps, Series};
use crate::error::{Error, Result};
use candle_core::Device;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;

/// What to forecast, and where to write it.
#[derive(Debug, Clone)]
pub struct ForecastJob {
    /// A forecaster's run folder or checkpoint folder.
    pub checkpoint: PathBuf,
    /// A CSV with the columns the model was trained on (default: the run's own data).
    pub data: Option<PathBuf>,
    /// Rows of history before the forecast (default: all, forecasting the future).
    pub origin: Option<usize>,
    /// The CSV to write (default: `forecast.csv` in the run folder).
    pub out: Option<PathBuf>,
    /// The PNG to draw (default: the CSV's path with `.png`).
    pub plot: Option<PathBuf>,
    /// History rows drawn before the origin (default: the larger of the context and 3 horizons).
    pub history: Option<usize>,
    /// Replace the CSV and the PNG if they exist (never the data file itself).
    pub force: bool,
}

/// A forecast, as written.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastOutput {
    /// The CSV written.
    pub csv: PathBuf,
    /// The chart written.
    pub png: PathBuf,
    /// Rows of history before the forecast; it covers rows `origin..origin + horizon`.
    pub origin: usize,
    /// Steps forecast (H).
    pub horizon: usize,
    /// Names of the target columns (N).
    pub targets: Vec<String>,
    /// One per step: the file's own, then its last interval continued.
    pub timestamps: Vec<String>,
    /// (H, N) row-major: step by step, a value per target.
    pub forecast: Vec<f32>,
    /// Steps whose actual value the data holds.
    pub actual_known: usize,
}

/// Forecasts, writes the CSV and the PNG, and returns what it wrote.
pub fn forecast(job: &ForecastJob) -> Result<ForecastOutput> {
    let dev = Device::Cpu;
    let ck = crate::checkpoint::load(&job.checkpoint, &dev)?;
    let model = ck.model.forecaster().ok_or_else(|| Error::Checkpoint {
        path: ck.dir.clone(),
        msg: "not a forecaster (train one with --task series or --data FILE.csv)".into(),
    })?;
    let s = checkpoint_series(&ck, job.data.as_deref(), None)?;
    let (l, h, n, len) = (model.config().context, model.config().horizon, s.n_targets, s.series.len());
    let origin = job.origin.unwrap_or(len);
    if origin < l || origin > len {
        return Err(Error::setting(format!(
            "--origin {origin}: the model needs {l} rows of history and the data has {len} rows"
        )));
    }
    let pred = crate::eval::forecast::forecast_at(model, &s, origin, &dev)?; // (H, N)

    // Timestamps: the file's where it has them, then its last interval continued.
    let stamps: Vec<String> = match &s.series.timestamps {
        Some(ts) => {
            let mut v: Vec<String> = ts[origin..len.min(origin + h)].to_vec();
            let missing = h - v.len();
            v.extend(extrapolate_timestamps(&ts[..len], missing)?);
            v
        }
        None => (origin..origin + h).map(|r| r.to_string()).collect(),
    };
    let names = &s.series.names[..n];
    let known = len.min(origin + h) - origin;
    let csv = forecast_csv(&s.series, names, &stamps, &pred, origin, known);
    let run =
        if ck.dir.join(crate::checkpoint::MANIFEST).exists() { ck.dir.parent().unwrap_or(&ck.dir) } else { &ck.dir };
    let out = job.out.clone().unwrap_or_else(|| run.join("forecast.csv"));
    let png = job.plot.clone().unwrap_or_else(|| out.with_extension("png"));
    let data = job.data.clone().or_else(|| match &ck.config.data {
        crate::config::DataConfig::Series(d) => d.csv.as_ref().map(|c| c.path.clone()),
        _ => None,
    });
    let inputs: Vec<&std::path::Path> = data.iter().map(|p| p.as_path()).collect();
    let same = |a: &std::path::Path, b: &std::path::Path| match (std::path::absolute(a), std::path::absolute(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if same(&out, &png) {
        return Err(Error::setting(format!("{}: the CSV and the plot would be the same file", out.display())));
    }
    crate::io::check_new(&out, job.force, &inputs)?;
    crate::io::check_new(&png, job.force, &inputs)?;
    crate::io::write_atomic(&out, csv.as_bytes())?;

    let history = job.history.unwrap_or(l.max(3 * h)).min(origin);
    let kind = format!("{:?}", model.config().kind).to_lowercase();
    crate::io::write_atomic(&png, &forecast_png(&s.series, names, &pred, (origin, known, history), &kind))?;
    Ok(ForecastOutput {
        csv: out,
        png,
        origin,
        horizon: h,
        targets: names.to_vec(),
        timestamps: stamps,
        forecast: pred,
        actual_known: known,
    })
}

/// The forecast as CSV: `step,timestamp`, a column per target and, where
/// any actual value is known, `actual_<target>` columns.
fn forecast_csv(
    series: &Series,
    names: &[String],
    stamps: &[String],
    pred: &[f32],
    origin: usize,
    known: usize,
) -> String {
    let n = names.len();
    let mut csv = String::from("step,timestamp");
    names.iter().for_each(|t| write!(csv, ",{}", quote(t)).unwrap());
    if known > 0 {
        names.iter().for_each(|t| write!(csv, ",{}", quote(&format!("actual_{t}"))).unwrap());
    }
    csv.push('\n');
    for (step, stamp) in stamps.iter().enumerate() {
        write!(csv, "{},{}", step + 1, quote(stamp)).unwrap();
        (0..n).for_each(|c| write!(csv, ",{}", pred[step * n + c]).unwrap());
        if known > 0 {
            for c in 0..n {
                match series.columns[c].get(origin + step).filter(|_| step < known) {
                    Some(v) => write!(csv, ",{v}").unwrap(),
                    None => csv.push(','),
                }
            }
        }
        csv.push('\n');
    }
    csv
}

/// The history before `origin`, the forecast (from the last observed
/// value) and the known actual values, per target, as a PNG.
fn forecast_png(
    series: &Series,
    names: &[String],
    pred: &[f32],
    (origin, known, history): (usize, usize, usize),
    kind: &str,
) -> Vec<u8> {
    let (n, h) = (names.len(), pred.len() / names.len().max(1));
    type Line = (String, Vec<(f64, f64)>, [u8; 3]); // label, points, colour
    let mut lines: Vec<Line> = Vec::new();
    for (c, name) in names.iter().enumerate() {
        let col = &series.columns[c];
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
    let at = series.timestamps.as_ref().and_then(|t| t.get(origin - 1)).map_or(String::new(), |t| format!(" ({t})"));
    let chart = Chart {
        title: &format!("{}: {kind} forecast of {h} steps after row {origin}{at}", names.join(", ")),
        x_label: "row of the data",
        y_label: &names.join(", "),
        series: lines
            .iter()
            .map(|(label, points, color)| ChartSeries {
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
    chart.to_png()
}

/// A CSV field, quoted when it holds a comma, quote or newline.
fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
