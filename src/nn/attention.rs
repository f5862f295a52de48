//! Luong "dot" attention over encoder outputs (Luong et al. 2015, §3.1):
//! score = h_t · h̄_s, context = Σ softmax(score) h̄_s, and the attentional
//! state h̃_t = tanh(W_c [c_t; h_t]). Without input feeding, so it runs over
//! all decoder steps at once after the recurrence.

use super::linear::{linear, Linear};
use super::rnn::cat_last;
use super::softmax::softmax;
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Luong dot attention: the decoder outputs attend over the encoder outputs and
/// are combined with their context through `attn_combine` (H, 2H), no bias.
#[derive(Debug, Clone)]
pub struct LuongAttention {
    combine: Linear, // (H, 2H), no bias
}

impl LuongAttention {
    /// Attention for states of width `hidden`; its weight is `attn_combine.weight` under `vb`.
    pub fn new(hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self { combine: linear(2 * hidden, hidden, false, vb.pp("attn_combine"))? })
    }

    /// `dec` (B, T, H), `enc` (B, S, H), `bias` (B, 1, S) with −1e9 on source
    /// padding (or `None`) → h̃ (B, T, H).
    pub fn forward(&self, dec: &Tensor, enc: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let scores = dec.matmul(&enc.transpose(1, 2)?.contiguous()?)?; // (B, T, S)
        let scores = match bias {
            Some(b) => scores.broadcast_add(b)?,
            None => scores,
        };
        let ctx = softmax(&scores)?.matmul(enc)?; // (B, T, H)
        self.combine.forward(&cat_last(&[&ctx, dec])?)?.tanh()
    }
}
