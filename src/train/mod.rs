//! Training: a [`Trainer`] owns everything a run needs to continue exactly —
//! weights, optimizer moments, the loader's position and random streams —
//! and writes it all into each checkpoint. The loop:
//! batch → forward → masked loss → backward → clip → step(lr(step)) → log →
//! eval → checkpoint. The library never prints: it reports to a
//! [`MetricsSink`].

pub mod metrics;
pub mod tensorboard;

use crate::checkpoint::{self, OPTIMIZER, TRAINER_STATE};
pub use crate::config::{Freeze, NonFinitePolicy, RunConfig, TrainConfig};
use crate::data::loader::{
    batches, windows, ChatLoader, ForecastLoader, Loader, LoaderState, PairLoader, WindowLoader,
};
use crate::data::shift::{Batch, BatchTensors};
use crate::data::{Dataset, Tokenizer};
use crate::dist::{Comm, Reduce};
use crate::error::{Error, Result};
use crate::eval::teacher_forced;
use crate::faults;
use crate::model::{LossOptions, Model};
use crate::nn::ParamStore;
pub use crate::optim::{Optimizer, OptimizerConfig, OptimizerKind, Schedule, ScheduleKind};
use crate::rng::Rng;
use candle_core::backprop::GradStore;
use candle_core::{Device, Var};
pub use metrics::{EvalRecord, LossHistory, MetricsSink, RunStart, StepMetrics};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Everything about a run's progress that is not a tensor. Saved as
/// `trainer_state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Steps taken so far, skipped batches included; the next step is `step + 1`.
    pub step: usize,
    /// Updates the optimizer has applied (fewer than `step` after skipped batches); drives
    /// Adam's bias correction.
    pub optimizer_step: usize,
    /// Where the training loader stands: epoch, cursor, order and its random stream.
    pub loader: LoaderState,
    /// The dropout random stream, derived from the seed.
    pub dropout_rng: Rng,
    /// Every evaluation so far, oldest first.
    pub history: Vec<EvalRecord>,
    /// The evaluation with the lowest validation loss so far.
    pub best: Option<EvalRecord>,
    /// Evaluations since the best one, for early stopping (`train.patience`).
    pub evals_since_best: usize,
    /// Batches skipped for a non-finite loss or gradient.
    pub skipped_batches: usize,
    /// Supervised tokens of the steps that updated the weights.
    pub tokens_seen: usize,
    /// SHA-256 of the tokenized data, so a resume refuses changed data.
    pub data_fingerprint: String,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainOutcome {
    /// The step the run stopped at.
    pub steps: usize,
    /// Loss of the last step that updated the weights in this call (NaN if none did).
    pub final_loss: f32,
    /// Supervised tokens per second over this call's training.
    pub tokens_per_s: f64,
    /// Seconds this call took, evaluations and checkpoints included.
    pub elapsed_s: f64,
    /// The best evaluation of the whole run, if any.
    pub best: Option<EvalRecord>,
    /// Whether `train.patience` evaluations without a better validation loss ended the run.
    pub stopped_early: bool,
    /// Batches skipped for a non-finite value over the whole run.
    pub skipped_batches: usize,
}

/// A training run in progress.
pub struct Trainer {
    /// The run's config, with the model sized for the data.
    pub cfg: RunConfig,
    /// The model being trained.
    pub model: Model,
    /// The model's parameters (frozen ones included).
    pub store: ParamStore,
    /// The tokenizer of the data.
    pub tokenizer: Tokenizer,
    /// The run's data, tokenized (or scaled, for a series).
    pub data: Dataset,
    /// Progress; saved as `trainer_state.json` in each checkpoint.
    pub state: TrainerState,
    opt: Optimizer,
    loader: Loader,
    /// The run folder's lock, once taken ([`Trainer::lock_run_dir`]).
    lock: Option<crate::io::RunLock>,
    vars: Vec<(String, Var)>,
    run_dir: Option<PathBuf>,
    last_saved: Option<usize>,
    /// The data-parallel world this trainer is one rank of ([`Trainer::join`]).
    world: Option<(std::rc::Rc<dyn Comm>, Reduce)>,
}

fn fingerprint(data: &Dataset) -> String {
    use sha2::{Digest, Sha256};
    // Each sequence as its length then its values, u32 little-endian, hashed
    // as it goes (Fashion-MNIST's pixels would be 220 MB as one buffer).
    let mut hash = Sha256::new();
    let mut put = |ids: &mut dyn ExactSizeIterator<Item = u32>| {
        hash.update((ids.len() as u32).to_le_bytes());
        let mut buf = Vec::with_capacity(4096);
        for i in ids {
            buf.extend(i.to_le_bytes());
            if buf.len() >= 4096 {
                hash.update(&buf);
                buf.clear();
            }
        }
        hash.update(&buf);
    };
    match data {
        Dataset::Pairs(s) => s.train.iter().chain(&s.valid).for_each(|p| {
            put(&mut p.source.iter().copied());
            put(&mut p.target.iter().copied());
        }),
        Dataset::Text { train, valid } => {
            put(&mut train.iter().copied());
            put(&mut valid.iter().copied());
        }
        Dataset::Chat { train, valid } => train.iter().chain(valid).for_each(|d| {
            put(&mut d.ids.iter().copied());
            put(&mut d.supervised.iter().map(|&s| u32::from(s)));
        }),
        Dataset::Series(s) => s.scaled.iter().for_each(|c| put(&mut c.iter().map(|v| v.to_bits()))),
        Dataset::Images(d) => [&d.train, &d.valid, &d.test].into_iter().for_each(|s| {
            put(&mut s.pixels.iter().map(|&p| u32::from(p)));
            put(&mut s.labels.iter().copied());
        }),
        Dataset::Strips(d) => [&d.train, &d.valid, &d.test].into_iter().for_each(|s| {
            put(&mut s.images.pixels.iter().map(|&p| u32::from(p)));
            s.texts.iter().for_each(|t| put(&mut t.chars().map(u32::from).collect::<Vec<_>>().into_iter()));
        }),
        Dataset::Speech(d) => {
            let unseen = d.unseen_engine.iter().map(|u| &**u);
            [&*d.train, &*d.valid, &*d.test].into_iter().chain(unseen).for_each(|s| {
                s.audio.iter().for_each(|a| put(&mut a.iter().map(|v| v.to_bits())));
                s.texts.iter().for_each(|t| put(&mut t.chars().map(u32::from).collect::<Vec<_>>().into_iter()));
            });
            put(&mut [d.canvas as u32].into_iter());
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Trainer {
    /// A fresh run. `cfg.model.vocab_size` must match the tokenizer; a
    /// forecaster takes its input and target counts and its scaler from the
    /// data. With `run_dir`, checkpoints go to `run_dir/checkpoint-<step>/`.
    /// Sets the process's matrix-product precision to the config's
    /// ([`crate::ops::cpu::set_precision`]; an error where bf16 cannot run).
    pub fn new(mut cfg: RunConfig, data: Dataset, tokenizer: Tokenizer, run_dir: Option<PathBuf>) -> Result<Self> {
        crate::ops::cpu::set_precision(cfg.train.precision)?;
        if let (crate::model::ModelConfig::Image(m), Dataset::Images(d)) = (&mut cfg.model, &data) {
            if d.train.classes.len() < 2 {
                return Err(Error::config(
                    "data",
                    format!("{}: {} class(es); a classifier needs at least 2", d.source, d.train.classes.len()),
                ));
            }
            (m.width, m.height, m.n_classes) = (d.train.width, d.train.height, d.train.classes.len());
            m.classes.clone_from(&d.train.classes);
        }
        if let Dataset::Speech(d) = &data {
            // Keywords: a classifier of (mel bands × frames) images; transcripts:
            // an encoder–decoder reading the frames as columns. The canvas is
            // kept in the config, so the checkpoint reads clips as trained.
            match &mut cfg.model {
                crate::model::ModelConfig::Image(m) => {
                    (m.width, m.height, m.n_classes) = (d.frames(), d.features.cfg.n_mels, d.classes.len());
                    m.classes.clone_from(&d.classes);
                }
                crate::model::ModelConfig::Seq2seq(m) => {
                    if let Some(input) = &mut m.input {
                        input.set_features(d.features.cfg.n_mels);
                    }
                }
                _ => {}
            }
            if let crate::config::DataConfig::Speech(c) = &mut cfg.data {
                c.canvas_ms = Some(d.canvas_ms());
            }
            if !d.strings && d.classes.len() < 2 {
                return Err(Error::config(
                    "data",
                    format!("{}: {} keyword(s); a classifier needs at least 2", d.source, d.classes.len()),
                ));
            }
        }
        if let (crate::model::ModelConfig::Seq2seq(m), Dataset::Strips(d)) = (&mut cfg.model, &data) {
            // The encoder reads the strip's columns: as many values as it is high.
            if let Some(input) = &mut m.input {
                input.set_features(d.train.images.height);
            }
        }
        if let (crate::model::ModelConfig::Forecaster(m), Dataset::Series(s)) = (&mut cfg.model, &data) {
            m.n_inputs = s.scaled.len();
            m.n_targets = s.n_targets;
            // Many series are each scaled on their own training rows, again at every load.
            m.scaler = (!s.is_panel()).then(|| s.scaler.clone());
        }
        cfg.validate()?;
        if cfg.model.vocab_size() < tokenizer.vocab_size() {
            return Err(Error::config(
                "model.vocab_size",
                format!("{} but the tokenizer has {} ids", cfg.model.vocab_size(), tokenizer.vocab_size()),
            ));
        }
        let dev = Device::Cpu;
        let seed = cfg.train.seed;
        let loader = training_loader(&cfg, &data, &tokenizer)?;
        let store = ParamStore::new(seed, &dev);
        cfg.train.freeze.validate(&cfg.model)?;
        if cfg.model.lora().is_some() {
            // LoRA: only the adapters train.
            store.freeze(|name| !name.contains(".lora_"));
        } else if !cfg.train.freeze.is_none() {
            let (freeze, model) = (cfg.train.freeze.clone(), cfg.model.clone());
            store.freeze(move |name| freeze.freezes(&model, name));
        }
        let model = Model::new(&cfg.model, store.var_builder())?;
        let vars = store.trainable_vars();
        let opt = Optimizer::new(vars.clone(), cfg.train.optimizer.clone())?;
        let state = TrainerState {
            step: 0,
            optimizer_step: 0,
            loader: loader.state().clone(),
            dropout_rng: Rng::derive(seed, "dropout"),
            history: Vec::new(),
            best: None,
            evals_since_best: 0,
            skipped_batches: 0,
            tokens_seen: 0,
            data_fingerprint: fingerprint(&data),
        };
        Ok(Self {
            cfg,
            model,
            store,
            tokenizer,
            data,
            state,
            opt,
            loader,
            vars,
            run_dir,
            last_saved: None,
            lock: None,
            world: None,
        })
    }

    /// Continues `run` from its newest complete checkpoint, exactly. Each
    /// file of the checkpoint is read and verified once.
    pub fn resume(run: &Path) -> Result<Self> {
        let files = checkpoint::newest_verified(run, checkpoint::folder::ALL)?;
        if !files.has(TRAINER_STATE) || !files.has(OPTIMIZER) {
            return Err(Error::Checkpoint {
                path: files.dir.clone(),
                msg: "holds a model only (no optimizer or trainer state): it cannot be resumed".into(),
            });
        }
        let (config, tokenizer) = checkpoint::config_and_tokenizer(&files)?;
        // A resumed run continues exactly as it started, so it keeps its
        // precision: refused here, before the data is read, where it cannot run.
        if let (crate::ops::cpu::Precision::Bf16, Some(why)) =
            (config.train.precision, crate::ops::cpu::bf16_unavailable())
        {
            return Err(Error::Checkpoint {
                path: run.to_path_buf(),
                msg: format!("trains with --precision bf16, but {why}; a resumed run keeps its precision: resume it on such a CPU"),
            });
        }
        let (data, tok) = crate::data::load(&config.data, config.train.seed, Some(&tokenizer))?;
        let mut t = Self::new(config, data, tok, Some(run.to_path_buf()))?;
        checkpoint::load_model_bytes(&files, &t.store, &t.cfg.model)?;
        let state_path = files.path(TRAINER_STATE);
        let state: TrainerState = serde_json::from_slice(files.get(TRAINER_STATE)?).map_err(|e| Error::Checkpoint {
            path: state_path.clone(),
            msg: format!("unreadable trainer state: {e}"),
        })?;
        if state.data_fingerprint != t.state.data_fingerprint {
            return Err(Error::Checkpoint { path: state_path, msg: "the training data changed since this checkpoint was written; resuming would not continue the same run".into() });
        }
        t.opt.load_state(files.get(OPTIMIZER)?, &files.path(OPTIMIZER), state.optimizer_step)?;
        if state.optimizer_step > state.step {
            return Err(Error::Checkpoint { path: state_path, msg: "optimizer_step is past step".into() });
        }
        t.loader.set_state(state.loader.clone()).map_err(|msg| Error::Checkpoint { path: state_path.clone(), msg })?;
        t.last_saved = Some(state.step);
        t.state = state;
        Ok(t)
    }

    /// Takes the run folder's advisory lock for as long as this trainer
    /// lives: a second process training into the same folder is refused,
    /// and the error names the first one.
    pub fn lock_run_dir(&mut self) -> Result<()> {
        if let (Some(dir), None) = (&self.run_dir, &self.lock) {
            self.lock = Some(crate::io::RunLock::acquire(dir)?);
        }
        Ok(())
    }

    /// The run folder checkpoints go to, if any.
    pub fn run_dir(&self) -> Option<&Path> {
        self.run_dir.as_deref()
    }

    /// Makes this trainer one rank of the data-parallel world `comm`, whose
    /// gradients are summed the `reduce` way. Rank 0's weights go to every
    /// rank; a rank other than 0 writes nothing (no checkpoints, no lock).
    ///
    /// Each step's global batch is `batch_size × grad_accum × world size`:
    /// every rank reads the loader's micro-batches in order and keeps slice
    /// `rank` of them, so N ranks see exactly the samples of one process with
    /// N times the accumulation, and the loader's cursor (saved in each
    /// checkpoint) counts global samples, whatever the world size.
    pub fn join(&mut self, comm: std::rc::Rc<dyn Comm>, reduce: Reduce) -> Result<()> {
        // Every rank must start from the same point (a resumed rank read its own copy of the checkpoint).
        let fingerprint = u64::from_str_radix(self.state.data_fingerprint.get(..12).unwrap_or("0"), 16).unwrap_or(0);
        let mine = [self.state.step as f64, self.loader_position() as f64, fingerprint as f64];
        let mut sum = mine;
        comm.allreduce_sum_f64(&mut sum)?;
        let n = comm.size() as f64;
        if sum.iter().zip(&mine).any(|(s, m)| *s != m * n) {
            return Err(Error::Distributed(format!(
                "rank {} starts at step {} (data position {}) but not every rank does: each rank must read the same data and, on --resume, the same checkpoint",
                comm.rank(),
                mine[0],
                mine[1]
            )));
        }
        for (_, v) in self.store.vars() {
            let t = v.as_tensor();
            let mut buf = t.flatten_all()?.to_vec1::<f32>()?;
            comm.broadcast(&mut buf)?;
            v.set(&candle_core::Tensor::from_vec(buf, t.shape(), t.device())?)?;
        }
        if comm.rank() != 0 {
            (self.run_dir, self.lock) = (None, None);
        }
        self.world = Some((comm, reduce));
        Ok(())
    }

    /// Where the training loader stands, as one number: its epoch, then its
    /// cursor in the epoch (for [`Trainer::join`]'s check that ranks agree).
    fn loader_position(&self) -> usize {
        let s = self.loader.state();
        s.epoch.wrapping_mul(1 << 32).wrapping_add(s.cursor)
    }

    /// This rank and the world's size (0 and 1 alone).
    pub fn rank_and_size(&self) -> (usize, usize) {
        self.world.as_ref().map_or((0, 1), |(c, _)| (c.rank(), c.size()))
    }

    /// Waits for every rank (nothing alone).
    fn barrier(&self) -> Result<()> {
        self.world.as_ref().map_or(Ok(()), |(c, _)| c.barrier())
    }

    /// `v` summed over the ranks.
    fn sum_f64(&self, v: f64) -> Result<f64> {
        let mut b = [v];
        if let Some((c, _)) = &self.world {
            c.allreduce_sum_f64(&mut b)?;
        }
        Ok(b[0])
    }

    /// Every rank's gradients summed, on every rank: one flat buffer of each
    /// trainable tensor's presence flag and values (a tensor no micro-batch
    /// reached stays absent, as it would in one process).
    fn reduce_grads(&self, mut grads: GradStore) -> Result<GradStore> {
        let Some((comm, how)) = &self.world else {
            return Ok(grads);
        };
        let mut flat = Vec::with_capacity(self.vars.iter().map(|(_, v)| v.as_tensor().elem_count() + 1).sum());
        for (_, v) in &self.vars {
            match grads.get(v.as_tensor()) {
                Some(g) => {
                    flat.push(1.0);
                    flat.extend(g.flatten_all()?.to_vec1::<f32>()?);
                }
                None => flat.extend(std::iter::repeat_n(0.0, v.as_tensor().elem_count() + 1)),
            }
        }
        crate::dist::sum(comm.as_ref(), &mut flat, *how)?;
        let mut at = 0;
        for (_, v) in &self.vars {
            let t = v.as_tensor();
            let n = t.elem_count();
            if flat[at] > 0.0 {
                let g = candle_core::Tensor::from_slice(&flat[at + 1..at + 1 + n], t.shape(), t.device())?;
                grads.insert(t, g);
            }
            at += n + 1;
        }
        Ok(grads)
    }

    /// Trains to the configured number of steps.
    pub fn run(&mut self, sink: &mut dyn MetricsSink) -> Result<TrainOutcome> {
        self.run_until(self.cfg.train.steps, sink)
    }

    /// Trains up to step `until` (at most the configured steps).
    pub fn run_until(&mut self, until: usize, sink: &mut dyn MetricsSink) -> Result<TrainOutcome> {
        let tc = self.cfg.train.clone();
        let dev = self.store.device().clone();
        let (start, tokens0) = (Instant::now(), self.state.tokens_seen);
        let (mut last_loss, mut stopped_early) = (f32::NAN, false);
        while self.state.step < until.min(tc.steps) && !stopped_early {
            let step = self.state.step + 1;
            crate::profile::at_step(step);
            let _step = crate::profile::phase("step");
            let (rank, world) = self.rank_and_size();
            faults::die(rank, step);
            let data = crate::profile::phase("data");
            // The global batch is grad_accum × world micro-batches in the loader's order; this rank's are slice `rank`.
            let a = tc.grad_accum;
            let mut micro = Vec::with_capacity(a);
            for j in 0..a * world {
                let b = self.loader.next_batch();
                if j / a == rank {
                    micro.push(b.tensors(&dev)?);
                }
            }
            drop(data);
            // Each micro-batch draws dropout from its own stream, named by its place in the
            // global batch, so that which rank runs it changes nothing.
            let base = self.state.dropout_rng.next_u64();
            let mut rngs: Vec<Rng> =
                (0..a).map(|i| Rng::derive(base, &format!("micro-batch {}", rank * a + i))).collect();
            let local: usize = micro.iter().map(|b| b.n_supervised()).sum();
            let tokens = self.sum_f64(local as f64)? as usize;
            let opts = LossOptions { label_smoothing: tc.label_smoothing, scheduled_sampling: tc.scheduled_sampling };
            let (loss, grads, _) = accumulate_over(&self.model, &self.vars, &micro, &mut rngs, tokens, opts)?;
            let (mut loss, grads) = if world > 1 {
                let _reduce = crate::profile::phase("allreduce");
                (self.sum_f64(loss as f64)? as f32, self.reduce_grads(grads)?)
            } else {
                (loss, grads)
            };
            if faults::poison(step) {
                loss = f32::NAN;
            }
            let clip = crate::profile::phase("clip");
            let grad_norm = self.opt.grad_norm(&grads)?;
            drop(clip);
            self.state.step = step;
            if loss.is_finite() && grad_norm.is_finite() {
                let lr = tc.schedule.lr(tc.optimizer.lr, step);
                let _opt = crate::profile::phase("optimizer");
                self.opt.step(&grads, lr, clip_scale(grad_norm, tc.grad_clip))?;
                self.state.tokens_seen += tokens;
                last_loss = loss;
                let elapsed_s = start.elapsed().as_secs_f64();
                let tokens_per_s = (self.state.tokens_seen - tokens0) as f64 / elapsed_s.max(1e-9);
                sink.on_step(&StepMetrics {
                    step,
                    epoch: self.loader.epoch(),
                    loss,
                    lr,
                    grad_norm,
                    tokens,
                    tokens_per_s,
                    elapsed_s,
                });
            } else {
                let what = if loss.is_finite() { "gradient" } else { "loss" };
                if tc.on_nonfinite == NonFinitePolicy::Stop {
                    return Err(Error::NonFinite { what, step });
                }
                self.state.skipped_batches += 1;
                tracing::warn!(step, what, "skipped a batch with a non-finite value");
            }
            let last = step == tc.steps;
            let mut save = last || (tc.save_every > 0 && step.is_multiple_of(tc.save_every));
            if last || (tc.eval_every > 0 && step.is_multiple_of(tc.eval_every)) {
                // Rank 0 evaluates and decides for every rank (which must all reach the same barriers).
                let _eval = crate::profile::phase("evaluation");
                let mut decided = [0.0f32; 2];
                if rank == 0 {
                    let best = self.evaluate(sink)?;
                    let stop = tc.patience > 0 && self.state.evals_since_best >= tc.patience;
                    decided = [f32::from(u8::from(best)), f32::from(u8::from(stop))];
                }
                if let Some((comm, _)) = &self.world {
                    comm.broadcast(&mut decided)?;
                }
                stopped_early = decided[1] > 0.0;
                save |= decided[0] > 0.0 || stopped_early;
            }
            if save && (self.run_dir.is_some() || world > 1) {
                // Rank 0 writes the checkpoint (atomically) while the others wait at the barriers.
                let _ck = crate::profile::phase("checkpoint");
                self.barrier()?;
                if self.run_dir.is_some() {
                    self.save(sink)?;
                }
                self.barrier()?;
            }
        }
        let elapsed_s = start.elapsed().as_secs_f64();
        Ok(TrainOutcome {
            steps: self.state.step,
            final_loss: last_loss,
            tokens_per_s: (self.state.tokens_seen - tokens0) as f64 / elapsed_s.max(1e-9),
            elapsed_s,
            best: self.state.best.clone(),
            stopped_early,
            skipped_batches: self.state.skipped_batches,
        })
    }

    /// The validation batches: every pair, or consecutive text windows.
    pub fn valid_batches(&self) -> Vec<Batch> {
        let bs = self.cfg.train.batch_size;
        match &self.data {
            Dataset::Pairs(s) => match self.cfg.model.context() {
                Some(t) => s
                    .valid
                    .chunks(bs.max(1))
                    .map(|c| {
                        let refs: Vec<&crate::data::Pair> = c.iter().collect();
                        Batch::Causal(crate::data::shift::CausalBatch::prompt_response(&refs, t, self.cfg.model_eos()))
                    })
                    .collect(),
                None => batches(&s.valid, bs).map(Batch::Pairs).collect(),
            },
            Dataset::Text { valid, .. } => {
                windows(valid, bs, self.cfg.model.context().unwrap_or(1), self.cfg.train.eval_batches)
            }
            Dataset::Chat { valid, .. } => crate::data::loader::dialogue_batches(
                valid,
                bs,
                self.cfg.model.context().unwrap_or(1),
                self.cfg.model_eos(),
            ),
            Dataset::Series(s) => match &self.cfg.model {
                crate::model::ModelConfig::Forecaster(m) => {
                    let starts = s.split_starts(|d| &d.valid, m.context, m.horizon, 1);
                    forecast_batches(s, starts, m, bs, self.cfg.train.eval_batches)
                }
                _ => Vec::new(),
            },
            Dataset::Images(d) => crate::data::loader::image_batches(&d.valid, bs),
            // The texts were checked against the tokenizer when the trainer was built.
            Dataset::Strips(d) => crate::data::loader::strip_batches(&d.valid, &self.tokenizer, bs).unwrap_or_default(),
            // Checked against the tokenizer when the trainer was built, too.
            Dataset::Speech(d) => {
                crate::data::loader::speech_batches(d, &d.valid, &self.tokenizer, bs).unwrap_or_default()
            }
        }
    }

    /// Teacher-forced validation; returns whether it is a new best.
    fn evaluate(&mut self, sink: &mut dyn MetricsSink) -> Result<bool> {
        let st = teacher_forced(&self.model, self.valid_batches().into_iter(), self.store.device())?;
        if st.tokens == 0 {
            // Nothing held out: no loss to report, and no "best" to pick.
            tracing::warn!(step = self.state.step, "the validation split is empty: evaluation skipped");
            return Ok(false);
        }
        let accuracy = (!self.cfg.model.is_forecaster()).then(|| st.accuracy());
        let valid_bleu = match self.cfg.train.select_by {
            Some(crate::config::train::SelectBy::Bleu) => Some(self.valid_bleu()?),
            _ => None,
        };
        let rec =
            EvalRecord { step: self.state.step, valid_loss: st.loss(), valid_token_accuracy: accuracy, valid_bleu };
        tracing::info!(step = rec.step, valid_loss = rec.valid_loss, valid_bleu = rec.valid_bleu, "evaluated");
        sink.on_eval(&rec);
        let improved = self.state.best.as_ref().is_none_or(|b| match (rec.valid_bleu, b.valid_bleu) {
            (Some(now), Some(best)) => now > best,
            _ => rec.valid_loss < b.valid_loss,
        });
        if improved {
            self.state.best = Some(rec.clone());
            self.state.evals_since_best = 0;
        } else {
            self.state.evals_since_best += 1;
        }
        self.state.history.push(rec);
        Ok(improved)
    }

    /// BLEU of greedy decoding of the validation pairs against their targets,
    /// both as detokenised text.
    fn valid_bleu(&self) -> Result<f64> {
        let (Some(ed), Dataset::Pairs(s)) = (self.model.encoder_decoder(), &self.data) else {
            return Err(Error::config(
                "train.select_by",
                "bleu decodes the validation pairs: it needs an encoder–decoder",
            ));
        };
        let opts = crate::decode::DecodeOptions {
            strategy: crate::decode::Strategy::Greedy,
            max_len: 2 * self.cfg.max_target_len + 2,
        };
        let sources: Vec<&[u32]> = s.valid.iter().map(|p| p.source.as_slice()).collect();
        let outputs = crate::decode::decode_by_length(ed, &sources, 256, &opts, self.store.device())?;
        let (mut hyps, mut refs) = (Vec::with_capacity(s.valid.len()), Vec::with_capacity(s.valid.len()));
        for (out, p) in outputs.iter().zip(&s.valid) {
            hyps.push(self.tokenizer.decode(out)?);
            refs.push(self.tokenizer.decode(&p.target)?);
        }
        Ok(crate::eval::translation::bleu(&hyps, &[refs]).score)
    }

    /// Writes `RUN/checkpoint-<step>/` (never with non-finite weights), then
    /// rotates old checkpoints.
    pub fn save(&mut self, sink: &mut dyn MetricsSink) -> Result<PathBuf> {
        let run = self.run_dir.clone().ok_or_else(|| Error::config("run_dir", "this trainer has no run folder"))?;
        let step = self.state.step;
        let dir = checkpoint::checkpoint_dir(&run, step);
        if self.last_saved == Some(step) {
            return Ok(dir);
        }
        if !self.store.all_finite()? {
            return Err(Error::NonFinite { what: "weights (checkpoint not written)", step });
        }
        sink.flush()?;
        self.state.loader = self.loader.state().clone();
        self.state.optimizer_step = self.opt.steps();
        let mut files = checkpoint::model_files(&self.cfg, &self.store, &self.tokenizer)?;
        files.push((OPTIMIZER, self.opt.state_bytes()?));
        files.push((TRAINER_STATE, serde_json::to_vec(&self.state).expect("state serialises")));
        checkpoint::write_checkpoint(&dir, step, &files)?;
        self.last_saved = Some(step);
        checkpoint::rotate(&run, self.cfg.train.keep_last, self.state.best.as_ref().map(|b| b.step), step)?;
        sink.on_checkpoint(step, &dir);
        Ok(dir)
    }
}

/// The loader of a run's training data: text windows, pairs (prompt and
/// response pairs for a language model) or forecast windows, seeded. The
/// error says why the data cannot train this model.
fn training_loader(cfg: &RunConfig, data: &Dataset, tok: &Tokenizer) -> Result<Loader> {
    let (seed, bs) = (cfg.train.seed, cfg.train.batch_size);
    Ok(match (data, cfg.model.context()) {
        // Prompt/response pairs for a language model: only responses are supervised.
        (Dataset::Pairs(s), Some(ctx)) => {
            Loader::Prompts(PairLoader::new(s.train.clone(), bs, seed)?, ctx, cfg.model_eos())
        }
        // Conversations: only the assistant turns are supervised.
        (Dataset::Chat { train, .. }, Some(ctx)) => {
            // Rows keep their first ctx + 1 tokens: later turns are not trained.
            let cut = train.iter().filter(|d| d.ids.len() > ctx + 1).count();
            let lost = train.iter().filter(|d| !d.supervised.iter().take(ctx + 1).skip(1).any(|&s| s)).count();
            if cut > 0 {
                tracing::warn!(
                    "{cut} of {} training conversations are longer than the context of {ctx} tokens and are cut there ({lost} keep no assistant token); a longer --context trains their later turns",
                    train.len()
                );
            }
            Loader::Chat(ChatLoader::new(train.clone(), bs, seed)?, ctx, cfg.model_eos())
        }
        (Dataset::Chat { .. }, None) => return Err(Error::config("model", "conversations train a language model")),
        (Dataset::Pairs(s), _) => {
            Loader::Pairs(PairLoader::new(s.train.clone(), bs, seed)?.with_batch_tokens(cfg.train.batch_tokens))
        }
        (Dataset::Text { train, valid }, Some(ctx)) if train.len() > ctx && valid.len() > ctx => {
            Loader::Windows(WindowLoader::new(train.clone(), bs, ctx, seed)?)
        }
        (Dataset::Text { train, valid }, Some(ctx)) => {
            return Err(Error::config(
                "data",
                format!(
                "the text has {} training and {} validation tokens; each split needs more than the context of {ctx}",
                train.len(),
                valid.len()
            ),
            ))
        }
        (Dataset::Series(s), _) => {
            let crate::model::ModelConfig::Forecaster(m) = &cfg.model else {
                return Err(Error::config("model", "a numeric series trains a forecaster"));
            };
            let stride = match &cfg.data {
                crate::config::DataConfig::Series(d) => d.stride,
                _ => 1,
            };
            let (l, h) = (m.context, m.horizon);
            // Long format: every series needs a window in each split (each is scored on its own).
            for p in &s.panel {
                let d = &p.data;
                let counts = [&d.train, &d.valid, &d.test].map(|r| d.starts(r, l, h, 1).len());
                if counts.contains(&0) {
                    let [a, b, c] = counts;
                    return Err(Error::config(
                        "data",
                        format!(
                            "series '{}' ({} rows): every split needs a window of context {l} + horizon {h}; it has {a} training, {b} validation and {c} test windows (drop it, or use a shorter context or horizon)",
                            p.id,
                            d.series.len()
                        ),
                    ));
                }
                if let Some((name, value, rows)) = d.constant_target() {
                    let msg = format!(
                        "series '{}': column '{name}' holds the same value ({value}) in all {rows} training rows: there is nothing to forecast",
                        p.id
                    );
                    return Err(Error::config("data", msg));
                }
            }
            let starts = s.split_starts(|d| &d.train, l, h, stride);
            let (n_valid, n_test) =
                (s.split_starts(|d| &d.valid, l, h, 1).len(), s.split_starts(|d| &d.test, l, h, 1).len());
            if starts.is_empty() || n_valid == 0 || n_test == 0 {
                return Err(Error::config(
                    "data",
                    format!(
                        "{}: every split needs a window of context {l} + horizon {h}; there are {} training, {n_valid} validation and {n_test} test windows (use a longer series, or a shorter context or horizon)",
                        s.describe(),
                        starts.len()
                    ),
                ));
            }
            if let Some((name, value, rows)) = s.constant_target() {
                let msg = format!(
                    "column '{name}' holds the same value ({value}) in all {rows} training rows: there is nothing to forecast"
                );
                return Err(match &cfg.data {
                    crate::config::DataConfig::Series(d) => match &d.csv {
                        Some(c) => Error::bad_file(c.path.clone(), msg),
                        None => Error::config("data", msg),
                    },
                    _ => Error::config("data", msg),
                });
            }
            Loader::Forecast(ForecastLoader::new(s.scaled.clone(), s.n_targets, starts, (l, h), bs, seed)?)
        }
        (Dataset::Images(d), _) => {
            let augment = match &cfg.data {
                crate::config::DataConfig::Images(c) => c.augment,
                _ => Default::default(),
            };
            Loader::Images(crate::data::loader::ImageLoader::new(d.train.clone(), augment, bs, seed)?)
        }
        (Dataset::Strips(d), _) => {
            let augment = match &cfg.data {
                crate::config::DataConfig::Images(c) => c.augment,
                _ => Default::default(),
            };
            crate::data::loader::strip_targets(&d.valid, tok)?;
            Loader::Strips(crate::data::loader::StripLoader::new(&d.train, tok, augment, bs, seed)?)
        }
        (Dataset::Speech(d), _) => {
            let augment = match &cfg.data {
                crate::config::DataConfig::Speech(c) => c.augment,
                _ => Default::default(),
            };
            if d.strings {
                crate::data::loader::clip_targets(&d.valid, tok)?;
            }
            Loader::Speech(crate::data::loader::SpeechLoader::new(d, tok, augment, bs, seed)?)
        }
        _ => return Err(Error::config("data", "no training examples")),
    })
}

/// Free-running forecast batches (no teacher forcing) over the window
/// starts `all` (e.g. [`SeriesData::split_starts`] of the validation split),
/// every one, or evenly spaced so that there are at most `max_batches`
/// batches (0: all).
///
/// [`SeriesData::split_starts`]: crate::data::series::SeriesData::split_starts
pub fn forecast_batches(
    s: &crate::data::series::SeriesData,
    all: Vec<usize>,
    m: &crate::model::ForecasterConfig,
    batch_size: usize,
    max_batches: usize,
) -> Vec<Batch> {
    let cap = max_batches * batch_size.max(1);
    let every = if max_batches > 0 && all.len() > cap { all.len().div_ceil(cap) } else { 1 };
    let starts: Vec<usize> = all.into_iter().step_by(every).collect();
    starts
        .chunks(batch_size.max(1))
        .map(|c| {
            Batch::Forecast(crate::data::shift::ForecastBatch::new(
                &s.scaled,
                s.n_targets,
                c,
                m.context,
                m.horizon,
                false,
            ))
        })
        .collect()
}

/// Forward and backward over micro-batches whose summed loss is divided by
/// their total supervised-token count, so k micro-batches give the gradient
/// of one batch holding them all. Returns the mean loss, the summed
/// gradients and the token count.
pub fn accumulate(
    model: &Model,
    vars: &[(String, Var)],
    micro: &[BatchTensors],
    rng: &mut Rng,
) -> Result<(f32, GradStore, usize)> {
    accumulate_with(model, vars, micro, rng, LossOptions::default())
}

/// [`accumulate`] with the training loss's options (label smoothing,
/// scheduled sampling).
pub fn accumulate_with(
    model: &Model,
    vars: &[(String, Var)],
    micro: &[BatchTensors],
    rng: &mut Rng,
    opts: LossOptions,
) -> Result<(f32, GradStore, usize)> {
    let total: usize = micro.iter().map(|b| b.n_supervised()).sum();
    accumulate_over(model, vars, micro, std::slice::from_mut(rng), total, opts)
}

/// [`accumulate_with`] with the loss divided by `total` supervised tokens
/// (those of the whole global batch, when this is one rank's share), and
/// micro-batch i drawing from `rngs[i]` (the last one when there are fewer).
pub fn accumulate_over(
    model: &Model,
    vars: &[(String, Var)],
    micro: &[BatchTensors],
    rngs: &mut [Rng],
    total: usize,
    opts: LossOptions,
) -> Result<(f32, GradStore, usize)> {
    let (mut loss, mut acc): (f64, Option<GradStore>) = (0.0, None);
    let last = rngs.len().checked_sub(1).ok_or_else(|| Error::setting("no random stream for the micro-batches"))?;
    for (i, b) in micro.iter().enumerate() {
        let forward = crate::profile::phase("forward");
        let sum = model.training_loss(b, Some(&mut rngs[i.min(last)]), opts)?;
        let scaled = (sum / total.max(1) as f64)?;
        loss += scaled.to_scalar::<f32>()? as f64;
        drop(forward);
        let _backward = crate::profile::phase("backward");
        let g = scaled.backward()?;
        acc = Some(match acc {
            None => g,
            Some(mut a) => {
                for (_, v) in vars {
                    if let Some(gi) = g.get(v.as_tensor()) {
                        let sum = match a.get(v.as_tensor()) {
                            Some(x) => (x + gi)?,
                            None => gi.clone(),
                        };
                        a.insert(v.as_tensor(), sum);
                    }
                }
                a
            }
        });
    }
    Ok((loss as f32, acc.expect("at least one micro-batch"), total))
}

/// The factor that brings the gradient norm down to `max_norm` (1 if it is
/// already below, or clipping is off).
pub fn clip_scale(norm: f32, max_norm: f32) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        (max_norm / (norm + 1e-6)) as f64
    } else {
        1.0
    }
}
