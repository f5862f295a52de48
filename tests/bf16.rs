//! `--precision bf16`: the matrix products round their operands to bf16
//! and accumulate in f32, with f32 weights and optimizer state. A small GPT
//! trains in bf16 to nearly the losses of f32 (but not bit for bit: the
//! products really are bf16), and the run's config keeps the precision.
//!
//! Its own test binary: the precision is process-wide, so these runs must
//! not share a process with tests that train in f32.

use shiftlm::config::RunConfig;
use shiftlm::ops::cpu::{self, Precision};
use shiftlm::train::{LossHistory, Trainer};

fn losses(text: &std::path::Path, precision: Precision) -> (Vec<f32>, RunConfig) {
    let mut rc = RunConfig::preset("gpt-tiny").unwrap();
    rc.train.steps = 40;
    rc.train.eval_every = 0;
    rc.train.precision = precision;
    if let shiftlm::config::DataConfig::Text(t) = &mut rc.data {
        t.paths = vec![text.to_path_buf()];
        t.tokenizer = shiftlm::config::TokenizerKind::Byte;
    }
    let (data, tok) = shiftlm::data::load(&rc.data, rc.train.seed, None).unwrap();
    rc.model.set_vocab_size(tok.vocab_size());
    let mut t = Trainer::new(rc, data, tok, None).unwrap();
    assert_eq!(cpu::precision(), precision, "the trainer sets the process's precision");
    let mut h = LossHistory::default();
    t.run(&mut h).unwrap();
    (h.0, t.cfg.clone())
}

#[test]
fn bf16_trains_a_gpt_as_f32_does() {
    if !cpu::bf16_supported() {
        eprintln!("skipped: this CPU has no AVX512_BF16 (or SHIFTLM_ISA=avx2 turned AVX-512 off)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("play.txt");
    let line = "It is the east, and Juliet is the sun. Arise, fair sun, and kill the envious moon. ";
    std::fs::write(&text, line.repeat(40)).unwrap();
    let (f32_losses, _) = losses(&text, Precision::F32);
    let (bf16_losses, cfg) = losses(&text, Precision::Bf16);
    assert!(bf16_losses.iter().all(|l| l.is_finite()), "{bf16_losses:?}");
    assert_ne!(f32_losses, bf16_losses, "bf16 products round: the losses cannot be bit-identical");
    let first = f32_losses[0];
    let (a, b) = (f32_losses.last().unwrap(), bf16_losses.last().unwrap());
    assert!(*b < 0.8 * first, "bf16 learns: {first} → {b}");
    assert!((a - b).abs() < 0.05 * a, "final loss f32 {a} vs bf16 {b}");
    // The first step's loss differs only by the rounding of one forward pass.
    assert!((f32_losses[0] - bf16_losses[0]).abs() < 0.01, "{} vs {}", f32_losses[0], bf16_losses[0]);
    // The run's saved config records it, so a resumed run keeps it.
    let json = serde_json::to_string(&cfg).unwrap();
    assert!(json.contains(r#""precision":"bf16""#), "{json}");
    let back: RunConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back.train.precision, Precision::Bf16);
}
