//! Exponential smoothing in Hyndman's innovations state-space form (ETS:
//! Hyndman, Koehler, Ord & Snyder 2008), fitted and chosen as R's
//! `forecast::ets` does by default:
//!
//! - error additive or multiplicative; trend none, additive or additive
//!   damped; season none, additive or multiplicative (for 2 ≤ m ≤ 24), within
//!   R's restricted set (no additive error with a multiplicative season; no
//!   multiplicative component on data that are not all positive; no
//!   multiplicative trend);
//! - parameters and initial states by maximum likelihood (Nelder–Mead under
//!   the usual bounds: 10⁻⁴ ≤ α ≤ 0.9999, 10⁻⁸ ≤ β ≤ α, 10⁻⁸ ≤ γ ≤ 1 − α,
//!   0.8 ≤ φ ≤ 0.98 (R's lower bound for β and γ is 10⁻⁴, statsmodels'
//!   10⁻⁴·α and 10⁻⁴·(1 − α), so this region holds both); a
//!   linear model's initial state solved by least squares at each step);
//! - the model with the lowest AICc.
//!
//! Written here rather than taken from `augurs-ets` (which the issue
//! suggested, and which we tried): augurs-ets 0.10 has no seasonal models
//! (fitting one reaches `unimplemented!`), and its fitted models do not
//! expose their parameters, which scoring the test windows with the
//! parameters fixed on the training rows needs.
//!
//! The recursion (R's `etscalc`), with q = ℓ + φb the level-and-trend part
//! and s the state's oldest seasonal value (one season ago):
//!
//! ```text
//!   ŷ = q + s  |  q·s  |  q             (additive, multiplicative, no season)
//!   ℓ' = q + α·(y − s − q)   or  q + α·(y/s − q)   or  q + α·(y − q)
//!   b' = φb + (β/α)·(ℓ' − ℓ − φb)
//!   s' = s + γ·((y − q) − s)  or  s + γ·(y/q − s)
//! ```
//!
//! The update is the same for both error types; the error type changes the
//! likelihood: −2 log L = n·(ln(2π·Σe²/n) + 1) + 2·Σ ln|ŷ| (the last term
//! for multiplicative errors), e = y − ŷ or (y − ŷ)/ŷ.

use super::decompose::{seasonal_indices, SeasonKind};
use super::nelder_mead::minimize;
use super::Baseline;

/// The trend component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trend {
    /// No trend.
    None,
    /// An additive trend.
    Additive,
    /// An additive trend damped by φ.
    Damped,
}

/// An ETS model's components.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Multiplicative (true) or additive errors.
    pub multiplicative_error: bool,
    /// The trend.
    pub trend: Trend,
    /// The season, if any.
    pub season: Option<SeasonKind>,
}

impl Spec {
    /// Parses `ANN`, `MAdM`, …: error, trend (`N`, `A`, `Ad`), season.
    pub fn parse(code: &str) -> Option<Spec> {
        let c: Vec<char> = code.chars().collect();
        let error = match c.first()? {
            'A' => false,
            'M' => true,
            _ => return None,
        };
        let (trend, rest) = match (c.get(1)?, c.get(2)) {
            ('A', Some('d')) => (Trend::Damped, 3),
            ('A', _) => (Trend::Additive, 2),
            ('N', _) => (Trend::None, 2),
            _ => return None,
        };
        let season = match (c.get(rest)?, c.len() == rest + 1) {
            ('N', true) => None,
            ('A', true) => Some(SeasonKind::Additive),
            ('M', true) => Some(SeasonKind::Multiplicative),
            _ => return None,
        };
        Some(Spec { multiplicative_error: error, trend, season })
    }

    /// `ETS(M,Ad,N)`-style name.
    pub fn name(&self) -> String {
        let e = if self.multiplicative_error { "M" } else { "A" };
        let t = match self.trend {
            Trend::None => "N",
            Trend::Additive => "A",
            Trend::Damped => "Ad",
        };
        let s = match self.season {
            None => "N",
            Some(SeasonKind::Additive) => "A",
            Some(SeasonKind::Multiplicative) => "M",
        };
        format!("ETS({e},{t},{s})")
    }
}

/// Smoothing parameters (β, γ unused without trend or season; φ = 1 without damping).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Level, α.
    pub alpha: f64,
    /// Trend, β.
    pub beta: f64,
    /// Season, γ.
    pub gamma: f64,
    /// Damping, φ.
    pub phi: f64,
}

/// The filter's state: level, trend and a ring of the last m seasonal
/// values (the oldest at `head`).
#[derive(Debug, Clone)]
struct State {
    level: f64,
    slope: f64,
    season: Vec<f64>,
    head: usize,
}

impl State {
    /// From `[ℓ, b, s₀, s₋₁, …, s₋₍ₘ₋₁₎]` (most recent season first; no
    /// seasonal values without a season).
    fn new(initial: &[f64]) -> State {
        let mut season: Vec<f64> = initial[2..].to_vec();
        season.reverse(); // oldest first, at head 0
        State { level: initial[0], slope: initial[1], season, head: 0 }
    }

    fn q(&self, spec: &Spec, p: &Params) -> f64 {
        match spec.trend {
            Trend::None => self.level,
            Trend::Additive => self.level + self.slope,
            Trend::Damped => self.level + p.phi * self.slope,
        }
    }

    /// The one-step forecast ŷ.
    fn one_step(&self, spec: &Spec, p: &Params) -> f64 {
        let q = self.q(spec, p);
        match spec.season {
            None => q,
            Some(SeasonKind::Additive) => q + self.season[self.head],
            Some(SeasonKind::Multiplicative) => q * self.season[self.head],
        }
    }

    fn update(&mut self, spec: &Spec, p: &Params, y: f64) {
        let q = self.q(spec, p);
        let s = self.season.get(self.head).copied().unwrap_or(0.0);
        let adjusted = match spec.season {
            None => y,
            Some(SeasonKind::Additive) => y - s,
            Some(SeasonKind::Multiplicative) => y / s,
        };
        let level = q + p.alpha * (adjusted - q);
        if spec.trend != Trend::None {
            let phib = if spec.trend == Trend::Damped { p.phi * self.slope } else { self.slope };
            self.slope = phib + (p.beta / p.alpha) * (level - self.level - phib);
        }
        if let Some(kind) = spec.season {
            let t = match kind {
                SeasonKind::Additive => y - q,
                SeasonKind::Multiplicative => y / q,
            };
            self.season[self.head] = s + p.gamma * (t - s);
            self.head = (self.head + 1) % self.season.len();
        }
        self.level = level;
    }

    /// The forecasts 1..=h steps ahead.
    fn forecast(&self, spec: &Spec, p: &Params, h: usize) -> impl Iterator<Item = f64> + '_ {
        let (spec, p) = (*spec, *p);
        let mut damp = 0.0;
        (1..=h).map(move |k| {
            damp += match spec.trend {
                Trend::None => 0.0,
                Trend::Additive => 1.0,
                Trend::Damped => p.phi.powi(k as i32),
            };
            let q = self.level + damp * self.slope;
            let m = self.season.len().max(1);
            let s = || self.season[(self.head + (k - 1) % m) % m];
            match spec.season {
                None => q,
                Some(SeasonKind::Additive) => q + s(),
                Some(SeasonKind::Multiplicative) => q * s(),
            }
        })
    }
}

/// −2 log-likelihood of `y` under `spec` with parameters `p` and initial
/// state `initial` (`[ℓ, b, s₀, …, s₋₍ₘ₋₁₎]`); +∞ where the model is not
/// defined (a multiplicative forecast at 0, a non-finite value).
pub fn neg2_loglik(spec: &Spec, p: &Params, initial: &[f64], y: &[f64]) -> f64 {
    let mut st = State::new(initial);
    let (mut sse, mut logs) = (0.0, 0.0);
    for &v in y {
        let f = st.one_step(spec, p);
        if !f.is_finite() {
            return f64::INFINITY;
        }
        let e = if spec.multiplicative_error {
            if f.abs() < 1e-10 {
                return f64::INFINITY;
            }
            logs += f.abs().ln();
            (v - f) / f
        } else {
            v - f
        };
        sse += e * e;
        st.update(spec, p, v);
    }
    let n = y.len() as f64;
    let v = n * ((2.0 * std::f64::consts::PI * sse / n).ln() + 1.0) + 2.0 * logs;
    if v.is_finite() {
        v
    } else {
        f64::INFINITY
    }
}

/// The `h` forecasts after filtering all of `y` from `initial`.
pub fn forecast(spec: &Spec, p: &Params, initial: &[f64], y: &[f64], h: usize) -> Vec<f64> {
    let mut st = State::new(initial);
    y.iter().for_each(|&v| st.update(spec, p, v));
    st.forecast(spec, p, h).collect()
}

/// A fitted ETS model.
#[derive(Debug, Clone, PartialEq)]
pub struct Ets {
    /// Its components.
    pub spec: Spec,
    /// Its smoothing parameters.
    pub params: Params,
    /// The initial state `[ℓ, b, s₀, …, s₋₍ₘ₋₁₎]`, in the data's units.
    pub initial: Vec<f64>,
    /// The log-likelihood on the training rows.
    pub loglik: f64,
    /// Its AICc.
    pub aicc: f64,
}

/// The candidates R's `ets` tries for data with season `m` (positive data
/// allow multiplicative components).
pub fn candidates(m: usize, positive: bool) -> Vec<Spec> {
    let mut out = Vec::new();
    for multiplicative_error in [false, true] {
        for trend in [Trend::None, Trend::Additive, Trend::Damped] {
            for season in [None, Some(SeasonKind::Additive), Some(SeasonKind::Multiplicative)] {
                let allowed = match (multiplicative_error, season) {
                    // Multiplicative parts need positive data.
                    (true, _) if !positive => false,
                    // R's seasonal models stop at m = 24.
                    (_, Some(_)) if !(2..=24).contains(&m) => false,
                    // Restricted: no additive error with a multiplicative season.
                    (false, Some(SeasonKind::Multiplicative)) => false,
                    _ => true,
                };
                if !allowed {
                    continue;
                }
                out.push(Spec { multiplicative_error, trend, season });
            }
        }
    }
    out
}

/// The initial state minimising a linear model's squared one-step errors
/// for parameters `p`, and −2 log L there. A linear model (additive error,
/// no multiplicative season) has one-step errors affine in the initial
/// state, e = e(0) + A·x₀, so x₀ is a least-squares solution: column j of A
/// is the error of the filter started from unit vector j on an all-zero
/// series. The free coordinates are ℓ₀, b₀ and s₀ … s₋₍ₘ₋₂₎; the last
/// seasonal value is minus the sum of the others.
fn concentrated(spec: &Spec, p: &Params, m: usize, y: &[f64]) -> Option<(Vec<f64>, f64)> {
    let has_trend = spec.trend != Trend::None;
    let seasons = if spec.season.is_some() { m } else { 0 };
    let width = 2 + seasons;
    // The free coordinates: ℓ₀, b₀, s₀ … s₋₍ₘ₋₂₎.
    let mut free = vec![0usize];
    if has_trend {
        free.push(1);
    }
    free.extend(2..2 + seasons.saturating_sub(1));
    // System 0 filters the data from a zero state; system 1 + i filters zeros
    // from unit vector i. All run in one pass: in error-correction form a
    // linear model's update is ℓ' = q + αe, b' = φb + βe, s' = s + γe.
    let k1 = free.len() + 1;
    let n = y.len();
    let phi = match spec.trend {
        Trend::Damped => p.phi,
        _ => 1.0,
    };
    let (mut level, mut slope) = (vec![0.0; k1], vec![0.0; k1]);
    let mut ring = vec![0.0; seasons.max(1) * k1]; // [slot][system], the oldest at `head`
    for (i, &j) in free.iter().enumerate() {
        match j {
            0 => level[i + 1] = 1.0,
            1 => slope[i + 1] = 1.0,
            _ => {
                // Logical sⱼ₋₂ sits in slot m − 1 − (j − 2); the last seasonal value is minus the sum.
                ring[(m - 1 - (j - 2)) * k1 + i + 1] = 1.0;
                ring[i + 1] = -1.0;
            }
        }
    }
    let mut errs = vec![0.0; k1 * n];
    let mut head = 0;
    for (t, &v0) in y.iter().enumerate() {
        let slot = &mut ring[head * k1..(head + 1) * k1];
        for i in 0..k1 {
            let q = if has_trend { level[i] + phi * slope[i] } else { level[i] };
            let so = if seasons > 0 { slot[i] } else { 0.0 };
            let v = if i == 0 { v0 } else { 0.0 };
            let e = v - q - so;
            errs[i * n + t] = e;
            level[i] = q + p.alpha * e;
            slope[i] = phi * slope[i] + p.beta * e;
            slot[i] = so + p.gamma * e;
        }
        if seasons > 0 {
            head = (head + 1) % seasons;
        }
    }
    let target: Vec<f64> = errs[..n].iter().map(|e| -e).collect();
    let cols: Vec<Vec<f64>> = (1..k1).map(|i| errs[i * n..(i + 1) * n].to_vec()).collect();
    let (c, sse) = super::lstsq::solve_columns(&cols, &target)?;
    let mut init = vec![0.0; width];
    for (&j, v) in free.iter().zip(&c) {
        init[j] = *v;
        if j >= 2 {
            init[width - 1] -= v;
        }
    }
    let nf = n as f64;
    let neg2 = nf * ((2.0 * std::f64::consts::PI * sse / nf).ln() + 1.0);
    neg2.is_finite().then_some((init, neg2))
}

/// Fits one model by maximum likelihood. `None` when the series is too
/// short for its parameters, constant, or no feasible start exists.
pub fn fit_spec(y: &[f64], m: usize, spec: Spec) -> Option<Ets> {
    let n = y.len();
    let m = if spec.season.is_some() { m } else { 1 };
    let has_trend = spec.trend != Trend::None;
    let has_season = spec.season.is_some();
    let damped = spec.trend == Trend::Damped;
    // Free parameters: α, β, γ, φ as present, ℓ₀, b₀, and m − 1 seasonal
    // states (the last is set so the season sums to 0, or averages 1).
    let n_smooth = 1 + has_trend as usize + has_season as usize + damped as usize;
    let k = n_smooth + 1 + has_trend as usize + if has_season { m - 1 } else { 0 };
    if n < k + 3 || y.iter().any(|v| !v.is_finite()) {
        return None;
    }
    // Work in units of the series' spread: the likelihood of every model
    // shifts by the same constant, and the simplex steps suit any series.
    let mean = super::mean(y);
    let scale = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    if scale.is_nan() || scale <= 0.0 {
        return None;
    }
    let ys: Vec<f64> = y.iter().map(|v| v / scale).collect();
    // A linear model's initial state is solved for (see `concentrated`);
    // the others' is searched with the smoothing parameters.
    let linear = !spec.multiplicative_error && spec.season != Some(SeasonKind::Multiplicative);

    // Starting states as R's `initstate`: the season from a classical
    // decomposition, then a line through the first max(10, 2m) adjusted values.
    let idx = match spec.season {
        Some(kind) if !linear => Some(seasonal_indices(&ys, m, kind)?),
        _ => None,
    };
    let adjusted: Vec<f64> = match (&idx, spec.season) {
        (Some(idx), Some(SeasonKind::Additive)) => ys.iter().enumerate().map(|(t, v)| v - idx[t % m]).collect(),
        (Some(idx), Some(SeasonKind::Multiplicative)) => {
            ys.iter().enumerate().map(|(t, v)| v / idx[t % m].max(1e-2)).collect()
        }
        _ => ys.clone(),
    };
    let maxn = 10.max(2 * m).min(n);
    let first = &adjusted[..maxn];
    let (l0, b0) = if has_trend {
        // Least squares on t = 1..=maxn: the intercept is the level at t = 0.
        let tm = (maxn as f64 + 1.0) / 2.0;
        let ym = super::mean(first);
        let sxy: f64 = first.iter().enumerate().map(|(i, v)| (i as f64 + 1.0 - tm) * (v - ym)).sum();
        let sxx: f64 = (1..=maxn).map(|t| (t as f64 - tm).powi(2)).sum();
        let b = sxy / sxx;
        (ym - b * tm, b)
    } else {
        (super::mean(first), 0.0)
    };
    // The free vector from starting smoothing parameters: α, β as a
    // fraction of α, γ as a fraction of 1 − α, φ; then the states.
    let start = |alpha0: f64, beta_frac: f64, gamma_frac: f64, phi0: f64| -> (Vec<f64>, Vec<f64>) {
        let mut x0 = vec![alpha0];
        let mut step = vec![0.1];
        if has_trend {
            x0.push((beta_frac * alpha0).max(1e-4));
            step.push(0.01);
        }
        if has_season {
            x0.push((gamma_frac * (1.0 - alpha0)).max(1e-4));
            step.push(0.05);
        }
        if damped {
            x0.push(phi0);
            step.push(0.05);
        }
        if !linear {
            x0.push(l0);
            step.push(0.1);
            if has_trend {
                x0.push(b0);
                step.push(0.01);
            }
            if let Some(idx) = &idx {
                // s₀ (one step before row 0) has phase m − 1; s₋ⱼ phase m − 1 − j.
                x0.extend((0..m - 1).map(|j| idx[m - 1 - j]));
                let s = if spec.season == Some(SeasonKind::Additive) { 0.1 } else { 0.05 };
                step.extend(std::iter::repeat_n(s, m - 1));
            }
        }
        (x0, step)
    };

    // The smoothing parameters from the free vector; None outside the bounds.
    // The smoothing parameters from the free vector, moved into the bounds,
    // and how far they had to move (squared). Nelder–Mead then sees a
    // surface that is flat beyond a bound plus a penalty, and reaches an
    // optimum in a corner of the bounds (α = 0.9999, β = α, φ = 0.8 is
    // common), which an infinite wall outside makes it creep towards.
    let smoothing = |x: &[f64]| -> Option<(Params, f64)> {
        if x.iter().any(|v| !v.is_finite()) {
            return None; // (`clamp` to a NaN bound would panic)
        }
        let mut it = x.iter().copied();
        let mut moved = 0.0;
        let mut clamp = |v: f64, lo: f64, hi: f64| {
            let c = v.clamp(lo, hi);
            moved += (v - c) * (v - c);
            c
        };
        let alpha = clamp(it.next()?, 1e-4, 0.9999);
        let beta = if has_trend { clamp(it.next()?, 1e-8, alpha) } else { 0.0 };
        let gamma = if has_season { clamp(it.next()?, 1e-8, 1.0 - alpha) } else { 0.0 };
        let phi = if damped { clamp(it.next()?, 0.8, 0.98) } else { 1.0 };
        Some((Params { alpha, beta, gamma, phi }, moved))
    };
    // The full initial state from the free vector's state part.
    let states = |x: &[f64]| -> Option<Vec<f64>> {
        let mut it = x.iter().copied();
        let mut initial = vec![it.next()?, if has_trend { it.next()? } else { 0.0 }];
        if let Some(kind) = spec.season {
            let free: Vec<f64> = it.collect();
            let sum: f64 = free.iter().sum();
            let last = match kind {
                SeasonKind::Additive => -sum,
                SeasonKind::Multiplicative => m as f64 - sum,
            };
            if kind == SeasonKind::Multiplicative && (last <= 0.0 || free.iter().any(|&v| v <= 0.0)) {
                return None;
            }
            initial.extend(free);
            initial.push(last);
        }
        Some(initial)
    };
    // −2 log L and the initial state at a free vector.
    let evaluate = |x: &[f64]| -> Option<(Params, Vec<f64>, f64)> {
        let (p, moved) = smoothing(&x[..n_smooth])?;
        let (init, v) = if linear {
            concentrated(&spec, &p, m, &ys)?
        } else {
            let init = states(&x[n_smooth..])?;
            let v = neg2_loglik(&spec, &p, &init, &ys);
            (init, v)
        };
        Some((p, init, v + 1e4 * moved))
    };
    let mut objective = |x: &[f64]| evaluate(x).map_or(f64::INFINITY, |r| r.2);

    // The likelihood has several optima (a trend that follows every
    // difference, β ≈ α, against a slow one), so a single Nelder–Mead run
    // from R's start (α = 0.2/m) can stop in the worse. A coarse grid of
    // smoothing parameters picks more starts; Nelder–Mead runs from
    // each, restarted from its best point until a restart stops improving.
    // With the linear models' states solved for, this finds statsmodels'
    // optimum or a better one on every fixture model.
    let mut grid = Vec::new();
    for a in [1e-4 + 0.2 * (0.9999 - 1e-4) / m as f64, 0.2, 0.5, 0.8, 0.99] {
        for bf in if has_trend { &[0.1, 0.5, 0.99][..] } else { &[0.1][..] } {
            for gf in if has_season { &[0.05, 0.5][..] } else { &[0.05][..] } {
                for phi in if damped { &[0.9, 0.978][..] } else { &[0.978][..] } {
                    let (x0, step) = start(a, *bf, *gf, *phi);
                    let v = objective(&x0);
                    if v.is_finite() {
                        grid.push((v, x0, step));
                    }
                }
            }
        }
    }
    // R's start (the grid's first point) and the best others: one for a
    // linear model (a search over at most four smoothing parameters), two
    // for the others.
    let r_start = (!grid.is_empty()).then(|| grid.remove(0));
    grid.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut best: Option<(Vec<f64>, f64)> = None;
    for (_, x0, step) in r_start.into_iter().chain(grid.into_iter().take(if linear { 1 } else { 2 })) {
        let evals = if linear { 1000 } else { 2000 };
        let (mut x, mut v) = minimize(&mut objective, &x0, &step, 1e-9, evals);
        for _ in 0..6 {
            let (x2, v2) = minimize(&mut objective, &x, &step, 1e-9, evals);
            let gain = v - v2;
            if v2 < v {
                (x, v) = (x2, v2);
            }
            if gain < 1e-4 {
                break;
            }
        }
        if best.as_ref().is_none_or(|b| v < b.1) {
            best = Some((x, v));
        }
    }
    // A last, finer simplex around the best point.
    let (mut x, v) = best?;
    let fine: Vec<f64> = start(0.5, 0.5, 0.5, 0.9).1.iter().map(|s| s * 0.05).collect();
    let (x2, v2) = minimize(&mut objective, &x, &fine, 1e-12, 2000);
    if v2 < v {
        x = x2;
    }
    let (params, mut initial, _) = evaluate(&x)?;
    // Back to the data's units: the level, slope and an additive season scale.
    initial[0] *= scale;
    initial[1] *= scale;
    if spec.season == Some(SeasonKind::Additive) {
        initial[2..].iter_mut().for_each(|v| *v *= scale);
    }
    let neg2 = neg2_loglik(&spec, &params, &initial, y);
    let np = (k + 1) as f64; // the parameters and σ²
    let nf = n as f64;
    if nf - np - 1.0 <= 0.0 || !neg2.is_finite() {
        return None;
    }
    let aicc = neg2 + 2.0 * np + 2.0 * np * (np + 1.0) / (nf - np - 1.0);
    Some(Ets { spec, params, initial, loglik: -0.5 * neg2, aicc })
}

/// Fits every candidate for season `m` (in parallel) and keeps the lowest
/// AICc (the first of equals, in [`candidates`]' order).
pub fn fit(y: &[f64], m: usize) -> Option<Ets> {
    use rayon::prelude::*;
    let positive = y.iter().all(|&v| v > 0.0);
    candidates(m, positive)
        .into_par_iter()
        .filter_map(|spec| fit_spec(y, m, spec))
        .collect::<Vec<_>>()
        .into_iter()
        .min_by(|a, b| a.aicc.total_cmp(&b.aicc))
}

impl Baseline for Ets {
    fn describe(&self) -> String {
        self.spec.name()
    }

    fn forecast_from(&self, y: &[f64], origins: &[usize], h: usize) -> Vec<f64> {
        // One pass of the filter: the state at each origin forecasts from it.
        let mut st = State::new(&self.initial);
        let mut out = Vec::with_capacity(origins.len() * h);
        let mut t = 0;
        for &o in origins {
            let o = o.min(y.len());
            while t < o {
                st.update(&self.spec, &self.params, y[t]);
                t += 1;
            }
            out.extend(st.forecast(&self.spec, &self.params, h));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names_every_candidate() {
        for spec in candidates(12, true) {
            let name = spec.name();
            let code: String = name[4..name.len() - 1].split(',').collect();
            assert_eq!(Spec::parse(&code), Some(spec), "{name}");
        }
        assert_eq!(candidates(12, true).len(), 15);
        assert_eq!(candidates(1, false).len(), 3);
        assert!(Spec::parse("AMN").is_none() && Spec::parse("ANNx").is_none());
    }

    #[test]
    fn a_damped_trend_forecast_levels_off() {
        let spec = Spec::parse("AAdN").unwrap();
        let p = Params { alpha: 0.5, beta: 0.1, gamma: 0.0, phi: 0.9 };
        let f = forecast(&spec, &p, &[10.0, 1.0], &[], 200);
        // ℓ + (φ + φ² + …)·b → 10 + 9·1.
        assert!((f[0] - 10.9).abs() < 1e-12 && (f[199] - 19.0).abs() < 1e-6, "{} {}", f[0], f[199]);
    }
}
