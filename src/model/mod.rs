//! Models. Each is built with `Model::new(&cfg, vb)`, where the dotted
//! `vb.pp(..)` names are the safetensors keys (a test guards them).

pub mod seq2seq;

pub use seq2seq::{Seq2Seq, Seq2SeqConfig};
