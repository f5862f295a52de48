//! Seeded batching: each epoch visits every example once in an order drawn
//! from the loader's own random stream; each batch is padded to its own
//! longest sequence by the shift core.

use super::shift::Seq2SeqBatch;
use super::tokenizer::{BOS, EOS, PAD};
use super::Pair;
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Where a loader stands: enough to continue exactly (saved on resume).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    pub epoch: usize,
    pub cursor: usize,
    pub order: Vec<u32>,
    pub rng: Rng,
}

/// Cuts shuffled, padded batches from a list of pairs.
#[derive(Debug, Clone)]
pub struct Loader {
    pairs: Vec<Pair>,
    batch_size: usize,
    state: LoaderState,
}

impl Loader {
    /// `batch_size` must be positive and `pairs` non-empty.
    pub fn new(pairs: Vec<Pair>, batch_size: usize, seed: u64) -> Self {
        assert!(batch_size > 0 && !pairs.is_empty());
        let mut rng = Rng::derive(seed, "loader");
        let mut order: Vec<u32> = (0..pairs.len() as u32).collect();
        rng.shuffle(&mut order);
        Self { pairs, batch_size, state: LoaderState { epoch: 0, cursor: 0, order, rng } }
    }

    /// The next batch; a new shuffled epoch starts when one runs out. The
    /// last batch of an epoch may be smaller.
    pub fn next_batch(&mut self) -> Seq2SeqBatch {
        let st = &mut self.state;
        if st.cursor >= st.order.len() {
            st.rng.shuffle(&mut st.order);
            st.cursor = 0;
            st.epoch += 1;
        }
        let end = (st.cursor + self.batch_size).min(st.order.len());
        let batch: Vec<&Pair> = st.order[st.cursor..end].iter().map(|&i| &self.pairs[i as usize]).collect();
        st.cursor = end;
        Seq2SeqBatch::new(&batch, PAD, BOS, EOS)
    }

    /// Completed epochs.
    pub fn epoch(&self) -> usize {
        self.state.epoch
    }

    pub fn state(&self) -> &LoaderState {
        &self.state
    }

    pub fn set_state(&mut self, state: LoaderState) {
        self.state = state;
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Fixed-order batches over a whole split (for evaluation).
pub fn batches(pairs: &[Pair], batch_size: usize) -> impl Iterator<Item = Seq2SeqBatch> + '_ {
    pairs.chunks(batch_size.max(1)).map(|chunk| {
        let refs: Vec<&Pair> = chunk.iter().collect();
        Seq2SeqBatch::new(&refs, PAD, BOS, EOS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<Pair> {
        (0..n).map(|i| Pair { source: vec![4 + i as u32; 1 + i % 3], target: vec![5 + i as u32; 1 + i % 2] }).collect()
    }

    #[test]
    fn epoch_visits_every_example_once_and_is_seeded() {
        let mut a = Loader::new(pairs(10), 3, 9);
        let mut b = Loader::new(pairs(10), 3, 9);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let x = a.next_batch();
            assert_eq!(x, b.next_batch());
            seen.extend((0..x.b).map(|i| x.src[i * x.s]));
        }
        seen.sort();
        assert_eq!(seen, (4..14).collect::<Vec<u32>>());
        assert_eq!(a.epoch(), 0);
        a.next_batch();
        assert_eq!(a.epoch(), 1);
    }

    #[test]
    fn restored_state_continues_identically() {
        let mut a = Loader::new(pairs(7), 2, 1);
        for _ in 0..5 {
            a.next_batch();
        }
        let mut b = Loader::new(pairs(7), 2, 1);
        b.set_state(a.state().clone());
        for _ in 0..10 {
            assert_eq!(a.next_batch(), b.next_batch());
        }
    }
}
