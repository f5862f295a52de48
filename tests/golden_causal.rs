//! Parity with Hugging Face `transformers` for the causal models.
//!
//! Fixtures come from `python3 tools/make_causal_fixtures.py`: tiny random
//! `GPT2LMHeadModel` and `LlamaForCausalLM` folders written by
//! `save_pretrained`, plus `golden.safetensors` with inputs, logits, the loss
//! of inputs x[0..8] against labels x[1..9], every parameter's gradient and a
//! greedy continuation (float64 reference). Tolerances: logits and loss 1e-4
//! relative, gradients 1e-3 relative (to each tensor's largest magnitude).

use candle_core::{DType, Device, Tensor, D};
use shiftlm::checkpoint::{load_weights, read_config};
use shiftlm::decode::causal::{generate, SampleOptions};
use shiftlm::nn::loss::masked_cross_entropy_sum;
use std::collections::HashMap;
use std::path::PathBuf;

fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap().max(1e-12);
    diff / scale
}

fn check(name: &str) {
    let dev = Device::Cpu;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let cfg = read_config(&dir.join("config.json")).unwrap();
    let (model, store) = load_weights(&cfg.model, &dir.join("model.safetensors"), &dev).unwrap();
    let g: HashMap<String, Tensor> = candle_core::safetensors::load(dir.join("golden.safetensors"), &dev).unwrap();
    let ids = g["input_ids"].to_dtype(DType::U32).unwrap();
    let (b, t1) = ids.dims2().unwrap();
    let t = t1 - 1;
    let inputs = ids.narrow(1, 0, t).unwrap().contiguous().unwrap();
    let labels = ids.narrow(1, 1, t).unwrap().contiguous().unwrap();

    let logits = model.causal_forward(&inputs, None, None).unwrap().unwrap();
    let e = rel_err(&logits, &g["logits"]);
    assert!(e < 1e-4, "{name}: logits rel err {e}");
    let v = logits.dim(D::Minus1).unwrap();
    let mask = Tensor::ones(b * t, DType::F32, &dev).unwrap();
    let loss = (masked_cross_entropy_sum(&logits.reshape((b * t, v)).unwrap(), &labels.flatten_all().unwrap(), &mask)
        .unwrap()
        / (b * t) as f64)
        .unwrap();
    let e = rel_err(&loss.reshape(1).unwrap(), &g["loss"]);
    assert!(e < 1e-4, "{name}: loss rel err {e}");

    let grads = loss.backward().unwrap();
    let vars = store.vars();
    assert_eq!(vars.len(), g.keys().filter(|k| k.starts_with("grad.")).count(), "{name}: every HF parameter, no more");
    for (k, var) in &vars {
        let want = g.get(&format!("grad.{k}")).unwrap_or_else(|| panic!("{name}: no reference gradient for {k}"));
        let e = rel_err(grads.get(var.as_tensor()).unwrap(), want);
        assert!(e < 1e-3, "{name}: gradient of {k} rel err {e}");
    }

    // KV-cached step-by-step logits equal the full forward pass at every step.
    let row = inputs.narrow(0, 0, 1).unwrap();
    let full = model.causal_forward(&row, None, None).unwrap().unwrap();
    let mut cache = model.new_cache();
    for i in 0..t {
        let step = model.causal_forward(&row.narrow(1, i, 1).unwrap(), Some(&mut cache), None).unwrap().unwrap();
        let e = rel_err(&step.squeeze(1).unwrap(), &full.narrow(1, i, 1).unwrap().squeeze(1).unwrap());
        assert!(e < 1e-5, "{name}: cached logits differ at step {i}: {e}");
    }

    // Greedy generation with the cache matches transformers' generate().
    let prompt: Vec<u32> = g["greedy_prompt"].to_dtype(DType::U32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let want: Vec<u32> = g["greedy"].to_dtype(DType::U32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let o = SampleOptions { max_new_tokens: want.len(), temperature: 0.0, ..Default::default() };
    let got = generate(&model, &prompt, &o, &dev, |_| Ok(false)).unwrap();
    assert_eq!(got, want, "{name}: greedy continuation");
}

#[test]
fn gpt2_matches_transformers() {
    check("gpt2_tiny");
}

#[test]
fn llama_matches_transformers() {
    check("llama_tiny");
}
