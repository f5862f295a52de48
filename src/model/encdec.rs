//! Step-by-step decoding of either encoder–decoder: encode the sources
//! once, then feed one token per row and read the next-token logits,
//! carrying the decoder's state. The decoders (the `decode` module) drive it
//! greedily, by sampling or by beam search.

use super::seq2seq::Encoded;
use super::transformer::TransformerState;
use super::{Seq2Seq, TransformerSeq2Seq};
use crate::data::shift::Seq2SeqBatch;
use crate::data::tokenizer::{BOS, EOS, PAD};
use crate::data::Pair;
use crate::error::Result;
use crate::nn::rnn::RnnState;
use candle_core::{Device, Tensor};

/// An encoder–decoder of either kind.
#[derive(Debug, Clone, Copy)]
pub enum EncDec<'a> {
    /// The RNN encoder–decoder.
    Rnn(&'a Seq2Seq),
    /// The Transformer encoder–decoder.
    Transformer(&'a TransformerSeq2Seq),
}

/// What the decoder carries from step to step, one row per hypothesis.
#[derive(Debug, Clone)]
pub enum DecState {
    /// State of the RNN encoder–decoder.
    Rnn {
        /// The encoder's outputs and padding bias, for attention.
        enc: Encoded,
        /// The decoder's current state, one per layer.
        states: Vec<RnnState>,
    },
    /// State of the Transformer encoder–decoder: caches and cross-attention keys and values.
    Transformer(TransformerState),
}

impl DecState {
    /// Rows `idx` of the state (beam search reorders and copies hypotheses).
    pub fn select(&self, idx: &Tensor) -> Result<Self> {
        Ok(match self {
            DecState::Rnn { enc, states } => DecState::Rnn {
                enc: enc.select(idx)?,
                states: states.iter().map(|s| s.select(idx)).collect::<candle_core::Result<_>>()?,
            },
            DecState::Transformer(s) => DecState::Transformer(s.select(idx)?),
        })
    }
}

impl EncDec<'_> {
    /// Encodes a batch of sources.
    pub fn start(&self, sources: &[&[u32]], dev: &Device) -> Result<DecState> {
        let pairs: Vec<Pair> = sources.iter().map(|s| Pair { source: s.to_vec(), target: vec![] }).collect();
        let refs: Vec<&Pair> = pairs.iter().collect();
        let t = Seq2SeqBatch::new(&refs, PAD, BOS, EOS).tensors(dev)?;
        let mask = t.src_has_pad.then_some(&t.src_mask);
        self.start_src(&t.src, mask)
    }

    /// Encodes a batch of sources as the front-end reads them: ids (B, S)
    /// or frames (B, S, F); `mask` (B, S) is 0 on padding, `None` if there is none.
    pub fn start_src(&self, src: &Tensor, mask: Option<&Tensor>) -> Result<DecState> {
        Ok(match self {
            EncDec::Rnn(m) => {
                let enc = m.encode(src, mask, None)?;
                DecState::Rnn { states: enc.states.clone(), enc }
            }
            EncDec::Transformer(m) => DecState::Transformer(m.start(src, mask, None)?),
        })
    }

    /// Feeds one token per row and returns each row's next-token logits.
    pub fn step(&self, tokens: &[u32], state: &mut DecState, dev: &Device) -> Result<Vec<Vec<f32>>> {
        let inp = Tensor::from_slice(tokens, (tokens.len(), 1), dev)?;
        let logits = match (self, state) {
            (EncDec::Rnn(m), DecState::Rnn { enc, states }) => {
                let (logits, next) = m.decode(enc, &inp, states, None)?;
                *states = next;
                logits
            }
            (EncDec::Transformer(m), DecState::Transformer(s)) => m.decode(&inp, s, None)?,
            _ => unreachable!("a state always comes from its own model"),
        };
        Ok(logits.squeeze(1)?.to_vec2::<f32>()?)
    }
}
