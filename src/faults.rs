//! Test-only fault injection, so integration tests can crash the real binary
//! at the worst moment. Each hook reads one environment variable; with none
//! set (always, outside tests) every hook is a no-op.
//!
//! - `SHIFTLM_TEST_SLOW_SAVE=STEP:MS` sleeps MS milliseconds after writing
//!   `model.safetensors` in the save at STEP (a window to `kill -9` in).
//! - `SHIFTLM_TEST_FAIL_SAVE=STEP:FILE` fails the write of FILE at STEP with
//!   ENOSPC after half the bytes, as a full disk would.
//! - `SHIFTLM_TEST_POISON_STEP=STEP` makes the loss at STEP NaN.

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn step_and(name: &str) -> Option<(usize, String)> {
    let v = var(name)?;
    let (s, rest) = v.split_once(':')?;
    Some((s.parse().ok()?, rest.to_string()))
}

/// Called after each file of a checkpoint is written.
pub fn after_file(step: usize, file: &str) {
    if let Some((s, ms)) = step_and("SHIFTLM_TEST_SLOW_SAVE") {
        if s == step && file == "model.safetensors" {
            std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(0)));
        }
    }
}

/// Whether writing `file` at `step` should fail as on a full disk.
pub fn fail_save(step: usize, file: &str) -> bool {
    step_and("SHIFTLM_TEST_FAIL_SAVE").is_some_and(|(s, f)| s == step && f == file)
}

/// Whether the loss at `step` should be replaced by NaN.
pub fn poison(step: usize) -> bool {
    var("SHIFTLM_TEST_POISON_STEP").and_then(|v| v.parse::<usize>().ok()) == Some(step)
}
