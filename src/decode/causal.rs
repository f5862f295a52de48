//! Sampling from a causal language model with a key/value cache: the
//! prompt is run once, then one token at a time. Greedy (temperature 0),
//! temperature, top-k, top-p (nucleus, Holtzman et al. 2020), repetition
//! penalty (Keskar et al. 2019, as `transformers` applies it), stop tokens,
//! a token budget and a seed.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::rng::Rng;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Options for sampling tokens: budget, temperature, filters, penalty, stop ids and seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleOptions {
    /// Most tokens to generate, e.g. 200.
    pub max_new_tokens: usize,
    /// 0 picks the most likely token (greedy); 1 samples the model's distribution.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: all).
    pub top_p: f32,
    /// > 1 discourages tokens already in the context (1: off).
    pub repetition_penalty: f32,
    /// Stop after emitting any of these ids.
    pub stop: Vec<u32>,
    /// Seed of the sampler's random stream, e.g. 0; the same seed and inputs give the same tokens.
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 200,
            temperature: 0.8,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            seed: 0,
        }
    }
}

impl SampleOptions {
    /// Checks the options: temperature >= 0 and finite, top_p in (0, 1], repetition_penalty > 0 and finite.
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::config("temperature", "must be >= 0"));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::config("top_p", "must be in (0, 1]"));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(Error::config("repetition_penalty", "must be > 0"));
        }
        Ok(())
    }
}

/// Picks the next token from one row of logits.
pub fn pick(logits: &mut [f32], context: &[u32], o: &SampleOptions, rng: &mut Rng) -> u32 {
    if o.repetition_penalty != 1.0 {
        let mut seen = context.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for &t in &seen {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = if *l > 0.0 { *l / o.repetition_penalty } else { *l * o.repetition_penalty };
            }
        }
    }
    if o.temperature == 0.0 {
        return super::argmax(logits);
    }
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if o.top_k > 0 {
        idx.truncate(o.top_k);
    }
    let max = logits[idx[0]];
    let mut probs: Vec<f64> = idx.iter().map(|&i| (((logits[i] - max) / o.temperature) as f64).exp()).collect();
    let z: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= z);
    if o.top_p < 1.0 {
        let mut acc = 0.0;
        let keep = probs.iter().position(|p| {
            acc += p;
            acc >= o.top_p as f64
        });
        let n = keep.map_or(probs.len(), |k| k + 1);
        probs.truncate(n);
        idx.truncate(n);
    }
    let mut u = rng.next_f64() * probs.iter().sum::<f64>();
    for (p, &i) in probs.iter().zip(&idx) {
        u -= p;
        if u <= 0.0 {
            return i as u32;
        }
    }
    *idx.last().expect("non-empty") as u32
}

/// Continues `prompt`, calling `on_token` with each new id as it is chosen;
/// `on_token` returns `true` to stop there (a stop text completed).
/// Returns the new ids (a stop token included, if one ended generation).
pub fn generate(
    model: &Model,
    prompt: &[u32],
    o: &SampleOptions,
    dev: &Device,
    mut on_token: impl FnMut(u32) -> Result<bool>,
) -> Result<Vec<u32>> {
    o.validate()?;
    let ctx = match model {
        Model::Causal(m) => m.max_positions(),
        _ => return Err(Error::config("model", "an encoder–decoder decodes from a source, not a prompt")),
    };
    if prompt.is_empty() {
        return Err(Error::config("prompt", "is empty: give at least one token"));
    }
    let mut rng = Rng::derive(o.seed, "sample");
    let mut tokens = prompt.to_vec();
    let mut cache = model.new_cache();
    let mut out = Vec::new();
    // Feed the prompt (its last `ctx` tokens), then one token per step.
    let mut feed: Vec<u32> = tokens[tokens.len().saturating_sub(ctx)..].to_vec();
    for step in 1..=o.max_new_tokens {
        // A profiled step is one token; the first one reads the prompt too.
        crate::profile::at_token(step);
        let _step = crate::profile::phase("token");
        if cache[0].len() + feed.len() > ctx {
            // The window is full: condition on the last ctx tokens only, as
            // nanoGPT crops its context (recomputed without the cache).
            cache = model.new_cache();
            feed = tokens[tokens.len() - ctx.min(tokens.len())..].to_vec();
        }
        let forward = crate::profile::phase("forward");
        let ids = Tensor::from_slice(&feed, (1, feed.len()), dev)?;
        let logits = model.causal_forward(&ids, Some(&mut cache), None).expect("causal model")?;
        let mut last = logits.get(0)?.get(feed.len() - 1)?.to_vec1::<f32>()?;
        drop(forward);
        let sample = crate::profile::phase("sample");
        let next = pick(&mut last, &tokens, o, &mut rng);
        drop(sample);
        tokens.push(next);
        out.push(next);
        let done = on_token(next)?;
        if done || o.stop.contains(&next) {
            break;
        }
        feed = vec![next];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_behave() {
        let mut rng = Rng::new(1);
        let logits = vec![1.0f32, 3.0, 2.0, -1.0];
        let greedy = SampleOptions { temperature: 0.0, ..Default::default() };
        assert_eq!(pick(&mut logits.clone(), &[], &greedy, &mut rng), 1);
        // Penalising token 1 (positive logit divided by 4) makes 2 the argmax.
        let pen = SampleOptions { temperature: 0.0, repetition_penalty: 4.0, ..Default::default() };
        assert_eq!(pick(&mut logits.clone(), &[1], &pen, &mut rng), 2);
        let top1 = SampleOptions { temperature: 5.0, top_k: 1, ..Default::default() };
        let nucleus = SampleOptions { temperature: 1.0, top_p: 0.5, ..Default::default() };
        for _ in 0..50 {
            assert_eq!(pick(&mut logits.clone(), &[], &top1, &mut rng), 1);
            assert_eq!(pick(&mut logits.clone(), &[], &nucleus, &mut rng), 1); // p(1) ≈ 0.66 ≥ 0.5
        }
        let hot = SampleOptions { temperature: 100.0, ..Default::default() };
        let mut seen = [false; 4];
        for _ in 0..200 {
            seen[pick(&mut logits.clone(), &[], &hot, &mut rng) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
