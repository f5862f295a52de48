//! Translation data and evaluation from the command line: parallel files
//! (plain or gzip), given validation sets, hypotheses written for scoring,
//! and the refusals of misaligned input.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn shiftlm(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Twelve tiny "translations": the target is the source reversed, word by word.
fn write_parallel(dir: &Path, stem: &str, n: usize) {
    let words = ["a dog", "the cat", "one bird", "red car", "big tree", "old man"];
    let (mut src, mut tgt) = (String::new(), String::new());
    for i in 0..n {
        let s = format!("{} {}", words[i % 6], words[(i / 6) % 6]);
        tgt.push_str(&s.split(' ').rev().collect::<Vec<_>>().join(" "));
        src.push_str(&s);
        src.push('\n');
        tgt.push('\n');
    }
    std::fs::write(dir.join(format!("{stem}.en")), src).unwrap();
    std::fs::write(dir.join(format!("{stem}.de")), tgt).unwrap();
}

#[test]
fn trains_on_parallel_files_and_writes_hypotheses_for_scoring() {
    let d = tempfile::tempdir().unwrap();
    write_parallel(d.path(), "train", 36);
    write_parallel(d.path(), "val", 6);
    // The validation target, gzip-compressed: read as it is.
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&std::fs::read(d.path().join("val.de")).unwrap()).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(d.path().join("val.de.gz"), gz).unwrap();
    let train = [
        "train",
        "--preset",
        "tiny",
        "--source",
        "train.en",
        "--target",
        "train.de",
        "--valid-source",
        "val.en",
        "--valid-target",
        "val.de.gz",
        "--steps",
        "2",
        "--out",
        "run",
        "--json",
    ];
    let o = shiftlm(d.path(), &train);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = common::last_json(&o);
    assert!(j["bleu"].is_number() && j["chrf"].is_number(), "{j}");
    assert!(stderr(&o).contains("36 pairs (6 held out)"), "{}", stderr(&o));

    let eval = ["eval", "--checkpoint", "run", "--source", "val.en", "--target", "val.de", "--output", "hyp.de"];
    let o = shiftlm(d.path(), &[&eval[..], &["--json"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let hyp = std::fs::read_to_string(d.path().join("hyp.de")).unwrap();
    assert_eq!(hyp.lines().count(), 6, "{hyp}");
    // The written outputs score as eval scored them.
    let j = common::last_json(&o);
    let s = shiftlm(d.path(), &["score", "--hyp", "hyp.de", "--ref", "val.de", "--json"]);
    assert!(s.status.success(), "{}", stderr(&s));
    let sj = common::last_json(&s);
    assert!((sj["bleu"].as_f64().unwrap() - j["bleu"].as_f64().unwrap()).abs() < 1e-9, "{sj} vs {j}");
    assert!((sj["chrf"].as_f64().unwrap() - j["chrf"].as_f64().unwrap()).abs() < 1e-9, "{sj} vs {j}");
    // An existing output is kept unless --force.
    let o = shiftlm(d.path(), &eval);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("hyp.de") && stderr(&o).contains("--force"), "{}", stderr(&o));
}

#[test]
fn misaligned_parallel_files_are_refused_naming_both() {
    let d = tempfile::tempdir().unwrap();
    write_parallel(d.path(), "train", 12);
    std::fs::write(d.path().join("short.de"), "x\ny\n").unwrap();
    let o = shiftlm(
        d.path(),
        &["train", "--preset", "tiny", "--source", "train.en", "--target", "short.de", "--steps", "1", "--out", "r"],
    );
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(e.contains("train.en") && e.contains("short.de") && e.contains("12 lines"), "{e}");
    assert!(!d.path().join("r").exists(), "a refused run writes nothing");
    // One side blank, the other not: named by file and line.
    std::fs::write(d.path().join("hole.de"), "a\n\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl\n").unwrap();
    let o = shiftlm(
        d.path(),
        &["train", "--preset", "tiny", "--source", "train.en", "--target", "hole.de", "--steps", "1", "--out", "r"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("hole.de:2:"), "{}", stderr(&o));
    // Not UTF-8: file and line.
    std::fs::write(d.path().join("bad.de"), b"a\nb\n\xff\n").unwrap();
    let o = shiftlm(
        d.path(),
        &["train", "--preset", "tiny", "--source", "train.en", "--target", "bad.de", "--steps", "1", "--out", "r"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.de:3:") && stderr(&o).contains("UTF-8"), "{}", stderr(&o));
    // --source without --target, or with a task, is refused.
    let o = shiftlm(d.path(), &["train", "--source", "train.en", "--steps", "1", "--out", "r"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--target"), "{}", stderr(&o));
    let o =
        shiftlm(d.path(), &["train", "--task", "copy", "--source", "train.en", "--target", "train.de", "--out", "r"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("without --task"), "{}", stderr(&o));
}

#[test]
fn label_smoothing_trains_and_is_refused_where_nothing_is_a_token() {
    let d = tempfile::tempdir().unwrap();
    write_parallel(d.path(), "train", 24);
    let args = ["train", "--model", "transformer", "--preset", "transformer-tiny", "--source", "train.en"];
    let o = shiftlm(
        d.path(),
        &[
            &args[..],
            &[
                "--target",
                "train.de",
                "--label-smoothing",
                "0.1",
                "--schedule",
                "inverse-sqrt",
                "--warmup",
                "1",
                "--steps",
                "2",
                "--out",
                "r",
            ],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("r/checkpoint-2/config.json")).unwrap()).unwrap();
    assert!((cfg["train"]["label_smoothing"].as_f64().unwrap() - 0.1).abs() < 1e-6, "{cfg}");
    assert_eq!(cfg["train"]["schedule"]["kind"], "inverse_sqrt", "{cfg}");
    assert_eq!(cfg["train"]["schedule"]["warmup_steps"], 1, "{cfg}");
    // The learning rate follows it: 1/√2 of the peak at step 2.
    let metrics = std::fs::read_to_string(d.path().join("r/metrics.jsonl")).unwrap();
    let lrs: Vec<f64> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|j| j["kind"] == "train")
        .map(|j| j["lr"].as_f64().unwrap())
        .collect();
    assert!((lrs[1] / lrs[0] - 0.5f64.sqrt()).abs() < 1e-6, "{lrs:?}");
    for (bad, what) in [
        (&["--task", "series", "--label-smoothing", "0.1"][..], "predict tokens"),
        (&["--label-smoothing", "1"][..], "[0, 1)"),
    ] {
        let o = shiftlm(d.path(), &[&["train", "--steps", "1", "--out", "x"][..], bad].concat());
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        assert!(stderr(&o).contains("label_smoothing") && stderr(&o).contains(what), "{}", stderr(&o));
    }
}

#[test]
fn averaging_the_last_checkpoints_gives_their_mean() {
    let d = tempfile::tempdir().unwrap();
    write_parallel(d.path(), "train", 24);
    let train = ["train", "--preset", "tiny", "--source", "train.en", "--target", "train.de", "--steps", "6"];
    let o = shiftlm(d.path(), &[&train[..], &["--save-every", "2", "--keep-last", "3", "--out", "r"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = shiftlm(d.path(), &["average", "--from", "r", "--last", "3", "--out", "avg", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(common::last_json(&o)["steps"], serde_json::json!([2, 4, 6]));
    let load = |p: &str| {
        candle_core::safetensors::load(d.path().join(p).join("model.safetensors"), &candle_core::Device::Cpu).unwrap()
    };
    let (a, b, c, m) = (load("r/checkpoint-2"), load("r/checkpoint-4"), load("r/checkpoint-6"), load("avg"));
    for (name, w) in &m {
        let mean = ((&a[name] + &b[name]).unwrap() + &c[name]).unwrap().affine(1.0 / 3.0, 0.0).unwrap();
        let diff =
            (w - mean).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-6, "{name}: {diff}");
    }
    // The average is a checkpoint like any other.
    let o = shiftlm(d.path(), &["eval", "--checkpoint", "avg", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Too few checkpoints, or an existing folder: refused, nothing written.
    let o = shiftlm(d.path(), &["average", "--from", "r", "--last", "5", "--out", "avg5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--keep-last 5") && !d.path().join("avg5").exists(), "{}", stderr(&o));
    let o = shiftlm(d.path(), &["average", "--from", "r", "--last", "2", "--out", "avg"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
}

#[test]
fn select_by_bleu_scores_every_evaluation_and_ends_on_the_chosen_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    write_parallel(d.path(), "train", 36);
    let train = ["train", "--preset", "tiny", "--source", "train.en", "--target", "train.de", "--steps", "6"];
    let o = shiftlm(
        d.path(),
        &[&train[..], &["--eval-every", "2", "--select-by", "bleu", "--out", "r", "--json"]].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let metrics = std::fs::read_to_string(d.path().join("r/metrics.jsonl")).unwrap();
    let evals: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|j| j["kind"] == "eval")
        .collect();
    assert_eq!(evals.len(), 3, "{metrics}");
    assert!(evals.iter().all(|e| e["valid_bleu"].is_number()), "{metrics}");
    // The best is the first of the highest BLEU; the final evaluation says it used it.
    let top = evals.iter().map(|e| e["valid_bleu"].as_f64().unwrap()).fold(f64::NEG_INFINITY, f64::max);
    let best = evals.iter().find(|e| e["valid_bleu"].as_f64().unwrap() == top).unwrap()["step"].as_u64().unwrap();
    let j = common::last_json(&o);
    assert_eq!(j["best_step"].as_u64(), Some(best), "{j}");
    assert!(j["evaluated_checkpoint"].as_str().unwrap().ends_with(&format!("checkpoint-{best}")), "{j}");
    assert!(stderr(&o).contains("best validation BLEU"), "{}", stderr(&o));
    // A model that decodes nothing has no BLEU to select by.
    let o = shiftlm(d.path(), &["train", "--task", "series", "--select-by", "bleu", "--steps", "1", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("train.select_by"), "{}", stderr(&o));
}

#[test]
fn scheduled_sampling_trains_encoder_decoders() {
    let d = tempfile::tempdir().unwrap();
    write_parallel(d.path(), "train", 24);
    for model in ["seq2seq", "transformer"] {
        let out = format!("r-{model}");
        let args = ["train", "--model", model, "--source", "train.en", "--target", "train.de", "--steps", "2"];
        let o = shiftlm(d.path(), &[&args[..], &["--scheduled-sampling", "0.5", "--out", &out]].concat());
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join(&out).join("checkpoint-2/config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["train"]["scheduled_sampling"], 0.5, "{cfg}");
    }
    let o = shiftlm(
        d.path(),
        &["train", "--model", "gpt", "--data", "train.en", "--scheduled-sampling", "0.5", "--out", "g"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("train.scheduled_sampling"), "{}", stderr(&o));
}

#[test]
fn variational_dropout_trains_rnn_encoder_decoders_and_resumes() {
    let d = tempfile::tempdir().unwrap();
    write_parallel(d.path(), "train", 24);
    for cell in ["lstm", "gru"] {
        let out = format!("r-{cell}");
        let args = ["train", "--preset", "tiny", "--cell", cell, "--layers", "2", "--source", "train.en"];
        let more = ["--target", "train.de", "--variational-dropout", "0.3", "--steps", "4", "--save-every", "2"];
        let o = shiftlm(d.path(), &[&args[..], &more[..], &["--out", &out, "--json"]].concat());
        assert!(o.status.success(), "{cell}: {}", stderr(&o));
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.path().join(&out).join("checkpoint-4/config.json")).unwrap())
                .unwrap();
        assert!((cfg["model"]["variational_dropout"].as_f64().unwrap() - 0.3).abs() < 1e-6, "{cfg}");
        // Resumed from step 2, the masks come from the saved stream: the same weights at step 4.
        let resumed = format!("{out}-resumed");
        common::copy_dir(&d.path().join(&out).join("checkpoint-2"), &d.path().join(&resumed).join("checkpoint-2"));
        let o = shiftlm(d.path(), &["train", "--resume", &resumed]);
        assert!(o.status.success(), "{cell}: {}", stderr(&o));
        let w = |run: &str| std::fs::read(d.path().join(run).join("checkpoint-4/model.safetensors")).unwrap();
        assert!(w(&out) == w(&resumed), "{cell}: resumed weights differ");
    }
    let o = shiftlm(d.path(), &["train", "--model", "transformer", "--variational-dropout", "0.3", "--out", "t"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--variational-dropout"), "{}", stderr(&o));
}

#[test]
fn separate_vocabularies_train_decode_and_resume() {
    let d = tempfile::tempdir().unwrap();
    // Lowercase sources, uppercase targets: two alphabets that share nothing but the space.
    let words = ["a dog", "the cat", "one bird", "red car", "big tree", "old man"];
    let (mut src, mut tgt) = (String::new(), String::new());
    for i in 0..30 {
        let s = format!("{} {}", words[i % 6], words[(i / 6) % 6]);
        src.push_str(&format!("{s}\n"));
        tgt.push_str(&format!("{}\n", s.to_uppercase()));
    }
    std::fs::write(d.path().join("train.en"), &src).unwrap();
    std::fs::write(d.path().join("train.de"), &tgt).unwrap();
    let distinct = |t: &str| t.chars().filter(|c| *c != '\n').collect::<std::collections::BTreeSet<_>>().len();
    let (src_vocab, tgt_vocab) = (4 + distinct(&src), 4 + distinct(&tgt));
    for (model, preset) in [("seq2seq", "tiny"), ("transformer", "transformer-tiny")] {
        let out = format!("r-{model}");
        let args = ["train", "--model", model, "--preset", preset, "--source", "train.en", "--target", "train.de"];
        let more = ["--shared-vocab", "false", "--steps", "4", "--save-every", "2", "--out", &out, "--json"];
        let o = shiftlm(d.path(), &[&args[..], &more[..]].concat());
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let ck = d.path().join(&out).join("checkpoint-4");
        let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(ck.join("config.json")).unwrap()).unwrap();
        let cfg = if cfg["shiftlm"].is_null() { &cfg } else { &cfg["shiftlm"] };
        let m = &cfg["model"];
        assert_eq!(m["vocab_size"], tgt_vocab, "{model}: {m}");
        assert_eq!(m["input"]["vocab_size"], src_vocab, "{model}: {m}");
        assert_eq!(cfg["data"]["file"]["shared_vocab"], false, "{model}: {cfg}");
        let vocab = |f: &str| {
            let t: serde_json::Value = serde_json::from_slice(&std::fs::read(ck.join(f)).unwrap()).unwrap();
            t["model"]["vocab"].as_object().unwrap().keys().cloned().collect::<Vec<_>>()
        };
        assert!(vocab("source_tokenizer.json").contains(&"g".to_string()), "{model}");
        assert!(vocab("tokenizer.json").contains(&"G".to_string()) && !vocab("tokenizer.json").contains(&"g".into()));

        // Decoding reads lowercase and writes the target's alphabet.
        let o = shiftlm(d.path(), &["generate", "--checkpoint", &out, "--prompt", "a dog", "--json"]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let text = common::last_json(&o)["outputs"][0]["text"].as_str().unwrap().to_string();
        assert!(text.chars().all(|c| c == ' ' || c.is_ascii_uppercase()), "{model}: {text:?}");
        let o = shiftlm(d.path(), &["eval", "--checkpoint", &out, "--source", "train.en", "--target", "train.de"]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        assert!(!stderr(&o).contains("<unk>"), "{model}: {}", stderr(&o));

        // Resumed from step 2 with both tokenizers: the same weights at step 4.
        let resumed = format!("{out}-resumed");
        common::copy_dir(&d.path().join(&out).join("checkpoint-2"), &d.path().join(&resumed).join("checkpoint-2"));
        let o = shiftlm(d.path(), &["train", "--resume", &resumed]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        let w = |run: &str| std::fs::read(d.path().join(run).join("checkpoint-4/model.safetensors")).unwrap();
        assert!(w(&out) == w(&resumed), "{model}: resumed weights differ");

        // Fine-tuning keeps both vocabularies.
        let tsv: String = src.lines().zip(tgt.lines()).map(|(s, t)| format!("{s}\t{t}\n")).collect();
        std::fs::write(d.path().join("more.tsv"), tsv).unwrap();
        let ft = format!("ft-{model}");
        let o = shiftlm(d.path(), &["finetune", "--from", &out, "--data", "more.tsv", "--steps", "2", "--out", &ft]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
        assert!(d.path().join(&ft).join("checkpoint-2/source_tokenizer.json").exists(), "{model}");
        let o = shiftlm(d.path(), &["generate", "--checkpoint", &ft, "--prompt", "a dog"]);
        assert!(o.status.success(), "{model}: {}", stderr(&o));
    }
    // The shared default says so in nothing it writes; the flag alone means shared.
    let args = ["train", "--preset", "tiny", "--source", "train.en", "--target", "train.de", "--steps", "1"];
    let o = shiftlm(d.path(), &[&args[..], &["--shared-vocab", "--out", "s"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!d.path().join("s/checkpoint-1/source_tokenizer.json").exists());
    // Refused: nothing to separate, or no pairs to separate.
    let o = shiftlm(d.path(), &[&args[..], &["--shared-vocab", "false", "--tokenizer", "byte", "--out", "b"]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("data.file.shared_vocab"), "{}", stderr(&o));
    let o = shiftlm(d.path(), &["train", "--task", "reverse", "--shared-vocab", "false", "--out", "t"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--shared-vocab"), "{}", stderr(&o));
}
