//! Layers and ops with working gradients. Every layer here is built from
//! candle ops that have a backward pass (never `candle_nn::ops::{layer_norm,
//! rms_norm, softmax_last_dim}` or `rotary_emb`, which silently drop
//! gradients), and takes its weights from a [`ParamStore`] through the
//! dotted `vb.pp(..)` names that become the safetensors keys.

pub mod attention;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod linear;
pub mod lora;
pub mod loss;
pub mod params;
pub mod pool;
pub mod rnn;
pub mod softmax;

pub use params::ParamStore;
pub mod causal_attention;
pub mod layer_norm;
pub mod rope;
