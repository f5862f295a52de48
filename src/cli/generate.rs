//! `shiftlm generate`

use anyhow::Context;
use shiftlm::api::generate::generate_with;
use shiftlm::api::GenerateJob;
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
  echo \"hello\" | shiftlm generate --checkpoint runs/mine --temperature 0.8 --seed 7
  shiftlm generate --checkpoint runs/gpt-baby-input --prompt \"ROMEO:\" --profile prof   # time per token
  shiftlm generate --checkpoint runs/cnn-fashion-mnist --image shoe.png    # an image's class
  shiftlm generate --checkpoint runs/digit-strings --image strip.png       # the digits of a strip
  shiftlm generate --checkpoint runs/spoken-strings --audio phone.wav      # what a clip says
  shiftlm generate --checkpoint ./gpt2-folder --prompt \"Hello\" --temperature 0 --json   # {\"outputs\":[{\"input\",\"ids\",\"text\"}]}";

#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// Run folder (newest complete checkpoint), a checkpoint-<step> folder, or a
    /// Hugging Face GPT-2/Llama folder with tokenizer.json.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// Text to continue (language models), or an input to decode (encoder–decoders; repeatable).
    #[arg(long, alias = "input", value_name = "TEXT")]
    pub prompt: Vec<String>,
    /// Language models: most new tokens (default 200).
    #[arg(long, value_name = "N")]
    pub max_new_tokens: Option<usize>,
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
    /// Language models: stop when this text is generated as one token (repeatable; the
    /// end-of-text token always stops).
    #[arg(long, value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Encoder–decoders: beam width (default 1: no beam search).
    #[arg(long, value_name = "K")]
    pub beam: Option<usize>,
    /// Encoder–decoders: beam length penalty α (default 0.6).
    #[arg(long, value_name = "A")]
    pub length_penalty: Option<f32>,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Most tokens to emit for an encoder–decoder (default: twice the longest training target).
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// Image classifiers: the image file to classify (PNG, JPEG or BMP, the model's size;
    /// repeatable). Prints its class and the three most likely. Digit-strings models: a
    /// strip to read (as high as the training strips, any width); prints the digits.
    #[arg(long, value_name = "FILE")]
    pub image: Vec<PathBuf>,
    /// Speech models: a WAV file to recognise (any rate, mono or stereo; repeatable).
    /// Prints the keyword (with the three most likely) or the transcript.
    #[arg(long, value_name = "FILE.wav")]
    pub audio: Vec<PathBuf>,
    #[command(flatten)]
    pub profiling: super::profiling::ProfileArgs,
    /// Print only one JSON line: each output's input, token ids and text (to compare with
    /// transformers token by token), instead of streaming text.
    #[arg(long)]
    pub json: bool,
}

impl GenerateArgs {
    /// Whether any sampling or decoding option for text was given.
    fn text_flags(&self) -> bool {
        self.max_new_tokens.is_some()
            || self.temperature.is_some()
            || self.top_k != 0
            || self.top_p != 1.0
            || self.repetition_penalty != 1.0
            || !self.stop.is_empty()
            || self.beam.is_some()
            || self.length_penalty.is_some()
            || self.seed != 0
            || self.max_len.is_some()
    }
}

/// `--audio FILE.wav` with a speech checkpoint.
fn recognise(ck: &shiftlm::checkpoint::Loaded, a: &GenerateArgs, speech: bool) -> anyhow::Result<()> {
    if !speech {
        anyhow::bail!("--audio FILE.wav is for speech checkpoints (--task spoken-digits or spoken-strings)");
    }
    if !a.prompt.is_empty() || !a.image.is_empty() || a.text_flags() {
        anyhow::bail!("a speech model takes only --audio FILE.wav (and --json, --profile)");
    }
    if a.audio.is_empty() {
        anyhow::bail!("a speech model needs --audio FILE.wav (repeatable)");
    }
    let read = shiftlm::api::generate::recognise_audio(ck, &a.audio)?;
    a.profiling.finish(None)?;
    if a.json {
        println!("{}", serde_json::json!({ "outputs": read }));
    } else {
        for r in &read {
            let top: Vec<String> = r.top.iter().map(|(c, p)| format!("{c} {:.1}%", 100.0 * p)).collect();
            let top = if top.is_empty() { String::new() } else { format!(" ({})", top.join(", ")) };
            println!("{}: {}{top}", r.audio.display(), r.text);
        }
    }
    Ok(())
}

pub fn run(a: GenerateArgs) -> anyhow::Result<()> {
    a.profiling.arm_tokens()?;
    let ck = shiftlm::checkpoint::load(&a.checkpoint, &candle_core::Device::Cpu)
        .with_context(|| format!("loading checkpoint {}", a.checkpoint.display()))?;
    let speech = matches!(ck.config.data, shiftlm::config::DataConfig::Speech(_));
    if speech || !a.audio.is_empty() {
        return recognise(&ck, &a, speech);
    }
    let strips = ck.config.reads_strips();
    if !ck.config.model.is_image() && !strips && !a.image.is_empty() {
        anyhow::bail!(
            "--image FILE is for image-classifier and digit-strings checkpoints; this one reads text (--prompt)"
        );
    }
    if ck.config.model.is_image() || strips {
        let what = if strips { "a digit-strings reader" } else { "an image classifier" };
        if !a.prompt.is_empty() {
            anyhow::bail!("{what} reads --image FILE, not --prompt");
        }
        if a.image.is_empty() {
            anyhow::bail!("{what} needs --image FILE (repeatable)");
        }
        if a.text_flags() {
            anyhow::bail!(
                "{what} takes only --image (and --json, --profile): the sampling and decoding options apply to text"
            );
        }
        if strips {
            let read = shiftlm::api::generate::read_strips(&ck, &a.image)?;
            a.profiling.finish(None)?;
            if a.json {
                println!("{}", serde_json::json!({ "outputs": read }));
            } else {
                for r in &read {
                    println!("{}: {}", r.image.display(), r.text);
                }
            }
            return Ok(());
        }
        let preds = shiftlm::api::generate::classify(&ck, &a.image)?;
        a.profiling.finish(None)?;
        if a.json {
            println!("{}", serde_json::json!({ "outputs": preds }));
        } else {
            for p in &preds {
                let top: Vec<String> = p.top.iter().map(|(c, pr)| format!("{c} {:.1}%", 100.0 * pr)).collect();
                println!("{}: {} ({})", p.image.display(), p.class, top.join(", "));
            }
        }
        return Ok(());
    }
    let causal = ck.config.model.is_causal();
    if causal && (a.beam.is_some() || a.length_penalty.is_some() || a.max_len.is_some()) {
        anyhow::bail!(
            "--beam, --length-penalty and --max-len apply to encoder–decoders; a language model samples up to --max-new-tokens (--temperature 0 is greedy)"
        );
    }
    if !causal && (a.max_new_tokens.is_some() || !a.stop.is_empty()) {
        anyhow::bail!(
            "--max-new-tokens and --stop apply to language models; an encoder–decoder stops at its end token or at --max-len"
        );
    }
    let prompts: Vec<String> = if a.prompt.is_empty() && !causal && !ck.config.model.is_forecaster() {
        std::io::stdin().lock().lines().collect::<Result<_, _>>().context("reading standard input")?
    } else {
        a.prompt.clone()
    };
    let job = GenerateJob {
        checkpoint: a.checkpoint.clone(),
        prompts,
        max_new_tokens: a.max_new_tokens.unwrap_or(200),
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        repetition_penalty: a.repetition_penalty,
        stop: a.stop.clone(),
        beam: a.beam.unwrap_or(1),
        length_penalty: a.length_penalty.unwrap_or(0.6),
        seed: a.seed,
        max_len: a.max_len,
    };
    if a.json {
        let outputs = generate_with(&ck, &job, &mut |_| {})?;
        a.profiling.finish(None)?;
        println!("{}", serde_json::json!({ "outputs": outputs }));
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    // A language model's prompt goes first, then the continuation as it
    // streams; nothing is printed before the job's settings are checked.
    let prompt = job.prompts.join("\n");
    let mut started = false;
    generate_with(&ck, &job, &mut |text| {
        let _ = match (causal, started) {
            (true, false) => write!(out, "{prompt}{text}"),
            (true, true) => write!(out, "{text}"),
            (false, _) => writeln!(out, "{text}"),
        };
        started = true;
        let _ = out.flush();
    })?;
    if causal {
        if !started {
            write!(out, "{prompt}")?;
        }
        writeln!(out)?;
    }
    drop(out);
    a.profiling.finish(None)?;
    Ok(())
}
