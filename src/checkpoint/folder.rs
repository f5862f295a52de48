//! Checkpoint folders: `RUN/checkpoint-<step>/` holding `config.json`,
//! `model.safetensors`, `tokenizer.json` and, for training checkpoints,
//! `optimizer.safetensors` and `trainer_state.json`; then `manifest.json`,
//! written last, with the SHA-256 and size of every file.
//!
//! A checkpoint without a valid manifest does not exist: loaders skip it and
//! the next save removes it. Every file is written atomically
//! ([`crate::io`]); a failed save removes its own folder, so earlier
//! checkpoints are never touched and no temporary file is left. Reading
//! verifies each file once and keeps its bytes ([`Files`]), so nothing is
//! read twice.

use crate::error::{Error, Result};
use crate::faults;
use crate::io::{self, sha256_hex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// File name of the run config.
pub const CONFIG: &str = "config.json";
/// File name of the weights.
pub const MODEL: &str = "model.safetensors";
/// File name of the tokenizer (not written for a forecaster).
pub const TOKENIZER: &str = "tokenizer.json";
/// File name of the encoder's tokenizer, when source and target vocabularies
/// are separate (`tokenizer.json` is then the target's).
pub const SOURCE_TOKENIZER: &str = "source_tokenizer.json";
/// File name of the chat template and its special tokens (a model trained
/// on conversations), as Hugging Face folders keep them.
pub const TOKENIZER_CONFIG: &str = crate::data::chat::TOKENIZER_CONFIG;
/// File name of the optimizer's moments (training checkpoints only).
pub const OPTIMIZER: &str = "optimizer.safetensors";
/// File name of the trainer's state: step, loader position, random streams (training checkpoints only).
pub const TRAINER_STATE: &str = "trainer_state.json";
/// File name of the [`Manifest`], written last.
pub const MANIFEST: &str = "manifest.json";
const FORMAT: &str = "shiftlm-checkpoint-1";

/// One file's entry in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// SHA-256 of the file's bytes, lowercase hex.
    pub sha256: String,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// `manifest.json`: what a complete checkpoint holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format tag, `shiftlm-checkpoint-1`.
    pub format: String,
    /// The training step the checkpoint was written at.
    pub step: usize,
    /// Every other file of the checkpoint, by name.
    pub files: BTreeMap<String, FileEntry>,
}

/// A verified checkpoint in memory: its manifest and the bytes of every
/// file it lists, each read once and checked against its hash.
#[derive(Debug, Clone)]
pub struct Files {
    /// The checkpoint folder.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    bytes: BTreeMap<String, Vec<u8>>,
}

impl Files {
    /// The bytes of `name`, or an error naming the missing file.
    pub fn get(&self, name: &str) -> Result<&[u8]> {
        self.bytes
            .get(name)
            .map(|b| b.as_slice())
            .ok_or_else(|| Error::Checkpoint { path: self.dir.join(name), msg: "missing from the checkpoint".into() })
    }

    /// Whether the checkpoint holds `name`.
    pub fn has(&self, name: &str) -> bool {
        self.bytes.contains_key(name)
    }

    /// The path of `name`, for error messages.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// `RUN/checkpoint-<step>`.
pub fn checkpoint_dir(run: &Path, step: usize) -> PathBuf {
    run.join(format!("checkpoint-{step}"))
}

/// Writes a checkpoint folder: every file, then the manifest. On failure the
/// folder is removed and the error names the file that failed. A folder
/// already there (left by a crash, or a corrupt save of the same step) is
/// cleared of checkpoint files first; anything else in it is an error, and
/// nothing is removed.
pub fn write_checkpoint(dir: &Path, step: usize, files: &[(&str, Vec<u8>)]) -> Result<()> {
    if dir.exists() {
        clear_checkpoint_files(dir, files)?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let result = (|| {
        let mut entries = BTreeMap::new();
        for (name, bytes) in files {
            io::write_atomic_or_fail(&dir.join(name), bytes, faults::fail_save(step, name))?;
            entries.insert(name.to_string(), FileEntry { sha256: sha256_hex(bytes), bytes: bytes.len() as u64 });
            faults::after_file(step, name);
        }
        let manifest = Manifest { format: FORMAT.into(), step, files: entries };
        io::write_atomic(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest).expect("manifest serialises"))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    if let Some(parent) = dir.parent() {
        io::sync_dir(parent);
    }
    result
}

/// Which of a checkpoint's verified files to keep in memory.
pub type Keep<'a> = &'a dyn Fn(&str) -> bool;

/// Every file (resuming needs them all).
pub const ALL: Keep<'static> = &|_| true;

/// The inference files: config, weights, tokenizer (not the optimizer state).
pub const INFERENCE: Keep<'static> =
    &|name| [CONFIG, MODEL, TOKENIZER, SOURCE_TOKENIZER, TOKENIZER_CONFIG].contains(&name);

/// Reads a checkpoint's manifest and every file it lists, checking each
/// against its size and SHA-256; keeps the bytes of the files `keep` names.
pub fn read_verified(dir: &Path, keep: Keep) -> Result<Files> {
    let mpath = dir.join(MANIFEST);
    let bytes = std::fs::read(&mpath).map_err(|_| Error::Checkpoint {
        path: dir.to_path_buf(),
        msg: "no manifest.json: not a complete checkpoint".into(),
    })?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Checkpoint { path: mpath.clone(), msg: format!("unreadable manifest: {e}") })?;
    let mut files = BTreeMap::new();
    for (name, entry) in &manifest.files {
        let p = dir.join(name);
        let data = io::read(&p)?;
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
        if keep(name) {
            files.insert(name.clone(), data);
        }
    }
    Ok(Files { dir: dir.to_path_buf(), manifest, bytes: files })
}

/// Removes what an earlier save of a checkpoint left in `dir` (the files
/// `files` names, the manifest, temporary files), then `dir` itself, after
/// checking that nothing else is there.
fn clear_checkpoint_files(dir: &Path, files: &[(&str, Vec<u8>)]) -> Result<()> {
    let ours = |name: &str| {
        name == MANIFEST
            || [CONFIG, MODEL, TOKENIZER, SOURCE_TOKENIZER, TOKENIZER_CONFIG, OPTIMIZER, TRAINER_STATE].contains(&name)
            || files.iter().any(|(f, _)| *f == name)
            || (name.starts_with('.') && name.ends_with(".tmp"))
    };
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    if let Some(foreign) = entries.iter().find(|e| !e.file_name().to_str().is_some_and(ours)) {
        return Err(Error::Checkpoint {
            path: foreign.path(),
            msg: "is not a checkpoint file; the checkpoint folder it is in was left alone".into(),
        });
    }
    for e in entries {
        std::fs::remove_file(e.path()).map_err(|err| Error::io(e.path(), err))?;
    }
    std::fs::remove_dir(dir).map_err(|e| Error::io(dir, e))
}

/// Reads a checkpoint's manifest and checks every file against it.
pub fn verify(dir: &Path) -> Result<Manifest> {
    read_verified(dir, &|_| false).map(|f| f.manifest)
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

/// The newest checkpoint of `run` whose manifest verifies, read (the files
/// `keep` names).
pub fn newest_verified(run: &Path, keep: Keep) -> Result<Files> {
    list(run)
        .into_iter()
        .rev()
        .find_map(|(_, p)| read_verified(&p, keep).ok())
        .ok_or_else(|| Error::Checkpoint { path: run.to_path_buf(), msg: "holds no complete checkpoint".into() })
}

/// The newest checkpoint of `run` whose manifest verifies.
pub fn newest_complete(run: &Path) -> Result<PathBuf> {
    newest_verified(run, &|_| false).map(|f| f.dir)
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
        let read = newest_verified(run.path(), ALL).unwrap();
        assert_eq!((read.manifest.step, read.get("a.bin").unwrap()), (20, &[20u8; 10][..]));
        assert!(read.get("b.bin").unwrap_err().to_string().contains("b.bin"));
        let names: Vec<String> = std::fs::read_dir(checkpoint_dir(run.path(), 20))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }

    #[test]
    fn a_save_never_removes_what_is_not_a_checkpoint_file() {
        let run = tempfile::tempdir().unwrap();
        let dir = checkpoint_dir(run.path(), 7);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MODEL), b"half a save").unwrap(); // a crash leftover: replaced
        write_checkpoint(&dir, 7, &[(MODEL, vec![1; 4])]).unwrap();
        assert_eq!(read_verified(&dir, ALL).unwrap().get(MODEL).unwrap(), &[1u8; 4][..]);
        std::fs::write(dir.join("notes.txt"), b"mine").unwrap(); // a user's file: kept
        let e = write_checkpoint(&dir, 7, &[(MODEL, vec![2; 4])]).unwrap_err().to_string();
        assert!(e.contains("notes.txt") && e.contains("left alone"), "{e}");
        assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
        assert_eq!(read_verified(&dir, ALL).unwrap().get(MODEL).unwrap(), &[1u8; 4][..]);
    }
}
