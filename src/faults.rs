//! Test-only fault injection, so integration tests can crash the real binary
//! at the worst moment. Compiled only with the `fault-injection` feature,
//! which the tests turn on; otherwise every hook is a constant no-op and no
//! environment variable is read. With the feature, each hook reads one
//! environment variable:
//!
//! - `SHIFTLM_TEST_SLOW_SAVE=STEP:MS` sleeps MS milliseconds after writing
//!   `model.safetensors` in the save at STEP (a window to `kill -9` in).
//! - `SHIFTLM_TEST_FAIL_SAVE=STEP:FILE` fails the write of FILE at STEP with
//!   ENOSPC after half the bytes, as a full disk would.
//! - `SHIFTLM_TEST_POISON_STEP=STEP` makes the loss at STEP NaN.
//! - `SHIFTLM_TEST_DIE=RANK:STEP` aborts rank RANK of a data-parallel job
//!   (0 alone) at the start of STEP, as a kill would.
//! - `SHIFTLM_TEST_SLOW_OP=NAME:MS` sleeps MS milliseconds in every profiled
//!   call of the op NAME (e.g. `gelu.fwd`), so a test can check that the
//!   profiler puts it first.

#[cfg(feature = "fault-injection")]
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[cfg(feature = "fault-injection")]
fn step_and(name: &str) -> Option<(usize, String)> {
    let v = var(name)?;
    let (s, rest) = v.split_once(':')?;
    Some((s.parse().ok()?, rest.to_string()))
}

/// Called after each file of a checkpoint is written.
#[cfg(feature = "fault-injection")]
pub fn after_file(step: usize, file: &str) {
    if let Some((s, ms)) = step_and("SHIFTLM_TEST_SLOW_SAVE") {
        if s == step && file == "model.safetensors" {
            std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
        }
    }
}

/// Whether writing `file` at `step` should fail as on a full disk.
#[cfg(feature = "fault-injection")]
pub fn fail_save(step: usize, file: &str) -> bool {
    step_and("SHIFTLM_TEST_FAIL_SAVE").is_some_and(|(s, f)| s == step && f == file)
}

/// Ends this process at once, as a kill would, at the start of `step` on
/// `rank` (`SHIFTLM_TEST_DIE=RANK:STEP`).
#[cfg(feature = "fault-injection")]
pub fn die(rank: usize, step: usize) {
    if let Some((r, s)) = step_and("SHIFTLM_TEST_DIE") {
        if r == rank && s.parse() == Ok(step) {
            std::process::abort();
        }
    }
}

/// Without the feature: no process is ended.
#[cfg(not(feature = "fault-injection"))]
pub fn die(_rank: usize, _step: usize) {}

/// Whether the loss at `step` should be replaced by NaN.
#[cfg(feature = "fault-injection")]
pub fn poison(step: usize) -> bool {
    var("SHIFTLM_TEST_POISON_STEP").and_then(|v| v.parse::<usize>().ok()) == Some(step)
}

/// Called inside each profiled op call (only while the profiler records).
#[cfg(feature = "fault-injection")]
pub fn in_op(name: &str) {
    if let Some((op, ms)) =
        var("SHIFTLM_TEST_SLOW_OP").and_then(|v| v.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())))
    {
        if op == name {
            std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
        }
    }
}

/// Without the feature: no op is slowed.
#[cfg(not(feature = "fault-injection"))]
pub fn in_op(_name: &str) {}

/// Without the feature: nothing to inject.
#[cfg(not(feature = "fault-injection"))]
pub fn after_file(_step: usize, _file: &str) {}

/// Without the feature: no write fails on purpose.
#[cfg(not(feature = "fault-injection"))]
pub fn fail_save(_step: usize, _file: &str) -> bool {
    false
}

/// Without the feature: no loss is poisoned.
#[cfg(not(feature = "fault-injection"))]
pub fn poison(_step: usize) -> bool {
    false
}
