//! Forecast jobs: a forecaster reads the last L rows before an origin and
//! forecasts the next H; the result is written as a CSV (with the actual
//! values where they are known) and drawn as a PNG.

use super::evaluate::checkpoint_series;
use crate::chart::{Chart, Series as ChartSeries};
use crate::data::series::{extrapolate_timestamps, stamp_seconds, Series};
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
    /// The series to forecast, by its id, in a many-series (`--id`) run.
    pub series: Option<String>,
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
    /// (H, N) row-major: step by step, a value per target (a quantile
    /// forecaster's median).
    pub forecast: Vec<f32>,
    /// A quantile forecaster's levels, e.g. [0.1, 0.5, 0.9].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quantiles: Vec<f32>,
    /// (H, N, Q) row-major: every quantile of every value (with `quantiles`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forecast_quantiles: Vec<f32>,
    /// Steps whose actual value the data holds.
    pub actual_known: usize,
}

/// Forecasts, writes the CSV and the PNG, and returns what it wrote.
pub fn forecast(job: &ForecastJob) -> Result<ForecastOutput> {
    let dev = Device::Cpu;
    let f = forecast_values(job, &dev)?;
    let (ck, s, origin, h, n, len) =
        (f.reference(), &f.series, f.origin, f.horizon, f.series.n_targets, f.series.series.len());
    let (levels, all, pred) = (&f.levels, &f.all, &f.pred);
    let bands = Bands { levels, values: all };

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
    let csv = forecast_csv(&s.series, names, &stamps, pred, &bands, (origin, known));
    let run = if f.folder {
        &job.checkpoint // an ensemble or auto folder
    } else if ck.dir.join(crate::checkpoint::MANIFEST).exists() {
        ck.dir.parent().unwrap_or(&ck.dir)
    } else {
        &ck.dir
    };
    let name = match &job.series {
        // One file per series by default; the id made safe for a file name.
        Some(id) => format!("forecast-{}.csv", id.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")),
        None => "forecast.csv".into(),
    };
    let out = job.out.clone().unwrap_or_else(|| run.join(name));
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

    let history = job.history.unwrap_or(f.context.max(3 * h)).min(origin);
    let png_bytes = forecast_png(&s.series, names, &stamps, pred, &bands, (origin, known, history), &f.kind);
    crate::io::write_atomic(&png, &png_bytes)?;
    Ok(ForecastOutput {
        csv: out,
        png,
        origin,
        horizon: h,
        targets: names.to_vec(),
        timestamps: stamps,
        forecast: pred.clone(),
        quantiles: levels.clone(),
        forecast_quantiles: if levels.is_empty() { Vec::new() } else { all.clone() },
        actual_known: known,
    })
}

/// A forecast before it is written: its data, origin and values.
struct Values {
    /// The checkpoint, ensemble members (at least one) or auto folder loaded.
    source: Source,
    /// Whether the model is a folder of models (an ensemble or auto run).
    folder: bool,
    series: crate::data::series::SeriesData,
    origin: usize,
    context: usize,
    horizon: usize,
    /// Quantile levels (empty for a point forecaster).
    levels: Vec<f32>,
    /// (H, N, Q) with levels, else (H, N).
    all: Vec<f32>,
    /// (H, N): the point forecast.
    pred: Vec<f32>,
    /// What made it, for the chart's title (`lstm`, `auto: ar`, …).
    kind: String,
}

/// What a forecast comes from.
enum Source {
    /// A checkpoint, or an ensemble's members (never empty).
    Models(Vec<crate::checkpoint::Loaded>),
    /// A `--model auto` run folder.
    Auto(Box<super::auto::AutoModel>),
}

impl Values {
    /// The checkpoint whose config names the data.
    fn reference(&self) -> &crate::checkpoint::Loaded {
        match &self.source {
            Source::Auto(a) => a.reference(),
            Source::Models(m) => &m[0],
        }
    }
}

/// The series to forecast: `s` itself, or the one named `id` of a many-series `s`.
fn one_series(s: crate::data::series::SeriesData, id: Option<&str>) -> Result<crate::data::series::SeriesData> {
    let ids = || s.panel.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", ");
    match id {
        None if s.is_panel() => Err(Error::setting(format!(
            "the model forecasts {} series: choose one with --series ID ({})",
            s.panel.len(),
            ids()
        ))),
        None => Ok(s),
        Some(id) if !s.is_panel() => {
            Err(Error::setting(format!("--series {id}: the data holds one series (no --id column)")))
        }
        Some(id) => match s.panel.iter().position(|p| p.id == id) {
            Some(k) => {
                let mut panel = s.panel;
                Ok(panel.swap_remove(k).data)
            }
            None => Err(Error::setting(format!("--series {id}: no such series (ids: {})", ids()))),
        },
    }
}

/// Loads the model of `job.checkpoint` (a checkpoint, run, ensemble or auto
/// folder), reads the series and forecasts from the origin.
fn forecast_values(job: &ForecastJob, dev: &Device) -> Result<Values> {
    let origin_for = |len: usize, l: usize| {
        let origin = job.origin.unwrap_or(len);
        if origin < l || origin > len {
            return Err(Error::setting(format!(
                "--origin {origin}: the model needs {l} rows of history and the data has {len} rows"
            )));
        }
        Ok(origin)
    };
    if super::auto::is_auto(&job.checkpoint) {
        let auto = super::auto::load(&job.checkpoint, dev)?;
        let series =
            one_series(checkpoint_series(auto.reference(), job.data.as_deref(), None)?, job.series.as_deref())?;
        let (context, horizon) = (auto.choice.context, auto.choice.horizon);
        let origin = origin_for(series.series.len(), context)?;
        let (all, levels) = auto.forecast_at(&series, origin, dev)?;
        let mid = levels.iter().position(|&q| q == 0.5).unwrap_or(0);
        let pred: Vec<f32> = all.chunks(levels.len()).map(|v| v[mid]).collect();
        let levels = if levels.len() > 1 { levels } else { Vec::new() };
        let kind = format!("auto: {}", auto.choice.chosen);
        let source = Source::Auto(Box::new(auto));
        return Ok(Values { source, folder: true, series, origin, context, horizon, levels, all, pred, kind });
    }
    let ensemble = super::ensemble::is_ensemble(&job.checkpoint);
    let members = match ensemble {
        true => super::ensemble::load(&job.checkpoint, dev)?,
        false => vec![crate::checkpoint::load(&job.checkpoint, dev)?],
    };
    let models = members
        .iter()
        .map(|m| {
            m.model.forecaster().ok_or_else(|| Error::Checkpoint {
                path: m.dir.clone(),
                msg: "not a forecaster (train one with --task series or --data FILE.csv)".into(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let model = models[0];
    let series = one_series(checkpoint_series(&members[0], job.data.as_deref(), None)?, job.series.as_deref())?;
    let (context, horizon) = (model.config().context, model.config().horizon);
    let origin = origin_for(series.series.len(), context)?;
    let levels = model.config().quantiles.clone();
    let all = crate::eval::forecast::forecast_quantiles_at(&models, &series, origin, dev)?; // (H, N, Q)
    let pred = crate::eval::forecast::medians(model, &all); // (H, N)
    let mut kind = model.config().kind.name().to_string() + if ensemble { " ensemble" } else { "" };
    if let Some(id) = &job.series {
        kind += &format!(" (series {id})");
    }
    drop(models);
    let source = Source::Models(members);
    Ok(Values { source, folder: ensemble, series, origin, context, horizon, levels, all, pred, kind })
}

/// A quantile forecaster's levels and values, (H, N, Q); no levels for a
/// point forecaster.
struct Bands<'a> {
    levels: &'a [f32],
    values: &'a [f32],
}

impl Bands<'_> {
    /// The quantile levels other than the median, with their index.
    fn others(&self) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.levels.iter().copied().enumerate().filter(|&(_, q)| q != 0.5)
    }

    /// The value of quantile `k` of target `c` at `step` (N targets).
    fn at(&self, step: usize, c: usize, n: usize, k: usize) -> f32 {
        self.values[(step * n + c) * self.levels.len() + k]
    }

    /// The widest central interval: the lowest level and its mirror, if present.
    fn widest(&self) -> Option<(usize, usize)> {
        let lo = self.levels.first().copied().filter(|&q| q < 0.5)?;
        let hi = self.levels.iter().position(|&q| (q + lo - 1.0).abs() < 1e-6)?;
        Some((0, hi))
    }
}

/// The forecast as CSV: `step,timestamp`, a column per target (the median
/// of a quantile forecaster), `<target>_q<level>` columns for its other
/// quantiles, and, where any actual value is known, `actual_<target>` columns.
fn forecast_csv(
    series: &Series,
    names: &[String],
    stamps: &[String],
    pred: &[f32],
    bands: &Bands,
    (origin, known): (usize, usize),
) -> String {
    let n = names.len();
    let mut csv = String::from("step,timestamp");
    names.iter().for_each(|t| write!(csv, ",{}", quote(t)).unwrap());
    for t in names {
        bands.others().for_each(|(_, q)| write!(csv, ",{}", quote(&format!("{t}_q{q}"))).unwrap());
    }
    if known > 0 {
        names.iter().for_each(|t| write!(csv, ",{}", quote(&format!("actual_{t}"))).unwrap());
    }
    csv.push('\n');
    for (step, stamp) in stamps.iter().enumerate() {
        write!(csv, "{},{}", step + 1, quote(stamp)).unwrap();
        (0..n).for_each(|c| write!(csv, ",{}", pred[step * n + c]).unwrap());
        for c in 0..n {
            bands.others().for_each(|(k, _)| write!(csv, ",{}", bands.at(step, c, n, k)).unwrap());
        }
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

/// Where row `r` goes on the forecast plot's x axis, and the axis' label:
/// the timestamps as dates (or as numbers) where every plotted row has one
/// that parses and they increase; else the row numbers. `stamps` are the
/// forecast steps', continued past the data's end.
fn x_axis(
    series: &Series,
    stamps: &[String],
    rows: std::ops::Range<usize>,
    origin: usize,
) -> (Vec<f64>, &'static str, bool) {
    let stamp = |r: usize| match &series.timestamps {
        Some(t) if r < t.len() => Some(t[r].as_str()),
        Some(_) => stamps.get(r - origin).map(|s| s.as_str()),
        None => None,
    };
    let increasing = |v: &[f64]| v.windows(2).all(|w| w[0] < w[1]);
    let parse = |f: &dyn Fn(&str) -> Option<f64>| -> Option<Vec<f64>> {
        let v = rows.clone().map(|r| stamp(r).and_then(f)).collect::<Option<Vec<f64>>>()?;
        increasing(&v).then_some(v)
    };
    if let Some(v) = parse(&stamp_seconds) {
        return (v, "date", true);
    }
    if let Some(v) = parse(&|s: &str| s.trim().parse::<f64>().ok().filter(|v| v.is_finite())) {
        return (v, "timestamp", false);
    }
    (rows.map(|r| r as f64).collect(), "row of the data", false)
}

/// The history before `origin`, the forecast (from the last observed
/// value) and the known actual values, per target, as a PNG; the x axis
/// shows dates where the data has a timestamp column of dates.
fn forecast_png(
    series: &Series,
    names: &[String],
    stamps: &[String],
    pred: &[f32],
    bands: &Bands,
    (origin, known, history): (usize, usize, usize),
    kind: &str,
) -> Vec<u8> {
    let (n, h) = (names.len(), pred.len() / names.len().max(1));
    type Line = (String, Vec<(f64, f64)>, [u8; 3]); // label, points, colour
    let mut lines: Vec<Line> = Vec::new();
    // x of row r is xs[r - first]; the forecast line starts at row origin - 1.
    let first = origin.saturating_sub(history.max(1));
    let (xs, x_label, x_dates) = x_axis(series, stamps, first..origin + h, origin);
    let x = |r: usize| xs[r - first];
    for (c, name) in names.iter().enumerate() {
        let col = &series.columns[c];
        let name = if n > 1 { format!(" ({name})") } else { String::new() };
        let point = |r: usize| (x(r), col[r] as f64);
        lines.push((format!("history{name}"), (origin - history..origin).map(point).collect(), [90, 90, 90]));
        // The forecast line starts from the last observed value.
        let fc = std::iter::once(point(origin - 1)).chain((0..h).map(|i| (x(origin + i), pred[i * n + c] as f64)));
        if let Some((lo, hi)) = bands.widest() {
            // Both bounds as one legend entry: the lower line, a break, the upper.
            let bound = |k: usize| (0..h).map(move |i| (x(origin + i), bands.at(i, c, n, k) as f64));
            let pts = bound(lo).chain(std::iter::once((f64::NAN, f64::NAN))).chain(bound(hi)).collect();
            let (ql, qh) = (bands.levels[lo], bands.levels[hi]);
            // The chart font has no en dash.
            let label = format!("{:.0}% interval (q{ql}-q{qh}){name}", 100.0 * (qh - ql));
            lines.push((label, pts, [240, 150, 150]));
        }
        lines.push((format!("forecast{name}"), fc.collect(), [214, 39, 40]));
        if known > 0 {
            lines.push((format!("actual{name}"), (origin..origin + known).map(point).collect(), [31, 119, 180]));
        }
    }
    let at = series.timestamps.as_ref().and_then(|t| t.get(origin - 1)).map_or(String::new(), |t| format!(" ({t})"));
    let chart = Chart {
        title: &format!("{}: {kind} forecast of {h} steps after row {origin}{at}", names.join(", ")),
        x_label,
        y_label: &names.join(", "),
        series: lines
            .iter()
            .map(|(label, points, color)| ChartSeries {
                label,
                points: points.clone(),
                color: *color,
                markers: !label.starts_with("history") && !label.contains("interval"),
            })
            .collect(),
        // Halfway between the last observed row and the first forecast.
        vlines: vec![if origin > first { 0.5 * (x(origin - 1) + x(origin)) } else { x(origin) - 0.5 }],
        x_dates,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_x_axis_shows_dates_numbers_or_rows() {
        let series = |t: Option<&[&str]>| Series {
            names: vec!["v".into()],
            columns: vec![vec![0.0; 3]],
            timestamps: t.map(|t| t.iter().map(|s| s.to_string()).collect()),
            ids: None,
        };
        let future = ["2024-01-04".to_string(), "2024-01-05".to_string()];
        // Rows 1..5: two rows of the file, then two continued stamps.
        let s = series(Some(&["2024-01-01", "2024-01-02", "2024-01-03"]));
        let (x, label, dates) = x_axis(&s, &future, 1..5, 3);
        assert_eq!((label, dates), ("date", true));
        assert_eq!(x, [1.0, 2.0, 3.0, 4.0].map(|d| 19723.0 * 86_400.0 + d * 86_400.0));
        let (x, label, dates) = x_axis(&series(Some(&["1990", "1991", "1992"])), &["1993".into()], 0..4, 3);
        assert_eq!((x, label, dates), (vec![1990.0, 1991.0, 1992.0, 1993.0], "timestamp", false));
        // Unparsable, repeated or missing stamps: row numbers.
        for t in [Some(&["a", "b", "c"][..]), Some(&["1", "1", "2"][..]), None] {
            let (x, label, dates) = x_axis(&series(t), &["9".into()], 0..4, 3);
            assert_eq!((x, label, dates), (vec![0.0, 1.0, 2.0, 3.0], "row of the data", false));
        }
    }
}
