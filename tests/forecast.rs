//! Forecasting: every forecaster overfits a short series and gets a finite,
//! nonzero gradient in every parameter; runs resume bit for bit; the CLI
//! trains on a CSV, evaluates against the baselines, forecasts (CSV + PNG)
//! and refuses bad CSV files with the row and column.

use candle_core::Device;
use shiftlm::config::{DataConfig, RunConfig};
use shiftlm::data::series::{Series, SeriesData};
use shiftlm::data::shift::ForecastBatch;
use shiftlm::data::{Dataset, Tokenizer};
use shiftlm::model::{ForecasterKind, ModelConfig};
use shiftlm::train::{LossHistory, Trainer};
use std::path::Path;
use std::process::{Command, Output};

/// The tiny preset on a short sine series, with the given kind.
fn config(kind: ForecasterKind, steps: usize) -> RunConfig {
    let mut c = RunConfig::preset("series-tiny").unwrap();
    let ModelConfig::Forecaster(m) = &mut c.model else { unreachable!() };
    m.kind = kind;
    m.context = 12;
    m.horizon = 4;
    m.hidden = 16;
    c.train.steps = steps;
    c.train.schedule.decay_steps = steps;
    c.train.schedule.warmup_steps = 0;
    c.train.optimizer.lr = 1e-2;
    c.train.save_every = 0;
    c
}

fn sine(len: usize) -> Dataset {
    let x: Vec<f32> = (0..len).map(|t| (t as f32 * 0.7).sin() + 0.3 * (t as f32 * 0.23).cos()).collect();
    let DataConfig::Series(d) = &RunConfig::preset("series-tiny").unwrap().data else { unreachable!() };
    let series = Series { names: vec!["x".into()], columns: vec![x], timestamps: None, ids: None };
    Dataset::Series(SeriesData::from_series(series, 1, d, None).unwrap())
}

#[test]
fn every_forecaster_overfits_a_short_series() {
    for kind in [
        ForecasterKind::Lstm,
        ForecasterKind::Gru,
        ForecasterKind::Transformer,
        ForecasterKind::NLinear,
        ForecasterKind::DLinear,
        ForecasterKind::NBeats,
    ] {
        let mut c = config(kind, 600);
        // Behind RevIN as well, for one recurrent and one linear kind.
        let ModelConfig::Forecaster(m) = &mut c.model else { unreachable!() };
        m.revin = matches!(kind, ForecasterKind::Gru | ForecasterKind::DLinear);
        let mut t = Trainer::new(c, sine(60), Tokenizer::Values, None).unwrap();
        let mut h = LossHistory::default();
        t.run(&mut h).unwrap();
        let (first, last) = (h.0[0], *h.0.last().unwrap());
        assert!(last < 0.01 * first, "{kind:?}: training MSE {first} → {last}");
    }
}

#[test]
fn every_parameter_gets_a_finite_nonzero_gradient() {
    for (kind, sampling, revin, quantiles) in [
        (ForecasterKind::Lstm, 0.0, false, false),
        (ForecasterKind::Lstm, 0.5, false, false),
        (ForecasterKind::Gru, 0.5, true, false),
        (ForecasterKind::Transformer, 0.0, false, false),
        (ForecasterKind::Transformer, 0.0, true, false),
        (ForecasterKind::NLinear, 0.0, false, false),
        (ForecasterKind::DLinear, 0.0, true, false),
        (ForecasterKind::Lstm, 0.5, false, true),
        (ForecasterKind::DLinear, 0.0, false, true),
        (ForecasterKind::NBeats, 0.0, false, false),
        (ForecasterKind::NBeats, 0.0, true, true),
    ] {
        let mut c = config(kind, 1);
        let ModelConfig::Forecaster(m) = &mut c.model else { unreachable!() };
        m.scheduled_sampling = sampling;
        m.revin = revin;
        if quantiles {
            m.quantiles = vec![0.1, 0.5, 0.9];
        }
        m.n_layer = 2;
        let t = Trainer::new(c, sine(60), Tokenizer::Values, None).unwrap();
        let Dataset::Series(s) = &t.data else { unreachable!() };
        let b = ForecastBatch::new(&s.scaled, 1, &[0, 5, 9], 12, 4, true).tensors(&Device::Cpu).unwrap();
        let batch = shiftlm::data::shift::BatchTensors::Forecast(b);
        let (_, grads, _) =
            shiftlm::train::accumulate(&t.model, &t.store.vars(), &[batch], &mut shiftlm::rng::Rng::new(3)).unwrap();
        for (name, v) in t.store.vars() {
            let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{kind:?}: no gradient for {name}"));
            let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(g.iter().all(|x| x.is_finite()), "{kind:?}: non-finite gradient in {name}");
            assert!(g.iter().any(|&x| x != 0.0), "{kind:?} (sampling {sampling}): zero gradient for {name}");
        }
    }
}

#[test]
fn a_resumed_forecasting_run_is_bit_identical() {
    // An LSTM with scheduled sampling, a quantile LSTM, and DLinear behind RevIN.
    for (kind, quantiles, revin) in [
        (ForecasterKind::Lstm, false, false),
        (ForecasterKind::Lstm, true, false),
        (ForecasterKind::DLinear, false, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(kind, 40);
        let ModelConfig::Forecaster(m) = &mut c.model else { unreachable!() };
        m.scheduled_sampling = if kind == ForecasterKind::Lstm { 0.3 } else { 0.0 };
        if quantiles {
            m.quantiles = vec![0.1, 0.5, 0.9];
        }
        m.revin = revin;
        c.train.save_every = 20;
        let run = dir.path().join("run");
        let data = || shiftlm::data::load(&c.data, c.train.seed, None).unwrap().0;
        let mut whole = Trainer::new(c.clone(), data(), Tokenizer::Values, None).unwrap();
        whole.run(&mut LossHistory::default()).unwrap();
        let mut first = Trainer::new(c.clone(), data(), Tokenizer::Values, Some(run.clone())).unwrap();
        first.run_until(20, &mut LossHistory::default()).unwrap();
        let mut second = Trainer::resume(&run).unwrap();
        second.run(&mut LossHistory::default()).unwrap();
        for ((name, a), (_, b)) in whole.store.vars().iter().zip(second.store.vars().iter()) {
            let (a, b) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(a, b, "{kind:?} (quantiles {quantiles}, RevIN {revin}): {name} differs after resuming");
        }
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// An hourly CSV: date, temperature (a covariate) and load (the target).
fn write_csv(dir: &Path, rows: usize) {
    let mut s = String::from("date,temperature,load\n");
    for t in 0..rows {
        let (day, hour) = (1 + t / 24, t % 24);
        let daily = (2.0 * std::f32::consts::PI * t as f32 / 24.0).sin();
        let temp = 15.0 + 5.0 * daily;
        let noise = ((t as u64 * 2654435761) >> 16) as f32 % 1000.0 / 1000.0 - 0.5;
        s +=
            &format!("2024-01-{day:02} {hour:02}:00,{temp:.2},{:.3}\n", 100.0 + 10.0 * daily + 0.05 * t as f32 + noise);
    }
    std::fs::write(dir.join("load.csv"), s).unwrap();
}

#[test]
fn trains_on_a_csv_evaluates_against_baselines_and_forecasts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_csv(d, 24 * 30);
    let args = [
        "train",
        "--data",
        "load.csv",
        "--target",
        "load",
        "--covariate",
        "temperature",
        "--timestamp",
        "date",
        "--preset",
        "series-tiny",
        "--context",
        "48",
        "--horizon",
        "12",
        "--steps",
        "200",
        "--out",
        "run",
        "--json",
    ];
    let out = ok(&run(d, &args));
    let v = json(&out);
    for k in ["mase", "rmse", "mae", "smape", "mape"] {
        assert!(v[k].is_number(), "{k} in {v}");
    }
    assert!(v["baselines"]["naive"]["mase"].is_number() && v["baselines"]["seasonal_naive"]["mase"].is_number());
    // The classical baselines, with the model each fitted.
    for k in ["ar", "ets", "theta"] {
        assert!(v["baselines"][k]["mase"].is_number() && v["baselines"][k]["model"].is_string(), "{k} in {v}");
    }
    assert!(v["baselines"]["ets"]["model"].as_str().unwrap().starts_with("ETS("), "{v}");
    assert_eq!(v["season"], 24);

    let e = json(&ok(&run(d, &["eval", "--checkpoint", "run", "--data", "load.csv", "--season", "12", "--json"])));
    assert_eq!(e["season"], 12);
    assert!(e["mase"].as_f64().unwrap() > 0.0 && e["baselines"]["seasonal_naive"]["n"].as_u64().unwrap() > 0);

    // Forecast the future: timestamps continue the hourly spacing.
    let f = json(&ok(&run(d, &["forecast", "--checkpoint", "run", "--data", "load.csv", "--json"])));
    assert_eq!(f["horizon"], 12);
    assert_eq!(f["actual_known"], 0);
    assert_eq!(f["timestamps"][0], "2024-01-31 00:00");
    let csv = std::fs::read_to_string(d.join("run/forecast.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "step,timestamp,load");
    assert_eq!(lines.len(), 13);
    assert!(lines[12].starts_with("12,2024-01-31 11:00,"), "{}", lines[12]);
    let png = std::fs::read(d.join("run/forecast.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // A back-test: the actual values are known and written beside the forecast.
    let o = run(d, &["forecast", "--checkpoint", "run", "--origin", "600", "--out", "back.csv", "--json"]);
    assert_eq!(json(&ok(&o))["actual_known"], 12);
    let csv = std::fs::read_to_string(d.join("back.csv")).unwrap();
    assert!(csv.starts_with("step,timestamp,load,actual_load\n1,2024-01-26 00:00,"), "{csv}");
    assert!(d.join("back.png").exists());
    fails(&run(d, &["forecast", "--checkpoint", "run", "--origin", "10"]), &["--origin 10", "48 rows of history"]);
    // Commands for text say what to use instead.
    fails(&run(d, &["generate", "--checkpoint", "run", "--input", "1 2"]), &["is a forecaster", "shiftlm forecast"]);
    fails(&run(d, &["finetune", "--from", "run", "--data", "load.csv"]), &["is a forecaster", "--resume"]);
}

#[test]
fn a_quantile_forecaster_reports_intervals_and_writes_the_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_csv(d, 24 * 20);
    let base = ["train", "--data", "load.csv", "--target", "load", "--preset", "series-tiny", "--horizon", "6"];
    let with = |extra: &[&str]| -> Vec<String> { base.iter().chain(extra).map(|s| s.to_string()).collect() };
    let args = with(&["--quantiles", "0.1,0.5,0.9", "--steps", "60", "--out", "q", "--json"]);
    let v = json(&ok(&run(d, &args.iter().map(String::as_str).collect::<Vec<_>>())));
    let iv = &v["intervals"][0];
    assert_eq!((iv["level"].as_f64(), iv["lower"].as_f64(), iv["upper"].as_f64()), (Some(0.8), Some(0.1), Some(0.9)));
    let cov = iv["coverage"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&cov) && v["wql"].as_f64().unwrap() > 0.0, "{v}");
    // Widened on the validation split, with the head's own coverage beside.
    assert_eq!(iv["calibrated"], true, "{v}");
    assert!((0.0..=1.0).contains(&iv["coverage_uncalibrated"].as_f64().unwrap()), "{v}");
    let f = json(&ok(&run(d, &["forecast", "--checkpoint", "q", "--origin", "300", "--out", "b.csv", "--json"])));
    assert_eq!(f["quantiles"].as_array().unwrap().len(), 3);
    assert_eq!(f["forecast_quantiles"].as_array().unwrap().len(), 6 * 3);
    let csv = std::fs::read_to_string(d.join("b.csv")).unwrap();
    assert!(csv.starts_with("step,timestamp,load,load_q0.1,load_q0.9,actual_load\n"), "{csv}");
    // Each row's bounds are ordered around the median.
    for line in csv.lines().skip(1) {
        let x: Vec<f32> = line.split(',').skip(2).take(3).map(|v| v.parse().unwrap()).collect();
        assert!(x[1] <= x[0] && x[0] <= x[2], "{line}");
    }
    // A resumed run keeps its saved levels: changing them is refused, not ignored.
    fails(&run(d, &["train", "--resume", "q", "--quantiles", "0.2,0.5,0.8"]), &["--resume", "only --steps"]);
    fails(&run(d, &["train", "--resume", "q", "--revin"]), &["only --steps"]);
    // Bad levels are refused with the field named.
    let bad = with(&["--quantiles", "0.1,0.9", "--steps", "1"]);
    fails(&run(d, &bad.iter().map(String::as_str).collect::<Vec<_>>()), &["model.quantiles", "0.5"]);
    let bad = with(&["--quantiles", "0.5,0.2", "--steps", "1"]);
    fails(&run(d, &bad.iter().map(String::as_str).collect::<Vec<_>>()), &["ascending"]);
    let bad = with(&["--quantiles", "0.1,0.5,0.9", "--loss", "mae", "--steps", "1"]);
    fails(&run(d, &bad.iter().map(String::as_str).collect::<Vec<_>>()), &["pinball", "--loss"]);
}

#[test]
fn auto_trains_every_kind_and_keeps_the_lowest_validation_mase() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_csv(d, 24 * 20);
    let args = [
        "train",
        "--data",
        "load.csv",
        "--target",
        "load",
        "--preset",
        "series-tiny",
        "--horizon",
        "6",
        "--steps",
        "20",
        "--model",
        "auto",
        "--folds",
        "2",
        "--out",
        "a",
        "--json",
    ];
    let v = json(&ok(&run(d, &args)));
    let auto = &v["auto"];
    let cands = auto["candidates"].as_array().unwrap();
    let names: Vec<&str> = cands.iter().map(|c| c["name"].as_str().unwrap()).collect();
    for k in
        ["lstm", "gru", "transformer", "nlinear", "dlinear", "nbeats", "ar", "ets", "theta", "seasonal_naive", "naive"]
    {
        assert!(names.contains(&k), "{k} missing from {names:?}");
    }
    for k in ["lstm", "gru", "transformer", "nlinear", "dlinear", "nbeats"] {
        assert!(d.join("a").join(k).is_dir(), "no run folder for {k}");
        assert!(d.join("a/folds").join(format!("{k}-1")).is_dir(), "no fold-1 run folder for {k}");
    }
    // Two folds: the candidates are scored by fold 1's models and fits on the block after
    // fold 1's validation block (the run's own validation block).
    assert_eq!(auto["folds"], 2);
    for c in cands {
        let f: Vec<f64> = c["fold_mase"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert_eq!(f.len(), 1, "{c}");
        assert_eq!(c["valid_mase"].as_f64().unwrap(), f[0], "{c}");
    }
    let chosen = auto["chosen"].as_str().unwrap();
    let valid = |c: &serde_json::Value| c["valid_mase"].as_f64().unwrap_or(f64::INFINITY);
    let best = cands.iter().map(valid).fold(f64::INFINITY, f64::min);
    let c = cands.iter().find(|c| c["name"] == chosen).unwrap();
    assert_eq!(valid(c), best, "{auto}");
    // The combination averages the three best single candidates on the validation windows.
    let mut singles: Vec<&serde_json::Value> = cands.iter().filter(|c| c["name"] != "combination").collect();
    singles.sort_by(|a, b| valid(a).total_cmp(&valid(b)));
    let combination = cands.iter().find(|c| c["name"] == "combination").expect("a combination candidate");
    let top: Vec<&serde_json::Value> = singles[..3].iter().map(|c| &c["name"]).collect();
    assert_eq!(combination["members"].as_array().unwrap().iter().collect::<Vec<_>>(), top);
    // The reported test metrics are the chosen candidate's, with its conformal 80% interval.
    assert_eq!(v["mase"].as_f64(), c["test_mase"].as_f64(), "{v}");
    assert_eq!(v["intervals"][0]["level"], 0.8, "{v}");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("a/auto.json")).unwrap()).unwrap();
    assert_eq!(saved["chosen"], chosen);
    // The widths are tracked along the test windows, at a positive rate per interval.
    let rate = saved["intervals"]["tracking"].as_array().unwrap();
    assert!(rate.len() == 1 && rate[0].as_f64().unwrap() > 0.0, "{saved}");
    // `eval` and `forecast` read the run folder as the chosen model.
    let e = json(&ok(&run(d, &["eval", "--checkpoint", "a", "--json"])));
    assert_eq!((&e["mase"], &e["intervals"]), (&v["mase"], &v["intervals"]), "{e}");
    let f = json(&ok(&run(d, &["forecast", "--checkpoint", "a", "--json"])));
    assert_eq!(f["forecast"].as_array().unwrap().len(), 6);
    let levels: Vec<f64> = f["quantiles"].as_array().unwrap().iter().map(|q| q.as_f64().unwrap()).collect();
    assert!(levels.len() == 3 && levels.iter().zip([0.1, 0.5, 0.9]).all(|(a, b)| (a - b).abs() < 1e-6), "{f}");
    assert!(d.join("a/forecast.csv").exists() && d.join("a/forecast.png").exists());
    // Not a checkpoint for other jobs: the error says what it is.
    fails(&run(d, &["generate", "--checkpoint", "a"]), &["--model auto run", "auto.json"]);
    // Only forecasting data; folds only for auto.
    fails(&run(d, &["train", "--task", "reverse", "--model", "auto", "--steps", "1"]), &["--model auto", "forecast"]);
    fails(&run(d, &["train", "--task", "series", "--folds", "2", "--steps", "1"]), &["--folds", "--model auto"]);
    // Too many folds for the series: refused before anything trains.
    let mut many = args.to_vec();
    let at = many.iter().position(|a| *a == "2").unwrap();
    (many[at], many[at + 2]) = ("9", "b");
    fails(&run(d, &many), &["--folds 9", "use fewer folds"]);
    assert!(!d.join("b").exists());
}

#[test]
fn a_constant_series_is_refused_with_the_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv: String = std::iter::once("t,v\n".to_string()).chain((0..200).map(|i| format!("{i},5\n"))).collect();
    std::fs::write(d.join("flat.csv"), csv).unwrap();
    let o = run(d, &["train", "--data", "flat.csv", "--target", "v", "--preset", "series-tiny", "--steps", "5"]);
    fails(&o, &["flat.csv", "column 'v'", "same value (5)", "140 training rows"]);
    assert!(!d.join("runs").exists(), "nothing is written for a refused series");
}

#[test]
fn bad_csv_files_name_the_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = |file: &str, extra: &[&str]| {
        let mut a = vec!["train", "--data", file, "--target", "load", "--preset", "series-tiny", "--steps", "1"];
        a.extend_from_slice(extra);
        run(d, &a)
    };
    std::fs::write(d.join("bad.csv"), "date,load\n1,10\n2,11\n3,oops\n4,12\n").unwrap();
    fails(&train("bad.csv", &[]), &["bad.csv:4", "column 'load'", "'oops' is not a number", "fill"]);
    std::fs::write(d.join("gap.csv"), "date,load\n1,10\n2,\n").unwrap();
    fails(&train("gap.csv", &[]), &["gap.csv:3", "column 'load' is missing"]);
    fails(&train("gap.csv", &["--fill", "forward"]), &["every split needs a window"]);
    std::fs::write(d.join("first.csv"), "date,load\n1,\n2,11\n").unwrap();
    fails(&train("first.csv", &["--fill", "forward"]), &["first.csv:2", "no earlier value", "--fill zero"]);
    std::fs::write(d.join("cols.csv"), "date,demand\n1,10\n").unwrap();
    fails(&train("cols.csv", &[]), &["cols.csv:1", "no column 'load'", "date, demand"]);
    std::fs::write(d.join("empty.csv"), "").unwrap();
    fails(&train("empty.csv", &[]), &["empty.csv", "empty"]);
    std::fs::write(d.join("latin1.csv"), b"date,load\n1,\xe9\n").unwrap();
    fails(&train("latin1.csv", &[]), &["latin1.csv:2", "UTF-8"]);
    fails(&train("missing.csv", &[]), &["missing.csv"]);
    write_csv(d, 100);
    fails(&run(d, &["train", "--data", "load.csv"]), &["load.csv", "--target COLUMN"]);
    fails(&train("load.csv", &["--context", "500"]), &["context 500"]);
    fails(&train("load.csv", &["--set", "model.dropout=2"]), &["model.dropout"]);
    fails(&train("load.csv", &["--loss", "mae", "--huber-delta", "0.5"]), &["--huber-delta", "mae"]);
    fails(&run(d, &["train", "--preset", "tiny", "--stride", "2"]), &["--stride apply to forecasting"]);
    fails(&train("load.csv", &["--set", "data.series.test_fraction=0"]), &["test fractions must be above 0"]);
    // A spreadsheet's byte-order mark is not part of the first column's name.
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend(std::fs::read(d.join("load.csv")).unwrap());
    std::fs::write(d.join("bom.csv"), bom).unwrap();
    let o = run(
        d,
        &["data", "preview", "--data", "bom.csv", "--target", "load", "--timestamp", "date", "--preset", "series-tiny"],
    );
    ok(&o);
}

#[test]
fn an_ensemble_forecasts_the_median_of_its_members() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_csv(d, 24 * 20);
    let base = ["--data", "load.csv", "--target", "load", "--preset", "series-tiny", "--horizon", "6", "--steps", "20"];
    let mut args = vec!["train"];
    args.extend(base);
    args.extend(["--quantiles", "0.1,0.5,0.9", "--ensemble", "3", "--seed", "7", "--out", "e", "--json"]);
    let trained = json(&ok(&run(d, &args)));
    let members = trained["ensemble"]["members"].as_array().unwrap();
    let seeds: Vec<u64> = members.iter().map(|m| m["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [7, 8, 9]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("e/ensemble.json")).unwrap()).unwrap();
    assert_eq!(&manifest["members"], &trained["ensemble"]["members"]);
    // `eval` reads the folder as one model and scores it as `train` did.
    let evaluated = json(&ok(&run(d, &["eval", "--checkpoint", "e", "--json"])));
    assert_eq!(evaluated["mase"], trained["mase"], "{evaluated}");
    assert_eq!(evaluated["intervals"], trained["intervals"]);
    // The point forecast is the median of the members' point forecasts.
    let point = |ck: &str| -> Vec<f64> {
        let out = format!("{}.csv", ck.replace('/', "_"));
        let v = json(&ok(&run(d, &["forecast", "--checkpoint", ck, "--out", &out, "--json"])));
        v["forecast"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
    };
    let each: Vec<Vec<f64>> =
        members.iter().map(|m| point(&format!("e/{}", m["checkpoint"].as_str().unwrap()))).collect();
    let whole = point("e");
    assert_eq!(whole.len(), 6);
    for (i, &v) in whole.iter().enumerate() {
        let mut col: Vec<f64> = each.iter().map(|p| p[i]).collect();
        col.sort_by(f64::total_cmp);
        assert!((v - col[1]).abs() < 1e-4, "step {i}: {v} is not the median of {col:?}");
    }
    assert!(each.windows(2).any(|w| w[0] != w[1]), "the members' seeds differ, so do their forecasts");
    // Refusals: a folder in use, a model that is not a forecaster, a resume, a non-checkpoint use.
    let mut again = vec!["train"];
    again.extend(base);
    again.extend(["--ensemble", "2", "--out", "e"]);
    fails(&run(d, &again), &["e", "not empty"]);
    fails(&run(d, &["train", "--task", "reverse", "--ensemble", "2", "--steps", "1", "--out", "r"]), &["forecasters"]);
    fails(&run(d, &["generate", "--checkpoint", "e"]), &["an ensemble", "member-1/"]);
    let o = run(d, &["train", "--resume", "e", "--ensemble", "2"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A long-format CSV: `store,week,sales`, three stores of different levels
/// and lengths, the first two stores' rows interleaved.
fn write_long_csv(dir: &Path, short: usize) {
    let value = |k: usize, t: usize| {
        let (level, amp) = [(100.0, 10.0), (50.0, 5.0), (200.0, 30.0)][k];
        let noise = ((t as u64 * 2654435761 + k as u64) >> 16) as f32 % 1000.0 / 1000.0 - 0.5;
        level + 0.1 * t as f32 + amp * (2.0 * std::f32::consts::PI * t as f32 / 12.0).sin() + noise
    };
    let mut s = String::from("store,week,sales\n");
    for t in 0..160 {
        for k in 0..2 {
            s += &format!("s{k},{t},{:.3}\n", value(k, t));
        }
    }
    for t in 0..short {
        s += &format!("s2,{t},{:.3}\n", value(2, t));
    }
    std::fs::write(dir.join("stores.csv"), s).unwrap();
}

#[test]
fn many_series_train_one_global_model_scored_per_series() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_long_csv(d, 200);
    let base = ["--data", "stores.csv", "--target", "sales", "--id", "store", "--timestamp", "week", "--season", "12"];
    let tiny = ["--preset", "series-tiny", "--context", "24", "--horizon", "6", "--steps", "40"];
    let mut args = vec!["train"];
    args.extend(base);
    args.extend(tiny);
    args.extend(["--out", "p", "--json"]);
    let v = json(&ok(&run(d, &args)));
    let series = v["series"].as_array().unwrap();
    let ids: Vec<&str> = series.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s0", "s1", "s2"], "in order of first appearance");
    // Each series on its own test split (20% of its rows), and the means over them.
    let windows: Vec<u64> = series.iter().map(|s| s["windows"].as_u64().unwrap()).collect();
    assert_eq!(windows, [32 - 5, 32 - 5, 40 - 5]);
    assert_eq!(v["windows"].as_u64().unwrap(), windows.iter().sum::<u64>());
    let mean = |key: &str| series.iter().map(|s| s[key].as_f64().unwrap()).sum::<f64>() / 3.0;
    assert!((v["mase"].as_f64().unwrap() - mean("mase")).abs() < 1e-9, "{v}");
    let ar_mean = series.iter().map(|s| s["baselines"]["ar"]["mase"].as_f64().unwrap()).sum::<f64>() / 3.0;
    assert!((v["baselines"]["ar"]["mase"].as_f64().unwrap() - ar_mean).abs() < 1e-9);
    // `data preview` names the series each window comes from.
    let mut preview = vec!["data", "preview"];
    preview.extend(base);
    preview.extend(["--preset", "series-tiny", "--batches", "1", "--batch-size", "3"]);
    let shown = ok(&run(d, &preview));
    assert!(shown.starts_with("3 series") && shown.contains("of series 's0'"), "{shown}");
    // `eval` of the checkpoint train scored gives the same report.
    let ck = v["evaluated_checkpoint"].as_str().unwrap();
    let e = json(&ok(&run(d, &["eval", "--checkpoint", ck, "--json"])));
    assert_eq!((&e["mase"], &e["series"]), (&v["mase"], &v["series"]));
    // `forecast` needs a series by id.
    fails(&run(d, &["forecast", "--checkpoint", ck]), &["3 series", "--series", "s0, s1, s2"]);
    fails(&run(d, &["forecast", "--checkpoint", ck, "--series", "s9"]), &["s9", "no such series"]);
    let f = json(&ok(&run(d, &["forecast", "--checkpoint", ck, "--series", "s2", "--json"])));
    assert_eq!((f["origin"].as_u64(), f["forecast"].as_array().unwrap().len()), (Some(200), 6));
    assert!(d.join("p/forecast-s2.csv").exists() && d.join("p/forecast-s2.png").exists());
    // A series too short for a window in every split, an empty id: named, exit 2, nothing written.
    write_long_csv(d, 40);
    let mut short = vec!["train"];
    short.extend(base);
    short.extend(tiny);
    short.extend(["--out", "q"]);
    fails(&run(d, &short), &["series 's2'", "40 rows", "every split needs a window"]);
    assert!(!d.join("q").exists());
    std::fs::write(d.join("stores.csv"), "store,week,sales\ns0,1,3.0\n,2,4.0\n").unwrap();
    fails(&run(d, &short), &["stores.csv:3", "id column 'store' is empty"]);
    // Auto and ensembles read one series.
    write_long_csv(d, 200);
    let mut auto = vec!["train"];
    auto.extend(base);
    auto.extend(["--model", "auto", "--out", "r"]);
    fails(&run(d, &auto), &["--model auto", "--id"]);
}
