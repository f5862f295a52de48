//! LoRA fine-tuning through the real binary, from a transformers GPT-2
//! folder: an untrained adapter changes nothing; training moves only the
//! adapters (no optimizer state for the frozen base); the adapter is written
//! in PEFT's layout; `shiftlm merge` gives a plain folder with the same
//! logits as the adapted model.

use candle_core::{Device, Tensor};
use shiftlm::checkpoint::load;
use shiftlm::nn::lora::LoraConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// gpt2_tiny as a from_pretrained folder, with a tokenizer for its 50 ids.
fn hf_folder(to: &Path) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny");
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "model.safetensors", "generation_config.json"] {
        std::fs::copy(src.join(f), to.join(f)).unwrap();
    }
    std::fs::write(to.join("tokenizer.json"), shiftlm::data::Tokenizer::Symbols { n: 40 }.to_json_bytes().unwrap())
        .unwrap();
}

fn ids() -> Tensor {
    Tensor::new(&[[5u32, 9, 3, 17, 2, 44, 8, 1]], &Device::Cpu).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn an_untrained_adapter_leaves_the_output_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    hf_folder(dir.path());
    let base = load(dir.path(), &Device::Cpu).unwrap();
    let want = base.model.causal_forward(&ids(), None, None).unwrap().unwrap();
    let mut cfg = base.config.model.clone();
    let targets = ["c_attn", "c_proj", "c_fc"].map(String::from).to_vec();
    cfg.set_lora(Some(LoraConfig { r: 4, alpha: 8.0, targets, dropout: 0.1 })).unwrap();
    let store = shiftlm::nn::ParamStore::new(3, &Device::Cpu);
    let model = shiftlm::model::Model::new(&cfg, store.var_builder()).unwrap();
    for (name, var) in base.store.vars() {
        store.set(&name, var.as_tensor()).unwrap();
    }
    let n_lora = store.vars().iter().filter(|(k, _)| k.contains(".lora_")).count();
    assert_eq!(n_lora, 2 * 2 * 4, "A and B for c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj in 2 blocks");
    let got = model.causal_forward(&ids(), None, None).unwrap().unwrap();
    assert_eq!(max_diff(&got, &want), 0.0);
}

#[test]
fn lora_finetune_trains_only_adapters_and_merges_to_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    hf_folder(&d.join("hf"));
    let text: String = (0..400).map(|i| format!("{} ", (i * 7) % 12)).collect();
    std::fs::write(d.join("numbers.txt"), text).unwrap();
    let out = ok(&run(
        d,
        &[
            "finetune",
            "--from",
            "hf",
            "--data",
            "numbers.txt",
            "--lora",
            "--lora-r",
            "4",
            "--lora-targets",
            "c_attn,c_fc",
            "--lora-dropout",
            "0.1",
            "--steps",
            "40",
            "--lr",
            "1e-2",
            "--out",
            "ft",
            "--json",
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let (before, after) = (v["before"]["loss"].as_f64().unwrap(), v["after"]["loss"].as_f64().unwrap());
    assert!(after < before - 0.2, "held-out loss {before} → {after}");
    // Trainable: A (4, 32) and B (96 or 128, 4) for c_attn and c_fc in 2 blocks.
    assert_eq!(v["trainable_parameters"].as_u64().unwrap(), 2 * (4 * 32 + 96 * 4 + 4 * 32 + 128 * 4));

    // The base weights did not move, and the optimizer holds state for the adapters only.
    let ck = d.join("ft/checkpoint-40");
    let saved: HashMap<String, Tensor> =
        candle_core::safetensors::load(ck.join("model.safetensors"), &Device::Cpu).unwrap();
    let orig: HashMap<String, Tensor> =
        candle_core::safetensors::load(d.join("hf/model.safetensors"), &Device::Cpu).unwrap();
    for (k, t) in &orig {
        if k.contains(".attn.bias") || k.contains("masked_bias") {
            continue; // transformers' buffers, not parameters
        }
        assert_eq!(max_diff(&saved[k], t), 0.0, "{k} moved");
    }
    let opt: HashMap<String, Tensor> =
        candle_core::safetensors::load(ck.join("optimizer.safetensors"), &Device::Cpu).unwrap();
    assert!(!opt.is_empty() && opt.keys().all(|k| k.contains(".lora_")), "{:?}", opt.keys().collect::<Vec<_>>());

    // The adapter alone, in PEFT's layout.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("ft/adapter/adapter_config.json")).unwrap()).unwrap();
    assert_eq!(
        (cfg["peft_type"].as_str(), cfg["r"].as_u64(), cfg["fan_in_fan_out"].as_bool()),
        (Some("LORA"), Some(4), Some(true))
    );
    assert!((cfg["lora_dropout"].as_f64().unwrap() - 0.1).abs() < 1e-6, "{cfg}");
    let adapter: HashMap<String, Tensor> =
        candle_core::safetensors::load(d.join("ft/adapter/adapter_model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(adapter["base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"].dims(), &[4, 32]);
    assert_eq!(adapter["base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight"].dims(), &[128, 4]);
    assert_eq!(adapter.len(), 8);

    // Merged and unmerged give the same logits; the merged folder is plain.
    ok(&run(d, &["merge", "--from", "ft", "--out", "merged"]));
    let adapted = load(&d.join("ft"), &Device::Cpu).unwrap();
    let merged = load(&d.join("merged"), &Device::Cpu).unwrap();
    assert!(merged.config.model.lora().is_none());
    assert!(merged.store.vars().iter().all(|(k, _)| !k.contains("lora")));
    let a = adapted.model.causal_forward(&ids(), None, None).unwrap().unwrap();
    let m = merged.model.causal_forward(&ids(), None, None).unwrap().unwrap();
    let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(max_diff(&a, &m) <= 1e-5 * scale.max(1.0), "merged logits differ by {}", max_diff(&a, &m));
    let hf: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("merged/config.json")).unwrap()).unwrap();
    assert_eq!(hf["model_type"], "gpt2");

    // Merging refuses a model without adapters, and never overwrites.
    let e = run(d, &["merge", "--from", "hf", "--out", "m2"]);
    assert_eq!(e.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&e.stderr).contains("no LoRA adapters"));
    let e = run(d, &["merge", "--from", "ft", "--out", "merged"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("not empty"));
}
