//! Hugging Face interop: `transformers` model folders (config translation
//! for GPT-2 and Llama, sharded weights) and PEFT LoRA adapter folders
//! (reading `adapter_config.json`, writing adapters in PEFT's layout,
//! folding them into the base weights).

use super::folder::{CONFIG, MANIFEST, MODEL};
use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::model::{Gpt2Config, LlamaConfig, ModelConfig};
use crate::nn::lora::LoraConfig;
use crate::nn::params::{safetensors_bytes, RawTensors};
use crate::nn::ParamStore;
use candle_core::Tensor;
use std::path::{Path, PathBuf};

/// PEFT's adapter config file.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// PEFT's adapter weights file.
pub const ADAPTER_MODEL: &str = "adapter_model.safetensors";

/// Whether `dir` is a model folder written by `transformers`
/// (`config.json` with a `model_type`, no shiftlm manifest).
pub fn is_hf_folder(dir: &Path) -> bool {
    !dir.join(MANIFEST).exists()
        && std::fs::read(dir.join(CONFIG))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v.get("model_type").is_some() && v.get("shiftlm").is_none())
}

/// A run config for a `transformers` `config.json` (GPT-2 or Llama), for
/// fine-tuning and decoding. `bad` wraps a message into an error naming the file.
pub fn config_from_hf(v: &serde_json::Value, kind: &str, bad: impl Fn(String) -> Error) -> Result<RunConfig> {
    let model = match kind {
        "gpt2" => ModelConfig::Gpt2(Gpt2Config::from_hf(v).map_err(&bad)?),
        "llama" => ModelConfig::Llama(LlamaConfig::from_hf(v).map_err(&bad)?),
        other => return Err(bad(format!("model_type \"{other}\" is not supported (gpt2 and llama are)"))),
    };
    let mut cfg = RunConfig::preset(if kind == "llama" { "llama-tiny" } else { "gpt-tiny" })?;
    cfg.preset = format!("hf-{kind}");
    cfg.model = model;
    Ok(cfg)
}

/// `config.json` for a checkpoint: for a family with a `transformers`
/// layout, that library's config with shiftlm's own under the key
/// `shiftlm`, so the folder opens with `from_pretrained` as it is.
pub fn config_json(cfg: &RunConfig) -> Vec<u8> {
    let ours = serde_json::to_value(cfg).expect("config serialises");
    let config = match cfg.model.to_hf() {
        Some(mut hf) => {
            hf["shiftlm"] = ours;
            hf
        }
        None => ours,
    };
    serde_json::to_vec_pretty(&config).expect("config serialises")
}

/// The weight files of a `transformers` folder: `model.safetensors`, or the
/// shards that `model.safetensors.index.json` lists (each checked to exist).
pub fn hf_weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join(MODEL);
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let bytes = std::fs::read(&index).map_err(|_| Error::Checkpoint {
        path: dir.to_path_buf(),
        msg: "has neither model.safetensors nor model.safetensors.index.json (shiftlm reads safetensors only)".into(),
    })?;
    let bad = |msg: String| Error::Checkpoint { path: index.clone(), msg };
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let map =
        v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("has no \"weight_map\" object".into()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for (name, file) in map {
        let file = file.as_str().ok_or_else(|| bad(format!("weight_map entry '{name}' is not a file name")))?;
        if file.contains('/') || file.contains('\\') || file == ".." {
            return Err(bad(format!("weight_map entry '{name}' points outside the folder: {file}")));
        }
        let path = dir.join(file);
        if !files.contains(&path) {
            if !path.exists() {
                return Err(Error::Checkpoint {
                    path,
                    msg: format!("shard listed in the index (for '{name}') is missing"),
                });
            }
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(bad("lists no weights".into()));
    }
    files.sort();
    Ok(files)
}

/// The LoRA settings of a PEFT adapter folder's `adapter_config.json`, for
/// a base model of family `base`. Settings shiftlm cannot reproduce exactly
/// are refused by name.
pub fn read_adapter_config(adapter: &Path, base: &ModelConfig) -> Result<LoraConfig> {
    let cfg_path = adapter.join(ADAPTER_CONFIG);
    let bytes = crate::io::read(&cfg_path)?;
    let bad = |msg: String| Error::Checkpoint { path: cfg_path.clone(), msg };
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    if v.get("peft_type").and_then(|t| t.as_str()) != Some("LORA") {
        return Err(bad(format!(
            "peft_type {} is not supported (LORA is)",
            v.get("peft_type").unwrap_or(&serde_json::Value::Null)
        )));
    }
    for (key, ok) in [
        ("use_dora", v.get("use_dora").is_none_or(|x| x == false)),
        ("use_rslora", v.get("use_rslora").is_none_or(|x| x == false)),
        ("bias", v.get("bias").is_none_or(|x| x == "none")),
        ("modules_to_save", v.get("modules_to_save").is_none_or(|x| x.is_null())),
        ("rank_pattern", v.get("rank_pattern").is_none_or(|x| x.as_object().is_some_and(|o| o.is_empty()))),
        ("alpha_pattern", v.get("alpha_pattern").is_none_or(|x| x.as_object().is_some_and(|o| o.is_empty()))),
    ] {
        if !ok {
            return Err(bad(format!("\"{key}\" = {} is not supported", v[key])));
        }
    }
    let r = v.get("r").and_then(|x| x.as_u64()).ok_or_else(|| bad("missing \"r\"".into()))? as usize;
    let alpha = v.get("lora_alpha").and_then(|x| x.as_f64()).ok_or_else(|| bad("missing \"lora_alpha\"".into()))?;
    let targets: Vec<String> = v
        .get("target_modules")
        .and_then(|x| x.as_array())
        .ok_or_else(|| bad("\"target_modules\" must be a list of module names".into()))?
        .iter()
        .map(|x| {
            x.as_str().map(String::from).ok_or_else(|| bad("\"target_modules\" must be a list of module names".into()))
        })
        .collect::<Result<_>>()?;
    let gpt2 = matches!(base, ModelConfig::Gpt2(_));
    if v.get("fan_in_fan_out").and_then(|x| x.as_bool()).unwrap_or(false) != gpt2 {
        return Err(bad(format!(
            "\"fan_in_fan_out\" must be {gpt2} for this {} model",
            if gpt2 { "GPT-2" } else { "Llama" }
        )));
    }
    let dropout = v.get("lora_dropout").and_then(|x| x.as_f64()).unwrap_or(0.0) as f32;
    let lora = LoraConfig { r, alpha, targets, dropout };
    lora.validate().map_err(|e| bad(e.to_string()))?;
    Ok(lora)
}

/// The adapter tensors of a PEFT folder under shiftlm's names (PEFT's
/// `base_model.model.` prefix removed).
pub fn read_adapter_tensors(adapter: &Path) -> Result<(PathBuf, RawTensors)> {
    let w_path = adapter.join(ADAPTER_MODEL);
    let raw = crate::nn::params::read_safetensors(&crate::io::read(&w_path)?, &w_path)?;
    let raw =
        raw.into_iter().map(|(k, t)| (k.strip_prefix("base_model.model.").unwrap_or(&k).to_string(), t)).collect();
    Ok((w_path, raw))
}

/// The base weights with every adapter folded in, `W + (α/r)·B·A` (its
/// transpose for GPT-2's (in, out) Conv1D weights), under the base names:
/// a plain model that computes what the adapted one does.
pub fn merged_weights(model: &ModelConfig, store: &ParamStore) -> Result<Vec<(String, Tensor)>> {
    let Some(cfg) = model.lora() else {
        return Err(Error::config("lora", "this model has no LoRA adapters to merge"));
    };
    let in_out = matches!(model, ModelConfig::Gpt2(_));
    let vars = store.vars();
    let get = |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_tensor().clone());
    let mut out = Vec::new();
    for (name, var) in vars.iter().filter(|(k, _)| !k.contains(".lora_")) {
        let mut w = var.as_tensor().clone();
        if let Some(module) = name.strip_suffix(".weight") {
            if let (Some(a), Some(b)) =
                (get(&format!("{module}.lora_A.weight")), get(&format!("{module}.lora_B.weight")))
            {
                let delta = (b.matmul(&a)? * cfg.scale())?; // (out, in)
                let delta = if in_out { delta.t()?.contiguous()? } else { delta };
                w = (w + delta)?;
            }
        }
        out.push((name.clone(), w));
    }
    Ok(out)
}

/// The adapters alone in PEFT's layout: `adapter_config.json` and
/// `adapter_model.safetensors` with PEFT's tensor names
/// (`base_model.model.<module>.lora_A.weight`, …), which
/// `PeftModel.from_pretrained(base, DIR)` loads.
pub fn peft_files(model: &ModelConfig, store: &ParamStore, base: &str) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let Some(cfg) = model.lora() else {
        return Err(Error::config("lora", "this model has no LoRA adapters"));
    };
    let tensors: Vec<(String, Tensor)> = store
        .vars()
        .into_iter()
        .filter(|(k, _)| k.contains(".lora_"))
        .map(|(k, v)| (format!("base_model.model.{k}"), v.as_tensor().clone()))
        .collect();
    let config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": cfg.targets,
        // GPT-2's Conv1D stores (in, out), which PEFT calls fan_in_fan_out.
        "fan_in_fan_out": matches!(model, ModelConfig::Gpt2(_)),
        "bias": "none",
        "inference_mode": true,
        "init_lora_weights": true,
        "modules_to_save": null,
        "use_rslora": false,
        "use_dora": false,
    });
    Ok(vec![
        (ADAPTER_CONFIG, serde_json::to_vec_pretty(&config).expect("config serialises")),
        (ADAPTER_MODEL, safetensors_bytes(&tensors)?),
    ])
}
