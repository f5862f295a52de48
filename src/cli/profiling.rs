//! `--profile DIR`: the profiler's flags, shared by `train`, `finetune` and `bench`, and
//! what a profile leaves behind (trace.json, profile.json and a table on
//! standard output, like `torch.profiler`'s `key_averages().table()`).

use anyhow::Context;
use shiftlm::profile::{self, Kind, SortBy, Summary};
use shiftlm::train::tensorboard::TensorBoardWriter;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Profiling")]
pub struct ProfileArgs {
    /// Profile some steps into DIR: trace.json (open it in ui.perfetto.dev or
    /// chrome://tracing), profile.json (per op and phase: calls, total and self
    /// ms, share of the step, GFLOP/s, heap bytes allocated, peak resident
    /// memory), timeline.png (the last step's phases and top ops), TensorBoard
    /// scalars profile/<op>_ms, and a table on standard output. DIR may
    /// exist, but not trace.json or profile.json in it.
    #[arg(long, value_name = "DIR")]
    pub profile: Option<PathBuf>,
    /// Steps to record, A..B (both included) or one step A; 1 is the first step
    /// of the run. Default: train and finetune 2..6 (skipping the first step's
    /// warm-up), bench the first 5 timed steps, generate every token (a step
    /// is one new token; the first one includes the prompt or the encoder).
    #[arg(long, value_name = "A..B", value_parser = parse_steps, requires = "profile")]
    pub profile_steps: Option<(usize, usize)>,
    /// Order of the table and profile.json: self (time outside nested events,
    /// default), total, calls or name.
    #[arg(long, value_name = "KEY", value_parser = ["self", "total", "calls", "name"], requires = "profile")]
    pub profile_sort: Option<String>,
}

fn parse_steps(s: &str) -> Result<(usize, usize), String> {
    let num = |t: &str| -> Result<usize, String> {
        t.trim().parse::<usize>().map_err(|_| format!("{t:?} is not a step number; write A..B, e.g. 2..6"))
    };
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (num(a)?, num(b.strip_prefix('=').unwrap_or(b))?),
        None => (num(s)?, num(s)?),
    };
    if a == 0 || b < a {
        return Err(format!("{s:?}: steps count from 1 and B must be at least A"));
    }
    Ok((a, b))
}

impl ProfileArgs {
    /// Refuses an output folder that holds a profile already (call it before
    /// anything is written).
    pub fn check(&self) -> anyhow::Result<()> {
        let Some(dir) = &self.profile else { return Ok(()) };
        if !profile::COMPILED_IN {
            anyhow::bail!("--profile: this shiftlm was built without the profiler (cargo feature `profiler`)");
        }
        for f in ["trace.json", "profile.json"] {
            let path = dir.join(f);
            if path.exists() {
                // Not check_new's message: these commands have no --force to offer.
                anyhow::bail!(
                    "{}: already exists; give --profile a new folder, or delete the old profile (nothing was written)",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// Refuses a --profile-steps window that starts after the run's `end` step.
    pub fn check_window(&self, end: usize) -> anyhow::Result<()> {
        match self.profile_steps {
            Some((a, b)) if self.profile.is_some() && a > end => {
                anyhow::bail!("--profile-steps {a}..{b}: the run ends at step {end}")
            }
            _ => Ok(()),
        }
    }

    /// Checks the output folder and arms the profiler for the asked window,
    /// or `default` (steps `first..=last` of the run), refusing a window that
    /// starts after the run's `end` step. No-op without --profile.
    pub fn arm(&self, default: (usize, usize), end: usize) -> anyhow::Result<()> {
        self.check()?;
        if self.profile.is_none() {
            return Ok(());
        }
        self.check_window(end)?;
        let (a, b) = self.profile_steps.unwrap_or(default);
        profile::arm(a, b);
        Ok(())
    }

    /// For generation: checks the output folder and arms the profiler for
    /// the asked tokens, or all of them. No-op without --profile.
    pub fn arm_tokens(&self) -> anyhow::Result<()> {
        self.check()?;
        if self.profile.is_some() {
            let (a, b) = self.profile_steps.unwrap_or((1, usize::MAX));
            profile::arm_tokens(a, b);
        }
        Ok(())
    }

    /// Stops recording and writes DIR/trace.json, DIR/profile.json,
    /// DIR/timeline.png, TensorBoard scalars (`profile/<name>_ms`, self time
    /// per step) in DIR and, for a training run, in its `tb/` folder `tb`;
    /// prints the table. No-op without --profile.
    pub fn finish(&self, tb: Option<&Path>) -> anyhow::Result<Option<Summary>> {
        let Some(dir) = &self.profile else { return Ok(None) };
        let events = profile::finish();
        let sort = match self.profile_sort.as_deref() {
            Some("total") => SortBy::Total,
            Some("calls") => SortBy::Calls,
            Some("name") => SortBy::Name,
            _ => SortBy::SelfTime,
        };
        let summary = profile::summarize(&events, sort);
        let unit = summary.unit;
        if summary.steps == 0 {
            anyhow::bail!(
                "--profile: no {unit} was recorded (the run has fewer than --profile-steps {}..{} asks)",
                self.profile_steps.map_or(0, |s| s.0),
                self.profile_steps.map_or(0, |s| s.1)
            );
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_json(&dir.join("trace.json"), &profile::chrome_trace(&events))?;
        write_json(&dir.join("profile.json"), &serde_json::to_value(&summary)?)?;
        if let Some(t) = profile::timeline(&events, 8) {
            shiftlm::io::write_atomic(&dir.join("timeline.png"), &t.to_png())?;
        }
        let per_step = profile::per_step(&events);
        for d in std::iter::once(dir.as_path()).chain(tb) {
            let mut w = TensorBoardWriter::create(d)?;
            for (step, names) in per_step.iter().filter(|(s, _)| **s > 0) {
                for (name, ms) in names {
                    w.scalar(&format!("profile/{name}_ms"), *step, *ms as f32)?;
                }
            }
            w.flush()?;
        }
        print!("{}", table(&summary));
        eprintln!("profile written to {} (open trace.json in ui.perfetto.dev; timeline.png)", dir.display());
        Ok(Some(summary))
    }
}

fn write_json(path: &Path, v: &serde_json::Value) -> anyhow::Result<()> {
    shiftlm::io::write_atomic(path, serde_json::to_string(v)?.as_bytes())?;
    Ok(())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The summary as a table, phases and ops together, with how much of the
/// steps' time the events account for and what memory they used.
pub fn table(s: &Summary) -> String {
    let unit = s.unit;
    let per = s.step_ms / s.steps.max(1) as f64;
    let mut out = format!(
        "profile: {} {unit}(s), {per:.2} ms/{unit}; events account for {:.1}% of it\n{:<22} {:>5} {:>7} {:>10} {:>10} {:>7} {:>9} {:>10} {:>8}\n",
        s.steps,
        100.0 * s.covered_ms / s.step_ms.max(f64::MIN_POSITIVE),
        "name",
        "kind",
        "calls",
        "total ms",
        "self ms",
        "self %",
        "GFLOP/s",
        "self MB",
        "peak MB"
    );
    for r in &s.rows {
        let kind = match r.kind {
            Kind::Phase => "phase",
            Kind::Op => "op",
        };
        let gflops = r.gflops.map_or_else(|| "-".to_string(), |g| format!("{g:.1}"));
        let alloc = if s.allocations_counted { format!("{:.1}", mb(r.self_alloc_bytes)) } else { "-".into() };
        let peak = r.peak_rss_bytes.map_or_else(|| "-".to_string(), |p| format!("{:.0}", mb(p)));
        out += &format!(
            "{:<22} {:>5} {:>7} {:>10.3} {:>10.3} {:>6.1}% {:>9} {:>10} {:>8}\n",
            r.name, kind, r.calls, r.total_ms, r.self_ms, r.percent, gflops, alloc, peak
        );
    }
    out += &format!(
        "self MB: heap allocated outside nested events, all calls; peak MB: resident memory.\n\
         *.worker: other threads' shares of an op, beside its own thread (so shares can sum past 100%).\n\
         the rest, {:.2} ms/{unit}: time between timed events (the trainer's bookkeeping, metrics, dropping tensors)\n",
        (s.step_ms - s.covered_ms) / s.steps.max(1) as f64
    );
    if s.workers > 0 {
        out += &format!(
            "other threads ({}) spent {:.1}% of the {unit}s' time on shares of matrix products (other ops' parallel parts are not timed)\n",
            s.workers,
            100.0 * s.worker_ms / (s.step_ms * s.workers as f64).max(f64::MIN_POSITIVE)
        );
    }
    if let Some(g) = s.graph_bytes {
        out += &format!("autograd graph at the end of the forward pass: {:.1} MB\n", mb(g));
    }
    if let Some(p) = s.peak_rss_bytes {
        out += &format!("peak resident memory: {:.0} MB\n", mb(p));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_steps;

    #[test]
    fn step_windows() {
        assert_eq!(parse_steps("2..6"), Ok((2, 6)));
        assert_eq!(parse_steps("2..=6"), Ok((2, 6)));
        assert_eq!(parse_steps("4"), Ok((4, 4)));
        assert!(parse_steps("0..3").is_err());
        assert!(parse_steps("5..3").is_err());
        assert!(parse_steps("a..3").is_err());
    }
}
