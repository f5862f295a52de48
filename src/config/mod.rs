//! Run configuration: plain serde data with presets as associated functions.
//! The resolved config is saved as `config.json` beside the weights, so that
//! evaluation and decoding need nothing but the checkpoint folder.

use crate::error::{Error, Result};
use crate::model::ModelConfig;

pub mod presets;
pub mod train;
use serde::{Deserialize, Serialize};
use std::path::Path;
pub use train::{Freeze, NonFinitePolicy, TrainConfig};

pub use crate::data::{DataConfig, TokenizerKind};

/// Everything about a run. Saved as `config.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The preset this config started from, e.g. `small`.
    pub preset: String,
    /// The model family and its size.
    pub model: ModelConfig,
    /// How to train: steps, batch, optimizer, schedule, evaluation and checkpoint cadence.
    pub train: TrainConfig,
    /// The data and its tokenizer.
    pub data: DataConfig,
    /// Longest target (tokens) seen in training; decoding stops at twice this.
    pub max_target_len: usize,
    /// The model's chat template (a language model trained or fine-tuned on
    /// conversations, or one from a Hugging Face folder that has one): every
    /// checkpoint writes it into its `tokenizer_config.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<crate::data::chat::TemplateSpec>,
    /// shiftlm version that wrote the config.
    pub version: String,
}

impl RunConfig {
    /// The preset names, comma-separated (for messages).
    pub const PRESETS: &'static str =
        "small, seed, tiny, transformer, transformer-tiny, transformer-mt, lstm-mt, gpt-baby, gpt-small, gpt-tiny, llama-baby, llama-tiny, series, series-tiny, cnn, row-lstm, cnn-tiny, digit-strings, digit-strings-tiny, spoken-digits, spoken-digits-tiny, spoken-strings, spoken-strings-tiny";

    /// A preset by name (see [`presets::PRESETS`] for each one's purpose).
    pub fn preset(name: &str) -> Result<Self> {
        let Some(p) = presets::PRESETS.iter().find(|p| p.name == name) else {
            return Err(Error::Unknown { what: "preset", name: name.to_string(), known: Self::PRESETS.to_string() });
        };
        let (model, train, data, max_target_len) = (p.build)();
        Ok(Self {
            preset: name.to_string(),
            model,
            train,
            data,
            max_target_len,
            chat_template: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// A causal model sized for `bytes` of training text: a small model for
    /// a small file, nanoGPT's baby GPT up to a few megabytes, a wider one
    /// (with byte-level BPE) beyond. `family` is `gpt2` or `llama`.
    pub fn for_text(family: &str, bytes: u64) -> Result<Self> {
        let fam = if family == "llama" { "llama" } else { "gpt" };
        if bytes >= 5_000_000 && fam == "gpt" {
            let mut c = Self::preset("gpt-small")?;
            if let DataConfig::Text(t) = &mut c.data {
                t.tokenizer = TokenizerKind::Bpe;
            }
            return Ok(c);
        }
        let mut c = Self::preset(&format!("{fam}-baby"))?;
        if bytes < 50_000 {
            // Little text: fewer, narrower layers and fewer steps overfit less.
            match &mut c.model {
                ModelConfig::Gpt2(m) => {
                    m.n_layer = 2;
                    m.n_embd = 64;
                }
                ModelConfig::Llama(m) => {
                    m.num_hidden_layers = 2;
                    m.hidden_size = 64;
                    m.intermediate_size = 176;
                }
                _ => {}
            }
            c.train.steps = 1000;
            c.train.schedule.decay_steps = 1000;
            c.train.eval_every = 125;
            c.train.save_every = 250;
        }
        Ok(c)
    }

    /// The id a causal model's text starts from and ends with.
    pub fn model_eos(&self) -> u32 {
        match &self.model {
            ModelConfig::Gpt2(m) => m.eos_token_id,
            ModelConfig::Llama(m) => m.eos_token_id,
            _ => crate::data::tokenizer::EOS,
        }
    }

    /// Applies a TOML file (any subset of the config's keys; unknown keys are
    /// an error) and then `--set key.path=value` overrides, in that order.
    pub fn with_overrides(self, file: Option<&Path>, sets: &[String]) -> Result<Self> {
        let mut v = serde_json::to_value(&self).expect("config serialises");
        let mut source = String::from("config");
        if let Some(path) = file {
            source = path.display().to_string();
            let text = crate::data::read_utf8(path)?;
            let t: toml::Value = toml::from_str(&text)
                .map_err(|e| Error::ConfigFile { source_name: source.clone(), msg: e.to_string() })?;
            merge(&mut v, serde_json::to_value(t).expect("TOML maps to JSON"));
        }
        for s in sets {
            let (key, raw) = s.split_once('=').ok_or_else(|| Error::ConfigFile {
                source_name: format!("--set {s}"),
                msg: "expected KEY=VALUE, e.g. train.optimizer.lr=0.003".into(),
            })?;
            // A TOML literal (number, bool, string in quotes, array); else a bare string.
            let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .map(|t| serde_json::to_value(t).expect("TOML maps to JSON"))
                .unwrap_or_else(|| serde_json::Value::String(raw.to_string()));
            let mut slot = &mut v;
            for part in key.trim().split('.') {
                slot = slot
                    .as_object_mut()
                    .ok_or_else(|| Error::ConfigFile {
                        source_name: format!("--set {s}"),
                        msg: format!("'{part}' is inside a value, not a table"),
                    })?
                    .entry(part)
                    .or_insert(serde_json::Value::Null);
            }
            *slot = value;
            source = format!("--set {s}");
        }
        let cfg: RunConfig =
            serde_json::from_value(v).map_err(|e| Error::ConfigFile { source_name: source, msg: e.to_string() })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Whether the run reads digit strips (`--task digit-strings`).
    pub fn reads_strips(&self) -> bool {
        matches!(&self.data, DataConfig::Images(c) if c.strings.is_some())
    }

    /// Whether the run transcribes speech (`--task spoken-strings`).
    pub fn reads_speech(&self) -> bool {
        matches!(&self.data, DataConfig::Speech(c) if c.strings)
    }

    /// Checks every field; the error names the first impossible one.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.train.validate()?;
        let encdec = matches!(self.model, ModelConfig::Seq2seq(_) | ModelConfig::Transformer(_));
        if self.train.batch_tokens > 0
            && !(encdec && matches!(self.data, DataConfig::Task(_) | DataConfig::File { .. }))
        {
            return Err(Error::config("train.batch_tokens", "batches pairs of tokens for an encoder–decoder"));
        }
        if self.train.scheduled_sampling > 0.0 && !encdec {
            return Err(Error::config(
                "train.scheduled_sampling",
                "applies to encoder–decoders (a forecaster's is model.scheduled_sampling)",
            ));
        }
        if self.train.select_by == Some(train::SelectBy::Bleu) && !encdec {
            return Err(Error::config(
                "train.select_by",
                "bleu decodes the validation pairs: it needs an encoder–decoder",
            ));
        }
        let separate = matches!(self.data, DataConfig::File { shared_vocab: false, .. });
        if self.model.source_vocab_size().is_some() && !separate {
            return Err(Error::config(
                "model.input",
                "token ids of a source vocabulary of their own come with separate vocabularies (data.file.shared_vocab = false)",
            ));
        }
        if let DataConfig::File { shared_vocab: false, tokenizer, tokenizer_file, .. } = &self.data {
            if !encdec {
                return Err(Error::config("data.file.shared_vocab", "separate vocabularies are for encoder–decoders"));
            }
            if tokenizer_file.is_some() {
                return Err(Error::config(
                    "data.file.shared_vocab",
                    "one tokenizer_file is one vocabulary: separate ones are trained from the data",
                ));
            }
            if *tokenizer == crate::data::TokenizerKind::Byte {
                return Err(Error::config(
                    "data.file.shared_vocab",
                    "byte tokenizers are the same 256 bytes on both sides: nothing to separate",
                ));
            }
        }
        if self.train.label_smoothing > 0.0 && matches!(self.model, ModelConfig::Forecaster(_) | ModelConfig::Image(_))
        {
            return Err(Error::config("train.label_smoothing", "applies to models that predict tokens"));
        }
        // A batch (and its activations) must fit before it is built: at most
        // 2²⁸ positions.
        let width = self.model.context().unwrap_or(self.max_target_len).max(1);
        let (batch, limit) = (self.train.batch_size as u64, 1u64 << 28);
        if batch.checked_mul(width as u64).is_none_or(|n| n > limit) {
            return Err(Error::config(
                "train.batch_size",
                format!("{batch} rows of {width} positions is more than {limit} positions per batch"),
            ));
        }
        let tokens = matches!(self.data, DataConfig::Task(_) | DataConfig::File { .. });
        let input = self.model.family().encoder_input();
        if tokens && input.as_ref().is_some_and(|i| !matches!(i, crate::model::FrontendConfig::Tokens { .. })) {
            return Err(Error::config(
                "model.input",
                "the built-in tasks and pair files give token ids; numeric frames need a data source that yields them",
            ));
        }
        let strips = self.reads_strips() || self.reads_speech();
        // A forecaster reads frames of its series.
        let frames = !self.model.is_forecaster()
            && input.is_some_and(|i| !matches!(i, crate::model::FrontendConfig::Tokens { .. }));
        if strips != frames {
            return Err(Error::config(
                if strips { "model" } else { "model.input" },
                if strips {
                    "digit strips and transcripts train an encoder–decoder that reads columns of pixels or features (family \"seq2seq\" with input = { kind = \"columns\" } or { kind = \"frames\" }: the digit-strings and spoken-strings presets)"
                } else {
                    "numeric frames are read from digit strips (--task digit-strings), speech (--task spoken-strings) or a series"
                },
            ));
        }
        if strips && !matches!(self.model, crate::model::ModelConfig::Seq2seq(_)) {
            return Err(Error::config(
                "model",
                "digit strips and speech are read by the RNN encoder–decoder (family \"seq2seq\")",
            ));
        }
        let image_data = matches!(&self.data, DataConfig::Images(c) if c.strings.is_none())
            || matches!(&self.data, DataConfig::Speech(c) if !c.strings);
        if image_data != self.model.is_image() {
            return Err(Error::config(
                "data",
                if image_data {
                    "images and keywords train an image classifier (family \"image\": --model cnn, row-lstm, row-gru, mlp, conv-lstm or conv-gru)"
                } else {
                    "an image classifier trains on images or keywords (--task digits, --task fashion-mnist, --task spoken-digits or --data DIR)"
                },
            ));
        }
        let series_data = matches!(self.data, DataConfig::Series(_));
        if series_data != self.model.is_forecaster() {
            return Err(Error::config(
                "data",
                if series_data {
                    "a numeric series trains a forecaster (family \"forecaster\")"
                } else {
                    "a forecaster trains on a numeric series (a CSV file or the built-in series)"
                },
            ));
        }
        let causal_data = matches!(self.data, DataConfig::Text(_) | DataConfig::Chat(_));
        // A causal model also takes a file of prompt/response pairs.
        let prompts = self.model.is_causal() && matches!(self.data, DataConfig::File { .. });
        if causal_data != self.model.is_causal() && !prompts && !series_data {
            return Err(Error::config(
                "data",
                if causal_data {
                    "plain text and conversations train a causal model (gpt2 or llama), not an encoder–decoder"
                } else {
                    "paired data trains an encoder–decoder; a causal model needs plain text"
                },
            ));
        }
        match &self.data {
            DataConfig::Text(t) => {
                if !(0.0..0.5).contains(&t.valid_fraction) {
                    return Err(Error::config("data.valid_fraction", "must be in [0, 0.5)"));
                }
                Ok(())
            }
            DataConfig::Chat(c) => {
                if !(0.0..1.0).contains(&c.valid_fraction) {
                    return Err(Error::config("data.valid_fraction", "must be in [0, 1)"));
                }
                c.template.compile().map(|_| ())
            }
            DataConfig::Task(t) => t.validate(),
            DataConfig::Series(s) => s.validate(),
            DataConfig::Images(c) => {
                c.augment.validate()?;
                if let Some(s) = &c.strings {
                    s.validate()?;
                }
                if (0.0..1.0).contains(&c.valid_fraction) {
                    Ok(())
                } else {
                    Err(Error::config("data.valid_fraction", "must be in [0, 1)"))
                }
            }
            DataConfig::File { valid_fraction, valid, valid_target, .. } => {
                if valid_target.is_some() && valid.is_none() {
                    Err(Error::config("data.valid_target", "is the target side of data.valid: set both"))
                } else if (0.0..1.0).contains(valid_fraction) {
                    Ok(())
                } else {
                    Err(Error::config("data.valid_fraction", "must be in [0, 1)"))
                }
            }
            DataConfig::Speech(c) => {
                c.augment.validate()?;
                c.features.validate(crate::data::audio::SAMPLE_RATE)?;
                if !(0.0..1.0).contains(&c.valid_fraction) {
                    return Err(Error::config("data.valid_fraction", "must be in [0, 1)"));
                }
                if c.pad_ms > 10_000 {
                    return Err(Error::config("data.pad_ms", "must be at most 10000 ms"));
                }
                Ok(())
            }
        }
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::rnn::CellKind;

    #[test]
    fn the_preset_list_names_the_table() {
        let names: Vec<&str> = presets::PRESETS.iter().map(|p| p.name).collect();
        assert_eq!(RunConfig::PRESETS, names.join(", "));
    }

    #[test]
    fn toml_files_and_sets_override_presets_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("run.toml");
        std::fs::write(&f, "[train]\nsteps = 42\n[train.optimizer]\nlr = 0.5\n[model]\ncell = \"gru\"\n").unwrap();
        let c = RunConfig::preset("tiny")
            .unwrap()
            .with_overrides(Some(&f), &["train.batch_size=7".into(), "model.dropout=0.25".into()])
            .unwrap();
        assert_eq!((c.train.steps, c.train.optimizer.lr, c.train.batch_size), (42, 0.5, 7));
        let ModelConfig::Seq2seq(m) = &c.model else { panic!("seq2seq") };
        assert_eq!((m.cell, m.dropout), (CellKind::Gru, 0.25));
        std::fs::write(&f, "[train]\nstepz = 42\n").unwrap();
        let e = RunConfig::preset("tiny").unwrap().with_overrides(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("run.toml") && e.contains("stepz"), "{e}");
        std::fs::write(&f, "[train\n").unwrap();
        let e = RunConfig::preset("tiny").unwrap().with_overrides(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("run.toml") && e.contains("line 1"), "{e}");
        let e = RunConfig::preset("tiny")
            .unwrap()
            .with_overrides(None, &["train.optimizr.lr=1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("optimizr"), "{e}");
        let e =
            RunConfig::preset("tiny").unwrap().with_overrides(None, &["train.steps=0".into()]).unwrap_err().to_string();
        assert!(e.contains("train.steps"), "{e}");
    }

    #[test]
    fn presets_validate_and_round_trip_through_json() {
        for name in [
            "small",
            "seed",
            "tiny",
            "transformer",
            "transformer-tiny",
            "gpt-baby",
            "gpt-small",
            "gpt-tiny",
            "llama-baby",
            "llama-tiny",
            "series",
            "series-tiny",
        ] {
            let mut c = RunConfig::preset(name).unwrap();
            c.model.set_vocab_size(65);
            c.validate().unwrap();
            let back: RunConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
            assert_eq!(back, c);
        }
        assert!(RunConfig::preset("huge").unwrap_err().to_string().contains("small"));
    }

    #[test]
    fn impossible_configs_are_named() {
        let mut c = RunConfig::preset("tiny").unwrap();
        if let ModelConfig::Seq2seq(m) = &mut c.model {
            m.dropout = 1.5;
        }
        assert!(c.validate().unwrap_err().to_string().contains("model.dropout"));
        let mut c = RunConfig::preset("tiny").unwrap();
        c.train.steps = 0;
        assert!(c.validate().unwrap_err().to_string().contains("train.steps"));
        // A front-end the data cannot feed, and a source vocabulary of its own without
        // separate vocabularies, are refused by name.
        use crate::model::FrontendConfig;
        for input in
            [FrontendConfig::Frames { features: 3, proj: Some(8) }, FrontendConfig::Tokens { vocab_size: 8, dim: 16 }]
        {
            let mut c = RunConfig::preset("tiny").unwrap();
            if let ModelConfig::Seq2seq(m) = &mut c.model {
                m.input = Some(input);
            }
            assert!(c.validate().unwrap_err().to_string().contains("model.input"));
        }
    }
}
