//! `shiftlm merge`

use anyhow::Context;
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
    let dev = candle_core::Device::Cpu;
    let l = match &a.adapter {
        Some(adapter) => shiftlm::checkpoint::load_with_adapter(&a.from, adapter, &dev)?,
        None => shiftlm::checkpoint::load(&a.from, &dev)?,
    };
    let Some(lora) = l.config.model.lora().cloned() else {
        anyhow::bail!("{}: has no LoRA adapters to merge (train some with shiftlm finetune --lora)", l.dir.display());
    };
    if a.out.exists() && std::fs::read_dir(&a.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        anyhow::bail!("{}: exists and is not empty (nothing was overwritten)", a.out.display());
    }
    let merged = shiftlm::nn::lora::merged_weights(&l.config.model, &l.store)?;
    let mut cfg = l.config.clone();
    cfg.model.set_lora(None)?;
    // Build the plain model so that every name and shape is checked.
    let store = shiftlm::nn::ParamStore::new(0, &dev);
    shiftlm::model::Model::new(&cfg.model, store.var_builder())?;
    for (name, w) in &merged {
        store.set(name, w)?;
    }
    let files = shiftlm::checkpoint::model_files(&cfg, &store, &l.tokenizer)?;
    shiftlm::checkpoint::write_checkpoint(&a.out, l.step, &files)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "merged {} adapters (rank {}, alpha {}) from {} into {}",
        lora.targets.join(", "),
        lora.r,
        lora.alpha,
        l.dir.display(),
        a.out.display()
    );
    if a.json {
        println!(
            "{}",
            serde_json::json!({"from": l.dir, "out": a.out, "r": lora.r, "alpha": lora.alpha, "targets": lora.targets})
        );
    }
    Ok(())
}
