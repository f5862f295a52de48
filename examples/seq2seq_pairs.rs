//! Train an LSTM encoder–decoder on a file of pairs, then decode with it,
//! through the library alone (no CLI).
//!
//! ```sh
//! cargo run --release --example seq2seq_pairs              # writes its own pairs file
//! cargo run --release --example seq2seq_pairs -- pairs.tsv 400
//! ```
//! A pairs file holds `source<TAB>target` lines; the model learns to map one
//! to the other with teacher forcing (decoder input `[BOS]+y`, labels
//! `y+[EOS]`).

use shiftlm::api::{self, Evaluation, GenerateJob, TrainJob};
use shiftlm::config::{DataConfig, RunConfig, TokenizerKind};
use shiftlm::train::{MetricsSink, StepMetrics};
use std::path::PathBuf;

/// Prints the loss every 50 steps: the smallest useful progress sink.
struct EveryFifty;

impl MetricsSink for EveryFifty {
    fn on_step(&mut self, m: &StepMetrics) {
        if m.step.is_multiple_of(50) {
            println!("step {:>4}  loss {:.4}", m.step, m.loss);
        }
    }
}

fn main() -> shiftlm::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let work = std::env::temp_dir().join(format!("shiftlm-example-seq2seq-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| shiftlm::Error::Io { path: work.clone(), source: e })?;
    let pairs = match args.first() {
        Some(p) => PathBuf::from(p),
        None => {
            // Reverse short words: "abc" → "cba".
            let words = ["shift", "decoder", "target", "token", "label", "window", "teacher", "forcing"];
            let mut text = String::new();
            for (i, a) in words.iter().enumerate() {
                for b in &words[i..] {
                    let w = format!("{a}{}", &b[..2]);
                    text += &format!("{w}\t{}\n", w.chars().rev().collect::<String>());
                }
            }
            let path = work.join("pairs.tsv");
            shiftlm::io::write_atomic(&path, text.as_bytes())?;
            path
        }
    };
    let steps = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300);

    // The `tiny` preset (an LSTM of 32 with attention) on the pairs file.
    let mut config = RunConfig::preset("tiny")?;
    config.data = DataConfig::File {
        path: pairs,
        target: None,
        valid: None,
        valid_target: None,
        tokenizer: TokenizerKind::Char,
        valid_fraction: 0.1,
        bpe_vocab_size: None,
        tokenizer_file: None,
        shared_vocab: true,
    };
    config.train.steps = steps;
    let job = TrainJob { config, out: work.join("run"), show: 3 };
    let report = api::train(&job, &mut EveryFifty)?;
    if let Evaluation::Pairs { report: r, examples } = &report.evaluation {
        let exact = 100.0 * r.exact_match;
        println!("trained {} steps; held-out exact match {exact:.1}% (free-running)", report.outcome.steps);
        for e in examples {
            println!("  {} → {} (target {})", e.source, e.output, e.target);
        }
    }

    // Decode with the checkpoint just written.
    let inputs = vec!["shiftde".to_string(), "tokenwi".to_string()];
    let outputs = api::generate(&GenerateJob::new(&report.run, inputs), &mut |_| {})?;
    for o in &outputs {
        println!("{} → {}", o.input, o.text);
    }
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}
