//! Command-line interface: argument definitions and dispatch.

mod average;
mod bench;
mod chat;
mod data_preview;
mod data_speech;
mod distributed;
mod eval;
mod finetune;
mod forecast;
mod generate;
mod merge;
mod plot;
mod profiling;
pub mod progress;
mod report;
mod score;
mod train;

use clap::{Parser, Subcommand};
use shiftlm::config::{DataConfig, RunConfig, TokenizerKind};
use shiftlm::data::images::ImageSource;
use shiftlm::data::tasks::TaskKind;
use std::path::PathBuf;

const ABOUT: &str = "Train, evaluate and run sequence models that learn from shifted targets.

A decoder reads the target shifted right by one (a start token first) and is
scored against the unshifted target; padding never counts.

Start here:
  shiftlm train                            train the default encoder–decoder on a built-in task (~13 s)
  shiftlm train --model gpt --data my.txt  train a GPT on your text
  shiftlm train --data sales.csv --target units   forecast a numeric series (see `train --help`)
  shiftlm forecast --checkpoint runs/series-sales --data sales.csv
  shiftlm finetune --from DIR --data my.txt  fine-tune a checkpoint or a transformers folder
  shiftlm data preview --task rotate       see exactly what the decoder reads and predicts
  shiftlm eval --checkpoint runs/small-rotate
  shiftlm generate --checkpoint runs/small-rotate --input \"3 1 4 1 5\"
  shiftlm plot runs/small-rotate";

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
    /// Train a model (encoder–decoder on pairs or tasks, GPT on text), then evaluate it.
    #[command(long_about = train::LONG_ABOUT)]
    Train(Box<train::TrainArgs>),
    /// Fine-tune a shiftlm checkpoint or a transformers GPT-2/Llama folder on your data.
    #[command(long_about = finetune::LONG_ABOUT)]
    Finetune(Box<finetune::FinetuneArgs>),
    /// Fold LoRA adapters into the base weights: a plain model folder.
    #[command(long_about = merge::LONG_ABOUT)]
    Merge(merge::MergeArgs),
    /// Average the weights of a run's last N checkpoints into one checkpoint.
    #[command(long_about = average::LONG_ABOUT)]
    Average(average::AverageArgs),
    /// Evaluate a checkpoint: loss, perplexity, token accuracy, macro F1, exact match.
    #[command(long_about = eval::LONG_ABOUT)]
    Eval(eval::EvalArgs),
    /// Forecast the next values of a series with a forecaster: a CSV and a PNG.
    #[command(long_about = forecast::LONG_ABOUT)]
    Forecast(forecast::ForecastArgs),
    /// Generate with a checkpoint: continue a prompt, or decode an input sequence.
    #[command(long_about = generate::LONG_ABOUT)]
    Generate(generate::GenerateArgs),
    /// Chat with a language model trained on conversations: streamed answers, history kept.
    #[command(long_about = chat::LONG_ABOUT)]
    Chat(chat::ChatArgs),
    /// Draw a run's training and validation loss curves (SVG).
    #[command(long_about = plot::LONG_ABOUT)]
    Plot(plot::PlotArgs),
    /// Inspect data the way the model sees it.
    #[command(subcommand)]
    Data(DataCommand),
    /// Score translations: corpus BLEU and chrF2 of text files, as sacreBLEU computes them.
    #[command(long_about = score::LONG_ABOUT)]
    Score(score::ScoreArgs),
    /// Time training steps of named configurations (ms/step, tokens/s, GFLOP/s).
    #[command(long_about = bench::LONG_ABOUT)]
    Bench(bench::BenchArgs),
}

#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Print a few batches: inputs and labels, column by column.
    #[command(long_about = data_preview::LONG_ABOUT)]
    Preview(Box<data_preview::PreviewArgs>),
    /// Synthesise the built-in spoken-digit corpus (espeak-ng and flite): WAVs and transcripts.
    #[command(long_about = data_speech::LONG_ABOUT)]
    Speech(data_speech::SpeechArgs),
}

/// Where the data comes from, shared by `train` and `data preview`.
#[derive(clap::Args, Debug, Clone)]
pub struct DataArgs {
    /// Model family: seq2seq (RNN encoder–decoder, the default), transformer (Transformer
    /// encoder–decoder), gpt (GPT-2 layout) or llama. For forecasting: seq2seq (an LSTM/GRU
    /// encoder with a decoder rolled out over the horizon), transformer (encoder + direct head),
    /// nlinear (one linear map of the window), dlinear (linear maps of its trend and remainder),
    /// nbeats (N-BEATS' generic stack of ReLU blocks with backcasts; --layers per block,
    /// --hidden wide, model.blocks of them), or auto (train each, and keep the lowest validation MASE among them, the classical
    /// baselines and the mean of the three best).
    /// Images and keywords: cnn, row-lstm, row-gru, mlp, conv-lstm or conv-gru.
    #[arg(long, value_name = "FAMILY", value_parser = ["seq2seq", "transformer", "gpt", "gpt2", "llama", "cnn", "row-lstm", "row-gru", "mlp", "conv-lstm", "conv-gru", "nlinear", "dlinear", "nbeats", "auto"])]
    pub model: Option<String>,
    /// Built-in task: rotate, copy, reverse or sort (default: the preset's, rotate);
    /// series: a synthetic hourly series with trend, daily and weekly seasons, to forecast;
    /// digits (embedded 8×8 handwritten digits) or fashion-mnist (Debian's
    /// dataset-fashion-mnist package): images to recognise; digit-strings: strips of
    /// 1–5 digits to read out (the embedded digits, or an IDX/class folder given to --data);
    /// spoken-digits (keywords) or spoken-strings (1–7 digits to transcribe): speech from
    /// the built-in espeak-ng corpus (made on first use), or your clips given to --data.
    #[arg(long, value_name = "NAME")]
    pub task: Option<String>,
    /// Your data: pairs as TSV (source<TAB>target) or JSONL ({"source": …, "target": …});
    /// with --model gpt/llama, plain UTF-8 text (repeat for several documents), or one JSONL
    /// file of conversations ({"messages": [{"role": …, "content": …}, …]}; see --chat-template).
    #[arg(long, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// Parallel files: the source side, one sentence per line; --target FILE gives the
    /// target side (the same number of lines, e.g. Multi30k's train.en and train.de).
    #[arg(long, value_name = "FILE", help_heading = "Translation")]
    pub source: Option<PathBuf>,
    /// Validation pairs from this TSV/JSONL file, instead of holding out a hashed 10% of
    /// the training pairs.
    #[arg(long, value_name = "FILE", conflicts_with = "valid_source", help_heading = "Translation")]
    pub valid: Option<PathBuf>,
    /// Validation pairs from parallel files: the source side (with --valid-target).
    #[arg(long, value_name = "FILE", requires = "valid_target", help_heading = "Translation")]
    pub valid_source: Option<PathBuf>,
    /// Validation pairs from parallel files: the target side (with --valid-source).
    #[arg(long, value_name = "FILE", requires = "valid_source", help_heading = "Translation")]
    pub valid_target: Option<PathBuf>,
    /// Preset to start from: small (default), seed (the Keras reference), tiny, transformer,
    /// transformer-tiny, transformer-mt (translation: 3+3 layers of 256, label smoothing,
    /// inverse-sqrt warmup), lstm-mt (its recurrent baseline: 2 LSTM layers of 512 with
    /// attention, trained the same way), or gpt-baby, gpt-small, gpt-tiny, llama-baby, llama-tiny
    /// (default for text: sized to the data).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Tokenizer: char (built from the data), byte, bpe (byte-level BPE trained on the data)
    /// or unigram (a unigram language model, SentencePiece's default, trained on the data).
    /// For pairs, one vocabulary is trained on both sides (see --shared-vocab).
    #[arg(long, value_name = "KIND", value_parser = ["char", "byte", "bpe", "unigram"])]
    pub tokenizer: Option<String>,
    /// Vocabulary size for --tokenizer bpe or unigram (default 2000 for pairs).
    #[arg(long, value_name = "N")]
    pub bpe_vocab: Option<usize>,
    /// Pairs: one vocabulary trained on both sides (true, the default; a Transformer ties
    /// its source, target and output embeddings), or one per side (false: each of
    /// --bpe-vocab ids, and the encoder gets an embedding of its own).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Translation")]
    pub shared_vocab: Option<bool>,
    /// Use this tokenizer.json instead of building one (text only).
    #[arg(long, value_name = "FILE")]
    pub tokenizer_file: Option<PathBuf>,
    /// Conversations (a JSONL --data file of {"messages": [{"role": …, "content": …}, …]},
    /// with --model gpt/llama): the chat template that writes them out, chatml (the
    /// default: <|im_start|>role⏎content<|im_end|>, its two tokens added to the tokenizer)
    /// or a FILE holding a Jinja2 template as Hugging Face's tokenizer_config.json has them.
    /// Only the assistant turns are trained; checkpoints keep the template.
    #[arg(long, value_name = "chatml|FILE", help_heading = "Dialogue")]
    pub chat_template: Option<String>,
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
    /// Forecasting: the CSV column to forecast (repeat for several). A .csv --data file
    /// is forecasting data. With --source: the file of target sentences.
    #[arg(long, value_name = "COLUMN|FILE", help_heading = "Forecasting")]
    pub target: Vec<String>,
    /// Forecasting: an extra input column read over the past window (repeatable).
    #[arg(long, value_name = "COLUMN", help_heading = "Forecasting")]
    pub covariate: Vec<String>,
    /// Forecasting: a column carried to the output as is (e.g. a date).
    #[arg(long, value_name = "COLUMN", help_heading = "Forecasting")]
    pub timestamp: Option<String>,
    /// Forecasting, many series in one file (long format): the column naming each row's
    /// series, e.g. --id store. One global model learns every series; each is split
    /// chronologically and scaled on its own training rows, and eval reports each series
    /// and their mean (as in the M4 competition).
    #[arg(long, value_name = "COLUMN", help_heading = "Forecasting")]
    pub id: Option<String>,
    /// Forecasting: what a missing or non-numeric cell becomes: error (default; names the
    /// row and column), forward (the previous row's value) or zero.
    #[arg(long, value_name = "POLICY", value_parser = ["error", "forward", "zero"], help_heading = "Forecasting")]
    pub fill: Option<String>,
    /// Forecasting: scaling fitted on the training rows: zscore (default) or minmax.
    #[arg(long, value_name = "KIND", value_parser = ["zscore", "minmax"], help_heading = "Forecasting")]
    pub scaler: Option<String>,
    /// Forecasting: season length for seasonal naive and MASE (default: inferred).
    #[arg(long, value_name = "N", help_heading = "Forecasting")]
    pub season: Option<usize>,
    /// Forecasting: steps between training windows (default 1).
    #[arg(long, value_name = "N", help_heading = "Forecasting")]
    pub stride: Option<usize>,
}

impl DataArgs {
    /// The images these choices name, if any: `--task digits`, `--task
    /// fashion-mnist`, or a folder given to `--data`.
    pub fn image_source(&self) -> Option<ImageSource> {
        match (self.task.as_deref(), self.data.as_slice()) {
            (Some("digit-strings"), [d]) => Some(ImageSource::Dir(d.clone())),
            (Some("digit-strings"), []) => Some(ImageSource::Digits),
            (Some("digits"), _) => Some(ImageSource::Digits),
            (Some("fashion-mnist"), _) => Some(ImageSource::FashionMnist),
            (None, [d]) if d.is_dir() => Some(ImageSource::Dir(d.clone())),
            _ => None,
        }
    }

    /// Whether these choices describe forecasting: `--task series`, a CSV
    /// file, or a target column.
    pub fn is_series(&self) -> bool {
        self.source.is_none() && self.is_series_choice()
    }

    /// Whether the forecasting choices are given, parallel files aside.
    fn is_series_choice(&self) -> bool {
        self.task.as_deref() == Some("series")
            || !self.target.is_empty()
            || self.data.iter().any(|p| shiftlm::data::series::is_csv(p))
            || self.preset.as_deref().is_some_and(|p| p.starts_with("series"))
    }

    /// A forecasting config: the `series` preset with the data choices applied.
    fn resolve_series(&self) -> anyhow::Result<RunConfig> {
        use shiftlm::data::series::{FillPolicy, ScalerKind, SeriesSpec};
        let mut cfg = RunConfig::preset(self.preset.as_deref().unwrap_or("series"))?;
        let DataConfig::Series(d) = &mut cfg.data else {
            anyhow::bail!("preset {} is not a forecasting preset", cfg.preset)
        };
        match self.data.as_slice() {
            [] if self.target.is_empty() => {}
            [] => anyhow::bail!("--target names a column of a CSV file: give --data FILE.csv"),
            [path] => {
                if self.target.is_empty() {
                    anyhow::bail!(
                        "{}: a CSV file is forecasting data; name the column to forecast with --target COLUMN",
                        path.display()
                    );
                }
                d.csv = Some(SeriesSpec {
                    path: std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()),
                    targets: self.target.clone(),
                    covariates: self.covariate.clone(),
                    timestamp: self.timestamp.clone(),
                    fill: match self.fill.as_deref() {
                        Some("forward") => FillPolicy::Forward,
                        Some("zero") => FillPolicy::Zero,
                        _ => FillPolicy::Error,
                    },
                    id: self.id.clone(),
                });
            }
            _ => anyhow::bail!("forecasting takes one --data CSV file"),
        }
        if let Some(k) = &self.scaler {
            d.scaler = if k == "minmax" { ScalerKind::MinMax } else { ScalerKind::ZScore };
        }
        d.season = self.season.or(d.season);
        d.stride = self.stride.unwrap_or(d.stride);
        if let Some(s) = self.seed {
            cfg.train.seed = s;
        }
        if let shiftlm::model::ModelConfig::Forecaster(m) = &mut cfg.model {
            use shiftlm::model::ForecasterKind;
            m.kind = match self.model.as_deref() {
                None | Some("seq2seq" | "auto") => m.kind, // auto: `train` runs every kind
                Some("transformer") => ForecasterKind::Transformer,
                Some("nlinear") => ForecasterKind::NLinear,
                Some("dlinear") => ForecasterKind::DLinear,
                Some("nbeats") => ForecasterKind::NBeats,
                Some(other) => anyhow::bail!(
                    "forecasting uses --model seq2seq (an RNN encoder–decoder, the default), transformer, nlinear, dlinear, nbeats or auto, not {other}"
                ),
            };
        }
        Ok(cfg)
    }

    /// Whether these choices describe speech: a spoken task or preset, or
    /// a `--data` folder of clips (a `*.tsv` transcript or WAV subfolders).
    pub fn is_speech(&self) -> bool {
        matches!(self.task.as_deref(), Some("spoken-digits" | "spoken-strings"))
            || self.preset.as_deref().is_some_and(|p| p.starts_with("spoken-"))
            || (self.task.is_none()
                && matches!(self.data.as_slice(), [d] if d.is_dir() && shiftlm::data::audio::speech::looks_like_audio(d)))
    }

    /// A speech config: the `spoken-digits` or `spoken-strings` preset with
    /// the data and model choices applied.
    fn resolve_speech(&self) -> anyhow::Result<RunConfig> {
        use shiftlm::data::audio::speech::SpeechSource;
        use shiftlm::model::{ImageKind, ModelConfig};
        let strings = self.task.as_deref() == Some("spoken-strings")
            || self.preset.as_deref().is_some_and(|p| p.starts_with("spoken-strings"));
        let kind = match self.model.as_deref() {
            None => None,
            Some("seq2seq") if strings => None,
            Some(other) if strings => {
                anyhow::bail!("spoken strings are read by --model seq2seq (the default), not {other}")
            }
            Some("cnn") => Some(ImageKind::Cnn),
            Some("mlp") => Some(ImageKind::Mlp),
            Some("conv-lstm") => Some(ImageKind::ConvLstm),
            Some("conv-gru") => Some(ImageKind::ConvGru),
            Some("row-lstm") => Some(ImageKind::RowLstm),
            Some("row-gru") => Some(ImageKind::RowGru),
            Some(other) => {
                anyhow::bail!("keywords train --model conv-lstm (the default), conv-gru, cnn, mlp, row-lstm or row-gru, not {other}")
            }
        };
        let preset = self.preset.as_deref().unwrap_or(if strings { "spoken-strings" } else { "spoken-digits" });
        let mut cfg = RunConfig::preset(preset)?;
        let DataConfig::Speech(d) = &mut cfg.data else {
            anyhow::bail!("preset {preset} is not a speech preset (spoken-digits, spoken-strings)")
        };
        if strings != d.strings {
            anyhow::bail!(if strings {
                "--task spoken-strings starts from preset spoken-strings or spoken-strings-tiny"
            } else {
                "preset spoken-strings transcribes: use --task spoken-strings (or no --task)"
            });
        }
        match self.data.as_slice() {
            [] => {}
            [dir] if dir.is_dir() => d.source = SpeechSource::Dir(dir.clone()),
            [p] => anyhow::bail!(
                "{}: speech comes from a folder (a train.tsv of path<TAB>text, or one subfolder of WAVs per label)",
                p.display()
            ),
            _ => anyhow::bail!("speech comes from one --data folder"),
        }
        if let (Some(kind), ModelConfig::Image(m)) = (kind, &mut cfg.model) {
            if m.kind != kind {
                *m = shiftlm::model::ImageConfig::new(kind, m.width, m.height, m.n_classes);
            }
        }
        if self.tokenizer.is_some() || self.bpe_vocab.is_some() || self.tokenizer_file.is_some() || self.vocab.is_some()
        {
            anyhow::bail!("speech is written in the transcripts' characters: drop --tokenizer, --bpe-vocab, --tokenizer-file and --vocab");
        }
        if self.task_or_series_flags() {
            anyhow::bail!("--min-len, --max-len and the forecasting options do not apply to speech");
        }
        if let Some(s) = self.seed {
            cfg.train.seed = s;
        }
        Ok(cfg)
    }

    /// Whether a built-in task's length or a forecasting option was given
    /// (images and speech take none of them).
    fn task_or_series_flags(&self) -> bool {
        self.min_len.is_some()
            || self.max_len.is_some()
            || !self.target.is_empty()
            || !self.covariate.is_empty()
            || self.timestamp.is_some()
            || self.id.is_some()
            || self.fill.is_some()
            || self.scaler.is_some()
            || self.season.is_some()
            || self.stride.is_some()
    }

    /// Whether these choices describe digit strings: the task or its preset.
    pub fn is_strings(&self) -> bool {
        self.task.as_deref() == Some("digit-strings")
            || self.preset.as_deref().is_some_and(|p| p.starts_with("digit-strings"))
    }

    /// `--task` and `--data` are alternatives, except that `--data DIR` gives
    /// `--task digit-strings` its digits.
    pub fn check_task_data(&self) -> anyhow::Result<()> {
        match (self.task.as_deref(), self.data.as_slice()) {
            (Some("digit-strings" | "spoken-digits" | "spoken-strings"), [] | [_]) | (None, _) | (Some(_), []) => {
                Ok(())
            }
            (Some("digit-strings"), _) => anyhow::bail!("--task digit-strings reads its digits from one --data folder"),
            (Some(t), _) => anyhow::bail!("--task {t} and --data are alternatives: give one"),
        }
    }

    /// Whether these choices describe image recognition: an image task or
    /// folder, an image model, an image preset, or digit strings.
    pub fn is_images(&self) -> bool {
        self.is_strings()
            || self.image_source().is_some()
            || matches!(self.model.as_deref(), Some("cnn" | "row-lstm" | "row-gru"))
            || matches!(self.preset.as_deref(), Some("cnn" | "row-lstm" | "cnn-tiny"))
    }

    /// An image-recognition config: the `cnn` or `row-lstm` preset with the
    /// data and model choices applied.
    fn resolve_images(&self) -> anyhow::Result<RunConfig> {
        use shiftlm::model::{ImageKind, ModelConfig};
        let strings = self.is_strings();
        let kind = match self.model.as_deref() {
            None => None,
            Some("seq2seq") if strings => None,
            Some(other) if strings => {
                anyhow::bail!("digit strings are read by --model seq2seq (the default), not {other}")
            }
            Some("cnn") => Some(ImageKind::Cnn),
            Some("row-lstm") => Some(ImageKind::RowLstm),
            Some("row-gru") => Some(ImageKind::RowGru),
            Some(other) => anyhow::bail!("images train --model cnn, row-lstm or row-gru, not {other}"),
        };
        let preset = self.preset.as_deref().unwrap_or(match kind {
            _ if strings => "digit-strings",
            Some(ImageKind::RowLstm | ImageKind::RowGru) => "row-lstm",
            _ => "cnn",
        });
        let mut cfg = RunConfig::preset(preset)?;
        let DataConfig::Images(d) = &mut cfg.data else {
            anyhow::bail!("preset {preset} is not an image preset (cnn, row-lstm, cnn-tiny, digit-strings)")
        };
        if strings != d.strings.is_some() {
            anyhow::bail!(if strings {
                "--task digit-strings starts from preset digit-strings or digit-strings-tiny"
            } else {
                "preset digit-strings reads digit strips: use --task digit-strings (or no --task)"
            });
        }
        match (self.image_source(), self.data.as_slice(), self.task.as_deref()) {
            (Some(s), _, _) => d.source = s,
            (None, [p], _) => {
                anyhow::bail!("{}: images come from a folder (IDX files or one subfolder per class)", p.display())
            }
            (None, [], Some(t)) => {
                anyhow::bail!("--task {t} is not an image task: use digits, fashion-mnist or digit-strings")
            }
            (None, [], None) => {}
            (None, _, _) => anyhow::bail!("images come from one --data folder"),
        }
        if let (Some(kind), ModelConfig::Image(m)) = (kind, &mut cfg.model) {
            if m.kind != kind {
                let fresh = shiftlm::model::ImageConfig::new(kind, m.width, m.height, m.n_classes);
                *m = fresh;
            }
        }
        if self.tokenizer.is_some() || self.bpe_vocab.is_some() || self.tokenizer_file.is_some() || self.vocab.is_some()
        {
            anyhow::bail!(
                "images have no tokenizer or vocabulary: drop --tokenizer, --bpe-vocab, --tokenizer-file and --vocab"
            );
        }
        if self.task_or_series_flags() {
            anyhow::bail!(
                "--min-len, --max-len and the forecasting options (--target, --covariate, --timestamp, --fill, --scaler, --season, --stride) do not apply to images"
            );
        }
        if let Some(s) = self.seed {
            cfg.train.seed = s;
        }
        Ok(cfg)
    }

    /// The preset with these data choices applied.
    pub fn resolve(&self) -> anyhow::Result<RunConfig> {
        self.check_task_data()?;
        let parallel = self.source.is_some() || self.valid.is_some() || self.valid_source.is_some();
        let causal = matches!(self.model.as_deref(), Some("gpt" | "gpt2" | "llama"))
            || self.preset.as_deref().is_some_and(|p| p.starts_with("gpt") || p.starts_with("llama"));
        if parallel && (self.task.is_some() || causal || self.is_speech() || self.is_images() || self.is_series()) {
            anyhow::bail!(
                "--source/--target, --valid and --valid-source/--valid-target give pairs to an encoder–decoder (--model seq2seq or transformer), without --task"
            );
        }
        if self.is_speech() {
            return self.resolve_speech();
        }
        if self.is_images() {
            return self.resolve_images();
        }
        if self.is_series() {
            return self.resolve_series();
        }
        if !self.covariate.is_empty()
            || self.timestamp.is_some()
            || self.id.is_some()
            || self.fill.is_some()
            || self.season.is_some()
            || self.scaler.is_some()
            || self.stride.is_some()
        {
            anyhow::bail!(
                "--covariate, --timestamp, --id, --fill, --scaler, --season and --stride apply to forecasting (a .csv --data file with --target)"
            );
        }
        let mut cfg = if causal { self.resolve_causal()? } else { self.resolve_pairs()? };
        if self.shared_vocab.is_some() && !matches!(cfg.data, DataConfig::File { .. }) {
            anyhow::bail!("--shared-vocab chooses the vocabularies of a translation pair file (--data pairs or --source/--target)");
        }
        if let Some(s) = self.seed {
            cfg.train.seed = s;
        }
        let task_flags = self.vocab.is_some() || self.min_len.is_some() || self.max_len.is_some();
        if task_flags && !matches!(cfg.data, DataConfig::Task(_)) {
            anyhow::bail!("--vocab, --min-len and --max-len shape the built-in tasks; with --data the file decides");
        }
        if let DataConfig::Task(spec) = &mut cfg.data {
            if self.bpe_vocab.is_some() || self.tokenizer_file.is_some() || self.tokenizer.is_some() {
                anyhow::bail!("a built-in task has its own symbols: --tokenizer, --bpe-vocab and --tokenizer-file apply to --data files");
            }
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
            cfg.max_target_len = spec.max_len;
        }
        Ok(cfg)
    }

    /// Refuses `--bpe-vocab` when the final config (after `--config` and
    /// `--set`) trains no BPE tokenizer for it to size.
    pub fn check_bpe_vocab(&self, cfg: &RunConfig) -> anyhow::Result<()> {
        let bpe = match &cfg.data {
            DataConfig::Text(t) => {
                matches!(t.tokenizer, TokenizerKind::Bpe | TokenizerKind::Unigram) && t.tokenizer_file.is_none()
            }
            DataConfig::File { tokenizer, tokenizer_file, .. } => {
                matches!(tokenizer, TokenizerKind::Bpe | TokenizerKind::Unigram) && tokenizer_file.is_none()
            }
            DataConfig::Chat(c) => matches!(c.tokenizer, TokenizerKind::Bpe | TokenizerKind::Unigram),
            _ => false,
        };
        if self.bpe_vocab.is_some() && !bpe {
            anyhow::bail!(
                "--bpe-vocab sizes a subword tokenizer trained on the data (--tokenizer bpe or unigram, no --tokenizer-file)"
            );
        }
        Ok(())
    }

    /// `--tokenizer`, if given.
    fn tokenizer_kind(&self) -> Option<TokenizerKind> {
        match self.tokenizer.as_deref() {
            Some("byte") => Some(TokenizerKind::Byte),
            Some("bpe") => Some(TokenizerKind::Bpe),
            Some("unigram") => Some(TokenizerKind::Unigram),
            Some(_) => Some(TokenizerKind::Char),
            None => None,
        }
    }

    /// A language model on text files: the preset, or one sized for the text.
    fn resolve_causal(&self) -> anyhow::Result<RunConfig> {
        if self.data.is_empty() {
            anyhow::bail!("a causal model trains on text: give --data FILE (UTF-8 text)");
        }
        let bytes = self.data.iter().map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)).sum();
        let llama =
            self.model.as_deref() == Some("llama") || self.preset.as_deref().is_some_and(|p| p.starts_with("llama"));
        let mut cfg = match &self.preset {
            Some(p) => RunConfig::preset(p)?,
            None => RunConfig::for_text(if llama { "llama" } else { "gpt2" }, bytes)?,
        };
        let conversations = self.data.iter().any(|p| shiftlm::data::chat::is_conversation_file(p));
        if conversations && self.data.len() > 1 {
            anyhow::bail!(
                "conversations come in one --data FILE.jsonl; concatenate the files (one conversation per line)"
            );
        }
        if let ([path], DataConfig::Text(t)) = (self.data.as_slice(), &cfg.data) {
            if conversations {
                if self.tokenizer_file.is_some() {
                    anyhow::bail!("conversations build their tokenizer from the data and the chat template: drop --tokenizer-file");
                }
                let name = self.chat_template.as_deref().unwrap_or("chatml");
                let template = shiftlm::data::chat::ChatTemplate::named(name, Default::default())?;
                cfg.data = DataConfig::Chat(shiftlm::data::chat::ChatDataConfig {
                    path: std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()),
                    valid: None,
                    valid_fraction: 0.1,
                    tokenizer: self.tokenizer_kind().unwrap_or(t.tokenizer),
                    bpe_vocab_size: self.bpe_vocab.or(Some(t.bpe_vocab_size)),
                    template: (&template).into(),
                });
                return Ok(cfg);
            }
        }
        if self.chat_template.is_some() {
            anyhow::bail!(
                "--chat-template goes with conversations: one JSONL --data file of {{\"messages\": [...]}} lines"
            );
        }
        if let DataConfig::Text(t) = &mut cfg.data {
            t.paths = self.data.iter().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())).collect();
            t.tokenizer = self.tokenizer_kind().unwrap_or(t.tokenizer);
            t.bpe_vocab_size = self.bpe_vocab.unwrap_or(t.bpe_vocab_size);
            t.tokenizer_file = self.tokenizer_file.clone();
        }
        Ok(cfg)
    }

    /// An encoder–decoder on a built-in task or a file of pairs.
    fn resolve_pairs(&self) -> anyhow::Result<RunConfig> {
        let default = if self.model.as_deref() == Some("transformer") { "transformer" } else { "small" };
        let mut cfg = RunConfig::preset(self.preset.as_deref().unwrap_or(default))?;
        let abs = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let (path, target) = match (self.data.as_slice(), &self.source, self.target.as_slice()) {
            ([], None, _) => {
                if self.valid.is_some() || self.valid_source.is_some() {
                    anyhow::bail!("--valid and --valid-source/--valid-target go with training pairs (--data FILE or --source/--target)");
                }
                return Ok(cfg);
            }
            ([path], None, _) => (abs(path), None),
            ([], Some(s), [t]) => (abs(s), Some(abs(&PathBuf::from(t)))),
            ([], Some(_), _) => anyhow::bail!("--source FILE needs one --target FILE: the target side, line by line"),
            (_, Some(_), _) => {
                anyhow::bail!("--data (pairs in one file) and --source/--target (parallel files) are alternatives")
            }
            _ => anyhow::bail!("an encoder–decoder takes one --data file of pairs"),
        };
        let valid = self.valid.as_ref().or(self.valid_source.as_ref()).map(abs);
        cfg.data = DataConfig::File {
            path,
            target,
            valid,
            valid_target: self.valid_target.as_ref().map(abs),
            tokenizer: self.tokenizer_kind().unwrap_or(TokenizerKind::Char),
            valid_fraction: 0.1,
            bpe_vocab_size: self.bpe_vocab,
            tokenizer_file: self.tokenizer_file.clone(),
            shared_vocab: self.shared_vocab.unwrap_or(true),
        };
        Ok(cfg)
    }
}

/// An error and its causes on one line, `outer: inner: …`, each cause
/// once: a library error that already ends with its source's text (an
/// I/O error after its path) does not repeat it.
pub fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if out == s || out.ends_with(&format!(": {s}")) {
            continue;
        }
        if !out.is_empty() {
            out += ": ";
        }
        out += &s;
    }
    out
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    if !matches!(cli.command, Command::Train(_)) {
        // N copies of any other job would each do all of it, and write the same files.
        if let Some(w) = shiftlm::dist::WorldEnv::detect()?.filter(|w| w.size > 1) {
            anyhow::bail!(
                "{} started {} processes, but only `shiftlm train` runs data-parallel; run this command once, without the launcher",
                w.launcher,
                w.size
            );
        }
    }
    match cli.command {
        Command::Bench(a) => bench::run(a, threads),
        Command::Train(a) => train::run(*a),
        Command::Finetune(a) => finetune::run(*a),
        Command::Merge(a) => merge::run(a),
        Command::Average(a) => average::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Forecast(a) => forecast::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Data(DataCommand::Preview(a)) => data_preview::run(*a),
        Command::Data(DataCommand::Speech(a)) => data_speech::run(a),
        Command::Score(a) => score::run(a),
    }
}
