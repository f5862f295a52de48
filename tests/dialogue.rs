//! Dialogue through the binary: a language model trained from scratch on
//! JSONL conversations gets ChatML's tokens and keeps the template in every
//! checkpoint; fine-tuning reads the model's template; only the assistant
//! turns are scored; bad files are named with their line.

mod common;

use common::last_json;
use std::path::Path;
use std::process::{Command, Output};

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(dir).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs shiftlm with `input` on its standard input.
fn piped(dir: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_shiftlm"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn fails(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in {err}");
    }
}

/// `n` conversations of one to three questions about sums, half with a
/// system message: the answers follow from the questions.
fn sums(n: usize, seed: usize) -> String {
    let mut out = String::new();
    for i in 0..n {
        let k = i * 7919 + seed * 104_729;
        let mut msgs = Vec::new();
        if k.is_multiple_of(2) {
            msgs.push(serde_json::json!({"role": "system", "content": "You add numbers."}));
        }
        for t in 0..1 + k % 3 {
            let (a, b) = ((k / 3 + t * 13) % 10, (k / 30 + t * 7) % 10);
            msgs.push(serde_json::json!({"role": "user", "content": format!("{a} plus {b}?")}));
            msgs.push(serde_json::json!({"role": "assistant", "content": format!("{}.", a + b)}));
        }
        out += &serde_json::json!({ "messages": msgs }).to_string();
        out.push('\n');
    }
    out
}

#[test]
fn a_model_trained_on_conversations_keeps_its_template() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sums.jsonl"), sums(200, 0)).unwrap();
    let args = ["train", "--model", "gpt", "--data", "sums.jsonl", "--steps", "60", "--out", "chat", "--show", "0"];
    ok(&run(d, &[&args[..], &["--set", "train.eval_every=20", "--json"]].concat()));
    let ck = d.join("chat/checkpoint-60");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("tokenizer_config.json")).unwrap()).unwrap();
    assert_eq!(config["chat_template"].as_str(), Some(shiftlm::data::chat::CHATML));
    let tok = shiftlm::data::Tokenizer::load(&ck.join("tokenizer.json")).unwrap();
    let (start, end) = (tok.token_id("<|im_start|>").unwrap(), tok.token_id("<|im_end|>").unwrap());
    assert_eq!(tok.encode("<|im_start|>user\n").unwrap()[0], start);
    assert_ne!(start, end);
    // The held-out loss (assistant turns only) falls.
    let metrics = std::fs::read_to_string(d.join("chat/metrics.jsonl")).unwrap();
    let valid: Vec<f64> = metrics
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "eval")
        .map(|v| v["valid_loss"].as_f64().unwrap())
        .collect();
    assert_eq!(valid.len(), 3, "{metrics}");
    assert!(valid[2] < valid[0], "{valid:?}");
    // eval scores the same held-out assistant turns; --data scores a file of conversations.
    let e = last_json(&run(d, &["eval", "--checkpoint", "chat", "--json"]));
    assert!((e["loss"].as_f64().unwrap() - valid[2]).abs() < 1e-6, "{e} vs {valid:?}");
    let e = last_json(&run(d, &["eval", "--checkpoint", "chat", "--data", "sums.jsonl", "--json"]));
    assert!(e["tokens"].as_u64().unwrap() > 1000, "{e}");

    // Fine-tuning on more conversations reads the model's template.
    std::fs::write(d.join("more.jsonl"), sums(80, 1)).unwrap();
    let args = ["finetune", "--from", "chat", "--data", "more.jsonl", "--steps", "20", "--lr", "3e-3"];
    let v = last_json(&run(d, &[&args[..], &["--out", "ft", "--json"]].concat()));
    let (before, after) = (v["before"]["loss"].as_f64().unwrap(), v["after"]["loss"].as_f64().unwrap());
    assert!(after < before, "held-out assistant loss {before} → {after}");
    assert!(d.join("ft/checkpoint-20/tokenizer_config.json").is_file());
    // Fine-tuned on plain text, the model keeps its template.
    std::fs::write(d.join("plain.txt"), "1 plus 2 is 3. ".repeat(80)).unwrap();
    ok(&run(d, &["finetune", "--from", "chat", "--data", "plain.txt", "--steps", "2", "--out", "ft-text"]));
    let kept = std::fs::read_to_string(d.join("ft-text/checkpoint-2/tokenizer_config.json")).unwrap();
    assert!(kept.contains("im_start"), "{kept}");
}

#[test]
fn only_assistant_turns_are_scored() {
    // Random user turns, a fixed answer: a model that learns the answer
    // drives the (assistant-only) held-out loss to near zero, which it
    // could not do if the random turns were scored.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lines: String = (0..150)
        .map(|i| {
            let q: String = (0..12).map(|j| char::from(b'a' + ((i * 31 + j * 17 + i * j) % 26) as u8)).collect();
            let m = serde_json::json!({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ok"}]});
            format!("{m}\n")
        })
        .collect();
    std::fs::write(d.join("ok.jsonl"), lines).unwrap();
    let args = ["train", "--model", "gpt", "--data", "ok.jsonl", "--steps", "80", "--out", "r", "--show", "0"];
    let v = last_json(&run(d, &[&args[..], &["--set", "train.optimizer.lr=3e-3", "--json"]].concat()));
    let loss = v["evaluation"]["loss"].as_f64().or(v["loss"].as_f64()).unwrap_or_else(|| panic!("{v}"));
    assert!(loss < 0.2, "held-out assistant loss {loss}: {v}");
}

#[test]
fn bad_conversations_are_named_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#;
    let cases = [
        (r#"{"messages": [{"role": "bot", "content": "x"}]}"#, "unknown role 'bot'"),
        (r#"{"messages": [{"role": "user", "content": "x"}]}"#, "no assistant turn"),
        (r#"{"messages": [{"role": "user", "content": "x"}"#, "not valid JSON"),
    ];
    for (k, (bad, why)) in cases.iter().enumerate() {
        let name = format!("bad{k}.jsonl");
        std::fs::write(d.join(&name), format!("{good}\n{bad}\n")).unwrap();
        let o = run(d, &["train", "--model", "gpt", "--data", &name, "--steps", "2", "--out", &format!("r{k}")]);
        fails(&o, &[&format!("{name}:2:"), why]);
        assert!(!d.join(format!("r{k}")).exists(), "no run folder is left behind");
    }
    // A template that is not Jinja2, and --chat-template without conversations.
    std::fs::write(d.join("good.jsonl"), format!("{good}\n{good}\n")).unwrap();
    std::fs::write(d.join("t.jinja"), "{% for m in messages %}").unwrap();
    let o = run(d, &["train", "--model", "gpt", "--data", "good.jsonl", "--chat-template", "t.jinja", "--steps", "2"]);
    fails(&o, &["t.jinja", "compile"]);
    std::fs::write(d.join("a.txt"), "plain text. ".repeat(50)).unwrap();
    let o = run(d, &["train", "--model", "gpt", "--data", "a.txt", "--chat-template", "chatml", "--steps", "2"]);
    fails(&o, &["--chat-template goes with conversations"]);
}

#[test]
fn a_text_model_without_a_template_is_refused_for_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.txt"), "the cat sat on the mat. ".repeat(60)).unwrap();
    let args = ["train", "--model", "gpt", "--preset", "gpt-tiny", "--data", "a.txt", "--tokenizer", "byte"];
    ok(&run(d, &[&args[..], &["--steps", "2", "--out", "base", "--show", "0"]].concat()));
    std::fs::write(d.join("c.jsonl"), sums(20, 2)).unwrap();
    let o = run(d, &["finetune", "--from", "base", "--data", "c.jsonl", "--steps", "2", "--out", "ft"]);
    fails(&o, &["has no chat template", "--chat-template"]);
    fails(&run(d, &["chat", "--checkpoint", "base", "--json"]), &["has no chat template"]);
    // ChatML needs its tokens in the model's vocabulary.
    let o = run(
        d,
        &[
            "finetune",
            "--from",
            "base",
            "--data",
            "c.jsonl",
            "--chat-template",
            "chatml",
            "--steps",
            "2",
            "--out",
            "ft",
        ],
    );
    fails(&o, &["<|im_start|>", "does not have as one token"]);
    // A template of plain text works with any tokenizer.
    let plain = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}";
    std::fs::write(d.join("plain.jinja"), plain).unwrap();
    let args = ["finetune", "--from", "base", "--data", "c.jsonl", "--chat-template", "plain.jinja"];
    ok(&run(d, &[&args[..], &["--steps", "40", "--lr", "3e-3", "--out", "ft", "--json"]].concat()));
    let config = std::fs::read_to_string(d.join("ft/checkpoint-40/tokenizer_config.json")).unwrap();
    assert!(config.contains("assistant: "), "{config}");
    // Its turns close with a newline, not a token: answers stop there.
    let conv = "{\"messages\": [{\"role\": \"user\", \"content\": \"1 plus 2?\"}]}\n".repeat(3);
    let args = ["chat", "--checkpoint", "ft", "--json", "--max-new-tokens", "60", "--seed", "3"];
    let out = ok(&piped(d, &args, &conv));
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(!v["answer"].as_str().unwrap().contains('\n'), "{v}");
    }
}

#[test]
fn a_conversation_run_resumes_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sums.jsonl"), sums(60, 3)).unwrap();
    let args = ["train", "--model", "gpt", "--data", "sums.jsonl", "--steps", "8", "--show", "0"];
    ok(&run(d, &[&args[..], &["--set", "train.save_every=4", "--out", "full"]].concat()));
    let part = d.join("part");
    std::fs::create_dir(&part).unwrap();
    let from = d.join("full/checkpoint-4");
    std::fs::create_dir(part.join("checkpoint-4")).unwrap();
    for e in std::fs::read_dir(&from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), part.join("checkpoint-4").join(e.file_name())).unwrap();
    }
    ok(&run(d, &["train", "--resume", "part", "--show", "0"]));
    let w = |run: &str| std::fs::read(d.join(run).join("checkpoint-8/model.safetensors")).unwrap();
    assert!(w("full") == w("part"), "the resumed run's weights differ");
}

#[test]
fn chat_answers_turn_by_turn_and_conversations_from_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sums.jsonl"), sums(120, 4)).unwrap();
    let args = ["train", "--model", "gpt", "--data", "sums.jsonl", "--steps", "30", "--out", "chat", "--show", "0"];
    ok(&run(d, &args));
    let chat = |args: &[&str], input: &str| -> Output {
        let base = ["chat", "--checkpoint", "chat", "--temperature", "0", "--max-new-tokens", "12"];
        piped(d, &[&base[..], args].concat(), input)
    };
    // Scripted turns: one answer line each; /save keeps the whole history.
    let o = chat(&["--system", "You add numbers."], "1 plus 2?\n3 plus 4?\n/save c.jsonl\n/reset\n5 plus 6?\n");
    let out = ok(&o);
    assert_eq!(out.lines().count(), 3, "{out}");
    let saved = std::fs::read_to_string(d.join("c.jsonl")).unwrap();
    let messages = shiftlm::data::chat::parse_conversation(saved.trim()).unwrap();
    let roles: Vec<&str> = messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!(messages[2].content, out.lines().next().unwrap());
    // A second /save to the same file keeps the first.
    let o = chat(&[], "1 plus 2?\n/save c.jsonl\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(std::fs::read_to_string(d.join("c.jsonl")).unwrap(), saved);
    // --json: a conversation per line, an answer per line, the same each time.
    let convs = "{\"messages\": [{\"role\": \"user\", \"content\": \"2 plus 2?\"}]}\n\n{\"messages\": [{\"role\": \"system\", \"content\": \"You add numbers.\"}, {\"role\": \"user\", \"content\": \"1 plus 1?\"}, {\"role\": \"assistant\", \"content\": \"2.\"}, {\"role\": \"user\", \"content\": \"4 plus 4?\"}]}\n";
    let first = ok(&chat(&["--json"], convs));
    assert_eq!(first, ok(&chat(&["--json"], convs)), "greedy answers repeat");
    let lines: Vec<serde_json::Value> = first.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for (l, n) in lines.iter().zip([2, 5]) {
        let m = l["messages"].as_array().unwrap();
        assert_eq!((m.len(), m[n - 1]["role"].as_str()), (n, Some("assistant")), "{l}");
        assert_eq!(m[n - 1]["content"], l["answer"]);
        assert!(!l["ids"].as_array().unwrap().is_empty());
    }
    // A conversation that does not end with the user is named by its line.
    let o = chat(
        &["--json"],
        "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n",
    );
    fails(&o, &["<stdin>:1:", "end with the user's turn"]);
}

#[test]
fn a_hugging_face_folder_s_template_trains_and_chats() {
    // A GPT made a plain transformers folder (no shiftlm config, no
    // manifest) with the Llama 3 fixture's tokenizer and chat template.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat/llama3");
    std::fs::write(d.join("a.txt"), "Hello! How can I help you today? Paris is the capital. ".repeat(40)).unwrap();
    let tok = fixture.join("tokenizer.json");
    let args = ["train", "--model", "gpt", "--preset", "gpt-tiny", "--data", "a.txt", "--tokenizer-file"];
    ok(&run(d, &[&args[..], &[tok.to_str().unwrap(), "--steps", "2", "--out", "base", "--show", "0"]].concat()));
    let hf = d.join("hf");
    std::fs::create_dir(&hf).unwrap();
    let ck = d.join("base/checkpoint-2");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("config.json")).unwrap()).unwrap();
    config.as_object_mut().unwrap().remove("shiftlm");
    std::fs::write(hf.join("config.json"), config.to_string()).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(ck.join(f), hf.join(f)).unwrap();
    }
    std::fs::copy(fixture.join("tokenizer_config.json"), hf.join("tokenizer_config.json")).unwrap();
    std::fs::write(d.join("c.jsonl"), sums(40, 5)).unwrap();
    let out = ok(&run(d, &["finetune", "--from", "hf", "--data", "c.jsonl", "--steps", "3", "--out", "ft", "--json"]));
    assert!(out.lines().last().unwrap().contains("\"after\""), "{out}");
    let kept = std::fs::read_to_string(d.join("ft/checkpoint-3/tokenizer_config.json")).unwrap();
    assert!(kept.contains("<|start_header_id|>") && kept.contains("<|begin_of_text|>"), "{kept}");
    // The folder chats with its own template; answers end at <|eot_id|> or the limit.
    let conv = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello!\"}]}\n";
    let out =
        ok(&piped(d, &["chat", "--checkpoint", "hf", "--json", "--temperature", "0", "--max-new-tokens", "8"], conv));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let eot = shiftlm::data::Tokenizer::load(&tok).unwrap().token_id("<|eot_id|>").unwrap();
    let ids: Vec<u64> = v["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    assert!(ids.len() == 8 || ids.last() == Some(&u64::from(eot)), "{v}");
    assert_eq!(v["prompt_tokens"].as_u64(), Some(20), "the fixture's prompt for Hello! is 20 ids: {v}");
}
