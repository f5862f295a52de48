//! Inverted dropout drawing its mask from shiftlm's own seeded stream (candle's
//! dropout uses an unseeded generator, which would break reproducible runs).
//! The op itself, and its residual form `x + dropout(y)`, live in
//! [`crate::ops::dropout`].

pub use crate::ops::dropout::{dropout, dropout_add};
