//! `shiftlm generate`

use anyhow::Context;
use shiftlm::decode::{decode_batch, DecodeOptions, Strategy};
use std::io::BufRead;
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Decode new inputs with a trained checkpoint.

Inputs come from --input (repeatable) or, without it, one per line on standard
input. Each output is printed on its own line, in order.

Built-in tasks write symbols as space-separated integers.

Examples:
  shiftlm generate --checkpoint runs/small-rotate --input \"3 1 4 1 5 9\"
  shiftlm generate --checkpoint runs/small-rotate --input \"1 2 3\" --beam 4
  echo \"hello\" | shiftlm generate --checkpoint runs/mine --temperature 0.8 --seed 7";

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Run folder written by `shiftlm train`.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// An input to decode (repeat for several); default: lines of standard input.
    #[arg(long, alias = "prompt", value_name = "TEXT")]
    pub input: Vec<String>,
    /// Beam width (1: no beam search).
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub beam: usize,
    /// Beam length penalty α.
    #[arg(long, default_value_t = 0.6, value_name = "A")]
    pub length_penalty: f32,
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.0, value_name = "T")]
    pub temperature: f32,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Most tokens to emit (default: twice the longest training target).
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
}

pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    let dev = candle_core::Device::Cpu;
    let ck = shiftlm::checkpoint::load(&a.checkpoint, &dev)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    let inputs: Vec<String> = if a.input.is_empty() {
        std::io::stdin().lock().lines().collect::<Result<_, _>>().context("reading standard input")?
    } else {
        a.input.clone()
    };
    if !(a.temperature >= 0.0 && a.temperature.is_finite()) {
        anyhow::bail!("--temperature must be >= 0, got {}", a.temperature);
    }
    let strategy = if a.beam > 1 {
        Strategy::Beam { width: a.beam, length_penalty: a.length_penalty }
    } else if a.temperature > 0.0 {
        Strategy::Sample { temperature: a.temperature, seed: a.seed }
    } else {
        Strategy::Greedy
    };
    let opts = DecodeOptions { strategy, max_len: a.max_len.unwrap_or(2 * ck.config.max_target_len + 2) };
    for text in &inputs {
        let ids = ck.tokenizer.encode(text);
        if ids.contains(&shiftlm::data::tokenizer::UNK) {
            tracing::warn!(input = %text, "input holds symbols the tokenizer does not know");
        }
        let out = decode_batch(&ck.model, &[ids.as_slice()], &opts, &dev)?;
        println!("{}", ck.tokenizer.decode(&out[0]));
    }
    Ok(())
}
