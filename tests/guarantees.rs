//! What shiftlm promises about a user's files, through the real binary: a
//! file is never replaced without `--force`, an input never at all, a new
//! run never writes into a folder that holds something else, and a second
//! trainer cannot write into a run another process is training.

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn fails(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in {err}");
    }
}

#[test]
fn a_new_run_never_writes_into_a_folder_that_holds_something_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("mine")).unwrap();
    std::fs::write(d.join("mine/metrics.jsonl"), "my own notes\n").unwrap();
    fails(&run(d, &["train", "--preset", "tiny", "--steps", "2", "--out", "mine"]), &["mine", "not empty"]);
    assert_eq!(std::fs::read_to_string(d.join("mine/metrics.jsonl")).unwrap(), "my own notes\n");
    std::fs::create_dir(d.join("empty")).unwrap();
    ok(&run(d, &["train", "--preset", "tiny", "--steps", "2", "--out", "empty", "--show", "0"]));
}

#[test]
fn outputs_are_replaced_only_with_force_and_inputs_never() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv: String = std::iter::once("t,v\n".to_string())
        .chain((0..300).map(|i| format!("{i},{}\n", (i as f32 * 0.3).sin() + 0.01 * i as f32)))
        .collect();
    std::fs::write(d.join("series.csv"), &csv).unwrap();
    let train = ["train", "--data", "series.csv", "--target", "v", "--preset", "series-tiny", "--steps", "3"];
    ok(&run(d, &[&train[..], &["--out", "run", "--show", "0"]].concat()));
    std::fs::write(d.join("f.csv"), "keep me").unwrap();
    let forecast = ["forecast", "--checkpoint", "run", "--out", "f.csv"];
    fails(&run(d, &forecast), &["f.csv", "already exists", "--force"]);
    assert_eq!(std::fs::read_to_string(d.join("f.csv")).unwrap(), "keep me");
    assert!(!d.join("f.png").exists(), "nothing is written when one output exists");
    ok(&run(d, &[&forecast[..], &["--force"]].concat()));
    assert!(std::fs::read_to_string(d.join("f.csv")).unwrap().starts_with("step,timestamp,v"));
    // The data file is never an output, even with --force.
    fails(&run(d, &["forecast", "--checkpoint", "run", "--out", "series.csv", "--force"]), &["is the input"]);
    assert_eq!(std::fs::read_to_string(d.join("series.csv")).unwrap(), csv);
    // The loss plot: the same rule.
    ok(&run(d, &["plot", "run"]));
    fails(&run(d, &["plot", "run"]), &["loss.svg", "--force"]);
    ok(&run(d, &["plot", "run", "--force"]));
}
