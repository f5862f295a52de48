//! The classical baselines (AR, Theta, ETS) against statsmodels 0.15, on
//! real series shipped with statsmodels and two seeded synthetic ones
//! (fixtures: `python3 tools/make_baseline_fixtures.py`).

use serde_json::Value;
use shiftlm::stats::{ar, ets, theta, Baseline};

fn fixtures() -> Vec<Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/classical_baselines.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["series"].as_array().unwrap().clone()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn std(y: &[f64]) -> f64 {
    let m = y.iter().sum::<f64>() / y.len() as f64;
    (y.iter().map(|v| (v - m).powi(2)).sum::<f64>() / y.len() as f64).sqrt()
}

fn assert_close(name: &str, what: &str, ours: &[f64], theirs: &[f64], tol: f64) {
    assert_eq!(ours.len(), theirs.len(), "{name} {what}");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!((a - b).abs() <= tol, "{name} {what}[{i}]: shiftlm {a}, statsmodels {b} (tolerance {tol})");
    }
}

#[test]
fn ar_matches_statsmodels_order_coefficients_and_forecast() {
    for s in fixtures() {
        let name = s["name"].as_str().unwrap();
        let y = floats(&s["y"]);
        let h = s["horizon"].as_u64().unwrap() as usize;
        let want = &s["ar"];
        let fit = ar::fit(&y, want["maxlag"].as_u64().unwrap() as usize).unwrap();
        let aic = floats(&want["aic"]);
        // AIC is a sum over a few hundred rows: relative agreement.
        for (p, (a, b)) in fit.aic.iter().zip(&aic).enumerate() {
            assert!((a - b).abs() <= 1e-8 * b.abs(), "{name} AIC({p}): {a} vs {b}");
        }
        assert_eq!(fit.order(), want["order"].as_u64().unwrap() as usize, "{name}");
        let mut params = vec![fit.constant];
        params.extend(&fit.coefs);
        assert_close(name, "AR params", &params, &floats(&want["params"]), 1e-6 * std(&y).max(1.0));
        assert_close(name, "AR forecast", &fit.forecast(&y, h), &floats(&want["forecast"]), 1e-6 * std(&y));
        // From the rolling-origin entry point too.
        assert_close(name, "AR forecast_from", &fit.forecast_from(&y, &[y.len()], h), &fit.forecast(&y, h), 0.0);
    }
}

#[test]
fn theta_matches_statsmodels() {
    for s in fixtures() {
        let name = s["name"].as_str().unwrap();
        let y = floats(&s["y"]);
        let (m, h) = (s["season"].as_u64().unwrap() as usize, s["horizon"].as_u64().unwrap() as usize);
        let want = &s["theta"];
        let fit = theta::fit(&y, m).unwrap();
        assert_eq!(fit.season.is_some(), want["deseasonalized"].as_bool().unwrap(), "{name}: seasonality test");
        if let Some((kind, idx)) = &fit.season {
            let mul = want["method"].as_str().unwrap().starts_with("mul");
            assert_eq!(*kind == shiftlm::stats::decompose::SeasonKind::Multiplicative, mul, "{name}");
            assert_close(name, "seasonal indices", idx, &floats(&want["seasonal"]), 1e-9 * std(&y).max(1.0));
        }
        assert!((fit.b0 - want["b0"].as_f64().unwrap()).abs() <= 1e-9 * std(&y), "{name} b0");
        // statsmodels' optimiser stops short of α = 1 (at 0.9999); ours
        // finds the bound (α differs by up to 4e-4). The forecast moves by much
        // less than the data's spread.
        let alpha = want["alpha"].as_f64().unwrap();
        assert!((fit.alpha - alpha).abs() < 1e-3, "{name}: α {} vs {alpha}", fit.alpha);
        assert_close(name, "Theta forecast", &fit.forecast(&y, h), &floats(&want["forecast"]), 2e-3 * std(&y));
    }
}

#[test]
fn ets_likelihood_and_forecast_equal_statsmodels_at_its_parameters() {
    let mut exact = 0;
    for s in fixtures() {
        let name = s["name"].as_str().unwrap();
        let y = floats(&s["y"]);
        let h = s["horizon"].as_u64().unwrap() as usize;
        for c in s["ets"].as_array().unwrap() {
            let code = c["model"].as_str().unwrap();
            let spec = ets::Spec::parse(code).unwrap();
            let p = ets::Params {
                alpha: c["alpha"].as_f64().unwrap(),
                beta: c["beta"].as_f64().unwrap(),
                gamma: c["gamma"].as_f64().unwrap(),
                phi: c["phi"].as_f64().unwrap(),
            };
            let init = floats(&c["initial"]);
            let llf = c["llf"].as_f64().unwrap();
            let ours = -0.5 * ets::neg2_loglik(&spec, &p, &init, &y);
            assert!((ours - llf).abs() <= 1e-7 * llf.abs().max(1.0), "{name} {code}: log-likelihood {ours} vs {llf}");
            let fc = ets::forecast(&spec, &p, &init, &y, h);
            assert_close(name, code, &fc, &floats(&c["forecast"]), 1e-7 * std(&y));
            exact += c["exact"].as_bool().unwrap() as usize;
        }
    }
    assert!(exact >= 40, "only {exact} models compared exactly");
}

#[test]
fn ets_fits_at_least_as_well_as_statsmodels_and_picks_by_aicc() {
    let mut report = Vec::new();
    for s in fixtures() {
        let name = s["name"].as_str().unwrap();
        let y = floats(&s["y"]);
        let m = s["season"].as_u64().unwrap() as usize;
        let mut fits = Vec::new();
        for c in s["ets"].as_array().unwrap() {
            let code = c["model"].as_str().unwrap();
            let fit = ets::fit_spec(&y, m, ets::Spec::parse(code).unwrap())
                .unwrap_or_else(|| panic!("{name} {code}: not fitted"));
            let llf = c["llf"].as_f64().unwrap();
            report.push(format!("{name} {code}: shiftlm {:.3}, statsmodels {llf:.3}", fit.loglik));
            // The same likelihood maximised: ours may be higher (statsmodels
            // can stop in a worse optimum), never more than 0.01 lower. With
            // a multiplicative season statsmodels' model differs (see the
            // fixture script) and its parameters only give a reference
            // point for ours, which a 17-parameter search must come within
            // 1 of.
            let slack = if c["exact"].as_bool().unwrap() { 0.01 } else { 1.0 };
            assert!(fit.loglik >= llf - slack, "{}", report.join("\n"));
            fits.push(fit);
        }
        let best = ets::fit(&y, m).unwrap();
        let lowest = fits.iter().map(|f| f.aicc).fold(f64::INFINITY, f64::min);
        assert_eq!(best.aicc, lowest, "{name}: {} is not the lowest AICc", best.describe());
    }
    println!("{}", report.join("\n"));
}
