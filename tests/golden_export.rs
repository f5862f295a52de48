//! Checkpoints written by `shiftlm train --model gpt|llama` open in Hugging
//! Face `transformers` and `tokenizers` with the same ids and logits.
//!
//! `tests/fixtures/export/{gpt2,gpt2_gelu,llama}` are shiftlm checkpoints
//! (gpt-tiny with GELU-tanh and exact GELU, and llama-tiny; 40 steps on 30 kB
//! of tiny Shakespeare, char and byte tokenizers). `python3 tools/check_hf_export.py tests/fixtures/export/gpt2
//! tests/fixtures/export/gpt2_gelu tests/fixtures/export/llama` loaded each with
//! `AutoModelForCausalLM.from_pretrained` and `PreTrainedTokenizerFast` and
//! wrote the ids and logits of a fixed text to `*.hf.safetensors`.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

const TEXT: &str = "ROMEO:\nWhat light through yonder window";

fn check(name: &str) {
    let dev = Device::Cpu;
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/export");
    let ck = shiftlm::checkpoint::load(&base.join(name), &dev).unwrap();
    let hf: HashMap<String, Tensor> =
        candle_core::safetensors::load(base.join(format!("{name}.hf.safetensors")), &dev).unwrap();
    let want_ids: Vec<u32> = hf["ids"].to_dtype(DType::U32).unwrap().to_vec1().unwrap();
    let ids = ck.tokenizer.encode(TEXT).unwrap();
    assert_eq!(&ids[..want_ids.len()], want_ids.as_slice(), "{name}: tokenizer ids");
    let input = Tensor::from_slice(&want_ids, (1, want_ids.len()), &dev).unwrap();
    let logits = ck.model.causal_forward(&input, None, None).unwrap().unwrap().squeeze(0).unwrap();
    let diff = (&logits - &hf["logits"]).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    let scale = hf["logits"].abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff <= 1e-4 * scale, "{name}: logits differ by {diff} (scale {scale})");
}

#[test]
fn gpt2_checkpoint_opens_in_transformers_with_the_same_logits() {
    check("gpt2");
}

#[test]
fn llama_checkpoint_opens_in_transformers_with_the_same_logits() {
    check("llama");
}

/// LoRA fine-tuned (c_attn, c_fc; rank 4) and merged by `shiftlm merge`:
/// `bash tools/make_lora_fixture.sh PYTHON tinyshakespeare.txt`.
#[test]
fn lora_merged_gpt2_opens_in_transformers_with_the_same_logits() {
    check("gpt2_lora_merged");
}

#[test]
fn gpt2_with_exact_gelu_opens_in_transformers_with_the_same_logits() {
    check("gpt2_gelu");
}
