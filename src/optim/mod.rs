//! Optimizers and learning-rate schedules: what turns gradients into
//! updates. Sits above [`crate::nn`] (it reads and writes the parameter
//! store's tensors) and below everything that trains.

pub mod optimizer;
pub mod schedule;

pub use optimizer::{Optimizer, OptimizerConfig, OptimizerKind};
pub use schedule::{Schedule, ScheduleKind};
