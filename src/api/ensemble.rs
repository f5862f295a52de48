//! `train --ensemble N` for forecasting: N members trained alike but from
//! seeds `seed, seed + 1, …` (initial weights, dropout and batch order
//! differ; the data does not), each into `RUN/member-<k>/` and each kept at
//! its best validation checkpoint. The ensemble forecasts the median of its
//! members' forecasts, quantile by quantile
//! ([`crate::eval::forecast::predict_quantiles`]). `RUN/ensemble.json` names
//! the members' checkpoints, so `eval` and `forecast` read the run folder as
//! one model.

use super::train::{fit, prepare, refuse_existing_run, run_start, select_checkpoint, TrainJob};
use crate::checkpoint::Loaded;
use crate::config::DataConfig;
use crate::error::{Error, Result};
use crate::eval::forecast::ForecastReport;
use crate::model::Forecaster;
use crate::train::{MetricsSink, Trainer};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file in an ensemble's run folder that lists its members.
pub const MANIFEST: &str = "ensemble.json";

/// The members an ensemble folder holds (`ensemble.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleManifest {
    /// Each member, in seed order.
    pub members: Vec<EnsembleMember>,
}

/// One member of an ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleMember {
    /// Its training seed.
    pub seed: u64,
    /// The checkpoint the ensemble uses (its best validation one),
    /// relative to the ensemble folder, e.g. `member-1/checkpoint-000400`.
    pub checkpoint: PathBuf,
}

/// Whether `dir` is an ensemble's run folder.
pub fn is_ensemble(dir: &Path) -> bool {
    dir.join(MANIFEST).is_file()
}

/// Checks that a new ensemble may be trained into `job.out` (a new or empty
/// folder), that `n` is at least 2, and that the job trains a forecaster.
pub fn check(job: &TrainJob, n: usize) -> Result<()> {
    if n < 2 {
        return Err(Error::setting(format!("--ensemble {n}: an ensemble needs at least 2 members (1: one model)")));
    }
    if n > 64 {
        return Err(Error::setting(format!("--ensemble {n}: at most 64 members")));
    }
    if !job.config.model.is_forecaster() {
        return Err(Error::setting(
            "--ensemble applies to forecasters (--data FILE.csv --target COLUMN or --task series)",
        ));
    }
    refuse_many_series(job, "--ensemble")?;
    refuse_existing_run(&job.out, "choose another --out")
}

/// An error for `what` (`--ensemble`, `--model auto`) on many series
/// (`--id`), which they do not handle yet.
pub fn refuse_many_series(job: &TrainJob, what: &str) -> Result<()> {
    if let DataConfig::Series(d) = &job.config.data {
        if d.csv.as_ref().is_some_and(|c| c.id.is_some()) {
            return Err(Error::setting(format!(
                "{what} reads one series; with --id (many series) train one kind, e.g. --model nlinear"
            )));
        }
    }
    Ok(())
}

/// The job of member `k` (0-based) of an ensemble of `job`: its seed is
/// `seed + k`, its folder `job.out/member-<k + 1>`, and it reads the data
/// every member reads (the built-in series keeps the ensemble's seed).
pub fn member_job(job: &TrainJob, k: usize) -> TrainJob {
    let mut member = job.clone();
    let seed = job.config.train.seed;
    member.config.train.seed = seed.wrapping_add(k as u64);
    if let DataConfig::Series(d) = &mut member.config.data {
        d.synthetic_seed = Some(d.synthetic_seed.unwrap_or(seed));
    }
    member.out = job.out.join(format!("member-{}", k + 1));
    member
}

/// Trains member `k` of an ensemble of `job` to the end and loads its best
/// validation checkpoint into it. Returns the trainer (holding that model)
/// and the checkpoint's folder.
pub fn train_member(job: &TrainJob, k: usize, sink: &mut dyn MetricsSink) -> Result<(Trainer, PathBuf)> {
    train_run(&member_job(job, k), sink)
}

/// Trains `job` to the end and loads its best validation checkpoint into
/// the trainer; returns the trainer and that checkpoint's folder.
pub fn train_run(job: &TrainJob, sink: &mut dyn MetricsSink) -> Result<(Trainer, PathBuf)> {
    let mut trainer = prepare(job)?;
    sink.on_start(&run_start(&trainer, None)?);
    fit(&mut trainer, sink, true)?;
    let checkpoint = select_checkpoint(&mut trainer)?;
    Ok((trainer, checkpoint))
}

/// One model of `job` ([`train_run`]) when `n` is 0 or 1, otherwise an
/// ensemble of `n` ([`train`]).
pub fn train_models(job: &TrainJob, n: usize, sink: &mut dyn MetricsSink) -> Result<Vec<(Trainer, PathBuf)>> {
    match n {
        0 | 1 => Ok(vec![train_run(job, sink)?]),
        n => train(job, n, sink),
    }
}

/// Trains the `n` members of an ensemble of `job` (each to the end, at its
/// best validation checkpoint) and writes `job.out/ensemble.json`.
pub fn train(job: &TrainJob, n: usize, sink: &mut dyn MetricsSink) -> Result<Vec<(Trainer, PathBuf)>> {
    check(job, n)?;
    let members = (0..n).map(|k| train_member(job, k, sink)).collect::<Result<Vec<_>>>()?;
    write_manifest(&job.out, &members)?;
    Ok(members)
}

/// Writes `dir/ensemble.json` for the trained `members` (trainer and chosen
/// checkpoint, as [`train_member`] returns them).
pub fn write_manifest(dir: &Path, members: &[(Trainer, PathBuf)]) -> Result<EnsembleManifest> {
    let manifest = EnsembleManifest {
        members: members
            .iter()
            .map(|(t, ck)| EnsembleMember {
                seed: t.cfg.train.seed,
                checkpoint: ck.strip_prefix(dir).map_or_else(|_| ck.clone(), Path::to_path_buf),
            })
            .collect(),
    };
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::setting(e.to_string()))?;
    crate::io::write_atomic(&dir.join(MANIFEST), &bytes)?;
    Ok(manifest)
}

/// The forecasters of trained members, for [`crate::eval::forecast`].
pub fn forecasters(members: &[(Trainer, PathBuf)]) -> Result<Vec<&Forecaster>> {
    members
        .iter()
        .map(|(t, _)| t.model.forecaster().ok_or_else(|| Error::setting("an ensemble's members are forecasters")))
        .collect()
}

/// The median forecast of trained `members` scored on the test windows,
/// beside the baselines.
pub fn evaluate_test(members: &[(Trainer, PathBuf)]) -> Result<ForecastReport> {
    let models = forecasters(members)?;
    let (trainer, _) = &members[0];
    let crate::data::Dataset::Series(s) = &trainer.data else {
        return Err(Error::setting("--ensemble applies to forecasters"));
    };
    crate::eval::forecast::evaluate(&models, s, &s.test, trainer.store.device())
}

/// Loads every member of the ensemble in `dir` (each checkpoint verified).
pub fn load(dir: &Path, dev: &Device) -> Result<Vec<Loaded>> {
    let path = dir.join(MANIFEST);
    let bad = |msg: String| Error::Checkpoint { path: path.clone(), msg };
    let manifest: EnsembleManifest =
        serde_json::from_slice(&crate::io::read(&path)?).map_err(|e| bad(format!("not an ensemble manifest: {e}")))?;
    if manifest.members.is_empty() {
        return Err(bad("lists no member".into()));
    }
    let members = manifest
        .members
        .iter()
        .map(|m| {
            if m.checkpoint.is_absolute() || m.checkpoint.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(bad(format!("{}: a member must lie inside the ensemble folder", m.checkpoint.display())));
            }
            crate::checkpoint::load(&dir.join(&m.checkpoint), dev)
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(k) = members.iter().position(|m| m.model.forecaster().is_none()) {
        return Err(bad(format!("member {} is not a forecaster", k + 1)));
    }
    Ok(members)
}

/// The forecasters of loaded members.
pub fn loaded_forecasters(members: &[Loaded]) -> Vec<&Forecaster> {
    members.iter().filter_map(|m| m.model.forecaster()).collect()
}
