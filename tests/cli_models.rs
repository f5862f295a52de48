//! End-to-end runs of the other model families through the real binary:
//! GPT-2 and Llama on text (char and BPE tokenizers), the Transformer
//! encoder–decoder on a task, and foreign model folders.

use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
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

fn corpus(dir: &Path) {
    let lines = [
        "ROMEO: What light through yonder window breaks?",
        "JULIET: O Romeo, Romeo, wherefore art thou Romeo?",
        "First Citizen: Before we proceed any further, hear me speak.",
    ];
    let text: String = (0..40).map(|i| format!("{}\n", lines[i % 3])).collect();
    std::fs::write(dir.join("play.txt"), text).unwrap();
}

#[test]
fn gpt_trains_on_text_evaluates_and_streams_samples() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    corpus(dir);
    let j = json(&ok(&run(
        dir,
        &[
            "train", "--model", "gpt", "--preset", "gpt-tiny", "--data", "play.txt", "--steps", "200", "--out", "g",
            "--json",
        ],
    )));
    assert!(j["loss"].as_f64().unwrap() < 2.6, "{j}");
    assert!(j["exact_match"].is_null());
    assert!((0.0..=1.0).contains(&j["token_accuracy"].as_f64().unwrap()));
    let e = json(&ok(&run(dir, &["eval", "--checkpoint", "g", "--json"])));
    assert!(
        (e["loss"].as_f64().unwrap() - j["loss"].as_f64().unwrap()).abs() < 1e-6,
        "eval reproduces train's last evaluation"
    );
    ok(&run(dir, &["eval", "--checkpoint", "g", "--data", "play.txt"]));
    let gen = |extra: &[&str]| {
        ok(&run(
            dir,
            &[&["generate", "--checkpoint", "g", "--prompt", "ROMEO:", "--max-new-tokens", "30"], extra].concat(),
        ))
    };
    let a = gen(&["--seed", "3"]);
    assert!(a.starts_with("ROMEO:") && a.trim_end().len() > "ROMEO:".len(), "{a}");
    assert_eq!(a, gen(&["--seed", "3"]), "sampling is seeded");
    gen(&["--temperature", "0", "--repetition-penalty", "1.3"]);
    gen(&["--top-k", "5", "--top-p", "0.9", "--stop", "\n"]);
    let p = ok(&run(
        dir,
        &["data", "preview", "--model", "gpt", "--preset", "gpt-tiny", "--data", "play.txt", "--batches", "1"],
    ));
    assert!(p.contains("inputs") && p.contains("labels"), "{p}");
}

#[test]
fn llama_trains_with_a_bpe_tokenizer_that_tokenizers_can_load() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    corpus(dir);
    ok(&run(
        dir,
        &[
            "train",
            "--model",
            "llama",
            "--preset",
            "llama-tiny",
            "--data",
            "play.txt",
            "--tokenizer",
            "bpe",
            "--bpe-vocab",
            "300",
            "--steps",
            "20",
            "--out",
            "l",
        ],
    ));
    let ck = dir.join("l/checkpoint-20");
    let tok = std::fs::read_to_string(ck.join("tokenizer.json")).unwrap();
    let hf: tokenizers::Tokenizer = tok.parse().unwrap();
    assert!(hf.get_vocab_size(true) <= 300);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ck.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_type"], "llama");
    assert_eq!(cfg["architectures"][0], "LlamaForCausalLM");
    ok(&run(dir, &["generate", "--checkpoint", "l", "--prompt", "JULIET", "--max-new-tokens", "10"]));
}

#[test]
fn transformer_encoder_decoder_trains_and_beam_searches() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let j = json(&ok(&run(
        dir,
        &["train", "--model", "transformer", "--preset", "transformer-tiny", "--out", "t", "--json"],
    )));
    assert!(j["exact_match"].as_f64().unwrap() > 0.3, "{j}");
    let e = json(&ok(&run(dir, &["eval", "--checkpoint", "t", "--beam", "3", "--json"])));
    assert!(e["exact_match"].as_f64().unwrap() > 0.3);
    let out = ok(&run(dir, &["generate", "--checkpoint", "t", "--input", "1 2 3", "--beam", "3"]));
    assert_eq!(out.lines().count(), 1);
    let sampled = |seed: &str| {
        ok(&run(
            dir,
            &[
                "generate",
                "--checkpoint",
                "t",
                "--input",
                "1 2 3",
                "--temperature",
                "0.9",
                "--top-k",
                "3",
                "--top-p",
                "0.9",
                "--seed",
                seed,
            ],
        ))
    };
    assert_eq!(sampled("4"), sampled("4"));
}

#[test]
fn foreign_and_mismatched_requests_are_refused_clearly() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    corpus(dir);
    fails(&run(dir, &["train", "--model", "gpt"]), &["--data"]);
    fails(
        &run(dir, &["train", "--model", "gpt", "--preset", "gpt-tiny", "--data", "play.txt", "--cell", "gru"]),
        &["--cell"],
    );
    fails(&run(dir, &["train", "--model", "gpt", "--preset", "gpt-tiny", "--data", "missing.txt"]), &["missing.txt"]);
    std::fs::create_dir(dir.join("bert")).unwrap();
    std::fs::write(dir.join("bert/config.json"), br#"{"model_type": "bert", "vocab_size": 10}"#).unwrap();
    fails(&run(dir, &["eval", "--checkpoint", "bert"]), &["model_type", "bert", "not supported"]);
    // A transformers GPT-2 folder without tokenizer.json: the file is named.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny");
    fails(&run(dir, &["generate", "--checkpoint", fixture.to_str().unwrap(), "--prompt", "x"]), &["tokenizer.json"]);
}

#[test]
fn bench_lists_and_times_a_configuration() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let list = ok(&run(dir, &["bench", "--list"]));
    for name in ["baby-gpt", "seed-lstm", "gpt-6x384", "gpt2-30m"] {
        assert!(list.contains(name), "{list}");
    }
    let j = json(&ok(&run(
        dir,
        &["--threads", "1", "bench", "--config", "baby-gpt", "--steps", "2", "--warmup", "1", "--json"],
    )));
    for k in ["ms_per_step", "tokens_per_s", "gflops", "peak_gflops", "peak_fraction"] {
        assert!(j[k].as_f64().unwrap() > 0.0, "{k}: {j}");
    }
    assert_eq!(j["threads"], 1);
    fails(&run(dir, &["bench", "--config", "gpt-9000"]), &["gpt-9000", "baby-gpt"]);
}
