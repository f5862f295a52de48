//! `shiftlm train`

use super::progress::Progress;
use super::{report, DataArgs};
use anyhow::Context;
use shiftlm::api::{self, Evaluation, TrainJob};
use shiftlm::dist::{Comm, Reduce};
use shiftlm::model::seq2seq::AttentionKind;
use shiftlm::model::ModelConfig;
use shiftlm::nn::rnn::CellKind;
use shiftlm::train::MetricsSink;
use std::path::PathBuf;
use std::rc::Rc;

pub const LONG_ABOUT: &str = "Train an encoder–decoder, checkpoint it, evaluate it and show decoded examples.

With no arguments it trains the `small` preset on the built-in `rotate` task
(rotate a sequence of symbols left by one) and should reach >= 95% exact match
in about a minute on two cores.

The decoder is trained with teacher forcing: it reads [BOS] + target and is
scored on target + [EOS]; padding is never counted.

Configuration, lowest to highest priority: the preset (--preset), a TOML file
(--config, any subset of the keys in a checkpoint's config.json; unknown keys
are an error), --set KEY=VALUE overrides, then the flags below.

The run folder (--out, default runs/<preset>-<task>) receives
checkpoint-<step>/ folders (every --save-every steps, at each new best
validation loss, and at the end; the newest --keep-last and the best are kept),
metrics.jsonl and TensorBoard scalars in tb/. `--resume RUN` continues a run
from its newest complete checkpoint, bit for bit as if never interrupted.

Examples:
  shiftlm train
  shiftlm train --task reverse --steps 3000
  shiftlm train --preset seed --task rotate --json
  shiftlm train --data pairs.tsv --tokenizer char --attention dot --out runs/mine
  shiftlm train --model transformer --task reverse             # Transformer encoder–decoder
  shiftlm train --preset transformer-mt --source train.en --target train.de --tokenizer unigram
  shiftlm train --model transformer --data pairs.tsv --label-smoothing 0.1 --select-by bleu
  shiftlm train --model gpt --data input.txt                  # sizes picked for the data
  shiftlm train --model llama --data input.txt --preset llama-baby --tokenizer bpe
  shiftlm train --config run.toml --set train.optimizer.lr=0.003 --set train.grad_accum=4
  shiftlm train --resume runs/small-rotate
  shiftlm train --model gpt --data input.txt --profile prof    # where a step's time goes
  shiftlm train --model cnn --task digits --augment shift=2     # image recognition, shift-augmented
  shiftlm train --model row-lstm --task fashion-mnist --steps 3000
  shiftlm train --task digit-strings                            # read strips of 1-5 digits (image → text)
  shiftlm train --task spoken-digits                            # spoken keywords (espeak-ng corpus), ±400 ms shifts
  shiftlm train --task spoken-digits --model mlp --augment none # the position-bound baseline, unaugmented
  shiftlm train --task spoken-strings                           # transcribe spoken strings of 1-7 digits
  shiftlm train --task series                                   # forecast the built-in hourly series
  shiftlm train --data data/sunspots_yearly.csv --target sunspots --context 40 --horizon 10 --model dlinear
  shiftlm train --data data/nile_yearly.csv --target flow --context 20 --horizon 5 --model nbeats --revin
  shiftlm train --data data/nile_yearly.csv --target flow --context 20 --horizon 5 --model auto
  shiftlm train --data sales.csv --target units --timestamp date --quantiles 0.1,0.5,0.9 --revin";

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// TOML file of config overrides (e.g. `[train]\nsteps = 3000`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config key, e.g. --set train.optimizer.lr=0.003 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Continue the run in RUN from its newest complete checkpoint.
    #[arg(long, value_name = "RUN", conflicts_with_all = ["config", "sets", "out"])]
    pub resume: Option<PathBuf>,
    /// Optimizer steps (default: the preset's). With --resume, extends the run.
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Examples per micro-batch (default 64).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long, value_name = "N")]
    pub grad_accum: Option<usize>,
    /// Learning rate (default: the preset's).
    #[arg(long, value_name = "LR")]
    pub lr: Option<f64>,
    /// Recurrent cell: lstm or gru.
    #[arg(long, value_parser = ["lstm", "gru"])]
    pub cell: Option<String>,
    /// Attention over the encoder: none or dot (Luong).
    #[arg(long, value_parser = ["none", "dot"])]
    pub attention: Option<String>,
    /// Layers (RNN layers, or Transformer blocks).
    #[arg(long, value_name = "N")]
    pub layers: Option<usize>,
    /// Width (RNN hidden size, or Transformer model width).
    #[arg(long, value_name = "N")]
    pub hidden: Option<usize>,
    /// Embedding width (encoder–decoder).
    #[arg(long, value_name = "N")]
    pub emb: Option<usize>,
    /// Attention heads (GPT, Llama).
    #[arg(long, value_name = "N")]
    pub heads: Option<usize>,
    /// Context length in tokens (GPT, Llama), or past steps a forecaster reads.
    #[arg(long, value_name = "N")]
    pub context: Option<usize>,
    /// Forecasting: future steps to predict (default 24).
    #[arg(long, value_name = "N", help_heading = "Forecasting")]
    pub horizon: Option<usize>,
    /// Forecasting: training loss on scaled values: mse (default), mae or huber.
    #[arg(long, value_name = "LOSS", value_parser = ["mse", "mae", "huber"], help_heading = "Forecasting")]
    pub loss: Option<String>,
    /// Forecasting: Huber's δ, on scaled values (default 1.0).
    #[arg(long, value_name = "D", help_heading = "Forecasting")]
    pub huber_delta: Option<f32>,
    /// Forecasting: reversible instance normalisation (RevIN): each window is
    /// standardised by its own mean and spread before the model reads it, and
    /// the forecast mapped back. Helps where the series' level or spread
    /// drifts beyond the training range.
    #[arg(long, help_heading = "Forecasting")]
    pub revin: bool,
    /// Forecasting: quantile levels to forecast, e.g. 0.1,0.5,0.9 (ascending, with 0.5,
    /// the point forecast). The head predicts each level, trained with the pinball loss
    /// (instead of --loss); eval reports each central interval's coverage and the
    /// weighted quantile loss, and forecast writes the bounds.
    #[arg(long, value_name = "Q,Q,…", value_delimiter = ',', help_heading = "Forecasting")]
    pub quantiles: Option<Vec<f32>>,
    /// Forecasting: train N models alike from seeds SEED, SEED+1, … (into
    /// RUN/member-1/, …) and forecast the median of their forecasts, quantile by
    /// quantile. Steadier than one seed on short series. `eval` and `forecast`
    /// read the run folder as one model (RUN/ensemble.json lists the members).
    /// With --model auto, every neural candidate is such an ensemble.
    #[arg(long, value_name = "N", conflicts_with = "resume", help_heading = "Forecasting")]
    pub ensemble: Option<usize>,
    /// Forecasting, --model auto: rolling-origin folds (default 3). Fold k moves the
    /// validation block k blocks back in time and trains every neural kind again on the
    /// rows before it (into RUN/folds/). Each earlier fold's models (stopped on its
    /// validation block) and classical fits are scored on the block after it; the choice
    /// is the lowest mean MASE there, and the intervals are measured on its errors there.
    /// 1: the run's own validation windows only (the fastest; they also chose the neural
    /// checkpoints, which favours the neural kinds).
    #[arg(long, value_name = "K", conflicts_with = "resume", help_heading = "Forecasting")]
    pub folds: Option<usize>,
    /// Scheduled sampling: probability that a decoder input is the model's own previous
    /// prediction instead of the reference in training (default 0). Encoder–decoders: two
    /// passes, the first teacher forced without gradient. Forecasters: an RNN decoder step
    /// reads its own previous forecast.
    #[arg(long, value_name = "P")]
    pub scheduled_sampling: Option<f32>,
    /// Dropout probability in [0, 1).
    #[arg(long, value_name = "P")]
    pub dropout: Option<f32>,
    /// RNN encoder–decoder: variational dropout (Gal & Ghahramani 2016) in [0, 1): one mask
    /// per sequence, kept at every step, on each LSTM/GRU layer's input and recurrent state
    /// and on the stack's output.
    #[arg(long, value_name = "P")]
    pub variational_dropout: Option<f32>,
    /// Images: perturb each training image, shift=K[,rotate=DEG][,mode=zero|wrap]: a random
    /// translation in [-K, K]² (zero fill, or wrap) and a rotation in [-DEG, DEG] (bilinear).
    /// Speech: shift_ms=S[,mode=zero|wrap][,snr=DB][,speed=F][,time_mask=MS][,freq_mask=BANDS]:
    /// a random offset in ±S ms, white noise at DB dB SNR, speed ×[1-F, 1+F], SpecAugment masks
    /// (spoken-digits uses shift_ms=400,speed=0.15,snr=20,time_mask=100,freq_mask=8,
    /// spoken-strings the same without snr; `none` turns it off).
    /// Seeded, and resumed exactly. `shiftlm data preview --augment` shows it.
    #[arg(long, value_name = "SPEC", help_heading = "Images and speech")]
    pub augment: Option<String>,
    /// Evaluate on the validation split every N steps (and at the end).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Write a checkpoint every N steps (default 500; also at the end and at each new best).
    #[arg(long, value_name = "N")]
    pub save_every: Option<usize>,
    /// Checkpoints to keep besides the best (default 3).
    #[arg(long, value_name = "N")]
    pub keep_last: Option<usize>,
    /// Stop after N evaluations without improvement (default 0: never).
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Label smoothing ε in [0, 1) for models that predict tokens: train against 1 − ε on
    /// the label and ε spread over the vocabulary (0.1 in the Transformer paper; default 0).
    /// Validation loss stays the plain cross-entropy.
    #[arg(long, value_name = "E")]
    pub label_smoothing: Option<f32>,
    /// Matrix products in f32 (the default) or bf16: operands rounded to bf16 and multiplied
    /// with f32 accumulation, while weights, activations, gradients and optimizer state stay
    /// f32 (mixed precision; an LSTM's or GRU's recurrent product stays f32). Needs a CPU with
    /// AVX512_BF16 (AMD Zen 4/5, Intel Sapphire Rapids); refused elsewhere. A resumed run
    /// keeps its precision.
    #[arg(long, value_name = "P", value_parser = ["f32", "bf16"])]
    pub precision: Option<String>,
    /// What picks the best checkpoint: loss (validation loss) or bleu (greedy decoding of the
    /// validation pairs, scored at every evaluation; encoder–decoders). When given, training
    /// ends by evaluating that checkpoint, not the final weights, and says which it was.
    #[arg(long, value_name = "METRIC", value_parser = ["loss", "bleu"])]
    pub select_by: Option<String>,
    /// Encoder–decoders: batches of at most N padded tokens (pairs × the longest side)
    /// instead of --batch-size pairs, sentences bucketed by length, as translators batch.
    #[arg(long, value_name = "N")]
    pub batch_tokens: Option<usize>,
    /// Learning-rate schedule after warmup: constant, cosine (decay to a tenth at the last
    /// step), linear, or inverse-sqrt (the Transformer paper's: peak at the end of warmup,
    /// then ∝ 1/√step).
    #[arg(long, value_name = "KIND", value_parser = ["constant", "cosine", "linear", "inverse-sqrt"])]
    pub schedule: Option<String>,
    /// Steps of linear learning-rate warmup from 0.
    #[arg(long, value_name = "N")]
    pub warmup: Option<usize>,
    /// Run folder (must not hold checkpoints already).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Decoded examples to show after training.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub show: usize,
    /// End with one JSON line of final metrics on standard output.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub profiling: super::profiling::ProfileArgs,
    #[command(flatten)]
    pub dist: super::distributed::DistArgs,
}

/// The config the flags describe: a preset (or one sized for the data)
/// with the data choices, a TOML file, `--set` overrides and the flags applied.
fn job(a: &TrainArgs) -> anyhow::Result<TrainJob> {
    let mut cfg = a.data.resolve()?.with_overrides(a.config.as_deref(), &a.sets)?;
    a.data.check_bpe_vocab(&cfg)?;
    if let Some(spec) = &a.augment {
        match &mut cfg.data {
            shiftlm::config::DataConfig::Images(d) => d.augment = shiftlm::data::augment::Augment::parse(spec)?,
            shiftlm::config::DataConfig::Speech(d) => {
                d.augment = shiftlm::data::audio::augment::SpeechAugment::parse(spec)?
            }
            _ => anyhow::bail!(
                "--augment perturbs images or speech: use --task digits, fashion-mnist, digit-strings, spoken-digits, spoken-strings or --data DIR"
            ),
        }
    }
    apply_model_flags(&mut cfg.model, a)?;
    let forecaster = cfg.model.is_forecaster();
    let t = &mut cfg.train;
    if let Some(steps) = a.steps {
        // A schedule that ended with the preset's run ends with this one.
        if t.schedule.decay_steps == t.steps {
            t.schedule.decay_steps = steps;
        }
        t.schedule.warmup_steps = t.schedule.warmup_steps.min(steps);
        t.save_every = t.save_every.min(steps);
        t.steps = steps;
    }
    t.batch_size = a.batch_size.unwrap_or(t.batch_size);
    t.grad_accum = a.grad_accum.unwrap_or(t.grad_accum);
    t.optimizer.lr = a.lr.unwrap_or(t.optimizer.lr);
    if let Some(n) = a.eval_every {
        // Exactly as given: not scaled to the data.
        (t.eval_every, t.eval_every_epochs) = (n, 0.0);
    }
    t.save_every = a.save_every.unwrap_or(t.save_every);
    t.keep_last = a.keep_last.unwrap_or(t.keep_last);
    t.patience = a.patience.unwrap_or(t.patience);
    t.label_smoothing = a.label_smoothing.unwrap_or(t.label_smoothing);
    if let Some(p) = a.precision.as_deref() {
        t.precision = p.parse()?;
        // Refused here, before any data is read, where the CPU cannot.
        shiftlm::ops::cpu::set_precision(t.precision)?;
    }
    t.batch_tokens = a.batch_tokens.unwrap_or(t.batch_tokens);
    if !forecaster {
        // A forecaster's lives in its model config (set with the model flags).
        t.scheduled_sampling = a.scheduled_sampling.unwrap_or(t.scheduled_sampling);
    }
    if let Some(m) = a.select_by.as_deref() {
        use shiftlm::config::train::SelectBy;
        t.select_by = Some(if m == "bleu" { SelectBy::Bleu } else { SelectBy::Loss });
    }
    if let Some(k) = a.schedule.as_deref() {
        use shiftlm::optim::ScheduleKind;
        t.schedule.kind = match k {
            "constant" => ScheduleKind::Constant,
            "linear" => ScheduleKind::Linear,
            "inverse-sqrt" => ScheduleKind::InverseSqrt,
            _ => ScheduleKind::Cosine,
        };
    }
    t.schedule.warmup_steps = a.warmup.unwrap_or(t.schedule.warmup_steps);
    let out = a.out.clone().unwrap_or_else(|| api::train::fresh_dir(&api::train::run_name(&cfg)));
    Ok(TrainJob { config: cfg, out, show: a.show })
}

/// Applies --layers, --hidden, --emb, --heads, --context, --cell,
/// --attention and --dropout to whichever family the config holds.
fn apply_model_flags(model: &mut ModelConfig, a: &TrainArgs) -> anyhow::Result<()> {
    let forecast_only = a.horizon.is_some() || a.loss.is_some() || a.huber_delta.is_some() || a.revin;
    if !model.is_forecaster() && (forecast_only || a.quantiles.is_some()) {
        return Err(only("--horizon/--loss/--huber-delta/--revin/--quantiles", "forecasting"));
    }
    match model {
        ModelConfig::Forecaster(m) => forecaster_flags(m, a)?,
        ModelConfig::Seq2seq(m) => rnn_flags(m, a)?,
        _ if a.cell.is_some() || a.attention.is_some() || a.emb.is_some() || a.variational_dropout.is_some() => {
            return Err(only("--cell/--attention/--emb/--variational-dropout", "RNN encoder–decoder"));
        }
        ModelConfig::Transformer(m) => {
            if a.context.is_some() {
                return Err(only("--context", "GPT and Llama"));
            }
            if let Some(l) = a.layers {
                m.n_encoder_layer = l;
                m.n_decoder_layer = l;
            }
            if let Some(h) = a.hidden {
                m.d_model = h;
                m.d_ff = 4 * h;
            }
            m.n_head = a.heads.unwrap_or(m.n_head);
            m.dropout = a.dropout.unwrap_or(m.dropout);
        }
        ModelConfig::Gpt2(m) => {
            m.n_layer = a.layers.unwrap_or(m.n_layer);
            m.n_embd = a.hidden.unwrap_or(m.n_embd);
            m.n_head = a.heads.unwrap_or(m.n_head);
            m.n_positions = a.context.unwrap_or(m.n_positions);
            m.dropout = a.dropout.unwrap_or(m.dropout);
        }
        ModelConfig::Image(m) => {
            if a.context.is_some() || a.heads.is_some() || a.layers.is_some() {
                return Err(only("--context/--heads/--layers", "GPT, Llama and Transformer"));
            }
            m.hidden = a.hidden.unwrap_or(m.hidden);
            m.dropout = a.dropout.unwrap_or(m.dropout);
        }
        ModelConfig::Llama(m) => {
            m.num_hidden_layers = a.layers.unwrap_or(m.num_hidden_layers);
            if let Some(h) = a.hidden {
                m.hidden_size = h;
                m.intermediate_size = (8 * h / 3).div_ceil(8) * 8;
            }
            if let Some(h) = a.heads {
                m.num_attention_heads = h;
                m.num_key_value_heads = h;
            }
            m.max_position_embeddings = a.context.unwrap_or(m.max_position_embeddings);
            m.dropout = a.dropout.unwrap_or(m.dropout);
        }
    }
    Ok(())
}

fn only(flag: &str, family: &str) -> anyhow::Error {
    anyhow::anyhow!("{flag} applies to {family} models only")
}

/// The RNN encoder–decoder's flags.
fn rnn_flags(m: &mut shiftlm::model::Seq2SeqConfig, a: &TrainArgs) -> anyhow::Result<()> {
    if a.heads.is_some() || a.context.is_some() {
        return Err(only("--heads/--context", "GPT and Llama"));
    }
    if let Some(c) = &a.cell {
        m.cell = if c == "gru" { CellKind::Gru } else { CellKind::Lstm };
    }
    if let Some(at) = &a.attention {
        m.attention = if at == "dot" { AttentionKind::Dot } else { AttentionKind::None };
    }
    m.n_layer = a.layers.unwrap_or(m.n_layer);
    m.hidden = a.hidden.unwrap_or(m.hidden);
    m.emb_dim = a.emb.unwrap_or(m.emb_dim);
    m.dropout = a.dropout.unwrap_or(m.dropout);
    m.variational_dropout = a.variational_dropout.unwrap_or(m.variational_dropout);
    Ok(())
}

/// A forecaster's flags: its kind, shape, horizon and loss.
fn forecaster_flags(m: &mut shiftlm::model::ForecasterConfig, a: &TrainArgs) -> anyhow::Result<()> {
    use shiftlm::model::ForecasterKind;
    use shiftlm::nn::loss::RegressionLoss;
    if a.attention.is_some() || a.emb.is_some() || a.variational_dropout.is_some() {
        return Err(only("--attention/--emb/--variational-dropout", "RNN encoder–decoder (token)"));
    }
    let linear = matches!(m.kind, ForecasterKind::NLinear | ForecasterKind::DLinear);
    if linear && (a.layers.is_some() || a.hidden.is_some() || a.heads.is_some()) {
        return Err(only("--layers/--hidden/--heads", "LSTM, GRU and Transformer forecasters'"));
    }
    if m.kind == ForecasterKind::NBeats && a.heads.is_some() {
        return Err(only("--heads", "Transformer forecasters'"));
    }
    match (a.cell.as_deref(), m.kind) {
        (
            Some(_),
            ForecasterKind::Transformer | ForecasterKind::NLinear | ForecasterKind::DLinear | ForecasterKind::NBeats,
        ) => return Err(only("--cell", "RNN")),
        (Some("gru"), _) => m.kind = ForecasterKind::Gru,
        (Some(_), _) => m.kind = ForecasterKind::Lstm,
        _ => {}
    }
    // N-BEATS: two ReLU layers per block unless told otherwise (the presets' one suits RNNs).
    let set = a.sets.iter().any(|s| s.starts_with("model.n_layer="));
    let fallback = if m.kind == ForecasterKind::NBeats && !set { m.n_layer.max(2) } else { m.n_layer };
    m.n_layer = a.layers.unwrap_or(fallback);
    if let Some(h) = a.hidden {
        m.hidden = h;
        m.d_ff = 2 * h;
    }
    m.n_head = a.heads.unwrap_or(m.n_head);
    m.context = a.context.unwrap_or(m.context);
    m.horizon = a.horizon.unwrap_or(m.horizon);
    m.dropout = a.dropout.unwrap_or(m.dropout);
    m.scheduled_sampling = a.scheduled_sampling.unwrap_or(m.scheduled_sampling);
    m.revin |= a.revin;
    if let Some(q) = &a.quantiles {
        if a.loss.is_some() || a.huber_delta.is_some() {
            anyhow::bail!("--quantiles trains with the pinball loss; drop --loss/--huber-delta");
        }
        m.quantiles = q.clone();
    }
    let delta = a.huber_delta.unwrap_or(1.0);
    if let (Some(l), Some(_)) = (a.loss.as_deref().filter(|l| *l != "huber"), a.huber_delta) {
        anyhow::bail!("--huber-delta applies to --loss huber, not {l}");
    }
    m.loss = match a.loss.as_deref() {
        Some("mae") => RegressionLoss::Mae,
        Some("huber") => RegressionLoss::Huber { delta },
        Some(_) => RegressionLoss::Mse,
        None if a.huber_delta.is_some() => RegressionLoss::Huber { delta },
        None => m.loss,
    };
    Ok(())
}

/// Refuses flags that would change a resumed run.
fn check_resume_flags(a: &TrainArgs) -> anyhow::Result<()> {
    let overrides = [
        a.batch_size.is_some(),
        a.grad_accum.is_some(),
        a.lr.is_some(),
        a.cell.is_some(),
        a.attention.is_some(),
        a.layers.is_some(),
        a.hidden.is_some(),
        a.emb.is_some(),
        a.dropout.is_some(),
        a.variational_dropout.is_some(),
        a.eval_every.is_some(),
        a.save_every.is_some(),
        a.keep_last.is_some(),
        a.patience.is_some(),
        a.label_smoothing.is_some(),
        a.precision.is_some(),
        a.select_by.is_some(),
        a.batch_tokens.is_some(),
        a.schedule.is_some(),
        a.warmup.is_some(),
        a.heads.is_some(),
        a.context.is_some(),
        !a.data.data.is_empty(),
        a.data.task.is_some(),
        a.data.seed.is_some(),
        a.data.model.is_some(),
        a.data.preset.is_some(),
        a.data.tokenizer.is_some(),
        !a.data.target.is_empty(),
        !a.data.covariate.is_empty(),
        a.data.timestamp.is_some(),
        a.data.fill.is_some(),
        a.data.scaler.is_some(),
        a.data.season.is_some(),
        a.data.stride.is_some(),
        a.horizon.is_some(),
        a.loss.is_some(),
        a.huber_delta.is_some(),
        a.revin,
        a.quantiles.is_some(),
        a.scheduled_sampling.is_some(),
        a.augment.is_some(),
    ];
    if overrides.iter().any(|&o| o) {
        anyhow::bail!(
            "--resume continues a run with its saved config; only --steps may change (drop the other options)"
        );
    }
    Ok(())
}

pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let world = super::distributed::start(&a.dist)?;
    match (train(&a, world.clone()), world) {
        // A failed rank ends the whole job: the others would wait for it forever.
        (Err(e), Some((comm, _))) if comm.size() > 1 => {
            eprintln!("error: rank {} of {}: {}", comm.rank(), comm.size(), super::report(&e));
            comm.abort(2)
        }
        (r, _) => r,
    }
}

fn train(a: &TrainArgs, world: Option<(Rc<dyn Comm>, Reduce)>) -> anyhow::Result<()> {
    a.profiling.check()?;
    let (rank, ranks) = world.as_ref().map_or((0, 1), |(c, _)| (c.rank(), c.size()));
    let lead = rank == 0;
    let several = |what: &str| {
        anyhow::ensure!(
            ranks == 1,
            "{what} trains one process at a time; run it without mpirun (or with --distributed off)"
        );
        Ok(())
    };
    let mut trainer = match &a.resume {
        Some(run) => {
            check_resume_flags(a)?;
            let t =
                if lead { api::train::prepare_resume(run, a.steps) } else { api::train::follow_resume(run, a.steps) };
            t.with_context(|| format!("resuming {}", run.display()))?
        }
        None if a.data.model.as_deref() == Some("auto") => {
            several("--model auto")?;
            return run_auto(a);
        }
        None if a.folds.is_some() => {
            anyhow::bail!("--folds applies to --model auto (rolling-origin folds to choose on)")
        }
        None if a.ensemble.is_some_and(|n| n != 1) => {
            several("--ensemble")?;
            return run_ensemble(a);
        }
        None => {
            let job = job(a)?;
            a.profiling.check_window(job.config.train.steps)?;
            // The built-in speech corpus is made (once, by rank 0) only after every flag was checked.
            if lead {
                super::data_speech::ensure_for(&job.config)?;
            }
            if let Some((c, _)) = &world {
                c.barrier()?;
            }
            let t = if lead { api::train::prepare_ranks(&job, ranks) } else { api::train::follow(&job, ranks) };
            t.context("preparing the run")?
        }
    };
    if let Some((comm, how)) = world {
        trainer.join(comm, how).context("joining the data-parallel world")?;
        if !lead {
            // Every other rank trains in step with rank 0 and writes nothing.
            trainer.run(&mut shiftlm::train::metrics::NullSink).context("training")?;
            return Ok(());
        }
    }
    // By default the profile skips the first step (allocations, caches) and
    // records up to five more.
    let (done, steps) = (trainer.state.step, trainer.cfg.train.steps);
    a.profiling.arm(((done + 2).min(steps), (done + 6).min(steps)), steps)?;
    let mut progress = Progress::default();
    let start = api::train::run_start(&trainer, None)?;
    progress.on_start(&start);
    let outcome = api::train::fit(&mut trainer, &mut progress, true);
    progress.finish();
    let o = outcome.context("training")?;
    let run = trainer.run_dir().expect("prepared with a run folder").to_path_buf();
    a.profiling.finish(Some(&run.join("tb")))?;
    eprintln!(
        "trained to step {} in {:.1}s ({:.0} {}/s){}; checkpoints in {}",
        o.steps,
        o.elapsed_s,
        o.tokens_per_s,
        start.unit,
        if o.stopped_early { ", stopped early" } else { "" },
        run.display()
    );
    if let Some(b) = &o.best {
        let bleu = b.valid_bleu.map_or(String::new(), |x| format!(", BLEU {x:.2}"));
        let by = if b.valid_bleu.is_some() { "validation BLEU" } else { "validation loss" };
        eprintln!(
            "best {by} at step {} (loss {:.4}{bleu}; {})",
            b.step,
            b.valid_loss,
            shiftlm::checkpoint::checkpoint_dir(&run, b.step).display()
        );
    }
    let evaluated = api::train::select_checkpoint(&mut trainer).context("loading the chosen checkpoint")?;
    eprintln!("evaluating {}", evaluated.display());
    let evaluation = api::train::evaluate(&trainer, a.show).context("evaluating the trained model")?;
    match &evaluation {
        Evaluation::Forecast(report) => report::print_forecast(report, "test split"),
        Evaluation::Panel(report) => report::print_panel(report, "test split"),
        Evaluation::Image(r) => {
            report::print_image(r, "test set");
            // Kept beside the checkpoints for `shiftlm plot --shift-curve`.
            let name = run.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
            shiftlm::io::write_atomic(&run.join(shiftlm::plot::SHIFT_REPORT), &serde_json::to_vec(r)?)?;
            let png =
                shiftlm::plot::shift_curves_png(&[(name.clone(), r.shift_curve.clone())], &name, "test accuracy (%)");
            shiftlm::io::write_atomic(&run.join("shift_curve.png"), &png)?;
            println!("accuracy against shift drawn in {}", run.join("shift_curve.png").display());
        }
        Evaluation::Strips(r) => {
            report::print_strips(r, "test strips");
            let name = run.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
            shiftlm::io::write_atomic(&run.join(shiftlm::plot::SHIFT_REPORT), &serde_json::to_vec(r)?)?;
            let png = shiftlm::plot::shift_curves_png(
                &[(name.clone(), r.shift_curve.clone())],
                &name,
                "test exact match (%)",
            );
            shiftlm::io::write_atomic(&run.join("shift_curve.png"), &png)?;
            println!("exact match against shift drawn in {}", run.join("shift_curve.png").display());
        }
        Evaluation::Speech(r) => {
            report::print_speech(r, "held-out voices");
            let name = run.file_name().map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
            shiftlm::io::write_atomic(&run.join(shiftlm::plot::SHIFT_REPORT), &serde_json::to_vec(r)?)?;
            let png = shiftlm::plot::speech_shift_png(&[(name.clone(), r.clone())], &name);
            shiftlm::io::write_atomic(&run.join("shift_curve.png"), &png)?;
            println!("recognition against time shift drawn in {}", run.join("shift_curve.png").display());
        }
        Evaluation::Skipped { skipped } => println!("evaluation skipped: {skipped}"),
        Evaluation::Pairs { report, examples } => {
            report::print_metrics(report);
            report::print_examples(examples);
        }
        Evaluation::Causal { report, sample } => {
            report::print_causal(report);
            if let Some(text) = sample {
                println!("sample (temperature 0.8, seed 1):\n{text}");
            }
        }
    }
    if a.json {
        let extra = serde_json::json!({
            "steps": o.steps,
            "train_loss": o.final_loss,
            "tokens_per_s": o.tokens_per_s,
            "elapsed_s": o.elapsed_s,
            "checkpoint": shiftlm::checkpoint::checkpoint_dir(&run, o.steps),
            "run": run,
            "best_step": o.best.as_ref().map(|b| b.step),
            "evaluated_checkpoint": evaluated,
            "stopped_early": o.stopped_early,
            "skipped_batches": o.skipped_batches,
        });
        println!("{}", report::json_value(&evaluation, extra));
    }
    Ok(())
}

/// `--model auto`: every forecaster kind, then the choice among them and the
/// classical baselines by validation MASE, scored on the test windows.
fn run_auto(a: &TrainArgs) -> anyhow::Result<()> {
    let job = job(a)?;
    if !job.config.model.is_forecaster() {
        anyhow::bail!("--model auto chooses among forecasters: give --data FILE.csv --target COLUMN or --task series");
    }
    if a.cell.is_some() || a.layers.is_some() || a.hidden.is_some() || a.heads.is_some() {
        return Err(only("--cell/--layers/--hidden/--heads", "single-kind (not --model auto)"));
    }
    let members = a.ensemble.unwrap_or(1);
    if members == 0 {
        anyhow::bail!("--ensemble 0: an ensemble needs at least 1 member");
    }
    let folds = a.folds.unwrap_or(3);
    if folds == 0 {
        anyhow::bail!("--folds 0: give 1 (the validation split only) or more");
    }
    api::auto::check_folds(&job, folds)?;
    let (mut runs, mut shared) = (Vec::new(), None);
    for kind in api::auto::KINDS {
        let mut progress = Progress::default();
        let r = api::auto::train_candidate(&job, kind, members, &mut shared, &mut progress);
        progress.finish();
        let r = r.with_context(|| format!("training the {} candidate", kind.name()))?;
        eprintln!("{}: validation MASE {}", r.name, r.valid.model.mase.map_or("-".into(), |v| format!("{v:.4}")));
        runs.push(r);
    }
    let mut earlier = api::auto::Folds::default();
    for fold in 1..folds {
        for kind in api::auto::KINDS {
            let mut progress = Progress::default();
            let r = api::auto::train_fold(&job, kind, members, fold, &mut progress);
            progress.finish();
            let r =
                r.with_context(|| format!("training the {} candidate on rolling-origin fold {fold}", kind.name()))?;
            earlier.add(fold, kind.name(), r)?;
        }
    }
    let (choice, report) = api::auto::choose(&runs, &earlier, &api::auto::windows(&job, &shared)?)?;
    let over = match folds {
        1 => "on the validation windows".to_string(),
        2 => "on the block after fold 1's validation block".to_string(),
        k => format!("by the mean over the blocks after the validation blocks of folds 1–{}", k - 1),
    };
    println!("model selection {over} ({}):", job.out.display());
    println!("  {:<16}{:>14}{:>12}  model / checkpoint", "candidate", "valid MASE", "test MASE");
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for c in &choice.candidates {
        let what = c.model.clone().or(c.checkpoint.as_ref().map(|p| p.display().to_string())).unwrap_or_default();
        let mark = if c.name == choice.chosen { " ← chosen" } else { "" };
        println!("  {:<16}{:>14}{:>12}  {what}{mark}", c.name, f(c.valid_mase), f(c.test_mase));
    }
    println!("chose {}: {}", choice.chosen, choice.reason);
    shiftlm::io::write_atomic(&job.out.join("auto.json"), &serde_json::to_vec_pretty(&choice)?)?;
    report::print_forecast(&report, "test split");
    if a.json {
        let extra = serde_json::json!({ "run": job.out, "auto": choice });
        println!("{}", report::json_value(&report, extra));
    }
    Ok(())
}

/// `--ensemble N` for one kind: N members, then the median forecast scored
/// on the test windows.
fn run_ensemble(a: &TrainArgs) -> anyhow::Result<()> {
    let job = job(a)?;
    let n = a.ensemble.unwrap_or(1);
    api::ensemble::check(&job, n)?;
    a.profiling.check_window(job.config.train.steps)?;
    let mut members = Vec::with_capacity(n);
    for k in 0..n {
        let mut progress = Progress::default();
        let trained = api::ensemble::train_member(&job, k, &mut progress);
        progress.finish();
        let (trainer, checkpoint) = trained.with_context(|| format!("training ensemble member {}", k + 1))?;
        eprintln!("member {} (seed {}): {}", k + 1, trainer.cfg.train.seed, checkpoint.display());
        members.push((trainer, checkpoint));
    }
    let manifest = api::ensemble::write_manifest(&job.out, &members)?;
    let report = api::ensemble::evaluate_test(&members).context("evaluating the ensemble")?;
    eprintln!("the median of {n} members, from {}", job.out.join(api::ensemble::MANIFEST).display());
    report::print_forecast(&report, "test split");
    if a.json {
        let extra = serde_json::json!({ "run": job.out, "ensemble": manifest });
        println!("{}", report::json_value(&report, extra));
    }
    Ok(())
}
