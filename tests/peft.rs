//! PEFT LoRA adapters made by `peft` itself (`tools/make_peft_fixture.py`,
//! random A and B on the tiny GPT-2 and Llama fixtures) load here with
//! PEFT's names and compute PEFT's logits (1e-4 relative); `shiftlm merge
//! --adapter` folds them into a plain folder with the same logits.

use candle_core::{DType, Device, Tensor};
use shiftlm::checkpoint::{load, load_with_adapter};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture model as a from_pretrained folder with a tokenizer.
fn base(name: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixtures().join(name).join(f), to.join(f)).unwrap();
    }
    std::fs::write(to.join("tokenizer.json"), shiftlm::data::Tokenizer::Symbols { n: 40 }.to_json_bytes().unwrap())
        .unwrap();
}

fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    let d = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    d / want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn peft_adapters_load_with_peft_names_and_logits() {
    for name in ["gpt2_tiny", "llama_tiny"] {
        let dir = tempfile::tempdir().unwrap();
        base(name, &dir.path().join("base"));
        let adapter = fixtures().join(format!("peft_{name}"));
        let g: HashMap<String, Tensor> =
            candle_core::safetensors::load(adapter.join("golden.safetensors"), &Device::Cpu).unwrap();
        let ids = g["input_ids"].to_dtype(DType::U32).unwrap();
        let l = load_with_adapter(&dir.path().join("base"), &adapter, &Device::Cpu).unwrap();
        let logits = l.model.causal_forward(&ids, None, None).unwrap().unwrap();
        let e = rel_err(&logits, &g["logits"]);
        assert!(e < 1e-4, "{name}: logits rel err {e}");
        // Without the adapter the logits are clearly different (the adapter matters).
        let plain = load(&dir.path().join("base"), &Device::Cpu)
            .unwrap()
            .model
            .causal_forward(&ids, None, None)
            .unwrap()
            .unwrap();
        assert!(rel_err(&plain, &g["logits"]) > 1e-2, "{name}: the adapter changes nothing?");

        // Merged through the binary: the same logits, no adapter needed.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_shiftlm"))
            .args(["merge", "--from", "base", "--adapter"])
            .arg(&adapter)
            .args(["--out", "merged"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let merged = load(&dir.path().join("merged"), &Device::Cpu).unwrap();
        let e = rel_err(&merged.model.causal_forward(&ids, None, None).unwrap().unwrap(), &g["logits"]);
        assert!(e < 1e-4, "{name}: merged logits rel err {e}");
    }
}

#[test]
fn unsupported_adapter_settings_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    base("gpt2_tiny", &dir.path().join("base"));
    let adapter = dir.path().join("adapter");
    std::fs::create_dir(&adapter).unwrap();
    let src = fixtures().join("peft_gpt2_tiny");
    std::fs::copy(src.join("adapter_model.safetensors"), adapter.join("adapter_model.safetensors")).unwrap();
    let cfg = std::fs::read_to_string(src.join("adapter_config.json")).unwrap();
    for (from, to, needle) in [
        ("\"use_dora\": false", "\"use_dora\": true", "use_dora"),
        ("\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\"", "peft_type"),
        ("\"fan_in_fan_out\": true", "\"fan_in_fan_out\": false", "fan_in_fan_out"),
    ] {
        assert!(cfg.contains(from), "{from}");
        std::fs::write(adapter.join("adapter_config.json"), cfg.replace(from, to)).unwrap();
        let e = load_with_adapter(&dir.path().join("base"), &adapter, &Device::Cpu).err().expect(needle).to_string();
        assert!(e.contains(needle) && e.contains("adapter_config.json"), "{e}");
    }
}
