//! `shiftlm finetune`

use super::progress::Progress;
use anyhow::Context;
use shiftlm::api::{self, FinetuneJob};
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
(decoder input [BOS]+y, labels y+[EOS]); or a .jsonl file of conversations,
{\"messages\": [{\"role\": \"system\"|\"user\"|\"assistant\", \"content\": …}, …]} per
line, for a language model: each is written out by the model's chat template
(tokenizer_config.json's chat_template, or --chat-template) and only the
assistant turns, each with its end token, are scored. A tenth is held out (the end of a text;
a hash-chosen tenth of pairs) and the held-out loss and perplexity are measured
before and after, in the same run.

The run folder holds ordinary shiftlm checkpoints: `shiftlm eval`, `generate`
and `train --resume` work on it, and GPT-2/Llama checkpoints open in
transformers with from_pretrained.

Examples:
  shiftlm finetune --from runs/gpt-baby-input --data more.txt --steps 300
  shiftlm finetune --from ./gpt2-hf-folder --data chat.jsonl --lora      # {\"prompt\":…,\"response\":…}
  shiftlm finetune --from ./gpt2-hf-folder --data notes.txt --lr 1e-4 --out runs/notes --json
  shiftlm finetune --from runs/chat-gpt --data dialogues.jsonl --steps 300   # {\"messages\": […]}
  shiftlm finetune --from runs/gpt-baby-input --data more.txt --lora --profile prof   # where a step goes";

#[derive(clap::Args, Debug)]
pub struct FinetuneArgs {
    /// A shiftlm checkpoint or run folder, or a transformers GPT-2/Llama folder.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// A PEFT LoRA adapter folder on top of --from, to train further.
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Text (language models) or TSV/JSONL pairs (encoder–decoders), or JSONL
    /// conversations ({"messages": […]}, language models).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Conversations: the chat template, chatml or a FILE holding a Jinja2 template
    /// (default: the model's own, from its tokenizer_config.json).
    #[arg(long, value_name = "chatml|FILE")]
    pub chat_template: Option<String>,
    /// Optimizer steps.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub steps: usize,
    /// Peak learning rate (cosine decay to a tenth of it, 10% warmup).
    #[arg(long, default_value_t = 1e-4, value_name = "LR")]
    pub lr: f64,
    /// Examples per batch (default: the model's training config).
    #[arg(long, value_name = "N")]
    pub batch_size: Option<usize>,
    /// Matrix products in f32 (the default) or bf16 (mixed precision, as `train --precision`;
    /// CPUs with AVX512_BF16).
    #[arg(long, value_name = "P", value_parser = ["f32", "bf16"], default_value = "f32")]
    pub precision: String,
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
    #[command(flatten)]
    pub profiling: super::profiling::ProfileArgs,
}

pub fn run(a: FinetuneArgs) -> anyhow::Result<()> {
    let lora = a.lora.then(|| shiftlm::nn::lora::LoraConfig {
        r: a.lora_r,
        alpha: a.lora_alpha,
        targets: a.lora_targets.clone(), // empty: PEFT's defaults for the family
        dropout: a.lora_dropout,
    });
    let job = FinetuneJob {
        from: a.from.clone(),
        adapter: a.adapter.clone(),
        data: a.data.clone(),
        steps: a.steps,
        lr: a.lr,
        batch_size: a.batch_size,
        out: a.out.clone().unwrap_or_else(|| api::finetune::default_out(&a.data)),
        lora,
        freeze: shiftlm::train::Freeze {
            embeddings: a.freeze_embeddings,
            blocks: a.freeze_blocks.unwrap_or(0),
            all_but_head: a.freeze_all_but_head,
        },
        precision: a.precision.parse()?,
        chat_template: a.chat_template.clone(),
    };
    // As train: skip the first step, then up to five.
    a.profiling.arm((2.min(a.steps), 6.min(a.steps)), a.steps)?;
    let mut progress = Progress::default();
    let r = api::finetune(&job, &mut progress);
    progress.finish();
    let r = r.with_context(|| format!("fine-tuning {}", a.from.display()))?;
    a.profiling.finish(None)?;
    match (&r.before, &r.after) {
        (Some(before), Some(after)) => {
            println!("held-out ({} tokens)   before     after    change", after.tokens);
            println!("  loss              {:>9.4} {:>9.4} {:>+9.4}", before.loss, after.loss, after.loss - before.loss);
            println!(
                "  perplexity        {:>9.3} {:>9.3} {:>+9.3}",
                before.perplexity,
                after.perplexity,
                after.perplexity - before.perplexity
            );
        }
        _ => println!("nothing was held out of --data, so the loss before and after is not measured"),
    }
    eprintln!("checkpoint: {}", r.checkpoint.display());
    if let Some(dir) = &r.adapter {
        eprintln!(
            "LoRA adapter (PEFT layout): {}; fold it in with: shiftlm merge --from {} --out DIR",
            dir.display(),
            r.run.display()
        );
    }
    if a.json {
        let line = serde_json::json!({
            "before": r.before.as_ref().map(|b| serde_json::json!({"loss": b.loss, "perplexity": b.perplexity})),
            "after": r.after.as_ref().map(|a| serde_json::json!({"loss": a.loss, "perplexity": a.perplexity})),
            "loss_change": r.before.as_ref().zip(r.after.as_ref()).map(|(b, a)| a.loss - b.loss),
            "held_out_tokens": r.after.as_ref().map_or(0, |a| a.tokens),
            "steps": r.outcome.steps,
            "tokens_per_s": r.outcome.tokens_per_s,
            "checkpoint": r.checkpoint,
            "run": r.run,
            "trainable_parameters": r.trainable_parameters,
            "adapter": r.adapter,
        });
        println!("{line}");
    }
    Ok(())
}
