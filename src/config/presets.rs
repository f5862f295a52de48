//! The presets: named starting points for a run, one row of [`PRESETS`]
//! each, with what it trains and a function that builds its model, training
//! and data configs. `shiftlm train --preset NAME` starts from one; the
//! flags, a TOML file and `--set` change it from there.

use super::{DataConfig, NonFinitePolicy, TokenizerKind, TrainConfig};
use crate::data::images::{ImageDataConfig, ImageSource};
use crate::data::series::SeriesConfig;
use crate::data::tasks::{TaskKind, TaskSpec};
use crate::data::text::TextConfig;
use crate::model::seq2seq::AttentionKind;
use crate::model::{
    ForecasterConfig, Gpt2Config, ImageConfig, ImageKind, LlamaConfig, ModelConfig, Seq2SeqConfig, TransformerConfig,
};
use crate::nn::rnn::CellKind;
use crate::optim::{OptimizerConfig, OptimizerKind, Schedule, ScheduleKind};

/// What a preset sets: the model, how to train it, the data, and the
/// longest target (for decoding limits; 0 where it does not apply).
pub type Parts = (ModelConfig, TrainConfig, DataConfig, usize);

/// One preset.
pub struct Preset {
    /// The name `--preset` takes, e.g. `small`.
    pub name: &'static str,
    /// Builds the preset's model, training and data configs.
    pub build: fn() -> Parts,
}

/// Every preset, the default first.
pub const PRESETS: &[Preset] = &[
    // rotate-by-1 over 20 symbols, lengths 4–12; a 1-layer LSTM of 128 with Luong attention (≥ 95% exact match in about a minute on two cores)
    Preset { name: "small", build: small },
    // the Keras teacher-forcing reference: vocabulary 1000, length 10, Embedding 256 → LSTM 128, no attention, Adam 1e-3, batch 64
    Preset { name: "seed", build: seed },
    // a seconds-long LSTM run for tests and smoke checks
    Preset { name: "tiny", build: tiny },
    // a 2+2-layer Transformer encoder–decoder of 128 on rotate
    Preset { name: "transformer", build: transformer },
    // a 1+1-layer Transformer of 32, seconds long
    Preset { name: "transformer-tiny", build: transformer_tiny },
    // translation (Multi30k-sized): a 3+3-layer Transformer of 256, label smoothing, inverse-sqrt warmup
    Preset { name: "transformer-mt", build: transformer_mt },
    // its recurrent baseline: a 2-layer LSTM of 512 with attention, trained the same way
    Preset { name: "lstm-mt", build: lstm_mt },
    // nanoGPT's CPU baby GPT: 4 layers, 4 heads, 128 wide, context 64
    Preset { name: "gpt-baby", build: gpt_baby },
    // a 6-layer GPT of 384 with context 256
    Preset { name: "gpt-small", build: gpt_small },
    // a 2-layer GPT of 32 for tests
    Preset { name: "gpt-tiny", build: gpt_tiny },
    // the baby GPT's size in the Llama layout
    Preset { name: "llama-baby", build: llama_baby },
    // a 2-layer Llama of 32 for tests
    Preset { name: "llama-tiny", build: llama_tiny },
    // an LSTM forecaster reading a week of hourly values and forecasting a day, on the built-in series
    Preset { name: "series", build: series },
    // a small forecaster of the built-in series, seconds long
    Preset { name: "series-tiny", build: series_tiny },
    // a CNN (two 3×3 conv blocks of 32 and 64, a hidden layer of 128) on the embedded 8×8 digits
    Preset { name: "cnn", build: cnn },
    // the rows of each image as a sequence through an LSTM of 128, on the embedded digits
    Preset { name: "row-lstm", build: row_lstm },
    // a seconds-long CNN run for tests
    Preset { name: "cnn-tiny", build: cnn_tiny },
    // strips of 1-5 embedded digits, shifted by up to 3 pixels: two conv blocks (pooled once), an LSTM of 128 over the columns, Luong attention, a decoder that emits the digits
    Preset { name: "digit-strings", build: digit_strings },
    // a seconds-long digit-strings run for tests
    Preset { name: "digit-strings-tiny", build: digit_strings_tiny },
    // spoken digits (the espeak-ng corpus), moved up to ±400 ms, sped, noised and masked: two conv blocks over the log-mels, an LSTM of 128 over time, averaged, a class head
    Preset { name: "spoken-digits", build: spoken_digits },
    // a seconds-long spoken-digits run for tests
    Preset { name: "spoken-digits-tiny", build: spoken_digits_tiny },
    // spoken strings of 1-7 digits, augmented as spoken-digits: two pooled conv blocks, an LSTM of 128 over 40 ms steps, Luong attention, a decoder that emits the digits
    Preset { name: "spoken-strings", build: spoken_strings },
    // a seconds-long spoken-strings run for tests
    Preset { name: "spoken-strings-tiny", build: spoken_strings_tiny },
];

/// The rotate task: `vocab` symbols, lengths `min_len..=max_len`.
fn rotate(vocab: usize, min_len: usize, max_len: usize, n_train: usize, n_valid: usize) -> TaskSpec {
    TaskSpec { kind: TaskKind::Rotate, vocab, min_len, max_len, shift: 1, n_train, n_valid }
}

/// Adam at `lr`, a constant rate, clipping at 1.
fn train(steps: usize, batch_size: usize, lr: f64, eval_every: usize) -> TrainConfig {
    TrainConfig {
        steps,
        batch_size,
        grad_accum: 1,
        seed: 1337,
        optimizer: OptimizerConfig { lr, ..Default::default() },
        schedule: Schedule::default(),
        grad_clip: 1.0,
        eval_every,
        eval_batches: 200,
        save_every: 500,
        keep_last: 3,
        patience: 0,
        on_nonfinite: NonFinitePolicy::Stop,
        label_smoothing: 0.0,
        select_by: None,
        eval_every_epochs: 0.0,
        batch_tokens: 0,
        scheduled_sampling: 0.0,
        freeze: Default::default(),
        precision: Default::default(),
    }
}

/// Cosine decay to a tenth over the whole run, after `warmup_steps`.
fn cosine(steps: usize, warmup_steps: usize) -> Schedule {
    Schedule { kind: ScheduleKind::Cosine, warmup_steps, min_lr_ratio: 0.1, decay_steps: steps }
}

fn lstm(c: Seq2SeqConfig) -> ModelConfig {
    ModelConfig::Seq2seq(Seq2SeqConfig { cell: CellKind::Lstm, ..c })
}

fn small() -> Parts {
    let model = lstm(Seq2SeqConfig { emb_dim: 64, hidden: 128, attention: AttentionKind::Dot, ..Default::default() });
    (model, train(1500, 64, 3e-3, 250), DataConfig::Task(rotate(20, 4, 12, 20_000, 500)), 12)
}

fn seed() -> Parts {
    (
        lstm(Seq2SeqConfig::default()),
        train(3000, 64, 1e-3, 500),
        DataConfig::Task(rotate(1000, 10, 10, 50_000, 1000)),
        10,
    )
}

fn tiny() -> Parts {
    let model = lstm(Seq2SeqConfig { emb_dim: 16, hidden: 32, attention: AttentionKind::Dot, ..Default::default() });
    (model, train(150, 64, 1e-2, 0), DataConfig::Task(rotate(8, 2, 5, 2000, 100)), 5)
}

/// A Transformer encoder–decoder of width `c` with `layers` each side,
/// AdamW with cosine decay.
fn transformer_of(
    c: usize,
    n_head: usize,
    layers: usize,
    steps: usize,
    lr: f64,
    eval_every: usize,
    data: TaskSpec,
) -> Parts {
    let model = ModelConfig::Transformer(TransformerConfig {
        vocab_size: 1004,
        d_model: c,
        n_head,
        n_encoder_layer: layers,
        n_decoder_layer: layers,
        d_ff: 4 * c,
        max_positions: 64,
        dropout: 0.0,
        share_embeddings: true,
        input: None,
    });
    let mut t = train(steps, 64, lr, eval_every);
    t.optimizer.kind = OptimizerKind::Adamw;
    t.schedule = cosine(steps, steps / 10);
    let max = data.max_len;
    (model, t, DataConfig::Task(data), max)
}

fn transformer() -> Parts {
    transformer_of(128, 4, 2, 1500, 1e-3, 250, rotate(20, 4, 12, 20_000, 500))
}

/// Translation as the Transformer paper trains it, scaled to a 29k-pair
/// corpus and a CPU: 3 + 3 pre-LN layers of 256 (4 heads, feed-forward
/// 1024, dropout 0.1, one embedding for source, target and head), AdamW
/// (β₂ 0.98) at 1e-3 after 1000 warmup steps then ∝ 1/√step, label smoothing
/// 0.1, batches of 64 pairs, an evaluation and checkpoint every 500 steps
/// (the last 5 kept, for `shiftlm average`). Give it pairs with `--source
/// --target` (or `--data`) and a subword tokenizer (`--tokenizer unigram
/// --bpe-vocab 8000`); the vocabulary size is the tokenizer's.
pub(crate) fn transformer_mt() -> Parts {
    let steps = 12_000;
    let model = ModelConfig::Transformer(TransformerConfig {
        vocab_size: 8000,
        d_model: 256,
        n_head: 4,
        n_encoder_layer: 3,
        n_decoder_layer: 3,
        d_ff: 1024,
        max_positions: 256,
        dropout: 0.1,
        share_embeddings: true,
        input: None,
    });
    let mut t = train(steps, 64, 1e-3, 500);
    t.optimizer = OptimizerConfig {
        kind: OptimizerKind::Adamw,
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.98,
        eps: 1e-9,
        weight_decay: 0.01,
    };
    t.schedule =
        Schedule { kind: ScheduleKind::InverseSqrt, warmup_steps: 1000, min_lr_ratio: 0.0, decay_steps: steps };
    t.label_smoothing = 0.1;
    t.keep_last = 5;
    t.eval_batches = 0;
    (model, t, DataConfig::Task(rotate(20, 4, 12, 20_000, 500)), 12)
}

/// The recurrent baseline for translation, trained as [`transformer_mt`]
/// is (the same optimizer, schedule, label smoothing, batches and
/// checkpoints) so that the two compare: a 2-layer LSTM of 512 with Luong
/// attention over the encoder's outputs, embeddings of 256, dropout 0.3
/// between layers.
pub(crate) fn lstm_mt() -> Parts {
    let (_, t, data, max) = transformer_mt();
    let model = lstm(Seq2SeqConfig {
        vocab_size: 8000,
        emb_dim: 256,
        hidden: 512,
        n_layer: 2,
        attention: AttentionKind::Dot,
        dropout: 0.3,
        ..Default::default()
    });
    (model, t, data, max)
}

fn transformer_tiny() -> Parts {
    transformer_of(32, 2, 1, 200, 3e-3, 0, rotate(8, 2, 5, 2000, 100))
}

/// A causal language model: nanoGPT's recipe (AdamW β₂ 0.99, weight decay
/// 0.1, ≤ 100 warmup steps, cosine decay to lr/10 at the last step) on
/// character-level text. The vocabulary size is replaced by the tokenizer's.
fn causal(model: ModelConfig, steps: usize, batch: usize) -> Parts {
    let mut t = train(steps, batch, 1e-3, (steps / 8).max(1));
    t.optimizer =
        OptimizerConfig { kind: OptimizerKind::Adamw, lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weight_decay: 0.1 };
    t.schedule = cosine(steps, (steps / 20).min(100));
    t.save_every = (steps / 4).max(1);
    let data = DataConfig::Text(TextConfig {
        paths: Vec::new(),
        tokenizer: TokenizerKind::Char,
        bpe_vocab_size: 4096,
        tokenizer_file: None,
        valid_fraction: 0.1,
        eot_id: None,
    });
    (model, t, data, 0)
}

fn gpt(layers: usize, heads: usize, width: usize, ctx: usize) -> ModelConfig {
    ModelConfig::Gpt2(Gpt2Config::nano(260, layers, heads, width, ctx))
}

/// nanoGPT's CPU "baby GPT" (config/train_shakespeare_char.py with
/// --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
/// --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0).
fn gpt_baby() -> Parts {
    causal(gpt(4, 4, 128, 64), 2000, 12)
}

fn gpt_small() -> Parts {
    causal(gpt(6, 6, 384, 256), 5000, 16)
}

fn gpt_tiny() -> Parts {
    causal(gpt(2, 2, 32, 16), 100, 8)
}

/// Llama at the given size: SwiGLU of ≈ 8/3 the width, `kv_heads` key/value
/// heads (`heads` for every head its own; fewer for grouped-query attention),
/// tied embeddings. The vocabulary is a placeholder, replaced by the
/// tokenizer's size (or the caller's).
pub(crate) fn llama_of(layers: usize, heads: usize, kv_heads: usize, width: usize, ctx: usize) -> ModelConfig {
    ModelConfig::Llama(LlamaConfig {
        vocab_size: 260, // replaced by the tokenizer's size
        hidden_size: width,
        intermediate_size: (8 * width / 3).div_ceil(8) * 8,
        num_hidden_layers: layers,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        max_position_embeddings: ctx,
        rms_norm_eps: 1e-5,
        rope_theta: 10000.0,
        tie_word_embeddings: true,
        dropout: 0.0,
        bos_token_id: crate::data::tokenizer::BOS,
        eos_token_id: crate::data::tokenizer::EOS,
        lora: None,
    })
}

fn llama_baby() -> Parts {
    causal(llama_of(4, 4, 4, 128, 64), 2000, 12)
}

fn llama_tiny() -> Parts {
    causal(llama_of(2, 2, 2, 32, 16), 100, 8)
}

/// Forecasting the built-in series: an LSTM encoder–decoder reading
/// `context` hourly values and forecasting `horizon`, cosine decay, the
/// best validation checkpoint evaluated.
fn forecaster(hidden: usize, context: usize, horizon: usize, steps: usize, eval_every: usize, weeks: usize) -> Parts {
    let model = ModelConfig::Forecaster(ForecasterConfig { hidden, context, horizon, ..Default::default() });
    let mut t = train(steps, 32, 3e-3, eval_every);
    t.schedule = cosine(steps, steps / 20);
    t.eval_batches = 20; // validation windows beyond 20 batches are evenly sampled
                         // Forecasters overfit small series: the test is scored with the
                         // checkpoint of the lowest validation loss, not the last.
    t.select_by = Some(super::train::SelectBy::Loss);
    // Short series overfit within a few epochs: validate every 5 epochs of windows.
    t.eval_every_epochs = 5.0;
    let data = SeriesConfig { synthetic_len: 24 * 7 * weeks, ..Default::default() };
    (model, t, DataConfig::Series(data), 0)
}

fn series() -> Parts {
    forecaster(64, 168, 24, 1200, 200, 24)
}

/// An image classifier of `kind` on the embedded digits, Adam with cosine
/// decay. The sizes are the digits'; the data sets them for other images.
fn image(kind: ImageKind, steps: usize, eval_every: usize) -> Parts {
    let model = ModelConfig::Image(ImageConfig::new(kind, 8, 8, 10));
    let mut t = train(steps, 64, 2e-3, eval_every);
    t.schedule = cosine(steps, steps / 20);
    let data = ImageDataConfig {
        source: ImageSource::Digits,
        augment: Default::default(),
        valid_fraction: 0.1,
        strings: None,
    };
    (model, t, DataConfig::Images(data), 0)
}

fn cnn() -> Parts {
    image(ImageKind::Cnn, 600, 100)
}

fn row_lstm() -> Parts {
    image(ImageKind::RowLstm, 600, 100)
}

fn cnn_tiny() -> Parts {
    let (mut model, t, data, n) = image(ImageKind::Cnn, 30, 0);
    if let ModelConfig::Image(m) = &mut model {
        m.channels = vec![8];
        m.hidden = 16;
    }
    (model, t, data, n)
}

/// Digit strips read by an encoder–decoder: two 3×3 convolution blocks over
/// the strip (2×2 max pooling after the first), each of the W/2 columns'
/// features (32 channels × half its height; the data sets the height)
/// projected to 128, an LSTM over the columns, and an attention decoder
/// trained with the shift; the strips shifted by up to ±3 pixels.
fn digit_strings() -> Parts {
    let (steps, strings) = (6000, crate::data::images::strips::StringsConfig::default());
    let model = ModelConfig::Seq2seq(Seq2SeqConfig {
        vocab_size: 14,
        emb_dim: 32,
        hidden: 128,
        attention: AttentionKind::Dot,
        input: Some(crate::model::FrontendConfig::Columns {
            height: 14,
            channels: vec![32, 32],
            proj: 128,
            pool: true,
            pool_blocks: 1,
        }),
        ..Default::default()
    });
    let mut t = train(steps, 64, 2e-3, 250);
    t.schedule = cosine(steps, steps / 20);
    // ±3-pixel shifts by default: they also help on unshifted strips (95.7%
    // exact against 92-93% without, BENCHMARKS.md).
    let augment = crate::data::augment::Augment { shift: 3, ..Default::default() };
    let data =
        ImageDataConfig { source: ImageSource::Digits, augment, valid_fraction: 0.1, strings: Some(strings.clone()) };
    (model, t, DataConfig::Images(data), strings.max_len)
}

fn digit_strings_tiny() -> Parts {
    let (mut model, mut t, mut data, n) = digit_strings();
    if let ModelConfig::Seq2seq(m) = &mut model {
        (m.emb_dim, m.hidden) = (8, 16);
        m.input = Some(crate::model::FrontendConfig::Columns {
            height: 14,
            channels: vec![4],
            proj: 8,
            pool: true,
            pool_blocks: 1,
        });
    }
    t.steps = 20;
    t.eval_every = 0;
    t.schedule = cosine(20, 1);
    if let DataConfig::Images(d) = &mut data {
        d.augment = Default::default();
        d.strings = Some(crate::data::images::strips::StringsConfig { max_len: 3, train: 200, valid: 20, test: 30 });
    }
    (model, t, data, n.min(3))
}

/// Spoken clips from the built-in corpus (`strings`: transcripts), moved by
/// up to ±400 ms in training, on a canvas with 400 ms of room either side,
/// sped up or slowed down by up to 15% and masked (100 ms, 8 bands); keyword
/// clips are also noised at 20 dB SNR. For keywords the shift alone keeps
/// held-out espeak-ng voices at 100% but flite's at 43.5%, and all four lift
/// flite to about 80%; transcripts with the noise too missed the 5% CER
/// target in 3000 steps (BENCHMARKS.md).
fn speech_data(strings: bool) -> DataConfig {
    use crate::data::audio::speech::{default_corpus_dir, SpeechDataConfig, SpeechSource};
    DataConfig::Speech(SpeechDataConfig {
        source: SpeechSource::Corpus(default_corpus_dir()),
        strings,
        features: Default::default(),
        augment: crate::data::audio::augment::SpeechAugment {
            shift_ms: 400,
            mode: Default::default(),
            snr_db: (!strings).then_some(20.0),
            speed: 0.15,
            time_mask_ms: 100,
            freq_mask: 8,
        },
        valid_fraction: 0.1,
        pad_ms: 400,
        canvas_ms: None,
    })
}

/// Keywords: a conv-LSTM over (40 mel bands × frames), both sides halved by
/// each of two blocks, the LSTM's outputs averaged over time.
fn spoken_digits() -> Parts {
    let model = ModelConfig::Image(ImageConfig::new(ImageKind::ConvLstm, 4, 40, 10));
    let steps = 3000;
    let mut t = train(steps, 64, 2e-3, 250);
    t.schedule = cosine(steps, steps / 20);
    (model, t, speech_data(false), 0)
}

fn spoken_digits_tiny() -> Parts {
    let (mut model, mut t, data, n) = spoken_digits();
    if let ModelConfig::Image(m) = &mut model {
        m.channels = vec![4];
        m.hidden = 8;
    }
    (t.steps, t.eval_every, t.schedule) = (20, 0, cosine(20, 1));
    (model, t, data, n)
}

/// Transcripts: the digit-strings reader over log-mel columns, both conv
/// blocks pooled (40 ms per encoder step).
fn spoken_strings() -> Parts {
    let model = ModelConfig::Seq2seq(Seq2SeqConfig {
        vocab_size: 14,
        emb_dim: 32,
        hidden: 128,
        attention: AttentionKind::Dot,
        input: Some(crate::model::FrontendConfig::Columns {
            height: 40,
            channels: vec![32, 32],
            proj: 128,
            pool: true,
            pool_blocks: 2,
        }),
        ..Default::default()
    });
    let steps = 3000;
    let mut t = train(steps, 32, 2e-3, 250);
    t.schedule = cosine(steps, steps / 20);
    (model, t, speech_data(true), 7)
}

fn spoken_strings_tiny() -> Parts {
    let (mut model, mut t, data, n) = spoken_strings();
    if let ModelConfig::Seq2seq(m) = &mut model {
        (m.emb_dim, m.hidden) = (8, 16);
        m.input = Some(crate::model::FrontendConfig::Columns {
            height: 40,
            channels: vec![4],
            proj: 8,
            pool: true,
            pool_blocks: 1,
        });
    }
    (t.steps, t.eval_every, t.schedule) = (20, 0, cosine(20, 1));
    (model, t, data, n)
}

fn series_tiny() -> Parts {
    forecaster(16, 48, 12, 100, 0, 4)
}
