//! The library's front door: one typed entry point per job, each taking a
//! plain job description (and, for training, a [`MetricsSink`] for
//! progress) and returning a typed report. The `shiftlm` binary is a thin
//! shell over these: it parses flags into a job, calls it and prints the
//! report. Nothing here prints.
//!
//! | job | entry point | returns |
//! |---|---|---|
//! | train from scratch | [`train()`] | [`TrainReport`] |
//! | continue a run | [`resume`] | [`TrainReport`] |
//! | fine-tune (full, frozen, LoRA) | [`finetune()`] | [`FinetuneReport`] |
//! | evaluate a checkpoint | [`evaluate()`] | [`Evaluated`] |
//! | generate or decode | [`generate()`] | [`Output`]s |
//! | chat with a language model | [`chat::Chat`] | [`chat::Answer`]s |
//! | forecast a series | [`forecast()`] | [`ForecastOutput`] |
//! | fold LoRA into the weights | [`merge()`] | [`MergeReport`] |
//! | average a run's last checkpoints | [`average()`] | [`AverageReport`] |
//!
//! ```no_run
//! use shiftlm::api::{self, TrainJob};
//! use shiftlm::config::RunConfig;
//! use shiftlm::train::LossHistory;
//!
//! let job = TrainJob { config: RunConfig::preset("tiny")?, out: "runs/tiny".into(), show: 3 };
//! let report = api::train(&job, &mut LossHistory::default())?;
//! println!("{:?}", report.evaluation);
//! # Ok::<(), shiftlm::Error>(())
//! ```
//!
//! [`MetricsSink`]: crate::train::MetricsSink

pub mod auto;
pub mod average;
pub mod chat;
pub mod ensemble;
pub mod evaluate;
pub mod finetune;
pub mod forecast;
pub mod generate;
pub mod merge;
pub mod train;

pub use average::{average, AverageJob, AverageReport};
pub use evaluate::{evaluate, EvalJob, EvalOutcome, Evaluated, Example, Split};
pub use finetune::{finetune, FinetuneJob, FinetuneReport};
pub use forecast::{forecast, ForecastJob, ForecastOutput};
pub use generate::{generate, GenerateJob, Output};
pub use merge::{merge, MergeJob, MergeReport};
pub use train::{resume, train, Evaluation, TrainJob, TrainReport};
