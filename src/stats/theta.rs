//! The Theta method (Assimakopoulos & Nikolopoulos 2000; Hyndman & Billah
//! 2003: simple exponential smoothing with drift), as statsmodels'
//! `ThetaModel(y, period=m).fit()` computes it, θ = 2:
//!
//! 1. When m ≥ 2 and the seasonality test passes, the series is
//!    deseasonalised by classical decomposition: multiplicative when every
//!    value is positive (additive if a multiplicative index comes out ≤ 0),
//!    additive otherwise.
//! 2. The drift b₀ is the slope of a least-squares line through the
//!    deseasonalised series; α is simple exponential smoothing's, chosen to
//!    minimise the one-step squared errors with the first value as the
//!    initial level.
//! 3. The forecast h steps after n observations is
//!    ℓₙ + ½·b₀·(h − 1 + 1/α − (1 − α)ⁿ/α), reseasonalised.

use super::decompose::{deseasonalize, has_season, seasonal_indices, SeasonKind};
use super::nelder_mead::golden;
use super::Baseline;

/// A fitted Theta model.
#[derive(Debug, Clone, PartialEq)]
pub struct Theta {
    /// The drift b₀ (per step).
    pub b0: f64,
    /// SES's smoothing parameter α.
    pub alpha: f64,
    /// The season removed, if any: its kind and indices by phase (phase 0
    /// is the first training row's).
    pub season: Option<(SeasonKind, Vec<f64>)>,
}

/// The SES filter with the first value as the initial level: the one-step
/// forecast after all of `y`, and the sum of squared one-step errors.
fn ses(y: &[f64], alpha: f64) -> (f64, f64) {
    let mut level = y.first().copied().unwrap_or(0.0);
    let mut sse = 0.0;
    for &v in y {
        let e = v - level;
        sse += e * e;
        level += alpha * e;
    }
    (level, sse)
}

/// Fits Theta on `y` with season length `m` (1: none). `None` for fewer
/// than 3 values.
pub fn fit(y: &[f64], m: usize) -> Option<Theta> {
    if y.len() < 3 || y.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let season = if m >= 2 && has_season(y, m) {
        let positive = y.iter().all(|&v| v > 0.0);
        let mul = positive.then(|| seasonal_indices(y, m, SeasonKind::Multiplicative)).flatten();
        match mul {
            Some(idx) if idx.iter().all(|&v| v > 0.0) => Some((SeasonKind::Multiplicative, idx)),
            _ => seasonal_indices(y, m, SeasonKind::Additive).map(|idx| (SeasonKind::Additive, idx)),
        }
    } else {
        None
    };
    let yd = match &season {
        Some((kind, idx)) => deseasonalize(y, idx, *kind),
        None => y.to_vec(),
    };
    // The least-squares slope against t = 0, 1, ….
    let n = yd.len() as f64;
    let tm = (n - 1.0) / 2.0;
    let ym = super::mean(&yd);
    let sxy: f64 = yd.iter().enumerate().map(|(t, v)| (t as f64 - tm) * (v - ym)).sum();
    let sxx: f64 = (0..yd.len()).map(|t| (t as f64 - tm).powi(2)).sum();
    let b0 = sxy / sxx;
    let alpha = golden(&mut |a| ses(&yd, a).1, 0.0, 1.0, 1e-10);
    Some(Theta { b0, alpha, season })
}

impl Theta {
    /// The `h` values after `history`, which starts at the first training row.
    pub fn forecast(&self, history: &[f64], h: usize) -> Vec<f64> {
        self.forecast_from(history, &[history.len()], h)
    }
}

impl Baseline for Theta {
    fn describe(&self) -> String {
        match &self.season {
            Some((SeasonKind::Multiplicative, idx)) => format!("Theta(M,{})", idx.len()),
            Some((SeasonKind::Additive, idx)) => format!("Theta(A,{})", idx.len()),
            None => "Theta".into(),
        }
    }

    fn forecast_from(&self, y: &[f64], origins: &[usize], h: usize) -> Vec<f64> {
        // One SES pass serves every origin: the level after o values.
        let yd = match &self.season {
            Some((kind, idx)) => deseasonalize(y, idx, *kind),
            None => y.to_vec(),
        };
        let mut level = yd.first().copied().unwrap_or(0.0);
        let mut levels = Vec::with_capacity(yd.len() + 1);
        levels.push(level);
        for &v in &yd {
            level += self.alpha * (v - level);
            levels.push(level);
        }
        let a = self.alpha;
        let mut out = Vec::with_capacity(origins.len() * h);
        for &o in origins {
            let o = o.min(yd.len());
            // levels[o] is the level after the first o values (levels[0] the initial one,
            // which equals the level after the first value's zero error).
            let level = levels[o];
            let tail = if a > 0.0 { 1.0 / a - (1.0 - a).powi(o as i32) / a } else { 0.0 };
            out.extend((0..h).map(|i| {
                let v = level + 0.5 * self.b0 * (i as f64 + tail);
                match &self.season {
                    Some((SeasonKind::Multiplicative, idx)) => v * idx[(o + i) % idx.len()],
                    Some((SeasonKind::Additive, idx)) => v + idx[(o + i) % idx.len()],
                    None => v,
                }
            }));
        }
        out
    }
}
