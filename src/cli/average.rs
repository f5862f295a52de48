//! `shiftlm average`

use anyhow::Context;
use shiftlm::api::{self, AverageJob};
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Average the weights of a run's last checkpoints.

Reads the newest --last N complete checkpoints of a run folder (a checkpoint
whose manifest does not verify is skipped, as every loader skips it), and
writes one checkpoint whose every weight is their mean, with the newest one's
configuration, tokenizer and step. Translators average the last 5–20
checkpoints of a Transformer (Vaswani et al. 2017): it smooths the noise of the
final steps and usually adds a little BLEU. Train with --keep-last N (default
3) and a --save-every that spaces the checkpoints as you want them.

The result opens in every shiftlm command (eval, generate, finetune).

Examples:
  shiftlm train --model transformer --source train.en --target train.de --keep-last 5 --save-every 500
  shiftlm average --from runs/train --last 5 --out runs/train-avg5
  shiftlm eval --checkpoint runs/train-avg5 --source test.en --target test.de --beam 5";

#[derive(clap::Args, Debug)]
pub struct AverageArgs {
    /// The run folder whose checkpoints to average.
    #[arg(long, value_name = "RUN")]
    pub from: PathBuf,
    /// How many of the newest complete checkpoints to average.
    #[arg(long, value_name = "N")]
    pub last: usize,
    /// The checkpoint folder to write (must not exist yet, or be empty).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// End with one JSON line.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: AverageArgs) -> anyhow::Result<()> {
    let job = AverageJob { from: a.from.clone(), last: a.last, out: a.out.clone() };
    let r = api::average(&job).with_context(|| format!("averaging {}", a.from.display()))?;
    let steps: Vec<String> = r.steps.iter().map(|s| s.to_string()).collect();
    eprintln!("averaged {} checkpoints (steps {}) into {}", r.steps.len(), steps.join(", "), r.out.display());
    if a.json {
        println!("{}", serde_json::json!({"from": a.from, "steps": r.steps, "averaged": r.averaged, "out": r.out}));
    }
    Ok(())
}
