//! # shiftlm
//!
//! Build, train and fine-tune sequence models whose decoders learn from
//! shifted targets: a decoder reads the target shifted right by one (a start
//! token first) and is scored against the unshifted target, padding never
//! counting.
//!
//! Pipeline: data ([`data`]: tasks, pairs, tokenizers, the shift core) →
//! model ([`model`], built from [`nn`] layers) → training ([`train`]) →
//! checkpoint ([`checkpoint`]) → decoding ([`decode`]) → metrics ([`eval`]).
//! The library never prints; it emits `tracing` events and reports metrics
//! through [`train::MetricsSink`].

pub mod api;
pub mod bench;
pub mod chart;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod decode;
pub mod error;
pub mod eval;
pub mod faults;
pub mod io;
pub mod model;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod plot;
pub mod rng;
pub mod train;

pub use error::{Error, Result};
