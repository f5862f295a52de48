//! Image recognition: the classifiers overfit one batch, augmented runs
//! resume bit for bit, and `shiftlm train` reports accuracy and robustness
//! to shifts.

mod common;

use candle_core::Device;
use shiftlm::config::RunConfig;
use shiftlm::data::augment::Augment;
use shiftlm::data::shift::{BatchTensors, Fill, ImageBatch};
use shiftlm::model::{ImageKind, Model, ModelConfig};
use shiftlm::nn::ParamStore;
use shiftlm::train::{LossHistory, Trainer};
use std::path::Path;
use std::process::Command;

fn digits_run(kind: ImageKind, steps: usize) -> (RunConfig, shiftlm::data::Dataset, shiftlm::data::Tokenizer) {
    let mut rc = RunConfig::preset("cnn-tiny").unwrap();
    if let ModelConfig::Image(m) = &mut rc.model {
        if kind != ImageKind::Cnn {
            *m = shiftlm::model::ImageConfig::new(kind, 8, 8, 10);
            m.hidden = 32;
        }
    }
    rc.train.steps = steps;
    let (data, tok) = shiftlm::data::load(&rc.data, rc.train.seed, None).unwrap();
    (rc, data, tok)
}

/// Each classifier drives the loss of one fixed batch of 16 digits to
/// nearly zero.
#[test]
fn every_classifier_overfits_one_batch() {
    let dev = Device::Cpu;
    for kind in [ImageKind::Cnn, ImageKind::RowLstm, ImageKind::RowGru] {
        let (rc, data, _) = digits_run(kind, 1);
        let shiftlm::data::Dataset::Images(d) = &data else { panic!("images") };
        let store = ParamStore::new(3, &dev);
        let model = Model::new(&rc.model, store.var_builder()).unwrap();
        let vars = store.vars();
        let pixels: Vec<f32> = (0..16).flat_map(|i| d.train.image_f32(i)).collect();
        let batch = ImageBatch::new(8, 8, pixels, d.train.labels[..16].to_vec());
        let t = [BatchTensors::Images(batch.tensors(&dev).unwrap())];
        let (first, last) = common::overfit(&model, &vars, &t, 1e-2, 150);
        assert!(last < 0.02 && last < first / 50.0, "{kind:?}: {first} → {last}");
    }
}

/// The augmentation's draws are part of the loader's state: a run resumed
/// mid-epoch continues with the same shifted images, so its losses and
/// final weights equal the uninterrupted run's.
#[test]
fn augmented_runs_resume_bit_for_bit() {
    let (mut rc, data, tok) = digits_run(ImageKind::Cnn, 30);
    if let shiftlm::config::DataConfig::Images(d) = &mut rc.data {
        d.augment = Augment { shift: 2, rotate: 10.0, mode: Fill::Zero };
    }
    rc.train.save_every = 1;
    rc.train.keep_last = 100;
    rc.train.eval_every = 10;
    let full = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(rc, data, tok, Some(full.path().to_path_buf())).unwrap();
    let mut all = LossHistory::default();
    t.run(&mut all).unwrap();
    common::assert_resumes_bit_for_bit(full.path(), 30, &[9, 23], &all);
}

fn shiftlm(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

/// `train --json` on the digits: accuracy, macro F1, the shift curve
/// 0..=6 and consistency within ±2 and ±4; a shift-augmented CNN is
/// measurably more robust than one trained on the images as they are.
#[test]
fn train_reports_accuracy_and_robustness_to_shifts() {
    let d = tempfile::tempdir().unwrap();
    let run = |out: &str, extra: &[&str]| {
        let base = ["train", "--preset", "cnn", "--task", "digits", "--steps", "300", "--json", "--out", out];
        let o = shiftlm(d.path(), &[&base[..], extra].concat());
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(out.contains("confusion (rows: true class"), "{out}");
        let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        v
    };
    let plain = run("plain", &[]);
    let shifted = run("shifted", &["--augment", "shift=2"]);
    for v in [&plain, &shifted] {
        assert!(v["accuracy"].as_f64().unwrap() > 0.9, "{v}");
        assert!(v["macro_f1"].as_f64().unwrap() > 0.9, "{v}");
        let curve = v["shift_curve"].as_array().unwrap();
        assert_eq!(curve.len(), 7, "{v}");
        assert_eq!(curve[0]["accuracy"], v["accuracy"]);
        assert!(v["consistency"]["2"].is_number() && v["consistency"]["4"].is_number(), "{v}");
    }
    // eval reproduces the report from the checkpoint; plot overlays the runs.
    let o = shiftlm(d.path(), &["eval", "--checkpoint", "plain", "--shift-curve", "0..3", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let e: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(e["accuracy"], plain["accuracy"]);
    assert_eq!(e["shift_curve"].as_array().unwrap()[..], plain["shift_curve"].as_array().unwrap()[..4]);
    assert!(d.path().join("plain/shift_curve.png").exists());
    let o = shiftlm(d.path(), &["plot", "--shift-curve", "plain", "shifted", "--out", "both.png"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(&std::fs::read(d.path().join("both.png")).unwrap()[1..4], b"PNG");
    // eval on a folder of IDX files: 40 test digits, and one of the wrong size.
    let digits = shiftlm::data::images::digits::all().unwrap();
    std::fs::create_dir(d.path().join("idx")).unwrap();
    let idx = |n: &str| d.path().join("idx").join(n);
    shiftlm::data::images::idx::write(&idx("t10k-images-idx3-ubyte"), &[40, 8, 8], &digits.pixels[..40 * 64], false)
        .unwrap();
    let labels: Vec<u8> = digits.labels[..40].iter().map(|&l| l as u8).collect();
    shiftlm::data::images::idx::write(&idx("t10k-labels-idx1-ubyte"), &[40], &labels, true).unwrap();
    let o = shiftlm(d.path(), &["eval", "--checkpoint", "plain", "--data", "idx", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let e: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(e["images"], 40);
    std::fs::create_dir(d.path().join("big")).unwrap();
    let big = |n: &str| d.path().join("big").join(n);
    shiftlm::data::images::idx::write(&big("test-images-idx3-ubyte"), &[1, 9, 9], &[0; 81], false).unwrap();
    shiftlm::data::images::idx::write(&big("test-labels-idx1-ubyte"), &[1], &[0], false).unwrap();
    let o = shiftlm(d.path(), &["eval", "--checkpoint", "plain", "--data", "big"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("9×9") && err.contains("8×8"), "{err}");
    // A folder whose subfolders are some of the model's classes is scored
    // under the model's labels; an unknown class is refused.
    for (k, &label) in digits.labels.iter().enumerate().take(60) {
        if label == 3 || label == 7 {
            let px: Vec<u8> = digits.image(k).iter().map(|&v| (u32::from(v) * 255 / 16) as u8).collect();
            let dir = d.path().join(format!("sub/{label}"));
            std::fs::create_dir_all(&dir).unwrap();
            image::GrayImage::from_raw(8, 8, px).unwrap().save(dir.join(format!("{k}.png"))).unwrap();
        }
    }
    let o = shiftlm(d.path(), &["eval", "--checkpoint", "plain", "--data", "sub", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let e: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let conf = e["confusion"].as_array().unwrap();
    assert_eq!(conf.len(), 10, "{e}");
    let row_total = |k: usize| conf[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>();
    let n = e["images"].as_u64().unwrap();
    assert!(n > 0 && row_total(3) + row_total(7) == n, "labels stay the model's 3 and 7: {e}");
    assert!(e["accuracy"].as_f64().unwrap() > 0.8, "{e}");
    std::fs::rename(d.path().join("sub/3"), d.path().join("sub/cat")).unwrap();
    let o = shiftlm(d.path(), &["eval", "--checkpoint", "plain", "--data", "sub"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("\"cat\" is not one the model knows"), "{err}");
    // generate --image: a digit as a PNG (0..16 scaled to 0..255), and one of the wrong size.
    let px: Vec<u8> = digits.image(0).iter().map(|&v| (u32::from(v) * 255 / 16) as u8).collect();
    image::GrayImage::from_raw(8, 8, px).unwrap().save(d.path().join("zero.png")).unwrap();
    image::GrayImage::new(9, 8).save(d.path().join("wide.png")).unwrap();
    let o = shiftlm(d.path(), &["generate", "--checkpoint", "plain", "--image", "zero.png", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g: serde_json::Value = serde_json::from_slice(o.stdout.trim_ascii_end()).unwrap();
    let p = &g["outputs"][0];
    let top = p["top"].as_array().unwrap();
    assert_eq!(top.len(), 3, "{g}");
    assert_eq!(p["class"], top[0][0], "{g}");
    assert!(top[0][1].as_f64().unwrap() >= top[1][1].as_f64().unwrap(), "{g}");
    let o = shiftlm(d.path(), &["generate", "--checkpoint", "plain", "--image", "wide.png"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("wide.png") && err.contains("9×8"), "{err}");
    let at = |v: &serde_json::Value, k: usize| v["shift_curve"][k]["accuracy"].as_f64().unwrap();
    assert!(at(&shifted, 2) > at(&plain, 2) + 0.3, "{plain}\n{shifted}");
    let c2 = |v: &serde_json::Value| v["consistency"]["2"].as_f64().unwrap();
    assert!(c2(&shifted) > c2(&plain) + 0.3, "{plain}\n{shifted}");
}

/// Flags and data that do not fit an image run are refused, naming them.
#[test]
fn image_runs_refuse_what_does_not_apply() {
    let d = tempfile::tempdir().unwrap();
    let fails = |args: &[&str], needle: &str| {
        let o = shiftlm(d.path(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    fails(&["train", "--task", "rotate", "--augment", "shift=2"], "--augment perturbs images");
    fails(&["train", "--model", "cnn", "--task", "rotate"], "not an image task");
    fails(&["train", "--model", "cnn", "--task", "digits", "--augment", "shift=99"], "more than 64");
    fails(&["train", "--model", "cnn", "--task", "digits", "--tokenizer", "char"], "no tokenizer");
    fails(&["train", "--model", "cnn", "--data", "missing.txt"], "images come from a folder");
    fails(&["train", "--model", "cnn", "--task", "digits", "--context", "8"], "--context");
}
