//! The training engine: gradient accumulation is exact, resumed runs are
//! bit-identical to uninterrupted ones, early stopping stops.

mod common;
use common::copy_dir;

use candle_core::Device;
use shiftlm::config::RunConfig;
use shiftlm::data::shift::BatchTensors;
use shiftlm::data::shift::Seq2SeqBatch;
use shiftlm::data::tokenizer::{BOS, EOS, PAD};
use shiftlm::data::Pair;
use shiftlm::model::Model;
use shiftlm::nn::ParamStore;
use shiftlm::rng::Rng;
use shiftlm::train::{accumulate, LossHistory, Trainer};

fn tiny(steps: usize) -> (RunConfig, shiftlm::data::Dataset, shiftlm::data::Tokenizer) {
    let mut rc = RunConfig::preset("tiny").unwrap();
    rc.train.steps = steps;
    let (data, tok) = shiftlm::data::load(&rc.data, rc.train.seed, None).unwrap();
    rc.model.set_vocab_size(tok.vocab_size());
    (rc, data, tok)
}

#[test]
fn k_micro_batches_give_the_gradient_of_one_batch() {
    let dev = Device::Cpu;
    let (rc, splits, _) = tiny(1);
    let store = ParamStore::new(1, &dev);
    let model = Model::new(&rc.model, store.var_builder()).unwrap();
    let vars = store.vars();
    let ex: Vec<&Pair> = splits.pairs().unwrap().train[..12].iter().collect();
    let whole = [BatchTensors::Pairs(Seq2SeqBatch::new(&ex, PAD, BOS, EOS).tensors(&dev).unwrap())];
    // Uneven micro-batches, each padded to its own length.
    let parts: Vec<_> = [&ex[..2], &ex[2..7], &ex[7..]]
        .iter()
        .map(|p| BatchTensors::Pairs(Seq2SeqBatch::new(p, PAD, BOS, EOS).tensors(&dev).unwrap()))
        .collect();
    let (l1, g1, n1) = accumulate(&model, &vars, &whole, &mut Rng::new(0)).unwrap();
    let (l2, g2, n2) = accumulate(&model, &vars, &parts, &mut Rng::new(0)).unwrap();
    assert_eq!(n1, n2);
    assert!((l1 - l2).abs() <= 1e-5 * l1.abs(), "{l1} vs {l2}");
    for (name, v) in &vars {
        let a = g1.get(v.as_tensor()).unwrap();
        let b = g2.get(v.as_tensor()).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let scale = a.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff <= 1e-5 * scale.max(1e-6), "{name}: {diff} vs scale {scale}");
    }
}

#[test]
fn resumed_runs_are_bit_identical_mid_epoch_across_epochs_with_accumulation_and_dropout() {
    let (mut rc, splits, tok) = tiny(40);
    if let shiftlm::model::ModelConfig::Seq2seq(m) = &mut rc.model {
        m.dropout = 0.2;
    }
    rc.train.grad_accum = 2;
    rc.train.batch_size = 48; // 2000 pairs / 96 per step: epochs end inside steps 21 and 42
    rc.train.save_every = 1;
    rc.train.keep_last = 100;
    rc.train.eval_every = 10;
    let full = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(rc.clone(), splits.clone(), tok.clone(), Some(full.path().to_path_buf())).unwrap();
    let mut all = LossHistory::default();
    t.run(&mut all).unwrap();
    let final_weights = std::fs::read(full.path().join("checkpoint-40/model.safetensors")).unwrap();

    for m in [7, 21, 22, 33] {
        let run = tempfile::tempdir().unwrap();
        copy_dir(&full.path().join(format!("checkpoint-{m}")), &run.path().join(format!("checkpoint-{m}")));
        let mut r = Trainer::resume(run.path()).unwrap();
        assert_eq!(r.state.step, m);
        let mut rest = LossHistory::default();
        r.run(&mut rest).unwrap();
        assert_eq!(rest.0, all.0[m..], "losses after resuming at step {m}");
        let w = std::fs::read(run.path().join("checkpoint-40/model.safetensors")).unwrap();
        assert!(w == final_weights, "final weights differ after resuming at step {m}");
        assert_eq!(r.state.history, t.state.history, "evaluation history after resuming at {m}");
    }
}

#[test]
fn resume_refuses_changed_data() {
    let (mut rc, splits, tok) = tiny(4);
    rc.train.save_every = 2;
    let run = tempfile::tempdir().unwrap();
    Trainer::new(rc.clone(), splits, tok, Some(run.path().to_path_buf()))
        .unwrap()
        .run(&mut LossHistory::default())
        .unwrap();
    // Rewrite the config so the task generates other data, and reseal the manifest.
    let ck = run.path().join("checkpoint-4");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(ck.join("config.json")).unwrap()).unwrap();
    cfg["train"]["seed"] = 99.into();
    std::fs::write(ck.join("config.json"), serde_json::to_vec(&cfg).unwrap()).unwrap();
    let mpath = ck.join("manifest.json");
    let mut m: shiftlm::checkpoint::Manifest = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    let bytes = std::fs::read(ck.join("config.json")).unwrap();
    m.files.insert(
        "config.json".into(),
        shiftlm::checkpoint::FileEntry { sha256: shiftlm::checkpoint::sha256_hex(&bytes), bytes: bytes.len() as u64 },
    );
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let e = Trainer::resume(run.path()).err().expect("must refuse").to_string();
    assert!(e.contains("training data changed"), "{e}");
}

#[test]
fn early_stopping_stops_after_patience_evaluations_without_improvement() {
    let (mut rc, splits, tok) = tiny(50);
    rc.train.optimizer.lr = 1e-12; // far below f32 resolution: the loss cannot improve
    rc.train.eval_every = 1;
    rc.train.patience = 2;
    let mut t = Trainer::new(rc, splits, tok, None).unwrap();
    let out = t.run(&mut LossHistory::default()).unwrap();
    assert!(out.stopped_early);
    assert_eq!(out.steps, 3);
    assert_eq!(out.best.unwrap().step, 1);
}

#[test]
fn gpt_resume_is_bit_identical_with_random_windows() {
    let mut rc = RunConfig::preset("gpt-tiny").unwrap();
    rc.train.steps = 12;
    rc.train.save_every = 1;
    rc.train.keep_last = 100;
    rc.train.eval_every = 4;
    rc.train.grad_accum = 2;
    rc.train.schedule.decay_steps = 12;
    if let shiftlm::model::ModelConfig::Gpt2(m) = &mut rc.model {
        m.dropout = 0.1;
    }
    let full = tempfile::tempdir().unwrap();
    let text_file = full.path().join("play.txt");
    std::fs::write(
        &text_file,
        "It is the east, and Juliet is the sun. Arise, fair sun, and kill the envious moon. ".repeat(8),
    )
    .unwrap();
    if let shiftlm::config::DataConfig::Text(t) = &mut rc.data {
        t.paths = vec![text_file];
        t.tokenizer = shiftlm::config::TokenizerKind::Byte;
    }
    let (data, tok) = shiftlm::data::load(&rc.data, rc.train.seed, None).unwrap();
    rc.model.set_vocab_size(tok.vocab_size());
    let mut t = Trainer::new(rc.clone(), data.clone(), tok.clone(), Some(full.path().to_path_buf())).unwrap();
    let mut all = LossHistory::default();
    t.run(&mut all).unwrap();
    let final_weights = std::fs::read(full.path().join("checkpoint-12/model.safetensors")).unwrap();
    for m in [5, 8] {
        let run = tempfile::tempdir().unwrap();
        copy_dir(&full.path().join(format!("checkpoint-{m}")), &run.path().join(format!("checkpoint-{m}")));
        let mut r = Trainer::resume(run.path()).unwrap();
        let mut rest = LossHistory::default();
        r.run(&mut rest).unwrap();
        assert_eq!(rest.0, all.0[m..], "losses after resuming at step {m}");
        assert!(std::fs::read(run.path().join("checkpoint-12/model.safetensors")).unwrap() == final_weights);
    }
}

/// Token batching (bucketed, shuffled batches of a token budget) resumes
/// exactly too, across an epoch boundary, with BLEU picking the best and
/// scheduled sampling on.
#[test]
fn token_batched_runs_resume_bit_for_bit() {
    let (mut rc, splits, tok) = tiny(30);
    rc.train.batch_tokens = 600; // 2000 pairs of lengths 2–5: about 22 steps an epoch
    rc.train.save_every = 1;
    rc.train.keep_last = 100;
    rc.train.eval_every = 10;
    rc.train.select_by = Some(shiftlm::config::train::SelectBy::Bleu);
    rc.train.scheduled_sampling = 0.3; // its coin flips come from the saved dropout stream
    let full = tempfile::tempdir().unwrap();
    let mut t = Trainer::new(rc, splits, tok, Some(full.path().to_path_buf())).unwrap();
    let mut all = LossHistory::default();
    t.run(&mut all).unwrap();
    assert!(t.state.loader.epoch >= 1, "the run crosses an epoch");
    assert!(t.state.history.iter().all(|e| e.valid_bleu.is_some()));
    common::assert_resumes_bit_for_bit(full.path(), 30, &[5, 23], &all);
}
