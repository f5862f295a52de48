//! Training jobs: a fresh run from a resolved config, or a resumed one. The
//! job prepares the data and the model, writes checkpoints, `metrics.jsonl`
//! and TensorBoard scalars into the run folder, reports every step to the
//! caller's sink, and ends with an evaluation on held-out data.

use super::evaluate::{decoded_examples, Example};
use crate::checkpoint;
use crate::config::{DataConfig, RunConfig};
use crate::data::images::ImageSource;
use crate::decode::causal::SampleOptions;
use crate::decode::{DecodeOptions, Strategy};
use crate::error::{Error, Result};
use crate::eval::forecast::ForecastReport;
use crate::eval::{CausalReport, EvalReport};
use crate::model::ModelConfig;
use crate::train::metrics::{JsonlSink, Tee, TensorBoardSink};
use crate::train::{MetricsSink, RunStart, TrainOutcome, Trainer};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A fresh training run: a resolved config (a preset with the user's
/// changes; the model's vocabulary is sized from the tokenizer) and the run
/// folder, which must not hold checkpoints yet.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// The resolved run config.
    pub config: RunConfig,
    /// The run folder; it must not hold checkpoints yet.
    pub out: PathBuf,
    /// Decoded examples (or sampled tokens, ×40, for a language model)
    /// to return with the final evaluation; 0 for none.
    pub show: usize,
}

/// How a model did on held-out data after training.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Evaluation {
    /// An encoder–decoder: teacher-forced and free-running metrics, and
    /// the first decoded validation examples.
    Pairs {
        /// Teacher-forced and free-running metrics.
        #[serde(flatten)]
        report: EvalReport,
        /// The first `show` decoded validation examples.
        #[serde(skip)]
        examples: Vec<Example>,
    },
    /// A language model: held-out loss and perplexity, and a sample.
    Causal {
        /// Held-out loss and perplexity.
        #[serde(flatten)]
        report: CausalReport,
        /// Text of up to `40 × show` tokens sampled after an end-of-text
        /// token (conversations: a held-out conversation up to its first
        /// answer, then the model's answer); `None` when `show` is 0.
        #[serde(skip)]
        sample: Option<String>,
    },
    /// A forecaster: its errors beside the naive baselines on the test split.
    Forecast(ForecastReport),
    /// A global forecaster of many series (`--id`): each series' test split
    /// and the means over them.
    Panel(crate::eval::forecast::PanelReport),
    /// An image classifier on the test set: accuracy, macro F1, confusion,
    /// and robustness to shifts.
    Image(crate::eval::image::ImageReport),
    /// A digit-strip reader on the test strips: exact match, character error
    /// rate, and robustness to shifts.
    Strips(crate::eval::strips::StripReport),
    /// A speech model on the held-out voices (and the unseen engine's):
    /// accuracy or exact match, CER and WER, and robustness to time shifts.
    Speech(crate::eval::speech::SpeechReport),
    /// Nothing was held out to evaluate on.
    Skipped {
        /// Why, e.g. "no held-out pairs".
        skipped: String,
    },
}

/// What a finished training job reports.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// How training went.
    pub outcome: TrainOutcome,
    /// The run folder.
    pub run: PathBuf,
    /// The last checkpoint written.
    pub checkpoint: PathBuf,
    /// Held-out evaluation after training.
    pub evaluation: Evaluation,
}

/// `runs/<name>`, or `runs/<name>-2`, … if taken: never overwrite a run.
pub fn fresh_dir(name: &str) -> PathBuf {
    let base = Path::new("runs").join(name);
    (1..)
        .map(|i| if i == 1 { base.clone() } else { PathBuf::from(format!("{}-{i}", base.display())) })
        .find(|p| !p.exists())
        .expect("some name is free")
}

/// The default run folder name for a config: the preset and the task, the
/// data file's stem, or `series-<stem>`.
pub fn run_name(cfg: &RunConfig) -> String {
    let stem = |p: &Path| p.file_stem().and_then(|s| s.to_str()).unwrap_or("data").to_string();
    match &cfg.data {
        DataConfig::Series(s) => match &s.csv {
            Some(spec) => format!("series-{}", stem(&spec.path)),
            None => "series-synthetic".to_string(),
        },
        DataConfig::Task(s) => format!("{}-{}", cfg.preset, s.kind.name()),
        DataConfig::File { path, .. } => stem(path),
        DataConfig::Text(t) => format!("{}-{}", cfg.preset, t.paths.first().map(|p| stem(p)).unwrap_or_default()),
        DataConfig::Chat(c) => format!("{}-{}", cfg.preset, stem(&c.path)),
        DataConfig::Speech(c) => match &c.source {
            crate::data::audio::speech::SpeechSource::Dir(d) => format!("{}-{}", cfg.preset, stem(d)),
            crate::data::audio::speech::SpeechSource::Corpus(_) => cfg.preset.clone(),
        },
        DataConfig::Images(c) if c.strings.is_some() => match &c.source {
            ImageSource::Dir(d) => format!("{}-{}", cfg.preset, stem(d)),
            _ => cfg.preset.clone(),
        },
        DataConfig::Images(c) => match &c.source {
            ImageSource::Digits => format!("{}-digits", cfg.preset),
            ImageSource::FashionMnist => format!("{}-fashion-mnist", cfg.preset),
            ImageSource::Dir(d) => format!("{}-{}", cfg.preset, stem(d)),
        },
    }
}

/// Loads the job's data, sizes the model for it (vocabulary, special ids,
/// longest target, Transformer positions), creates the run folder and
/// returns a trainer at step 0.
pub fn prepare(job: &TrainJob) -> Result<Trainer> {
    prepare_ranks(job, 1)
}

/// [`prepare`] for rank 0 of a data-parallel world of `ranks` processes
/// (whose global batch is `ranks` times one process's).
pub fn prepare_ranks(job: &TrainJob, ranks: usize) -> Result<Trainer> {
    let (cfg, data, tok) = configure(job, ranks)?;
    refuse_existing_run(&job.out, "use --resume {0} or choose another --out")?;
    // The folders this creates (the run's, and `runs/` the first time),
    // deepest first: removed again, while empty, if the run cannot start.
    let created: Vec<PathBuf> =
        job.out.ancestors().take_while(|p| !p.as_os_str().is_empty() && !p.exists()).map(Path::to_path_buf).collect();
    std::fs::create_dir_all(&job.out).map_err(|e| Error::io(&job.out, e))?;
    let mut trainer = match Trainer::new(cfg, data, tok, Some(job.out.clone())) {
        Ok(t) => t,
        Err(e) => {
            // `remove_dir` removes only an empty folder, so nothing written is lost.
            created.iter().try_for_each(std::fs::remove_dir).ok();
            return Err(e);
        }
    };
    trainer.lock_run_dir()?;
    Ok(trainer)
}

/// The job's config sized for its data (and for `ranks` data-parallel
/// processes), the data and its tokenizer: what [`prepare`] builds a trainer
/// from, without touching the run folder.
fn configure(job: &TrainJob, ranks: usize) -> Result<(RunConfig, crate::data::Dataset, crate::data::Tokenizer)> {
    let mut cfg = job.config.clone();
    cfg.model.set_vocab_size(1); // set from the tokenizer below
    cfg.validate()?;
    let (data, tok) = crate::data::load(&cfg.data, cfg.train.seed, None)?;
    if let crate::config::DataConfig::Chat(c) = &cfg.data {
        cfg.chat_template = Some(c.template.clone());
    }
    cfg.model.set_vocab_size(tok.vocab_size());
    if let crate::data::Tokenizer::Pair { source, .. } = &tok {
        cfg.model.set_source_vocab_size(source.vocab_size());
    }
    if let Some(eot) = tok.token_id("</s>").or_else(|| tok.token_id("<|endoftext|>")) {
        // The same end-of-text id that separates documents in the data.
        cfg.model.set_special_ids(tok.token_id("<s>").unwrap_or(eot), eot);
    }
    if let Some(s) = data.pairs() {
        cfg.max_target_len = s.train.iter().map(|p| p.target.len()).max().unwrap_or(1);
        if let ModelConfig::Transformer(m) = &mut cfg.model {
            // Room for the longest source, and for decoding twice the longest target.
            let longest =
                s.train.iter().chain(&s.valid).map(|p| p.source.len().max(2 * p.target.len() + 3)).max().unwrap_or(1);
            m.max_positions = m.max_positions.max(longest.next_power_of_two());
        }
    }
    if let (crate::data::Dataset::Series(s), ModelConfig::Forecaster(m), crate::config::DataConfig::Series(d)) =
        (&data, &cfg.model, &cfg.data)
    {
        let windows = s.split_starts(|p| &p.train, m.context, m.horizon, d.stride).len();
        // An epoch of the global batch: `ranks` times fewer steps.
        let every = cfg.train.eval_every_for(windows.div_ceil(ranks.max(1)));
        if cfg.train.eval_every_epochs > 0.0 {
            tracing::info!("{windows} training windows: validating every {every} steps");
            (cfg.train.eval_every, cfg.train.eval_every_epochs) = (every, 0.0);
        }
    }
    Ok((cfg, data, tok))
}

/// The trainer of a data-parallel rank other than 0 for a fresh run of
/// `job`: the same config, data and initial weights as rank 0's [`prepare`],
/// without a run folder (it writes nothing). [`Trainer::join`] then makes it
/// a rank.
pub fn follow(job: &TrainJob, ranks: usize) -> Result<Trainer> {
    let (cfg, data, tok) = configure(job, ranks)?;
    Trainer::new(cfg, data, tok, None)
}

/// [`follow`] for a resumed run: the checkpoint rank 0 resumes from, read
/// but not locked, and set to `steps` as [`prepare_resume`] sets it.
pub fn follow_resume(run_dir: &Path, steps: Option<usize>) -> Result<Trainer> {
    with_steps(Trainer::resume(run_dir)?, steps)
}

/// An error if `out` already holds checkpoints (nothing is overwritten).
/// `hint` may name the folder as `{0}`.
pub(super) fn refuse_existing_run(out: &Path, hint: &str) -> Result<()> {
    if checkpoint::list(out).is_empty() {
        // A fresh run never writes into a folder that holds anything else; what a
        // run that died before its first checkpoint left (its lock, metrics and
        // TensorBoard log) is its own, and is started over.
        // (Its lock file marks it: a user's own `metrics.jsonl` is never taken for one.)
        let names: Vec<std::ffi::OsString> =
            std::fs::read_dir(out).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
        let ours = names.iter().any(|n| n == ".lock")
            && names.iter().all(|n| [".lock", "metrics.jsonl", "tb"].iter().any(|o| n == *o));
        if !names.is_empty() && !ours {
            return Err(Error::Checkpoint {
                path: out.to_path_buf(),
                msg: "exists and is not empty; a new run needs a new or empty folder (nothing was overwritten)".into(),
            });
        }
        return Ok(());
    }
    Err(Error::Checkpoint {
        path: out.to_path_buf(),
        msg: format!(
            "already holds checkpoints; {} (nothing was overwritten)",
            hint.replace("{0}", &out.display().to_string())
        ),
    })
}

/// Trains a fresh run to the end, then evaluates it.
pub fn train(job: &TrainJob, sink: &mut dyn MetricsSink) -> Result<TrainReport> {
    let mut trainer = prepare(job)?;
    run(&mut trainer, None, job.show, sink)
}

/// Continues `run` from its newest complete checkpoint, exactly, to `steps`
/// (default: the configured steps), then evaluates it.
pub fn resume(run_dir: &Path, steps: Option<usize>, show: usize, sink: &mut dyn MetricsSink) -> Result<TrainReport> {
    let mut trainer = prepare_resume(run_dir, steps)?;
    run(&mut trainer, None, show, sink)
}

/// The trainer [`resume`] continues, at its checkpoint's step.
pub fn prepare_resume(run_dir: &Path, steps: Option<usize>) -> Result<Trainer> {
    let mut t = Trainer::resume(run_dir)?;
    t.lock_run_dir()?;
    with_steps(t, steps)
}

/// `t` set to train to `steps` (its configured steps when `None`).
fn with_steps(mut t: Trainer, steps: Option<usize>) -> Result<Trainer> {
    if let Some(steps) = steps {
        if steps < t.state.step {
            return Err(Error::setting(format!("--steps {steps} is before the checkpoint's step {}", t.state.step)));
        }
        let train = &mut t.cfg.train;
        // A schedule that decayed to the old last step decays to the new one
        // (as `train --steps` does for a preset); a resume at the old end of a
        // cosine run would otherwise sit at its floor.
        if train.schedule.decay_steps == train.steps {
            train.schedule.decay_steps = steps;
        }
        train.steps = steps;
    }
    Ok(t)
}

/// Runs `trainer` to its configured steps with the run folder's JSONL and
/// TensorBoard sinks beside `sink`, then evaluates. `from` is the model a
/// fine-tune started from (reported in [`RunStart`]).
pub fn run(trainer: &mut Trainer, from: Option<&Path>, show: usize, sink: &mut dyn MetricsSink) -> Result<TrainReport> {
    sink.on_start(&run_start(trainer, from)?);
    let outcome = fit(trainer, sink, true)?;
    select_checkpoint(trainer)?;
    let evaluation = evaluate(trainer, show)?;
    let run = run_dir(trainer)?;
    Ok(TrainReport { checkpoint: checkpoint::checkpoint_dir(&run, outcome.steps), run, outcome, evaluation })
}

/// The checkpoint whose weights the final evaluation uses: with
/// `train.select_by` set, the best one, whose weights are loaded into the
/// trainer's model here (so evaluate after this); otherwise the last one,
/// whose weights the model holds already. Returns its folder.
pub fn select_checkpoint(trainer: &mut Trainer) -> Result<PathBuf> {
    let run = run_dir(trainer)?;
    let best = trainer.state.best.as_ref().map(|b| b.step);
    match (trainer.cfg.train.select_by, best) {
        (Some(_), Some(step)) if step != trainer.state.step => {
            let dir = checkpoint::checkpoint_dir(&run, step);
            let files = checkpoint::read_verified(&dir, &|n| n == "model.safetensors")?;
            checkpoint::load_model_bytes(&files, &trainer.store, &trainer.cfg.model)?;
            Ok(dir)
        }
        _ => Ok(checkpoint::checkpoint_dir(&run, trainer.state.step)),
    }
}

fn run_dir(trainer: &Trainer) -> Result<PathBuf> {
    let dir = trainer.run_dir().ok_or_else(|| Error::config("run_dir", "a training job needs a run folder"))?;
    Ok(dir.to_path_buf())
}

/// What `trainer` is about to do, for [`MetricsSink::on_start`]; `from` is
/// the model a fine-tune started from.
pub fn run_start(trainer: &Trainer, from: Option<&Path>) -> Result<RunStart> {
    Ok(RunStart {
        params: trainer.store.num_params(),
        trainable: trainer.store.trainable_vars().iter().map(|(_, v)| v.as_tensor().elem_count()).sum(),
        data: trainer.data.describe(),
        step: trainer.state.step,
        steps: trainer.cfg.train.steps,
        grad_accum: trainer.cfg.train.grad_accum,
        batch_size: trainer.cfg.train.batch_size,
        run: run_dir(trainer)?,
        from: from.map(Path::to_path_buf),
        unit: match &trainer.data {
            crate::data::Dataset::Images(_) => "images",
            crate::data::Dataset::Speech(d) if !d.strings => "clips",
            crate::data::Dataset::Series(_) => "values",
            _ => "tokens",
        },
    })
}

/// Trains `trainer` to its configured steps, with `metrics.jsonl` (and,
/// with `tensorboard`, `tb/`) written in the run folder beside `sink`.
/// Announcing the run ([`run_start`]) is the caller's.
pub fn fit(trainer: &mut Trainer, sink: &mut dyn MetricsSink, tensorboard: bool) -> Result<TrainOutcome> {
    let out = run_dir(trainer)?;
    let mut jsonl = JsonlSink::open(&out.join("metrics.jsonl"), trainer.state.step)?;
    let mut tb = if tensorboard { Some(TensorBoardSink::create(&out.join("tb"))?) } else { None };
    let mut sinks: Vec<&mut dyn MetricsSink> = vec![sink, &mut jsonl];
    if let Some(tb) = tb.as_mut() {
        sinks.push(tb);
    }
    let mut sinks = Tee(sinks);
    let r = trainer.run(&mut sinks);
    sinks.flush().and(r)
}

/// The largest shift of an image classifier's shift curve (0..=6 pixels).
pub const SHIFT_CURVE: usize = 6;

/// Held-out evaluation of a trained model: free-running decoding for an
/// encoder–decoder, teacher-forced perplexity (and a sample) for a language
/// model, the test split against baselines for a forecaster.
pub fn evaluate(trainer: &Trainer, show: usize) -> Result<Evaluation> {
    let dev = trainer.store.device().clone();
    if let (Some(model), crate::data::Dataset::Images(d)) = (trainer.model.image(), &trainer.data) {
        return Ok(Evaluation::Image(crate::eval::image::evaluate(model, &d.test, SHIFT_CURVE, &dev)?));
    }
    if let crate::data::Dataset::Speech(d) = &trainer.data {
        let shifts = crate::eval::speech::SHIFT_CURVE_MS;
        let r = crate::eval::speech::evaluate_all(&trainer.model, &trainer.tokenizer, d, &shifts, show, &dev)?;
        return Ok(Evaluation::Speech(r));
    }
    if let crate::data::Dataset::Strips(d) = &trainer.data {
        let r = crate::eval::strips::evaluate(&trainer.model, &trainer.tokenizer, &d.test, SHIFT_CURVE, show, &dev)?;
        return Ok(Evaluation::Strips(r));
    }
    if let (Some(model), crate::data::Dataset::Series(s)) = (trainer.model.forecaster(), &trainer.data) {
        if s.is_panel() {
            let report = crate::eval::forecast::evaluate_panel(&[model], s, |d| d.test.clone(), &dev)?;
            return Ok(Evaluation::Panel(report));
        }
        return Ok(Evaluation::Forecast(crate::eval::forecast::evaluate(&[model], s, &s.test, &dev)?));
    }
    if let (Some(_), Some(pairs)) = (trainer.model.encoder_decoder(), trainer.data.pairs()) {
        if pairs.valid.is_empty() {
            return Ok(Evaluation::Skipped { skipped: "no held-out pairs".into() });
        }
        let opts = DecodeOptions { strategy: Strategy::Greedy, max_len: 2 * trainer.cfg.max_target_len + 2 };
        let (mut report, outputs, _) = crate::eval::evaluate(&trainer.model, &pairs.valid, 256, &opts, &dev)?;
        super::evaluate::add_text_metrics(&mut report, &trainer.tokenizer, &pairs.valid, &outputs, None)?;
        let examples = decoded_examples(&trainer.tokenizer, &pairs.valid, &outputs, show)?;
        return Ok(Evaluation::Pairs { report, examples });
    }
    let stats = crate::eval::teacher_forced(&trainer.model, trainer.valid_batches().into_iter(), &dev)?;
    if stats.tokens == 0 {
        return Ok(Evaluation::Skipped { skipped: "no held-out tokens".into() });
    }
    // Conversations: a held-out one up to where its first answer starts,
    // answered until the template's special tokens (ChatML's <|im_end|>).
    let chat_prompt = match (&trainer.data, &trainer.cfg.data) {
        (crate::data::Dataset::Chat { valid, .. }, crate::data::DataConfig::Chat(c)) => match valid.first() {
            // A conversation that opens with the answer has no prompt to sample from.
            Some(d) if !d.supervised.first().copied().unwrap_or(true) => {
                let first = d.supervised.iter().position(|&s| s).unwrap_or(d.ids.len());
                let (stop, _) =
                    super::chat::answer_ends(&c.template.compile()?, &trainer.tokenizer, trainer.cfg.model_eos())?;
                Some((d.ids[..first].to_vec(), stop))
            }
            _ => None,
        },
        _ => None,
    };
    let sample = if show > 0 {
        let chat = chat_prompt.is_some();
        let (prompt, stop) = chat_prompt.unwrap_or_else(|| (vec![trainer.cfg.model_eos()], Vec::new()));
        let o = SampleOptions { max_new_tokens: 40 * show, seed: 1, stop, ..Default::default() };
        let ids = crate::decode::causal::generate(&trainer.model, &prompt, &o, &dev, |_| Ok(false))?;
        let answer = trainer.tokenizer.decode(&ids)?;
        Some(if chat { format!("{}{answer}", trainer.tokenizer.decode(&prompt)?) } else { answer })
    } else {
        None
    };
    Ok(Evaluation::Causal { report: CausalReport::new(&stats), sample })
}
