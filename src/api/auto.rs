//! `train --model auto` for forecasting: every neural kind is trained (each
//! into its own folder under the run folder), each is scored on the
//! validation windows beside the classical baselines, the lowest validation
//! MASE is chosen, and the choice is scored on the test windows. The test
//! split plays no part in the choice.

use super::ensemble;
use super::train::{fit, prepare, run_start, select_checkpoint, TrainJob};
use crate::error::{Error, Result};
use crate::eval::forecast::{evaluate_with, fit_classical, ClassicalFits, ForecastMetrics, ForecastReport};
use crate::model::{ForecasterKind, ModelConfig};
use crate::train::MetricsSink;
use serde::Serialize;
use std::path::PathBuf;

/// The neural kinds `auto` trains, in order.
pub const KINDS: [ForecasterKind; 5] = [
    ForecasterKind::Lstm,
    ForecasterKind::Gru,
    ForecasterKind::Transformer,
    ForecasterKind::NLinear,
    ForecasterKind::DLinear,
];

/// One trained neural candidate.
#[derive(Debug, Clone)]
pub struct CandidateRun {
    /// Its kind's name, e.g. `gru`.
    pub name: String,
    /// The checkpoint scored (the best validation one), or the ensemble's folder.
    pub checkpoint: PathBuf,
    /// Its errors on the validation windows, beside the baselines there.
    pub valid: ForecastReport,
    /// Its errors on the test windows, beside the baselines there.
    pub test: ForecastReport,
}

/// A candidate as `auto` reports it: a neural kind or a baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// `lstm`, `gru`, …, or a baseline: `ar`, `ets`, `theta`, `seasonal_naive`, `naive`.
    pub name: String,
    /// The fitted model, for a classical baseline (e.g. `AR(6)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// MASE on the validation windows (`null` where undefined).
    pub valid_mase: Option<f64>,
    /// MASE on the test windows.
    pub test_mase: Option<f64>,
    /// The checkpoint of a neural candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
}

/// What `auto` chose, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AutoChoice {
    /// Every candidate, neural kinds first.
    pub candidates: Vec<Candidate>,
    /// The chosen candidate's name.
    pub chosen: String,
    /// Why, in a sentence.
    pub reason: String,
}

/// Trains the neural candidate `kind` of `job` into `job.out/<kind>` (an
/// ensemble of `members` seeds when more than 1) and scores its best
/// validation checkpoint on the validation and test windows. The classical
/// baselines are fitted on the first call into `fits` and reused by the next
/// (every candidate reads the same series).
pub fn train_candidate(
    job: &TrainJob,
    kind: ForecasterKind,
    members: usize,
    fits: &mut Option<ClassicalFits>,
    sink: &mut dyn MetricsSink,
) -> Result<CandidateRun> {
    let mut job = job.clone();
    let ModelConfig::Forecaster(m) = &mut job.config.model else {
        return Err(Error::setting("--model auto chooses among forecasters; give a CSV series or --task series"));
    };
    m.kind = kind;
    job.out = job.out.join(kind.name());
    if members > 1 {
        ensemble::check(&job, members)?;
        let trained = (0..members).map(|k| ensemble::train_member(&job, k, sink)).collect::<Result<Vec<_>>>()?;
        ensemble::write_manifest(&job.out, &trained)?;
        let models = ensemble::forecasters(&trained)?;
        let crate::data::Dataset::Series(s) = &trained[0].0.data else {
            return Err(Error::setting("--model auto chooses among forecasters"));
        };
        let dev = trained[0].0.store.device().clone();
        let fits = fits.get_or_insert_with(|| fit_classical(s));
        let valid = evaluate_with(&models, s, &s.valid, fits, &dev)?;
        let test = evaluate_with(&models, s, &s.test, fits, &dev)?;
        return Ok(CandidateRun { name: kind.name().to_string(), checkpoint: job.out, valid, test });
    }
    let mut trainer = prepare(&job)?;
    sink.on_start(&run_start(&trainer, None)?);
    fit(&mut trainer, sink, true)?;
    let checkpoint = select_checkpoint(&mut trainer)?;
    let (Some(model), crate::data::Dataset::Series(s)) = (trainer.model.forecaster(), &trainer.data) else {
        return Err(Error::setting("--model auto chooses among forecasters"));
    };
    let dev = trainer.store.device().clone();
    let fits = fits.get_or_insert_with(|| fit_classical(s));
    let valid = evaluate_with(&[model], s, &s.valid, fits, &dev)?;
    let test = evaluate_with(&[model], s, &s.test, fits, &dev)?;
    Ok(CandidateRun { name: kind.name().to_string(), checkpoint, valid, test })
}

/// Chooses the lowest validation MASE among the trained `runs` and the
/// baselines (as scored beside the first run: every run reads the same
/// windows), and returns the choice with the chosen candidate's test report
/// (for a baseline: the first run's, its `model` metrics replaced by the
/// baseline's).
pub fn choose(runs: &[CandidateRun]) -> Result<(AutoChoice, ForecastReport)> {
    let first = runs.first().ok_or_else(|| Error::setting("--model auto trained no candidate"))?;
    let mut candidates: Vec<Candidate> = runs
        .iter()
        .map(|r| Candidate {
            name: r.name.clone(),
            model: None,
            valid_mase: r.valid.model.mase,
            test_mase: r.test.model.mase,
            checkpoint: Some(r.checkpoint.clone()),
        })
        .collect();
    let baseline = |report: &ForecastReport, name: &str| -> Option<(ForecastMetrics, Option<String>)> {
        let b = &report.baselines;
        match name {
            "naive" => Some((b.naive.clone(), None)),
            "seasonal_naive" => Some((b.seasonal_naive.clone(), None)),
            "ar" => b.ar.as_ref().map(|c| (c.metrics.clone(), Some(c.model.clone()))),
            "ets" => b.ets.as_ref().map(|c| (c.metrics.clone(), Some(c.model.clone()))),
            _ => b.theta.as_ref().map(|c| (c.metrics.clone(), Some(c.model.clone()))),
        }
    };
    for name in ["ar", "ets", "theta", "seasonal_naive", "naive"] {
        if let (Some((v, model)), Some((t, _))) = (baseline(&first.valid, name), baseline(&first.test, name)) {
            candidates.push(Candidate {
                name: name.into(),
                model,
                valid_mase: v.mase,
                test_mase: t.mase,
                checkpoint: None,
            });
        }
    }
    // The lowest validation MASE; an undefined one never wins.
    let key = |c: &Candidate| c.valid_mase.unwrap_or(f64::INFINITY);
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| key(&candidates[a]).total_cmp(&key(&candidates[b])));
    let best = &candidates[order[0]];
    let reason = match order.get(1).map(|&i| &candidates[i]) {
        Some(next) if best.valid_mase.is_some() => {
            format!("the lowest validation MASE, {:.4}, against {:.4} for {} next", key(best), key(next), next.name)
        }
        _ => "no candidate has a defined validation MASE; the first neural kind is kept".to_string(),
    };
    let chosen = best.name.clone();
    let report = match runs.iter().find(|r| r.name == chosen) {
        Some(r) => r.test.clone(),
        None => {
            let mut r = first.test.clone();
            if let Some((m, _)) = baseline(&first.test, &chosen) {
                r.model = m;
            }
            r.intervals = None;
            r.wql = None;
            r
        }
    };
    Ok((AutoChoice { candidates, chosen, reason }, report))
}
