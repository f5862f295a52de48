//! Generation jobs: a language model continues a prompt, streaming its text
//! as it comes; an encoder–decoder decodes each input (greedy, sampled or
//! by beam search).

use crate::checkpoint::Loaded;
use crate::decode::causal::SampleOptions;
use crate::decode::{decode_batch, DecodeOptions, Strategy};
use crate::error::{Error, Result};
use crate::model::EncDec;
use candle_core::Device;
use serde::Serialize;
use std::path::PathBuf;

/// What to generate, and how.
#[derive(Debug, Clone)]
pub struct GenerateJob {
    /// A run folder, a checkpoint folder or a `transformers` GPT-2/Llama folder.
    pub checkpoint: PathBuf,
    /// Language models: the text to continue (several are joined by newlines).
    /// Encoder–decoders: the inputs to decode, one output each.
    pub prompts: Vec<String>,
    /// Most new tokens (language models).
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy (default: 0.8 for language models,
    /// 0 for encoder–decoders).
    pub temperature: Option<f32>,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: all).
    pub top_p: f32,
    /// Above 1, discourages tokens already in the context (1: off).
    pub repetition_penalty: f32,
    /// Texts that stop generation, each one token of the tokenizer (language
    /// models; the end-of-text token always stops).
    pub stop: Vec<String>,
    /// Beam width (encoder–decoders; 1: no beam search).
    pub beam: usize,
    /// Beam length penalty α, e.g. 0.6.
    pub length_penalty: f32,
    /// Seed of the sampler's random stream; the same seed and inputs give the same tokens.
    pub seed: u64,
    /// Most tokens an encoder–decoder emits (default: twice the longest training target).
    pub max_len: Option<usize>,
}

impl GenerateJob {
    /// Default settings for `checkpoint` and `prompts`.
    pub fn new(checkpoint: impl Into<PathBuf>, prompts: Vec<String>) -> Self {
        Self {
            checkpoint: checkpoint.into(),
            prompts,
            max_new_tokens: 200,
            temperature: None,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            beam: 1,
            length_penalty: 0.6,
            seed: 0,
            max_len: None,
        }
    }
}

/// One output: its token ids and text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// The prompt or input it answers.
    pub input: String,
    /// The generated token ids (a language model's new tokens only).
    pub ids: Vec<u32>,
    /// `ids` decoded.
    pub text: String,
}

/// Loads `job.checkpoint` and generates. A language model's text is also
/// passed to `on_text` piece by piece as it is generated (whole characters
/// only); an encoder–decoder's outputs are passed whole, one per input.
pub fn generate(job: &GenerateJob, on_text: &mut dyn FnMut(&str)) -> Result<Vec<Output>> {
    let ck = crate::checkpoint::load(&job.checkpoint, &Device::Cpu)?;
    generate_with(&ck, job, on_text)
}

/// [`generate`] with a model already loaded.
pub fn generate_with(ck: &Loaded, job: &GenerateJob, on_text: &mut dyn FnMut(&str)) -> Result<Vec<Output>> {
    if ck.config.model.is_forecaster() {
        return Err(Error::Checkpoint {
            path: ck.dir.clone(),
            msg: format!(
                "is a forecaster: it forecasts numbers, not text (use `shiftlm forecast --checkpoint {}`)",
                job.checkpoint.display()
            ),
        });
    }
    match ck.model.encoder_decoder() {
        Some(model) => decode_inputs(ck, model, job, on_text),
        None => continue_prompt(ck, job, on_text),
    }
}

/// A language model continues the prompts (joined by newlines), passing on
/// whole characters as they come.
fn continue_prompt(ck: &Loaded, job: &GenerateJob, on_text: &mut dyn FnMut(&str)) -> Result<Vec<Output>> {
    let eos = ck.config.model_eos();
    let mut stop = vec![eos];
    for s in &job.stop {
        match ck.tokenizer.encode(s)?.as_slice() {
            [id] => stop.push(*id),
            _ => return Err(Error::setting(format!("--stop {s:?} is not a single token of this tokenizer"))),
        }
    }
    let prompt = job.prompts.join("\n");
    let mut ids = ck.tokenizer.encode(&prompt)?;
    if ids.is_empty() {
        ids.push(eos); // no prompt: start from end-of-text, as after a document
    }
    let o = SampleOptions {
        max_new_tokens: job.max_new_tokens,
        temperature: job.temperature.unwrap_or(0.8),
        top_k: job.top_k,
        top_p: job.top_p,
        repetition_penalty: job.repetition_penalty,
        stop,
        seed: job.seed,
    };
    let mut stream = Stream::default();
    crate::decode::causal::generate(&ck.model, &ids, &o, &Device::Cpu, |id| {
        if let Some(fresh) = stream.push(&ck.tokenizer, id)? {
            on_text(&fresh);
        }
        Ok(false)
    })?;
    if let Some(tail) = stream.finish(&ck.tokenizer)? {
        on_text(&tail);
    }
    let text = ck.tokenizer.decode(&stream.ids)?;
    Ok(vec![Output { input: prompt, ids: stream.ids, text }])
}

/// Generated ids decoded as they come, handed on in whole characters: a
/// byte-level token may end inside a character, so text waits until the
/// character completes. An incomplete tail at the end is handed on as
/// U+FFFD, as `tokenizers` decodes it.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    pub(crate) ids: Vec<u32>,
    /// Bytes of the decoded text already handed on.
    shown: usize,
}

impl Stream {
    /// Adds `id`; returns the text it completes, if any.
    pub(crate) fn push(&mut self, tok: &crate::data::Tokenizer, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let text = tok.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}') {
            return Ok(None); // maybe a character still in the making
        }
        Ok(self.fresh(text))
    }

    /// What is left at the end, an unfinished character included.
    pub(crate) fn finish(&mut self, tok: &crate::data::Tokenizer) -> Result<Option<String>> {
        let text = tok.decode(&self.ids)?;
        Ok(self.fresh(text))
    }

    fn fresh(&mut self, text: String) -> Option<String> {
        let fresh = text.get(self.shown..).filter(|f| !f.is_empty())?.to_string();
        self.shown = text.len();
        Some(fresh)
    }
}

/// An encoder–decoder decodes each input: greedily, by sampling or by beam search.
fn decode_inputs(ck: &Loaded, model: EncDec, job: &GenerateJob, on_text: &mut dyn FnMut(&str)) -> Result<Vec<Output>> {
    let dev = Device::Cpu;
    let temperature = job.temperature.unwrap_or(0.0);
    if !(temperature >= 0.0 && temperature.is_finite()) {
        return Err(Error::setting(format!("--temperature must be >= 0, got {temperature}")));
    }
    let sampling = temperature > 0.0 || job.top_k > 0 || job.top_p < 1.0 || job.repetition_penalty != 1.0;
    let strategy = if job.beam > 1 {
        Strategy::Beam { width: job.beam, length_penalty: job.length_penalty }
    } else if sampling {
        Strategy::Sample(SampleOptions {
            max_new_tokens: 0,
            temperature,
            top_k: job.top_k,
            top_p: job.top_p,
            repetition_penalty: job.repetition_penalty,
            stop: Vec::new(),
            seed: job.seed,
        })
    } else {
        Strategy::Greedy
    };
    let opts = DecodeOptions { strategy, max_len: job.max_len.unwrap_or(2 * ck.config.max_target_len + 2) };
    let mut outputs = Vec::new();
    for input in &job.prompts {
        let ids = ck.tokenizer.source().encode(input)?;
        if ids.contains(&crate::data::tokenizer::UNK) {
            tracing::warn!(input = %input, "input holds symbols the tokenizer does not know");
        }
        let out = decode_batch(model, &[ids.as_slice()], &opts, &dev)?.swap_remove(0);
        let text = ck.tokenizer.decode(&out)?;
        on_text(&text);
        outputs.push(Output { input: input.clone(), ids: out, text });
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Tokenizer;

    #[test]
    fn streaming_waits_for_whole_characters_and_ends_with_an_unfinished_one_as_fffd() {
        let tok = Tokenizer::Byte;
        let id = |b: u8| tok.encode(&String::from_utf8_lossy(&[b])).unwrap()[0];
        let byte = |b: u8| b as u32 + 4; // byte ids follow the 4 specials
        assert_eq!(id(b'a'), byte(b'a'));
        let mut s = Stream::default();
        assert_eq!(s.push(&tok, byte(b'a')).unwrap().as_deref(), Some("a"));
        assert_eq!(s.push(&tok, byte(0xC3)).unwrap(), None); // "é" is C3 A9
        assert_eq!(s.push(&tok, byte(0xA9)).unwrap().as_deref(), Some("é"));
        assert_eq!(s.push(&tok, byte(0xE2)).unwrap(), None); // a 3-byte character cut short
        assert_eq!(s.finish(&tok).unwrap().as_deref(), Some("\u{FFFD}"));
        assert_eq!(tok.decode(&s.ids).unwrap(), "aé\u{FFFD}");
    }
}

/// An image classifier's answer for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImagePrediction {
    /// The image file.
    pub image: PathBuf,
    /// The most likely class's index.
    pub label: u32,
    /// Its name.
    pub class: String,
    /// The three most likely classes with their probabilities, best first.
    pub top: Vec<(String, f32)>,
}

/// Classifies image files with an image-classifier checkpoint. Each must be
/// a PNG, JPEG or BMP of the size the model reads (it is converted to grey
/// scale, not resized).
pub fn classify(ck: &Loaded, images: &[PathBuf]) -> Result<Vec<ImagePrediction>> {
    let Some(model) = ck.model.image() else {
        return Err(Error::setting("--image needs an image-classifier checkpoint"));
    };
    let m = model.config();
    let classes = &m.classes;
    images
        .iter()
        .map(|path| {
            let (w, h, px) = crate::data::images::folder::decode(path)?;
            if (w, h) != (m.width, m.height) {
                return Err(Error::bad_file(
                    path,
                    format!("is {w}×{h}; the model reads {}×{} images (resize it first)", m.width, m.height),
                ));
            }
            let pixels: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
            let x = candle_core::Tensor::from_vec(pixels, (1, 1, h, w), &Device::Cpu)?;
            let probs = candle_nn::ops::softmax_last_dim(&model.forward(&x, None)?)?.squeeze(0)?.to_vec1::<f32>()?;
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
            Ok(ImagePrediction {
                image: path.clone(),
                label: order[0] as u32,
                class: name(order[0]),
                top: order.iter().take(3).map(|&i| (name(i), probs[i])).collect(),
            })
        })
        .collect()
}

/// What a digit-strip reader read on one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StripReading {
    /// The image file.
    pub image: PathBuf,
    /// The string read (greedy decoding).
    pub text: String,
}

/// Reads strip images with a digit-strings checkpoint. Each must be a PNG,
/// JPEG or BMP as high as the strips it was trained on (any width: the
/// encoder reads one column per step); white ink on black, as in training.
pub fn read_strips(ck: &Loaded, images: &[PathBuf]) -> Result<Vec<StripReading>> {
    let (Some(ed), crate::model::ModelConfig::Seq2seq(m)) = (ck.model.encoder_decoder(), &ck.config.model) else {
        return Err(Error::setting("--image needs an image-classifier or digit-strings checkpoint"));
    };
    let features = m.input().features();

    images
        .iter()
        .map(|path| {
            let (w, h, px) = crate::data::images::folder::decode(path)?;
            if h != features {
                return Err(Error::bad_file(
                    path,
                    format!("is {w}×{h}; the model reads strips {features} pixels high (resize it first)"),
                ));
            }
            let pixels: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
            let x = candle_core::Tensor::from_vec(pixels, (1, h, w), &Device::Cpu)?;
            let frames = crate::data::shift::strip_columns(&x)?; // (1, W, H)
                                                                 // A strip wider than the training ones may hold more digits: a digit
                                                                 // spans several columns, so W / 2 symbols bound what it can read.
            let max_len = (ck.config.max_target_len + 2).max(w / 2);
            let opts = crate::decode::DecodeOptions { strategy: crate::decode::Strategy::Greedy, max_len };
            let ids = crate::decode::decode_frames(ed, &frames, &opts, &Device::Cpu)?.swap_remove(0);
            Ok(StripReading { image: path.clone(), text: ck.tokenizer.decode(&ids)? })
        })
        .collect()
}

/// What a speech checkpoint recognised in one clip.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioReading {
    /// The WAV file.
    pub audio: PathBuf,
    /// The keyword, or the transcript read (greedy decoding).
    pub text: String,
    /// Keywords: the three most likely with their probabilities, best first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<(String, f32)>,
}

/// Recognises WAV files with a speech checkpoint: each is read as 16 kHz
/// mono, trimmed, and centred on the canvas the model was trained on (a
/// keyword clip longer than it is cut about its centre; a transcript's
/// canvas grows to hold the clip, as the encoder reads any length).
pub fn recognise_audio(ck: &Loaded, clips: &[PathBuf]) -> Result<Vec<AudioReading>> {
    use crate::data::audio::speech::{place, trim, Features};
    let crate::config::DataConfig::Speech(cfg) = &ck.config.data else {
        return Err(Error::setting("--audio needs a speech checkpoint (--task spoken-digits or spoken-strings)"));
    };
    let features = Features::new(&cfg.features)?;
    let rate = crate::data::audio::SAMPLE_RATE as usize;
    let canvas = cfg.canvas_ms.map_or(rate, |ms| ms as usize * rate / 1000);
    let (hop, n_mels) = (cfg.features.hop_length, cfg.features.n_mels);
    clips
        .iter()
        .map(|path| {
            let x = trim(&crate::data::audio::wav::read(path)?);
            if x.len() > 60 * rate {
                return Err(Error::bad_file(
                    path,
                    format!("holds {} s of sound; clips of at most 60 s are recognised (cut it first)", x.len() / rate),
                ));
            }
            if let Some(model) = ck.model.image() {
                if x.len() > canvas {
                    tracing::warn!(
                        "{}: {} ms of sound on a {} ms canvas: cut about its centre",
                        path.display(),
                        x.len() * 1000 / rate,
                        canvas * 1000 / rate
                    );
                }
                let f = features.extract(&place(&x, canvas, 0, crate::data::shift::Fill::Zero));
                let w = f.len() / n_mels;
                let t = candle_core::Tensor::from_vec(f, (1, 1, n_mels, w), &Device::Cpu)?;
                let probs =
                    candle_nn::ops::softmax_last_dim(&model.forward(&t, None)?)?.squeeze(0)?.to_vec1::<f32>()?;
                let mut order: Vec<usize> = (0..probs.len()).collect();
                order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
                let classes = &model.config().classes;
                let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
                return Ok(AudioReading {
                    audio: path.clone(),
                    text: name(order[0]),
                    top: order.iter().take(3).map(|&i| (name(i), probs[i])).collect(),
                });
            }
            let Some(ed) = ck.model.encoder_decoder() else {
                return Err(Error::setting("--audio needs a keyword classifier or a speech encoder–decoder"));
            };
            let pad = cfg.pad_ms as usize * rate / 1000;
            let n = canvas.max((x.len() + 2 * pad).div_ceil(hop) * hop);
            let f = features.extract(&place(&x, n, 0, crate::data::shift::Fill::Zero));
            let w = f.len() / n_mels;
            let frames =
                crate::data::shift::strip_columns(&candle_core::Tensor::from_vec(f, (1, n_mels, w), &Device::Cpu)?)?;
            // A longer clip may say more: a digit lasts at least ~100 ms (10 frames).
            let max_len = (ck.config.max_target_len + 2).max(w / 10);
            let opts = crate::decode::DecodeOptions { strategy: crate::decode::Strategy::Greedy, max_len };
            let ids = crate::decode::decode_frames(ed, &frames, &opts, &Device::Cpu)?.swap_remove(0);
            Ok(AudioReading { audio: path.clone(), text: ck.tokenizer.decode(&ids)?, top: Vec::new() })
        })
        .collect()
}
