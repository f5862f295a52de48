//! Merge jobs: LoRA adapters folded into the base weights, written as a
//! plain model folder that needs no adapter code.

use crate::checkpoint::{self, Loaded};
use crate::error::{Error, Result};
use crate::nn::lora::LoraConfig;
use crate::nn::ParamStore;
use candle_core::Device;
use std::path::PathBuf;

/// What to merge, and where.
#[derive(Debug, Clone)]
pub struct MergeJob {
    /// A run or checkpoint with LoRA adapters, or (with `adapter`) a base model.
    pub from: PathBuf,
    /// A PEFT adapter folder to fold into `from`.
    pub adapter: Option<PathBuf>,
    /// The folder to write; it must not exist yet, or be empty.
    pub out: PathBuf,
}

/// What a merge did.
#[derive(Debug, Clone)]
pub struct MergeReport {
    /// The checkpoint the adapters came from.
    pub from: PathBuf,
    /// The model folder written.
    pub out: PathBuf,
    /// The configuration of the adapters merged.
    pub lora: LoraConfig,
}

/// Folds the adapters into the base weights and writes `job.out`: a
/// checkpoint folder (with a manifest) that opens in `transformers` and in
/// every shiftlm command.
pub fn merge(job: &MergeJob) -> Result<MergeReport> {
    let dev = Device::Cpu;
    let l: Loaded = match &job.adapter {
        Some(adapter) => checkpoint::load_with_adapter(&job.from, adapter, &dev)?,
        None => checkpoint::load(&job.from, &dev)?,
    };
    let Some(lora) = l.config.model.lora().cloned() else {
        return Err(Error::Checkpoint {
            path: l.dir.clone(),
            msg: "has no LoRA adapters to merge (train some with shiftlm finetune --lora)".into(),
        });
    };
    if job.out.exists() && std::fs::read_dir(&job.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::Checkpoint {
            path: job.out.clone(),
            msg: "exists and is not empty (nothing was overwritten)".into(),
        });
    }
    let merged = checkpoint::hf::merged_weights(&l.config.model, &l.store)?;
    let mut cfg = l.config.clone();
    cfg.model.set_lora(None)?;
    // Build the plain model so that every name and shape is checked.
    let store = ParamStore::new(0, &dev);
    crate::model::Model::new(&cfg.model, store.var_builder())?;
    for (name, w) in &merged {
        store.set(name, w)?;
    }
    let files = checkpoint::model_files(&cfg, &store, &l.tokenizer)?;
    checkpoint::write_checkpoint(&job.out, l.step, &files)?;
    Ok(MergeReport { from: l.dir, out: job.out.clone(), lora })
}
