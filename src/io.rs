//! File output that never leaves a half-written file behind: every write
//! goes to a temporary name in the same folder, is fsynced and renamed over
//! the target, and the folder is synced. Checkpoints, metrics, tokenizers,
//! forecasts and charts are all written through here. Also the SHA-256 that
//! checkpoint manifests record.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_or_fail(path, bytes, false)
}

/// [`write_atomic`], or, with `inject_enospc` (fault-injection tests only),
/// a write that fails half-way as on a full disk.
pub(crate) fn write_atomic_or_fail(path: &Path, bytes: &[u8], inject_enospc: bool) -> Result<()> {
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

/// Makes a folder's entries durable (renames, removals).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all(); // not every filesystem can sync a directory
    }
}

/// The SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a whole file; the error names it.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Refuses to replace an existing file unless `force`; and never replaces
/// one of `inputs` (the files a job reads), even with `force`.
pub fn check_new(path: &Path, force: bool, inputs: &[&Path]) -> Result<()> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if let Some(input) = inputs.iter().find(|i| same(path, i)) {
        return Err(Error::Setting {
            msg: format!("{}: is the input {}; write the output elsewhere", path.display(), input.display()),
        });
    }
    if path.exists() && !force {
        return Err(Error::Exists { path: path.to_path_buf() });
    }
    Ok(())
}

/// An advisory lock on a run folder (`RUN/.lock`), held while a process
/// trains into it, so that a second trainer is refused with the first one's
/// process id instead of interleaving checkpoints. Released when dropped (or
/// when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

impl RunLock {
    /// Takes the lock of `run`, or says which process holds it.
    pub fn acquire(run: &Path) -> Result<Self> {
        use std::io::{Read, Seek};
        let path = run.join(".lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() { "another process".to_string() } else { format!("process {holder}") };
                return Err(Error::Checkpoint {
                    path: run.to_path_buf(),
                    msg: format!(
                        "is in use by {who}, which is training into it; wait for it to finish or choose another --out"
                    ),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                // A filesystem without advisory locks: train as before, unguarded.
                tracing::warn!(path = %path.display(), error = %e, "cannot lock the run folder; a second trainer would not be refused");
            }
        }
        let pid = std::process::id().to_string();
        let written = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(pid.as_bytes()));
        written.map_err(|e| Error::io(&path, e))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_a_run_is_refused_with_the_holders_pid() {
        let run = tempfile::tempdir().unwrap();
        let held = RunLock::acquire(run.path()).unwrap();
        let e = RunLock::acquire(run.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("process {}", std::process::id())) && e.contains("in use"), "{e}");
        drop(held);
        RunLock::acquire(run.path()).unwrap(); // released with its holder
    }

    #[test]
    fn existing_files_and_inputs_are_never_replaced_by_default() {
        let d = tempfile::tempdir().unwrap();
        let (data, out) = (d.path().join("data.csv"), d.path().join("out.csv"));
        std::fs::write(&data, "x\n1\n").unwrap();
        check_new(&out, false, &[&data]).unwrap();
        std::fs::write(&out, "old").unwrap();
        assert!(matches!(check_new(&out, false, &[&data]), Err(Error::Exists { .. })));
        check_new(&out, true, &[&data]).unwrap();
        let e = check_new(&data, true, &[&data]).unwrap_err().to_string();
        assert!(e.contains("is the input"), "{e}");
    }
}
