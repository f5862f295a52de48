//! `shiftlm data speech`: synthesises the built-in spoken-digit corpus.

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use shiftlm::data::audio::corpus::{self, CorpusConfig};
use std::path::{Path, PathBuf};

pub const LONG_ABOUT: &str = "Synthesise the built-in spoken-digit corpus with Debian's espeak-ng and flite.

Writes WAV files and transcripts (path<TAB>text) for two tasks:
  DIR/digits/{train,test,unseen_engine}.tsv   single digits, labelled zero … nine
  DIR/strings/{train,test,unseen_engine}.tsv  strings of 1-7 digits, e.g. 4071
and DIR/corpus.json with the engines' versions and a SHA-256 of every file.

Speakers are espeak-ng's English dialects (en-us, en-gb, en-gb-scotland, en-029,
en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd) with voice variants (+m1, +f3,
+klatt2, …) at random speeds and pitches. The variants m3, f2, f5 and klatt3
are held out whole for the test set; flite's kal, awb, rms and slt voices make
the unseen_engine set. Everything is drawn from fixed seeds: the same engine
versions write the same bytes. An existing corpus with the same settings is
kept as it is.

`train --task spoken-digits` and `--task spoken-strings` make it on first use
in the default folder ($SHIFTLM_DATA/speech, else ~/.cache/shiftlm/speech).
Needs: apt-get install espeak-ng flite

Examples:
  shiftlm data speech                      # into the default folder
  shiftlm data speech --out corpus --json
  shiftlm train --data corpus/digits       # the same clips as --task spoken-digits";

#[derive(Args, Debug)]
pub struct SpeechArgs {
    /// Folder to write (default: $SHIFTLM_DATA/speech, else ~/.cache/shiftlm/speech).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the manifest as one JSON line.
    #[arg(long)]
    pub json: bool,
}

/// The corpus in `dir`, made if need be, with a progress bar.
pub fn ensure(dir: &Path) -> anyhow::Result<corpus::Manifest> {
    let cfg = CorpusConfig::default();
    if let Some(m) = corpus::read_manifest(dir)?.filter(|m| m.config == cfg) {
        return Ok(m);
    }
    eprintln!("synthesising the spoken-digit corpus into {} (once)", dir.display());
    let bar = ProgressBar::new(cfg.clip_count() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} clips ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let m = corpus::ensure(dir, &cfg, &|done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    Ok(m?)
}

/// Makes the corpus a run config names, if it names one.
pub fn ensure_for(cfg: &shiftlm::config::RunConfig) -> anyhow::Result<()> {
    if let shiftlm::config::DataConfig::Speech(d) = &cfg.data {
        if let shiftlm::data::audio::speech::SpeechSource::Corpus(dir) = &d.source {
            ensure(dir)?;
        }
    }
    Ok(())
}

pub fn run(a: SpeechArgs) -> anyhow::Result<()> {
    let dir = a.out.clone().unwrap_or_else(shiftlm::data::audio::speech::default_corpus_dir);
    let m = ensure(&dir)?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "dir": dir, "clips": m.clips, "sha256": m.sha256, "espeak_ng": m.espeak_ng, "flite": m.flite })
        );
    } else {
        println!("{}: {} clips by {} and {} (sha256 {})", dir.display(), m.clips, m.espeak_ng, m.flite, m.sha256);
    }
    Ok(())
}
