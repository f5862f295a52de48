//! Digit strings (`--task digit-strings`): strips of digits read column by
//! column by an encoder–decoder trained with the shift. Overfitting one
//! batch, every parameter's gradient, exact resume with augmentation, and
//! the commands end to end (train, eval, generate --image, plot, refusals).

mod common;

use common::last_json;

use candle_core::Device;
use shiftlm::config::RunConfig;
use shiftlm::data::augment::Augment;
use shiftlm::data::shift::{BatchTensors, Fill};
use shiftlm::data::Dataset;
use shiftlm::model::Model;
use shiftlm::nn::ParamStore;
use shiftlm::train::{LossHistory, Trainer};
use std::path::Path;
use std::process::Command;

/// The tiny preset's config, sized for its data as `train` sizes it.
fn tiny(steps: usize) -> (RunConfig, Dataset, shiftlm::data::Tokenizer) {
    let mut rc = RunConfig::preset("digit-strings-tiny").unwrap();
    rc.train.steps = steps;
    let (data, tok) = shiftlm::data::load(&rc.data, rc.train.seed, None).unwrap();
    rc.model.set_vocab_size(tok.vocab_size());
    (rc, data, tok)
}

/// A batch of 8 training strips as the trainer sees them.
fn batch(data: &Dataset, tok: &shiftlm::data::Tokenizer) -> BatchTensors {
    let Dataset::Strips(d) = data else { panic!("strips") };
    let batches = shiftlm::data::loader::strip_batches(&d.train, tok, 8).unwrap();
    batches[0].tensors(&Device::Cpu).unwrap()
}

/// The reader drives the loss of one fixed batch of 8 strips to nearly
/// zero, and every parameter (the column projection included) gets a
/// finite, nonzero gradient.
#[test]
fn the_strip_reader_overfits_one_batch_and_every_parameter_learns() {
    let (mut rc, data, tok) = tiny(1);
    if let shiftlm::model::ModelConfig::Seq2seq(m) = &mut rc.model {
        m.hidden = 32;
        m.input = Some(shiftlm::model::FrontendConfig::Frames { features: 14, proj: Some(16) });
    }
    let store = ParamStore::new(3, &Device::Cpu);
    let model = Model::new(&rc.model, store.var_builder()).unwrap();
    let vars = store.vars();
    let t = [batch(&data, &tok)];
    let BatchTensors::Pairs(p) = &t[0] else { panic!("strips are encoder–decoder batches") };
    assert_eq!(p.src.dims(), [8, 34, 14], "(B, columns, values per column)");
    let (loss, _) = model.loss_sum(&t[0], None).unwrap();
    let grads = loss.backward().unwrap();
    for (name, v) in &vars {
        let g = grads.get(v.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient"));
        let a = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(a.is_finite() && a > 0.0, "{name}: {a}");
    }
    assert!(vars.iter().any(|(n, _)| n == "encoder.input_proj.weight"));
    let (first, last) = common::overfit(&model, &vars, &t, 1e-2, 200);
    assert!(last < 0.02 && last < first / 50.0, "{first} → {last}");
}

/// Shifted strips are drawn from the loader's stream: a resumed run sees
/// the same strips, moved the same way, and ends with the same weights.
#[test]
fn augmented_strip_runs_resume_bit_for_bit() {
    let (mut rc, data, tok) = tiny(12);
    if let shiftlm::config::DataConfig::Images(d) = &mut rc.data {
        d.augment = Augment { shift: 3, rotate: 0.0, mode: Fill::Zero };
    }
    rc.train.batch_size = 16;
    (rc.train.save_every, rc.train.keep_last, rc.train.eval_every) = (1, 100, 5);
    let full = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(rc, data, tok, Some(full.path().to_path_buf())).unwrap();
    let mut all = LossHistory::default();
    t.run(&mut all).unwrap();
    common::assert_resumes_bit_for_bit(full.path(), 12, &[4, 9], &all);
}

fn shiftlm(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

/// `train --task digit-strings --json` learns to read strips of 1–2 digits
/// (exact match and CER, the shift curve and consistency); eval reproduces
/// it from the checkpoint and on strips of a folder's digits; generate
/// reads a strip saved as a PNG; plot overlays the run.
#[test]
fn digit_strings_train_eval_generate_and_plot() {
    let d = tempfile::tempdir().unwrap();
    let sets = [
        "--set",
        "data.images.strings.max_len=2",
        "--set",
        "data.images.strings.train=3000",
        "--set",
        "data.images.strings.test=200",
    ];
    let args = [
        &["train", "--task", "digit-strings", "--augment", "none", "--steps", "400", "--json", "--out", "run"][..],
        &sets,
    ]
    .concat();
    let o = shiftlm(d.path(), &args);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let v = last_json(&o);
    assert!(text.contains("test strips: 200 strips, exact match"), "{text}");
    let em = v["exact_match"].as_f64().unwrap();
    let cer = v["cer"].as_f64().unwrap();
    assert!(em > 0.6 && cer < 0.25, "{v}");
    let curve = v["shift_curve"].as_array().unwrap();
    assert_eq!(curve.len(), 7, "{v}");
    assert_eq!(curve[0]["accuracy"], v["exact_match"]);
    assert!(v["consistency"]["2"].is_number() && v["consistency"]["4"].is_number(), "{v}");
    assert!(d.path().join("run/shift_curve.png").exists());
    // eval: the same numbers from the checkpoint, and strips of a folder's digits.
    let e = last_json(&shiftlm(d.path(), &["eval", "--checkpoint", "run", "--shift-curve", "0..2", "--json"]));
    assert_eq!((e["exact_match"].clone(), e["cer"].clone()), (v["exact_match"].clone(), v["cer"].clone()));
    assert_eq!(e["shift_curve"].as_array().unwrap()[..], curve[..3]);
    let digits = shiftlm::data::images::digits::all().unwrap();
    std::fs::create_dir(d.path().join("idx")).unwrap();
    let idx = |n: &str| d.path().join("idx").join(n);
    // IDX pixels are bytes with 255 for white; the embedded digits' white is 16.
    let px: Vec<u8> = digits.pixels[..60 * 64].iter().map(|&p| (u32::from(p) * 255 / 16) as u8).collect();
    shiftlm::data::images::idx::write(&idx("t10k-images-idx3-ubyte"), &[60, 8, 8], &px, false).unwrap();
    let labels: Vec<u8> = digits.labels[..60].iter().map(|&l| l as u8).collect();
    shiftlm::data::images::idx::write(&idx("t10k-labels-idx1-ubyte"), &[60], &labels, true).unwrap();
    let e = last_json(&shiftlm(d.path(), &["eval", "--checkpoint", "run", "--data", "idx", "--json"]));
    assert_eq!(e["strips"], 200, "{e}");
    assert!(e["exact_match"].as_f64().unwrap() > 0.5, "{e}");
    // generate --image: a test strip as a PNG (0..16 scaled to 0..255).
    let Dataset::Strips(s) = shiftlm::data::load(
        &shiftlm::checkpoint::load(&d.path().join("run"), &Device::Cpu).unwrap().config.data,
        0,
        None,
    )
    .unwrap()
    .0
    else {
        panic!("strips")
    };
    let im = &s.test.images;
    let mut right = 0;
    for k in 0..5 {
        let px: Vec<u8> = im.image(k).iter().map(|&p| (u32::from(p) * 255 / 16) as u8).collect();
        let name = format!("strip{k}.png");
        image::GrayImage::from_raw(im.width as u32, im.height as u32, px).unwrap().save(d.path().join(&name)).unwrap();
        let g = last_json(&shiftlm(d.path(), &["generate", "--checkpoint", "run", "--image", &name, "--json"]));
        right += usize::from(g["outputs"][0]["text"] == s.test.texts[k].as_str());
    }
    assert!(right >= 3, "{right} of 5 strips read right");
    image::GrayImage::new(20, 9).save(d.path().join("short.png")).unwrap();
    let o = shiftlm(d.path(), &["generate", "--checkpoint", "run", "--image", "short.png"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("short.png") && err.contains("14 pixels high"), "{err}");
    let o = shiftlm(d.path(), &["plot", "--shift-curve", "run", "--out", "curve.png"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(&std::fs::read(d.path().join("curve.png")).unwrap()[1..4], b"PNG");
}

/// What does not fit digit strings is refused with exit code 2, naming it.
#[test]
fn digit_strings_refuse_what_does_not_apply() {
    let d = tempfile::tempdir().unwrap();
    let refused = |args: &[&str], want: &str| {
        let o = shiftlm(d.path(), args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.code() == Some(2) && err.contains(want), "{args:?}: {err}");
    };
    refused(&["train", "--task", "digit-strings", "--model", "cnn"], "--model seq2seq");
    refused(&["train", "--task", "digits", "--data", "x"], "alternatives");
    refused(&["data", "preview", "--task", "digits", "--data", "x"], "alternatives");
    let no_blocks = "model.input={kind=\"columns\",height=14,channels=[],proj=8,pool=true}";
    refused(&["train", "--preset", "digit-strings-tiny", "--set", no_blocks], "model.input.channels");
    refused(&["train", "--task", "digit-strings", "--preset", "cnn"], "digit-strings");
    refused(
        &["train", "--preset", "digit-strings-tiny", "--set", "data.images.strings.max_len=0"],
        "data.images.strings.max_len",
    );
    // Class names that are not one character cannot be written as a string.
    for c in ["cat", "dog"] {
        let dir = d.path().join("words").join(c);
        std::fs::create_dir_all(&dir).unwrap();
        for k in 0..3 {
            image::GrayImage::new(8, 8).save(dir.join(format!("{k}.png"))).unwrap();
        }
    }
    refused(&["train", "--task", "digit-strings", "--data", "words", "--steps", "1"], "\"cat\" is not one character");
}
