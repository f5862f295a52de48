//! `shiftlm generate`

use anyhow::Context;
use shiftlm::decode::causal::{generate, SampleOptions};
use shiftlm::decode::{decode_batch, DecodeOptions, Strategy};
use std::io::{BufRead, Write};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Generate with a trained checkpoint.

A language model (GPT, Llama) continues --prompt and streams the text to
standard output as it comes. An encoder–decoder decodes each input (--input,
repeatable, or one per line on standard input) and prints one line per input.

--temperature 0 means greedy. Built-in tasks write symbols as
space-separated integers.

Examples:
  shiftlm generate --checkpoint runs/gpt-baby-input --prompt \"ROMEO:\" --max-new-tokens 300
  shiftlm generate --checkpoint runs/gpt-baby-input --prompt \"To be\" --top-k 20 --top-p 0.9 --seed 7
  shiftlm generate --checkpoint runs/small-rotate --input \"3 1 4 1 5 9\"
  shiftlm generate --checkpoint runs/small-rotate --input \"1 2 3\" --beam 4
  echo \"hello\" | shiftlm generate --checkpoint runs/mine --temperature 0.8 --seed 7";

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Run folder (newest complete checkpoint), a checkpoint-<step> folder, or a
    /// Hugging Face GPT-2/Llama folder with tokenizer.json.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Text to continue (language models), or an input to decode (encoder–decoders; repeatable).
    #[arg(long, alias = "input", value_name = "TEXT")]
    pub prompt: Vec<String>,
    /// Most new tokens (language models; default 200).
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 means greedy (default: 0.8 for language models, 0 for encoder–decoders).
    #[arg(long, value_name = "T")]
    pub temperature: Option<f32>,
    /// Sample only from the K most likely tokens (0: all).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub top_k: usize,
    /// Sample only from the most likely tokens that together reach probability P.
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub top_p: f32,
    /// Penalise tokens already in the context (> 1; 1 is off).
    #[arg(long, default_value_t = 1.0, value_name = "R")]
    pub repetition_penalty: f32,
    /// Stop when this text is generated as one token (repeatable; the end-of-text token always stops).
    #[arg(long, value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Beam width (encoder–decoders; 1: no beam search).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub beam: usize,
    /// Beam length penalty α.
    #[arg(long, default_value_t = 0.6, value_name = "A")]
    pub length_penalty: f32,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Most tokens to emit for an encoder–decoder (default: twice the longest training target).
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
}

pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let dev = candle_core::Device::Cpu;
    let ck = shiftlm::checkpoint::load(&a.checkpoint, &dev)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    if ck.config.model.is_forecaster() {
        anyhow::bail!(
            "{} is a forecaster: it forecasts numbers, not text (use `shiftlm forecast --checkpoint {}`)",
            ck.dir.display(),
            a.checkpoint.display()
        );
    }
    if ck.config.model.is_causal() {
        let eos = ck.config.model_eos();
        let mut stop = vec![eos];
        for s in &a.stop {
            match ck.tokenizer.encode(s).as_slice() {
                [id] => stop.push(*id),
                _ => anyhow::bail!("--stop {s:?} is not a single token of this tokenizer"),
            }
        }
        let prompt = a.prompt.join("\n");
        let mut ids = ck.tokenizer.encode(&prompt);
        if ids.is_empty() {
            ids.push(eos); // no prompt: start from end-of-text, as after a document
        }
        let o = SampleOptions {
            max_new_tokens: a.max_new_tokens,
            temperature: a.temperature.unwrap_or(0.8),
            top_k: a.top_k,
            top_p: a.top_p,
            repetition_penalty: a.repetition_penalty,
            stop,
            seed: a.seed,
        };
        let mut out = std::io::stdout().lock();
        write!(out, "{prompt}")?;
        let (mut new, mut shown) = (Vec::new(), 0usize);
        generate(&ck.model, &ids, &o, &dev, |id| {
            new.push(id);
            // Print what decodes completely (a byte-level character may span tokens).
            let text = ck.tokenizer.decode(&new);
            if !text.ends_with('\u{FFFD}') {
                if let Some(fresh) = text.get(shown..).filter(|f| !f.is_empty()) {
                    let _ = write!(out, "{fresh}");
                    let _ = out.flush();
                    shown = text.len();
                }
            }
            Ok(())
        })?;
        writeln!(out)?;
        return Ok(());
    }
    let model = ck.model.encoder_decoder().expect("not causal, so an encoder–decoder");
    let inputs: Vec<String> = if a.prompt.is_empty() {
        std::io::stdin().lock().lines().collect::<Result<_, _>>().context("reading standard input")?
    } else {
        a.prompt.clone()
    };
    let temperature = a.temperature.unwrap_or(0.0);
    if !(temperature >= 0.0 && temperature.is_finite()) {
        anyhow::bail!("--temperature must be >= 0, got {temperature}");
    }
    let sampling = temperature > 0.0 || a.top_k > 0 || a.top_p < 1.0 || a.repetition_penalty != 1.0;
    let strategy = if a.beam > 1 {
        Strategy::Beam { width: a.beam, length_penalty: a.length_penalty }
    } else if sampling {
        Strategy::Sample(SampleOptions {
            max_new_tokens: 0,
            temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            repetition_penalty: a.repetition_penalty,
            stop: Vec::new(),
            seed: a.seed,
        })
    } else {
        Strategy::Greedy
    };
    let opts = DecodeOptions { strategy, max_len: a.max_len.unwrap_or(2 * ck.config.max_target_len + 2) };
    for text in &inputs {
        let ids = ck.tokenizer.encode(text);
        if ids.contains(&shiftlm::data::tokenizer::UNK) {
            tracing::warn!(input = %text, "input holds symbols the tokenizer does not know");
        }
        let out = decode_batch(model, &[ids.as_slice()], &opts, &dev)?;
        println!("{}", ck.tokenizer.decode(&out[0]));
    }
    Ok(())
}
