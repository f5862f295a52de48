//! BLEU and chrF against sacreBLEU 2 (defaults: 13a tokenisation, exp
//! smoothing; chrF2), on the fixture from `tools/make_mt_fixtures.py`:
//! seven systems of invented sentences with punctuation, numbers, entities,
//! German and French text, empty and short hypotheses, each against one and
//! two reference sets. Scores must match to ±0.01, n-gram statistics and
//! 13a tokens exactly.

use shiftlm::eval::translation::{bleu, chrf, tokenize_13a};

fn fixture() -> serde_json::Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mt_metrics.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
}

#[test]
fn tokenisation_is_13a() {
    for pair in fixture()["tokenized"].as_array().unwrap() {
        let (raw, want) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert_eq!(tokenize_13a(raw), want, "{raw}");
    }
}

#[test]
fn bleu_and_chrf_match_sacrebleu() {
    let f = fixture();
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let hyps = strings(&c["hyps"]);
        let refs: Vec<Vec<String>> = c["refs"].as_array().unwrap().iter().map(strings).collect();
        let name = format!("{} with {} reference set(s)", c["system"], refs.len());
        let b = bleu(&hyps, &refs);
        let ints =
            |v: &serde_json::Value| v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect::<Vec<_>>();
        assert_eq!(b.counts.to_vec(), ints(&c["counts"]), "{name}: counts");
        assert_eq!(b.totals.to_vec(), ints(&c["totals"]), "{name}: totals");
        assert_eq!((b.sys_len, b.ref_len), (c["sys_len"].as_u64().unwrap(), c["ref_len"].as_u64().unwrap()), "{name}");
        let want = c["bleu"].as_f64().unwrap();
        assert!((b.score - want).abs() < 0.01, "{name}: BLEU {} vs sacreBLEU {want}", b.score);
        let (got, want) = (chrf(&hyps, &refs), c["chrf"].as_f64().unwrap());
        assert!((got - want).abs() < 0.01, "{name}: chrF {got} vs sacreBLEU {want}");
    }
}

/// `shiftlm score` reads files as the `sacrebleu` command does and gives the
/// same numbers; files of different lengths are refused, naming both.
#[test]
fn the_score_command_matches_and_refuses_mismatched_files() {
    let f = fixture();
    let c = f["cases"].as_array().unwrap().iter().find(|c| c["refs"].as_array().unwrap().len() == 2).unwrap().clone();
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, v: &serde_json::Value| {
        std::fs::write(d.path().join(name), strings(v).join("\n") + "\n").unwrap();
    };
    write("hyp.txt", &c["hyps"]);
    write("ref1.txt", &c["refs"][0]);
    write("ref2.txt", &c["refs"][1]);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_shiftlm")).args(args).current_dir(d.path()).output().unwrap()
    };
    let o = run(&["score", "--hyp", "hyp.txt", "--ref", "ref1.txt", "--ref", "ref2.txt", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!((v["bleu"].as_f64().unwrap() - c["bleu"].as_f64().unwrap()).abs() < 0.01, "{v}");
    assert!((v["chrf"].as_f64().unwrap() - c["chrf"].as_f64().unwrap()).abs() < 0.01, "{v}");
    std::fs::write(d.path().join("short.txt"), "one line\n").unwrap();
    let o = run(&["score", "--hyp", "hyp.txt", "--ref", "short.txt"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.code() == Some(2) && err.contains("short.txt") && err.contains("hyp.txt"), "{err}");
}
