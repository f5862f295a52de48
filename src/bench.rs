//! Training-speed benchmarks: named model configurations trained on
//! synthetic tokens, timed per step (forward + loss + backward + clip +
//! AdamW), with achieved GFLOP/s against this machine's measured
//! matrix-product peak. The PyTorch side is `tools/bench_torch.py`.

use crate::config::RunConfig;
use crate::data::{Dataset, Pair, Splits, Tokenizer};
use crate::error::{Error, Result};
use crate::model::{
    ForecasterConfig, ForecasterKind, Gpt2Config, ImageConfig, ImageKind, ModelConfig, Seq2SeqConfig, TransformerConfig,
};
use crate::rng::Rng;
use crate::train::{MetricsSink, StepMetrics, Trainer};
use serde::Serialize;
use std::time::Instant;

/// A benchmark configuration.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The name [`config()`] finds it by, e.g. `baby-gpt`.
    pub name: &'static str,
    /// One line on the model and batch.
    pub about: &'static str,
    /// The model trained.
    pub model: ModelConfig,
    /// Examples per step, e.g. 12.
    pub batch_size: usize,
    /// Tokens per example (context, or target length for encoder–decoders).
    pub seq_len: usize,
}

fn gpt(vocab: usize, layers: usize, heads: usize, width: usize, ctx: usize) -> ModelConfig {
    ModelConfig::Gpt2(Gpt2Config::nano(vocab, layers, heads, width, ctx))
}

/// A Llama of the GPT configurations' sizes (the presets' layout,
/// [`crate::config::presets::llama_of`]) with `kv_heads` key/value heads;
/// `tools/bench_torch.py` builds the same.
fn llama(vocab: usize, layers: usize, heads: usize, kv_heads: usize, width: usize, ctx: usize) -> ModelConfig {
    let mut m = crate::config::presets::llama_of(layers, heads, kv_heads, width, ctx);
    m.set_vocab_size(vocab);
    m
}

/// Every named configuration.
pub fn configs() -> Vec<BenchConfig> {
    vec![
        BenchConfig {
            name: "baby-gpt",
            about: "GPT, vocab 65, 4 layers, 4 heads, 128 wide, context 64, batch 12 (nanoGPT's CPU baby GPT)",
            model: gpt(65, 4, 4, 128, 64),
            batch_size: 12,
            seq_len: 64,
        },
        BenchConfig {
            name: "seed-lstm",
            about: "LSTM seq2seq, vocab 1000, embedding 256, LSTM 128, length 10, batch 64 (the Keras reference)",
            model: ModelConfig::Seq2seq(Seq2SeqConfig::default()),
            batch_size: 64,
            seq_len: 10,
        },
        BenchConfig {
            name: "gpt-6x384",
            about: "GPT, vocab 512, 6 layers, 6 heads, 384 wide, context 256, batch 16",
            model: gpt(512, 6, 6, 384, 256),
            batch_size: 16,
            seq_len: 256,
        },
        BenchConfig {
            name: "gpt2-30m",
            about: "GPT-2 layout, ~30M parameters: vocab 8192, 8 layers, 8 heads, 512 wide, context 128, batch 8",
            model: gpt(8192, 8, 8, 512, 128),
            batch_size: 8,
            seq_len: 128,
        },
        BenchConfig {
            name: "llama-baby",
            about: "Llama, vocab 65, 4 layers, 4 heads (2 key/value), 128 wide, SwiGLU 344, context 64, batch 12 (the baby GPT's size)",
            model: llama(65, 4, 4, 2, 128, 64),
            batch_size: 12,
            seq_len: 64,
        },
        BenchConfig {
            name: "llama-6x384",
            about: "Llama, vocab 512, 6 layers, 6 heads (2 key/value), 384 wide, SwiGLU 1024, context 256, batch 16 (gpt-6x384's size)",
            model: llama(512, 6, 6, 2, 384, 256),
            batch_size: 16,
            seq_len: 256,
        },
        BenchConfig {
            name: "forecast-lstm",
            about: "LSTM forecaster, hidden 64, context 168, horizon 24, batch 32 (the series preset)",
            model: ModelConfig::Forecaster(ForecasterConfig::default()),
            batch_size: 32,
            seq_len: 168,
        },
        BenchConfig {
            name: "forecast-gru",
            about: "GRU forecaster, hidden 64, context 168, horizon 24, batch 32",
            model: ModelConfig::Forecaster(ForecasterConfig { kind: ForecasterKind::Gru, ..Default::default() }),
            batch_size: 32,
            seq_len: 168,
        },
        BenchConfig {
            name: "forecast-transformer",
            about: "Transformer forecaster, 1 block of 64 wide, 4 heads, context 168, horizon 24, batch 32",
            model: ModelConfig::Forecaster(ForecasterConfig {
                kind: ForecasterKind::Transformer,
                ..Default::default()
            }),
            batch_size: 32,
            seq_len: 168,
        },
        BenchConfig {
            name: "cnn-28",
            about: "CNN on 28×28 images (Fashion-MNIST's shapes): 3×3 convolutions of 32 and 64 with 2×2 max pooling, hidden 128, 10 classes, batch 64",
            model: ModelConfig::Image(ImageConfig::new(ImageKind::Cnn, 28, 28, 10)),
            batch_size: 64,
            seq_len: 1,
        },
        BenchConfig {
            name: "mt-transformer",
            about: "Transformer encoder–decoder for translation (Multi30k-sized): shared vocab 8000, 3+3 pre-LN layers, 256 wide, 4 heads, feed-forward 1024, dropout 0.1, tied embeddings, 24 tokens a side, batch 64",
            model: match crate::config::presets::transformer_mt().0 {
                // The translation preset's model, with positions for 24 tokens a side.
                ModelConfig::Transformer(m) => ModelConfig::Transformer(TransformerConfig { max_positions: 64, ..m }),
                other => other,
            },
            batch_size: 64,
            seq_len: 24,
        },
        BenchConfig {
            name: "kws-conv-lstm",
            about: "the spoken-digits keyword spotter on 40 mel bands × 176 frames: 3×3 convolutions of 32 and 32 with 2×2 max pooling, an LSTM of 128 over the 44 columns, mean over time, 10 classes, batch 64",
            model: ModelConfig::Image(ImageConfig::new(ImageKind::ConvLstm, 176, 40, 10)),
            batch_size: 64,
            seq_len: 1,
        },
    ]
}

/// The configuration named `name`, or an error listing the known names.
pub fn config(name: &str) -> Result<BenchConfig> {
    configs().into_iter().find(|c| c.name == name).ok_or_else(|| Error::Unknown {
        what: "benchmark configuration",
        name: name.into(),
        known: configs().iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
    })
}

/// Matrix-product FLOPs of one training step (forward + backward ≈ 3 × forward).
pub fn flops_per_step(c: &BenchConfig) -> f64 {
    let (b, t) = (c.batch_size as f64, c.seq_len as f64);
    match &c.model {
        ModelConfig::Gpt2(m) => {
            let (l, d, v) = (m.n_layer as f64, m.n_embd as f64, m.vocab_size as f64);
            // Per token: 12·d² per layer in the projections and MLP, 2·t·d per layer in
            // attention scores and values (causal: half of the square, ×2 for QKᵀ and AV),
            // and d·v for the head; ×2 for multiply-add, ×3 for the backward pass.
            let per_token = l * (12.0 * d * d + 2.0 * t * d) + d * v;
            6.0 * per_token * b * t
        }
        ModelConfig::Llama(m) => {
            let (l, d, v, ff) =
                (m.num_hidden_layers as f64, m.hidden_size as f64, m.vocab_size as f64, m.intermediate_size as f64);
            let kv = (m.num_key_value_heads * m.head_dim()) as f64;
            // Per token and layer: q and o (2·d²), k and v (2·d·kv), SwiGLU (3·d·ff), scores
            // and values (2·t·d, as for the GPT); then the head d·v; ×6 as above.
            let per_token = l * (2.0 * d * d + 2.0 * d * kv + 3.0 * d * ff + 2.0 * t * d) + d * v;
            6.0 * per_token * b * t
        }
        ModelConfig::Seq2seq(m) => {
            let (e, h, v) = (m.emb_dim as f64, m.hidden as f64, m.vocab_size as f64);
            let g = 4.0 * h;
            // Encoder (t steps) and decoder (t + 1 steps): input and recurrent
            // projections; then the output layer over t + 1 positions.
            let steps = t + (t + 1.0);
            let per_example = steps * (e * g + h * g) + (t + 1.0) * h * v;
            6.0 * per_example * b
        }
        ModelConfig::Transformer(m) => {
            // Multiply-adds per token: encoder layers (q/k/v/out 4c², feed-forward
            // 2·c·ff, scores and values 2·S·c) over the source; decoder layers (self
            // 4c² + cross 4c², feed-forward, causal self-attention ≈ T·c, cross
            // 2·S·c) and the head c·v over the T + 1 target positions.
            let (c, ff, v) = (m.d_model as f64, m.d_ff as f64, m.vocab_size as f64);
            let (s, t1) = (t, t + 1.0);
            let enc = m.n_encoder_layer as f64 * s * (4.0 * c * c + 2.0 * c * ff + 2.0 * s * c);
            let dec = m.n_decoder_layer as f64 * t1 * (8.0 * c * c + 2.0 * c * ff + t1 * c + 2.0 * s * c);
            6.0 * (enc + dec + t1 * c * v) * b
        }
        ModelConfig::Forecaster(m) => {
            let (l, h, c, f, n) =
                (m.context as f64, m.horizon as f64, m.hidden as f64, m.n_inputs as f64, m.n_targets as f64);
            let per_example = match m.kind {
                // Encoder over L steps, decoder over H steps, head per step (LSTM: 4 gates, GRU: 3).
                ForecasterKind::Lstm | ForecasterKind::Gru => {
                    let g = if m.kind == ForecasterKind::Lstm { 4.0 } else { 3.0 } * c;
                    l * (f * g + c * g) + h * (n * g + c * g + c * n)
                }
                // Input projection, per block q/k/v/out (4c²) + feed-forward (2·c·ff) per
                // position and attention (2·l·c per position), then the head.
                ForecasterKind::Transformer => {
                    let ff = m.d_ff as f64;
                    l * f * c + m.n_layer as f64 * l * (4.0 * c * c + 2.0 * c * ff + 2.0 * l * c) + c * h * n
                }
                // One map of the window (L·F) to the horizon (H·N); DLinear two, and its moving average.
                ForecasterKind::NLinear => l * f * h * n,
                ForecasterKind::DLinear => 2.0 * l * f * h * n + l * l * f,
                // Per block: the layers (window → C, then C → C), backcast (C → L·F), forecast (C → H·N).
                ForecasterKind::NBeats => {
                    let layers = l * f * c + (m.n_layer as f64 - 1.0).max(0.0) * c * c;
                    m.blocks as f64 * (layers + c * l * f + c * h * n)
                }
            };
            6.0 * per_example * b
        }
        ModelConfig::Image(m) if m.kind.has_convs() => {
            // Each 3×3 convolution at its input's size (pooling halves it after),
            // then the hidden layer (CNN) or the LSTM/GRU over the columns, and the head.
            let (mut h, mut w, mut c_in, mut f) = (m.height, m.width, 1.0, 0.0);
            for &c in &m.channels {
                f += 9.0 * c_in * c as f64 * (h * w) as f64;
                if h.is_multiple_of(2) && w.is_multiple_of(2) {
                    (h, w) = (h / 2, w / 2);
                }
                c_in = c as f64;
            }
            let hidden = m.hidden as f64;
            f += match m.kind.cell() {
                Some(cell) => {
                    let gates = if cell == crate::nn::rnn::CellKind::Lstm { 4.0 } else { 3.0 } * hidden;
                    w as f64 * (c_in * h as f64 * gates + hidden * gates)
                }
                None => c_in * (h * w) as f64 * hidden,
            };
            f += hidden * m.n_classes as f64;
            6.0 * f * b
        }
        _ => 0.0,
    }
}

/// The best of a few n×n×n f32 matrix products with shiftlm's kernel
/// ([`crate::ops::sgemm`]) on rayon's threads, in GFLOP/s: the machine's
/// peak as far as shiftlm can use it.
pub fn matmul_peak_gflops(n: usize) -> Result<f64> {
    let mut rng = Rng::new(3);
    let a: Vec<f32> = (0..n * n).map(|_| rng.normal()).collect();
    let b: Vec<f32> = (0..n * n).map(|_| rng.normal()).collect();
    let mut c = vec![0f32; n * n];
    let threads = rayon::current_num_threads();
    let s = (1, n as isize);
    let mut best = f64::INFINITY;
    for i in 0..6 {
        let t0 = Instant::now();
        // SAFETY: three distinct n×n row-major buffers.
        unsafe { crate::ops::sgemm::sgemm(n, n, n, c.as_mut_ptr(), s, false, a.as_ptr(), s, b.as_ptr(), s, threads) };
        if i > 0 {
            best = best.min(t0.elapsed().as_secs_f64()); // the first warms up
        }
    }
    Ok(2.0 * (n as f64).powi(3) / best / 1e9)
}

/// What one benchmark reports.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Name of the configuration.
    pub config: String,
    /// Threads the benchmark ran on.
    pub threads: usize,
    /// Timed steps, after warmup.
    pub steps: usize,
    /// Parameters of the model.
    pub params: usize,
    /// Median milliseconds per training step.
    pub ms_per_step: f64,
    /// Tokens per second at the median step (batch size × sequence length per step).
    pub tokens_per_s: f64,
    /// Achieved matrix-product GFLOP/s at the median step ([`flops_per_step`]).
    pub gflops: f64,
    /// The machine's measured peak in GFLOP/s ([`matmul_peak_gflops`]).
    pub peak_gflops: f64,
    /// `gflops / peak_gflops`.
    pub peak_fraction: f64,
    /// The CPU: model, vector features, and the kernels' instruction set.
    pub cpu: crate::ops::cpu::CpuInfo,
}

struct Times(Vec<f64>);

impl MetricsSink for Times {
    fn on_step(&mut self, m: &StepMetrics) {
        self.0.push(m.elapsed_s);
    }
}

/// A trainer for `c` on random tokens, set up for `steps` steps.
fn trainer(c: &BenchConfig, steps: usize) -> Result<Trainer> {
    if c.model.is_forecaster() {
        // The built-in series, windows of the configured context and horizon.
        let mut rc = RunConfig::preset("series")?;
        rc.model = c.model.clone();
        rc.train.steps = steps;
        rc.train.precision = crate::ops::cpu::precision(); // as `shiftlm bench --precision` set it
        rc.train.batch_size = c.batch_size;
        rc.train.eval_every = 0;
        rc.train.schedule.warmup_steps = 0;
        rc.train.schedule.decay_steps = steps;
        let (data, tok) = crate::data::load(&rc.data, rc.train.seed, None)?;
        return Trainer::new(rc, data, tok, None);
    }
    let mut rng = Rng::new(7);
    if let ModelConfig::Image(m) = &c.model {
        // Random pixels and labels of the configured size, 8 batches' worth.
        let mut rc = RunConfig::preset("cnn")?;
        rc.model = c.model.clone();
        rc.train.steps = steps;
        rc.train.precision = crate::ops::cpu::precision(); // as `shiftlm bench --precision` set it
        rc.train.batch_size = c.batch_size;
        rc.train.eval_every = 0;
        rc.train.schedule.warmup_steps = 0;
        rc.train.schedule.decay_steps = steps;
        let set = |n: usize, rng: &mut Rng| crate::data::images::Images {
            width: m.width,
            height: m.height,
            max_value: 255,
            pixels: (0..n * m.width * m.height).map(|_| rng.below(256) as u8).collect(),
            labels: (0..n).map(|_| rng.below(m.n_classes) as u32).collect(),
            classes: (0..m.n_classes).map(|k| k.to_string()).collect(),
        };
        let train = set(c.batch_size * 8, &mut rng);
        let (valid, test) = (set(c.batch_size, &mut rng), set(c.batch_size, &mut rng));
        let data = crate::data::images::ImageData { train, valid, test, source: "random".into() };
        return Trainer::new(rc, Dataset::Images(data), Tokenizer::Values, None);
    }
    let v = c.model.vocab_size();
    let mut rc = RunConfig::preset(if c.model.is_causal() { "gpt-tiny" } else { "seed" })?;
    rc.model = c.model.clone();
    rc.train.steps = steps;
    rc.train.precision = crate::ops::cpu::precision(); // as `shiftlm bench --precision` set it
    rc.train.batch_size = c.batch_size;
    rc.train.eval_every = 0;
    rc.train.eval_batches = 1;
    rc.train.schedule.warmup_steps = 0;
    rc.train.schedule.decay_steps = rc.train.steps;
    let symbols = v.saturating_sub(4).max(1);
    let (data, tok) = if c.model.is_causal() {
        let n = (c.seq_len + 1) * 64;
        let mut draw = |k| (0..k).map(|_| rng.below(v) as u32).collect::<Vec<_>>();
        (Dataset::Text { train: draw(n), valid: draw(c.seq_len * 2) }, Tokenizer::Symbols { n: symbols })
    } else {
        let mut pair = || {
            let source: Vec<u32> = (0..c.seq_len).map(|_| 4 + rng.below(symbols) as u32).collect();
            Pair { target: crate::data::shift::rotate_left(&source, 1), source }
        };
        let train = (0..c.batch_size * 8).map(|_| pair()).collect();
        let valid = (0..c.batch_size).map(|_| pair()).collect();
        (Dataset::Pairs(Splits { train, valid }), Tokenizer::Symbols { n: symbols })
    };
    Trainer::new(rc, data, tok, None)
}

/// Trains `c` for `warmup + steps` steps on random tokens and reports the
/// median step after warmup.
pub fn run(c: &BenchConfig, steps: usize, warmup: usize, threads: usize, peak_gflops: f64) -> Result<BenchReport> {
    let mut t = trainer(c, warmup + steps)?;
    let params = t.store.num_params();
    let mut times = Times(Vec::new());
    t.run(&mut times)?;
    let mut d: Vec<f64> = times.0.windows(2).skip(warmup.saturating_sub(1)).map(|w| w[1] - w[0]).collect();
    if d.is_empty() {
        return Err(Error::config("steps", "need at least one timed step"));
    }
    d.sort_by(f64::total_cmp);
    let s = d[d.len() / 2];
    let tokens = (c.batch_size * c.seq_len) as f64;
    let gflops = flops_per_step(c) / s / 1e9;
    Ok(BenchReport {
        config: c.name.into(),
        threads,
        steps,
        params,
        ms_per_step: 1e3 * s,
        tokens_per_s: tokens / s,
        gflops,
        peak_gflops,
        peak_fraction: gflops / peak_gflops.max(1e-9),
        cpu: crate::ops::cpu::info(),
    })
}

/// What one generation benchmark reports.
#[derive(Debug, Clone, Serialize)]
pub struct GenerateReport {
    /// Name of the configuration.
    pub config: String,
    /// Threads the benchmark ran on.
    pub threads: usize,
    /// New tokens per run, from a one-token prompt, batch 1.
    pub new_tokens: usize,
    /// The median of `repeats` runs.
    pub ms_per_token: f64,
    /// New tokens per second at the median run.
    pub tokens_per_s: f64,
}

/// Times KV-cached sampling (temperature 1, no filtering) of `new_tokens`
/// tokens (at most the context less one) with the freshly initialised model
/// of causal configuration `c`; the median of `repeats` runs. With `save`,
/// first writes the model there as a folder that `transformers` opens, so
/// that `tools/bench_generate_torch.py` can time the same weights.
pub fn generate(
    c: &BenchConfig,
    new_tokens: usize,
    repeats: usize,
    threads: usize,
    save: Option<&std::path::Path>,
) -> Result<GenerateReport> {
    use crate::decode::causal::{generate, SampleOptions};
    if !c.model.is_causal() {
        return Err(Error::config("config", format!("{} is not a language model; generation needs one", c.name)));
    }
    let t = trainer(c, 1)?;
    if let Some(dir) = save {
        if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::Checkpoint {
                path: dir.to_path_buf(),
                msg: "exists and is not empty (nothing was overwritten)".into(),
            });
        }
        // A shiftlm checkpoint (with manifest) that transformers also opens.
        let files = crate::checkpoint::model_files(&t.cfg, &t.store, &t.tokenizer)?;
        crate::checkpoint::write_checkpoint(dir, 0, &files)?;
    }
    let n = new_tokens.clamp(1, c.seq_len.saturating_sub(1).max(1));
    let o = SampleOptions { max_new_tokens: n, temperature: 1.0, top_k: 0, top_p: 1.0, ..Default::default() };
    let mut times = Vec::new();
    for r in 0..repeats.max(1) + 1 {
        let t0 = Instant::now();
        let out =
            generate(&t.model, &[0], &SampleOptions { seed: r as u64, ..o.clone() }, t.store.device(), |_| Ok(false))?;
        if r > 0 {
            // the first run warms up
            times.push(t0.elapsed().as_secs_f64() / out.len().max(1) as f64);
        }
    }
    times.sort_by(f64::total_cmp);
    let s = times[times.len() / 2];
    Ok(GenerateReport { config: c.name.into(), threads, new_tokens: n, ms_per_token: 1e3 * s, tokens_per_s: 1.0 / s })
}
