//! Forecast accuracy: MAE, RMSE, MAPE, sMAPE and MASE, and the baselines
//! every forecaster is compared with, computed on the same windows: naive
//! (repeat the last observed value), seasonal naive (the value one season
//! earlier), and the classical models of [`crate::stats`] (AR, ETS, Theta),
//! fitted on the training rows and run with those parameters over each
//! window's history.

use crate::data::series::SeriesData;
use crate::data::shift::ForecastBatch;
use crate::error::Result;
use crate::model::Forecaster;
use crate::stats::Baseline;
use candle_core::Device;
use serde::Serialize;

/// Errors of a set of forecasts against the actual values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ForecastMetrics {
    /// Mean absolute error, in the data's units.
    pub mae: f64,
    /// Root mean squared error, in the data's units.
    pub rmse: f64,
    /// Mean absolute percentage error, in percent, over non-zero actuals
    /// (`None` when every actual is zero).
    pub mape: Option<f64>,
    /// Symmetric MAPE in percent (terms with |y| + |ŷ| = 0 count as 0).
    pub smape: f64,
    /// MAE divided by the in-sample MAE of the seasonal-naive forecast on the
    /// training split (Hyndman & Koehler 2006); below 1 beats it there.
    /// `None` when that error is 0 (a constant or exactly periodic training
    /// series), where MASE is undefined.
    pub mase: Option<f64>,
    /// Number of forecast values compared.
    pub n: usize,
}

/// The in-sample one-season-ahead naive MAE of `train` (season `m`, at least 1):
/// MASE's denominator.
pub fn mase_scale(train: &[f32], m: usize) -> f64 {
    let m = m.max(1);
    if train.len() <= m {
        return f64::NAN;
    }
    let d: f64 = train.windows(m + 1).map(|w| (w[m] as f64 - w[0] as f64).abs()).sum();
    d / (train.len() - m) as f64
}

/// Metrics of `pred` against `actual` (same length), MASE scaled by `scale`.
pub fn metrics(pred: &[f32], actual: &[f32], scale: f64) -> ForecastMetrics {
    let n = pred.len().min(actual.len());
    let (mut abs, mut sq, mut pct, mut n_pct, mut sym) = (0f64, 0f64, 0f64, 0usize, 0f64);
    for (&p, &y) in pred.iter().zip(actual).take(n) {
        let (p, y) = (p as f64, y as f64);
        let e = (p - y).abs();
        abs += e;
        sq += e * e;
        if y != 0.0 {
            pct += e / y.abs();
            n_pct += 1;
        }
        let denom = p.abs() + y.abs();
        if denom > 0.0 {
            sym += 2.0 * e / denom;
        }
    }
    let nf = n.max(1) as f64;
    let mae = abs / nf;
    ForecastMetrics {
        mae,
        rmse: (sq / nf).sqrt(),
        mape: (n_pct > 0).then(|| 100.0 * pct / n_pct as f64),
        smape: 100.0 * sym / nf,
        mase: (scale > 0.0 && scale.is_finite()).then(|| mae / scale),
        n,
    }
}

pub use crate::data::season::infer_season;

/// The naive forecast of `h` values: the last observed value, repeated.
pub fn naive(past: &[f32], h: usize) -> Vec<f32> {
    vec![past.last().copied().unwrap_or(0.0); h]
}

/// The seasonal-naive forecast of `h` values with season `m`: each step
/// repeats the value one (or more) whole seasons before it. Falls back to
/// naive when the past is shorter than a season.
pub fn seasonal_naive(past: &[f32], h: usize, m: usize) -> Vec<f32> {
    let l = past.len();
    if m == 0 || l < m {
        return naive(past, h);
    }
    (0..h).map(|i| past[l - m + i % m]).collect()
}

/// The mean of per-target metrics (a single target's are returned as they are).
pub fn average(ms: &[ForecastMetrics]) -> ForecastMetrics {
    let k = ms.len().max(1) as f64;
    let mean = |f: fn(&ForecastMetrics) -> f64| ms.iter().map(f).sum::<f64>() / k;
    let mapes: Vec<f64> = ms.iter().filter_map(|m| m.mape).collect();
    ForecastMetrics {
        mae: mean(|m| m.mae),
        rmse: mean(|m| m.rmse),
        mape: (!mapes.is_empty()).then(|| mapes.iter().sum::<f64>() / mapes.len() as f64),
        smape: mean(|m| m.smape),
        mase: ms.iter().map(|m| m.mase).sum::<Option<f64>>().map(|s| s / k),
        n: ms.iter().map(|m| m.n).sum(),
    }
}

/// The baselines' metrics, on the same windows as the model's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baselines {
    /// Repeat the last observed value.
    pub naive: ForecastMetrics,
    /// Repeat the value one season earlier.
    pub seasonal_naive: ForecastMetrics,
    /// AR(p), the order chosen by AIC (`null` when it cannot be fitted: a
    /// constant or too short training series).
    pub ar: Option<Box<ClassicalMetrics>>,
    /// ETS, the model chosen by AICc (`null` when none can be fitted).
    pub ets: Option<Box<ClassicalMetrics>>,
    /// The Theta method (`null` when it cannot be fitted).
    pub theta: Option<Box<ClassicalMetrics>>,
}

impl Baselines {
    /// Every baseline by its JSON name.
    pub fn all(&self) -> Vec<(&'static str, &ForecastMetrics)> {
        let mut out = vec![("naive", &self.naive), ("seasonal_naive", &self.seasonal_naive)];
        for (name, b) in [("ar", &self.ar), ("ets", &self.ets), ("theta", &self.theta)] {
            if let Some(b) = b {
                out.push((name, &b.metrics));
            }
        }
        out
    }
}

/// A classical baseline's metrics and the model it fitted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassicalMetrics {
    /// Its errors, averaged over targets.
    #[serde(flatten)]
    pub metrics: ForecastMetrics,
    /// The fitted model, e.g. `AR(9)` or `ETS(M,Ad,N)` (per target, `; `
    /// between them, when they differ).
    pub model: String,
}

/// A forecaster's accuracy on one split, beside the baselines. In JSON the
/// model's metrics sit at the top level (`mase`, `rmse`, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastReport {
    /// The model's metrics, averaged over targets.
    #[serde(flatten)]
    pub model: ForecastMetrics,
    /// The naive and seasonal-naive baselines on the same windows.
    pub baselines: Baselines,
    /// Season length used by seasonal naive and MASE.
    pub season: usize,
    /// Forecast origins evaluated (rolling, one step apart).
    pub windows: usize,
    /// Steps forecast from each origin, H.
    pub horizon: usize,
    /// A quantile forecaster's central intervals (absent for a point forecaster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Vec<IntervalMetrics>>,
    /// A quantile forecaster's weighted quantile loss, 2·Σ pinball / Σ|y|
    /// averaged over its levels (GluonTS's mean wQL; 0 is perfect).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wql: Option<f64>,
}

/// How often a central interval held the actual value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalMetrics {
    /// Its nominal level, e.g. 0.8 for the 0.1–0.9 interval.
    pub level: f64,
    /// The lower quantile level, e.g. 0.1.
    pub lower: f64,
    /// The upper quantile level, e.g. 0.9.
    pub upper: f64,
    /// The fraction of actual values inside [lower, upper] (ideally `level`).
    pub coverage: f64,
    /// Whether the interval was widened by the validation split's
    /// [`Calibration`] (false when that split has no window, or when its
    /// rows are among those scored).
    pub calibrated: bool,
    /// The coverage of the head's own interval, before calibration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage_uncalibrated: Option<f64>,
}

/// Coverage of each central interval (levels q and 1 − q of `levels`) and
/// the mean weighted quantile loss of quantile forecasts `pred` (values ×
/// Q, ascending per value) against `actual`.
pub fn interval_metrics(pred: &[f32], actual: &[f32], levels: &[f32]) -> (Vec<IntervalMetrics>, f64) {
    let q = levels.len();
    let mut intervals = Vec::new();
    for (lo, hi) in interval_pairs(levels) {
        let ql = levels[lo];
        let inside =
            actual.iter().enumerate().filter(|&(i, &y)| pred[i * q + lo] <= y && y <= pred[i * q + hi]).count();
        // Levels are f32 in the config: 0.1 reads 0.10000000149 in f64, so round.
        let r = |x: f32| (x as f64 * 1e6).round() / 1e6;
        intervals.push(IntervalMetrics {
            level: r(levels[hi] - ql),
            lower: r(ql),
            upper: r(levels[hi]),
            coverage: inside as f64 / actual.len().max(1) as f64,
            calibrated: false,
            coverage_uncalibrated: None,
        });
    }
    let scale: f64 = actual.iter().map(|y| y.abs() as f64).sum();
    let mut wql = 0.0;
    for (k, &level) in levels.iter().enumerate() {
        let l = level as f64;
        let loss: f64 = actual
            .iter()
            .enumerate()
            .map(|(i, &y)| {
                let e = y as f64 - pred[i * q + k] as f64;
                (l * e).max((l - 1.0) * e)
            })
            .sum();
        wql += 2.0 * loss / scale.max(f64::MIN_POSITIVE);
    }
    (intervals, wql / q.max(1) as f64)
}

/// Point forecasts (the median of a quantile forecaster), in the data's own
/// units, from each window start in `starts` (origin `start + L`):
/// `[window][step][target]` flattened to (W, H, N). `models` holds one
/// forecaster, or the members of an ensemble, whose forecasts are combined
/// by their median (see [`predict_quantiles`]).
pub fn predict(
    models: &[&Forecaster],
    s: &SeriesData,
    starts: &[usize],
    batch: usize,
    dev: &Device,
) -> Result<Vec<f32>> {
    Ok(medians(lead(models)?, &predict_quantiles(models, s, starts, batch, dev)?))
}

/// The point forecasts (medians) of quantile forecasts (…, Q) of `model`.
pub fn medians(model: &Forecaster, all: &[f32]) -> Vec<f32> {
    let m = model.config();
    all.chunks(m.quantiles.len().max(1)).map(|v| v[m.median_index()]).collect()
}

/// The first of `models`, after checking that every member forecasts the
/// same thing (context, horizon, quantiles, targets).
pub fn lead<'a>(models: &[&'a Forecaster]) -> Result<&'a Forecaster> {
    let first = *models.first().ok_or_else(|| crate::Error::setting("an ensemble needs at least one member"))?;
    let (a, key) = (first.config(), |c: &crate::model::ForecasterConfig| {
        (c.context, c.horizon, c.quantiles.clone(), c.n_targets, c.n_inputs, c.scaler.clone())
    });
    if let Some(other) = models.iter().position(|m| key(m.config()) != key(a)) {
        return Err(crate::Error::setting(format!(
            "ensemble member {} forecasts differently from member 1 (context, horizon, quantiles, columns or scaler)",
            other + 1
        )));
    }
    Ok(first)
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &mut [f32]) -> f32 {
    values.sort_by(f32::total_cmp);
    let k = values.len();
    match k {
        0 => f32::NAN,
        _ if k % 2 == 1 => values[k / 2],
        _ => 0.5 * (values[k / 2 - 1] + values[k / 2]),
    }
}

/// Every quantile of each forecast, as [`predict`]: (W, H, N, Q), ascending
/// along Q (a head whose quantiles cross is read in order, as is usual).
/// An ensemble's value is the median of its members' values, quantile by
/// quantile; the median of ascending vectors is ascending, so the order holds.
pub fn predict_quantiles(
    models: &[&Forecaster],
    s: &SeriesData,
    starts: &[usize],
    batch: usize,
    dev: &Device,
) -> Result<Vec<f32>> {
    lead(models)?;
    let mut each = models.iter().map(|m| predict_member(m, s, starts, batch, dev)).collect::<Result<Vec<_>>>()?;
    if each.len() == 1 {
        return Ok(each.pop().unwrap_or_default());
    }
    let mut column = vec![0.0; each.len()];
    Ok((0..each[0].len())
        .map(|i| {
            column.iter_mut().zip(&each).for_each(|(c, e)| *c = e[i]);
            median(&mut column)
        })
        .collect())
}

/// [`predict_quantiles`] of one forecaster.
fn predict_member(
    model: &Forecaster,
    s: &SeriesData,
    starts: &[usize],
    batch: usize,
    dev: &Device,
) -> Result<Vec<f32>> {
    let m = model.config();
    let q = m.quantiles.len().max(1);
    let mut out = Vec::with_capacity(starts.len() * m.horizon * s.n_targets * q);
    let phase = crate::progress::phase("windows forecast", starts.len());
    for chunk in starts.chunks(batch.max(1)) {
        let b = ForecastBatch::new(&s.scaled, s.n_targets, chunk, m.context, m.horizon, false).tensors(dev)?;
        let pred = model.forward_quantiles(&b.past, None, None)?.flatten_all()?.to_vec1::<f32>()?;
        for (i, values) in pred.chunks(q).enumerate() {
            let mut v: Vec<f32> = values.iter().map(|&x| s.scaler.inverse(i % s.n_targets, x)).collect();
            v.sort_by(f32::total_cmp);
            out.extend(v);
        }
        phase.advance(chunk.len());
    }
    Ok(out)
}

/// Conformal widening of a quantile forecaster's central intervals
/// (conformalized quantile regression: Romano, Patterson & Candès 2019),
/// measured on the validation windows, which training did not fit (they
/// only chose the checkpoint). For interval k and horizon step i, the
/// score of a value y is max(lo − y, y − hi) in scaled units; the interval
/// is widened on both sides by the ⌈(n + 1)·level⌉-th smallest of the n
/// scores (narrowed, where negative). The test split follows the
/// validation split in time, so none of its values are read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Per central interval: (lower level, upper level).
    pub intervals: Vec<(f32, f32)>,
    /// (intervals × H) widenings, scaled units, row-major.
    pub offsets: Vec<f32>,
    /// Validation values each offset was measured on.
    pub n: usize,
}

/// The central intervals of `levels`: (index of lower, index of upper).
fn interval_pairs(levels: &[f32]) -> Vec<(usize, usize)> {
    (0..levels.len())
        .filter_map(|lo| {
            let hi = levels.iter().position(|&qh| (qh + levels[lo] - 1.0).abs() < 1e-6 && qh > levels[lo])?;
            Some((lo, hi))
        })
        .collect()
}

/// Measures [`Calibration`] on the validation split of `s`; `None` for a
/// point forecaster or a validation split without a window.
pub fn calibrate(models: &[&Forecaster], s: &SeriesData, dev: &Device) -> Result<Option<Calibration>> {
    let m = lead(models)?.config();
    let (levels, h, n) = (&m.quantiles, m.horizon, s.n_targets);
    let pairs = interval_pairs(levels);
    let starts = s.starts(&s.valid, m.context, h, 1);
    if pairs.is_empty() || starts.is_empty() {
        return Ok(None);
    }
    let q = levels.len();
    let all = predict_quantiles(models, s, &starts, 256, dev)?; // (W, H, N, Q), data units
    let mut offsets = Vec::with_capacity(pairs.len() * h);
    for &(lo, hi) in &pairs {
        // Rounded: 0.8 − 0.2 in f32 is 0.6000000238, which would move the rank up by one.
        let level = ((levels[hi] - levels[lo]) as f64 * 1e6).round() / 1e6;
        for i in 0..h {
            let mut scores: Vec<f32> = Vec::with_capacity(starts.len() * n);
            for (w, &st) in starts.iter().enumerate() {
                for c in 0..n {
                    let y = s.series.columns[c][st + m.context + i];
                    let at = ((w * h + i) * n + c) * q;
                    scores.push((all[at + lo] - y).max(y - all[at + hi]) / s.scaler.scale[c]);
                }
            }
            offsets.push(conformal_quantile(scores, level));
        }
    }
    let intervals = pairs.iter().map(|&(lo, hi)| (levels[lo], levels[hi])).collect();
    Ok(Some(Calibration { intervals, offsets, n: starts.len() * n }))
}

/// The ⌈(n + 1)·level⌉-th smallest of n conformity scores (the largest
/// when that rank passes n): split conformal prediction's widening, which
/// covers a new value with probability at least `level` when it is
/// exchangeable with the scored ones.
pub fn conformal_quantile(mut scores: Vec<f32>, level: f64) -> f32 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.sort_by(f32::total_cmp);
    let k = ((scores.len() as f64 + 1.0) * level).ceil() as usize;
    scores[k.clamp(1, scores.len()) - 1]
}

impl Calibration {
    /// Widens the intervals of quantile forecasts `all` ((W, H, N, Q), data
    /// units, in place) by the offsets, `scale` being each target's scaler
    /// scale. The median is left as it is (it is the point forecast); a
    /// narrowed bound stops at it, and each side of it stays in ascending order.
    pub fn apply(&self, all: &mut [f32], levels: &[f32], h: usize, scale: &[f32]) {
        let (q, n) = (levels.len(), scale.len());
        let mid = levels.iter().position(|&l| l == 0.5).unwrap_or(0);
        let pairs = interval_pairs(levels);
        for (at, values) in all.chunks_mut(q).enumerate() {
            let (i, c) = ((at / n) % h, at % n);
            let median = values[mid];
            for (k, &(lo, hi)) in pairs.iter().enumerate() {
                let d = self.offsets[k * h + i] * scale[c];
                values[lo] = (values[lo] - d).min(median);
                values[hi] = (values[hi] + d).max(median);
            }
            values[..mid].sort_by(f32::total_cmp);
            values[mid + 1..].sort_by(f32::total_cmp);
        }
    }
}

/// The forecast of the `H` values after row `origin` (exclusive: rows
/// `..origin` are the history; `origin` may be the series' length, to
/// forecast the unknown future), in the data's own units, `[step][target]`
/// flattened to (H, N). The history must hold at least the model's context.
pub fn forecast_at(models: &[&Forecaster], s: &SeriesData, origin: usize, dev: &Device) -> Result<Vec<f32>> {
    Ok(medians(lead(models)?, &forecast_quantiles_at(models, s, origin, dev)?))
}

/// [`forecast_at`] with every quantile: (H, N, Q), ascending along Q, the
/// intervals widened by the [`Calibration`] measured on the validation split
/// when the origin comes after it.
pub fn forecast_quantiles_at(models: &[&Forecaster], s: &SeriesData, origin: usize, dev: &Device) -> Result<Vec<f32>> {
    let model = lead(models)?;
    let (l, h) = (model.config().context, model.config().horizon);
    if origin < l || origin > s.series.len() {
        return Err(crate::Error::config(
            "origin",
            format!("row {origin}: a forecast needs {l} rows of history before it, within the {} rows", s.series.len()),
        ));
    }
    // The future is not read (the decoder runs free); pad it so the window is whole.
    let mut padded = s.clone();
    padded.scaled.iter_mut().for_each(|c| {
        c.truncate(origin);
        c.resize(origin + h, 0.0);
    });
    let mut all = predict_quantiles(models, &padded, &[origin - l], 1, dev)?;
    // Calibration reads the validation rows: only for a forecast made after them.
    let calibration = if origin >= s.valid.end { calibrate(models, s, dev)? } else { None };
    if let Some(cal) = calibration {
        cal.apply(&mut all, &model.config().quantiles, h, &s.scaler.scale[..s.n_targets]);
    }
    Ok(all)
}

/// The model's and the baselines' metrics over every window whose horizon
/// lies in `rows` (e.g. the test split). MASE is scaled by the seasonal
/// naive in-sample error on the training rows; the naive baselines see the
/// whole history before each origin, the classical ones are fitted on the
/// training rows and run over that history with their parameters fixed.
pub fn evaluate(
    models: &[&Forecaster],
    s: &SeriesData,
    rows: &std::ops::Range<usize>,
    dev: &Device,
) -> Result<ForecastReport> {
    evaluate_with(models, s, rows, &fit_classical(s), dev)
}

/// The classical baselines fitted on the training rows of each target of
/// `s`: AR, ETS and Theta, `None` where one cannot be fitted.
pub struct ClassicalFits(Vec<[Option<Box<dyn Baseline>>; 3]>);

/// Fits [`ClassicalFits`] (once per series: [`evaluate_with`] reuses them
/// for any split and any model).
pub fn fit_classical(s: &SeriesData) -> ClassicalFits {
    ClassicalFits(
        (0..s.n_targets)
            .map(|c| {
                let train: Vec<f64> = s.series.columns[c][s.train.clone()].iter().map(|&v| v as f64).collect();
                [
                    crate::stats::ar::fit(&train, crate::stats::ar::default_maxlag(train.len()))
                        .map(|m| Box::new(m) as _),
                    crate::stats::ets::fit(&train, s.season).map(|m| Box::new(m) as _),
                    crate::stats::theta::fit(&train, s.season).map(|m| Box::new(m) as _),
                ]
            })
            .collect(),
    )
}

/// [`evaluate`] with classical baselines already fitted on `s`.
pub fn evaluate_with(
    models: &[&Forecaster],
    s: &SeriesData,
    rows: &std::ops::Range<usize>,
    classical_fits: &ClassicalFits,
    dev: &Device,
) -> Result<ForecastReport> {
    Ok(evaluate_points(models, s, rows, classical_fits, dev)?.0)
}

/// [`evaluate_with`], and the point forecasts it scored: (W, H, N), data units.
pub fn evaluate_points(
    models: &[&Forecaster],
    s: &SeriesData,
    rows: &std::ops::Range<usize>,
    classical_fits: &ClassicalFits,
    dev: &Device,
) -> Result<(ForecastReport, Vec<f32>)> {
    let model = lead(models)?;
    let (l, h, n) = (model.config().context, model.config().horizon, s.n_targets);
    let starts = s.starts(rows, l, h, 1);
    let levels = model.config().quantiles.clone();
    let raw = predict_quantiles(models, s, &starts, 256, dev)?; // (W, H, N, Q)
    let pred = medians(model, &raw);
    let origins: Vec<usize> = starts.iter().map(|st| st + l).collect();
    let mut report = point_report(&pred, s, &origins, h, classical_fits);
    if levels.is_empty() {
        return Ok((report, pred));
    }
    let mut all = raw.clone();
    // Calibration reads the validation rows: never when they are among the scored ones.
    let overlaps = rows.start < s.valid.end && s.valid.start < rows.end;
    let calibration = if overlaps { None } else { calibrate(models, s, dev)? };
    if let Some(cal) = &calibration {
        cal.apply(&mut all, &levels, h, &s.scaler.scale[..n]);
    }
    let actual = actuals(s, &origins, h);
    let (mut iv, wql) = interval_metrics(&all, &actual, &levels);
    let (raw_iv, _) = interval_metrics(&raw, &actual, &levels);
    for (a, b) in iv.iter_mut().zip(raw_iv) {
        a.coverage_uncalibrated = Some(b.coverage);
        a.calibrated = calibration.is_some();
    }
    report.intervals = Some(iv);
    report.wql = Some(wql);
    Ok((report, pred))
}

/// One series' report among many (long format, `--id`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesReport {
    /// The series' id.
    pub id: String,
    /// Its errors beside its own baselines.
    #[serde(flatten)]
    pub report: ForecastReport,
}

/// A global model's accuracy on many series: each metric's mean over the
/// series (as the M4 competition averages MASE and sMAPE), the baselines'
/// likewise (a classical model chosen per series is named e.g. `AR per
/// series`), and each series' own report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PanelReport {
    /// The means over the series; `windows` is their total, `season` the first series'.
    #[serde(flatten)]
    pub mean: ForecastReport,
    /// Each series, in file order.
    pub series: Vec<SeriesReport>,
}

/// [`evaluate`] of each series of a long-format `s` on its own rows (`pick`
/// chooses them, e.g. `|d| d.test.clone()`), and their means.
pub fn evaluate_panel(
    models: &[&Forecaster],
    s: &SeriesData,
    pick: impl Fn(&SeriesData) -> std::ops::Range<usize>,
    dev: &Device,
) -> Result<PanelReport> {
    let series = s
        .panel
        .iter()
        .map(|p| {
            let report = evaluate(models, &p.data, &pick(&p.data), dev)?;
            if report.windows == 0 {
                // An empty series would count as a perfect one in the means.
                let (l, h) = (lead(models)?.config().context, report.horizon);
                return Err(crate::Error::setting(format!(
                    "series '{}' ({} rows) has no window of context {l} + horizon {h} in the rows scored",
                    p.id,
                    p.data.series.len()
                )));
            }
            Ok(SeriesReport { id: p.id.clone(), report })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(PanelReport { mean: mean_report(&series.iter().map(|r| &r.report).collect::<Vec<_>>()), series })
}

/// Each metric's mean over `reports`: the model's, every baseline's (a
/// classical one where every series has it, `model` naming it "per
/// series"), each interval's coverage and the weighted quantile loss.
pub fn mean_report(reports: &[&ForecastReport]) -> ForecastReport {
    let avg = |f: &dyn Fn(&ForecastReport) -> &ForecastMetrics| {
        average(&reports.iter().map(|r| f(r).clone()).collect::<Vec<_>>())
    };
    let classical =
        |label: &str, f: &dyn Fn(&Baselines) -> &Option<Box<ClassicalMetrics>>| -> Option<Box<ClassicalMetrics>> {
            let all: Option<Vec<ForecastMetrics>> =
                reports.iter().map(|r| f(&r.baselines).as_ref().map(|c| c.metrics.clone())).collect();
            let names: Vec<&str> =
                reports.iter().filter_map(|r| f(&r.baselines).as_ref().map(|c| c.model.as_str())).collect();
            let model = if names.windows(2).all(|w| w[0] == w[1]) {
                names.first().map_or("", |v| v).to_string()
            } else {
                format!("{label} per series")
            };
            all.map(|m| Box::new(ClassicalMetrics { metrics: average(&m), model }))
        };
    let k = reports.len().max(1) as f64;
    let intervals = reports.first().and_then(|r| r.intervals.clone()).map(|mut iv| {
        for (j, i) in iv.iter_mut().enumerate() {
            let cover = |f: &dyn Fn(&IntervalMetrics) -> Option<f64>| -> Option<f64> {
                reports
                    .iter()
                    .map(|r| r.intervals.as_ref().and_then(|v| v.get(j)).and_then(f))
                    .sum::<Option<f64>>()
                    .map(|s| s / k)
            };
            i.coverage = cover(&|x| Some(x.coverage)).unwrap_or(f64::NAN);
            i.coverage_uncalibrated = cover(&|x| x.coverage_uncalibrated);
            i.calibrated =
                reports.iter().all(|r| r.intervals.as_ref().and_then(|v| v.get(j)).is_some_and(|x| x.calibrated));
        }
        iv
    });
    ForecastReport {
        model: avg(&|r| &r.model),
        baselines: Baselines {
            naive: avg(&|r| &r.baselines.naive),
            seasonal_naive: avg(&|r| &r.baselines.seasonal_naive),
            ar: classical("AR", &|b| &b.ar),
            ets: classical("ETS", &|b| &b.ets),
            theta: classical("Theta", &|b| &b.theta),
        },
        season: reports.first().map_or(1, |r| r.season),
        windows: reports.iter().map(|r| r.windows).sum(),
        horizon: reports.first().map_or(0, |r| r.horizon),
        intervals,
        wql: reports.iter().map(|r| r.wql).sum::<Option<f64>>().map(|s| s / k),
    }
}

/// The actual values of the windows at `origins`: (W, H, N), as forecasts are laid out.
pub fn actuals(s: &SeriesData, origins: &[usize], h: usize) -> Vec<f32> {
    let n = s.n_targets;
    let mut out = Vec::with_capacity(origins.len() * h * n);
    for &o in origins {
        for i in 0..h {
            out.extend((0..n).map(|c| s.series.columns[c][o + i]));
        }
    }
    out
}

/// The metrics of point forecasts `pred` ((W, H, N), data units, from
/// `origins`) on series `s`, averaged over targets; MASE scaled by each
/// target's seasonal-naive in-sample error on the training rows.
pub fn point_metrics(pred: &[f32], s: &SeriesData, origins: &[usize], h: usize) -> ForecastMetrics {
    let n = s.n_targets;
    let per_target: Vec<ForecastMetrics> = (0..n)
        .map(|c| {
            let col = &s.series.columns[c];
            let scale = mase_scale(&col[s.train.clone()], s.season);
            let (mut p, mut y) = (Vec::new(), Vec::new());
            for (w, &o) in origins.iter().enumerate() {
                y.extend_from_slice(&col[o..o + h]);
                p.extend((0..h).map(|i| pred[(w * h + i) * n + c]));
            }
            metrics(&p, &y, scale)
        })
        .collect();
    average(&per_target)
}

/// Every baseline's point forecasts from `origins`, (W, H, N) in the data's units.
pub struct BaselineForecasts {
    /// Repeat the last observed value.
    pub naive: Vec<f32>,
    /// Repeat the value one season earlier.
    pub seasonal_naive: Vec<f32>,
    /// AR, ETS and Theta: `None` where one could not be fitted to every
    /// target, or forecast a value that is not finite.
    pub classical: [Option<Vec<f32>>; 3],
    /// The fitted models, e.g. `AR(9)` (per target, `; ` between them when they differ).
    pub described: [String; 3],
}

/// The JSON names of the classical baselines, in [`BaselineForecasts::classical`]'s order.
pub const CLASSICAL: [&str; 3] = ["ar", "ets", "theta"];

impl BaselineForecasts {
    /// Every baseline's forecasts by its JSON name (`naive`, `seasonal_naive`,
    /// `ar`, `ets`, `theta`), the classical ones with their fitted model.
    pub fn all(&self) -> Vec<(&'static str, &[f32], Option<&str>)> {
        let mut out: Vec<(&'static str, &[f32], Option<&str>)> =
            vec![("naive", &self.naive, None), ("seasonal_naive", &self.seasonal_naive, None)];
        for (k, f) in self.classical.iter().enumerate() {
            if let Some(f) = f {
                out.push((CLASSICAL[k], f, Some(&self.described[k])));
            }
        }
        out
    }
}

/// The baselines' forecasts from `origins` of series `s`: the naive ones
/// from the whole history before each origin, the classical ones with the
/// parameters fitted on the training rows.
pub fn baseline_forecasts(s: &SeriesData, fits: &ClassicalFits, origins: &[usize], h: usize) -> BaselineForecasts {
    let n = s.n_targets;
    let len = origins.len() * h * n;
    let (mut nv, mut sn) = (vec![0.0; len], vec![0.0; len]);
    let mut classical: [Option<Vec<f32>>; 3] = std::array::from_fn(|_| Some(vec![0.0; len]));
    let mut described: [Vec<String>; 3] = Default::default();
    for c in 0..n {
        let col = &s.series.columns[c];
        let put = |out: &mut [f32], w: usize, f: &[f32]| (0..h).for_each(|i| out[(w * h + i) * n + c] = f[i]);
        for (w, &origin) in origins.iter().enumerate() {
            put(&mut nv, w, &naive(&col[..origin], h));
            put(&mut sn, w, &seasonal_naive(&col[..origin], h, s.season));
        }
        let series: Vec<f64> = col.iter().map(|&v| v as f64).collect();
        for (k, fit) in fits.0[c].iter().enumerate() {
            // A multiplicative model can break on values its training rows never had (≤ 0).
            let f =
                fit.as_ref().map(|b| b.forecast_from(&series, origins, h)).filter(|f| f.iter().all(|v| v.is_finite()));
            if f.is_none() {
                tracing::warn!(
                    "the {} baseline could not be fitted to the training rows of '{}'",
                    ["AR", "ETS", "Theta"][k],
                    s.series.names[c]
                );
            }
            match (f, &mut classical[k]) {
                (Some(f), Some(out)) => {
                    for w in 0..origins.len() {
                        put(out, w, &f[w * h..(w + 1) * h].iter().map(|&v| v as f32).collect::<Vec<_>>());
                    }
                    let d = fit.as_ref().map(|b| b.describe()).unwrap_or_default();
                    if !described[k].contains(&d) {
                        described[k].push(d);
                    }
                }
                (_, slot) => *slot = None,
            }
        }
    }
    BaselineForecasts { naive: nv, seasonal_naive: sn, classical, described: described.map(|d| d.join("; ")) }
}

/// A report of point forecasts `pred` from `origins` beside every baseline
/// on the same windows (no intervals).
pub fn point_report(
    pred: &[f32],
    s: &SeriesData,
    origins: &[usize],
    h: usize,
    classical_fits: &ClassicalFits,
) -> ForecastReport {
    let b = baseline_forecasts(s, classical_fits, origins, h);
    let m = |f: &[f32]| point_metrics(f, s, origins, h);
    let classical = |k: usize| {
        b.classical[k].as_ref().map(|f| Box::new(ClassicalMetrics { metrics: m(f), model: b.described[k].clone() }))
    };
    ForecastReport {
        model: m(pred),
        baselines: Baselines {
            naive: m(&b.naive),
            seasonal_naive: m(&b.seasonal_naive),
            ar: classical(0),
            ets: classical(1),
            theta: classical(2),
        },
        season: s.season,
        windows: origins.len(),
        horizon: h,
        intervals: None,
        wql: None,
    }
}

/// Central prediction intervals for any point forecaster (a classical
/// model, a combination), by locally weighted split conformal prediction
/// (Lei et al. 2018) on its absolute errors over the validation windows. An
/// error is divided by its window's local scale (the mean absolute change
/// over the `local` rows before the origin), so that intervals widen where
/// the series moves more; at horizon step i it is then divided by the mean
/// of such errors at that step (made non-decreasing in i, as a forecast's
/// uncertainty grows with its reach), so that all W × H scores of a target
/// share one conformal quantile while the width keeps the shape of the
/// errors along the horizon.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ResidualIntervals {
    /// Quantile levels, ascending, 0.5 (the point forecast) among them, e.g. [0.1, 0.5, 0.9].
    pub levels: Vec<f32>,
    /// Half-widths in units of a window's local scale, (central intervals
    /// × H × N) row-major; the k-th interval is levels (k, Q − 1 − k).
    pub half_widths: Vec<f32>,
    /// Rows before an origin whose mean absolute change is the window's local scale.
    pub local: usize,
    /// Per target, the least local scale: a tenth of the mean absolute
    /// change over the training rows (a flat stretch of history still gets
    /// an interval).
    pub floor: Vec<f32>,
    /// Validation errors per target the widths were measured on (every fold's).
    pub n: usize,
    /// The step of quantile tracking ([`ResidualIntervals::track`]) after the
    /// validation split, per (central interval, target): a tenth of the
    /// largest validation score in units of the interval's conformal
    /// quantile, the scale-free default of Angelopoulos et al. (2023). Empty
    /// (records written before it) keeps the widths fixed.
    #[serde(default)]
    pub tracking: Vec<f32>,
}

/// The step of quantile tracking as a fraction of the largest validation
/// score: one value for every series, the paper's, not tuned on any.
pub const TRACKING_RATE: f32 = 0.1;

/// The mean absolute change of `col` over the `l` rows before `origin`, at least `floor`.
fn local_scale(col: &[f32], origin: usize, l: usize, floor: f32) -> f32 {
    let from = origin.saturating_sub(l.max(2));
    let d: Vec<f32> = col[from..origin].windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let m = if d.is_empty() { 0.0 } else { d.iter().sum::<f32>() / d.len() as f32 };
    if m.is_finite() {
        m.max(floor)
    } else {
        floor
    }
}

impl ResidualIntervals {
    /// Measures the intervals of `levels` (ascending, symmetric about 0.5,
    /// with 0.5) from point forecasts `pred` ((W, H, N)) at `origins` of the
    /// validation split, local scales over `local` rows; `None` without a
    /// validation window or a central interval.
    pub fn measure(
        pred: &[f32],
        s: &SeriesData,
        origins: &[usize],
        h: usize,
        local: usize,
        levels: &[f32],
    ) -> Option<Self> {
        Self::measure_pooled(&[(pred, s, origins)], h, local, levels)
    }

    /// [`ResidualIntervals::measure`] over the validation windows of several
    /// rolling-origin folds together: (forecasts, the fold's series, its
    /// origins) each, the run's own first (its training rows set the floor).
    /// Every fold has the same targets.
    pub fn measure_pooled(
        folds: &[(&[f32], &SeriesData, &[usize])],
        h: usize,
        local: usize,
        levels: &[f32],
    ) -> Option<Self> {
        let first = folds.first()?.1;
        let n = first.n_targets;
        let pairs = interval_pairs(levels);
        let windows: usize = folds.iter().map(|f| f.2.len()).sum();
        if windows == 0 || pairs.is_empty() {
            return None;
        }
        let floor: Vec<f32> = (0..n)
            .map(|c| {
                0.1 * local_scale(&first.series.columns[c][first.train.clone()], first.train.len(), usize::MAX, 0.0)
            })
            .map(|f| if f > 0.0 { f } else { f32::MIN_POSITIVE })
            .collect();
        let mut out = Self {
            levels: levels.to_vec(),
            half_widths: vec![0.0; pairs.len() * h * n],
            local,
            floor,
            n: windows * h,
            tracking: vec![0.0; pairs.len() * n],
        };
        for c in 0..n {
            // Absolute errors over local scales, (step, value), over every fold.
            let mut e: Vec<(usize, f32)> = Vec::with_capacity(windows * h);
            for &(pred, s, origins) in folds {
                let actual = actuals(s, origins, h);
                for (w, &o) in origins.iter().enumerate() {
                    let scale = local_scale(&s.series.columns[c], o, local, out.floor[c]);
                    for i in 0..h {
                        let at = (w * h + i) * n + c;
                        e.push((i, (pred[at] - actual[at]).abs() / scale));
                    }
                }
            }
            let mut sigma = vec![0.0f32; h];
            e.iter().for_each(|&(i, v)| sigma[i] += v / windows as f32);
            // A step without error (a flat stretch) takes the least error of any step, then
            // the running maximum keeps the widths from shrinking along the horizon.
            let least = sigma.iter().copied().filter(|&v| v > 0.0).fold(f32::INFINITY, f32::min);
            let least = if least.is_finite() { least } else { f32::MIN_POSITIVE };
            sigma.iter_mut().filter(|v| **v <= 0.0).for_each(|v| *v = least);
            for i in 1..h {
                sigma[i] = sigma[i].max(sigma[i - 1]);
            }
            let scores: Vec<f32> = e.iter().map(|&(i, v)| v / sigma[i]).collect();
            for (k, &(lo, hi)) in pairs.iter().enumerate() {
                let level = ((levels[hi] - levels[lo]) as f64 * 1e6).round() / 1e6;
                let q = conformal_quantile(scores.clone(), level);
                for (i, &sd) in sigma.iter().enumerate() {
                    out.half_widths[(k * h + i) * n + c] = q * sd;
                }
                let largest = scores.iter().copied().fold(0.0f32, f32::max);
                out.tracking[k * n + c] =
                    if q > 0.0 && largest.is_finite() { TRACKING_RATE * largest / q } else { 0.0 };
            }
        }
        Some(out)
    }

    /// Whether these intervals fit forecasts of `h` steps of `n` targets
    /// (levels ascending with 0.5, a width per interval, step and target, a
    /// floor per target): a record read from a file is checked with this.
    pub fn fits(&self, h: usize, n: usize) -> bool {
        let ascending = self.levels.windows(2).all(|w| w[0] < w[1]) && self.levels.contains(&0.5);
        let k = interval_pairs(&self.levels).len();
        let tracking = self.tracking.is_empty() || self.tracking.len() == k * n;
        ascending && k > 0 && self.half_widths.len() == k * h * n && self.floor.len() == n && tracking
    }

    /// The local scale of each window at `origins` of `s`: (W, N).
    pub fn scales(&self, s: &SeriesData, origins: &[usize]) -> Vec<f32> {
        let n = s.n_targets;
        origins
            .iter()
            .flat_map(|&o| (0..n).map(move |c| local_scale(&s.series.columns[c], o, self.local, self.floor[c])))
            .collect()
    }

    /// Quantile forecasts (W, H, N, Q) around point forecasts `pred` ((W,
    /// H, N)), the windows' local scales `scales` ((W, N)) and width
    /// multipliers `mult` ((W, intervals, N), from [`ResidualIntervals::track`]).
    pub fn apply(&self, pred: &[f32], scales: &[f32], mult: &[f32], h: usize, n: usize) -> Vec<f32> {
        let q = self.levels.len();
        let pairs = interval_pairs(&self.levels);
        let mut out = vec![0.0; pred.len() * q];
        for (at, &p) in pred.iter().enumerate() {
            let (w, i, c) = (at / (h * n), (at / n) % h, at % n);
            let v = &mut out[at * q..(at + 1) * q];
            v.fill(p);
            for (k, &(lo, hi)) in pairs.iter().enumerate() {
                let d = self.half_widths[(k * h + i) * n + c] * scales[w * n + c] * mult[(w * pairs.len() + k) * n + c];
                v[lo] = p - d;
                v[hi] = p + d;
            }
        }
        out
    }

    /// Whether the widths are tracked after the validation split.
    pub fn tracks(&self) -> bool {
        self.tracking.iter().any(|&r| r > 0.0)
    }

    /// Quantile tracking (Angelopoulos, Candès and Tibshirani 2023, "Conformal
    /// PID control"), for series whose errors drift after the validation
    /// split: walking the windows at `origins` (ascending; point forecasts
    /// `pred`, (W, H, N)), each value that the history before a window's
    /// origin reveals (row origin + step < the next origin) updates its
    /// interval's width multiplier m ← max(0, m + rate (miss − α)), where α
    /// is the interval's nominal miss rate and a miss is a value outside the
    /// interval that its own window was given. Only what was known at each
    /// origin is used, as a rolling-origin forecaster would. One multiplier
    /// serves every horizon step (the widths keep their shape along it): the
    /// paper's bound on the long-run miss rate, |mean miss − α| ≤ (B + rate)
    /// / (rate T), then counts all T = windows × H values, not just one per
    /// window, which on a short series' few dozen test windows is the
    /// difference between a useful bound and a vacuous one. Returns the
    /// multipliers each window was given ((W, intervals, N)) and those after
    /// every value before row `until` is revealed (intervals × N), for a
    /// forecast from `until`. All ones without a rate.
    pub fn track(
        &self,
        pred: &[f32],
        s: &SeriesData,
        origins: &[usize],
        h: usize,
        until: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        self.track_scaled(pred, s, origins, &self.scales(s, origins), h, until)
    }

    /// [`ResidualIntervals::track`] with the windows' local scales already
    /// computed ([`ResidualIntervals::scales`]).
    fn track_scaled(
        &self,
        pred: &[f32],
        s: &SeriesData,
        origins: &[usize],
        scales: &[f32],
        h: usize,
        until: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        use std::cmp::Reverse;
        let n = s.n_targets;
        let pairs = interval_pairs(&self.levels);
        let k = pairs.len();
        let mut m = vec![1.0f32; k * n];
        let mut given = Vec::with_capacity(origins.len() * k * n);
        if !self.tracks() {
            given.resize(origins.len() * k * n, 1.0);
            return (given, m);
        }
        // (row, window, step) of every forecast value not yet revealed, earliest row first.
        let mut pending = std::collections::BinaryHeap::new();
        let reveal = |m: &mut [f32],
                      given: &[f32],
                      pending: &mut std::collections::BinaryHeap<Reverse<(usize, usize, usize)>>,
                      upto: usize| {
            while let Some(&Reverse((row, w, i))) = pending.peek() {
                if row >= upto {
                    break;
                }
                pending.pop();
                for c in 0..n {
                    let y = s.series.columns[c][row];
                    let p = pred[(w * h + i) * n + c];
                    if !(y.is_finite() && p.is_finite()) {
                        continue;
                    }
                    for (j, &(lo, hi)) in pairs.iter().enumerate() {
                        let half =
                            self.half_widths[(j * h + i) * n + c] * scales[w * n + c] * given[(w * k + j) * n + c];
                        let miss = if (y - p).abs() > half { 1.0 } else { 0.0 };
                        let alpha = 1.0 - (self.levels[hi] - self.levels[lo]);
                        let v = &mut m[j * n + c];
                        *v = (*v + self.tracking[j * n + c] * (miss - alpha)).max(0.0);
                    }
                }
            }
        };
        for (w, &o) in origins.iter().enumerate() {
            reveal(&mut m, &given, &mut pending, o);
            given.extend_from_slice(&m);
            pending.extend((0..h).map(|i| Reverse((o + i, w, i))));
        }
        reveal(&mut m, &given, &mut pending, until.min(s.series.len()));
        (given, m)
    }

    /// Each interval's coverage and the weighted quantile loss of the
    /// intervals around `pred` ((W, H, N) from `origins`, ascending), their
    /// widths tracked along the windows ([`ResidualIntervals::track`]).
    pub fn score(&self, pred: &[f32], s: &SeriesData, origins: &[usize], h: usize) -> (Vec<IntervalMetrics>, f64) {
        let scales = self.scales(s, origins);
        let (mult, _) = self.track_scaled(pred, s, origins, &scales, h, 0);
        let all = self.apply(pred, &scales, &mult, h, s.n_targets);
        let (mut iv, wql) = interval_metrics(&all, &actuals(s, origins, h), &self.levels);
        iv.iter_mut().for_each(|i| i.calibrated = true);
        (iv, wql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_hand_computed_values() {
        let m = metrics(&[2.0, 4.0, 0.0], &[1.0, 4.0, 2.0], 2.0);
        assert!((m.mae - 1.0).abs() < 1e-12);
        assert!((m.rmse - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m.mape.unwrap() - 100.0 * (1.0 + 0.0 + 1.0) / 3.0).abs() < 1e-9);
        assert!((m.smape - 100.0 * (2.0 / 3.0 + 0.0 + 2.0) / 3.0).abs() < 1e-9);
        assert!((m.mase.unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(metrics(&[1.0], &[1.0], 0.0).mase, None);
        assert_eq!(metrics(&[1.0], &[0.0], 1.0).mape, None);
        assert!((mase_scale(&[1.0, 2.0, 4.0, 7.0], 1) - 2.0).abs() < 1e-12);
        assert!((mase_scale(&[1.0, 2.0, 4.0, 7.0], 2) - 4.0).abs() < 1e-12);
    }

    #[test]
    fn interval_coverage_and_weighted_quantile_loss_by_hand() {
        // Two values, quantiles 0.1/0.5/0.9; the first actual inside its interval, the second above.
        let pred = [0.0, 1.0, 2.0, 0.0, 1.0, 2.0];
        let actual = [1.5, 3.0];
        let (iv, wql) = interval_metrics(&pred, &actual, &[0.1, 0.5, 0.9]);
        assert_eq!(iv.len(), 1);
        assert!((iv[0].level - 0.8).abs() < 1e-6 && iv[0].coverage == 0.5);
        // Pinball sums: q0.1: 0.1·1.5 + 0.1·3 = 0.45; q0.5: 0.5·0.5 + 0.5·2 = 1.25; q0.9: 0.1·0.5 + 0.9·1 = 0.95.
        let want = (2.0 * 0.45 / 4.5 + 2.0 * 1.25 / 4.5 + 2.0 * 0.95 / 4.5) / 3.0;
        assert!((wql - want).abs() < 1e-9, "{wql} vs {want}");
    }

    #[test]
    fn conformal_widening_by_hand() {
        // Nine scores 1..=9 at level 0.8: rank ⌈10·0.8⌉ = 8.
        let scores: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        assert_eq!(conformal_quantile(scores.clone(), 0.8), 8.0);
        assert_eq!(conformal_quantile(scores, 0.95), 9.0);
        assert_eq!(conformal_quantile(vec![-1.0, -2.0], 0.5), -1.0); // a negative score narrows
                                                                     // Offsets (1 interval × H = 2) of 0.5 and -0.25 scaled units; target scale 2.
        let cal = Calibration { intervals: vec![(0.1, 0.9)], offsets: vec![0.5, -0.25], n: 9 };
        let mut all = vec![0.0, 1.0, 2.0, 0.0, 1.0, 2.0]; // (W 1, H 2, N 1, Q 3)
        cal.apply(&mut all, &[0.1, 0.5, 0.9], 2, &[2.0]);
        assert_eq!(all, vec![-1.0, 1.0, 3.0, 0.5, 1.0, 1.5]);
        // A narrowing never moves the median: the bounds stop at it.
        let mut all = vec![0.9, 1.0, 1.2, 0.9, 1.0, 1.2];
        cal.apply(&mut all, &[0.1, 0.5, 0.9], 2, &[2.0]);
        assert_eq!(all[3..], [1.0, 1.0, 1.0]);
    }

    #[test]
    fn residual_intervals_by_hand() {
        use crate::data::series::{Series, SeriesConfig};
        let series = Series {
            names: vec!["y".into()],
            columns: vec![(0..100).map(|t| t as f32).collect()],
            timestamps: None,
            ids: None,
        };
        let s =
            SeriesData::from_series(series, 1, &SeriesConfig { season: Some(1), ..Default::default() }, None).unwrap();
        let (origins, h) = ([70, 72, 74, 76], 2);
        // Errors of ±1 at the first step and ±3 at the second: every scaled score is 1.
        let actual = actuals(&s, &origins, h);
        let pred: Vec<f32> = actual.iter().enumerate().map(|(j, &y)| y + [1.0, -3.0, -1.0, 3.0][j % 4]).collect();
        // The series rises by 1 a row: every window's local scale is 1.
        let iv = ResidualIntervals::measure(&pred, &s, &origins, h, 5, &[0.1, 0.5, 0.9]).unwrap();
        assert_eq!(iv.half_widths, vec![1.0, 3.0]);
        assert_eq!((iv.n, iv.floor.clone()), (8, vec![0.1]));
        assert!(iv.fits(2, 1) && !iv.fits(3, 1) && !iv.fits(2, 2));
        assert_eq!(iv.scales(&s, &origins), vec![1.0; 4]);
        assert_eq!(iv.apply(&[10.0, 20.0], &[1.0], &[1.0], h, 1), vec![9.0, 10.0, 11.0, 17.0, 20.0, 23.0]);
        // A window whose history moves twice as much gets twice the width, as does a multiplier of 2.
        assert_eq!(iv.apply(&[10.0, 20.0], &[2.0], &[1.0], h, 1), vec![8.0, 10.0, 12.0, 14.0, 20.0, 26.0]);
        assert_eq!(iv.apply(&[10.0, 20.0], &[1.0], &[2.0], h, 1), vec![8.0, 10.0, 12.0, 14.0, 20.0, 26.0]);
        // Fixed widths: the bounds reach every actual value exactly, all covered.
        let fixed = ResidualIntervals { tracking: Vec::new(), ..iv.clone() };
        let (m, _) = fixed.score(&pred, &s, &origins, h);
        assert_eq!((m[0].coverage, m[0].level, m[0].calibrated), (1.0, 0.8, true));
        assert_eq!(fixed.track(&pred, &s, &origins, h, 78), (vec![1.0; 4], vec![1.0]));
        // Every score is the quantile: the rate is a tenth of 1.
        assert_eq!(iv.tracking, vec![TRACKING_RATE]);
        // Tracked at rate 0.05 (α = 0.2): window 0's two hits shrink window 1's multiplier to
        // 0.98, whose two misses (1 > 0.98, 3 > 2.94) widen window 2's to 1.06; its hits give
        // window 3 1.04, and window 3's hits, revealed by row 78, leave 1.02.
        let iv = ResidualIntervals { tracking: vec![0.05], ..iv };
        let (given, last) = iv.track(&pred, &s, &origins, h, 78);
        let want = [1.0, 0.98, 1.06, 1.04];
        assert!(given.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-5), "{given:?}");
        assert!((last[0] - 1.02).abs() < 1e-5, "{last:?}");
        // Only rows before `until` are revealed: window 3's values at rows 76 and 77 are not by 77 in full.
        assert!((iv.track(&pred, &s, &origins, h, 77).1[0] - 1.03).abs() < 1e-5);
        let (m, _) = iv.score(&pred, &s, &origins, h);
        assert_eq!(m[0].coverage, 0.75);
        // A width never shrinks along the horizon: errors of 3 then 1 give 3 and 3.
        let pred: Vec<f32> = actual.iter().enumerate().map(|(j, &y)| y + [3.0, 1.0][j % 2]).collect();
        let iv = ResidualIntervals::measure(&pred, &s, &origins, h, 5, &[0.1, 0.5, 0.9]).unwrap();
        assert_eq!(iv.half_widths, vec![3.0, 3.0]);
        // No central interval, no validation window: none.
        assert!(ResidualIntervals::measure(&pred, &s, &origins, h, 5, &[0.5]).is_none());
        assert!(ResidualIntervals::measure(&[], &s, &[], h, 5, &[0.1, 0.5, 0.9]).is_none());
    }

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [5.0]), 5.0);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn baselines_repeat_the_last_value_and_the_last_season() {
        let past = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(naive(&past, 3), vec![6.0; 3]);
        assert_eq!(seasonal_naive(&past, 5, 3), vec![4.0, 5.0, 6.0, 4.0, 5.0]);
        assert_eq!(seasonal_naive(&past, 2, 10), vec![6.0, 6.0]);
        // A purely seasonal series is forecast exactly by seasonal naive.
        let x: Vec<f32> = (0..40).map(|t| [3.0, 1.0, 4.0, 1.0, 5.0][t % 5]).collect();
        let f = seasonal_naive(&x[..30], 10, 5);
        assert_eq!(metrics(&f, &x[30..], mase_scale(&x[..30], 5).max(1e-9)).mae, 0.0);
    }
}
