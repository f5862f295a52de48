//! Run directories: `config.json`, `model.safetensors` and `tokenizer.json`,
//! enough to evaluate and decode with nothing else. Every file is written to
//! a temporary name in the same folder, fsynced, then renamed over the old
//! one, so a crash never leaves a half-written file under a real name.

use crate::config::RunConfig;
use crate::data::Tokenizer;
use crate::error::{Error, Result};
use crate::model::Seq2Seq;
use crate::nn::ParamStore;
use candle_core::Device;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
pub const MODEL: &str = "model.safetensors";
pub const TOKENIZER: &str = "tokenizer.json";

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all(); // not every filesystem can sync a directory
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Saves a trained model into `dir` (created if needed).
pub fn save(dir: &Path, cfg: &RunConfig, store: &ParamStore, tok: &Tokenizer) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    tok.save(&dir.join(TOKENIZER))?;
    store.save(&dir.join(MODEL))?;
    let json = serde_json::to_vec_pretty(cfg).expect("config serialises");
    write_atomic(&dir.join(CONFIG), &json)
}

/// A model loaded from a run directory.
pub struct Loaded {
    pub config: RunConfig,
    pub model: Seq2Seq,
    pub store: ParamStore,
    pub tokenizer: Tokenizer,
    pub dir: PathBuf,
}

/// Loads `dir`, checking that every file is there and every tensor has the
/// name and shape the config implies.
pub fn load(dir: &Path, dev: &Device) -> Result<Loaded> {
    if !dir.is_dir() {
        return Err(Error::Checkpoint { path: dir.to_path_buf(), msg: "no such checkpoint folder".into() });
    }
    let need = |name: &str| -> Result<PathBuf> {
        let p = dir.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(Error::Checkpoint {
                path: p,
                msg: "missing (a checkpoint holds config.json, model.safetensors and tokenizer.json)".into(),
            })
        }
    };
    let cfg_path = need(CONFIG)?;
    let bytes = std::fs::read(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let config: RunConfig = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Checkpoint { path: cfg_path.clone(), msg: format!("not a shiftlm config: {e}") })?;
    config.validate().map_err(|e| Error::Checkpoint { path: cfg_path.clone(), msg: e.to_string() })?;
    let tokenizer = Tokenizer::load(&need(TOKENIZER)?)?;
    if tokenizer.vocab_size() != config.model.vocab_size {
        return Err(Error::Checkpoint {
            path: dir.join(TOKENIZER),
            msg: format!(
                "tokenizer has {} ids but the model expects {}",
                tokenizer.vocab_size(),
                config.model.vocab_size
            ),
        });
    }
    let store = ParamStore::new(0, dev);
    let model = Seq2Seq::new(&config.model, store.var_builder())?;
    store.load(&need(MODEL)?)?;
    Ok(Loaded { config, model, store, tokenizer, dir: dir.to_path_buf() })
}
