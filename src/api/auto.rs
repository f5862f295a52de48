//! `train --model auto` for forecasting: every neural kind is trained (each
//! into its own folder under the run folder), each is scored on the
//! validation windows beside the classical baselines, the lowest validation
//! MASE is chosen, and the choice is scored on the test windows. The test
//! split plays no part in the choice.

use super::ensemble;
use super::train::TrainJob;
use crate::checkpoint::Loaded;
use crate::data::series::SeriesData;
use crate::error::{Error, Result};
use crate::eval::forecast::{
    baseline_forecasts, evaluate_points, fit_classical, point_metrics, point_report, predict, ClassicalFits,
    ForecastReport, ResidualIntervals,
};
use crate::model::{ForecasterKind, ModelConfig};
use crate::train::MetricsSink;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The neural kinds `auto` trains, in order.
pub const KINDS: [ForecasterKind; 6] = [
    ForecasterKind::Lstm,
    ForecasterKind::Gru,
    ForecasterKind::Transformer,
    ForecasterKind::NLinear,
    ForecasterKind::DLinear,
    ForecasterKind::NBeats,
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
    /// Its point forecasts on the validation windows, (W, H, N), data units.
    pub valid_pred: Vec<f32>,
    /// Its point forecasts on the test windows.
    pub test_pred: Vec<f32>,
}

/// A candidate as `auto` reports it: a neural kind or a baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// `lstm`, `gru`, …, or a baseline: `ar`, `ets`, `theta`, `seasonal_naive`, `naive`.
    pub name: String,
    /// The fitted model, for a classical baseline (e.g. `AR(6)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// MASE on the validation windows (`null` where undefined); with
    /// rolling-origin folds, the mean of `fold_mase`.
    pub valid_mase: Option<f64>,
    /// With rolling-origin folds, the MASE of each earlier fold's model on
    /// the block after its validation block, fold 1 (on the run's own
    /// validation block) first: windows that neither trained it nor chose
    /// its checkpoint (absent with one fold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fold_mase: Vec<Option<f64>>,
    /// MASE on the test windows.
    pub test_mase: Option<f64>,
    /// The checkpoint of a neural candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// The candidates a combination averages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
}

/// What `auto` chose, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoChoice {
    /// Every candidate, neural kinds first.
    pub candidates: Vec<Candidate>,
    /// The chosen candidate's name.
    pub chosen: String,
    /// Why, in a sentence.
    pub reason: String,
    /// The candidates whose mean forecast is the choice's (the chosen one
    /// itself, or a combination's members).
    pub members: Vec<String>,
    /// Past steps a forecast reads (the neural candidates' context).
    pub context: usize,
    /// Steps forecast, H.
    pub horizon: usize,
    /// Rolling-origin folds trained (1: the run's own split only, whose
    /// validation windows then both chose the checkpoints and score the
    /// candidates; K > 1: the K − 1 earlier folds score them, each on the
    /// block after its validation block).
    #[serde(default = "one")]
    pub folds: usize,
    /// The choice's prediction intervals, measured on the windows that
    /// scored the candidates (see `folds`), and tracked along the test
    /// windows ([`ResidualIntervals::track`]).
    pub intervals: Option<ResidualIntervals>,
}

/// Trains the neural candidate `kind` of `job` into `job.out/<kind>` (an
/// ensemble of `members` seeds when more than 1) and scores its best
/// validation checkpoint on the validation and test windows. The classical
/// baselines are fitted on the first call, kept in `shared` with the series,
/// and reused by the next (every candidate reads the same series).
pub fn train_candidate(
    job: &TrainJob,
    kind: ForecasterKind,
    members: usize,
    shared: &mut Option<(SeriesData, ClassicalFits)>,
    sink: &mut dyn MetricsSink,
) -> Result<CandidateRun> {
    let mut job = job.clone();
    let ModelConfig::Forecaster(m) = &mut job.config.model else {
        return Err(Error::setting("--model auto chooses among forecasters; give a CSV series or --task series"));
    };
    as_kind(m, kind);
    ensemble::refuse_many_series(&job, "--model auto")?;
    job.out = job.out.join(kind.name());
    let trained = ensemble::train_models(&job, members, sink)?;
    let models = ensemble::forecasters(&trained)?;
    let crate::data::Dataset::Series(s) = &trained[0].0.data else {
        return Err(Error::setting("--model auto chooses among forecasters"));
    };
    // An ensemble is read from its folder; one model from its checkpoint.
    let checkpoint = if members > 1 { job.out.clone() } else { trained[0].1.clone() };
    let (_, fits) = shared.get_or_insert_with(|| (s.clone(), fit_classical(s)));
    scored(kind, checkpoint, &models, s, fits, trained[0].0.store.device())
}

/// A trained candidate's forecasts and reports on the validation and test windows.
fn scored(
    kind: ForecasterKind,
    checkpoint: PathBuf,
    models: &[&crate::model::Forecaster],
    s: &SeriesData,
    fits: &ClassicalFits,
    dev: &candle_core::Device,
) -> Result<CandidateRun> {
    let (valid, valid_pred) = evaluate_points(models, s, &s.valid, fits, dev)?;
    let (test, test_pred) = evaluate_points(models, s, &s.test, fits, dev)?;
    Ok(CandidateRun { name: kind.name().to_string(), checkpoint, valid, test, valid_pred, test_pred })
}

/// Makes the forecaster `m` one of `kind`: N-BEATS gets at least two ReLU
/// layers per block (the presets' one layer suits the RNNs), as `train
/// --model nbeats` does.
fn as_kind(m: &mut crate::model::ForecasterConfig, kind: ForecasterKind) {
    m.kind = kind;
    if kind == ForecasterKind::NBeats {
        m.n_layer = m.n_layer.max(2);
    }
}

/// The number of best single candidates the `combination` candidate averages.
pub const COMBINED: usize = 3;

/// The quantile levels of auto's intervals when `--quantiles` is not given.
pub const DEFAULT_LEVELS: [f32; 3] = [0.1, 0.5, 0.9];

/// The windows `auto` scores, and the data it scores them on.
pub struct Windows<'a> {
    /// The series every candidate read.
    pub series: &'a SeriesData,
    /// The classical baselines fitted on its training rows.
    pub fits: &'a ClassicalFits,
    /// Context and horizon of the neural candidates (their windows are the
    /// baselines' too).
    pub context: usize,
    /// Steps forecast, H.
    pub horizon: usize,
    /// The levels of the intervals to measure (ascending, with 0.5).
    pub levels: Vec<f32>,
}

/// The [`Windows`] of `job`'s candidates, from what [`train_candidate`] kept
/// in `shared`; the intervals' levels are the job's quantiles, or [`DEFAULT_LEVELS`].
pub fn windows<'a>(job: &TrainJob, shared: &'a Option<(SeriesData, ClassicalFits)>) -> Result<Windows<'a>> {
    let (Some((series, fits)), ModelConfig::Forecaster(m)) = (shared, &job.config.model) else {
        return Err(Error::setting("--model auto trained no candidate"));
    };
    let levels = if m.quantiles.is_empty() { DEFAULT_LEVELS.to_vec() } else { m.quantiles.clone() };
    Ok(Windows { series, fits, context: m.context, horizon: m.horizon, levels })
}

/// The origins of `s`'s windows of context `l` and horizon `h` whose horizon lies in `rows`.
fn origins(s: &SeriesData, rows: &std::ops::Range<usize>, l: usize, h: usize) -> Vec<usize> {
    s.starts(rows, l, h, 1).iter().map(|st| st + l).collect()
}

/// The rows after an earlier fold's validation block, as many: the next
/// fold's validation block (the run's own for fold 1). A fold's models and
/// classical fits are scored there, on windows that neither trained them
/// nor chose their checkpoints, as the run's own are scored on its test rows
/// after its validation block. Scoring on the validation windows instead
/// favours the neural kinds, whose best checkpoint those windows chose.
pub fn next_block(s: &SeriesData) -> std::ops::Range<usize> {
    s.valid.end..(s.valid.end + s.valid.len()).min(s.series.len())
}

/// An earlier rolling-origin fold (`data.fold` ≥ 1): its series as split for
/// the fold, the classical baselines fitted on its training rows, and each
/// neural candidate's forecasts on the windows of the fold's [`next_block`].
pub struct Fold {
    /// The series, split for the fold.
    pub series: SeriesData,
    /// The classical baselines fitted on the fold's training rows.
    pub fits: ClassicalFits,
    /// Each neural candidate's forecasts on the next block's windows, (W, H, N).
    pub preds: Vec<(String, Vec<f32>)>,
}

/// The earlier folds of an auto run, fold 1 first.
#[derive(Default)]
pub struct Folds(pub Vec<Fold>);

impl Folds {
    /// Records candidate `name`'s forecasts on fold `fold` (≥ 1, the folds
    /// in order), as [`train_fold`] returns them.
    pub fn add(&mut self, fold: usize, name: &str, (series, pred): (SeriesData, Vec<f32>)) -> Result<()> {
        if fold == 0 || fold > self.0.len() + 1 {
            return Err(Error::setting(format!("fold {fold} recorded before fold {}", self.0.len() + 1)));
        }
        if fold > self.0.len() {
            self.0.push(Fold { fits: fit_classical(&series), series, preds: Vec::new() });
        }
        self.0[fold - 1].preds.push((name.to_string(), pred));
        Ok(())
    }
}

/// Checks, before anything trains, that `job` reads one series and that
/// `folds` rolling-origin folds fit it: the earliest still has a training
/// and a validation window.
pub fn check_folds(job: &TrainJob, folds: usize) -> Result<()> {
    ensemble::refuse_many_series(job, "--model auto")?;
    let (ModelConfig::Forecaster(m), crate::config::DataConfig::Series(d)) = (&job.config.model, &job.config.data)
    else {
        return Ok(());
    };
    if folds <= 1 {
        return Ok(());
    }
    let d = crate::data::series::SeriesConfig { fold: folds - 1, ..d.clone() };
    let s = SeriesData::load(&d, job.config.train.seed, None)
        .map_err(|e| Error::setting(format!("--folds {folds}: {e}; use fewer folds")))?;
    let (l, h) = (m.context, m.horizon);
    let (a, b) = (s.starts(&s.train, l, h, d.stride).len(), s.starts(&s.valid, l, h, 1).len());
    if a == 0 || b == 0 {
        return Err(Error::setting(format!(
            "--folds {folds}: the earliest fold has {a} training and {b} validation windows of context {l} + horizon {h}; use fewer folds"
        )));
    }
    Ok(())
}

/// Trains neural candidate `kind` of `job` on rolling-origin fold `fold`
/// (≥ 1; `data.fold`) into `job.out/folds/<kind>-<fold>` (an ensemble of
/// `members` when more than 1), and returns the fold's series and the
/// candidate's forecasts (its best validation checkpoint's) on the windows of
/// the fold's [`next_block`].
pub fn train_fold(
    job: &TrainJob,
    kind: ForecasterKind,
    members: usize,
    fold: usize,
    sink: &mut dyn MetricsSink,
) -> Result<(SeriesData, Vec<f32>)> {
    let mut job = job.clone();
    let (ModelConfig::Forecaster(m), crate::config::DataConfig::Series(d)) =
        (&mut job.config.model, &mut job.config.data)
    else {
        return Err(Error::setting("--model auto chooses among forecasters; give a CSV series or --task series"));
    };
    as_kind(m, kind);
    d.fold = fold;
    job.out = job.out.join("folds").join(format!("{}-{fold}", kind.name()));
    let trained = ensemble::train_models(&job, members, sink)?;
    let models = ensemble::forecasters(&trained)?;
    let crate::data::Dataset::Series(s) = &trained[0].0.data else {
        return Err(Error::setting("--model auto chooses among forecasters"));
    };
    let (l, h) = (models[0].config().context, models[0].config().horizon);
    let pred = predict(&models, s, &s.starts(&next_block(s), l, h, 1), 256, trained[0].0.store.device())?;
    Ok((s.clone(), pred))
}

/// A candidate's point forecasts where candidates are scored (each earlier
/// fold's next block, or the run's validation windows) and on the test
/// windows, (W, H, N).
struct Forecasts {
    candidate: Candidate,
    valid: Vec<Vec<f32>>,
    test: Vec<f32>,
}

/// Chooses the lowest validation MASE (the mean over the earlier `folds`,
/// each on its [`next_block`]; the run's own validation windows without
/// folds) among the trained `runs`, the baselines, and the combination (the
/// mean forecast) of the [`COMBINED`] best of those. Returns the choice,
/// with intervals measured on its errors there ([`ResidualIntervals`]), and
/// its test report beside the baselines.
pub fn choose(runs: &[CandidateRun], folds: &Folds, w: &Windows) -> Result<(AutoChoice, ForecastReport)> {
    if runs.is_empty() {
        return Err(Error::setting("--model auto trained no candidate"));
    }
    let (l, h) = (w.context, w.horizon);
    // Where candidates are scored: each earlier fold's series, fits and next-block origins, or
    // without folds the run's own validation origins.
    let sets: Vec<(&SeriesData, &ClassicalFits, Vec<usize>)> = if folds.0.is_empty() {
        vec![(w.series, w.fits, origins(w.series, &w.series.valid, l, h))]
    } else {
        folds.0.iter().map(|f| (&f.series, &f.fits, origins(&f.series, &next_block(&f.series), l, h))).collect()
    };
    let to = origins(w.series, &w.series.test, l, h);
    let base_valid: Vec<_> = sets.iter().map(|(s, fits, o)| baseline_forecasts(s, fits, o, h)).collect();
    let base_test = baseline_forecasts(w.series, w.fits, &to, h);
    let scores = |valid: &[Vec<f32>]| -> Vec<Option<f64>> {
        valid.iter().zip(&sets).map(|(p, (s, _, o))| point_metrics(p, s, o, h).mase).collect()
    };
    let candidate =
        |name: &str, model: Option<String>, checkpoint: Option<PathBuf>, valid: Vec<Vec<f32>>, test: Vec<f32>| {
            let fold_mase = scores(&valid);
            let mean = fold_mase.iter().copied().sum::<Option<f64>>().map(|s| s / fold_mase.len() as f64);
            Forecasts {
                candidate: Candidate {
                    name: name.into(),
                    model,
                    valid_mase: mean,
                    test_mase: point_metrics(&test, w.series, &to, h).mase,
                    checkpoint,
                    members: Vec::new(),
                    fold_mase: if folds.0.is_empty() { Vec::new() } else { fold_mase },
                },
                valid,
                test,
            }
        };
    let mut all = Vec::new();
    for r in runs {
        let mut valid = if folds.0.is_empty() { vec![r.valid_pred.clone()] } else { Vec::new() };
        for (k, f) in folds.0.iter().enumerate() {
            let p = f.preds.iter().find(|(n, _)| n == &r.name);
            let p = p.ok_or_else(|| Error::setting(format!("{} was not trained on fold {}", r.name, k + 1)))?;
            valid.push(p.1.clone());
        }
        all.push(candidate(&r.name, None, Some(r.checkpoint.clone()), valid, r.test_pred.clone()));
    }
    // The baselines, in the order people read them: classical first.
    for name in ["ar", "ets", "theta", "seasonal_naive", "naive"] {
        let find = |b: &crate::eval::forecast::BaselineForecasts| {
            b.all().into_iter().find(|x| x.0 == name).map(|(_, f, m)| (f.to_vec(), m.map(str::to_string)))
        };
        let valid: Option<Vec<(Vec<f32>, Option<String>)>> = base_valid.iter().map(find).collect();
        if let (Some(valid), Some((test, model))) = (valid, find(&base_test)) {
            all.push(candidate(name, model, None, valid.into_iter().map(|v| v.0).collect(), test));
        }
    }
    // The lowest validation MASE first; an undefined one never wins.
    let key = |c: &Candidate| c.valid_mase.unwrap_or(f64::INFINITY);
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by(|&a, &b| key(&all[a].candidate).total_cmp(&key(&all[b].candidate)));
    let best: Vec<usize> =
        order.iter().copied().filter(|&i| key(&all[i].candidate).is_finite()).take(COMBINED).collect();
    if best.len() == COMBINED {
        let mean = |f: &dyn Fn(&Forecasts) -> &[f32]| -> Vec<f32> {
            let k = best.len() as f32;
            (0..f(&all[best[0]]).len()).map(|j| best.iter().map(|&i| f(&all[i])[j]).sum::<f32>() / k).collect()
        };
        let valid: Vec<Vec<f32>> = (0..sets.len()).map(|k| mean(&|f| &f.valid[k])).collect();
        let test = mean(&|f| &f.test);
        let names: Vec<String> = best.iter().map(|&i| all[i].candidate.name.clone()).collect();
        let mut c = candidate("combination", Some(format!("mean of {}", names.join(", "))), None, valid, test);
        c.candidate.members = names;
        all.push(c);
        let at = order.partition_point(|&i| key(&all[i].candidate) <= key(&all[all.len() - 1].candidate));
        order.insert(at, all.len() - 1);
    }
    let chosen = &all[order[0]];
    let over = if folds.0.is_empty() {
        String::new()
    } else {
        let n = sets.len();
        format!(
            " over {n} earlier rolling-origin fold{}, each on the block after its validation block",
            if n == 1 { "" } else { "s" }
        )
    };
    let reason = match order.get(1).map(|&i| &all[i].candidate) {
        Some(next) if chosen.candidate.valid_mase.is_some() && next.valid_mase.is_some() => format!(
            "the lowest validation MASE{over}, {:.4}, against {:.4} for {} next",
            key(&chosen.candidate),
            key(next),
            next.name
        ),
        _ if chosen.candidate.valid_mase.is_some() => {
            format!("the only defined validation MASE{over}, {:.4}", key(&chosen.candidate))
        }
        _ => "no candidate has a defined validation MASE; the first neural kind is kept".to_string(),
    };
    let pooled: Vec<(&[f32], &SeriesData, &[usize])> =
        chosen.valid.iter().zip(&sets).map(|(p, (s, _, o))| (p.as_slice(), *s, o.as_slice())).collect();
    let intervals = ResidualIntervals::measure_pooled(&pooled, h, l, &w.levels);
    let mut report = point_report(&chosen.test, w.series, &to, h, w.fits);
    if let Some(iv) = &intervals {
        let (metrics, wql) = iv.score(&chosen.test, w.series, &to, h);
        report.intervals = Some(metrics);
        report.wql = Some(wql);
    }
    let mut members = chosen.candidate.members.clone();
    if members.is_empty() {
        members.push(chosen.candidate.name.clone());
    }
    let choice = AutoChoice {
        chosen: chosen.candidate.name.clone(),
        reason,
        members,
        context: l,
        horizon: h,
        folds: folds.0.len() + 1,
        intervals,
        candidates: all.into_iter().map(|f| f.candidate).collect(),
    };
    Ok((choice, report))
}

fn one() -> usize {
    1
}

/// The file in an auto run folder that records the choice.
pub const CHOICE: &str = "auto.json";

/// Whether `dir` is a `--model auto` run folder.
pub fn is_auto(dir: &Path) -> bool {
    dir.join(CHOICE).is_file()
}

/// A `--model auto` run folder read back as one forecaster: the mean of its
/// chosen members' forecasts (neural candidates loaded from their folders,
/// classical ones fitted again on the training rows, which gives the same
/// model), with the intervals measured when it was chosen.
pub struct AutoModel {
    /// What `train` chose, as `auto.json` records it.
    pub choice: AutoChoice,
    /// Each chosen neural member: its name and checkpoints (several for an ensemble).
    neural: Vec<(String, Vec<Loaded>)>,
    /// A candidate's checkpoint, whose config names the data and its scaler.
    reference: Loaded,
}

/// The folder (or checkpoint) of candidate `c` inside the auto folder `dir`:
/// `dir/<name>`, or the checkpoint inside it that `train` scored.
fn candidate_dir(dir: &Path, c: &Candidate) -> PathBuf {
    let own = dir.join(&c.name);
    match c.checkpoint.as_ref().and_then(|p| p.file_name()) {
        Some(f) if f.to_string_lossy().starts_with("checkpoint-") => own.join(f),
        _ => own,
    }
}

/// Loads a neural candidate: an ensemble's members, or one checkpoint.
fn load_candidate(path: &Path, dev: &Device) -> Result<Vec<Loaded>> {
    if ensemble::is_ensemble(path) {
        ensemble::load(path, dev)
    } else {
        Ok(vec![crate::checkpoint::load(path, dev)?])
    }
}

/// Reads the auto run folder `dir`.
pub fn load(dir: &Path, dev: &Device) -> Result<AutoModel> {
    let path = dir.join(CHOICE);
    let bad = |msg: String| Error::Checkpoint { path: path.clone(), msg };
    let choice: AutoChoice =
        serde_json::from_slice(&crate::io::read(&path)?).map_err(|e| bad(format!("not a --model auto record: {e}")))?;
    let mut neural = Vec::new();
    for name in &choice.members {
        let c =
            choice.candidates.iter().find(|c| &c.name == name).ok_or_else(|| bad(format!("no candidate {name}")))?;
        if c.checkpoint.is_some() {
            neural.push((name.clone(), load_candidate(&candidate_dir(dir, c), dev)?));
        } else if !crate::eval::forecast::CLASSICAL.contains(&name.as_str())
            && !["naive", "seasonal_naive"].contains(&name.as_str())
        {
            return Err(bad(format!("member {name} is neither a trained candidate nor a baseline")));
        }
    }
    let reference = match neural.first() {
        // Loaded once more (cheap: the model is small) so the record owns its reference.
        Some((_, loaded)) => crate::checkpoint::load(&loaded[0].dir, dev)?,
        None => {
            let c = choice.candidates.iter().find(|c| c.checkpoint.is_some());
            let c = c.ok_or_else(|| bad("lists no trained candidate (its data is named there)".into()))?;
            let loaded = load_candidate(&candidate_dir(dir, c), dev)?;
            loaded.into_iter().next().ok_or_else(|| bad(format!("{} holds no model", c.name)))?
        }
    };
    for (name, loaded) in &neural {
        for l in loaded {
            let m = l.model.forecaster().ok_or_else(|| bad(format!("{name} is not a forecaster")))?;
            if (m.config().context, m.config().horizon) != (choice.context, choice.horizon) {
                return Err(bad(format!("{name}: its context or horizon differs from the record's")));
            }
        }
    }
    // The intervals' sizes, checked once here rather than trusted where they are read.
    if let (Some(iv), Some(m)) = (&choice.intervals, reference.model.forecaster()) {
        if !iv.fits(choice.horizon, m.config().n_targets) {
            return Err(bad("its intervals do not fit the model's horizon and targets".into()));
        }
    }
    Ok(AutoModel { choice, neural, reference })
}

impl AutoModel {
    /// A candidate checkpoint loaded with the model, whose config names the
    /// data (for [`super::evaluate::checkpoint_series`]).
    pub fn reference(&self) -> &Loaded {
        &self.reference
    }

    /// The mean forecast of the chosen members from each of `origins`
    /// (ascending; an origin may be the series' length, to forecast the
    /// unknown future): (W, H, N) in the data's units.
    pub fn predict(&self, s: &SeriesData, origins: &[usize], fits: &ClassicalFits, dev: &Device) -> Result<Vec<f32>> {
        let (l, h, n) = (self.choice.context, self.choice.horizon, s.n_targets);
        let len = origins.len() * h * n;
        let mut sum = vec![0.0f32; len];
        let mut baselines = None;
        for name in &self.choice.members {
            let f = match self.neural.iter().find(|(m, _)| m == name) {
                Some((_, loaded)) => {
                    let models: Vec<&crate::model::Forecaster> =
                        loaded.iter().filter_map(|l| l.model.forecaster()).collect();
                    // The future is not read (the decoder runs free); pad it so the windows are whole.
                    let mut padded = s.clone();
                    let end = origins.iter().max().map_or(0, |o| o + h);
                    padded.scaled.iter_mut().for_each(|c| c.resize(end.max(c.len()), 0.0));
                    let starts: Vec<usize> = origins.iter().map(|o| o - l).collect();
                    predict(&models, &padded, &starts, 256, dev)?
                }
                None => {
                    let b = baselines.get_or_insert_with(|| baseline_forecasts(s, fits, origins, h));
                    let all = b.all();
                    let found = all.iter().find(|(k, _, _)| k == name);
                    found.map(|(_, f, _)| f.to_vec()).ok_or_else(|| {
                        Error::setting(format!("the {name} baseline cannot be fitted to this series' training rows"))
                    })?
                }
            };
            sum.iter_mut().zip(&f).for_each(|(a, b)| *a += b);
        }
        let k = self.choice.members.len().max(1) as f32;
        Ok(sum.into_iter().map(|v| v / k).collect())
    }

    /// Scores the choice on the windows whose horizon lies in `rows`,
    /// beside the baselines, with its intervals when the rows do not
    /// overlap the validation split they were measured on.
    pub fn evaluate(&self, s: &SeriesData, rows: &std::ops::Range<usize>, dev: &Device) -> Result<ForecastReport> {
        let (l, h) = (self.choice.context, self.choice.horizon);
        let origins: Vec<usize> = s.starts(rows, l, h, 1).iter().map(|st| st + l).collect();
        let fits = fit_classical(s);
        let pred = self.predict(s, &origins, &fits, dev)?;
        let mut report = point_report(&pred, s, &origins, h, &fits);
        let overlaps = rows.start < s.valid.end && s.valid.start < rows.end;
        if let (Some(iv), false) = (&self.choice.intervals, overlaps) {
            let (metrics, wql) = iv.score(&pred, s, &origins, h);
            report.intervals = Some(metrics);
            report.wql = Some(wql);
        }
        Ok(report)
    }

    /// The forecast of the `H` values after row `origin`, every quantile of
    /// the intervals: (H, N, Q) and the levels (just [0.5] without intervals).
    pub fn forecast_at(&self, s: &SeriesData, origin: usize, dev: &Device) -> Result<(Vec<f32>, Vec<f32>)> {
        let fits = fit_classical(s);
        let pred = self.predict(s, &[origin], &fits, dev)?;
        let (l, h) = (self.choice.context, self.choice.horizon);
        Ok(match &self.choice.intervals {
            Some(iv) => {
                // The widths tracked over the whole windows after the validation split before `origin`.
                let past: Vec<usize> = if iv.tracks() {
                    (s.valid.end.max(l)..origin).filter(|o| o + h <= s.series.len()).collect()
                } else {
                    Vec::new()
                };
                let past_pred = if past.is_empty() { Vec::new() } else { self.predict(s, &past, &fits, dev)? };
                let mult = iv.track(&past_pred, s, &past, h, origin).1;
                (iv.apply(&pred, &iv.scales(s, &[origin]), &mult, h, s.n_targets), iv.levels.clone())
            }
            None => (pred, vec![0.5]),
        })
    }
}
