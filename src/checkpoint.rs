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
use crate::model::Seq2Seq;
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

/// A checkpoint folder itself, or the newest complete one in a run folder.
pub fn resolve(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(Error::Checkpoint { path: dir.to_path_buf(), msg: "no such checkpoint folder".into() });
    }
    if dir.join(MANIFEST).exists() {
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
/// rest, and incomplete folders older than the newest complete one.
pub fn rotate(run: &Path, keep_last: usize, best: Option<usize>) -> Result<()> {
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

/// The inference files of a checkpoint: config, weights, tokenizer.
pub fn model_files(cfg: &RunConfig, store: &ParamStore, tok: &Tokenizer) -> Result<Vec<(&'static str, Vec<u8>)>> {
    Ok(vec![
        (CONFIG, serde_json::to_vec_pretty(cfg).expect("config serialises")),
        (MODEL, store.to_bytes()?),
        (TOKENIZER, serde_json::to_vec_pretty(tok).expect("tokenizer serialises")),
    ])
}

/// A model loaded from a checkpoint.
pub struct Loaded {
    pub config: RunConfig,
    pub model: Seq2Seq,
    pub store: ParamStore,
    pub tokenizer: Tokenizer,
    /// The checkpoint folder actually loaded.
    pub dir: PathBuf,
    pub step: usize,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Checkpoint { path: path.to_path_buf(), msg: format!("not a shiftlm {what}: {e}") })
}

/// Loads a checkpoint folder (or a run folder's newest complete checkpoint),
/// verifying the manifest and every tensor's name and shape.
pub fn load(dir: &Path, dev: &Device) -> Result<Loaded> {
    let dir = resolve(dir)?;
    let manifest = verify(&dir)?;
    for need in [CONFIG, MODEL, TOKENIZER] {
        if !manifest.files.contains_key(need) {
            return Err(Error::Checkpoint { path: dir.join(need), msg: "missing from the checkpoint".into() });
        }
    }
    let cfg_path = dir.join(CONFIG);
    let config: RunConfig = read_json(&cfg_path, "config")?;
    config.validate().map_err(|e| Error::Checkpoint { path: cfg_path.clone(), msg: e.to_string() })?;
    let tokenizer: Tokenizer = read_json(&dir.join(TOKENIZER), "tokenizer")?;
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
    store.load(&dir.join(MODEL))?;
    Ok(Loaded { config, model, store, tokenizer, dir, step: manifest.step })
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
        rotate(run.path(), 2, Some(5)).unwrap();
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
