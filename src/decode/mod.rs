//! Decoding without the target: encode once, then step the decoder carrying
//! its state. Greedy, temperature sampling and beam search with a length
//! penalty, for both encoder–decoders (RNN and Transformer) through
//! [`EncDec`]. Causal language models sample through [`causal`].

pub mod causal;

use crate::data::tokenizer::{BOS, EOS, PAD};
use crate::error::Result;
pub use crate::model::{DecState, EncDec};
use crate::rng::Rng;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// How to choose each token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The most likely token.
    Greedy,
    /// Sample with temperature, top-k, top-p and repetition penalty,
    /// seeded (the same options as a language model's sampler).
    Sample(causal::SampleOptions),
    /// Keep the `width` best hypotheses; rank finished ones by
    /// log p / ((5 + len) / 6)^length_penalty (Wu et al. 2016, GNMT).
    Beam {
        /// Hypotheses kept per step, e.g. 4 (0 is treated as 1).
        width: usize,
        /// Exponent of the length penalty, >= 0 (0: raw log p), e.g. 0.6.
        length_penalty: f32,
    },
}

/// How [`decode_batch`] decodes: the strategy and a length limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecodeOptions {
    /// How each token is chosen.
    pub strategy: Strategy,
    /// Most tokens to emit (EOS excluded), e.g. 2 × the longest training target.
    pub max_len: usize,
}

/// What the encoder reads: token ids, or numeric frames (a strip's columns).
#[derive(Debug, Clone, Copy)]
pub enum Sources<'a> {
    /// One id sequence per row (padded here).
    Ids(&'a [&'a [u32]]),
    /// (B, S, F) f32 frames, no padding.
    Frames(&'a Tensor),
}

impl Sources<'_> {
    /// Rows.
    pub fn len(&self) -> usize {
        match self {
            Sources::Ids(s) => s.len(),
            Sources::Frames(t) => t.dims().first().copied().unwrap_or(0),
        }
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes each source; outputs are ids without the final EOS.
pub fn decode_batch(
    model: EncDec<'_>,
    sources: &[&[u32]],
    opts: &DecodeOptions,
    dev: &Device,
) -> Result<Vec<Vec<u32>>> {
    decode_sources(model, Sources::Ids(sources), opts, dev)
}

/// [`decode_batch`] of many sources, `batch` at a time, in order of length
/// (the batches hold little padding, and their rows finish at about the
/// same step); outputs come back in the order of `sources`.
pub fn decode_by_length(
    model: EncDec<'_>,
    sources: &[&[u32]],
    batch: usize,
    opts: &DecodeOptions,
    dev: &Device,
) -> Result<Vec<Vec<u32>>> {
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.sort_by_key(|&i| sources[i].len());
    let mut outputs = vec![Vec::new(); sources.len()];
    let phase = crate::progress::phase("sequences decoded", sources.len());
    for chunk in order.chunks(batch.max(1)) {
        let rows: Vec<&[u32]> = chunk.iter().map(|&i| sources[i]).collect();
        for (&i, out) in chunk.iter().zip(decode_batch(model, &rows, opts, dev)?) {
            outputs[i] = out;
        }
        phase.advance(chunk.len());
    }
    Ok(outputs)
}

/// Decodes each row of `frames` (B, S, F); outputs are ids without the final EOS.
pub fn decode_frames(model: EncDec<'_>, frames: &Tensor, opts: &DecodeOptions, dev: &Device) -> Result<Vec<Vec<u32>>> {
    decode_sources(model, Sources::Frames(frames), opts, dev)
}

/// Decodes each source, ids or frames.
pub fn decode_sources(
    model: EncDec<'_>,
    sources: Sources<'_>,
    opts: &DecodeOptions,
    dev: &Device,
) -> Result<Vec<Vec<u32>>> {
    match opts.strategy {
        Strategy::Beam { length_penalty, .. } if length_penalty < 0.0 => {
            Err(crate::error::Error::config("length_penalty", "must be >= 0"))
        }
        Strategy::Beam { width, length_penalty } => {
            beam(model, sources, width.max(1), length_penalty, opts.max_len, dev)
        }
        Strategy::Greedy => stepwise(model, sources, opts.max_len, None, dev),
        Strategy::Sample(ref o) => {
            o.validate()?;
            let mut rng = Rng::derive(o.seed, "sample");
            stepwise(model, sources, opts.max_len, Some((o, &mut rng)), dev)
        }
    }
}

/// The first step of decoding encodes the sources (a profiler phase).
fn encode(model: EncDec<'_>, sources: Sources<'_>, dev: &Device) -> Result<DecState> {
    let _encode = crate::profile::phase("encode");
    match sources {
        Sources::Ids(s) => model.start(s, dev),
        Sources::Frames(t) => model.start_src(t, None),
    }
}

/// One decoder step, as a profiler phase: the logits (B, V) of the next
/// token for each of `tokens`.
fn decoder_step(model: EncDec<'_>, tokens: &[u32], state: &mut DecState, dev: &Device) -> Result<Vec<Vec<f32>>> {
    let _forward = crate::profile::phase("forward");
    model.step(tokens, state, dev)
}

/// Greedy (no sampler) or sampled decoding of a whole batch at once.
fn stepwise(
    model: EncDec<'_>,
    sources: Sources<'_>,
    max_len: usize,
    mut sampler: Option<(&causal::SampleOptions, &mut Rng)>,
    dev: &Device,
) -> Result<Vec<Vec<u32>>> {
    let b = sources.len();
    let mut state = None;
    let mut last = vec![BOS; b];
    let mut out = vec![Vec::new(); b];
    let mut done = vec![false; b];
    for step in 0..=max_len {
        // A profiled step is one token; the first one encodes as well.
        crate::profile::at_token(step + 1);
        let _step = crate::profile::phase("token");
        let state = match state.as_mut() {
            Some(s) => s,
            None => state.insert(encode(model, sources, dev)?),
        };
        let rows = decoder_step(model, &last, state, dev)?; // (B, V)
        let _sample = crate::profile::phase("sample");
        for (i, row) in rows.iter().enumerate() {
            if done[i] {
                last[i] = PAD;
                continue;
            }
            let tok = match sampler.as_mut() {
                Some((o, rng)) => causal::pick(&mut row.clone(), &out[i], o, rng),
                None => argmax(row),
            };
            if tok == EOS || out[i].len() == max_len {
                done[i] = true;
            } else {
                out[i].push(tok);
            }
            last[i] = tok;
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    Ok(out)
}

/// Index of the largest value in `row` (the first on ties; 0 if empty).
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best as u32
}

fn log_softmax_row(row: &[f32]) -> Vec<f32> {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let lse = row.iter().map(|&v| ((v - max) as f64).exp()).sum::<f64>().ln() as f32 + max;
    row.iter().map(|&v| v - lse).collect()
}

/// One source's beam: alive hypotheses (tokens so far, summed
/// log-probability) and finished ones (tokens, length-penalised score).
struct Search {
    alive: Vec<(Vec<u32>, f32)>,
    finished: Vec<(Vec<u32>, f32)>,
    done: bool,
}

impl Search {
    /// Extends the alive hypotheses by the logits `rows` (one per alive
    /// hypothesis, in order) and returns the rows the new ones continue
    /// (empty once the search is done).
    fn advance(&mut self, rows: &[Vec<f32>], width: usize, alpha: f32, max_len: usize, last: bool) -> Vec<usize> {
        let penalty = |len: usize| ((5.0 + len as f32) / 6.0).powf(alpha);
        if last {
            // Out of room: every alive hypothesis ends here, once, with EOS.
            for (i, row) in rows.iter().enumerate() {
                let score = self.alive[i].1 + log_softmax_row(row)[EOS as usize];
                self.finished.push((self.alive[i].0.clone(), score / penalty(self.alive[i].0.len() + 1)));
            }
            self.done = true;
            return Vec::new();
        }
        // At most `width` EOS candidates (one per row) come before the
        // `width` hypotheses kept, so each row's best 2·width tokens hold
        // every candidate the search can take: a partial selection (O(V) a
        // row) instead of sorting rows·V candidates.
        let keep = 2 * width;
        let mut cands: Vec<(f32, usize, u32)> = Vec::with_capacity(rows.len() * keep);
        let order =
            |a: &(f32, usize, u32), b: &(f32, usize, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2));
        for (i, row) in rows.iter().enumerate() {
            let mut scored: Vec<(f32, usize, u32)> = log_softmax_row(row)
                .into_iter()
                .enumerate()
                .map(|(v, lp)| (self.alive[i].1 + lp, i, v as u32))
                .collect();
            if scored.len() > keep {
                scored.select_nth_unstable_by(keep - 1, order);
                scored.truncate(keep);
            }
            cands.extend(scored);
        }
        cands.sort_by(order);
        let mut alive = Vec::new();
        let mut parents = Vec::new();
        for (score, i, v) in cands {
            if alive.len() == width {
                break;
            }
            if v == EOS {
                if self.finished.len() < width {
                    let toks = self.alive[i].0.clone();
                    let len = toks.len() + 1;
                    self.finished.push((toks, score / penalty(len)));
                }
            } else {
                let mut toks = self.alive[i].0.clone();
                toks.push(v);
                alive.push((toks, score));
                parents.push(i);
            }
        }
        // Stop once no alive hypothesis can beat the best finished one
        // (log-probabilities only fall as hypotheses grow).
        let best_done = self.finished.iter().map(|f| f.1).fold(f32::NEG_INFINITY, f32::max);
        let best_alive = alive.iter().map(|a| a.1 / penalty(max_len + 1)).fold(f32::NEG_INFINITY, f32::max);
        if alive.is_empty() || self.finished.len() >= width || best_done > best_alive {
            self.done = true;
            return Vec::new();
        }
        self.alive = alive;
        parents
    }

    /// The best finished hypothesis (else the first alive one).
    fn best(self) -> Vec<u32> {
        self.finished
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|f| f.0)
            .or_else(|| self.alive.into_iter().next().map(|a| a.0))
            .unwrap_or_default()
    }
}

/// Beam search for a batch of sources at once: encoded together, then each
/// step runs the decoder over every alive hypothesis of every unfinished
/// source (up to B·width rows), and each source's search keeps its own
/// beam. A source's search does not depend on the others in its batch;
/// its scores may, in the last bits, since the products are shaped by
/// the batch, so a near tie can rarely go the other way.
fn beam(
    model: EncDec<'_>,
    sources: Sources<'_>,
    width: usize,
    alpha: f32,
    max_len: usize,
    dev: &Device,
) -> Result<Vec<Vec<u32>>> {
    let mut searches: Vec<Search> = (0..sources.len())
        .map(|_| Search { alive: vec![(Vec::new(), 0.0)], finished: Vec::new(), done: false })
        .collect();
    let mut state = None;
    for step in 0..=max_len {
        crate::profile::at_token(step + 1);
        let _step = crate::profile::phase("token");
        let st = match state.as_mut() {
            Some(s) => s,
            None => state.insert(encode(model, sources, dev)?),
        };
        // The state's rows: each unfinished source's alive hypotheses, in order.
        let last: Vec<u32> = searches
            .iter()
            .filter(|s| !s.done)
            .flat_map(|s| s.alive.iter().map(|(t, _)| *t.last().unwrap_or(&BOS)))
            .collect();
        let rows = decoder_step(model, &last, st, dev)?;
        let _search = crate::profile::phase("sample");
        let (mut parents, mut offset) = (Vec::new(), 0);
        for s in searches.iter_mut().filter(|s| !s.done) {
            let n = s.alive.len();
            let kept = s.advance(&rows[offset..offset + n], width, alpha, max_len, step == max_len);
            parents.extend(kept.into_iter().map(|i| (offset + i) as u32));
            offset += n;
        }
        if parents.is_empty() {
            break;
        }
        state = Some(st.select(&Tensor::from_slice(&parents, parents.len(), dev)?)?);
    }
    Ok(searches.into_iter().map(Search::best).collect())
}
