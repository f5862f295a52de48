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
    // What a run that died before its first checkpoint left (its lock marks it) is started over.
    std::fs::create_dir_all(d.join("died/tb")).unwrap();
    std::fs::write(d.join("died/.lock"), "12345").unwrap();
    std::fs::write(d.join("died/metrics.jsonl"), "").unwrap();
    ok(&run(d, &["train", "--preset", "tiny", "--steps", "2", "--out", "died", "--show", "0"]));
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

/// With one pair, the hash sends it to training or to validation; either
/// way `data preview` and `train` answer with a message, never a panic.
#[test]
fn a_single_pair_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // "w8\tv8" hashes into validation, "a\tb" into training.
    for (i, pair) in ["w8\tv8", "a\tb"].iter().enumerate() {
        std::fs::write(d.join("one.tsv"), format!("{pair}\n")).unwrap();
        for args in [
            &["data", "preview", "--data", "one.tsv"][..],
            &["train", "--data", "one.tsv", "--steps", "1", "--show", "0", "--out", &format!("r{i}")],
        ] {
            let o = run(d, args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!err.contains("panicked"), "{args:?} on {pair:?}: {err}");
            if i == 0 {
                assert!(o.status.code() == Some(2) && err.contains("no training pairs"), "{err}");
            } else {
                assert!(o.status.success(), "{err}");
            }
        }
    }
}

/// The learning rate of each logged step in `run/metrics.jsonl`.
fn lrs(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| (v["step"].as_u64().unwrap(), v["lr"].as_f64().unwrap()))
        .collect()
}

/// `train --resume RUN --steps N` stretches a schedule that decayed to the
/// old last step, instead of continuing at its floor.
#[test]
fn a_longer_resume_stretches_the_decay() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(d, &["train", "--preset", "transformer-tiny", "--steps", "20", "--out", "run", "--show", "0"]));
    ok(&run(d, &["train", "--resume", "run", "--steps", "40", "--show", "0"]));
    let lr = lrs(&d.join("run"));
    let (peak, at21) = (3e-3, lr.iter().find(|(s, _)| *s == 21).unwrap().1);
    assert!(at21 > 0.4 * peak && at21 < peak, "lr at step 21 of 40: {at21} (the floor is {})", 0.1 * peak);
    let last = lr.last().unwrap();
    assert!(last.0 == 40 && (last.1 - 0.1 * peak).abs() < 1e-9, "{last:?}");
}

/// `finetune --lr` decays by cosine to a tenth, as its help says, even from
/// an encoder–decoder preset trained at a constant rate.
#[test]
fn finetune_decays_as_its_help_says() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&run(d, &["train", "--preset", "tiny", "--steps", "5", "--out", "base", "--show", "0"]));
    let pairs: String = (0..60).map(|i| format!("{} {}\t{} {}\n", i % 8, (i + 3) % 8, (i + 3) % 8, i % 8)).collect();
    std::fs::write(d.join("pairs.tsv"), pairs).unwrap();
    ok(&run(d, &["finetune", "--from", "base", "--data", "pairs.tsv", "--steps", "20", "--lr", "1e-3", "--out", "ft"]));
    let lr = lrs(&d.join("ft"));
    let (first, last) = (lr[0].1, lr.last().unwrap().1);
    assert!(first < 1e-3 && (last - 1e-4).abs() < 1e-9, "warmup from {first}, decay to {last}");
}

/// A flag that does not apply to the model at hand is refused with the
/// reason, never silently ignored; and the pairs tokenizer flags work.
#[test]
fn flags_that_do_not_apply_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lm = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/export/gpt2");
    ok(&run(d, &["train", "--preset", "tiny", "--steps", "3", "--out", "s2s", "--show", "0"]));
    for (args, needle) in [
        (vec!["generate", "--checkpoint", lm, "--prompt", "To", "--beam", "2"], "apply to encoder–decoders"),
        (vec!["generate", "--checkpoint", lm, "--prompt", "To", "--max-len", "5"], "apply to encoder–decoders"),
        (
            vec!["generate", "--checkpoint", "s2s", "--input", "1 2", "--max-new-tokens", "5"],
            "apply to language models",
        ),
        (vec!["generate", "--checkpoint", "s2s", "--input", "1 2", "--stop", "3"], "apply to language models"),
        (vec!["eval", "--checkpoint", lm, "--beam", "2"], "apply to encoder–decoders"),
        (vec!["eval", "--checkpoint", lm, "--show", "2"], "apply to encoder–decoders"),
    ] {
        fails(&run(d, &args), &[needle]);
    }
    let pairs: String = (0..80).map(|i| format!("word{i} other{}\tother{} word{i}\n", i % 7, i % 7)).collect();
    std::fs::write(d.join("pairs.tsv"), pairs).unwrap();
    for flag in ["--vocab", "--min-len", "--max-len"] {
        fails(&run(d, &["train", "--data", "pairs.tsv", flag, "4"]), &["shape the built-in tasks"]);
    }
    fails(&run(d, &["train", "--data", "pairs.tsv", "--bpe-vocab", "300"]), &["--bpe-vocab"]);
    let train = ["train", "--data", "pairs.tsv", "--tokenizer", "bpe", "--bpe-vocab", "300", "--steps", "2"];
    ok(&run(d, &[&train[..], &["--out", "bpe", "--show", "0"]].concat()));
    let tok: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("bpe/checkpoint-2/tokenizer.json")).unwrap()).unwrap();
    let vocab = tok["model"]["vocab"].as_object().unwrap().len();
    assert!(vocab > 100 && vocab <= 300, "a BPE vocabulary of {vocab}, not the old fixed 2000");
}

/// `generate --json` gives each output's ids and text; unknown symbols in
/// new data are reported; log lines on a non-terminal carry no colour codes.
#[test]
fn json_output_unknown_symbols_and_plain_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lm = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/export/gpt2");
    let o = run(
        d,
        &["generate", "--checkpoint", lm, "--prompt", "To be", "--temperature", "0", "--max-new-tokens", "6", "--json"],
    );
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(stdout.lines().count(), 1, "only the JSON line: {stdout}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let out = &v["outputs"][0];
    assert_eq!(out["input"], "To be");
    assert!(!out["ids"].as_array().unwrap().is_empty() && out["ids"].as_array().unwrap().len() <= 6, "{v}");
    assert!(out["text"].is_string());

    ok(&run(d, &["train", "--preset", "tiny", "--steps", "3", "--out", "s2s", "--show", "0"]));
    std::fs::write(d.join("new.tsv"), "1 99 2\t2 99 1\n3 4\t4 3\n").unwrap();
    let o = run(d, &["eval", "--checkpoint", "s2s", "--data", "new.tsv"]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("new.tsv") && err.contains("2 symbol(s) are not in the tokenizer's vocabulary"), "{err}");
    assert!(!err.contains('\x1b'), "colour codes in a log file: {err:?}");
}

/// A config that asks for more than its weights hold is refused before
/// anything is allocated, naming the field (a `vocab_size` of 10¹¹ used to
/// hang `generate` while it allocated).
#[test]
fn sizes_in_config_json_are_checked_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny");
    let tok = shiftlm::data::Tokenizer::Symbols { n: 40 }.to_json_bytes().unwrap();
    for (name, vocab, needle) in [
        ("huge", 100_000_000_000u64, "model.vocab_size: 100000000000 is more than"),
        ("big", 5000, "transformer.wte.weight"), // within bounds: the strict load names the tensor
        ("vast", 3_000_000, "asks for far more values than the file holds (parameter transformer.wte.weight"),
    ] {
        let to = d.join(name);
        std::fs::create_dir_all(&to).unwrap();
        std::fs::copy(src.join("model.safetensors"), to.join("model.safetensors")).unwrap();
        std::fs::write(to.join("tokenizer.json"), &tok).unwrap();
        let mut cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
        cfg["vocab_size"] = vocab.into();
        std::fs::write(to.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
        let start = std::time::Instant::now();
        fails(&run(d, &["generate", "--checkpoint", name, "--prompt", "1 2"]), &[needle]);
        assert!(start.elapsed().as_secs() < 20, "{name}: took {:?}", start.elapsed());
    }
}

#[test]
fn an_error_names_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["plot", "no-such-run"]);
    fails(&o, &["no-such-run", "metrics.jsonl"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_run_logged_to_a_file_keeps_its_validation_lines() {
    // Standard error is a pipe here, so the progress bar is hidden; the
    // validation results must still be written.
    let dir = tempfile::tempdir().unwrap();
    let o = run(dir.path(), &["train", "--steps", "4", "--out", "r"]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("step      4  valid loss"), "{err}");
}
