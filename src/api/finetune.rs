//! Fine-tuning jobs: a shiftlm checkpoint or a `transformers` GPT-2/Llama
//! folder (optionally with a PEFT adapter) trained further on new data,
//! fully, partly frozen, or through LoRA adapters; held-out loss and
//! perplexity are measured before and after, in the same run.

use super::train::{fit, refuse_existing_run, run_start};
use crate::checkpoint::{self, Loaded};
use crate::config::{DataConfig, Freeze, RunConfig, TokenizerKind};
use crate::data::text::TextConfig;
use crate::error::{Error, Result};
use crate::eval::CausalReport;
use crate::model::ModelConfig;
use crate::nn::lora::LoraConfig;
use crate::train::{MetricsSink, TrainOutcome, Trainer};
use candle_core::Device;
use std::path::{Path, PathBuf};

/// A fine-tune.
#[derive(Debug, Clone)]
pub struct FinetuneJob {
    /// A shiftlm checkpoint or run folder, or a `transformers` GPT-2/Llama folder.
    pub from: PathBuf,
    /// A PEFT LoRA adapter folder on top of `from`, to train further.
    pub adapter: Option<PathBuf>,
    /// Text (language models), or `.jsonl`/`.tsv` pairs (prompt/response for
    /// a language model, source/target for an encoder–decoder).
    pub data: PathBuf,
    /// Optimizer steps, e.g. 300.
    pub steps: usize,
    /// Peak learning rate: 10% warmup, then the model's schedule (cosine to
    /// a tenth for the GPT and Llama presets).
    pub lr: f64,
    /// Examples per batch (default: the model's training config).
    pub batch_size: Option<usize>,
    /// The run folder; it must not hold checkpoints yet.
    pub out: PathBuf,
    /// Train LoRA adapters only (`targets` empty: PEFT's defaults, `c_attn`
    /// for GPT-2 and `q_proj`, `v_proj` for Llama).
    pub lora: Option<LoraConfig>,
    /// What stays frozen in a full fine-tune.
    pub freeze: Freeze,
    /// Conversations (`data` a JSONL file of `{"messages": …}`): the chat
    /// template, `chatml` or a Jinja2 file; `None` takes the model's own
    /// (its run's, or its folder's `tokenizer_config.json`).
    pub chat_template: Option<String>,
    /// The matrix products' precision (f32, or bf16 where the CPU has it).
    pub precision: crate::ops::cpu::Precision,
}

/// What a fine-tune reports.
#[derive(Debug, Clone)]
pub struct FinetuneReport {
    /// Held-out metrics before training (`None` when nothing is held out)…
    pub before: Option<CausalReport>,
    /// …and after.
    pub after: Option<CausalReport>,
    /// How training went.
    pub outcome: TrainOutcome,
    /// The run folder (`out`).
    pub run: PathBuf,
    /// The last checkpoint written.
    pub checkpoint: PathBuf,
    /// The adapters alone in PEFT's layout (`RUN/adapter`), after a LoRA fine-tune.
    pub adapter: Option<PathBuf>,
    /// Parameters that trained: the LoRA adapters, or all that are not frozen.
    pub trainable_parameters: usize,
}

/// The model `job` starts from.
pub fn load_base(job: &FinetuneJob) -> Result<Loaded> {
    let dev = Device::Cpu;
    match &job.adapter {
        Some(adapter) => checkpoint::load_with_adapter(&job.from, adapter, &dev),
        None => checkpoint::load(&job.from, &dev),
    }
}

/// Fine-tunes `job.from` on `job.data`.
pub fn finetune(job: &FinetuneJob, sink: &mut dyn MetricsSink) -> Result<FinetuneReport> {
    let from = load_base(job)?;
    let mut trainer = prepare(job, &from)?;
    let trainable = trainer.store.trainable_vars().iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
    sink.on_start(&run_start(&trainer, Some(&from.dir))?);
    let before = measure(&trainer)?;
    let outcome = fit(&mut trainer, sink, false)?;
    let after = measure(&trainer)?;
    let adapter = if trainer.cfg.model.lora().is_some() {
        let dir = job.out.join("adapter");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let base = from.dir.display().to_string();
        for (name, bytes) in checkpoint::hf::peft_files(&trainer.cfg.model, &trainer.store, &base)? {
            crate::io::write_atomic(&dir.join(name), &bytes)?;
        }
        Some(dir)
    } else {
        None
    };
    Ok(FinetuneReport {
        before,
        after,
        checkpoint: checkpoint::checkpoint_dir(&job.out, outcome.steps),
        outcome,
        run: job.out.clone(),
        adapter,
        trainable_parameters: trainable,
    })
}

/// The trainer of a fine-tune, holding `from`'s weights. Errors before
/// training leave no empty run folder behind.
pub fn prepare(job: &FinetuneJob, from: &Loaded) -> Result<Trainer> {
    let cfg = config(job, from)?;
    let (data, tok) = crate::data::load(&cfg.data, cfg.train.seed, Some(&from.tokenizer))?;
    let out = &job.out;
    refuse_existing_run(out, "choose another --out")?;
    let created = !out.exists();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let abandon = |e: Error| -> Error {
        if created {
            let _ = std::fs::remove_dir_all(out);
        }
        e
    };
    let mut trainer = Trainer::new(cfg, data, tok, Some(out.clone())).map_err(abandon)?;
    trainer.lock_run_dir().map_err(abandon)?;
    // Start from the loaded weights, not a fresh initialisation.
    for (name, var) in from.store.vars() {
        trainer.store.set(&name, var.as_tensor())?;
    }
    let trainable: usize = trainer.store.trainable_vars().iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
    if trainable == 0 && !trainer.cfg.train.freeze.is_none() {
        return Err(abandon(Error::setting("the --freeze options leave nothing to train")));
    }
    if trainer.cfg.model.lora().is_some() && trainable == 0 {
        return Err(abandon(Error::setting("--lora-targets matched no layer of this model (GPT-2: c_attn, c_proj, c_fc; Llama: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)")));
    }
    Ok(trainer)
}

/// The run config of a fine-tune: the model's own, on the job's data
/// (text, or prompt/response or source/target pairs), with its LoRA,
/// freezing, steps and learning rate (10% warmup, decay to the last step).
pub fn config(job: &FinetuneJob, from: &Loaded) -> Result<RunConfig> {
    let bad = |msg: &str| Err(Error::setting(msg));
    if from.config.model.is_forecaster() {
        return Err(Error::Checkpoint {
            path: from.dir.clone(),
            msg: "is a forecaster; fine-tuning covers language models and encoder–decoders. Continue its training with `shiftlm train --resume RUN --steps N`, or train a forecaster on the new CSV with `shiftlm train --data FILE.csv --target COLUMN`".into(),
        });
    }
    if job.adapter.is_some() && job.lora.is_some() {
        return bad("--adapter already brings LoRA adapters; drop --lora (or its settings) to train them further");
    }
    if job.steps == 0 {
        return bad("--steps must be at least 1");
    }
    let mut cfg = from.config.clone();
    // A model's template goes on with it (a Hugging Face folder's too).
    let own = from.chat_template();
    cfg.chat_template = match &own {
        Ok(t) => t.as_ref().map(Into::into),
        // Fine-tuning on text needs no template; say that it is not kept.
        Err(e) => {
            tracing::warn!("{}: its chat template is not kept: {e}", from.dir.display());
            None
        }
    };
    let chat = cfg.model.is_causal() && crate::data::chat::is_conversation_file(&job.data);
    if job.chat_template.is_some() && !chat {
        return bad("--chat-template goes with conversations: a JSONL --data file of {\"messages\": [...]} lines, for a language model");
    }
    let pairs = job
        .data
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("tsv"));
    cfg.data = if chat {
        let template = match &job.chat_template {
            Some(name) => crate::data::chat::ChatTemplate::named(name, from.template_tokens()?)?,
            None => own?.ok_or_else(|| Error::Checkpoint {
                path: from.dir.clone(),
                msg: "has no chat template (tokenizer_config.json's chat_template, or chat_template.jinja): pass --chat-template chatml|FILE".into(),
            })?,
        };
        cfg.chat_template = Some((&template).into());
        DataConfig::Chat(crate::data::chat::ChatDataConfig {
            path: job.data.clone(),
            valid: None,
            valid_fraction: 0.1,
            tokenizer: TokenizerKind::Byte, // unused: the model's tokenizer is passed below
            bpe_vocab_size: None,
            template: (&template).into(),
        })
    } else if cfg.model.is_causal() && !pairs {
        DataConfig::Text(TextConfig {
            paths: vec![job.data.clone()],
            tokenizer: TokenizerKind::Byte, // unused: the model's tokenizer is passed below
            bpe_vocab_size: 0,
            tokenizer_file: None,
            valid_fraction: 0.1,
            eot_id: Some(cfg.model_eos()),
        })
    } else {
        DataConfig::File {
            path: job.data.clone(),
            target: None,
            valid: None,
            valid_target: None,
            tokenizer: TokenizerKind::Char,
            valid_fraction: 0.1,
            bpe_vocab_size: None,
            tokenizer_file: None,
            // The model's tokenizer is passed below; this says which kind it is.
            shared_vocab: !matches!(from.tokenizer, crate::data::Tokenizer::Pair { .. }),
        }
    };
    if let Some(lora) = &job.lora {
        let mut lora = lora.clone();
        if lora.targets.is_empty() {
            lora.targets = if matches!(cfg.model, ModelConfig::Llama(_)) {
                vec!["q_proj".into(), "v_proj".into()]
            } else {
                vec!["c_attn".into()]
            };
        }
        lora.validate()?;
        cfg.model.set_lora(Some(lora))?;
    }
    let t = &mut cfg.train;
    t.freeze = job.freeze.clone();
    t.precision = job.precision;
    t.steps = job.steps;
    t.optimizer.lr = job.lr;
    // As `--lr` promises, whatever the model was trained with: 10% warmup,
    // then cosine decay to a tenth at the last step.
    t.schedule.kind = crate::optim::ScheduleKind::Cosine;
    t.schedule.min_lr_ratio = 0.1;
    t.schedule.warmup_steps = job.steps / 10;
    t.schedule.decay_steps = job.steps;
    t.save_every = t.save_every.min(job.steps);
    t.eval_every = 0; // measured before and after instead
    t.batch_size = job.batch_size.unwrap_or(t.batch_size);
    cfg.validate()?;
    Ok(cfg)
}

/// Teacher-forced metrics on the trainer's held-out batches.
/// Teacher-forced metrics on the trainer's held-out batches, or `None` when
/// the held-out split is empty (a loss of 0 would be a lie).
fn measure(t: &Trainer) -> Result<Option<CausalReport>> {
    let dev = t.store.device().clone();
    let stats = crate::eval::teacher_forced(&t.model, t.valid_batches().into_iter(), &dev)?;
    Ok((stats.tokens > 0).then(|| CausalReport::new(&stats)))
}

/// `runs/finetune-<stem of data>` (or `-2`, … if taken).
pub fn default_out(data: &Path) -> PathBuf {
    let stem = data.file_stem().and_then(|s| s.to_str()).unwrap_or("data").to_string();
    super::train::fresh_dir(&format!("finetune-{stem}"))
}
