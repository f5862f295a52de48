//! AR(p) with a constant, the order chosen by AIC, as statsmodels'
//! `ar_select_order(y, maxlag, ic="aic", trend="c")` followed by
//! `AutoReg(y, p, trend="c").fit()`:
//!
//! - every order 0..=maxlag is fitted by least squares on the same rows
//!   (`y[maxlag..]`), and scored by AIC = n·(ln(2π·RSS/n) + 1) + 2(p + 1);
//! - the chosen order is refitted on all the rows it can use (`y[p..]`);
//! - forecasts are recursive: yₜ = c + Σᵢ φᵢ·yₜ₋ᵢ, each step reading the
//!   forecasts before it.

use super::{lstsq, Baseline};

/// A fitted AR(p).
#[derive(Debug, Clone, PartialEq)]
pub struct Ar {
    /// The constant c.
    pub constant: f64,
    /// φ₁ … φₚ (lag 1 first).
    pub coefs: Vec<f64>,
    /// The AIC of each order 0..=maxlag on the common rows.
    pub aic: Vec<f64>,
}

/// The largest order tried by default: R's `ar()` bound, 10·log₁₀(n),
/// kept below a third of the rows so every order has data to spare.
pub fn default_maxlag(n: usize) -> usize {
    let r = (10.0 * (n.max(1) as f64).log10()).floor() as usize;
    r.min(n / 3).max(1)
}

/// The design matrix of lags 1..=p with a constant for targets `y[start..]`:
/// row t is [1, y[t-1], …, y[t-p]].
fn design(y: &[f64], start: usize, p: usize) -> Vec<f64> {
    (start..y.len()).flat_map(|t| std::iter::once(1.0).chain((1..=p).map(move |i| y[t - i]))).collect()
}

/// Fits AR(p) for p in 0..=maxlag and keeps the order with the lowest AIC.
/// `None` when the series is too short (fewer than maxlag + 2 rows past the
/// held-back ones) or the regression is singular (a constant series).
pub fn fit(y: &[f64], maxlag: usize) -> Option<Ar> {
    if y.len() < 2 * maxlag + 3 || y.iter().all(|&v| v == y[0]) {
        return None; // too short, or constant: nothing to model
    }
    let n = y.len() - maxlag;
    let target = &y[maxlag..];
    let mut aic = Vec::with_capacity(maxlag + 1);
    for p in 0..=maxlag {
        // A singular order (its lags exactly collinear) is skipped: AIC +∞.
        let Some((_, rss)) = lstsq::solve(&design(y, maxlag, p), n, p + 1, target) else {
            aic.push(f64::INFINITY);
            continue;
        };
        let nf = n as f64;
        aic.push(nf * ((2.0 * std::f64::consts::PI * rss / nf).ln() + 1.0) + 2.0 * (p as f64 + 1.0));
    }
    // The first order with the lowest AIC (statsmodels sorts stably); none
    // when every order is singular.
    let p = (0..=maxlag).fold(0, |best, p| if aic[p] < aic[best] { p } else { best });
    if !aic[p].is_finite() {
        return None;
    }
    let (coef, _) = lstsq::solve(&design(y, p, p), y.len() - p, p + 1, &y[p..])?;
    Some(Ar { constant: coef[0], coefs: coef[1..].to_vec(), aic })
}

impl Ar {
    /// The order p.
    pub fn order(&self) -> usize {
        self.coefs.len()
    }

    /// The `h` values after `history`, recursively.
    pub fn forecast(&self, history: &[f64], h: usize) -> Vec<f64> {
        let p = self.order();
        let mut buf: Vec<f64> = history[history.len().saturating_sub(p)..].to_vec();
        for _ in 0..h {
            let l = buf.len();
            let v = self.constant + (1..=p.min(l)).map(|i| self.coefs[i - 1] * buf[l - i]).sum::<f64>();
            buf.push(v);
        }
        buf.split_off(buf.len() - h)
    }
}

impl Baseline for Ar {
    fn describe(&self) -> String {
        format!("AR({})", self.order())
    }

    fn forecast_from(&self, y: &[f64], origins: &[usize], h: usize) -> Vec<f64> {
        origins.iter().flat_map(|&o| self.forecast(&y[..o.min(y.len())], h)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn recovers_a_known_ar2() {
        // yₜ = 1 + 0.6 yₜ₋₁ − 0.3 yₜ₋₂ + ε, 2000 steps.
        let mut rng = Rng::new(3);
        let mut y = vec![0.0f64, 0.0];
        for t in 2..2000 {
            let e = (rng.next_f32() as f64 - 0.5) * 0.5;
            y.push(1.0 + 0.6 * y[t - 1] - 0.3 * y[t - 2] + e);
        }
        let ar = fit(&y, 8).unwrap();
        assert_eq!(ar.order(), 2, "AIC {:?}", ar.aic);
        assert!((ar.coefs[0] - 0.6).abs() < 0.05 && (ar.coefs[1] + 0.3).abs() < 0.05, "{ar:?}");
        // The forecast converges to the mean c / (1 − Σφ).
        let f = ar.forecast(&y, 200);
        let mean = ar.constant / (1.0 - ar.coefs.iter().sum::<f64>());
        assert!((f[199] - mean).abs() < 1e-6);
    }

    #[test]
    fn a_constant_or_short_series_is_not_fitted() {
        assert!(fit(&[5.0; 50], 4).is_none());
        assert!(fit(&[1.0, 2.0, 3.0], 4).is_none());
    }
}
