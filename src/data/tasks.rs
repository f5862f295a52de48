//! Built-in synthetic tasks, generated from a seed: sequences of random
//! symbols and a deterministic transform of them. `rotate` is the seed's own
//! shift example; `copy`, `reverse` and `sort` test memory and alignment.

use super::{Pair, Splits};
use crate::data::shift::rotate_left;
use crate::data::tokenizer::{Tokenizer, N_SPECIAL};
use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The transform a task applies to its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Rotate left by `shift` (`[1,2,3,4,5]` → `[2,3,4,5,1]` for shift 1).
    Rotate,
    /// Output the source unchanged.
    Copy,
    /// Output the source reversed.
    Reverse,
    /// Output the source sorted ascending.
    Sort,
}

impl TaskKind {
    /// Every task name, comma-separated, for help and error messages.
    pub const NAMES: &'static str = "rotate, copy, reverse, sort";

    /// The task named `name`, e.g. "rotate"; an [`Error::Unknown`] otherwise.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "rotate" => Ok(TaskKind::Rotate),
            "copy" => Ok(TaskKind::Copy),
            "reverse" => Ok(TaskKind::Reverse),
            "sort" => Ok(TaskKind::Sort),
            _ => Err(Error::Unknown { what: "task", name: name.to_string(), known: Self::NAMES.to_string() }),
        }
    }

    /// The task's name, as [`TaskKind::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Rotate => "rotate",
            TaskKind::Copy => "copy",
            TaskKind::Reverse => "reverse",
            TaskKind::Sort => "sort",
        }
    }
}

/// A synthetic task: its transform, symbol vocabulary and sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Which transform, e.g. `rotate`.
    pub kind: TaskKind,
    /// Number of distinct symbols, e.g. 1000 for the seed preset.
    pub vocab: usize,
    /// Shortest sequence, e.g. 10.
    pub min_len: usize,
    /// Longest sequence, e.g. 10.
    pub max_len: usize,
    /// Rotation for `rotate`, e.g. 1.
    pub shift: usize,
    /// Training examples, e.g. 20000.
    pub n_train: usize,
    /// Validation examples (never seen in training), e.g. 1000.
    pub n_valid: usize,
}

impl TaskSpec {
    /// The checks a spec must pass before generating data.
    pub fn validate(&self) -> Result<()> {
        if self.vocab < 2 {
            return Err(Error::config("task.vocab", "needs at least 2 symbols"));
        }
        // Symbol ids (after the 4 specials) are u32; a size cap keeps them there.
        crate::limits::check_sizes(&[("task.vocab", self.vocab), ("task.max_len", self.max_len)])?;
        if self.min_len == 0 || self.min_len > self.max_len {
            return Err(Error::config(
                "task.min_len",
                format!("need 1 <= min_len <= max_len (got {} and {})", self.min_len, self.max_len),
            ));
        }
        if self.n_train == 0 || self.n_valid == 0 {
            return Err(Error::config("task.n_train", "need at least one training and one validation example"));
        }
        Ok(())
    }

    /// The tokenizer for this task's symbols.
    pub fn tokenizer(&self) -> Tokenizer {
        Tokenizer::Symbols { n: self.vocab }
    }

    /// The transform, in symbol space.
    pub fn apply(&self, x: &[u32]) -> Vec<u32> {
        match self.kind {
            TaskKind::Rotate => rotate_left(x, self.shift),
            TaskKind::Copy => x.to_vec(),
            TaskKind::Reverse => x.iter().rev().copied().collect(),
            TaskKind::Sort => {
                let mut y = x.to_vec();
                y.sort_unstable();
                y
            }
        }
    }

    /// Train and validation pairs (token ids) for `seed`. Validation sources
    /// never occur in training, so exact match measures generalisation.
    pub fn generate(&self, seed: u64) -> Result<Splits> {
        self.validate()?;
        let mut rng = Rng::derive(seed, "task");
        let sample = |rng: &mut Rng| -> Vec<u32> {
            let len = self.min_len + rng.below(self.max_len - self.min_len + 1);
            (0..len).map(|_| rng.below(self.vocab) as u32).collect()
        };
        let to_pair = |x: Vec<u32>| Pair {
            target: self.apply(&x).iter().map(|&s| s + N_SPECIAL).collect(),
            source: x.iter().map(|&s| s + N_SPECIAL).collect(),
        };
        let mut valid_src = Vec::with_capacity(self.n_valid);
        let mut seen = HashSet::new();
        // Bounded so a tiny space (vocab 2, length 1) cannot loop forever.
        for _ in 0..self.n_valid * 20 {
            if valid_src.len() == self.n_valid {
                break;
            }
            let x = sample(&mut rng);
            if seen.insert(x.clone()) {
                valid_src.push(x);
            }
        }
        let mut train = Vec::with_capacity(self.n_train);
        let mut tries = 0;
        while train.len() < self.n_train && tries < self.n_train * 20 {
            tries += 1;
            let x = sample(&mut rng);
            if !seen.contains(&x) {
                train.push(to_pair(x));
            }
        }
        if train.is_empty() {
            return Err(Error::config("task", "the symbol space is too small to hold out a validation set"));
        }
        Ok(Splits { train, valid: valid_src.into_iter().map(to_pair).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Symbol ids are u32: a vocabulary past the size cap is refused, not cast.
    #[test]
    fn a_vocabulary_too_large_for_u32_ids_is_refused() {
        let spec =
            TaskSpec { kind: TaskKind::Copy, vocab: 1 << 33, min_len: 2, max_len: 4, shift: 1, n_train: 4, n_valid: 2 };
        let e = spec.validate().unwrap_err().to_string();
        assert!(e.contains("task.vocab"), "{e}");
    }

    fn spec(kind: TaskKind) -> TaskSpec {
        TaskSpec { kind, vocab: 10, min_len: 3, max_len: 6, shift: 1, n_train: 200, n_valid: 20 }
    }

    #[test]
    fn transforms() {
        assert_eq!(spec(TaskKind::Rotate).apply(&[1, 2, 3]), vec![2, 3, 1]);
        assert_eq!(spec(TaskKind::Reverse).apply(&[1, 2, 3]), vec![3, 2, 1]);
        assert_eq!(spec(TaskKind::Sort).apply(&[3, 1, 2]), vec![1, 2, 3]);
        assert_eq!(spec(TaskKind::Copy).apply(&[3, 1, 2]), vec![3, 1, 2]);
    }

    #[test]
    fn generation_is_seeded_and_held_out() {
        let s = spec(TaskKind::Rotate);
        let a = s.generate(1).unwrap();
        let b = s.generate(1).unwrap();
        assert_eq!(a.train, b.train);
        assert_ne!(a.train, s.generate(2).unwrap().train);
        let valid: HashSet<_> = a.valid.iter().map(|p| p.source.clone()).collect();
        assert!(a.train.iter().all(|p| !valid.contains(&p.source)));
        assert!(a.train.iter().all(|p| (3..=6).contains(&p.source.len()) && p.source.iter().all(|&t| t >= 4)));
    }

    #[test]
    fn unknown_task_is_named() {
        let e = TaskKind::parse("shuffle").unwrap_err().to_string();
        assert!(e.contains("shuffle") && e.contains("rotate"), "{e}");
    }
}
