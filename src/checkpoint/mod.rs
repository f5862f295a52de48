//! Checkpoints on disk, in three parts:
//! - [`folder`]: shiftlm's checkpoint folders (manifest, verification,
//!   rotation), each file read and verified once;
//! - [`hf`]: Hugging Face interop (`transformers` configs and shards, PEFT
//!   adapters);
//! - this file: loading a model, its config and tokenizer from either kind
//!   of folder ([`load`]), and the inference files a checkpoint holds
//!   ([`model_files`]).
//!
//! Atomic writes and hashes are [`crate::io`]'s.

pub mod folder;
pub mod hf;

pub use crate::io::{sha256_hex, write_atomic};
pub use folder::{
    checkpoint_dir, list, newest_complete, newest_verified, read_verified, rotate, verify, write_checkpoint, FileEntry,
    Files, Manifest, CONFIG, MANIFEST, MODEL, OPTIMIZER, SOURCE_TOKENIZER, TOKENIZER, TOKENIZER_CONFIG, TRAINER_STATE,
};
pub use hf::{hf_weight_files, is_hf_folder};

use crate::config::RunConfig;
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::model::{Model, ModelConfig};
use crate::nn::ParamStore;
use candle_core::Device;
use std::path::{Path, PathBuf};

/// A checkpoint folder itself, a Hugging Face model folder, or the newest
/// complete checkpoint in a run folder (verified, none of it kept in memory).
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    match open(dir, &|_| false)? {
        Opened::Hf(dir) => Ok(dir),
        Opened::Checkpoint(files) => Ok(files.dir),
    }
}

/// A folder [`open`] found.
enum Opened {
    /// A `transformers` model folder (read file by file as needed).
    Hf(PathBuf),
    /// A shiftlm checkpoint, verified and in memory.
    Checkpoint(Files),
}

fn open(dir: &Path, keep: folder::Keep) -> Result<Opened> {
    if !dir.is_dir() {
        return Err(Error::Checkpoint { path: dir.to_path_buf(), msg: "no such checkpoint folder".into() });
    }
    if dir.join(MANIFEST).exists() {
        Ok(Opened::Checkpoint(read_verified(dir, keep)?))
    } else if is_hf_folder(dir) {
        Ok(Opened::Hf(dir.to_path_buf()))
    } else if list(dir).is_empty() {
        let msg = if dir.join("auto.json").exists() {
            // `train --model auto` leaves one run per kind beside its choice.
            "a --model auto run: eval and forecast read it whole (auto.json names the choice); its candidates are the run folders inside it (lstm/, gru/, transformer/, nlinear/, dlinear/, nbeats/)".into()
        } else if dir.join("ensemble.json").exists() {
            // `train --ensemble N` leaves one run per member and a manifest.
            "an ensemble (train --ensemble): eval and forecast read it whole; each member is a run folder inside it (member-1/, …)".into()
        } else {
            "neither a checkpoint (no manifest.json) nor a run folder (no checkpoint-<step>/)".into()
        };
        Err(Error::Checkpoint { path: dir.to_path_buf(), msg })
    } else {
        Ok(Opened::Checkpoint(newest_verified(dir, keep)?))
    }
}

/// The inference files of a checkpoint: config, weights, tokenizer. For a
/// family with a `transformers` layout, `config.json` is that library's
/// config with shiftlm's own under the key `shiftlm`, so the folder opens
/// with `from_pretrained` as it is.
pub fn model_files(cfg: &RunConfig, store: &ParamStore, tok: &Tokenizer) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let mut files = vec![(CONFIG, hf::config_json(cfg)), (MODEL, store.to_bytes()?)];
    if !matches!(tok, Tokenizer::Values) {
        files.push((TOKENIZER, tok.to_json_bytes()?));
    }
    if let Tokenizer::Pair { source, .. } = tok {
        files.push((SOURCE_TOKENIZER, source.to_json_bytes()?));
    }
    if let Some(c) = &cfg.chat_template {
        // As transformers reads it: `AutoTokenizer.from_pretrained` on the
        // folder gets the template and its tokens.
        let mut doc = serde_json::json!({"tokenizer_class": "PreTrainedTokenizerFast", "chat_template": c.source});
        for (k, v) in &c.tokens {
            doc[k] = serde_json::Value::String(v.clone());
        }
        if let Some(n) = cfg.model.context() {
            doc["model_max_length"] = n.into();
        }
        files.push((TOKENIZER_CONFIG, serde_json::to_vec_pretty(&doc).expect("JSON serialises")));
    }
    Ok(files)
}

/// A model loaded from a checkpoint.
pub struct Loaded {
    /// The run config the checkpoint was saved with (or one built from a `transformers` config).
    pub config: RunConfig,
    /// The model, built from `config` and holding the loaded weights.
    pub model: Model,
    /// The model's parameters.
    pub store: ParamStore,
    /// The tokenizer the model reads and writes.
    pub tokenizer: Tokenizer,
    /// The checkpoint folder actually loaded.
    pub dir: PathBuf,
    /// The checkpoint's training step (0 for a `transformers` folder).
    pub step: usize,
}

impl Loaded {
    /// The model's chat template: its run's (a model trained or fine-tuned
    /// on conversations, or carrying one on), else its folder's
    /// `tokenizer_config.json` or `chat_template.jinja` (a Hugging Face
    /// folder); `None` without one.
    pub fn chat_template(&self) -> Result<Option<crate::data::chat::ChatTemplate>> {
        if let Some(t) = &self.config.chat_template {
            return t.compile().map(Some);
        }
        crate::data::chat::ChatTemplate::from_folder(&self.dir)
    }

    /// The special tokens' texts by name (`eos_token` → `</s>`) that a chat
    /// template given for this model reads: its run's, or its folder's
    /// `tokenizer_config.json`'s; none without either.
    pub fn template_tokens(&self) -> Result<std::collections::BTreeMap<String, String>> {
        if let Some(t) = &self.config.chat_template {
            return Ok(t.tokens.clone());
        }
        let path = self.dir.join(TOKENIZER_CONFIG);
        if path.is_file() {
            crate::data::chat::special_tokens(&path)
        } else {
            Ok(Default::default())
        }
    }
}

/// Reads `config.json`: shiftlm's own, or a `transformers` one (GPT-2 or
/// Llama), which becomes a run config for fine-tuning and decoding.
pub fn read_config(path: &Path) -> Result<RunConfig> {
    config_from_bytes(&crate::io::read(path)?, path)
}

/// [`read_config`] of bytes already read; errors name `path`.
pub fn config_from_bytes(bytes: &[u8], path: &Path) -> Result<RunConfig> {
    let bad = |msg: String| Error::Checkpoint { path: path.to_path_buf(), msg };
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let config = if let Some(ours) = v.get("shiftlm") {
        serde_json::from_value(ours.clone()).map_err(|e| bad(format!("not a shiftlm config: {e}")))?
    } else if let Some(kind) = v.get("model_type").and_then(|m| m.as_str()) {
        hf::config_from_hf(&v, kind, bad)?
    } else {
        serde_json::from_value(v).map_err(|e| bad(format!("not a shiftlm config: {e}")))?
    };
    config.validate().map_err(|e| bad(e.to_string()))?;
    Ok(config)
}

/// Loads a checkpoint folder (or a run folder's newest complete checkpoint,
/// or a `transformers` GPT-2/Llama folder), verifying the manifest where
/// there is one and every tensor's name and shape. Each file is read once.
pub fn load(dir: &Path, dev: &Device) -> Result<Loaded> {
    match open(dir, folder::INFERENCE)? {
        Opened::Checkpoint(files) => load_files(&files, dev),
        Opened::Hf(dir) => {
            let config = read_config(&dir.join(CONFIG))?;
            let tok_path = dir.join(TOKENIZER);
            if !tok_path.exists() {
                return Err(missing_tokenizer(tok_path));
            }
            let tokenizer = Tokenizer::load(&tok_path)?;
            check_vocab(&tokenizer, &config, &tok_path)?;
            let files = hf_weight_files(&dir)?;
            let store = ParamStore::new(0, dev);
            let held = files.iter().map(|f| crate::nn::params::safetensors_file_values(f)).sum::<Result<u64>>()?;
            store.limit(held, &files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
            let model = Model::new(&config.model, store.var_builder())?;
            store.load_files_except(&files, |n| config.model.ignorable(n))?;
            Ok(Loaded { config, model, store, tokenizer, dir, step: 0 })
        }
    }
}

/// [`load`] of a verified checkpoint already in memory.
pub fn load_files(files: &Files, dev: &Device) -> Result<Loaded> {
    let (config, tokenizer) = config_and_tokenizer(files)?;
    let store = ParamStore::new(0, dev);
    let path = files.path(MODEL);
    store.limit(crate::nn::params::safetensors_values(files.get(MODEL)?, &path)?, &path.display().to_string());
    let model = Model::new(&config.model, store.var_builder())?;
    load_model_bytes(files, &store, &config.model)?;
    Ok(Loaded { config, model, store, tokenizer, dir: files.dir.clone(), step: files.manifest.step })
}

/// The run config and tokenizer of a verified checkpoint (a forecaster,
/// or an image classifier, which read values, have no tokenizer: [`Tokenizer::Values`]).
pub fn config_and_tokenizer(files: &Files) -> Result<(RunConfig, Tokenizer)> {
    let config = config_from_bytes(files.get(CONFIG)?, &files.path(CONFIG))?;
    if config.model.is_forecaster() || config.model.is_image() {
        return Ok((config, Tokenizer::Values));
    }
    let bytes = files.get(TOKENIZER).map_err(|_| missing_tokenizer(files.path(TOKENIZER)))?;
    let mut tokenizer = Tokenizer::from_json_bytes(bytes, &files.path(TOKENIZER))?;
    check_vocab(&tokenizer, &config, &files.path(TOKENIZER))?;
    let path = files.path(SOURCE_TOKENIZER);
    match (files.get(SOURCE_TOKENIZER).ok(), config.model.source_vocab_size()) {
        (Some(bytes), Some(model)) => {
            let source = Tokenizer::from_json_bytes(bytes, &path)?;
            if source.vocab_size() > model {
                return Err(Error::Checkpoint {
                    path,
                    msg: format!("tokenizer has {} ids but the model's encoder only {model}", source.vocab_size()),
                });
            }
            tokenizer = Tokenizer::Pair { source: Box::new(source), target: Box::new(tokenizer) };
        }
        (None, Some(_)) => {
            return Err(Error::Checkpoint {
                path,
                msg: "missing: the encoder has a vocabulary of its own (model.input), which this file holds".into(),
            })
        }
        (Some(_), None) => {
            return Err(Error::Checkpoint {
                path,
                msg: "the model shares one vocabulary (no model.input tokens): this file does not belong here".into(),
            })
        }
        (None, None) => {}
    }
    Ok((config, tokenizer))
}

/// Loads a verified checkpoint's `model.safetensors` into `store`, whose
/// model was built for `model` (strictly, but for ignorable buffers).
pub fn load_model_bytes(files: &Files, store: &ParamStore, model: &ModelConfig) -> Result<()> {
    store.load_bytes_except(&[(&files.path(MODEL), files.get(MODEL)?)], |n| model.ignorable(n))
}

fn missing_tokenizer(path: PathBuf) -> Error {
    Error::Checkpoint { path, msg: "missing: decoding and evaluation need the tokenizer".into() }
}

fn check_vocab(tokenizer: &Tokenizer, config: &RunConfig, path: &Path) -> Result<()> {
    if tokenizer.vocab_size() > config.model.vocab_size() {
        return Err(Error::Checkpoint {
            path: path.to_path_buf(),
            msg: format!(
                "tokenizer has {} ids but the model only {}",
                tokenizer.vocab_size(),
                config.model.vocab_size()
            ),
        });
    }
    Ok(())
}

/// A base model (as [`load`] reads it) with a PEFT LoRA adapter folder
/// (`adapter_config.json`, `adapter_model.safetensors`, as
/// `PeftModel.save_pretrained` or `shiftlm finetune --lora` writes them).
/// Adapter settings shiftlm cannot reproduce exactly are refused by name.
pub fn load_with_adapter(base: &Path, adapter: &Path, dev: &Device) -> Result<Loaded> {
    let base = load(base, dev)?;
    let lora = hf::read_adapter_config(adapter, &base.config.model)?;
    let mut config = base.config.clone();
    config.model.set_lora(Some(lora))?;
    let store = ParamStore::new(0, dev);
    let model = Model::new(&config.model, store.var_builder())?;
    for (name, var) in base.store.vars() {
        store.set(&name, var.as_tensor())?;
    }
    let (w_path, raw) = hf::read_adapter_tensors(adapter)?;
    let expected: Vec<(String, candle_core::Tensor)> = store
        .vars()
        .into_iter()
        .filter(|(k, _)| k.contains(".lora_"))
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
    if expected.is_empty() {
        return Err(Error::Checkpoint {
            path: adapter.join(hf::ADAPTER_CONFIG),
            msg: "target_modules match no layer of the base model".into(),
        });
    }
    for (name, t) in crate::nn::params::assign_strict(&expected, &raw, &w_path)? {
        store.set(&name, &t)?;
    }
    Ok(Loaded { config, model, store, tokenizer: base.tokenizer, dir: base.dir, step: base.step })
}

/// Builds a model for `cfg` and loads `path` into it (strictly, apart from
/// the family's ignorable buffers).
pub fn load_weights(cfg: &ModelConfig, path: &Path, dev: &Device) -> Result<(Model, ParamStore)> {
    let store = ParamStore::new(0, dev);
    store.limit(crate::nn::params::safetensors_file_values(path)?, &path.display().to_string());
    let model = Model::new(cfg, store.var_builder())?;
    store.load_except(path, |n| cfg.ignorable(n))?;
    Ok((model, store))
}
