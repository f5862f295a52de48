//! `shiftlm finetune` through the real binary: from a shiftlm run and from a
//! transformers folder, the held-out loss is measured before and after in
//! the same run and goes down; the result is an ordinary checkpoint.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// A byte-level gpt-tiny trained `steps` steps on a.txt, in `d/base`.
fn gpt_base(d: &Path, steps: usize) {
    std::fs::write(d.join("a.txt"), "the cat sat on the mat. ".repeat(60)).unwrap();
    let steps = steps.to_string();
    let args = ["train", "--model", "gpt", "--preset", "gpt-tiny", "--data", "a.txt", "--tokenizer", "byte"];
    ok(&run(d, &[&args[..], &["--steps", &steps, "--out", "base", "--show", "0"]].concat()));
}

fn losses(v: &serde_json::Value) -> (f64, f64) {
    (v["before"]["loss"].as_f64().unwrap(), v["after"]["loss"].as_f64().unwrap())
}

#[test]
fn finetuning_a_run_on_new_text_lowers_its_held_out_loss() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("b.txt"), "a dog ran in the fog. ".repeat(60)).unwrap();
    gpt_base(d, 30);
    let out = ok(&run(
        d,
        &["finetune", "--from", "base", "--data", "b.txt", "--steps", "30", "--lr", "3e-3", "--out", "ft", "--json"],
    ));
    let v = json(&out);
    let (before, after) = losses(&v);
    assert!(after < before - 0.1, "held-out loss {before} → {after}");
    assert!((v["loss_change"].as_f64().unwrap() - (after - before)).abs() < 1e-9);
    assert!(out.contains("perplexity"), "{out}");
    // An ordinary checkpoint: eval reads it and agrees with the "after" loss.
    let e = json(&ok(&run(d, &["eval", "--checkpoint", "ft", "--data", "b.txt", "--json"])));
    assert!(e["loss"].as_f64().is_some(), "{e}");
    // LoRA targets that match nothing: an error, and no run folder left behind.
    let o =
        run(d, &["finetune", "--from", "base", "--data", "b.txt", "--lora", "--lora-targets", "foo", "--out", "none"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("matched no layer"));
    assert!(!d.join("none").exists());
    // Nothing is overwritten.
    let again = run(d, &["finetune", "--from", "base", "--data", "b.txt", "--steps", "2", "--out", "ft"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds checkpoints"));
}

#[test]
fn finetuning_transformers_folders_lowers_their_held_out_loss() {
    // Both families, full and LoRA fine-tunes, from from_pretrained folders.
    for (name, kind, lora) in [
        ("gpt2_tiny", "gpt2", None),
        ("llama_tiny", "llama", None),
        ("llama_tiny", "llama", Some("q_proj,v_proj,down_proj")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name);
        let hf = d.join("hf");
        std::fs::create_dir(&hf).unwrap();
        for f in ["config.json", "model.safetensors", "generation_config.json"] {
            std::fs::copy(src.join(f), hf.join(f)).unwrap();
        }
        // A tokenizer for the 50-id random model: symbols written as integers.
        std::fs::write(hf.join("tokenizer.json"), shiftlm::data::Tokenizer::Symbols { n: 40 }.to_json_bytes().unwrap())
            .unwrap();
        let text: String = (0..400).map(|i| format!("{} ", (i * 7) % 12)).collect();
        std::fs::write(d.join("numbers.txt"), text).unwrap();
        let lr = if lora.is_some() { "2e-2" } else { "3e-3" };
        let mut args = vec![
            "finetune",
            "--from",
            "hf",
            "--data",
            "numbers.txt",
            "--steps",
            "40",
            "--lr",
            lr,
            "--out",
            "ft",
            "--json",
        ];
        if let Some(targets) = lora {
            args.extend(["--lora", "--lora-r", "4", "--lora-targets", targets]);
        }
        let (before, after) = losses(&json(&ok(&run(d, &args))));
        assert!(after < before - 0.3, "{name} (LoRA {lora:?}): held-out loss {before} → {after}");
        // The result still opens as a transformers folder (config.json with model_type).
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("ft/checkpoint-40/config.json")).unwrap()).unwrap();
        assert_eq!(cfg["model_type"], kind);
    }
}

#[test]
fn unsupported_folders_are_refused_with_their_model_type() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let hf = d.join("hf");
    std::fs::create_dir(&hf).unwrap();
    std::fs::write(hf.join("config.json"), r#"{"model_type": "mistral", "vocab_size": 10}"#).unwrap();
    std::fs::write(d.join("t.txt"), "hello").unwrap();
    let o = run(d, &["finetune", "--from", "hf", "--data", "t.txt"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("model_type \"mistral\" is not supported") && !err.contains("panicked"), "{err}");
}

#[test]
fn prompt_response_jsonl_trains_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    gpt_base(d, 10);
    // Random prompts, one fixed answer: only the answer is learnable, and only it is scored.
    let lines: String =
        (0..120).map(|i| format!("{{\"prompt\": \"q{} \", \"response\": \"yes.\"}}\n", (i * 7919) % 1000)).collect();
    std::fs::write(d.join("chat.jsonl"), lines).unwrap();
    let out = ok(&run(
        d,
        &[
            "finetune",
            "--from",
            "base",
            "--data",
            "chat.jsonl",
            "--steps",
            "40",
            "--lr",
            "3e-3",
            "--out",
            "ft",
            "--json",
        ],
    ));
    let v = json(&out);
    let (before, after) = losses(&v);
    assert!(after < 0.5 * before, "held-out response loss {before} → {after}");
    // A bad line is named.
    std::fs::write(d.join("bad.jsonl"), "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"c\"}\n").unwrap();
    let o = run(d, &["finetune", "--from", "base", "--data", "bad.jsonl", "--steps", "2", "--out", "ft2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.jsonl:2") && err.contains("response"), "{err}");
}

#[test]
fn frozen_parameters_do_not_move_and_hold_no_optimizer_state() {
    use candle_core::{Device, Tensor};
    use std::collections::HashMap;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2_tiny");
    std::fs::create_dir(d.join("hf")).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), d.join("hf").join(f)).unwrap();
    }
    std::fs::write(d.join("hf/tokenizer.json"), shiftlm::data::Tokenizer::Symbols { n: 40 }.to_json_bytes().unwrap())
        .unwrap();
    let text: String = (0..400).map(|i| format!("{} ", (i * 7) % 12)).collect();
    std::fs::write(d.join("numbers.txt"), text).unwrap();
    let load = |p: &Path| -> HashMap<String, Tensor> { candle_core::safetensors::load(p, &Device::Cpu).unwrap() };
    let orig = load(&d.join("hf/model.safetensors"));
    let same =
        |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() == 0.0;
    let embeddings_and_block0 = |k: &str| k.contains(".wte.") || k.contains(".wpe.") || k.contains(".h.0.");
    let all_but_head = |k: &str| !(k.contains("ln_f") || k.contains(".wte."));
    type IsFrozen<'a> = &'a dyn Fn(&str) -> bool;
    let cases: [(&[&str], IsFrozen); 2] = [
        (&["--freeze-embeddings", "--freeze-blocks", "1"], &embeddings_and_block0),
        (&["--freeze-all-but-head"], &all_but_head),
    ];
    for (flags, frozen) in cases {
        let out = d.join(format!("ft{}", flags.len()));
        let mut args =
            vec!["finetune", "--from", "hf", "--data", "numbers.txt", "--steps", "5", "--lr", "1e-2", "--out"];
        args.push(out.to_str().unwrap());
        args.extend_from_slice(flags);
        ok(&run(d, &args));
        let saved = load(&out.join("checkpoint-5/model.safetensors"));
        let opt = load(&out.join("checkpoint-5/optimizer.safetensors"));
        for (k, t) in orig.iter().filter(|(k, _)| !k.contains("attn.bias") && !k.contains("masked_bias")) {
            if frozen(k) {
                assert!(same(&saved[k], t), "{flags:?}: frozen {k} moved");
                assert!(!opt.contains_key(&format!("m.{k}")), "{flags:?}: optimizer state for frozen {k}");
            } else if k.ends_with("weight") && !k.contains("ln_") {
                assert!(!same(&saved[k], t), "{flags:?}: {k} did not train");
            }
        }
    }
    let o = run(d, &["finetune", "--from", "hf", "--data", "numbers.txt", "--freeze-blocks", "3", "--out", "x"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("but the model has 2 blocks"));
}

#[test]
fn an_encoder_decoder_finetunes_on_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Trained on rotate-left; fine-tuned on rotate-right pairs of the same symbols.
    ok(&run(d, &["train", "--preset", "tiny", "--task", "rotate", "--steps", "30", "--out", "base", "--show", "0"]));
    let pairs: String = (0..300)
        .map(|i| {
            let s: Vec<String> = (0..5).map(|j| ((i * 7 + j * 3) % 9).to_string()).collect();
            let mut t = s.clone();
            t.rotate_right(1);
            format!("{}\t{}\n", s.join(" "), t.join(" "))
        })
        .collect();
    std::fs::write(d.join("right.tsv"), pairs).unwrap();
    let v = json(&ok(&run(
        d,
        &[
            "finetune",
            "--from",
            "base",
            "--data",
            "right.tsv",
            "--steps",
            "60",
            "--lr",
            "3e-3",
            "--out",
            "ft",
            "--json",
        ],
    )));
    let (before, after) = losses(&v);
    assert!(after < before - 0.2, "held-out loss {before} → {after}");
}
