//! Season inference: how many steps a numeric series takes to repeat
//! itself. Seasonal naive and MASE need it, and so does a CSV with no
//! `season` given.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasons_are_found_through_noise_and_trend() {
        let x: Vec<f32> = (0..40).map(|t| [3.0, 1.0, 4.0, 1.0, 5.0][t % 5]).collect();
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
