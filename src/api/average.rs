//! Checkpoint averaging: the mean of the weights of a run's last N
//! checkpoints, written as one checkpoint (Vaswani et al. 2017 average the
//! last 5 or 20; it smooths the noise of the final steps and usually adds a
//! little BLEU for free).

use crate::checkpoint::{self, Loaded};
use crate::error::{Error, Result};
use crate::nn::ParamStore;
use candle_core::{DType, Device, Tensor};
use std::path::PathBuf;

/// Which checkpoints to average, and where to write the result.
#[derive(Debug, Clone)]
pub struct AverageJob {
    /// The run folder whose checkpoints are averaged.
    pub from: PathBuf,
    /// How many of its newest complete checkpoints, e.g. 5.
    pub last: usize,
    /// The folder to write; it must not exist yet, or be empty.
    pub out: PathBuf,
}

/// What an average did.
#[derive(Debug, Clone)]
pub struct AverageReport {
    /// The checkpoints averaged, oldest first.
    pub averaged: Vec<PathBuf>,
    /// Their steps, oldest first.
    pub steps: Vec<usize>,
    /// The checkpoint folder written.
    pub out: PathBuf,
}

/// Averages the weights of `job.from`'s last `job.last` complete
/// checkpoints (incomplete or corrupt ones are skipped, as loaders do) and
/// writes a checkpoint with the newest one's configuration, tokenizer and
/// step. All of them must be the same model.
pub fn average(job: &AverageJob) -> Result<AverageReport> {
    let dev = Device::Cpu;
    if job.last == 0 {
        return Err(Error::setting("--last must be at least 1"));
    }
    if job.out.exists() && std::fs::read_dir(&job.out).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Error::Checkpoint {
            path: job.out.clone(),
            msg: "exists and is not empty (nothing was overwritten)".into(),
        });
    }
    // Newest first, verifying only until N complete ones are found.
    let mut chosen: Vec<(usize, PathBuf)> = checkpoint::folder::list(&job.from)
        .into_iter()
        .rev()
        .filter(|(_, p)| checkpoint::folder::verify(p).is_ok())
        .take(job.last)
        .collect();
    if chosen.len() < job.last {
        return Err(Error::Checkpoint {
            path: job.from.clone(),
            msg: format!(
                "holds {} complete checkpoint(s), fewer than the {} to average (train with --keep-last {} to keep them)",
                chosen.len(),
                job.last,
                job.last
            ),
        });
    }
    chosen.reverse();
    let newest: Loaded = checkpoint::load(&chosen[chosen.len() - 1].1, &dev)?;
    // Sums in f64, so the mean does not depend on rounding in the order added.
    let mut sums: Vec<(String, Tensor)> = newest
        .store
        .vars()
        .into_iter()
        .map(|(n, v)| Ok((n, v.as_tensor().to_dtype(DType::F64)?)))
        .collect::<Result<_>>()?;
    for (_, dir) in &chosen[..chosen.len() - 1] {
        let other = checkpoint::load(dir, &dev)?;
        if other.config.model != newest.config.model {
            return Err(Error::Checkpoint {
                path: dir.clone(),
                msg: "is a different model from the newest checkpoint: nothing to average".into(),
            });
        }
        for (name, sum) in sums.iter_mut() {
            let w =
                other.store.get(name).ok_or_else(|| Error::MissingTensor { path: dir.clone(), name: name.clone() })?;
            *sum = (&*sum + w.as_tensor().to_dtype(DType::F64)?)?;
        }
    }
    let store = ParamStore::new(0, &dev);
    crate::model::Model::new(&newest.config.model, store.var_builder())?;
    for (name, sum) in &sums {
        store.set(name, &(sum / job.last as f64)?.to_dtype(DType::F32)?)?;
    }
    let files = checkpoint::model_files(&newest.config, &store, &newest.tokenizer)?;
    checkpoint::write_checkpoint(&job.out, newest.step, &files)?;
    Ok(AverageReport {
        averaged: chosen.iter().map(|(_, p)| p.clone()).collect(),
        steps: chosen.iter().map(|(s, _)| *s).collect(),
        out: job.out.clone(),
    })
}
