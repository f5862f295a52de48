//! # shiftlm
//!
//! Build, train and fine-tune sequence models whose decoders learn from
//! shifted targets: a decoder reads the target shifted right by one (a start
//! token first) and is scored against the unshifted target, padding never
//! counting.
//!
//! Start with [`api`]: one typed entry point per job (train, resume,
//! finetune, evaluate, generate, forecast, merge), each taking a plain job
//! description and returning a typed report. The library never prints; it
//! emits `tracing` events and reports training through a
//! [`train::MetricsSink`].
//!
//! ## Layers
//!
//! Modules import only from their own layer or the ones below
//! (`tests/layers.rs` checks it):
//!
//! ```text
//!   api                 typed jobs (the binary calls these)
//!   bench  plot         timed steps · loss curves
//!   train               the Trainer: loop, exact resume, metrics sinks
//!   checkpoint          folders and manifests · Hugging Face configs, shards, PEFT
//!   config              RunConfig = model + train + data; the preset table
//!   eval                metrics; forecast errors and baselines
//!   decode              greedy, sampling, beam search, KV-cached sampling
//!   model               Family, front-ends, encoder–decoders, the decoder-only skeleton, forecasters
//!   data                the shift core, tokenizers, tasks, pairs, text, series, loaders
//!   optim               optimizers with saveable state, schedules
//!   nn                  layers with working gradients
//!   ops                 fused CPU kernels with hand-written backward passes
//!   error rng io        errors · seeded streams · atomic writes (and faults, chart,
//!                       stats: the classical forecasting baselines; dist: the
//!                       world of a data-parallel job and its collectives;
//!                       profile; progress: long phases, for a program to show)
//! ```
//!
//! One batch's path: a file becomes ids ([`data`]), the shift core builds
//! decoder inputs, labels and masks ([`data::shift`]), a model of
//! [`model`] computes the masked loss, [`train`] backpropagates and steps
//! [`optim`], and [`checkpoint`] writes everything a resume needs.

#![warn(missing_docs)]

pub mod api;
pub mod bench;
pub mod chart;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod decode;
pub mod dist;
pub mod error;
pub mod eval;
pub(crate) mod faults;
pub mod io;
pub mod limits;
pub mod model;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod profile;
pub mod progress;
pub mod rng;
pub mod stats;
pub mod train;

pub use error::{Error, Result};
