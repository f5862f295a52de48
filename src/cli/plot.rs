//! `shiftlm plot`

use anyhow::Context;
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Draw a run's loss curves as an SVG image.

Reads RUN/metrics.jsonl and draws the training loss (per step, faint, and
smoothed) and the validation loss on a log scale, with the learning rate below.
Open the SVG in any browser. For live curves, point TensorBoard at RUN/tb.

Examples:
  shiftlm plot runs/small-rotate                 # writes runs/small-rotate/loss.svg
  shiftlm plot runs/small-rotate --out curves.svg";

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Run folder written by `shiftlm train`.
    pub run: PathBuf,
    /// Where to write the SVG (default RUN/loss.svg).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the SVG if it exists (without it, an existing file is an error).
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: PlotArgs) -> anyhow::Result<()> {
    let path = a.run.join("metrics.jsonl");
    let records = shiftlm::train::metrics::read_jsonl(&path).with_context(|| format!("reading {}", path.display()))?;
    if records.is_empty() {
        anyhow::bail!("{}: no metrics logged yet", path.display());
    }
    let out = a.out.unwrap_or_else(|| a.run.join("loss.svg"));
    shiftlm::io::check_new(&out, a.force, &[&path])?;
    let svg = shiftlm::plot::render_svg(&records, &a.run.display().to_string());
    shiftlm::checkpoint::write_atomic(&out, svg.as_bytes())?;
    println!("{}", out.display());
    Ok(())
}
