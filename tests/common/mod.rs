//! Helpers shared by test files (each file under tests/ is its own crate,
//! and uses what it needs of these).
#![allow(dead_code)]

use shiftlm::data::shift::BatchTensors;
use shiftlm::model::Model;
use shiftlm::rng::Rng;
use shiftlm::train::{accumulate, LossHistory, Trainer};
use std::path::Path;

/// Copies the files of `from` into `to` (created).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Adam at `lr` for `steps` steps on the same `batches`: the first loss and the last.
pub fn overfit(
    model: &Model,
    vars: &[(String, candle_core::Var)],
    batches: &[BatchTensors],
    lr: f64,
    steps: usize,
) -> (f32, f32) {
    let cfg = shiftlm::optim::OptimizerConfig { lr, ..Default::default() };
    let mut opt = shiftlm::optim::Optimizer::new(vars.to_vec(), cfg).unwrap();
    let (first, ..) = accumulate(model, vars, batches, &mut Rng::new(0)).unwrap();
    let mut last = first;
    for _ in 0..steps {
        let (l, g, _) = accumulate(model, vars, batches, &mut Rng::new(0)).unwrap();
        opt.step(&g, lr, 1.0).unwrap();
        last = l;
    }
    (first, last)
}

/// Resumes the run in `full` (which trained to step `last`, saving every
/// step, with losses `all`) from each step of `at`, in a fresh folder, and
/// asserts that the losses after it and the final weights are the same.
pub fn assert_resumes_bit_for_bit(full: &Path, last: usize, at: &[usize], all: &LossHistory) {
    let final_weights = std::fs::read(full.join(format!("checkpoint-{last}/model.safetensors"))).unwrap();
    for &m in at {
        let run = tempfile::tempdir().unwrap();
        copy_dir(&full.join(format!("checkpoint-{m}")), &run.path().join(format!("checkpoint-{m}")));
        let mut r = Trainer::resume(run.path()).unwrap();
        let mut rest = LossHistory::default();
        r.run(&mut rest).unwrap();
        assert_eq!(rest.0, all.0[m..], "losses after resuming at step {m}");
        let w = std::fs::read(run.path().join(format!("checkpoint-{last}/model.safetensors"))).unwrap();
        assert!(w == final_weights, "final weights differ after resuming at step {m}");
    }
}

/// The last line of a successful command's standard output, as JSON (the
/// error names stderr when the command failed).
pub fn last_json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    serde_json::from_str(out.lines().last().unwrap()).unwrap_or_else(|e| panic!("{e}: {out}"))
}
