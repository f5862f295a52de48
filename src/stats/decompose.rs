//! Classical seasonal decomposition and the seasonality test, as
//! statsmodels' `seasonal_decompose` and `ThetaModel._test_seasonality`
//! compute them.

/// Autocorrelations ρ₀ … ρₖ of `y` (demeaned, each lag's sum divided by n,
/// as statsmodels' `acf` with its defaults). All zero but ρ₀ = 1 for a
/// constant series.
pub fn acf(y: &[f64], nlags: usize) -> Vec<f64> {
    let n = y.len();
    let mean = super::mean(y);
    let d: Vec<f64> = y.iter().map(|v| v - mean).collect();
    let c0 = d.iter().map(|v| v * v).sum::<f64>();
    (0..=nlags)
        .map(|k| {
            if k == 0 {
                return 1.0;
            }
            if c0 <= 0.0 || k >= n {
                return 0.0;
            }
            d[..n - k].iter().zip(&d[k..]).map(|(a, b)| a * b).sum::<f64>() / c0
        })
        .collect()
}

/// Whether `y` has a season of length `m`: the statistic n·ρₘ² / Σₖ₌₀^{m−1} ρₖ²
/// exceeds the 90% point of χ²₁ (statsmodels' Theta test).
pub fn has_season(y: &[f64], m: usize) -> bool {
    if m < 2 || y.len() <= m {
        return false;
    }
    let rho = acf(y, m);
    let denom: f64 = rho[..m].iter().map(|r| r * r).sum();
    y.len() as f64 * rho[m] * rho[m] / denom > 2.705543454095404
}

/// How a season combines with the rest of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeasonKind {
    /// y = trend + season + rest.
    Additive,
    /// y = trend × season × rest.
    Multiplicative,
}

/// The seasonal indices of `y` with period `m` (at least 2), one per phase
/// (phase 0 is row 0's): the centred moving average (2×m when m is even)
/// removed, each phase's mean taken, and the indices normalised to mean 0
/// (additive) or 1 (multiplicative). `None` when the series is shorter than
/// two seasons plus one, or a multiplicative ratio is undefined (the trend
/// reaches 0).
pub fn seasonal_indices(y: &[f64], m: usize, kind: SeasonKind) -> Option<Vec<f64>> {
    let n = y.len();
    if m < 2 || n < 2 * m + 1 {
        return None;
    }
    // The centred filter: m + 1 weights (½, 1, …, 1, ½)/m for even m, m ones/m for odd.
    let weights: Vec<f64> = if m.is_multiple_of(2) {
        (0..=m).map(|j| if j == 0 || j == m { 0.5 } else { 1.0 } / m as f64).collect()
    } else {
        vec![1.0 / m as f64; m]
    };
    let half = (weights.len() - 1) / 2;
    let (mut sums, mut counts) = (vec![0.0; m], vec![0usize; m]);
    for t in half..n - half {
        let trend: f64 = weights.iter().enumerate().map(|(j, w)| w * y[t + j - half]).sum();
        let detrended = match kind {
            SeasonKind::Additive => y[t] - trend,
            SeasonKind::Multiplicative if trend != 0.0 => y[t] / trend,
            SeasonKind::Multiplicative => return None,
        };
        sums[t % m] += detrended;
        counts[t % m] += 1;
    }
    let mut idx: Vec<f64> = sums.iter().zip(&counts).map(|(s, &c)| s / c.max(1) as f64).collect();
    let mean = super::mean(&idx);
    match kind {
        SeasonKind::Additive => idx.iter_mut().for_each(|v| *v -= mean),
        SeasonKind::Multiplicative if mean != 0.0 => idx.iter_mut().for_each(|v| *v /= mean),
        SeasonKind::Multiplicative => return None,
    }
    idx.iter().all(|v| v.is_finite()).then_some(idx)
}

/// `y` with the season removed: yₜ − s[t mod m] or yₜ / s[t mod m].
pub fn deseasonalize(y: &[f64], idx: &[f64], kind: SeasonKind) -> Vec<f64> {
    let m = idx.len();
    y.iter()
        .enumerate()
        .map(|(t, v)| match kind {
            SeasonKind::Additive => v - idx[t % m],
            SeasonKind::Multiplicative => v / idx[t % m],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_season() {
        let season = [2.0, -1.0, 0.5, -1.5];
        let y: Vec<f64> = (0..40).map(|t| 10.0 + 0.3 * t as f64 + season[t % 4]).collect();
        let idx = seasonal_indices(&y, 4, SeasonKind::Additive).unwrap();
        for (a, b) in idx.iter().zip(season) {
            assert!((a - b).abs() < 1e-9, "{idx:?}");
        }
        assert!(has_season(&y, 4));
        let mut rng = crate::rng::Rng::new(1);
        let noise: Vec<f64> = (0..200).map(|_| rng.next_f64()).collect();
        assert!(!has_season(&noise, 4));
        assert_eq!(acf(&[3.0; 5], 2), vec![1.0, 0.0, 0.0]);
        assert!(seasonal_indices(&y[..8], 4, SeasonKind::Additive).is_none());
    }
}
