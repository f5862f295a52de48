//! `shiftlm plot`

use anyhow::Context;
use std::path::PathBuf;

pub const LONG_ABOUT: &str = "Draw a run's loss curves as an SVG image, or image classifiers' accuracy
against the input shift.

Reads RUN/metrics.jsonl and draws the training loss (per step, faint, and
smoothed) and the validation loss on a log scale, with the learning rate below.
The smoothing is centred, so it does not lag behind a falling loss: each point
is a least-squares line through the log losses up to a fortieth of the points
(1 to 50) either side, read at that point; the legend says how many.
Open the SVG in any browser. For live curves, point TensorBoard at RUN/tb.

With --shift-curve, reads each RUN/shift_curve.json (written when an image
classifier finishes training) and draws their test accuracy against the shift,
one line per run, as PNG: compare runs with and without --augment.

Examples:
  shiftlm plot runs/small-rotate                 # writes runs/small-rotate/loss.svg
  shiftlm plot runs/small-rotate --out curves.svg
  shiftlm plot --shift-curve runs/cnn-digits runs/cnn-digits-shift2 --out robustness.png";

#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// Run folder written by `shiftlm train` (several with --shift-curve).
    #[arg(required = true)]
    pub run: Vec<PathBuf>,
    /// Overlay the runs' accuracy against the input shift (image classifiers), as PNG.
    #[arg(long)]
    pub shift_curve: bool,
    /// Where to write the image (default RUN/loss.svg; with --shift-curve,
    /// shift-curves.png).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the SVG if it exists (without it, an existing file is an error).
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: PlotArgs) -> anyhow::Result<()> {
    if a.shift_curve {
        return shift_curves(&a);
    }
    let [run] = a.run.as_slice() else {
        anyhow::bail!("the loss plot draws one run; --shift-curve overlays several");
    };
    let path = run.join("metrics.jsonl");
    // Its errors name the file (and the line).
    let records = shiftlm::train::metrics::read_jsonl(&path)?;
    if records.is_empty() {
        anyhow::bail!("{}: no metrics logged yet", path.display());
    }
    let out = a.out.clone().unwrap_or_else(|| run.join("loss.svg"));
    shiftlm::io::check_new(&out, a.force, &[&path])?;
    let svg = shiftlm::plot::render_svg(&records, &run.display().to_string());
    shiftlm::checkpoint::write_atomic(&out, svg.as_bytes())?;
    println!("{}", out.display());
    Ok(())
}

/// Each run's test accuracy against the shift, overlaid in one PNG.
fn shift_curves(a: &PlotArgs) -> anyhow::Result<()> {
    let (mut curves, mut strips) = (Vec::new(), 0);
    let mut inputs = Vec::new();
    // Speech runs' reports (offsets in ms) are drawn on their own axis.
    let speech: Vec<Option<shiftlm::eval::speech::SpeechReport>> = a
        .run
        .iter()
        .map(|run| {
            std::fs::read(run.join(shiftlm::plot::SHIFT_REPORT)).ok().and_then(|b| serde_json::from_slice(&b).ok())
        })
        .collect();
    if speech.iter().all(Option::is_some) {
        let out = a.out.clone().unwrap_or_else(|| PathBuf::from("shift-curves.png"));
        let inputs: Vec<PathBuf> = a.run.iter().map(|r| r.join(shiftlm::plot::SHIFT_REPORT)).collect();
        let refs: Vec<&std::path::Path> = inputs.iter().map(|p| p.as_path()).collect();
        shiftlm::io::check_new(&out, a.force, &refs)?;
        let named: Vec<(String, shiftlm::eval::speech::SpeechReport)> = a
            .run
            .iter()
            .zip(speech)
            .map(|(run, r)| {
                let name =
                    run.file_name().map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().into_owned());
                (name, r.expect("all parsed"))
            })
            .collect();
        let png = shiftlm::plot::speech_shift_png(&named, "recognition against the time shift (held-out voices)");
        shiftlm::io::write_atomic(&out, &png)?;
        println!("{}", out.display());
        return Ok(());
    }
    if speech.iter().any(Option::is_some) {
        anyhow::bail!("speech runs (offsets in ms) and image runs (shifts in pixels) are drawn separately");
    }
    for run in &a.run {
        let path = run.join(shiftlm::plot::SHIFT_REPORT);
        let bytes = std::fs::read(&path).with_context(|| {
            format!("reading {} (written when an image classifier finishes training)", path.display())
        })?;
        // An image classifier's report (accuracy) or a strip reader's (exact match).
        #[derive(serde::Deserialize)]
        struct Report {
            accuracy: Option<f64>,
            exact_match: Option<f64>,
            shift_curve: Vec<shiftlm::eval::image::ShiftPoint>,
        }
        let r: Report =
            serde_json::from_slice(&bytes).with_context(|| format!("{}: not a shift-curve report", path.display()))?;
        let name = run.file_name().map_or_else(|| run.display().to_string(), |n| n.to_string_lossy().into_owned());
        let clean = r.accuracy.or(r.exact_match).unwrap_or(f64::NAN);
        strips += usize::from(r.accuracy.is_none());
        curves.push((format!("{name} (clean {:.1}%)", 100.0 * clean), r.shift_curve));
        inputs.push(path);
    }
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("shift-curves.png"));
    let refs: Vec<&std::path::Path> = inputs.iter().map(|p| p.as_path()).collect();
    shiftlm::io::check_new(&out, a.force, &refs)?;
    let y = if strips == curves.len() {
        "test exact match (%)"
    } else if strips > 0 {
        "test accuracy (%; strips: exact match)"
    } else {
        "test accuracy (%)"
    };
    let png = shiftlm::plot::shift_curves_png(&curves, "test accuracy against the input shift", y);
    shiftlm::io::write_atomic(&out, &png)?;
    println!("{}", out.display());
    Ok(())
}
