//! Command-line interface: argument definitions and dispatch.

mod data_preview;
mod eval;
mod generate;
mod plot;
mod progress;
mod report;
mod train;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

const ABOUT: &str = "Train, evaluate and run sequence models that learn from shifted targets.

A decoder reads the target shifted right by one (a start token first) and is
scored against the unshifted target; padding never counts.

Start here:
  shiftlm train                       train the default model on a built-in task (~2 min)
  shiftlm data preview --task rotate  see exactly what the decoder reads and predicts
  shiftlm eval --checkpoint runs/small-rotate
  shiftlm plot runs/small-rotate
  shiftlm generate --checkpoint runs/small-rotate --input \"3 1 4 1 5\"";

#[derive(Parser, Debug)]
#[command(name = "shiftlm", version, about = "Train, evaluate and run sequence models that learn from shifted targets", long_about = ABOUT)]
pub struct Cli {
    /// Worker threads for tensor ops (default: all cores; also RAYON_NUM_THREADS).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an encoder–decoder on a built-in task or your own pairs, then evaluate it.
    #[command(long_about = train::LONG_ABOUT)]
    Train(Box<train::TrainArgs>),
    /// Evaluate a checkpoint: loss, perplexity, token accuracy, macro F1 and free-running exact match.
    #[command(long_about = eval::LONG_ABOUT)]
    Eval(eval::EvalArgs),
    /// Decode new inputs with a checkpoint (greedy, sampling or beam search).
    #[command(long_about = generate::LONG_ABOUT)]
    Generate(generate::GenerateArgs),
    /// Draw a run's training and validation loss curves (SVG).
    #[command(long_about = plot::LONG_ABOUT)]
    Plot(plot::PlotArgs),
    /// Inspect data the way the model sees it.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Print a few batches: source, decoder input and labels, column by column.
    #[command(long_about = data_preview::LONG_ABOUT)]
    Preview(data_preview::PreviewArgs),
}

/// Where the data comes from, shared by `train` and `data preview`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Built-in task: rotate, copy, reverse or sort (default: the preset's, rotate).
    #[arg(long, value_name = "NAME", conflicts_with = "data")]
    pub task: Option<String>,
    /// Your pairs: TSV (source<TAB>target) or JSONL ({"source": …, "target": …}).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Preset to start from: small (default), seed (the Keras reference) or tiny.
    #[arg(long, default_value = "small", value_name = "NAME")]
    pub preset: String,
    /// Tokenizer for --data: char (built from the data) or byte.
    #[arg(long, value_name = "KIND", value_parser = ["char", "byte"])]
    pub tokenizer: Option<String>,
    /// Symbols in a built-in task (e.g. 1000 for the seed preset).
    #[arg(long, value_name = "N")]
    pub vocab: Option<usize>,
    /// Shortest built-in sequence.
    #[arg(long, value_name = "N")]
    pub min_len: Option<usize>,
    /// Longest built-in sequence.
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// Random seed for data, initialisation, order and dropout.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
}

impl DataArgs {
    /// The preset with these data choices applied.
    pub fn resolve(&self) -> anyhow::Result<shiftlm::config::RunConfig> {
        use shiftlm::config::{DataConfig, RunConfig, TokenizerKind};
        use shiftlm::data::tasks::TaskKind;
        let mut cfg = RunConfig::preset(&self.preset)?;
        if let Some(s) = self.seed {
            cfg.train.seed = s;
        }
        if let Some(path) = &self.data {
            let tokenizer = match self.tokenizer.as_deref() {
                Some("byte") => TokenizerKind::Byte,
                _ => TokenizerKind::Char,
            };
            cfg.data = DataConfig::File { path: path.clone(), tokenizer, valid_fraction: 0.1 };
        } else if let DataConfig::Task(spec) = &mut cfg.data {
            if let Some(t) = &self.task {
                spec.kind = TaskKind::parse(t)?;
            }
            if let Some(v) = self.vocab {
                spec.vocab = v;
            }
            if let Some(n) = self.min_len {
                spec.min_len = n;
                spec.max_len = spec.max_len.max(n);
            }
            if let Some(n) = self.max_len {
                spec.max_len = n;
                if self.min_len.is_none() {
                    spec.min_len = spec.min_len.min(n);
                }
            }
        }
        Ok(cfg)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Data(DataCommand::Preview(a)) => data_preview::run(a),
    }
}
