//! `shiftlm finetune`

use super::progress::Progress;
use super::report::{causal_report, CausalReport};
use anyhow::Context;
use shiftlm::config::{DataConfig, TokenizerKind};
use shiftlm::data::text::TextConfig;
use shiftlm::train::metrics::{JsonlSink, Tee};
use shiftlm::train::{MetricsSink, Trainer};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Fine-tune a model on your data, starting from its weights.

--from is a shiftlm checkpoint or run folder, or a Hugging Face GPT-2 or Llama
folder (config.json, model.safetensors or sharded model-0000x-of-0000y.safetensors
with model.safetensors.index.json, tokenizer.json). Only local files are read;
F16/BF16 weights are widened to f32. The model keeps its tokenizer, so --data is
tokenized the way the model was trained.

--data is plain UTF-8 text for a language model (continued pretraining: inputs
x[0..T], labels x[1..T+1]); or a .jsonl file of {\"prompt\": …, \"response\": …}
lines (or a .tsv of prompt<TAB>response) for a language model, which reads
prompt+response+EOS but is scored on the response and EOS only (the prompt's
labels are masked by the shift core); or TSV/JSONL pairs for an encoder–decoder
(decoder input [BOS]+y, labels y+[EOS]). A tenth is held out (the end of a text;
a hash-chosen tenth of pairs) and the held-out loss and perplexity are measured
before and after, in the same run.

The run folder holds ordinary shiftlm checkpoints: `shiftlm eval`, `generate`
and `train --resume` work on it, and GPT-2/Llama checkpoints open in
transformers with from_pretrained.

Examples:
  shiftlm finetune --from runs/gpt-baby-input --data more.txt --steps 300
  shiftlm finetune --from ./gpt2-hf-folder --data chat.jsonl --lora      # {\"prompt\":…,\"response\":…}
  shiftlm finetune --from ./gpt2-hf-folder --data notes.txt --lr 1e-4 --out runs/notes --json";

#[derive(clap::Args, Debug)]
pub struct FinetuneArgs {
    /// A shiftlm checkpoint or run folder, or a transformers GPT-2/Llama folder.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// A PEFT LoRA adapter folder on top of --from, to train further.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Text (language models) or TSV/JSONL pairs (encoder–decoders).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Optimizer steps.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub steps: usize,
    /// Peak learning rate (cosine decay to a tenth of it, 10% warmup).
    #[arg(long, default_value_t = 1e-4, value_name = "LR")]
    pub lr: f64,
    /// Examples per batch (default: the model's training config).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Run folder (must not hold checkpoints already; default runs/finetune-<data>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Train LoRA adapters only; the base weights stay frozen (no gradients, no
    /// optimizer state). The adapters are also written alone in PEFT's layout
    /// to RUN/adapter; `shiftlm merge` folds them into a plain model.
    #[arg(long)]
    pub lora: bool,
    /// LoRA rank.
    #[arg(long, default_value_t = 8, value_name = "R", requires = "lora")]
    pub lora_r: usize,
    /// LoRA scale numerator (the update is scaled by alpha / r).
    #[arg(long, default_value_t = 16.0, value_name = "A", requires = "lora")]
    pub lora_alpha: f64,
    /// Dropout on the adapters' inputs during training.
    #[arg(long, default_value_t = 0.0, value_name = "P", requires = "lora")]
    pub lora_dropout: f32,
    /// Layers to adapt, comma-separated, as PEFT's target_modules: a name matches
    /// a layer whose dotted path ends with it (c_attn, attn.c_proj), `*` is a
    /// wildcard over the whole path (transformer.h.1.*). Default: c_attn for
    /// GPT-2, q_proj,v_proj for Llama, as PEFT does.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', requires = "lora")]
    pub lora_targets: Vec<String>,
    /// Freeze the token (and position) embeddings.
    #[arg(long, conflicts_with = "lora")]
    pub freeze_embeddings: bool,
    /// Freeze the first N blocks (GPT-2, Llama).
    #[arg(long, value_name = "N", conflicts_with = "lora")]
    pub freeze_blocks: Option<usize>,
    /// Train only the head (final norm and output projection; a tied head is the token embedding).
    #[arg(long, conflicts_with = "lora")]
    pub freeze_all_but_head: bool,
    /// End with one JSON line: held-out loss and perplexity before and after.
    #[arg(long)]
    pub json: bool,
}

fn measure(t: &Trainer) -> anyhow::Result<CausalReport> {
    let dev = t.store.device().clone();
    Ok(causal_report(&shiftlm::eval::teacher_forced(&t.model, t.valid_batches().into_iter(), &dev)?))
}

pub fn run(a: FinetuneArgs) -> anyhow::Result<()> {
    let dev = candle_core::Device::Cpu;
    let from = match &a.adapter {
        Some(adapter) => shiftlm::checkpoint::load_with_adapter(&a.from, adapter, &dev)?,
        None => shiftlm::checkpoint::load(&a.from, &dev)?,
    };
    if from.config.model.is_forecaster() {
        anyhow::bail!(
            "{} is a forecaster; fine-tuning covers language models and encoder–decoders. Continue its training with `shiftlm train --resume RUN --steps N`, or train a forecaster on the new CSV with `shiftlm train --data FILE.csv --target COLUMN`",
            from.dir.display()
        );
    }
    if a.adapter.is_some() && a.lora {
        anyhow::bail!("--adapter already brings LoRA adapters; drop --lora (or its settings) to train them further");
    }
    if a.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    let mut cfg = from.config.clone();
    let pairs = a
        .data
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("tsv"));
    cfg.data = if cfg.model.is_causal() && !pairs {
        DataConfig::Text(TextConfig {
            paths: vec![a.data.clone()],
            tokenizer: TokenizerKind::Byte, // unused: the model's tokenizer is passed below
            bpe_vocab_size: 0,
            tokenizer_file: None,
            valid_fraction: 0.1,
            eot_id: Some(cfg.model_eos()),
        })
    } else {
        DataConfig::File { path: a.data.clone(), tokenizer: TokenizerKind::Char, valid_fraction: 0.1 }
    };
    if a.lora {
        let targets = if !a.lora_targets.is_empty() {
            a.lora_targets.clone()
        } else if matches!(cfg.model, shiftlm::model::ModelConfig::Llama(_)) {
            vec!["q_proj".into(), "v_proj".into()]
        } else {
            vec!["c_attn".into()]
        };
        let lora = shiftlm::nn::lora::LoraConfig { r: a.lora_r, alpha: a.lora_alpha, targets, dropout: a.lora_dropout };
        lora.validate()?;
        cfg.model.set_lora(Some(lora))?;
    }
    let t = &mut cfg.train;
    t.freeze = shiftlm::train::Freeze {
        embeddings: a.freeze_embeddings,
        blocks: a.freeze_blocks.unwrap_or(0),
        all_but_head: a.freeze_all_but_head,
    };
    t.steps = a.steps;
    t.optimizer.lr = a.lr;
    t.schedule.warmup_steps = a.steps / 10;
    t.schedule.decay_steps = a.steps;
    t.save_every = t.save_every.min(a.steps);
    t.eval_every = 0; // measured before and after instead
    t.batch_size = a.batch_size.unwrap_or(t.batch_size);
    cfg.validate()?;
    let (data, tok) =
        shiftlm::data::load(&cfg.data, cfg.train.seed, Some(&from.tokenizer)).context("loading --data")?;
    let stem = a.data.file_stem().and_then(|s| s.to_str()).unwrap_or("data").to_string();
    let out = a.out.clone().unwrap_or_else(|| super::train::fresh_dir(&format!("finetune-{stem}")));
    if !shiftlm::checkpoint::list(&out).is_empty() {
        anyhow::bail!("{}: already holds checkpoints; choose another --out (nothing was overwritten)", out.display());
    }
    let created = !out.exists();
    std::fs::create_dir_all(&out).with_context(|| format!("creating run folder {}", out.display()))?;
    // Errors before training leave no empty run folder behind.
    let abandon = |e: anyhow::Error| -> anyhow::Error {
        if created {
            let _ = std::fs::remove_dir_all(&out);
        }
        e
    };
    let mut trainer = Trainer::new(cfg, data, tok, Some(out.clone())).map_err(|e| abandon(e.into()))?;
    // Start from the loaded weights, not a fresh initialisation.
    for (name, var) in from.store.vars() {
        trainer.store.set(&name, var.as_tensor())?;
    }
    let trainable: usize = trainer.store.trainable_vars().iter().map(|(_, v)| v.as_tensor().elem_count()).sum();
    if trainable == 0 && !trainer.cfg.train.freeze.is_none() {
        return Err(abandon(anyhow::anyhow!("the --freeze options leave nothing to train")));
    }
    if trainer.cfg.model.lora().is_some() && trainable == 0 {
        return Err(abandon(anyhow::anyhow!("--lora-targets matched no layer of this model (GPT-2: c_attn, c_proj, c_fc; Llama: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)")));
    }
    eprintln!(
        "fine-tuning {trainable} of {} parameters from {} on {}, {} steps of {} → {}",
        trainer.store.num_params(),
        from.dir.display(),
        trainer.data.describe(),
        a.steps,
        trainer.cfg.train.batch_size,
        out.display()
    );
    let before = measure(&trainer)?;
    let mut progress = Progress::new(a.steps, 0);
    let mut jsonl = JsonlSink::open(&out.join("metrics.jsonl"), 0)?;
    let outcome = {
        let mut sinks = Tee(vec![&mut progress, &mut jsonl]);
        let r = trainer.run(&mut sinks);
        sinks.flush().and(r)
    };
    progress.finish();
    let outcome = outcome.with_context(|| format!("fine-tuning {}", out.display()))?;
    let after = measure(&trainer)?;
    println!("held-out ({} tokens)   before     after    change", after.tokens);
    println!("  loss              {:>9.4} {:>9.4} {:>+9.4}", before.loss, after.loss, after.loss - before.loss);
    println!(
        "  perplexity        {:>9.3} {:>9.3} {:>+9.3}",
        before.perplexity,
        after.perplexity,
        after.perplexity - before.perplexity
    );
    let checkpoint = shiftlm::checkpoint::checkpoint_dir(&out, outcome.steps);
    eprintln!("checkpoint: {}", checkpoint.display());
    let adapter = if trainer.cfg.model.lora().is_some() {
        let dir = out.join("adapter");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let base = from.dir.display().to_string();
        for (name, bytes) in shiftlm::nn::lora::peft_files(&trainer.cfg.model, &trainer.store, &base)? {
            shiftlm::checkpoint::write_atomic(&dir.join(name), &bytes)?;
        }
        eprintln!(
            "LoRA adapter (PEFT layout): {}; fold it in with: shiftlm merge --from {} --out DIR",
            dir.display(),
            out.display()
        );
        Some(dir)
    } else {
        None
    };
    if a.json {
        let line = serde_json::json!({
            "before": {"loss": before.loss, "perplexity": before.perplexity},
            "after": {"loss": after.loss, "perplexity": after.perplexity},
            "loss_change": after.loss - before.loss,
            "held_out_tokens": after.tokens,
            "steps": outcome.steps,
            "tokens_per_s": outcome.tokens_per_s,
            "checkpoint": checkpoint,
            "run": out,
            "trainable_parameters": trainable,
            "adapter": adapter,
        });
        println!("{line}");
    }
    Ok(())
}
