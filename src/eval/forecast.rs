//! Forecast accuracy: MAE, RMSE, MAPE, sMAPE and MASE, and the two baselines
//! every forecaster is compared with, computed on the same windows: naive
//! (repeat the last observed value) and seasonal naive (the value one season
//! earlier).

use crate::data::series::SeriesData;
use crate::data::shift::ForecastBatch;
use crate::error::Result;
use crate::model::Forecaster;
use candle_core::Device;
use serde::Serialize;

/// Errors of a set of forecasts against the actual values.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ForecastMetrics {
    pub mae: f64,
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

/// The season length of `x`: the shortest lag in 2..=`max_lag` whose
/// autocorrelation (of the differenced series) peaks within 90% of the
/// strongest, if that is clearly positive (> 0.3); else 1 (no season).
pub fn infer_season(x: &[f32], max_lag: usize) -> usize {
    let n = x.len();
    if n < 4 {
        return 1;
    }
    // Autocorrelation of the first difference, so that a trend does not
    // make every lag look seasonal.
    let d: Vec<f64> = x.windows(2).map(|w| w[1] as f64 - w[0] as f64).collect();
    let dm = d.iter().sum::<f64>() / d.len() as f64;
    let var: f64 = d.iter().map(|v| (v - dm).powi(2)).sum();
    if var <= 0.0 {
        return 1;
    }
    let max_lag = max_lag.min(d.len() / 2);
    if max_lag < 2 {
        return 1;
    }
    let r: Vec<f64> = (0..=max_lag + 1)
        .map(|lag| {
            if lag >= d.len() {
                f64::NEG_INFINITY
            } else {
                (lag..d.len()).map(|i| (d[i] - dm) * (d[i - lag] - dm)).sum::<f64>() / var
            }
        })
        .collect();
    // Seasonal peaks come after the autocorrelation first turns negative (a
    // smooth season stays correlated at short lags). The strongest of them
    // may be a multiple of the season: the season is the shortest lag near
    // one of its fractions (best/2, best/3, …) that correlates nearly as
    // well. Near, not at: noise moves peaks by a lag or two, so the last
    // step picks, within ±2, the lag whose seasonal differences vary least.
    let Some(z) = (1..=max_lag).find(|&l| r[l] < 0.0) else {
        return 1;
    };
    let from = z.max(2);
    let argmax = |lags: std::ops::RangeInclusive<usize>| lags.max_by(|&a, &b| r[a].total_cmp(&r[b]));
    let Some(best_lag) = argmax(from..=max_lag) else {
        return 1;
    };
    let best = r[best_lag];
    if best <= 0.3 {
        return 1;
    }
    let mut season = best_lag;
    for k in 2..=best_lag / from {
        let m = (best_lag as f64 / k as f64).round() as usize;
        if let Some(l) = argmax(m.saturating_sub(1).max(from)..=(m + 1).min(max_lag)) {
            if r[l] >= 0.9 * best && l < season {
                season = l;
            }
        }
    }
    (season.saturating_sub(2).max(2)..=season + 2)
        .min_by(|&a, &b| seasonal_spread(x, a).total_cmp(&seasonal_spread(x, b)))
        .unwrap_or(season)
}

/// The variance of `x[t] − x[t−m]`: least at the true season, and, unlike
/// the seasonal-naive error, not biased by a trend (which only moves the mean).
fn seasonal_spread(x: &[f32], m: usize) -> f64 {
    if x.len() <= m + 1 {
        return f64::INFINITY;
    }
    let d: Vec<f64> = x.windows(m + 1).map(|w| w[m] as f64 - w[0] as f64).collect();
    let mean = d.iter().sum::<f64>() / d.len() as f64;
    d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d.len() as f64
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

/// The two baselines' metrics, on the same windows as the model's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baselines {
    pub naive: ForecastMetrics,
    pub seasonal_naive: ForecastMetrics,
}

/// A forecaster's accuracy on one split, beside the baselines. In JSON the
/// model's metrics sit at the top level (`mase`, `rmse`, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastReport {
    #[serde(flatten)]
    pub model: ForecastMetrics,
    pub baselines: Baselines,
    /// Season length used by seasonal naive and MASE.
    pub season: usize,
    /// Forecast origins evaluated (rolling, one step apart).
    pub windows: usize,
    pub horizon: usize,
}

/// Forecasts, in the data's own units, from each window start in `starts`
/// (origin `start + L`): `[window][step][target]` flattened to
/// (W, H, N).
pub fn predict(model: &Forecaster, s: &SeriesData, starts: &[usize], batch: usize, dev: &Device) -> Result<Vec<f32>> {
    let m = model.config();
    let mut out = Vec::with_capacity(starts.len() * m.horizon * s.n_targets);
    for chunk in starts.chunks(batch.max(1)) {
        let b = ForecastBatch::new(&s.scaled, s.n_targets, chunk, m.context, m.horizon, false).tensors(dev)?;
        let pred = model.forward(&b.past, None, None)?.flatten_all()?.to_vec1::<f32>()?;
        out.extend(pred.iter().enumerate().map(|(i, &v)| s.scaler.inverse(i % s.n_targets, v)));
    }
    Ok(out)
}

/// The forecast of the `H` values after row `origin` (exclusive: rows
/// `..origin` are the history; `origin` may be the series' length, to
/// forecast the unknown future), in the data's own units, `[step][target]`
/// flattened to (H, N). The history must hold at least the model's context.
pub fn forecast_at(model: &Forecaster, s: &SeriesData, origin: usize, dev: &Device) -> Result<Vec<f32>> {
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
    predict(model, &padded, &[origin - l], 1, dev)
}

/// The model's and the baselines' metrics over every window whose horizon
/// lies in `rows` (e.g. the test split). MASE is scaled by the seasonal
/// naive in-sample error on the training rows; the baselines see the whole
/// history before each origin.
pub fn evaluate(
    model: &Forecaster,
    s: &SeriesData,
    rows: &std::ops::Range<usize>,
    dev: &Device,
) -> Result<ForecastReport> {
    let (l, h, n) = (model.config().context, model.config().horizon, s.n_targets);
    let starts = s.starts(rows, l, h, 1);
    let pred = predict(model, s, &starts, 256, dev)?;
    let (mut ours, mut naives, mut seasonals) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..n {
        let col = &s.series.columns[c];
        let scale = mase_scale(&col[s.train.clone()], s.season);
        let (mut p, mut y, mut nv, mut sn) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (w, &st) in starts.iter().enumerate() {
            let origin = st + l;
            let history = &col[..origin];
            y.extend_from_slice(&col[origin..origin + h]);
            p.extend((0..h).map(|i| pred[(w * h + i) * n + c]));
            nv.extend(naive(history, h));
            sn.extend(seasonal_naive(history, h, s.season));
        }
        ours.push(metrics(&p, &y, scale));
        naives.push(metrics(&nv, &y, scale));
        seasonals.push(metrics(&sn, &y, scale));
    }
    Ok(ForecastReport {
        model: average(&ours),
        baselines: Baselines { naive: average(&naives), seasonal_naive: average(&seasonals) },
        season: s.season,
        windows: starts.len(),
        horizon: h,
    })
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
    fn baselines_repeat_the_last_value_and_the_last_season() {
        let past = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(naive(&past, 3), vec![6.0; 3]);
        assert_eq!(seasonal_naive(&past, 5, 3), vec![4.0, 5.0, 6.0, 4.0, 5.0]);
        assert_eq!(seasonal_naive(&past, 2, 10), vec![6.0, 6.0]);
        // A purely seasonal series is forecast exactly by seasonal naive.
        let x: Vec<f32> = (0..40).map(|t| [3.0, 1.0, 4.0, 1.0, 5.0][t % 5]).collect();
        let f = seasonal_naive(&x[..30], 10, 5);
        assert_eq!(metrics(&f, &x[30..], mase_scale(&x[..30], 5).max(1e-9)).mae, 0.0);
        assert_eq!(infer_season(&x, 12), 5);
        // Noisy daily and weekly seasons: the day, whatever the noise.
        for seed in 1..6 {
            assert_eq!(infer_season(&crate::data::series::synthetic(24 * 7 * 24, seed), 500), 24, "seed {seed}");
        }
        // A yearly cycle in weekly data under a strong trend (like CO2): 52,
        // not the shorter lag that a trend favours.
        let mut rng = crate::rng::Rng::new(4);
        let weekly: Vec<f32> = (0..1600)
            .map(|t| 0.03 * t as f32 + 3.0 * (2.0 * std::f32::consts::PI * t as f32 / 52.18).sin() + 0.1 * rng.normal())
            .collect();
        assert_eq!(infer_season(&weekly, 500), 52);
        assert_eq!(infer_season(&(0..50).map(|t| t as f32).collect::<Vec<_>>(), 10), 1);
        for n in 0..8 {
            assert_eq!(infer_season(&vec![1.0; n], 10), 1); // short or flat: no season, no panic
        }
    }
}
