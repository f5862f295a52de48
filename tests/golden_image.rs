//! Parity with PyTorch for the image classifiers.
//!
//! Fixtures come from `python3 tools/make_image_fixtures.py` (PyTorch,
//! float64 reference): a three-block CNN (nn.Conv2d 3×3 padding 1, ReLU,
//! F.max_pool2d(2) while both sides are even, two nn.Linear) and row-LSTM /
//! row-GRU classifiers (rows as steps through nn.LSTM / nn.GRU, last state
//! into nn.Linear). The first image has blank rows, so pooling windows hold
//! tied maxima: the gradient must go where PyTorch sends it. Checked: logits,
//! the summed cross-entropy, and every parameter's gradient. The digit-strings
//! reader (a column front-end of Conv2d + ReLU + max_pool2d and Conv2d +
//! ReLU, then the LSTM encoder–decoder with Luong attention) is checked the
//! same way on three strips, teacher-forced with the shift. Tolerances:
//! logits and loss 1e-5 relative, gradients 1e-4 relative (to the largest
//! magnitude of each tensor). The keyword spotters (conv blocks, columns
//! through nn.LSTM / nn.GRU, mean over time), the MLP, and the
//! spoken-strings reader (both conv blocks pooled) likewise.

use candle_core::{DType, Device, Tensor};
use shiftlm::data::shift::{strip_columns, BatchTensors, ImageTensors, Seq2SeqTensors};
use shiftlm::model::{Model, ModelConfig};
use shiftlm::nn::ParamStore;
use std::collections::HashMap;
use std::path::Path;

fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    diff / scale.max(1e-6)
}

/// The model of fixture `name`, its weights set from the fixture, and its tensors.
fn load(name: &str) -> (Model, ParamStore, HashMap<String, Tensor>) {
    let dev = Device::Cpu;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("image_{name}.json"))).unwrap()).unwrap();
    let cfg: ModelConfig = serde_json::from_value(meta["model"].clone()).unwrap();
    let fx: HashMap<String, Tensor> =
        candle_core::safetensors::load(dir.join(format!("image_{name}.safetensors")), &dev).unwrap();
    let store = ParamStore::new(0, &dev);
    let model = Model::new(&cfg, store.var_builder()).unwrap();
    let vars = store.vars();
    assert_eq!(vars.len(), fx.keys().filter(|k| k.starts_with("param.")).count(), "{name}: parameter count");
    for (k, _) in &vars {
        store.set(k, fx.get(&format!("param.{k}")).unwrap_or_else(|| panic!("{name}: fixture lacks {k}"))).unwrap();
    }
    (model, store, fx)
}

/// Logits, loss and every gradient of `batch` against the fixture.
fn compare(name: &str, model: &Model, store: &ParamStore, fx: &HashMap<String, Tensor>, batch: &BatchTensors) {
    let (loss, logits) = model.loss_sum(batch, None).unwrap();
    let e = rel_err(&logits, &fx["expected.logits"]);
    assert!(e < 1e-5, "{name}: logits rel err {e}");
    let e = rel_err(&loss.reshape(1).unwrap(), &fx["expected.loss"]);
    assert!(e < 1e-5, "{name}: loss rel err {e}");
    let grads = loss.backward().unwrap();
    for (k, var) in &store.vars() {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient for {k}"));
        let e = rel_err(g, &fx[&format!("grad.{k}")]);
        assert!(e < 1e-4, "{name}: gradient of {k} rel err {e}");
    }
}

fn check(name: &str) {
    let (model, store, fx) = load(name);
    let images = fx["input.images"].clone();
    let labels = fx["input.labels"].to_dtype(DType::U32).unwrap();
    let n = labels.dim(0).unwrap();
    let batch = BatchTensors::Images(ImageTensors { images, labels, n_supervised: n });
    compare(name, &model, &store, &fx, &batch);
}

#[test]
fn cnn_matches_pytorch() {
    check("cnn");
}

#[test]
fn row_lstm_matches_pytorch() {
    check("row_lstm");
}

#[test]
fn row_gru_matches_pytorch() {
    check("row_gru");
}

#[test]
fn mlp_matches_pytorch() {
    check("mlp");
}

#[test]
fn conv_lstm_keyword_spotter_matches_pytorch() {
    check("conv_lstm");
}

#[test]
fn conv_gru_keyword_spotter_matches_pytorch() {
    check("conv_gru");
}

#[test]
fn digit_strings_reader_matches_pytorch() {
    check_reader("strips");
}

/// The spoken-strings reader's front-end: both blocks pooled, an odd width
/// padded before the first pooling.
#[test]
fn twice_pooled_reader_matches_pytorch() {
    check_reader("strips2");
}

fn check_reader(name: &str) {
    let (model, store, fx) = load(name);
    let dev = Device::Cpu;
    let src = strip_columns(&fx["input.strips"]).unwrap(); // (B, W, H)
    let (b, w, _) = src.dims3().unwrap();
    let mask = fx["input.label_mask"].clone();
    let n = mask.sum_all().unwrap().to_scalar::<f32>().unwrap() as usize;
    let batch = BatchTensors::Pairs(Seq2SeqTensors {
        src,
        src_mask: Tensor::ones((b, w), DType::F32, &dev).unwrap(),
        src_has_pad: false,
        dec_in: fx["input.dec_in"].to_dtype(DType::U32).unwrap(),
        labels: fx["input.labels"].to_dtype(DType::U32).unwrap(),
        label_mask: mask,
        n_supervised: n,
    });
    compare(name, &model, &store, &fx, &batch);
}
