//! Data-parallel training over MPI, under `mpirun -np 2` (two processes on
//! this machine), for a tiny model of each family: the GPT, the LSTM
//! encoder–decoder and the forecaster.
//!
//! Needs the binary built with `--features mpi` and Debian's Open MPI
//! (`openmpi-bin libopenmpi-dev`): `.ci/run` installs them and runs
//! `cargo test --release --features mpi --test mpi`. Elsewhere the tests
//! skip themselves, naming what is missing; under CI=true a missing `mpirun`
//! fails them.

#![cfg_attr(not(feature = "mpi"), allow(dead_code))]

use std::path::Path;
use std::process::{Command, Output};

/// Whether `mpirun` is here; under CI=true it must be.
fn have_mpirun() -> bool {
    if Command::new("mpirun").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, but mpirun is missing (.ci/run installs openmpi-bin)"
    );
    eprintln!("skipped: needs Debian's Open MPI (apt-get install openmpi-bin libopenmpi-dev)");
    false
}

/// `mpirun -np N shiftlm ARGS` in `dir`, two threads' worth of cores shared.
fn mpirun<S: AsRef<std::ffi::OsStr>>(dir: &Path, n: usize, args: &[S], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", &n.to_string()]);
    for (k, v) in env {
        c.args(["-x", &format!("{k}={v}")]);
    }
    c.arg(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

fn shiftlm<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

/// The words of `parts`, joined.
fn cat(parts: &[&[&str]]) -> Vec<String> {
    parts.iter().flat_map(|p| p.iter().map(|s| s.to_string())).collect()
}

/// The weights of `run`'s checkpoint at `step`, tensor by tensor (name, values).
fn weights(run: &Path, step: usize) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(run.join(format!("checkpoint-{step}/model.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            let v = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            (name, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The largest relative difference between two sets of weights.
fn max_rel_diff(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f32 {
    assert_eq!(a.iter().map(|t| &t.0).collect::<Vec<_>>(), b.iter().map(|t| &t.0).collect::<Vec<_>>());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.1.iter().zip(&y.1).map(|(p, q)| (p - q).abs() / p.abs().max(q.abs()).max(1e-6)))
        .fold(0.0, f32::max)
}

/// A tiny job of each family, dropout on (its masks must not depend on the rank).
fn families(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let text: String = (0..400).map(|i| format!("line {i}: the quick brown fox jumps over the lazy dog. ")).collect();
    std::fs::write(dir.join("text.txt"), text).unwrap();
    let csv: String = std::iter::once("y".to_string())
        .chain((0..300).map(|t| format!("{:.4}", (t as f32 * 0.3).sin() + 0.01 * t as f32)))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("series.csv"), csv).unwrap();
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    vec![
        ("gpt", v(&["--preset", "gpt-tiny", "--data", "text.txt", "--dropout", "0.1"])),
        ("lstm seq2seq", v(&["--preset", "tiny", "--dropout", "0.1"])),
        ("forecaster", v(&["--preset", "series-tiny", "--data", "series.csv", "--target", "y"])),
    ]
}

#[cfg(feature = "mpi")]
#[test]
fn two_ranks_train_as_one_process_with_twice_the_accumulation() {
    if !have_mpirun() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    for (family, args) in families(d.path()) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let with = |extra: &[&str]| cat(&[&["train"], &args, &["--steps", "4", "--eval-every", "2"], extra]);
        let name = family.replace(' ', "-");
        let (one, det, native) = (format!("{name}-one"), format!("{name}-det"), format!("{name}-native"));
        ok(shiftlm(d.path(), &with(&["--grad-accum", "2", "--out", &one])));
        ok(mpirun(d.path(), 2, &with(&["--deterministic-reduce", "--out", &det]), &[]));
        ok(mpirun(d.path(), 2, &with(&["--out", &native]), &[]));
        let reference = weights(&d.path().join(&one), 4);
        // Summed in rank order: the same bits.
        assert_eq!(reference, weights(&d.path().join(&det), 4), "{family}: --deterministic-reduce differs");
        // MPI's own allreduce: within 1e-6 relative.
        let diff = max_rel_diff(&reference, &weights(&d.path().join(&native), 4));
        assert!(diff <= 1e-6, "{family}: native allreduce differs by {diff} relative");
        // The same run folder as one process writes: checkpoints, metrics, TensorBoard.
        let names = |run: &str| {
            let mut v: Vec<String> = std::fs::read_dir(d.path().join(run))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&one), names(&det), "{family}");
        // Every step is logged once (by rank 0), with the loss of the whole global batch.
        let losses = |run: &str| -> Vec<f64> {
            let log = std::fs::read_to_string(d.path().join(run).join("metrics.jsonl")).unwrap();
            let rows = log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
            rows.filter(|r| r["kind"] == "train").map(|r| r["loss"].as_f64().unwrap()).collect()
        };
        assert_eq!(losses(&det).len(), 4, "{family}");
        assert_eq!(losses(&one), losses(&det), "{family}: the logged losses differ");
    }
}

/// With accumulation on each rank, rank r takes micro-batches r·A … r·A + A − 1 of
/// the global batch: two ranks of --grad-accum 2 train on what one process of
/// --grad-accum 4 does, summed in another grouping (so equal to rounding).
#[cfg(feature = "mpi")]
#[test]
fn ranks_take_consecutive_micro_batches_when_each_accumulates() {
    if !have_mpirun() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (_, args) = families(d.path()).remove(2);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let with = |extra: &[&str]| cat(&[&["train"], &args, &["--steps", "4", "--dropout", "0.1"], extra]);
    ok(shiftlm(d.path(), &with(&["--grad-accum", "4", "--out", "one"])));
    ok(mpirun(d.path(), 2, &with(&["--grad-accum", "2", "--deterministic-reduce", "--out", "two"]), &[]));
    let (a, b) = (weights(&d.path().join("one"), 4), weights(&d.path().join("two"), 4));
    let diff = max_rel_diff(&a, &b);
    assert!(diff <= 1e-4, "two ranks of grad accum 2 differ from one process of 4 by {diff} relative");
    // Not by chance: one process of grad accum 2 (half the samples) is far from both.
    ok(shiftlm(d.path(), &with(&["--grad-accum", "2", "--out", "half"])));
    assert!(max_rel_diff(&a, &weights(&d.path().join("half"), 4)) > 1e-3);
}

#[cfg(feature = "mpi")]
#[test]
fn only_rank_0_writes_files() {
    if !have_mpirun() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (d.path().join("rank0"), d.path().join("rank1"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let data = d.path().join("series.csv");
    families(d.path());
    // Each rank in its own working folder, the run folder relative: whatever rank 1 wrote would land in rank1/.
    let exe = env!("CARGO_BIN_EXE_shiftlm");
    let run = ["train", "--preset", "series-tiny", "--data", data.to_str().unwrap(), "--target", "y", "--steps", "4"];
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]);
    c.args(["-np", "1", "--wdir", a.to_str().unwrap(), exe]).args(run).args(["--out", "run", ":"]);
    c.args(["-np", "1", "--wdir", b.to_str().unwrap(), exe]).args(run).args(["--out", "run"]);
    let o = ok(c.output().unwrap());
    assert!(a.join("run/checkpoint-4/model.safetensors").is_file());
    assert_eq!(std::fs::read_dir(&b).unwrap().count(), 0, "rank 1 wrote into its folder");
    // And only rank 0 reports: one final report on standard output.
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches("forecast accuracy on the test split").count(), 1, "{out}");
}

#[cfg(feature = "mpi")]
#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes_exactly() {
    if !have_mpirun() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let (_, args) = families(d.path()).remove(0);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = |out: &str| {
        cat(&[&["train"], &args, &["--steps", "8", "--save-every", "2", "--keep-last", "10", "--out", out]])
    };
    ok(mpirun(d.path(), 2, &run("full"), &[]));
    // Rank 1 dies at the start of step 6: the job ends, not hangs, and says so.
    let o = mpirun(d.path(), 2, &run("cut"), &[("SHIFTLM_TEST_DIE", "1:6")]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("exited") || err.contains("signal") || err.contains("abort"), "{err}");
    // What is there is whole: checkpoints 2 and 4 only.
    assert!(d.path().join("cut/checkpoint-4").is_dir() && !d.path().join("cut/checkpoint-6").exists());
    ok(mpirun(d.path(), 2, &["train", "--resume", "cut"], &[]));
    assert_eq!(weights(&d.path().join("full"), 8), weights(&d.path().join("cut"), 8));
    // A data-parallel checkpoint is an ordinary one: one process evaluates it.
    ok(shiftlm(d.path(), &["eval", "--checkpoint", "cut/checkpoint-8"]));
}

#[cfg(not(feature = "mpi"))]
#[test]
fn data_parallel_tests_need_the_mpi_feature() {
    eprintln!(
        "skipped: the data-parallel tests run with `cargo test --release --features mpi --test mpi` (Debian: apt-get install openmpi-bin libopenmpi-dev)"
    );
}

/// Other commands are refused under a launcher of several processes, with or without MPI.
#[test]
fn only_train_runs_under_a_launcher_of_several_processes() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_shiftlm"))
        .args(["generate", "--checkpoint", "nowhere"])
        .env("SLURM_STEP_NUM_TASKS", "4")
        .env("SLURM_PROCID", "1")
        .current_dir(d.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("slurm started 4 processes") && err.contains("only `shiftlm train`"), "{err}");
}

/// Without `--features mpi`, a multi-process launch is refused, not run as N racing copies.
#[cfg(not(feature = "mpi"))]
#[test]
fn a_launch_of_several_ranks_without_mpi_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_shiftlm"))
        .args(["train", "--preset", "tiny", "--steps", "1", "--out", "run"])
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .env("OMPI_COMM_WORLD_RANK", "0")
        .current_dir(d.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("mpirun started 2 processes") && err.contains("--features mpi"), "{err}");
    assert!(!d.path().join("run").exists(), "a refused launch wrote its run folder");
}
