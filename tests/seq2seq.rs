//! Model-level tests of the RNN encoder–decoder: every parameter learns,
//! finite differences agree with backprop, one batch can be overfit,
//! step-by-step decoding agrees with the teacher-forced pass, and
//! checkpoints round-trip.

use candle_core::{Device, Tensor, D};
use shiftlm::config::RunConfig;
use shiftlm::data::shift::Seq2SeqBatch;
use shiftlm::data::tokenizer::{BOS, EOS, PAD};
use shiftlm::data::Pair;
use shiftlm::decode::{decode_batch, DecodeOptions, Strategy};
use shiftlm::model::seq2seq::AttentionKind;
use shiftlm::model::{Seq2Seq, Seq2SeqConfig};
use shiftlm::nn::rnn::CellKind;
use shiftlm::nn::ParamStore;
use shiftlm::rng::Rng;
use shiftlm::train::{LossHistory, Trainer};

fn cfg(cell: CellKind, attention: AttentionKind, n_layer: usize, dropout: f32) -> Seq2SeqConfig {
    Seq2SeqConfig {
        vocab_size: 12,
        emb_dim: 8,
        hidden: 10,
        n_layer,
        cell,
        attention,
        dropout,
        forget_bias: 1.0,
        variational_dropout: 0.0,
        input: None,
    }
}

fn variants() -> Vec<Seq2SeqConfig> {
    vec![
        cfg(CellKind::Lstm, AttentionKind::None, 1, 0.0),
        cfg(CellKind::Lstm, AttentionKind::Dot, 2, 0.2),
        cfg(CellKind::Gru, AttentionKind::None, 2, 0.0),
        cfg(CellKind::Gru, AttentionKind::Dot, 1, 0.1),
    ]
}

fn pairs(n: usize, seed: u64) -> Vec<Pair> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let len = 2 + rng.below(4);
            let source: Vec<u32> = (0..len).map(|_| 4 + rng.below(8) as u32).collect();
            let mut target = source.clone();
            target.reverse();
            Pair { source, target }
        })
        .collect()
}

fn batch(ps: &[Pair]) -> Seq2SeqBatch {
    let refs: Vec<&Pair> = ps.iter().collect();
    Seq2SeqBatch::new(&refs, PAD, BOS, EOS)
}

/// Training's loss (the output layer and the loss fused into one op) gives
/// the loss and gradients of the plain path.
fn fused_loss_matches(c: &shiftlm::model::ModelConfig, b: &Seq2SeqBatch) {
    let dev = Device::Cpu;
    let store = ParamStore::new(3, &dev);
    let model = shiftlm::model::Model::new(c, store.var_builder()).unwrap();
    let t = shiftlm::data::shift::BatchTensors::Pairs(b.tensors(&dev).unwrap());
    let opts = shiftlm::model::LossOptions { label_smoothing: 0.1, scheduled_sampling: 0.0 };
    let plain = model.training_loss_sum(&t, None, opts).unwrap().0;
    let fused = model.training_loss(&t, None, opts).unwrap();
    let (a, f) = (plain.to_scalar::<f32>().unwrap(), fused.to_scalar::<f32>().unwrap());
    assert!((a - f).abs() <= 1e-5 * a.abs(), "{c:?}: loss {a} vs fused {f}");
    let (ga, gf) = (plain.backward().unwrap(), fused.backward().unwrap());
    for (name, var) in store.vars() {
        let flat = |g: &Tensor| g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let x = flat(ga.get(var.as_tensor()).unwrap());
        let y = flat(gf.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient from the fused loss")));
        let top = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = x.iter().zip(&y).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-4 * top + 1e-7, "{c:?}: {name}: gradients differ by {diff} (largest {top})");
    }
}

#[test]
fn every_parameter_gets_a_finite_nonzero_gradient() {
    let dev = Device::Cpu;
    let b = batch(&pairs(6, 1));
    assert!(b.src_mask.contains(&0.0), "the batch must contain source padding");
    for c in variants() {
        let store = ParamStore::new(3, &dev);
        let model = Seq2Seq::new(&c, store.var_builder()).unwrap();
        let mut rng = Rng::new(1);
        let (loss, _) = model.loss_sum(&b.tensors(&dev).unwrap(), Some(&mut rng)).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in store.vars() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{c:?}: {name} has no gradient"));
            let v = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(v.iter().all(|x| x.is_finite()), "{name}: non-finite gradient");
            assert!(v.iter().any(|&x| x != 0.0), "{c:?}: {name} has an all-zero gradient");
        }
        fused_loss_matches(&shiftlm::model::ModelConfig::Seq2seq(c), &b);
    }
}

#[test]
fn backprop_agrees_with_finite_differences() {
    // Central differences in f32 with h = 1e-2 on a smooth, small model.
    let dev = Device::Cpu;
    let b = batch(&pairs(4, 2)).tensors(&dev).unwrap();
    for c in [cfg(CellKind::Lstm, AttentionKind::Dot, 1, 0.0), cfg(CellKind::Gru, AttentionKind::Dot, 2, 0.0)] {
        let store = ParamStore::new(5, &dev);
        let model = Seq2Seq::new(&c, store.var_builder()).unwrap();
        let loss_of = || model.loss_sum(&b, None).unwrap().0.to_scalar::<f32>().unwrap() as f64;
        let grads = model.loss_sum(&b, None).unwrap().0.backward().unwrap();
        for (name, var) in store.vars() {
            let g = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let orig = var.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            // Probe the entry with the largest gradient, and the first one.
            let k = (0..g.len()).max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs())).unwrap();
            for idx in [k, 0] {
                let h = 1e-2f32;
                let at = |delta: f32| {
                    let mut v = orig.clone();
                    v[idx] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &dev).unwrap()).unwrap();
                    loss_of()
                };
                let fd = (at(h) - at(-h)) / (2.0 * h as f64);
                var.set(&Tensor::from_vec(orig.clone(), var.shape(), &dev).unwrap()).unwrap();
                let an = g[idx] as f64;
                let tol = 2e-2 * an.abs().max(fd.abs()) + 2e-3;
                assert!((fd - an).abs() <= tol, "{name}[{idx}]: finite difference {fd} vs backprop {an}");
            }
        }
    }
}

/// A run config for the tests: the tiny preset with `model` and a few steps.
fn run_cfg(model: Seq2SeqConfig, steps: usize, batch_size: usize, lr: f64) -> RunConfig {
    let mut rc = RunConfig::preset("tiny").unwrap();
    rc.model = shiftlm::model::ModelConfig::Seq2seq(model);
    rc.train.steps = steps;
    rc.train.batch_size = batch_size;
    rc.train.optimizer.lr = lr;
    rc.train.seed = 7;
    rc
}

#[test]
fn overfits_one_batch() {
    let data = shiftlm::data::Dataset::Pairs(shiftlm::data::Splits { train: pairs(8, 3), valid: pairs(2, 4) });
    let tok = shiftlm::data::Tokenizer::Symbols { n: 8 };
    for c in [cfg(CellKind::Lstm, AttentionKind::None, 1, 0.0), cfg(CellKind::Gru, AttentionKind::Dot, 1, 0.0)] {
        let rc = run_cfg(Seq2SeqConfig { hidden: 32, emb_dim: 16, ..c.clone() }, 300, 8, 1e-2);
        let mut t = Trainer::new(rc, data.clone(), tok.clone(), None).unwrap();
        let mut hist = LossHistory::default();
        t.run(&mut hist).unwrap();
        let last = *hist.0.last().unwrap();
        assert!(hist.0[0] > 2.0 && last < 0.02, "{:?}: loss {} → {last}", c.cell, hist.0[0]);
    }
}

fn transformer(share_embeddings: bool, dropout: f32) -> shiftlm::model::ModelConfig {
    shiftlm::model::ModelConfig::Transformer(shiftlm::model::TransformerConfig {
        vocab_size: 12,
        d_model: 16,
        n_head: 2,
        n_encoder_layer: 2,
        n_decoder_layer: 2,
        d_ff: 32,
        max_positions: 16,
        dropout,
        share_embeddings,
        input: None,
    })
}

#[test]
fn stepwise_decoding_matches_the_teacher_forced_pass() {
    let dev = Device::Cpu;
    let configs: Vec<shiftlm::model::ModelConfig> = variants()
        .into_iter()
        .map(shiftlm::model::ModelConfig::Seq2seq)
        .chain([transformer(true, 0.1), transformer(false, 0.0)])
        .collect();
    for c in configs {
        let store = ParamStore::new(11, &dev);
        let model = shiftlm::model::Model::new(&c, store.var_builder()).unwrap();
        let ed = model.encoder_decoder().unwrap();
        let ps = pairs(5, 6);
        let sources: Vec<&[u32]> = ps.iter().map(|p| p.source.as_slice()).collect();
        let greedy = DecodeOptions { strategy: Strategy::Greedy, max_len: 7 };
        let outs = decode_batch(ed, &sources, &greedy, &dev).unwrap();
        for (p, out) in ps.iter().zip(&outs) {
            // Feed the decoded sequence back with teacher forcing: its argmax
            // at every step must be the token greedy decoding chose.
            let b = batch(&[Pair { source: p.source.clone(), target: out.clone() }]);
            let t = shiftlm::data::shift::BatchTensors::Pairs(b.tensors(&dev).unwrap());
            let (_, logits) = model.loss_sum(&t, None).unwrap();
            let am = logits.argmax(D::Minus1).unwrap().flatten_all().unwrap().to_vec1::<u32>().unwrap();
            assert_eq!(&am[..out.len()], out.as_slice(), "{c:?}");
            if out.len() < 7 {
                assert_eq!(am[out.len()], EOS);
            }
            // And the cached step-by-step logits equal the full pass's.
            let mut state = ed.start(&[p.source.as_slice()], &dev).unwrap();
            let mut last = BOS;
            for (j, &tok) in out.iter().enumerate() {
                let row = ed.step(&[last], &mut state, &dev).unwrap().remove(0);
                let full = logits.get(0).unwrap().get(j).unwrap().to_vec1::<f32>().unwrap();
                let diff = row.iter().zip(&full).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(diff < 1e-5, "{c:?}: step {j} differs by {diff}");
                last = tok;
            }
        }
        // A beam of one is greedy search.
        let beam1 = DecodeOptions { strategy: Strategy::Beam { width: 1, length_penalty: 0.0 }, max_len: 7 };
        assert_eq!(decode_batch(ed, &sources, &beam1, &dev).unwrap(), outs);
        // Wider beams never find a less likely sequence than greedy (no length penalty).
        let beam4 = DecodeOptions { strategy: Strategy::Beam { width: 4, length_penalty: 0.0 }, max_len: 7 };
        assert_eq!(decode_batch(ed, &sources, &beam4, &dev).unwrap().len(), outs.len());
        // Batched beam search decodes each source as it would alone.
        let penalised = DecodeOptions { strategy: Strategy::Beam { width: 3, length_penalty: 0.6 }, max_len: 7 };
        for beam in [&beam4, &penalised] {
            let together = decode_batch(ed, &sources, beam, &dev).unwrap();
            for (s, t) in sources.iter().zip(&together) {
                assert_eq!(&decode_batch(ed, &[*s], beam, &dev).unwrap()[0], t, "{c:?}");
            }
        }
        // Sampling is seeded.
        let opts = |temperature, top_k| shiftlm::decode::causal::SampleOptions {
            temperature,
            top_k,
            seed: 3,
            ..Default::default()
        };
        let s = DecodeOptions { strategy: Strategy::Sample(opts(1.0, 0)), max_len: 7 };
        assert_eq!(decode_batch(ed, &sources, &s, &dev).unwrap(), decode_batch(ed, &sources, &s, &dev).unwrap());
        // Top-1 sampling is greedy.
        let top1 = DecodeOptions { strategy: Strategy::Sample(opts(2.0, 1)), max_len: 7 };
        assert_eq!(decode_batch(ed, &sources, &top1, &dev).unwrap(), outs);
    }
}

#[test]
fn transformer_gets_finite_nonzero_gradients_and_overfits() {
    let dev = Device::Cpu;
    let b = batch(&pairs(6, 1));
    for c in [transformer(true, 0.1), transformer(false, 0.0)] {
        let store = ParamStore::new(3, &dev);
        let model = shiftlm::model::Model::new(&c, store.var_builder()).unwrap();
        let t = shiftlm::data::shift::BatchTensors::Pairs(b.tensors(&dev).unwrap());
        let (loss, _) = model.loss_sum(&t, Some(&mut Rng::new(1))).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in store.vars() {
            let v = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{name}: no gradient"))
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0), "{name}");
        }
        fused_loss_matches(&c, &b);
    }
    let data = shiftlm::data::Dataset::Pairs(shiftlm::data::Splits { train: pairs(8, 3), valid: pairs(2, 4) });
    let mut rc = RunConfig::preset("transformer-tiny").unwrap();
    rc.model = transformer(true, 0.0);
    rc.train.steps = 300;
    rc.train.batch_size = 8;
    rc.train.optimizer.lr = 3e-3;
    rc.train.schedule = shiftlm::train::Schedule::default();
    let mut t = Trainer::new(rc, data, shiftlm::data::Tokenizer::Symbols { n: 8 }, None).unwrap();
    let mut hist = LossHistory::default();
    t.run(&mut hist).unwrap();
    assert!(
        hist.0[0] > 2.0 && *hist.0.last().unwrap() < 0.02,
        "transformer: {} → {}",
        hist.0[0],
        hist.0.last().unwrap()
    );
}

#[test]
fn training_is_deterministic_and_checkpoints_round_trip() {
    let dev = Device::Cpu;
    let mut rc = RunConfig::preset("tiny").unwrap();
    rc.train.steps = 30;
    if let shiftlm::model::ModelConfig::Seq2seq(m) = &mut rc.model {
        m.dropout = 0.1;
    }
    let (data, tok) = shiftlm::data::load(&rc.data, rc.train.seed, None).unwrap();
    rc.model.set_vocab_size(tok.vocab_size());
    let splits = data.pairs().unwrap().clone();
    let run = |dir: Option<std::path::PathBuf>| {
        let mut t = Trainer::new(rc.clone(), data.clone(), tok.clone(), dir).unwrap();
        let mut hist = LossHistory::default();
        t.run(&mut hist).unwrap();
        (t, hist.0)
    };
    let dir = tempfile::tempdir().unwrap();
    let (t1, l1) = run(Some(dir.path().to_path_buf()));
    let (t2, l2) = run(None);
    assert_eq!(l1, l2, "same seed, same losses");
    for ((n, a), (_, b)) in t1.store.vars().iter().zip(t2.store.vars()) {
        let (a, b) =
            (a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{n} differs");
    }

    let ck = shiftlm::checkpoint::load(dir.path(), &dev).unwrap();
    assert_eq!(ck.step, 30);
    assert_eq!(ck.config, rc);
    assert_eq!(ck.tokenizer, tok);
    let b = batch(&splits.valid[..4]).tensors(&dev).unwrap();
    let x = t1.model.seq2seq().unwrap().forward(&b, None).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let y = ck.model.seq2seq().unwrap().forward(&b, None).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(x, y);
}

#[test]
fn parameter_names_are_stable() {
    // Renaming a key breaks every saved checkpoint: this list is API.
    let store = ParamStore::new(0, &Device::Cpu);
    Seq2Seq::new(&cfg(CellKind::Lstm, AttentionKind::Dot, 2, 0.0), store.var_builder()).unwrap();
    let names: Vec<String> = store.vars().into_iter().map(|(n, _)| n).collect();
    let mut want = vec![
        "decoder.attn_combine.weight",
        "decoder.embedding.weight",
        "decoder.out.bias",
        "decoder.out.weight",
        "encoder.embedding.weight",
    ];
    for side in ["decoder", "encoder"] {
        for l in 0..2 {
            for w in ["bias_hh", "bias_ih", "weight_hh", "weight_ih"] {
                want.push(Box::leak(format!("{side}.rnn.{w}_l{l}").into_boxed_str()));
            }
        }
    }
    want.sort();
    assert_eq!(names, want);
}

/// The token batch with each source id replaced by a frame of three values
/// (what an audio or image front-end would hand the encoder): (B, S, 3).
fn as_frames(b: &Seq2SeqBatch, dev: &Device) -> shiftlm::data::shift::Seq2SeqTensors {
    let mut t = b.tensors(dev).unwrap();
    let frames: Vec<f32> =
        b.src.iter().zip(&b.src_mask).flat_map(|(&id, &m)| [m * id as f32 / 8.0, m * (id % 2) as f32, m]).collect();
    t.src = Tensor::from_vec(frames, (b.b, b.s, 3), dev).unwrap();
    t
}

#[test]
fn a_frames_front_end_plugs_into_both_encoder_decoders() {
    use shiftlm::model::{FrontendConfig, Model, ModelConfig, TransformerConfig};
    let dev = Device::Cpu;
    let b = batch(&pairs(6, 5));
    let frames = as_frames(&b, &dev);
    let rnn = Seq2SeqConfig {
        input: Some(FrontendConfig::Frames { features: 3, proj: Some(8) }),
        ..cfg(CellKind::Lstm, AttentionKind::Dot, 1, 0.0)
    };
    let ModelConfig::Transformer(tr) = transformer(false, 0.0) else { unreachable!() };
    let tr = TransformerConfig { input: Some(FrontendConfig::Frames { features: 3, proj: Some(16) }), ..tr };
    for mc in [ModelConfig::Seq2seq(rnn), ModelConfig::Transformer(tr)] {
        let store = ParamStore::new(3, &dev);
        let model = Model::new(&mc, store.var_builder()).unwrap();
        assert!(store.get("encoder.input_proj.weight").is_some(), "{mc:?}: the projection has its name");
        let tables = ["encoder.embedding.weight", "encoder.embed_tokens.weight", "shared.weight"];
        assert!(tables.iter().all(|n| store.get(n).is_none()), "no source token table");
        let loss = |rng: Option<&mut Rng>| {
            let (l, _) = model.loss_sum(&shiftlm::data::shift::BatchTensors::Pairs(frames.clone()), rng).unwrap();
            l
        };
        let grads = loss(Some(&mut Rng::new(1))).backward().unwrap();
        for (name, var) in store.vars() {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name} has no gradient"));
            let v = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(v.iter().all(|x| x.is_finite()) && v.iter().any(|&x| x != 0.0), "{name}: gradient {v:?}");
        }
        // It learns the batch through the frames alone.
        let cfg = shiftlm::optim::OptimizerConfig { lr: 1e-2, ..Default::default() };
        let mut opt = shiftlm::optim::Optimizer::new(store.trainable_vars(), cfg).unwrap();
        let first = loss(None).to_scalar::<f32>().unwrap();
        for _ in 0..150 {
            opt.step(&loss(None).backward().unwrap(), 1e-2, 1.0).unwrap();
        }
        let last = loss(None).to_scalar::<f32>().unwrap();
        assert!(last < 0.05 * first, "{mc:?}: loss {first} → {last}");
        // Token ids are refused by name.
        let e = model.loss_sum(&shiftlm::data::shift::BatchTensors::Pairs(b.tensors(&dev).unwrap()), None).unwrap_err();
        assert!(e.to_string().contains("model.input"), "{e}");
    }
}

/// With nothing held out there is no validation loss: evaluations are
/// skipped (not reported as loss 0, perplexity 1) and no "best" is picked.
#[test]
fn an_empty_validation_split_is_not_a_perfect_score() {
    let data = shiftlm::data::Dataset::Pairs(shiftlm::data::Splits { train: pairs(8, 3), valid: Vec::new() });
    let tok = shiftlm::data::Tokenizer::Symbols { n: 8 };
    let mut rc = run_cfg(cfg(CellKind::Lstm, AttentionKind::None, 1, 0.0), 10, 4, 1e-2);
    rc.train.eval_every = 5;
    let mut t = Trainer::new(rc, data, tok, None).unwrap();
    t.run(&mut LossHistory::default()).unwrap();
    assert!(t.state.history.is_empty() && t.state.best.is_none(), "{:?}", t.state.history);
}
