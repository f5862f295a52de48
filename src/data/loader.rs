//! Seeded batching: each epoch visits every example once in an order drawn
//! from the loader's own random stream; each batch is padded to its own
//! longest sequence by the shift core.

use super::audio::augment::SpeechAugment;
use super::audio::speech::{Clips, SpeechData};
use super::augment::Augment;
use super::images::strips::Strips;
use super::images::Images;
use super::shift::{Batch, CausalBatch, ForecastBatch, ImageBatch, Seq2SeqBatch, StripBatch};
use super::tokenizer::Tokenizer;
use super::tokenizer::{BOS, EOS, PAD};
use super::Pair;
use crate::error::{Error, Result};
use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Where a loader stands: enough to continue exactly (saved on resume).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoaderState {
    /// Completed epochs (for a [`WindowLoader`], tokens drawn divided by the stream length).
    pub epoch: usize,
    /// Position in `order` of the next example (for a [`WindowLoader`], batches drawn so far).
    pub cursor: usize,
    /// This epoch's shuffled example indices (empty for a [`WindowLoader`]).
    pub order: Vec<u32>,
    /// The loader's own random stream.
    pub rng: Rng,
    /// Token batching: where each batch of this epoch's `order` starts
    /// (empty when batches are a fixed number of examples).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bounds: Vec<u32>,
}

impl LoaderState {
    /// A shuffled order of `n` examples from the loader's own stream.
    fn shuffled(n: usize, seed: u64) -> Self {
        let mut rng = Rng::derive(seed, "loader");
        let mut order: Vec<u32> = (0..n as u32).collect();
        rng.shuffle(&mut order);
        Self { epoch: 0, cursor: 0, order, rng, bounds: Vec::new() }
    }

    /// The next `batch_size` example indices; a new shuffled epoch starts
    /// when the order runs out (the last batch of an epoch may be smaller).
    fn next_indices(&mut self, batch_size: usize) -> &[u32] {
        if self.cursor >= self.order.len() {
            self.rng.shuffle(&mut self.order);
            self.cursor = 0;
            self.epoch += 1;
        }
        let (start, end) = (self.cursor, (self.cursor + batch_size).min(self.order.len()));
        self.cursor = end;
        &self.order[start..end]
    }
}

/// Examples whose lengths are sorted together before token batches are cut:
/// large enough that batches hold sentences of nearly one length, small
/// enough that an epoch still mixes the corpus.
const BUCKET_POOL: usize = 4096;

/// Cuts shuffled, padded batches from a list of pairs: a fixed number of
/// pairs each, or (token batching) as many as fit a token budget.
#[derive(Debug, Clone)]
pub struct PairLoader {
    pairs: Vec<Pair>,
    batch_size: usize,
    /// Token batching: the most padded positions per batch (0: off).
    batch_tokens: usize,
    state: LoaderState,
}

impl PairLoader {
    /// `batch_size` must be positive and `pairs` non-empty.
    pub fn new(pairs: Vec<Pair>, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        if pairs.is_empty() {
            return Err(Error::config(
                "data",
                "no training pairs: every pair was held out for validation (a tenth of the pairs, chosen by a hash of each); give more pairs",
            ));
        }
        let state = LoaderState::shuffled(pairs.len(), seed);
        Ok(Self { pairs, batch_size, batch_tokens: 0, state })
    }

    /// Token batching, as translators batch (fairseq's `--max-tokens`): each
    /// epoch, the shuffled pairs are sorted by length within pools of 4096,
    /// cut into batches of at most `batch_tokens` padded positions (pairs ×
    /// the longest side, target plus EOS, in the batch; a pair longer than
    /// the budget goes alone), and the batches are shuffled. Sentences of
    /// one length share a batch, so little of it is padding.
    pub fn with_batch_tokens(mut self, batch_tokens: usize) -> Self {
        self.batch_tokens = batch_tokens;
        if batch_tokens > 0 {
            self.bucket_epoch();
        }
        self
    }

    /// Longest side of pair `i` as a batch pads it.
    fn width(&self, i: u32) -> usize {
        let p = &self.pairs[i as usize];
        p.source.len().max(p.target.len() + 1)
    }

    /// Reorders this epoch's shuffled `order` into length-bucketed batches in random order.
    fn bucket_epoch(&mut self) {
        let mut order = std::mem::take(&mut self.state.order);
        for pool in order.chunks_mut(BUCKET_POOL) {
            pool.sort_by_key(|&i| (self.width(i), i));
        }
        let mut batches: Vec<Vec<u32>> = Vec::new();
        let mut cur: Vec<u32> = Vec::new();
        let mut widest = 0;
        for &i in &order {
            let w = widest.max(self.width(i));
            if !cur.is_empty() && (cur.len() + 1) * w > self.batch_tokens {
                batches.push(std::mem::take(&mut cur));
                widest = 0;
            }
            widest = widest.max(self.width(i));
            cur.push(i);
        }
        if !cur.is_empty() {
            batches.push(cur);
        }
        self.state.rng.shuffle(&mut batches);
        self.state.bounds.clear();
        order.clear();
        for b in batches {
            self.state.bounds.push(order.len() as u32);
            order.extend(b);
        }
        self.state.order = order;
    }

    /// The next batch; a new shuffled epoch starts when one runs out. The
    /// last batch of an epoch may be smaller.
    pub fn next_batch(&mut self) -> Seq2SeqBatch {
        Seq2SeqBatch::new(&self.next_pairs(), PAD, BOS, EOS)
    }

    /// The next batch as prompt/response rows for a language model with
    /// context `t` (see [`CausalBatch::prompt_response`]).
    pub fn next_prompt_batch(&mut self, t: usize, eos: u32) -> CausalBatch {
        CausalBatch::prompt_response(&self.next_pairs(), t, eos)
    }

    fn next_pairs(&mut self) -> Vec<&Pair> {
        if self.batch_tokens == 0 {
            return self.state.next_indices(self.batch_size).iter().map(|&i| &self.pairs[i as usize]).collect();
        }
        if self.state.cursor >= self.state.order.len() {
            self.state.rng.shuffle(&mut self.state.order);
            self.state.cursor = 0;
            self.state.epoch += 1;
            self.bucket_epoch();
        }
        let st = &self.state;
        let at = st.bounds.partition_point(|&b| (b as usize) <= st.cursor);
        let end = st.bounds.get(at).map_or(st.order.len(), |&b| b as usize);
        let start = st.cursor;
        self.state.cursor = end;
        self.state.order[start..end].iter().map(|&i| &self.pairs[i as usize]).collect()
    }

    /// Completed epochs.
    pub fn epoch(&self) -> usize {
        self.state.epoch
    }

    /// Where the loader stands, for saving with a checkpoint.
    pub fn state(&self) -> &LoaderState {
        &self.state
    }

    /// Restores a saved state, so the loader continues exactly where it was.
    pub fn set_state(&mut self, state: LoaderState) {
        self.state = state;
    }

    /// The number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

/// Random windows of a token stream, nanoGPT's `get_batch`: each row starts
/// at a uniformly drawn offset; the shift core cuts inputs and labels.
#[derive(Debug, Clone)]
pub struct WindowLoader {
    tokens: Vec<u32>,
    batch_size: usize,
    block: usize,
    state: LoaderState,
}

impl WindowLoader {
    /// The stream must hold at least `block + 1` tokens.
    pub fn new(tokens: Vec<u32>, batch_size: usize, block: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        if tokens.len() <= block {
            let n = tokens.len();
            return Err(Error::config("data", format!("{n} training tokens; a window of {block} needs more")));
        }
        let state = LoaderState {
            epoch: 0,
            cursor: 0,
            order: Vec::new(),
            rng: Rng::derive(seed, "loader"),
            bounds: Vec::new(),
        };
        Ok(Self { tokens, batch_size, block, state })
    }

    /// The next `batch_size` windows of `block` tokens, each at a uniformly drawn offset.
    pub fn next_batch(&mut self) -> CausalBatch {
        let span = self.tokens.len() - self.block;
        let st = &mut self.state;
        let starts: Vec<usize> = (0..self.batch_size).map(|_| st.rng.below(span)).collect();
        st.cursor = st.cursor.saturating_add(1);
        // An "epoch" is as many windows as the stream has tokens.
        let drawn = (st.cursor as u128) * (self.batch_size as u128) * (self.block as u128);
        st.epoch = usize::try_from(drawn / self.tokens.len() as u128).unwrap_or(usize::MAX);
        CausalBatch::new(&self.tokens, &starts, self.block)
    }
}

/// Shuffled forecasting windows: each epoch visits every training window
/// (a start index into the series) once.
#[derive(Debug, Clone)]
pub struct ForecastLoader {
    columns: Vec<Vec<f32>>,
    n_targets: usize,
    starts: Vec<usize>,
    l: usize,
    h: usize,
    batch_size: usize,
    state: LoaderState,
}

impl ForecastLoader {
    /// `columns` are whole scaled series (targets first); `starts` must be
    /// non-empty and leave room for `l + h` values each.
    pub fn new(
        columns: Vec<Vec<f32>>,
        n_targets: usize,
        starts: Vec<usize>,
        (l, h): (usize, usize),
        batch_size: usize,
        seed: u64,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        if starts.is_empty() {
            return Err(Error::config("data", format!("no training window of context {l} + horizon {h}")));
        }
        let state = LoaderState::shuffled(starts.len(), seed);
        Ok(Self { columns, n_targets, starts, l, h, batch_size, state })
    }

    /// The next batch, with the decoder's teacher-forced input.
    pub fn next_batch(&mut self) -> ForecastBatch {
        let starts: Vec<usize> =
            self.state.next_indices(self.batch_size).iter().map(|&i| self.starts[i as usize]).collect();
        ForecastBatch::new(&self.columns, self.n_targets, &starts, self.l, self.h, true)
    }
}

/// Shuffled batches of conversations for a language model, the assistant
/// turns supervised ([`CausalBatch::dialogues`]).
#[derive(Debug, Clone)]
pub struct ChatLoader {
    dialogues: Vec<crate::data::chat::Dialogue>,
    batch_size: usize,
    state: LoaderState,
}

impl ChatLoader {
    /// `batch_size` must be positive and `dialogues` non-empty.
    pub fn new(dialogues: Vec<crate::data::chat::Dialogue>, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        if dialogues.is_empty() {
            return Err(Error::config("data", "no training conversations: give more than one conversation"));
        }
        let state = LoaderState::shuffled(dialogues.len(), seed);
        Ok(Self { dialogues, batch_size, state })
    }

    /// The next batch, rows cut to context `t` and padded with `pad`.
    pub fn next_batch(&mut self, t: usize, pad: u32) -> CausalBatch {
        let rows: Vec<&crate::data::chat::Dialogue> =
            self.state.next_indices(self.batch_size).iter().map(|&i| &self.dialogues[i as usize]).collect();
        CausalBatch::dialogues(&rows, t, pad)
    }
}

/// Either loader behind one interface.
#[derive(Debug, Clone)]
pub enum Loader {
    /// Source/target pairs for an encoder–decoder.
    Pairs(PairLoader),
    /// Random windows of a token stream for a language model.
    Windows(WindowLoader),
    /// Prompt/response pairs for a language model: (loader, context, EOS id).
    Prompts(PairLoader, usize, u32),
    /// Forecasting windows of a numeric series.
    Forecast(ForecastLoader),
    /// Labelled images, augmented.
    Images(ImageLoader),
    /// Digit strips and their texts, augmented.
    Strips(StripLoader),
    /// Spoken clips as features, augmented.
    Speech(SpeechLoader),
    /// Conversations for a language model: (loader, context, padding id).
    Chat(ChatLoader, usize, u32),
}

impl Loader {
    /// The next batch from the loader inside.
    pub fn next_batch(&mut self) -> Batch {
        match self {
            Loader::Pairs(l) => Batch::Pairs(l.next_batch()),
            Loader::Windows(l) => Batch::Causal(l.next_batch()),
            Loader::Prompts(l, t, eos) => Batch::Causal(l.next_prompt_batch(*t, *eos)),
            Loader::Forecast(l) => Batch::Forecast(l.next_batch()),
            Loader::Images(l) => Batch::Images(l.next_batch()),
            Loader::Strips(l) => Batch::Strips(l.next_batch()),
            Loader::Speech(l) => l.next_batch(),
            Loader::Chat(l, t, pad) => Batch::Causal(l.next_batch(*t, *pad)),
        }
    }

    /// Completed epochs.
    pub fn epoch(&self) -> usize {
        self.state().epoch
    }

    /// Where the loader stands, for saving with a checkpoint.
    pub fn state(&self) -> &LoaderState {
        match self {
            Loader::Pairs(l) | Loader::Prompts(l, ..) => l.state(),
            Loader::Windows(l) => &l.state,
            Loader::Forecast(l) => &l.state,
            Loader::Images(l) => &l.state,
            Loader::Strips(l) => &l.images.state,
            Loader::Speech(l) => &l.state,
            Loader::Chat(l, ..) => &l.state,
        }
    }

    /// Restores a saved state, so the loader continues exactly where it was.
    /// Restores a saved position, after checking that it fits this data
    /// (the error says what does not); a bad one would index past the data.
    pub fn set_state(&mut self, state: LoaderState) -> std::result::Result<(), String> {
        let examples = match self {
            Loader::Pairs(l) | Loader::Prompts(l, ..) => Some(l.len()),
            Loader::Windows(_) => None,
            Loader::Forecast(l) => Some(l.starts.len()),
            Loader::Images(l) => Some(l.images.len()),
            Loader::Strips(l) => Some(l.images.images.len()),
            Loader::Speech(l) => Some(l.data.train.len()),
            Loader::Chat(l, ..) => Some(l.dialogues.len()),
        };
        match examples {
            Some(n) => {
                let mut seen = vec![false; n];
                let permutation = state.order.len() == n
                    && state.order.iter().all(|&i| (i as usize) < n && !std::mem::replace(&mut seen[i as usize], true));
                if !permutation || state.cursor > n {
                    return Err(format!(
                        "the loader's position (order of {}, cursor {}) does not fit the {n} training examples",
                        state.order.len(),
                        state.cursor
                    ));
                }
            }
            None if !state.order.is_empty() => return Err("a text loader keeps no example order".into()),
            None => {}
        }
        match self {
            Loader::Pairs(l) | Loader::Prompts(l, ..) => l.set_state(state),
            Loader::Windows(l) => l.state = state,
            Loader::Forecast(l) => l.state = state,
            Loader::Images(l) => l.state = state,
            Loader::Strips(l) => l.images.state = state,
            Loader::Speech(l) => l.state = state,
            Loader::Chat(l, ..) => l.state = state,
        }
        Ok(())
    }
}

/// Shuffled batches of labelled images, each image perturbed by the
/// augmentation with draws from the loader's own stream (so a resumed run
/// draws the same offsets).
#[derive(Debug, Clone)]
pub struct ImageLoader {
    images: Images,
    augment: Augment,
    batch_size: usize,
    state: LoaderState,
}

impl ImageLoader {
    /// `batch_size` must be positive and `images` non-empty.
    pub fn new(images: Images, augment: Augment, batch_size: usize, seed: u64) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        if images.is_empty() {
            return Err(Error::config("data", "no training images"));
        }
        images.validate(std::path::Path::new("the training images"))?;
        let state = LoaderState::shuffled(images.len(), seed);
        Ok(Self { images, augment, batch_size, state })
    }

    /// The next batch; a new shuffled epoch starts when one runs out.
    pub fn next_batch(&mut self) -> ImageBatch {
        self.next_indexed().1
    }

    /// The next batch and the indices of its images.
    fn next_indexed(&mut self) -> (Vec<u32>, ImageBatch) {
        let (w, h) = (self.images.width, self.images.height);
        let idx: Vec<u32> = self.state.next_indices(self.batch_size).to_vec();
        let mut pixels = Vec::with_capacity(idx.len() * w * h);
        for &i in &idx {
            let img = self.images.image_f32(i as usize);
            pixels.extend(self.augment.apply(&img, w, h, &mut self.state.rng));
        }
        let labels = idx.iter().map(|&i| self.images.labels[i as usize]).collect();
        (idx, ImageBatch::new(h, w, pixels, labels))
    }
}

/// Shuffled batches of strips: an [`ImageLoader`] over the strips (the
/// same order and augmentation draws), each batch paired with the texts
/// its strips read.
#[derive(Debug, Clone)]
pub struct StripLoader {
    images: ImageLoader,
    targets: Vec<Vec<u32>>,
}

impl StripLoader {
    /// `batch_size` must be positive, `strips` non-empty and every text
    /// written in `tok`'s characters.
    pub fn new(strips: &Strips, tok: &Tokenizer, augment: Augment, batch_size: usize, seed: u64) -> Result<Self> {
        let targets = strip_targets(strips, tok)?;
        Ok(Self { images: ImageLoader::new(strips.images.clone(), augment, batch_size, seed)?, targets })
    }

    /// The next batch; a new shuffled epoch starts when one runs out.
    pub fn next_batch(&mut self) -> StripBatch {
        let (idx, batch) = self.images.next_indexed();
        let targets = idx.iter().map(|&i| self.targets[i as usize].clone()).collect();
        StripBatch::new(batch.h, batch.w, batch.pixels, targets, PAD, BOS, EOS)
    }
}

/// Shuffled batches of training clips as log-mel features: keywords as
/// [`ImageBatch`]es (mel bands × frames, one class each) for a classifier,
/// transcripts as [`StripBatch`]es for an encoder–decoder. Each clip is
/// perturbed by the augmentation with draws from the loader's own stream
/// (so a resumed run hears the same clips).
#[derive(Debug, Clone)]
pub struct SpeechLoader {
    data: SpeechData,
    augment: SpeechAugment,
    /// Class labels (keywords) or token ids (transcripts), per training clip.
    labels: Vec<u32>,
    targets: Vec<Vec<u32>>,
    batch_size: usize,
    state: LoaderState,
}

impl SpeechLoader {
    /// `batch_size` must be positive; transcripts must be written in `tok`'s characters.
    pub fn new(
        data: &SpeechData,
        tok: &Tokenizer,
        augment: SpeechAugment,
        batch_size: usize,
        seed: u64,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(Error::config("train.batch_size", "must be at least 1"));
        }
        if data.train.is_empty() {
            return Err(Error::config("data", "no training clips"));
        }
        let targets = if data.strings { clip_targets(&data.train, tok)? } else { Vec::new() };
        let labels = if data.strings { Vec::new() } else { data.labels(&data.train) };
        let state = LoaderState::shuffled(data.train.len(), seed);
        Ok(Self { data: data.clone(), augment, labels, targets, batch_size, state })
    }

    /// The next batch; a new shuffled epoch starts when one runs out.
    pub fn next_batch(&mut self) -> Batch {
        use rayon::prelude::*;
        let idx: Vec<u32> = self.state.next_indices(self.batch_size).to_vec();
        let (h, w) = (self.data.features.cfg.n_mels, self.data.frames());
        // One seed per clip from the loader's stream, in clip order; then each
        // clip's draws from its own stream, so the clips are perturbed in
        // parallel and the batch is the same on any number of threads.
        let seeds: Vec<u64> = idx.iter().map(|_| self.state.rng.next_u64()).collect();
        let (data, aug) = (&self.data, &self.augment);
        let per: Vec<Vec<f32>> = idx
            .par_iter()
            .zip(&seeds)
            .map(|(&i, &seed)| data.augmented(&data.train.audio[i as usize], aug, &mut Rng::new(seed)))
            .collect();
        let feats = per.concat();
        debug_assert_eq!(feats.len(), idx.len() * h * w);
        if self.data.strings {
            let t = idx.iter().map(|&i| self.targets[i as usize].clone()).collect();
            Batch::Strips(StripBatch::new(h, w, feats, t, PAD, BOS, EOS))
        } else {
            Batch::Images(ImageBatch::new(h, w, feats, idx.iter().map(|&i| self.labels[i as usize]).collect()))
        }
    }
}

/// Each clip's transcript as ids of `tok` (the error names the clip's file).
pub fn clip_targets(clips: &Clips, tok: &Tokenizer) -> Result<Vec<Vec<u32>>> {
    clips
        .texts
        .iter()
        .zip(&clips.paths)
        .map(|(t, p)| {
            let ids = tok.encode(t)?;
            if ids.contains(&super::tokenizer::UNK) || ids.is_empty() {
                return Err(Error::bad_file(p, format!("says {t:?}, which the tokenizer cannot write")));
            }
            Ok(ids)
        })
        .collect()
}

/// Consecutive batches of clips, centred and unperturbed (validation and test).
pub fn speech_batches(data: &SpeechData, clips: &Clips, tok: &Tokenizer, batch_size: usize) -> Result<Vec<Batch>> {
    let (h, w) = (data.features.cfg.n_mels, data.frames());
    let targets = if data.strings { clip_targets(clips, tok)? } else { Vec::new() };
    let labels = data.labels(clips);
    let idx: Vec<usize> = (0..clips.len()).collect();
    Ok(idx
        .chunks(batch_size.max(1))
        .map(|c| {
            let feats = data.features_batch(clips, c, &vec![0; c.len()]);
            if data.strings {
                Batch::Strips(StripBatch::new(
                    h,
                    w,
                    feats,
                    c.iter().map(|&i| targets[i].clone()).collect(),
                    PAD,
                    BOS,
                    EOS,
                ))
            } else {
                Batch::Images(ImageBatch::new(h, w, feats, c.iter().map(|&i| labels[i]).collect()))
            }
        })
        .collect())
}

/// Each strip's text as ids of `tok` (the error names the strip).
pub fn strip_targets(strips: &Strips, tok: &Tokenizer) -> Result<Vec<Vec<u32>>> {
    strips
        .texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let ids = tok.encode(t)?;
            if ids.contains(&super::tokenizer::UNK) {
                return Err(Error::config("data", format!("strip {i} reads {t:?}, which the tokenizer does not know")));
            }
            Ok(ids)
        })
        .collect()
}

/// Consecutive batches of strips as they are (validation and test).
pub fn strip_batches(strips: &Strips, tok: &Tokenizer, batch_size: usize) -> Result<Vec<Batch>> {
    let targets = strip_targets(strips, tok)?;
    let im = &strips.images;
    let idx: Vec<usize> = (0..im.len()).collect();
    Ok(idx
        .chunks(batch_size.max(1))
        .map(|c| {
            let pixels = c.iter().flat_map(|&i| im.image_f32(i)).collect();
            let t = c.iter().map(|&i| targets[i].clone()).collect();
            Batch::Strips(StripBatch::new(im.height, im.width, pixels, t, PAD, BOS, EOS))
        })
        .collect())
}

/// Consecutive batches of images as they are (validation and test).
pub fn image_batches(images: &Images, batch_size: usize) -> Vec<Batch> {
    let idx: Vec<usize> = (0..images.len()).collect();
    idx.chunks(batch_size.max(1))
        .map(|c| {
            let pixels = c.iter().flat_map(|&i| images.image_f32(i)).collect();
            let labels = c.iter().map(|&i| images.labels[i]).collect();
            Batch::Images(ImageBatch::new(images.height, images.width, pixels, labels))
        })
        .collect()
}

/// Conversations in order, `batch_size` a batch, cut to context `t` and
/// padded with `pad` ([`CausalBatch::dialogues`]): a deterministic
/// validation set.
pub fn dialogue_batches(
    dialogues: &[crate::data::chat::Dialogue],
    batch_size: usize,
    t: usize,
    pad: u32,
) -> Vec<Batch> {
    dialogues
        .chunks(batch_size.max(1))
        .map(|c| {
            let rows: Vec<&crate::data::chat::Dialogue> = c.iter().collect();
            Batch::Causal(CausalBatch::dialogues(&rows, t, pad))
        })
        .collect()
}

/// Consecutive, non-overlapping windows of a token stream, at most
/// `max_batches` batches (0: all): a deterministic validation set.
pub fn windows(tokens: &[u32], batch_size: usize, block: usize, max_batches: usize) -> Vec<Batch> {
    let n = tokens.len().saturating_sub(1) / block.max(1);
    let starts: Vec<usize> = (0..n).map(|i| i * block).collect();
    let mut out: Vec<Batch> =
        starts.chunks(batch_size.max(1)).map(|c| Batch::Causal(CausalBatch::new(tokens, c, block))).collect();
    if max_batches > 0 {
        out.truncate(max_batches);
    }
    out
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
    fn token_batches_fit_the_budget_visit_everything_and_resume() {
        // Lengths 1..=40, so bucketing has something to sort.
        let ps: Vec<Pair> =
            (0..300).map(|i| Pair { source: vec![4; 1 + (i * 7) % 40], target: vec![5; 1 + (i * 3) % 20] }).collect();
        let width = |p: &Pair| p.source.len().max(p.target.len() + 1);
        let mut a = PairLoader::new(ps.clone(), 1, 4).unwrap().with_batch_tokens(120);
        let mut seen = 0;
        let mut waste = (0usize, 0usize);
        while a.epoch() == 0 && seen < ps.len() {
            let b = a.next_pairs();
            let w = b.iter().map(|p| width(p)).max().unwrap();
            assert!(b.len() * w <= 120 || b.len() == 1, "{} pairs of width {w}", b.len());
            waste.0 += b.iter().map(|p| w - width(p)).sum::<usize>();
            waste.1 += b.len() * w;
            seen += b.len();
        }
        assert_eq!(seen, ps.len(), "an epoch visits every pair once");
        assert!(waste.0 * 10 < waste.1, "bucketed batches are mostly real tokens: {waste:?}");
        // A saved state continues exactly, across the epoch boundary too.
        let mut b = PairLoader::new(ps.clone(), 1, 4).unwrap().with_batch_tokens(120);
        b.set_state(a.state().clone());
        for _ in 0..60 {
            assert_eq!(a.next_batch(), b.next_batch());
        }
        assert!(a.epoch() >= 1);
    }

    #[test]
    fn epoch_visits_every_example_once_and_is_seeded() {
        let mut a = PairLoader::new(pairs(10), 3, 9).unwrap();
        let mut b = PairLoader::new(pairs(10), 3, 9).unwrap();
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
    fn windows_are_seeded_and_in_range() {
        let tokens: Vec<u32> = (0..100).collect();
        let mut a = WindowLoader::new(tokens.clone(), 4, 8, 3).unwrap();
        let mut b = WindowLoader::new(tokens.clone(), 4, 8, 3).unwrap();
        for _ in 0..20 {
            let x = a.next_batch();
            assert_eq!(x, b.next_batch());
            assert!(x.labels.iter().zip(&x.inputs).all(|(l, i)| *l == i + 1));
        }
        let v = windows(&tokens, 5, 8, 0);
        assert_eq!(v.iter().map(|b| b.dims().0).sum::<usize>(), 12);
    }

    #[test]
    fn restored_state_continues_identically() {
        let mut a = PairLoader::new(pairs(7), 2, 1).unwrap();
        for _ in 0..5 {
            a.next_batch();
        }
        let mut b = PairLoader::new(pairs(7), 2, 1).unwrap();
        b.set_state(a.state().clone());
        for _ in 0..10 {
            assert_eq!(a.next_batch(), b.next_batch());
        }
    }
}
