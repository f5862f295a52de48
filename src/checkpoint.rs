//! Checkpoints: `RUN/checkpoint-<step>/` holding `config.json`,
//! `model.safetensors`, `tokenizer.json` and, for training checkpoints,
//! `optimizer.safetensors` and `trainer_state.json`; then `manifest.json`,
//! written last, with the SHA-256 and size of every file.
//!
//! A checkpoint without a valid manifest does not exist: loaders skip it and
//! the next save removes it. Every file is written to a temporary name in the
//! same folder, fsynced and renamed; a failed save removes its own folder, so
//! earlier checkpoints are never touched and no temporary file is left.

use crate::config::RunConfig;
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::model::{Model, ModelConfig};
use crate::nn::ParamStore;
use crate::train::faults;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
pub const MODEL: &str = "model.safetensors";
pub const TOKENIZER: &str = "tokenizer.json";
pub const OPTIMIZER: &str = "optimizer.safetensors";
pub const TRAINER_STATE: &str = "trainer_state.json";
pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "shiftlm-checkpoint-1";

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_inner(path, bytes, false)
}

fn write_atomic_inner(path: &Path, bytes: &[u8], inject_enospc: bool) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if inject_enospc {
            f.write_all(&bytes[..bytes.len() / 2])?;
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC, as a full disk would
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(dir);
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all(); // not every filesystem can sync a directory
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// One file's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub bytes: u64,
}

/// `manifest.json`: what a complete checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub step: usize,
    pub files: BTreeMap<String, FileEntry>,
}

/// `RUN/checkpoint-<step>`.
pub fn checkpoint_dir(run: &Path, step: usize) -> PathBuf {
    run.join(format!("checkpoint-{step}"))
}

/// Writes a checkpoint folder: every file, then the manifest. On failure the
/// folder is removed and the error names the file that failed.
pub fn write_checkpoint(dir: &Path, step: usize, files: &[(&str, Vec<u8>)]) -> Result<()> {
    if dir.exists() {
        // Left by a crash (no manifest) or an earlier save of the same step.
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let result = (|| {
        let mut entries = BTreeMap::new();
        for (name, bytes) in files {
            write_atomic_inner(&dir.join(name), bytes, faults::fail_save(step, name))?;
            entries.insert(name.to_string(), FileEntry { sha256: sha256_hex(bytes), bytes: bytes.len() as u64 });
            faults::after_file(step, name);
        }
        let manifest = Manifest { format: FORMAT.into(), step, files: entries };
        write_atomic(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest).expect("manifest serialises"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    result
}

/// Reads a checkpoint's manifest and checks every file against it.
pub fn verify(dir: &Path) -> Result<Manifest> {
    let mpath = dir.join(MANIFEST);
    let bytes = std::fs::read(&mpath).map_err(|_| Error::Checkpoint {
        path: dir.to_path_buf(),
        msg: "no manifest.json: not a complete checkpoint".into(),
    })?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Checkpoint { path: mpath.clone(), msg: format!("unreadable manifest: {e}") })?;
    for (name, entry) in &m.files {
        let p = dir.join(name);
        let data = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        if data.len() as u64 != entry.bytes || sha256_hex(&data) != entry.sha256 {
            return Err(Error::Checkpoint {
                path: p,
                msg: format!(
                    "does not match manifest.json ({} bytes, expected {}; SHA-256 differs): truncated or modified",
                    data.len(),
                    entry.bytes
                ),
            });
        }
    }
    Ok(m)
}

/// Every `checkpoint-<step>` folder in `run`, complete or not, by step number.
pub fn list(run: &Path) -> Vec<(usize, PathBuf)> {
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(run)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path().is_dir().then(|| (step, e.path()))
        })
        .collect();
    out.sort_by_key(|(s, _)| *s);
    out
}

/// The newest checkpoint of `run` whose manifest verifies.
pub fn newest_complete(run: &Path) -> Result<PathBuf> {
    list(run)
        .into_iter()
        .rev()
        .find(|(_, p)| verify(p).is_ok())
        .map(|(_, p)| p)
        .ok_or_else(|| Error::Checkpoint { path: run.to_path_buf(), msg: "holds no complete checkpoint".into() })
}

/// Whether `dir` is a model folder written by `transformers`
/// (`config.json` with a `model_type`, no shiftlm manifest).
pub fn is_hf_folder(dir: &Path) -> bool {
    !dir.join(MANIFEST).exists()
        && std::fs::read(dir.join(CONFIG))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v.get("model_type").is_some() && v.get("shiftlm").is_none())
}

/// A checkpoint folder itself, a Hugging Face model folder, or the newest
/// complete checkpoint in a run folder.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Checkpoint { path: dir.to_path_buf(), msg: "no such checkpoint folder".into() });
    }
    if dir.join(MANIFEST).exists() || is_hf_folder(dir) {
        Ok(dir.to_path_buf())
    } else if list(dir).is_empty() {
        Err(Error::Checkpoint {
            path: dir.to_path_buf(),
            msg: "neither a checkpoint (no manifest.json) nor a run folder (no checkpoint-<step>/)".into(),
        })
    } else {
        newest_complete(dir)
    }
}

/// Keeps the newest `keep_last` complete checkpoints and `best`; removes the
/// rest, incomplete folders older than the newest complete one, and any
/// folder past `current` (left by an abandoned run that a resume skipped
/// because it was incomplete or corrupt).
pub fn rotate(run: &Path, keep_last: usize, best: Option<usize>, current: usize) -> Result<()> {
    for (step, path) in list(run) {
        if step > current {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    let all = list(run);
    let complete: Vec<usize> = all.iter().filter(|(_, p)| p.join(MANIFEST).exists()).map(|(s, _)| *s).collect();
    let newest = complete.last().copied().unwrap_or(0);
    let keep: Vec<usize> = complete.iter().rev().take(keep_last.max(1)).copied().chain(best).collect();
    for (step, path) in all {
        let incomplete = !path.join(MANIFEST).exists();
        if (incomplete && step < newest) || (!incomplete && !keep.contains(&step)) {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// The inference files of a checkpoint: config, weights, tokenizer. For a
/// family with a `transformers` layout, `config.json` is that library's
/// config with shiftlm's own under the key `shiftlm`, so the folder opens
/// with `from_pretrained` as it is.
pub fn model_files(cfg: &RunConfig, store: &ParamStore, tok: &Tokenizer) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let ours = serde_json::to_value(cfg).expect("config serialises");
    let config = match cfg.model.to_hf() {
        Some(mut hf) => {
            hf["shiftlm"] = ours;
            hf
        }
        None => ours,
    };
    let mut files =
        vec![(CONFIG, serde_json::to_vec_pretty(&config).expect("config serialises")), (MODEL, store.to_bytes()?)];
    if !matches!(tok, Tokenizer::Values) {
        files.push((TOKENIZER, tok.to_json_bytes()));
    }
    Ok(files)
}

/// A model loaded from a checkpoint.
pub struct Loaded {
    pub config: RunConfig,
    pub model: Model,
    pub store: ParamStore,
    pub tokenizer: Tokenizer,
    /// The checkpoint folder actually loaded.
    pub dir: PathBuf,
    pub step: usize,
}

/// Reads `config.json`: shiftlm's own, or a `transformers` one (GPT-2 or
/// Llama), which becomes a run config for fine-tuning and decoding.
pub fn read_config(path: &Path) -> Result<RunConfig> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let config = if let Some(ours) = v.get("shiftlm") {
        serde_json::from_value(ours.clone()).map_err(|e| bad(format!("not a shiftlm config: {e}")))?
    } else if let Some(kind) = v.get("model_type").and_then(|m| m.as_str()) {
        let model = match kind {
            "gpt2" => ModelConfig::Gpt2(crate::model::Gpt2Config::from_hf(&v).map_err(bad)?),
            "llama" => ModelConfig::Llama(crate::model::LlamaConfig::from_hf(&v).map_err(bad)?),
            other => return Err(bad(format!("model_type \"{other}\" is not supported (gpt2 and llama are)"))),
        };
        let mut cfg = RunConfig::preset(if kind == "llama" { "llama-tiny" } else { "gpt-tiny" })?;
        cfg.preset = format!("hf-{kind}");
        cfg.model = model;
        cfg
    } else {
        serde_json::from_value(v).map_err(|e| bad(format!("not a shiftlm config: {e}")))?
    };
    config.validate().map_err(|e| bad(e.to_string()))?;
    Ok(config)
}

/// Loads a checkpoint folder (or a run folder's newest complete checkpoint,
/// or a `transformers` GPT-2/Llama folder), verifying the manifest where
/// there is one and every tensor's name and shape.
pub fn load(dir: &Path, dev: &Device) -> Result<Loaded> {
    let dir = resolve(dir)?;
    let hf = is_hf_folder(&dir);
    let step = if hf {
        0
    } else {
        let manifest = verify(&dir)?;
        // A forecaster reads values and has no tokenizer.
        let tokenizer = !read_config(&dir.join(CONFIG)).is_ok_and(|c| c.model.is_forecaster());
        for need in [CONFIG, MODEL, TOKENIZER] {
            if !manifest.files.contains_key(need) && (need != TOKENIZER || tokenizer) {
                return Err(Error::Checkpoint { path: dir.join(need), msg: "missing from the checkpoint".into() });
            }
        }
        manifest.step
    };
    let config = read_config(&dir.join(CONFIG))?;
    let tok_path = dir.join(TOKENIZER);
    if config.model.is_forecaster() {
        let (model, store) = load_weights(&config.model, &dir.join(MODEL), dev)?;
        return Ok(Loaded { config, model, store, tokenizer: Tokenizer::Values, dir, step });
    }
    if !tok_path.exists() {
        return Err(Error::Checkpoint {
            path: tok_path,
            msg: "missing: decoding and evaluation need the tokenizer".into(),
        });
    }
    let tokenizer = Tokenizer::load(&tok_path)?;
    if tokenizer.vocab_size() > config.model.vocab_size() {
        return Err(Error::Checkpoint {
            path: tok_path,
            msg: format!(
                "tokenizer has {} ids but the model only {}",
                tokenizer.vocab_size(),
                config.model.vocab_size()
            ),
        });
    }
    let files = if hf { hf_weight_files(&dir)? } else { vec![dir.join(MODEL)] };
    let store = ParamStore::new(0, dev);
    let model = Model::new(&config.model, store.var_builder())?;
    store.load_files_except(&files, |n| config.model.ignorable(n))?;
    Ok(Loaded { config, model, store, tokenizer, dir, step })
}

/// A base model (as [`load`] reads it) with a PEFT LoRA adapter folder
/// (`adapter_config.json`, `adapter_model.safetensors`, as
/// `PeftModel.save_pretrained` or `shiftlm finetune --lora` writes them).
/// Adapter settings shiftlm cannot reproduce exactly are refused by name.
pub fn load_with_adapter(base: &Path, adapter: &Path, dev: &Device) -> Result<Loaded> {
    let base = load(base, dev)?;
    let cfg_path = adapter.join("adapter_config.json");
    let bytes = std::fs::read(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
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
    let gpt2 = matches!(base.config.model, ModelConfig::Gpt2(_));
    if v.get("fan_in_fan_out").and_then(|x| x.as_bool()).unwrap_or(false) != gpt2 {
        return Err(bad(format!(
            "\"fan_in_fan_out\" must be {gpt2} for this {} model",
            if gpt2 { "GPT-2" } else { "Llama" }
        )));
    }
    let dropout = v.get("lora_dropout").and_then(|x| x.as_f64()).unwrap_or(0.0) as f32;
    let lora = crate::nn::lora::LoraConfig { r, alpha, targets, dropout };
    lora.validate().map_err(|e| bad(e.to_string()))?;
    let mut config = base.config.clone();
    config.model.set_lora(Some(lora))?;
    let store = ParamStore::new(0, dev);
    let model = Model::new(&config.model, store.var_builder())?;
    for (name, var) in base.store.vars() {
        store.set(&name, var.as_tensor())?;
    }
    let w_path = adapter.join("adapter_model.safetensors");
    let raw =
        crate::nn::params::read_safetensors(&std::fs::read(&w_path).map_err(|e| Error::io(&w_path, e))?, &w_path)?;
    let raw: crate::nn::params::RawTensors =
        raw.into_iter().map(|(k, t)| (k.strip_prefix("base_model.model.").unwrap_or(&k).to_string(), t)).collect();
    let expected: Vec<(String, candle_core::Tensor)> = store
        .vars()
        .into_iter()
        .filter(|(k, _)| k.contains(".lora_"))
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    if expected.is_empty() {
        return Err(bad("target_modules match no layer of the base model".into()));
    }
    for (name, t) in crate::nn::params::assign_strict(&expected, &raw, &w_path)? {
        store.set(&name, &t)?;
    }
    Ok(Loaded { config, model, store, tokenizer: base.tokenizer, dir: base.dir, step: base.step })
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

/// Builds a model for `cfg` and loads `path` into it (strictly, apart from
/// the family's ignorable buffers).
pub fn load_weights(cfg: &ModelConfig, path: &Path, dev: &Device) -> Result<(Model, ParamStore)> {
    let store = ParamStore::new(0, dev);
    let model = Model::new(cfg, store.var_builder())?;
    store.load_except(path, |n| cfg.ignorable(n))?;
    Ok((model, store))
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_guards_every_file_and_rotation_sorts_numerically() {
        let run = tempfile::tempdir().unwrap();
        for step in [5, 10, 100, 20] {
            write_checkpoint(&checkpoint_dir(run.path(), step), step, &[("a.bin", vec![step as u8; 10])]).unwrap();
        }
        std::fs::create_dir_all(checkpoint_dir(run.path(), 3)).unwrap(); // a crash leftover
        std::fs::create_dir_all(checkpoint_dir(run.path(), 200)).unwrap(); // a save in progress
        assert_eq!(newest_complete(run.path()).unwrap(), checkpoint_dir(run.path(), 100));
        rotate(run.path(), 2, Some(5), 200).unwrap();
        let left: Vec<usize> = list(run.path()).into_iter().map(|(s, _)| s).collect();
        assert_eq!(left, vec![5, 20, 100, 200]);

        let f = checkpoint_dir(run.path(), 100).join("a.bin");
        std::fs::write(&f, vec![1u8; 9]).unwrap();
        let e = verify(&checkpoint_dir(run.path(), 100)).unwrap_err().to_string();
        assert!(e.contains("a.bin") && e.contains("truncated or modified"), "{e}");
        assert_eq!(newest_complete(run.path()).unwrap(), checkpoint_dir(run.path(), 20));
        let names: Vec<String> = std::fs::read_dir(checkpoint_dir(run.path(), 20))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
