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
    for name in ["baby-gpt", "seed-lstm", "gpt-6x384", "gpt2-30m", "llama-baby", "llama-6x384"] {
        assert!(list.contains(name), "{list}");
    }
    for config in ["baby-gpt", "llama-baby"] {
        let j = json(&ok(&run(
            dir,
            &["--threads", "1", "bench", "--config", config, "--steps", "2", "--warmup", "1", "--json"],
        )));
        for k in ["ms_per_step", "tokens_per_s", "gflops", "peak_gflops", "peak_fraction"] {
            assert!(j[k].as_f64().unwrap() > 0.0, "{config} {k}: {j}");
        }
        assert_eq!(j["threads"], 1);
        // The machine: its model, and which instruction set the kernels used.
        assert!(!j["cpu"]["model"].as_str().unwrap().is_empty(), "{j}");
        assert!(["avx512", "avx2"].contains(&j["cpu"]["isa"].as_str().unwrap()), "{j}");
    }
    fails(&run(dir, &["bench", "--config", "gpt-9000"]), &["gpt-9000", "baby-gpt"]);
    // bf16 products: timed and recorded where the CPU has them, refused with
    // exit 2 where it does not, and with AVX-512 switched off.
    let bf16 = ["--threads", "1", "bench", "--config", "baby-gpt", "--steps", "2", "--warmup", "1"];
    let bf16 = [&bf16[..], &["--precision", "bf16", "--json"]].concat();
    if shiftlm::ops::cpu::bf16_supported() {
        let j = json(&ok(&run(dir, &bf16)));
        assert_eq!(j["cpu"]["precision"], "bf16", "{j}");
    } else {
        fails(&run(dir, &bf16), &["--precision bf16", "AVX"]);
    }
    let avx2 =
        Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(&bf16).env("SHIFTLM_ISA", "avx2").current_dir(dir).output();
    fails(&avx2.unwrap(), &["--precision bf16", "use f32 (the default)"]);
    std::fs::write(dir.join("t.txt"), "To be, or not to be, that is the question. ".repeat(20)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_shiftlm"))
        .args(["train", "--preset", "gpt-tiny", "--data", "t.txt", "--steps", "1", "--precision", "bf16", "--out", "r"])
        .env("SHIFTLM_ISA", "avx2")
        .current_dir(dir)
        .output()
        .unwrap();
    fails(&o, &["--precision bf16"]);
    assert!(!dir.join("r").exists(), "a refused run leaves no folder");
    if shiftlm::ops::cpu::bf16_supported() {
        // A bf16 run resumes in bf16, so where that cannot run it is refused, naming the run.
        let train = ["train", "--preset", "gpt-tiny", "--data", "t.txt", "--steps", "2", "--precision", "bf16"];
        ok(&run(dir, &[&train[..], &["--out", "rb", "--eval-every", "0"]].concat()));
        let o = Command::new(env!("CARGO_BIN_EXE_shiftlm"))
            .args(["train", "--resume", "rb", "--steps", "3"])
            .env("SHIFTLM_ISA", "avx2")
            .current_dir(dir)
            .output()
            .unwrap();
        fails(&o, &["rb", "--precision bf16", "resume it on such a CPU"]);
    }
}

/// `--profile`: a Chrome trace and a per-op table of the asked steps; an op
/// slowed on purpose (fault injection) comes first; existing files are kept.
#[test]
fn profile_finds_the_slow_op_and_writes_a_chrome_trace() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    corpus(dir);
    let args = [
        "train",
        "--model",
        "gpt",
        "--preset",
        "gpt-tiny",
        "--data",
        "play.txt",
        "--steps",
        "4",
        "--show",
        "0",
        "--profile",
        "p",
        "--profile-steps",
        "2..3",
    ];
    let slow = |out: &str| {
        let mut a = args.to_vec();
        a.extend(["--out", out]);
        Command::new(env!("CARGO_BIN_EXE_shiftlm"))
            .args(a)
            .env("SHIFTLM_TEST_SLOW_OP", "gelu.fwd:15")
            .current_dir(dir)
            .output()
            .unwrap()
    };
    ok(&slow("g"));
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("p/profile.json")).unwrap()).unwrap();
    assert_eq!(p["steps"], 2, "{p}");
    let rows = p["rows"].as_array().unwrap();
    assert_eq!(rows[0]["name"], "gelu.fwd", "the slowed op leads the table: {p}");
    assert!(rows[0]["self_ms"].as_f64().unwrap() >= 2.0 * 2.0 * 15.0, "two layers × two steps × 15 ms: {p}");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    for n in ["step", "forward", "backward", "optimizer", "linear.fwd", "linear.bwd", "causal_attention.bwd"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let covered = p["covered_ms"].as_f64().unwrap() / p["step_ms"].as_f64().unwrap();
    assert!(covered > 0.99 && covered <= 1.0 + 1e-9, "{p}");
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("p/trace.json")).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    let x: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(x.iter().filter(|e| e["name"] == "step").count(), 2);
    for e in &x {
        for k in ["name", "cat", "ts", "dur", "pid", "tid"] {
            assert!(!e[k].is_null(), "{k} missing in {e}");
        }
        if e["cat"] == "op" {
            assert!(e["args"]["shapes"].as_str().unwrap().starts_with('['), "{e}");
        }
    }
    assert!(events.iter().any(|e| e["ph"] == "M" && e["name"] == "thread_name"));
    // Memory: the forward pass leaves at least the logits for the backward
    // pass (the cross-entropy's input, N × V floats).
    assert_eq!(p["allocations_counted"], true, "{p}");
    let ce = x.iter().find(|e| e["name"] == "cross_entropy.fwd").unwrap();
    let dims: Vec<u64> = ce["args"]["shapes"].as_str().unwrap()[1..]
        .split(']')
        .next()
        .unwrap()
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    let logits = 4 * dims[0] * dims[1];
    assert!(p["graph_bytes"].as_u64().unwrap() >= logits, "graph {} < logits {logits}: {p}", p["graph_bytes"]);
    let row = |n: &str| rows.iter().find(|r| r["name"] == n).unwrap().clone();
    assert!(row("linear.fwd")["self_alloc_bytes"].as_u64().unwrap() > 0, "{p}");
    assert!(row("forward")["peak_rss_bytes"].as_u64().unwrap() > 1 << 20, "{p}");
    // The timeline picture, and TensorBoard scalars per step in the profile
    // folder and in the run's tb/.
    let png = std::fs::read(dir.join("p/timeline.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    for tb in ["p", "g/tb"] {
        let scalars: Vec<(String, i64, f32)> = std::fs::read_dir(dir.join(tb))
            .unwrap()
            .map(|f| f.unwrap().path())
            .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents"))
            .flat_map(|f| shiftlm::train::tensorboard::read_scalars(&f).unwrap())
            .filter(|s| s.0 == "profile/gelu.fwd_ms")
            .collect();
        assert_eq!(scalars.iter().map(|s| s.1).collect::<Vec<_>>(), [2, 3], "{tb}: {scalars:?}");
        assert!(scalars.iter().all(|s| s.2 >= 2.0 * 15.0), "{tb}: {scalars:?}");
    }
    // Generation: a step is a token, the first one with the prompt.
    let o =
        run(dir, &["generate", "--checkpoint", "g", "--prompt", "To be", "--max-new-tokens", "5", "--profile", "pg"]);
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("profile: 5 token(s)"), "{o:?}");
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("pg/profile.json")).unwrap()).unwrap();
    assert_eq!((p["unit"].as_str(), p["steps"].as_u64()), (Some("token"), Some(5)), "{p}");
    let names: Vec<&str> = p["rows"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    for n in ["token", "forward", "sample", "linear.fwd", "softmax.fwd"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let args = ["generate", "--checkpoint", "g", "--prompt", "To be", "--max-new-tokens", "5", "--json"];
    let o = run(dir, &[&args[..], &["--profile", "pg2", "--profile-steps", "2..3"]].concat());
    ok(&o);
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("pg2/profile.json")).unwrap()).unwrap();
    assert_eq!(p["steps"], 2, "{p}");
    let last = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
    assert!(last.starts_with("{\"outputs\""), "the JSON line stays last: {last}");
    // A second profile into the same folder is refused before training.
    fails(&slow("g2"), &["trace.json", "give --profile a new folder"]);
    assert!(!dir.join("g2").exists());
    // A window after the run's end is refused before training.
    let late = ["train", "--model", "gpt", "--preset", "gpt-tiny", "--data", "play.txt", "--steps", "4"];
    let late = [&late[..], &["--out", "g3", "--profile", "p3", "--profile-steps", "5..6"]].concat();
    fails(&run(dir, &late), &["--profile-steps 5..6", "ends at step 4"]);
    assert!(!dir.join("g3").exists());
    // Fine-tuning with LoRA: by default steps 2..3 of a 3-step run.
    ok(&run(
        dir,
        &["finetune", "--from", "g", "--data", "play.txt", "--lora", "--steps", "3", "--out", "ft", "--profile", "pf"],
    ));
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("pf/profile.json")).unwrap()).unwrap();
    assert_eq!(p["steps"], 2, "{p}");
}

/// The profiler's FLOPs of baby-gpt's matrix products, per training step,
/// are 6 · tokens · (12·d²·layers + d·vocab), as counted by hand.
#[test]
fn profile_counts_the_flops_of_the_matrix_products() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let args = ["bench", "--config", "baby-gpt", "--steps", "2", "--warmup", "1", "--threads", "2", "--profile", "b"];
    ok(&run(dir, &args));
    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("b/trace.json")).unwrap()).unwrap();
    let x: Vec<_> = t["traceEvents"].as_array().unwrap().iter().filter(|e| e["ph"] == "X").cloned().collect();
    let span =
        |e: &serde_json::Value| (e["ts"].as_f64().unwrap(), e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap());
    let evals: Vec<_> = x.iter().filter(|e| e["name"] == "evaluation").map(span).collect();
    let in_training = |e: &&serde_json::Value| !evals.iter().any(|&(a, b)| (a..=b).contains(&span(e).0));
    let linear: f64 = x
        .iter()
        .filter(in_training)
        .filter(|e| e["name"].as_str().unwrap().starts_with("linear."))
        .map(|e| e["args"]["flops"].as_f64().unwrap())
        .sum();
    let steps = x.iter().filter(|e| e["name"] == "step").count() as f64;
    assert_eq!(steps, 2.0);
    let (tokens, d_model, layers, vocab) = (12.0 * 64.0, 128.0, 4.0, 65.0);
    let expect = 6.0 * tokens * (12.0 * d_model * d_model * layers + d_model * vocab);
    assert!((linear / steps / expect - 1.0).abs() < 1e-3, "{} vs {expect}", linear / steps);
    // Two threads: with shiftlm's AVX-512 kernel the second one gets a track
    // of the shares of the matrix products it takes, a part of their FLOPs.
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        let main = x.iter().find(|e| e["name"] == "step").unwrap()["tid"].clone();
        let shares: Vec<_> = x.iter().filter(|e| e["name"] == "matmul.worker").collect();
        assert!(!shares.is_empty() && shares.iter().all(|e| e["tid"] != main), "{shares:?}");
        let share_flops: f64 =
            shares.iter().copied().filter(in_training).map(|e| e["args"]["flops"].as_f64().unwrap()).sum();
        // How much the worker takes depends on the machine's load.
        assert!(share_flops > 0.0 && share_flops < linear, "{share_flops} of {linear}");
    }
}
