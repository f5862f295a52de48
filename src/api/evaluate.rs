//! Evaluation jobs: a checkpoint scored on its own held-out data or on a
//! file. Encoder–decoders are decoded free-running beside the
//! teacher-forced metrics, language models are scored window by window,
//! forecasters against the naive baselines.

use crate::checkpoint::Loaded;
use crate::config::DataConfig;
use crate::data::loader::windows;
use crate::data::series::{SeriesData, SeriesSpec};
use crate::data::{Dataset, Pair, Tokenizer};
use crate::decode::{DecodeOptions, Strategy};
use crate::error::{Error, Result};
use crate::eval::forecast::ForecastReport;
use crate::eval::{CausalReport, EvalReport};
use candle_core::Device;
use serde::Serialize;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What to evaluate, and how.
#[derive(Debug, Clone)]
pub struct EvalJob {
    /// A run folder (its newest complete checkpoint) or one checkpoint folder.
    pub checkpoint: PathBuf,
    /// A file to score instead of the run's held-out split.
    pub data: Option<PathBuf>,
    /// With `data`: the target side of parallel files (`data` is then the source side).
    pub target: Option<PathBuf>,
    /// Encoder–decoders: beam width for free-running decoding (`None`: greedy).
    pub beam: Option<usize>,
    /// Encoder–decoders: beam length penalty α (`None`: 0.6).
    pub length_penalty: Option<f32>,
    /// Encoder–decoders: decoded examples to return (`None`: 5).
    pub show: Option<usize>,
    /// Forecasters: the season of seasonal naive and MASE (default: the run's, or inferred).
    pub season: Option<usize>,
    /// Forecasters: which rows to score (default: the test split, or all of `data`).
    pub split: Option<Split>,
    /// Image classifiers: the largest shift of the shift curve (`None`: 6).
    pub shift_curve: Option<usize>,
    /// Speech models: the offsets of the shift curve in ms (`None`: 0, 50, 100, 200, 400).
    pub shift_curve_ms: Option<Vec<u32>>,
}

impl EvalJob {
    /// Greedy decoding of the run's own held-out data.
    pub fn new(checkpoint: impl Into<PathBuf>) -> Self {
        Self {
            checkpoint: checkpoint.into(),
            data: None,
            target: None,
            beam: None,
            length_penalty: None,
            show: None,
            season: None,
            split: None,
            shift_curve: None,
            shift_curve_ms: None,
        }
    }
}

/// Rows of a series whose forecasts are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The test split: the default for the run's own data.
    Test,
    /// The validation split.
    Valid,
    /// Every row: the default for a `data` file.
    All,
}

impl Split {
    /// The split's name: `test`, `valid` or `all`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Test => "test",
            Split::Valid => "valid",
            Split::All => "all",
        }
    }
}

/// A decoded example, as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// The input, decoded.
    pub source: String,
    /// The expected output, decoded.
    pub target: String,
    /// The model's output, decoded.
    pub output: String,
    /// Whether the output equals the target.
    pub correct: bool,
}

/// What an evaluation found.
#[derive(Debug, Clone)]
pub enum EvalOutcome {
    /// An encoder–decoder.
    Pairs {
        /// Teacher-forced and free-running metrics.
        report: EvalReport,
        /// The first `show` decoded examples.
        examples: Vec<Example>,
        /// Every free-running output as text, in the order of the pairs.
        hypotheses: Vec<String>,
        /// Wall seconds the free-running decoding took (batches of 256
        /// sources in order of length).
        decode_s: f64,
    },
    /// A language model.
    Causal(CausalReport),
    /// A forecaster, on rows `rows` of the split named `split`.
    Forecast {
        /// The forecaster's errors beside the naive baselines.
        report: ForecastReport,
        /// The split scored.
        split: Split,
        /// The rows of the series in that split.
        rows: Range<usize>,
    },
    /// A global forecaster of many series (`--id`): each series on its own
    /// rows of the split, and the means.
    Panel {
        /// Each series' report and the means.
        report: crate::eval::forecast::PanelReport,
        /// The split scored (each series' own).
        split: Split,
    },
    /// An image classifier on the run's test set or `data`'s images.
    Image(crate::eval::image::ImageReport),
    /// A digit-strip reader on the run's test strips or strips of `data`'s digits.
    Strips(crate::eval::strips::StripReport),
    /// A speech model on the run's test clips (and unseen engine) or `data`'s clips.
    Speech(crate::eval::speech::SpeechReport),
}

/// Sets `report.bleu` and `report.chrf`: the decoded outputs against the
/// targets, both as detokenised text (`refs` as written, else the targets
/// decoded), and returns the decoded outputs.
pub fn add_text_metrics(
    report: &mut EvalReport,
    tok: &Tokenizer,
    pairs: &[Pair],
    outputs: &[Vec<u32>],
    refs: Option<&[String]>,
) -> Result<Vec<String>> {
    let hyps: Vec<String> = outputs.iter().map(|o| tok.decode(o)).collect::<Result<_>>()?;
    let refs = match refs {
        Some(r) => r.to_vec(),
        None => pairs.iter().map(|p| tok.decode(&p.target)).collect::<Result<_>>()?,
    };
    let refs = [refs];
    report.bleu = Some(crate::eval::translation::bleu(&hyps, &refs).score);
    report.chrf = Some(crate::eval::translation::chrf(&hyps, &refs));
    Ok(hyps)
}

/// The first `n` pairs with their decoded outputs, as text.
pub fn decoded_examples(tok: &Tokenizer, pairs: &[Pair], outputs: &[Vec<u32>], n: usize) -> Result<Vec<Example>> {
    pairs
        .iter()
        .zip(outputs)
        .take(n)
        .map(|(p, out)| {
            Ok(Example {
                source: tok.source().decode(&p.source)?,
                target: tok.decode(&p.target)?,
                output: tok.decode(out)?,
                correct: *out == p.target,
            })
        })
        .collect()
}

/// The series a forecaster checkpoint is evaluated or run on: its own data,
/// or `file` read with the columns it was trained on, scaled with its scaler.
pub fn checkpoint_series(ck: &Loaded, file: Option<&Path>, season: Option<usize>) -> Result<SeriesData> {
    let (DataConfig::Series(d), Some(m)) = (&ck.config.data, ck.model.forecaster()) else {
        return Err(Error::Checkpoint { path: ck.dir.clone(), msg: "not a forecaster checkpoint".into() });
    };
    let mut d = d.clone();
    if let Some(path) = file {
        let spec = d.csv.clone().unwrap_or(SeriesSpec {
            path: path.to_path_buf(),
            targets: vec!["value".into()],
            covariates: Vec::new(),
            timestamp: None,
            fill: Default::default(),
            id: None,
        });
        d.csv = Some(SeriesSpec { path: path.to_path_buf(), ..spec });
    } else if let Some(spec) = d.csv.as_ref().filter(|s| !s.path.exists()) {
        return Err(Error::Checkpoint {
            path: spec.path.clone(),
            msg: "the training data file is gone; pass --data FILE.csv".into(),
        });
    }
    d.season = season.or(d.season);
    SeriesData::load(&d, ck.config.train.seed, m.config().scaler.as_ref())
}

/// An evaluation and the checkpoint it scored.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// The checkpoint folder loaded (a run folder's newest complete one).
    pub dir: PathBuf,
    /// Its training step (an ensemble: its first member's).
    pub step: usize,
    /// What the evaluation found.
    pub outcome: EvalOutcome,
}

/// Evaluates a checkpoint.
pub fn evaluate(job: &EvalJob) -> Result<Evaluated> {
    if super::auto::is_auto(&job.checkpoint) {
        let auto = super::auto::load(&job.checkpoint, &Device::Cpu)?;
        check_forecast_flags(job)?;
        let s = checkpoint_series(auto.reference(), job.data.as_deref(), job.season)?;
        let (split, rows) = split_rows(&s, job);
        let report = auto.evaluate(&s, &rows, &Device::Cpu)?;
        no_windows(&report, split, auto.choice.context)?;
        let outcome = EvalOutcome::Forecast { report, split, rows };
        return Ok(Evaluated { dir: job.checkpoint.clone(), step: auto.reference().step, outcome });
    }
    if super::ensemble::is_ensemble(&job.checkpoint) {
        let members = super::ensemble::load(&job.checkpoint, &Device::Cpu)?;
        let models = super::ensemble::loaded_forecasters(&members);
        let outcome = evaluate_forecaster(&members[0], &models, job)?;
        return Ok(Evaluated { dir: job.checkpoint.clone(), step: members[0].step, outcome });
    }
    let ck = crate::checkpoint::load(&job.checkpoint, &Device::Cpu)?;
    let outcome = evaluate_loaded(&ck, job)?;
    Ok(Evaluated { dir: ck.dir, step: ck.step, outcome })
}

fn evaluate_loaded(ck: &Loaded, job: &EvalJob) -> Result<EvalOutcome> {
    if let DataConfig::Speech(c) = &ck.config.data {
        return evaluate_speech(ck, c, job);
    }
    if job.shift_curve_ms.is_some() {
        return Err(Error::setting("--shift-curve-ms applies to speech models; images and strips take --shift-curve"));
    }
    if let Some(model) = ck.model.image() {
        return evaluate_image(ck, model, job);
    }
    if let DataConfig::Images(c) = &ck.config.data {
        if let Some(strings) = &c.strings {
            return evaluate_strips(ck, strings, job);
        }
    }
    if job.shift_curve.is_some() {
        return Err(Error::setting("--shift-curve applies to image classifiers and digit strips"));
    }
    if let Some(model) = ck.model.forecaster() {
        return evaluate_forecaster(ck, &[model], job);
    }
    if job.season.is_some() || job.split.is_some() {
        return Err(Error::setting("--season and --split apply to forecasters"));
    }
    if ck.config.model.is_causal() && (job.beam.is_some() || job.length_penalty.is_some() || job.show.is_some()) {
        return Err(Error::setting(
            "--beam, --length-penalty and --show apply to encoder–decoders; a language model is scored teacher-forced",
        ));
    }
    match ck.config.model.context() {
        Some(ctx) => evaluate_causal(ck, ctx, job),
        None => evaluate_pairs(ck, job),
    }
}

/// An image classifier on its run's test set, or on the images of a folder
/// (its test set if it has one, otherwise every image).
fn evaluate_image(ck: &Loaded, model: &crate::model::ImageClassifier, job: &EvalJob) -> Result<EvalOutcome> {
    if job.beam.is_some() || job.length_penalty.is_some() || job.show.is_some() || job.season.is_some() {
        return Err(Error::setting("--beam, --length-penalty, --show and --season do not apply to image classifiers"));
    }
    if job.split.is_some() {
        return Err(Error::setting("--split applies to forecasters; an image classifier is scored on its test set"));
    }
    let (images, origin) = match &job.data {
        Some(dir) => (crate::data::images::load_for_eval(dir)?, dir.clone()),
        None => match run_data(ck)? {
            Dataset::Images(d) => (d.test, ck.dir.join("config.json")),
            _ => return Err(Error::setting("an image classifier checkpoint without image data")),
        },
    };
    let images = conform(images, model.config(), &origin)?;
    let k = job.shift_curve.unwrap_or(crate::api::train::SHIFT_CURVE);
    Ok(EvalOutcome::Image(crate::eval::image::evaluate(model, &images, k, &Device::Cpu)?))
}

/// A digit-strip reader on its run's test strips, or on strips made from
/// the digit images of a folder (its test set if it has one, otherwise
/// every image), as many as the run's test set.
fn evaluate_strips(
    ck: &Loaded,
    strings: &crate::data::images::strips::StringsConfig,
    job: &EvalJob,
) -> Result<EvalOutcome> {
    if job.beam.is_some() || job.length_penalty.is_some() || job.season.is_some() || job.split.is_some() {
        return Err(Error::setting(
            "--beam, --length-penalty, --season and --split do not apply to digit strips (read greedily, scored on the test strips)",
        ));
    }
    let strips = match &job.data {
        Some(dir) => {
            let digits = crate::data::images::load_for_eval(dir)?;
            let source = dir.display().to_string();
            let s = crate::data::images::strips::make(&digits, strings, strings.test, 0, "test", &source)?;
            let features = match &ck.config.model {
                crate::model::ModelConfig::Seq2seq(m) => m.input().features(),
                _ => 0,
            };
            if s.images.height != features {
                return Err(Error::bad_file(
                    dir,
                    format!(
                        "digits {} pixels high make strips {} high; the model reads columns of {features}",
                        digits.height, s.images.height
                    ),
                ));
            }
            s
        }
        None => match run_data(ck)? {
            Dataset::Strips(d) => d.test,
            _ => return Err(Error::setting("a digit-strip checkpoint without strips")),
        },
    };
    let k = job.shift_curve.unwrap_or(crate::api::train::SHIFT_CURVE);
    let report =
        crate::eval::strips::evaluate(&ck.model, &ck.tokenizer, &strips, k, job.show.unwrap_or(5), &Device::Cpu)?;
    Ok(EvalOutcome::Strips(report))
}

/// A speech model on its run's test clips (and the unseen engine's), or on
/// the clips of a folder (its test set if it has one, otherwise all).
fn evaluate_speech(
    ck: &Loaded,
    cfg: &crate::data::audio::speech::SpeechDataConfig,
    job: &EvalJob,
) -> Result<EvalOutcome> {
    if job.beam.is_some() || job.length_penalty.is_some() || job.season.is_some() || job.split.is_some() {
        return Err(Error::setting(
            "--beam, --length-penalty, --season and --split do not apply to speech (read greedily, scored on the test clips)",
        ));
    }
    if job.shift_curve.is_some() {
        return Err(Error::setting("speech shifts are in ms: use --shift-curve-ms 0,50,100,200,400"));
    }
    let data = match &job.data {
        Some(dir) => {
            let classes = ck.model.image().map(|m| m.config().classes.clone()).unwrap_or_default();
            crate::data::audio::speech::for_eval(cfg, dir, classes)?
        }
        None => {
            let mut d = crate::data::audio::speech::SpeechData::load(cfg, &|_, _| {}).map_err(|e| {
                Error::setting(format!("loading the run's clips (pass --data DIR to evaluate others): {e}"))
            })?;
            if let Some(m) = ck.model.image() {
                d.classes = m.config().classes.clone();
            }
            d
        }
    };
    let shifts = job.shift_curve_ms.clone().unwrap_or(crate::eval::speech::SHIFT_CURVE_MS.to_vec());
    let report = crate::eval::speech::evaluate_all(
        &ck.model,
        &ck.tokenizer,
        &data,
        &shifts,
        job.show.unwrap_or(5),
        &Device::Cpu,
    )?;
    Ok(EvalOutcome::Speech(report))
}

/// Images to score with a model: the model's size, and labels renumbered to
/// the model's classes (a folder's subfolders by name, an IDX file's numbers
/// as they are). Anything else is refused, naming `origin`.
fn conform(
    mut set: crate::data::images::Images,
    m: &crate::model::ImageConfig,
    origin: &Path,
) -> Result<crate::data::images::Images> {
    set.validate(origin)?;
    if (set.width, set.height) != (m.width, m.height) {
        return Err(Error::bad_file(
            origin,
            format!("images are {}×{}; the model reads {}×{}", set.width, set.height, m.width, m.height),
        ));
    }
    let names: Vec<String> =
        if m.classes.is_empty() { (0..m.n_classes).map(|i| i.to_string()).collect() } else { m.classes.clone() };
    if set.classes != names {
        let by_name: Option<Vec<u32>> =
            set.classes.iter().map(|c| names.iter().position(|n| n == c).map(|i| i as u32)).collect();
        let numbered = set.classes.iter().enumerate().all(|(i, c)| *c == i.to_string());
        match by_name {
            Some(map) => set.labels.iter_mut().for_each(|l| *l = map[*l as usize]),
            None if numbered && set.classes.len() <= names.len() => {}
            None => {
                let unknown = set.classes.iter().find(|c| !names.contains(c)).cloned().unwrap_or_default();
                return Err(Error::bad_file(
                    origin,
                    format!("class {unknown:?} is not one the model knows ({})", names.join(", ")),
                ));
            }
        }
        set.classes = names;
    }
    Ok(set)
}

/// A forecaster's (or an ensemble's: `models`, `ck` its first member)
/// errors beside the baselines on a split of its series.
fn evaluate_forecaster(ck: &Loaded, models: &[&crate::model::Forecaster], job: &EvalJob) -> Result<EvalOutcome> {
    check_forecast_flags(job)?;
    let s = checkpoint_series(ck, job.data.as_deref(), job.season)?;
    let (split, rows) = split_rows(&s, job);
    if s.is_panel() {
        let pick = move |d: &SeriesData| split_rows(d, job).1;
        let report = crate::eval::forecast::evaluate_panel(models, &s, pick, &Device::Cpu)?;
        no_windows(&report.mean, split, models[0].config().context)?;
        return Ok(EvalOutcome::Panel { report, split });
    }
    let report = crate::eval::forecast::evaluate(models, &s, &rows, &Device::Cpu)?;
    no_windows(&report, split, models[0].config().context)?;
    Ok(EvalOutcome::Forecast { report, split, rows })
}

/// Refuses the flags that do not apply to a forecaster.
fn check_forecast_flags(job: &EvalJob) -> Result<()> {
    if job.beam.is_some() || job.length_penalty.is_some() || job.show.is_some() {
        return Err(Error::setting(
            "--beam, --length-penalty and --show apply to encoder–decoders; a forecaster's forecasts are scored whole",
        ));
    }
    if job.shift_curve.is_some() || job.shift_curve_ms.is_some() {
        return Err(Error::setting("--shift-curve applies to image classifiers and digit strips"));
    }
    Ok(())
}

/// The split a forecaster is scored on (default: the test split, or every
/// row of a file given with --data) and its rows.
fn split_rows(s: &SeriesData, job: &EvalJob) -> (Split, std::ops::Range<usize>) {
    let split = job.split.unwrap_or(if job.data.is_some() { Split::All } else { Split::Test });
    let rows = match split {
        Split::Valid => s.valid.clone(),
        Split::All => 0..s.series.len(),
        Split::Test => s.test.clone(),
    };
    (split, rows)
}

/// An error when `report` scored no window.
fn no_windows(report: &crate::eval::forecast::ForecastReport, split: Split, context: usize) -> Result<()> {
    if report.windows == 0 {
        let horizon = report.horizon;
        let msg = format!("the {} split has no window of context {context} + horizon {horizon}", split.name());
        return Err(Error::setting(msg));
    }
    Ok(())
}

/// A language model on its held-out text (or `job.data`), window by window.
fn evaluate_causal(ck: &Loaded, ctx: usize, job: &EvalJob) -> Result<EvalOutcome> {
    let bs = ck.config.train.batch_size;
    // Conversations: the assistant turns, written out by the model's template.
    let dialogues = match &job.data {
        Some(path) if crate::data::chat::is_conversation_file(path) => {
            let template = ck.chat_template()?.ok_or_else(|| Error::Checkpoint {
                path: ck.dir.clone(),
                msg: "has no chat template to write the conversations out with".into(),
            })?;
            let all = crate::data::chat::read_conversations(path)?;
            Some(crate::data::chat::encode_all(&template, &ck.tokenizer, &all, path)?)
        }
        None if matches!(ck.config.data, DataConfig::Chat(_)) => match run_data(ck)? {
            Dataset::Chat { valid, .. } => Some(valid),
            _ => None,
        },
        _ => None,
    };
    if let Some(d) = dialogues {
        let batches = crate::data::loader::dialogue_batches(&d, bs, ctx, ck.config.model_eos());
        let stats = crate::eval::teacher_forced(&ck.model, batches.into_iter(), &Device::Cpu)?;
        if stats.tokens == 0 {
            return Err(Error::setting("the conversations have no assistant token within the model's context"));
        }
        return Ok(EvalOutcome::Causal(CausalReport::new(&stats)));
    }
    let tokens = match &job.data {
        Some(path) => {
            let ids = ck.tokenizer.encode(&crate::data::read_utf8(path)?)?;
            crate::data::warn_unknown(&ck.tokenizer, &ids, path);
            ids
        }
        None => match run_data(ck)? {
            Dataset::Text { valid, .. } => valid,
            Dataset::Pairs(_)
            | Dataset::Series(_)
            | Dataset::Images(_)
            | Dataset::Strips(_)
            | Dataset::Speech(_)
            | Dataset::Chat { .. } => return Err(Error::setting("a language model checkpoint with paired data")),
        },
    };
    if tokens.len() <= ctx {
        let msg = format!("the evaluation text has {} tokens; it needs more than the context of {ctx}", tokens.len());
        return Err(Error::setting(msg));
    }
    let batches = windows(&tokens, ck.config.train.batch_size, ctx, 0);
    let stats = crate::eval::teacher_forced(&ck.model, batches.into_iter(), &Device::Cpu)?;
    Ok(EvalOutcome::Causal(CausalReport::new(&stats)))
}

/// The data the checkpoint's run trained on, tokenized with its tokenizer.
fn run_data(ck: &Loaded) -> Result<Dataset> {
    let loaded = crate::data::load(&ck.config.data, ck.config.train.seed, Some(&ck.tokenizer));
    loaded
        .map(|(data, _)| data)
        .map_err(|e| Error::setting(format!("loading the run's data (pass --data FILE to evaluate other data): {e}")))
}

/// An encoder–decoder on its held-out pairs (or `job.data`), teacher forced
/// and decoded.
fn evaluate_pairs(ck: &Loaded, job: &EvalJob) -> Result<EvalOutcome> {
    // References are scored as written in the file, not as the tokenizer reads them back.
    let (pairs, refs) = match &job.data {
        Some(path) => {
            let raw = crate::data::pairs::read(path, job.target.as_deref())?;
            let pairs = crate::data::pairs::encode(&ck.tokenizer, &raw, &[])?.train;
            crate::data::warn_unknown_pairs(&ck.tokenizer, pairs.iter(), path, job.target.as_deref());
            (pairs, Some(raw.into_iter().map(|p| p.target).collect::<Vec<_>>()))
        }
        None => {
            if let DataConfig::File { path, .. } = &ck.config.data {
                // A file the run was trained on may have moved; say so clearly.
                if !path.exists() {
                    return Err(Error::Checkpoint {
                        path: path.clone(),
                        msg: "the training data file is gone; pass --data FILE".into(),
                    });
                }
            }
            match run_data(ck)? {
                Dataset::Pairs(s) => (s.valid, None),
                Dataset::Text { .. }
                | Dataset::Series(_)
                | Dataset::Images(_)
                | Dataset::Strips(_)
                | Dataset::Speech(_)
                | Dataset::Chat { .. } => return Err(Error::setting("an encoder–decoder checkpoint with text data")),
            }
        }
    };
    if pairs.is_empty() {
        return Err(Error::setting("there are no held-out pairs to evaluate (pass --data FILE)"));
    }
    let strategy = match job.beam.filter(|&b| b > 1) {
        Some(width) => Strategy::Beam { width, length_penalty: job.length_penalty.unwrap_or(0.6) },
        None => Strategy::Greedy,
    };
    let opts = DecodeOptions { strategy, max_len: 2 * ck.config.max_target_len + 2 };
    let (mut report, outputs, took) = crate::eval::evaluate(&ck.model, &pairs, 256, &opts, &Device::Cpu)?;
    let hypotheses = add_text_metrics(&mut report, &ck.tokenizer, &pairs, &outputs, refs.as_deref())?;
    let examples = decoded_examples(&ck.tokenizer, &pairs, &outputs, job.show.unwrap_or(5))?;
    Ok(EvalOutcome::Pairs { report, examples, hypotheses, decode_s: took.as_secs_f64() })
}
