//! `shiftlm score`: BLEU and chrF of text files, like the `sacrebleu` command.

use clap::Args;
use std::path::{Path, PathBuf};

pub const LONG_ABOUT: &str = "Score translations: corpus BLEU and chrF2, exactly as sacreBLEU 2 computes them by
default (13a tokenisation, 4-grams, brevity penalty, exp smoothing; chrF with
character 1-6-grams and beta 2), cased, on detokenised text.

Each file holds one sentence per line; every --ref must have as many lines as --hyp.
Give --ref several times for several references per sentence.

Examples:
  shiftlm score --hyp out.de --ref test_2016_flickr.de
  shiftlm score --hyp out.de --ref ref1.de --ref ref2.de --json
  # {\"bleu\":…,\"chrf\":…,\"sentences\":…,\"counts\":[…],\"totals\":[…],\"bp\":…,…}";

#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// The system's output, one sentence per line.
    #[arg(long, value_name = "FILE")]
    pub hyp: PathBuf,
    /// A reference translation, one sentence per line (repeat for several).
    #[arg(long, value_name = "FILE", required = true)]
    pub r#ref: Vec<PathBuf>,
    /// Print one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// The lines of a UTF-8 text file, gzip-compressed or not (a final newline ends the last line).
fn lines(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = shiftlm::data::read_text(path)?;
    Ok(text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect())
}

pub fn run(a: ScoreArgs) -> anyhow::Result<()> {
    let hyps = lines(&a.hyp)?;
    let mut refs = Vec::with_capacity(a.r#ref.len());
    for r in &a.r#ref {
        let set = lines(r)?;
        if set.len() != hyps.len() {
            anyhow::bail!(
                "{} has {} lines but {} has {}: each reference needs one line per hypothesis",
                r.display(),
                set.len(),
                a.hyp.display(),
                hyps.len()
            );
        }
        refs.push(set);
    }
    let b = shiftlm::eval::translation::bleu(&hyps, &refs);
    let c = shiftlm::eval::translation::chrf(&hyps, &refs);
    if a.json {
        let v = serde_json::json!({
            "bleu": b.score, "chrf": c, "sentences": hyps.len(), "references": refs.len(),
            "counts": b.counts, "totals": b.totals, "precisions": b.precisions,
            "bp": b.bp, "sys_len": b.sys_len, "ref_len": b.ref_len,
        });
        println!("{v}");
    } else {
        let p: Vec<String> = b.precisions.iter().map(|p| format!("{p:.1}")).collect();
        println!(
            "BLEU {:.2} ({}, BP {:.3}, ratio {:.3}, hyp_len {}, ref_len {})  chrF2 {c:.2}  ({} sentences, {} reference set(s))",
            b.score,
            p.join("/"),
            b.bp,
            b.sys_len as f64 / b.ref_len.max(1) as f64,
            b.sys_len,
            b.ref_len,
            hyps.len(),
            refs.len()
        );
    }
    Ok(())
}
