//! Parity with PyTorch for the forecasters.
//!
//! Fixtures come from `python3 tools/make_forecast_fixtures.py` (PyTorch,
//! float64 reference): nn.LSTM/nn.GRU encoder–decoders rolled out over the
//! horizon, a pre-LN Transformer encoder with a direct head, NLinear and
//! DLinear (linear maps of the window, DLinear's through a moving-average
//! split) and N-BEATS' generic stack, all reading windows relative to their
//! last target value. Checked: the shift
//! (decoder input and labels), the teacher-forced and free-running
//! forecasts, the MSE/MAE/Huber sums, and every parameter's gradient.
//! Tolerances: forecasts and losses 1e-5 relative, gradients 1e-4 relative
//! (to the largest magnitude of each tensor).

use candle_core::{Device, Tensor};
use shiftlm::data::shift::{BatchTensors, ForecastBatch};
use shiftlm::model::{Model, ModelConfig};
use shiftlm::nn::loss::{regression_loss_sum, RegressionLoss};
use shiftlm::nn::ParamStore;
use std::collections::HashMap;
use std::path::Path;

fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    // A key projection's bias gets an exactly zero gradient (softmax ignores a
    // shift shared by all keys): the reference holds float64 noise there, so
    // the error is measured against a scale of 0.1 (absolute 1e-5).
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    diff / if scale < 1e-12 { 0.1 } else { scale }
}

fn check(name: &str) {
    let dev = Device::Cpu;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("forecast_{name}.json"))).unwrap()).unwrap();
    let cfg: ModelConfig = serde_json::from_value(meta["model"].clone()).unwrap();
    let fx: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join(format!("forecast_{name}.safetensors")), &dev).unwrap();
    let store = ParamStore::new(0, &dev);
    let model = Model::new(&cfg, store.var_builder()).unwrap();
    let vars = store.vars();
    assert_eq!(vars.len(), fx.keys().filter(|k| k.starts_with("param.")).count(), "{name}: parameter count");
    for (k, _) in &vars {
        store.set(k, fx.get(&format!("param.{k}")).unwrap_or_else(|| panic!("{name}: fixture lacks {k}"))).unwrap();
    }

    // The shift core cuts the same decoder input and labels from each row's series.
    let (past, dec_in, labels) = (&fx["input.past"], &fx["input.dec_in"], &fx["input.labels"]);
    let (b, l, f) = past.dims3().unwrap();
    let (_, h, n) = labels.dims3().unwrap();
    for row in 0..b {
        let cols: Vec<Vec<f32>> = (0..f)
            .map(|c| {
                let p =
                    past.get(row).unwrap().narrow(1, c, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let y: Vec<f32> = if c < n {
                    labels.get(row).unwrap().narrow(1, c, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap()
                } else {
                    vec![0.0; h]
                };
                p.into_iter().chain(y).collect()
            })
            .collect();
        let batch = ForecastBatch::new(&cols, n, &[0], l, h, true);
        assert_eq!(batch.dec_in.unwrap(), dec_in.get(row).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert_eq!(batch.labels, labels.get(row).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
    }

    let m = model.forecaster().unwrap();
    let free = m.forward(past, None, None).unwrap();
    let e = rel_err(&free, &fx["expected.free"]);
    assert!(e < 1e-5, "{name}: free-running forecast rel err {e}");
    let t = shiftlm::data::shift::ForecastTensors {
        past: past.clone(),
        dec_in: Some(dec_in.clone()),
        labels: labels.clone(),
        n_supervised: b * h * n,
    };
    let (mse, forced) = model.loss_sum(&BatchTensors::Forecast(t), None).unwrap();
    let e = rel_err(&forced, &fx["expected.forced"]);
    assert!(e < 1e-5, "{name}: teacher-forced forecast rel err {e}");
    let delta = meta["huber_delta"].as_f64().unwrap() as f32;
    for (kind, key) in [(RegressionLoss::Mae, "expected.mae"), (RegressionLoss::Huber { delta }, "expected.huber")] {
        let v = regression_loss_sum(&forced, labels, kind).unwrap();
        let e = rel_err(&v.reshape(1).unwrap(), &fx[key]);
        assert!(e < 1e-5, "{name}: {key} rel err {e}");
    }
    let e = rel_err(&mse.reshape(1).unwrap(), &fx["expected.mse"]);
    assert!(e < 1e-5, "{name}: MSE rel err {e}");

    let grads = mse.backward().unwrap();
    for (k, var) in &vars {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient for {k}"));
        let e = rel_err(g, &fx[&format!("grad.{k}")]);
        assert!(e < 1e-4, "{name}: gradient of {k} rel err {e}");
    }
}

#[test]
fn lstm_forecaster_matches_pytorch() {
    check("lstm");
}

#[test]
fn gru_forecaster_matches_pytorch() {
    check("gru");
}

#[test]
fn transformer_forecaster_matches_pytorch() {
    check("transformer");
}

#[test]
fn nlinear_forecaster_matches_pytorch() {
    check("nlinear");
}

#[test]
fn nbeats_forecaster_matches_pytorch() {
    check("nbeats");
}

#[test]
fn dlinear_forecaster_matches_pytorch() {
    check("dlinear");
}

#[test]
fn revin_forecaster_matches_pytorch() {
    check("gru_revin");
}

/// The quantile head: Q = 3 outputs per target and step, the median read
/// back by the free-running decoder, trained with the pinball loss.
#[test]
fn quantile_forecaster_matches_pytorch() {
    let dev = Device::Cpu;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("forecast_lstm_quantiles.json")).unwrap()).unwrap();
    let cfg: ModelConfig = serde_json::from_value(meta["model"].clone()).unwrap();
    let fx: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join("forecast_lstm_quantiles.safetensors"), &dev).unwrap();
    let store = ParamStore::new(0, &dev);
    let model = Model::new(&cfg, store.var_builder()).unwrap();
    let vars = store.vars();
    for (k, _) in &vars {
        store.set(k, &fx[&format!("param.{k}")]).unwrap();
    }
    let (past, dec_in, labels) = (&fx["input.past"], &fx["input.dec_in"], &fx["input.labels"]);
    let m = model.forecaster().unwrap();
    let free = m.forward_quantiles(past, None, None).unwrap();
    let e = rel_err(&free, &fx["expected.free_quantiles"]);
    assert!(e < 1e-5, "free-running quantiles rel err {e}");
    // The point forecast is the median.
    let point = m.forward(past, None, None).unwrap();
    let e = rel_err(&point, &fx["expected.free_quantiles"].narrow(3, 1, 1).unwrap().squeeze(3).unwrap());
    assert!(e < 1e-5, "point forecast rel err {e}");
    let forced = m.forward_quantiles(past, Some(dec_in), None).unwrap();
    assert!(rel_err(&forced, &fx["expected.forced_quantiles"]) < 1e-5);
    let (b, h, n) = labels.dims3().unwrap();
    let t = shiftlm::data::shift::ForecastTensors {
        past: past.clone(),
        dec_in: Some(dec_in.clone()),
        labels: labels.clone(),
        n_supervised: b * h * n,
    };
    let (loss, _) = model.loss_sum(&BatchTensors::Forecast(t), None).unwrap();
    let e = rel_err(&loss.reshape(1).unwrap(), &fx["expected.pinball"]);
    assert!(e < 1e-5, "pinball loss rel err {e}");
    let grads = loss.backward().unwrap();
    for (k, var) in &vars {
        let e = rel_err(grads.get(var.as_tensor()).unwrap(), &fx[&format!("grad.{k}")]);
        assert!(e < 1e-4, "gradient of {k} rel err {e}");
    }
}
