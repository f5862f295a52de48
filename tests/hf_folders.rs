//! Hugging Face model folders as `transformers` writes them for larger
//! models: weights split into shards listed by `model.safetensors.index.json`,
//! and weights in BF16. Both load into the same model as one f32 file.

use candle_core::{DType, Device, Tensor};
use shiftlm::checkpoint::load;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A copy of a fixture folder with a tokenizer, as `from_pretrained` folders have.
fn folder(name: &str) -> tempfile::TempDir {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "generation_config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let tok = shiftlm::data::Tokenizer::Symbols { n: 40 };
    std::fs::write(dir.path().join("tokenizer.json"), tok.to_json_bytes().unwrap()).unwrap();
    dir
}

fn logits(dir: &Path) -> Tensor {
    let l = load(dir, &Device::Cpu).unwrap();
    let ids = Tensor::new(&[[5u32, 9, 3, 17, 2, 44, 8]], &Device::Cpu).unwrap();
    l.model.causal_forward(&ids, None, None).unwrap().unwrap()
}

fn tensors(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn sharded_folders_load_exactly_like_one_file() {
    for name in ["gpt2_tiny", "llama_tiny"] {
        let dir = folder(name);
        let want = logits(dir.path());
        // Split into two shards with an index, as save_pretrained(max_shard_size=...) does.
        let all = tensors(dir.path());
        let mut shards: [HashMap<String, Tensor>; 2] = Default::default();
        let mut map = serde_json::Map::new();
        for (i, (k, t)) in all.into_iter().enumerate() {
            let file = format!("model-0000{}-of-00002.safetensors", i % 2 + 1);
            map.insert(k.clone(), file.into());
            shards[i % 2].insert(k, t);
        }
        for (i, s) in shards.iter().enumerate() {
            candle_core::safetensors::save(s, dir.path().join(format!("model-0000{}-of-00002.safetensors", i + 1)))
                .unwrap();
        }
        let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
        std::fs::write(dir.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        let got = logits(dir.path());
        let diff = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert_eq!(diff, 0.0, "{name}: sharded logits differ");

        // A missing shard is named.
        std::fs::remove_file(dir.path().join("model-00002-of-00002.safetensors")).unwrap();
        let e = load(dir.path(), &Device::Cpu).err().expect("missing shard").to_string();
        assert!(e.contains("model-00002-of-00002.safetensors") && e.contains("missing"), "{e}");
    }
}

#[test]
fn bf16_and_f16_weights_are_widened_to_f32() {
    let dir = folder("gpt2_tiny");
    let want = logits(dir.path());
    let f32s = tensors(dir.path());
    for dtype in [DType::BF16, DType::F16] {
        let half: HashMap<String, Tensor> = f32s.iter().map(|(k, t)| (k.clone(), t.to_dtype(dtype).unwrap())).collect();
        candle_core::safetensors::save(&half, dir.path().join("model.safetensors")).unwrap();
        let got = logits(dir.path());
        let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let diff = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff / scale < 3e-2, "{dtype:?}: logits rel err {}", diff / scale);
    }
}

#[test]
fn unsupported_architectures_are_refused_by_model_type() {
    let dir = folder("gpt2_tiny");
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap().replace("\"gpt2\"", "\"mistral\"");
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let e = load(dir.path(), &Device::Cpu).err().expect("mistral").to_string();
    assert!(e.contains("model_type \"mistral\" is not supported"), "{e}");
}
