//! End-to-end tests of the real binary in a temporary folder: the happy path
//! of every subcommand, and bad input that must give one clear message,
//! exit code 2 and no panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(self.0.path()).output().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "failed: {}\n{}", stderr(o), stdout(o));
}

/// Exit code 2, one error line naming every piece of `needles`, no panic.
fn fails_with(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

fn last_json(o: &Output) -> serde_json::Value {
    let out = stdout(o);
    let line = out.lines().last().expect("some output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"))
}

fn trained(dir: &Dir) -> PathBuf {
    let o = dir.run(&["train", "--preset", "tiny", "--out", "run", "--json"]);
    ok(&o);
    dir.path("run")
}

#[test]
fn train_eval_generate_round_trip_with_json() {
    let d = Dir::new();
    let o = d.run(&["train", "--preset", "tiny", "--out", "run", "--json"]);
    ok(&o);
    let j = last_json(&o);
    for k in [
        "loss",
        "token_accuracy",
        "exact_match",
        "steps",
        "checkpoint",
        "perplexity",
        "macro_f1",
        "free_running_token_accuracy",
    ] {
        assert!(j.get(k).is_some(), "missing {k} in {j}");
    }
    for k in ["token_accuracy", "exact_match", "macro_f1"] {
        let v = j[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert_eq!(j["steps"], 150);
    assert!(j["exact_match"].as_f64().unwrap() > 0.5, "tiny preset should learn: {j}");
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "optimizer.safetensors",
        "trainer_state.json",
        "manifest.json",
    ] {
        assert!(d.path("run/checkpoint-150").join(f).is_file(), "{f} missing");
    }
    assert!(d.path("run/metrics.jsonl").is_file());

    let o = d.run(&["eval", "--checkpoint", "run", "--json"]);
    ok(&o);
    let e = last_json(&o);
    assert_eq!(e["exact_match"], j["exact_match"], "eval reproduces train's final evaluation");
    let o = d.run(&["eval", "--checkpoint", "run", "--json", "--beam", "3"]);
    ok(&o);
    assert!(last_json(&o)["exact_match"].as_f64().unwrap() > 0.5);

    let o = d.run(&["generate", "--checkpoint", "run", "--input", "1 2 3", "--input", "4 5"]);
    ok(&o);
    assert_eq!(stdout(&o).lines().count(), 2);
    let o = d.run(&["generate", "--checkpoint", "run", "--input", "1 2 3", "--temperature", "0.7", "--seed", "1"]);
    ok(&o);
}

#[test]
fn default_run_folders_are_never_overwritten() {
    let d = Dir::new();
    for _ in 0..2 {
        ok(&d.run(&["train", "--preset", "tiny", "--steps", "3"]));
    }
    let model = "runs/tiny-rotate/checkpoint-3/model.safetensors";
    assert!(d.path(model).is_file());
    assert!(d.path("runs/tiny-rotate-2/checkpoint-3/model.safetensors").is_file());
    let before = std::fs::read(d.path(model)).unwrap();
    let o = d.run(&["train", "--preset", "tiny", "--steps", "3", "--out", "runs/tiny-rotate"]);
    fails_with(&o, &["runs/tiny-rotate", "already holds checkpoints", "--resume"]);
    assert_eq!(before, std::fs::read(d.path(model)).unwrap());
}

#[test]
fn trains_on_a_pairs_file_and_previews_it() {
    let d = Dir::new();
    let mut tsv = String::new();
    for w in ["cat", "dog", "bird", "fish", "mouse", "horse", "cow", "sheep", "goat", "duck"] {
        tsv.push_str(&format!("{w}\t{}\n", w.chars().rev().collect::<String>()));
    }
    d.write("words.tsv", tsv.as_bytes());
    let o = d.run(&["data", "preview", "--data", "words.tsv", "--batches", "1"]);
    ok(&o);
    assert!(stdout(&o).contains("decoder in") && stdout(&o).contains("</s>"));
    let o = d.run(&["train", "--preset", "tiny", "--data", "words.tsv", "--steps", "5", "--out", "w", "--json"]);
    ok(&o);
    let o = d.run(&["generate", "--checkpoint", "w", "--input", "cat"]);
    ok(&o);
    d.write("words.jsonl", b"{\"source\": \"ab\", \"target\": \"ba\"}\n{\"source\": \"cd\", \"target\": \"dc\"}\n");
    ok(&d.run(&[
        "train",
        "--preset",
        "tiny",
        "--data",
        "words.jsonl",
        "--tokenizer",
        "byte",
        "--steps",
        "2",
        "--out",
        "j",
    ]));
}

#[test]
fn preview_shows_the_shift() {
    let d = Dir::new();
    let o = d.run(&["data", "preview", "--task", "rotate", "--preset", "tiny", "--batches", "1", "--batch-size", "2"]);
    ok(&o);
    let out = stdout(&o);
    assert!(out.contains("source") && out.contains("labels") && out.contains("<s>"), "{out}");
}

/// Images: a PNG grid of samples and their augmented copies, from the
/// embedded digits and from a folder of your own; bad image data is named.
#[test]
fn preview_draws_augmented_images() {
    let d = Dir::new();
    let o = d.run(&["data", "preview", "--task", "digits", "--augment", "shift=2,rotate=10", "--out", "g.png"]);
    ok(&o);
    assert!(stdout(&o).contains("digits: 1438 training and 359 test images of 8×8, 10 classes"), "{}", stdout(&o));
    let png = std::fs::read(d.path("g.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // An image folder: two classes of 4×3 PNGs.
    for (class, v) in [("dog", 40u8), ("cat", 200)] {
        std::fs::create_dir_all(d.path(&format!("imgs/{class}"))).unwrap();
        for k in 0..3 {
            let mut img = vec![v; 12];
            img[k] = 255;
            let p = d.path(&format!("imgs/{class}/{k}.png"));
            let f = std::fs::File::create(p).unwrap();
            let mut enc = png::Encoder::new(f, 4, 3);
            enc.set_color(png::ColorType::Grayscale);
            enc.write_header().unwrap().write_image_data(&img).unwrap();
        }
    }
    let o = d.run(&["data", "preview", "--data", "imgs", "--out", "f.png"]);
    ok(&o);
    assert!(stdout(&o).contains("5 training and 1 test images of 4×3, 2 classes (cat, dog)"), "{}", stdout(&o));
    std::fs::write(d.path("imgs/cat/9.png"), b"garbage").unwrap();
    fails_with(&d.run(&["data", "preview", "--data", "imgs", "--out", "f.png"]), &["9.png", "not a readable image"]);
    fails_with(&d.run(&["data", "preview", "--task", "digits", "--augment", "shift=x"]), &["augment", "shift=x"]);
    fails_with(&d.run(&["data", "preview", "--task", "rotate", "--augment", "shift=1"]), &["--augment"]);
    // A truncated IDX file names itself.
    std::fs::create_dir(d.path("idx")).unwrap();
    let mut b = vec![0u8, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
    b.extend_from_slice(&[1, 2, 3]);
    std::fs::write(d.path("idx/train-images-idx3-ubyte"), &b).unwrap();
    std::fs::write(d.path("idx/train-labels-idx1-ubyte"), [0u8, 0, 8, 1, 0, 0, 0, 2, 0, 1]).unwrap();
    let o = d.run(&["data", "preview", "--data", "idx"]);
    fails_with(&o, &["train-images-idx3-ubyte", "truncated", "8 bytes", "holds 3"]);
}

/// Fashion-MNIST from Debian's package: 60,000 + 10,000 images of 28×28.
#[test]
fn fashion_mnist_from_the_debian_package() {
    let dir = std::path::Path::new(shiftlm::data::images::FASHION_MNIST_DIR);
    if !dir.exists() && std::env::var("CI").as_deref() != Ok("true") {
        eprintln!("skipped: install Debian's dataset-fashion-mnist package to run this test");
        return;
    }
    let s = shiftlm::data::images::fashion_mnist(None).unwrap();
    assert_eq!((s.train.len(), s.test.len(), s.train.width, s.train.height), (60_000, 10_000, 28, 28));
    let mut counts = [0; 10];
    s.train.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [6000; 10]);
    assert_eq!(s.train.classes[s.train.labels[0] as usize], "Ankle boot");
}

#[test]
fn bad_data_files_name_file_and_line() {
    let d = Dir::new();
    let train = |file: &str| d.run(&["train", "--preset", "tiny", "--steps", "1", "--data", file]);
    fails_with(&train("missing.tsv"), &["missing.tsv", "No such file"]);
    d.write("empty.tsv", b"");
    fails_with(&train("empty.tsv"), &["empty.tsv", "empty"]);
    d.write("latin1.tsv", b"good\tline\ncaf\xe9\tx\n");
    fails_with(&train("latin1.tsv"), &["latin1.tsv:2", "UTF-8"]);
    d.write("one.tsv", b"a\tb\njust-one-column\n");
    fails_with(&train("one.tsv"), &["one.tsv:2", "one column"]);
    d.write("bad.jsonl", b"{\"source\": \"a\", \"target\": \"b\"}\n{\"source\": \"a\"}\n");
    fails_with(&train("bad.jsonl"), &["bad.jsonl:2", "target"]);
    d.write("notjson.jsonl", b"{\"source\": \"a\", \"target\": \"b\"}\n{oops\n");
    fails_with(&train("notjson.jsonl"), &["notjson.jsonl:2", "JSON"]);
    d.write("array.jsonl", b"[\"a\", \"b\"]\n");
    fails_with(&train("array.jsonl"), &["array.jsonl:1", "object"]);
}

#[test]
fn unknown_names_and_impossible_configs_are_refused() {
    let d = Dir::new();
    fails_with(&d.run(&["train", "--task", "juggle"]), &["juggle", "rotate, copy, reverse, sort"]);
    fails_with(&d.run(&["train", "--preset", "gigantic"]), &["gigantic", "small"]);
    fails_with(&d.run(&["train", "--preset", "tiny", "--dropout", "1.5"]), &["model.dropout"]);
    fails_with(&d.run(&["train", "--preset", "tiny", "--steps", "0"]), &["train.steps"]);
    fails_with(&d.run(&["train", "--preset", "tiny", "--min-len", "0"]), &["min_len"]);
    fails_with(&d.run(&["train", "--preset", "tiny", "--lr=-1"]), &["lr"]);
}

/// Rewrites a checkpoint's manifest to match its files, as if a user had
/// assembled the folder by hand: the loader must then catch what is wrong.
fn reseal(dir: &Path) {
    let mpath = dir.join("manifest.json");
    let mut m: shiftlm::checkpoint::Manifest = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m.files.retain(|name, _| dir.join(name).exists());
    for (name, e) in m.files.iter_mut() {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        *e = shiftlm::checkpoint::FileEntry {
            sha256: shiftlm::checkpoint::sha256_hex(&bytes),
            bytes: bytes.len() as u64,
        };
    }
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
}

#[test]
fn broken_checkpoints_name_the_problem() {
    let d = Dir::new();
    fails_with(&d.run(&["eval", "--checkpoint", "nowhere"]), &["nowhere", "no such checkpoint"]);
    trained(&d);
    let ck = d.path("run/checkpoint-150");
    let ckp = ck.to_str().unwrap();

    // Tampered and truncated files are caught by the manifest.
    let model = ck.join("model.safetensors");
    let good = std::fs::read(&model).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 3] ^= 0x40;
    std::fs::write(&model, &bad).unwrap();
    fails_with(&d.run(&["eval", "--checkpoint", ckp]), &["model.safetensors", "truncated or modified"]);
    std::fs::write(&model, &good[..n / 2]).unwrap();
    fails_with(
        &d.run(&["generate", "--checkpoint", ckp, "--input", "1"]),
        &["model.safetensors", "truncated or modified"],
    );
    std::fs::write(&model, &good).unwrap();
    ok(&d.run(&["eval", "--checkpoint", ckp]));

    // A missing file.
    std::fs::remove_file(ck.join("tokenizer.json")).unwrap();
    fails_with(&d.run(&["eval", "--checkpoint", ckp]), &["tokenizer.json"]);
    reseal(&ck);
    fails_with(&d.run(&["eval", "--checkpoint", ckp]), &["tokenizer.json", "missing"]);

    // A model file written for another shape: the tensor is named.
    let d2 = Dir::new();
    trained(&d2);
    ok(&d2.run(&["train", "--preset", "tiny", "--hidden", "8", "--steps", "1", "--out", "other"]));
    let ck = d2.path("run/checkpoint-150");
    std::fs::copy(d2.path("other/checkpoint-1/model.safetensors"), ck.join("model.safetensors")).unwrap();
    reseal(&ck);
    fails_with(&d2.run(&["generate", "--checkpoint", "run", "--input", "1"]), &["model.safetensors", "shape", "[32"]);

    // A model file lacking a tensor.
    let d3 = Dir::new();
    trained(&d3);
    ok(&d3.run(&["train", "--preset", "tiny", "--attention", "none", "--steps", "1", "--out", "plain"]));
    let ck = d3.path("run/checkpoint-150");
    std::fs::copy(d3.path("plain/checkpoint-1/model.safetensors"), ck.join("model.safetensors")).unwrap();
    reseal(&ck);
    fails_with(&d3.run(&["eval", "--checkpoint", "run"]), &["missing tensor 'decoder.attn_combine.weight'"]);

    // Garbage where the weights or the config should be.
    std::fs::write(ck.join("model.safetensors"), b"not a model").unwrap();
    reseal(&ck);
    fails_with(&d3.run(&["eval", "--checkpoint", "run"]), &["model.safetensors", "safetensors"]);
    std::fs::write(ck.join("config.json"), b"{\"preset\": 3}").unwrap();
    reseal(&ck);
    fails_with(&d3.run(&["eval", "--checkpoint", "run"]), &["config.json"]);
}

#[test]
fn help_teaches() {
    let d = Dir::new();
    for cmd in [
        &["train", "--help"][..],
        &["eval", "--help"],
        &["generate", "--help"],
        &["data", "preview", "--help"],
        &["--help"],
    ] {
        let o = d.run(cmd);
        ok(&o);
        assert!(stdout(&o).contains("Example") || stdout(&o).contains("Start here"), "{cmd:?}");
    }
}
