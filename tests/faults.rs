//! Faults, with the real binary: `kill -9` in the middle of a checkpoint
//! save, a full disk, an unwritable folder, NaN losses. Nothing already
//! written may be lost, and `--resume` must continue bit for bit.

use shiftlm::train::metrics::{read_jsonl, Record};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shiftlm"));
    c.current_dir(dir);
    c
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    bin(dir).args(args).envs(env.iter().copied()).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in {err}");
    }
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(tmp_files(&e.path()));
        } else if e.file_name().to_string_lossy().ends_with(".tmp") {
            out.push(e.path());
        }
    }
    out
}

const TRAIN: &[&str] =
    &["train", "--preset", "tiny", "--save-every", "20", "--dropout", "0.1", "--grad-accum", "2", "--eval-every", "50"];

fn train_losses(run: &Path) -> Vec<(usize, f32)> {
    read_jsonl(&run.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Train(m) => Some((m.step, m.loss)),
            _ => None,
        })
        .collect()
}

#[test]
fn kill_during_save_then_resume_is_bit_identical_to_an_uninterrupted_run() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // The uninterrupted reference, and a second process with the same seed.
    ok(&run(dir, &[TRAIN, &["--out", "ref"]].concat(), &[]));
    ok(&run(dir, &[TRAIN, &["--out", "same"]].concat(), &[]));
    let reference = std::fs::read(dir.join("ref/checkpoint-150/model.safetensors")).unwrap();
    assert!(
        reference == std::fs::read(dir.join("same/checkpoint-150/model.safetensors")).unwrap(),
        "same seed, different weights across processes"
    );

    // Kill -9 while checkpoint-40 is half written.
    let mut child = bin(dir)
        .args([TRAIN, &["--out", "run"]].concat())
        .env("SHIFTLM_TEST_SLOW_SAVE", "40:60000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let half = dir.join("run/checkpoint-40/model.safetensors");
    let t0 = Instant::now();
    while !half.exists() {
        assert!(t0.elapsed() < Duration::from_secs(120), "the save at step 40 never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!dir.join("run/checkpoint-40/manifest.json").exists());

    // The previous checkpoint loads; the half-written one does not exist.
    let e = json(&ok(&run(dir, &["eval", "--checkpoint", "run", "--json"], &[])));
    assert!(e["loaded"].as_str().unwrap().ends_with("checkpoint-20"), "{e}");

    let out = ok(&run(dir, &["train", "--resume", "run", "--json"], &[]));
    assert_eq!(json(&out)["steps"], 150);
    assert!(
        reference == std::fs::read(dir.join("run/checkpoint-150/model.safetensors")).unwrap(),
        "resumed weights differ"
    );
    assert!(!dir.join("run/checkpoint-40").exists() || dir.join("run/checkpoint-40/manifest.json").exists());
    // The log matches the uninterrupted one, step for step, with no duplicates.
    assert_eq!(train_losses(&dir.join("run")), train_losses(&dir.join("ref")));
    assert_eq!(train_losses(&dir.join("ref")).len(), 150);
    assert!(tmp_files(&dir.join("run")).is_empty());
}

#[test]
fn a_full_disk_keeps_the_previous_checkpoint_and_leaves_no_temporary_files() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let o = run(dir, &[TRAIN, &["--out", "run"]].concat(), &[("SHIFTLM_TEST_FAIL_SAVE", "40:optimizer.safetensors")]);
    fails(&o, &["optimizer.safetensors", "No space left on device"]);
    assert!(!dir.join("run/checkpoint-40").exists());
    assert!(tmp_files(&dir.join("run")).is_empty(), "{:?}", tmp_files(&dir.join("run")));
    shiftlm::checkpoint::verify(&dir.join("run/checkpoint-20")).unwrap();
    let e = json(&ok(&run(dir, &["eval", "--checkpoint", "run", "--json"], &[])));
    assert!(e["loaded"].as_str().unwrap().ends_with("checkpoint-20"));
    // And the run can go on from there.
    ok(&run(dir, &["train", "--resume", "run"], &[]));
    shiftlm::checkpoint::verify(&dir.join("run/checkpoint-150")).unwrap();
}

#[test]
fn an_unwritable_run_folder_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("afile"), b"x").unwrap();
    fails(&run(d.path(), &["train", "--preset", "tiny", "--out", "afile/run"], &[]), &["afile/run"]);
}

#[test]
fn a_nan_loss_stops_with_the_step_or_is_skipped_when_asked() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let o = run(dir, &[TRAIN, &["--out", "stop"]].concat(), &[("SHIFTLM_TEST_POISON_STEP", "25")]);
    fails(&o, &["non-finite loss at step 25"]);
    let left: Vec<usize> = shiftlm::checkpoint::list(&dir.join("stop")).into_iter().map(|(s, _)| s).collect();
    assert_eq!(left, vec![20]);

    let o = run(
        dir,
        &[TRAIN, &["--out", "skip", "--set", "train.on_nonfinite=skip", "--json"]].concat(),
        &[("SHIFTLM_TEST_POISON_STEP", "25")],
    );
    let j = json(&ok(&o));
    assert_eq!(j["skipped_batches"], 1);
    assert_eq!(j["steps"], 150);
}

#[test]
fn resume_keeps_its_config() {
    let d = tempfile::tempdir().unwrap();
    ok(&run(d.path(), &["train", "--preset", "tiny", "--steps", "10", "--out", "run"], &[]));
    fails(&run(d.path(), &["train", "--resume", "run", "--lr", "1"], &[]), &["--resume", "--steps"]);
    fails(&run(d.path(), &["train", "--resume", "nowhere"], &[]), &["nowhere"]);
    // --steps extends a finished run.
    let j = json(&ok(&run(d.path(), &["train", "--resume", "run", "--steps", "15", "--json"], &[])));
    assert_eq!(j["steps"], 15);
}

#[test]
fn logs_plot_and_tensorboard() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    ok(&run(dir, &["train", "--preset", "tiny", "--eval-every", "30", "--out", "run"], &[]));
    let recs = read_jsonl(&dir.join("run/metrics.jsonl")).unwrap();
    assert_eq!(recs.iter().filter(|r| matches!(r, Record::Train(_))).count(), 150);
    assert_eq!(recs.iter().filter(|r| matches!(r, Record::Eval(_))).count(), 5);

    let out = ok(&run(dir, &["plot", "run"], &[]));
    assert!(out.trim().ends_with("loss.svg"));
    let svg = std::fs::read_to_string(dir.join("run/loss.svg")).unwrap();
    assert!(svg.contains("validation loss") && svg.matches("<polyline").count() == 4);

    let tb: Vec<PathBuf> = std::fs::read_dir(dir.join("run/tb")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(tb.len(), 1);
    let scalars = shiftlm::train::tensorboard::read_scalars(&tb[0]).unwrap();
    assert_eq!(scalars.iter().filter(|s| s.0 == "train/loss").count(), 150);
    assert_eq!(scalars.iter().filter(|s| s.0 == "valid/loss").count(), 5);

    fails(&run(dir, &["plot", "nowhere"], &[]), &["nowhere", "metrics.jsonl"]);
}
