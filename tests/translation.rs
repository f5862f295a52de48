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
