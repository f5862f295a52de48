//! Classical forecasting baselines, fitted on a series' training rows and
//! scored beside every neural forecaster on the same rolling-origin windows:
//!
//! - [`ar`]: AR(p) by least squares, the order chosen by AIC
//!   (statsmodels' `ar_select_order`, `trend="c"`);
//! - [`ets`]: exponential smoothing in Hyndman's state-space form
//!   (error, trend, damping and season chosen by AICc, as R's `ets`);
//! - [`theta`]: the Theta method (Assimakopoulos & Nikolopoulos 2000) as
//!   statsmodels' `ThetaModel` computes it.
//!
//! A fitted model keeps its parameters fixed and forecasts from any history
//! that begins where its training rows began: the filter runs through the
//! history with the fitted parameters (as the neural models run their fixed
//! weights over each window), so the windows of the test split are scored
//! without refitting and without reading the future. Values are `f64`
//! throughout. Nothing here depends on the tensor library.
//!
//! `tests/classical_baselines.rs` checks all three against statsmodels
//! (fixtures from `tools/make_baseline_fixtures.py`).

pub mod ar;
pub mod decompose;
pub mod ets;
pub mod lstsq;
pub mod nelder_mead;
pub mod theta;

/// A classical model fitted on training rows.
pub trait Baseline {
    /// A short description of the fitted model, e.g. `AR(9)`,
    /// `ETS(M,Ad,N)`, `Theta(M,12)` (deseasonalised multiplicatively, season 12).
    fn describe(&self) -> String;

    /// The `h`-step forecasts from each origin in `origins` (ascending;
    /// origin `o` forecasts rows `o..o + h` from rows `..o` of `y`), flattened
    /// to (origins, h). `y` starts at the first training row; rows at and
    /// after an origin are never read for that origin's forecast.
    fn forecast_from(&self, y: &[f64], origins: &[usize], h: usize) -> Vec<f64>;
}

/// The mean of `x` (0 for an empty slice).
pub(crate) fn mean(x: &[f64]) -> f64 {
    if x.is_empty() {
        0.0
    } else {
        x.iter().sum::<f64>() / x.len() as f64
    }
}
