//! `shiftlm merge`

use anyhow::Context;
use shiftlm::api::{self, MergeJob};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Fold LoRA adapters into the base weights.

Reads a run or checkpoint fine-tuned with `shiftlm finetune --lora` and writes a
plain model folder (config.json, model.safetensors, tokenizer.json, manifest)
whose weights are W + (alpha/r)·B·A. It computes the same logits as the adapted
model, needs no adapter code, and opens in transformers with from_pretrained
(GPT-2 and Llama) as well as in every shiftlm command.

With --adapter, --from is a base model (shiftlm checkpoint or transformers
folder) and the adapter a PEFT folder, e.g. one trained with PEFT in Python.

Examples:
  shiftlm merge --from runs/finetune-notes --out merged
  shiftlm merge --from ./gpt2-folder --adapter ./peft-adapter --out merged
  python3 -c \"from transformers import AutoModelForCausalLM as M; M.from_pretrained('merged')\"";

#[derive(clap::Args, Debug)]
pub struct MergeArgs {
    /// A run or checkpoint with LoRA adapters.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// A PEFT LoRA adapter folder to fold into --from (a base model folder).
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// The folder to write (must not exist yet, or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// End with one JSON line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: MergeArgs) -> anyhow::Result<()> {
    let job = MergeJob { from: a.from.clone(), adapter: a.adapter.clone(), out: a.out.clone() };
    let r = api::merge(&job).with_context(|| format!("merging into {}", a.out.display()))?;
    eprintln!(
        "merged {} adapters (rank {}, alpha {}) from {} into {}",
        r.lora.targets.join(", "),
        r.lora.r,
        r.lora.alpha,
        r.from.display(),
        r.out.display()
    );
    if a.json {
        println!(
            "{}",
            serde_json::json!({"from": r.from, "out": r.out, "r": r.lora.r, "alpha": r.lora.alpha, "targets": r.lora.targets})
        );
    }
    Ok(())
}
