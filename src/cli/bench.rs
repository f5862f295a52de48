//! `shiftlm bench`

use shiftlm::bench;

pub const LONG_ABOUT: &str = "Time training steps of named model configurations.

Each step is forward + loss + backward + clipping + AdamW on random tokens.
Reports the median ms/step after a warmup, tokens/s, the achieved GFLOP/s of
the matrix products, and that as a share of this machine's matrix-product
peak (measured first with a 1024×1024 product). Compare with PyTorch on the
same machine: tools/bench_torch.py runs the same configurations.

With --generate N it times generation instead: KV-cached sampling of N new
tokens (at most the context less one) from a one-token prompt, batch 1,
with the freshly initialised model; --save DIR first writes that model as a
folder that transformers opens, for tools/bench_generate_torch.py.

Examples:
  shiftlm bench --list
  shiftlm bench --config baby-gpt --threads 2 --steps 30 --json
  shiftlm bench --config gpt-6x384 --precision bf16 --steps 10
  shiftlm bench                                  (every configuration)
  shiftlm bench --config gpt2-30m --generate 127 --save /tmp/gpt2-30m --json
  shiftlm bench --config baby-gpt --profile prof --profile-sort total";

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Configuration to run (repeatable; default: all). See --list.
    #[arg(long, value_name = "NAME")]
    pub config: Vec<String>,
    /// List the configurations and exit.
    #[arg(long)]
    pub list: bool,
    /// Timed steps per configuration.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub warmup: usize,
    /// Time generation of N new tokens instead of training (language models).
    #[arg(long, value_name = "N")]
    pub generate: Option<usize>,
    /// With --generate: write the model to DIR first (a transformers folder).
    #[arg(long, value_name = "DIR", requires = "generate")]
    pub save: Option<std::path::PathBuf>,
    /// Matrix products in f32 (the default) or bf16 (as `train --precision`; CPUs with
    /// AVX512_BF16). The peak is then measured in bf16 too, so "of peak" compares with
    /// the bf16 peak. The JSON records it under cpu.precision.
    #[arg(long, value_name = "P", value_parser = ["f32", "bf16"], default_value = "f32")]
    pub precision: String,
    /// End with one JSON line (the last configuration's figures, or all of them in "results").
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub profiling: super::profiling::ProfileArgs,
}

pub fn run(a: BenchArgs, threads: usize) -> anyhow::Result<()> {
    if a.list {
        for c in bench::configs() {
            println!("{:<12} {}", c.name, c.about);
        }
        return Ok(());
    }
    let configs = if a.config.is_empty() {
        bench::configs()
    } else {
        a.config.iter().map(|n| bench::config(n)).collect::<shiftlm::Result<Vec<_>>>()?
    };
    if a.steps == 0 {
        anyhow::bail!("--steps must be at least 1");
    }
    shiftlm::ops::cpu::set_precision(a.precision.parse()?)?;
    if let Some(n) = a.generate {
        if a.profiling.profile.is_some() {
            anyhow::bail!("--profile times training steps; drop --generate");
        }
        return run_generate(&a, &configs, n, threads);
    }
    if a.profiling.profile.is_some() && configs.len() != 1 {
        anyhow::bail!("--profile: name one configuration with --config");
    }
    // By default the first five timed steps.
    a.profiling.arm((a.warmup + 1, a.warmup + a.steps.min(5)), a.warmup + a.steps)?;
    let peak = bench::matmul_peak_gflops(1024)?;
    let cpu = shiftlm::ops::cpu::info();
    eprintln!(
        "CPU: {} [{}]; shiftlm's kernels: {}, {} products",
        cpu.model,
        cpu.flags.join(" "),
        cpu.isa,
        cpu.precision
    );
    eprintln!("matrix-product peak: {peak:.1} GFLOP/s on {threads} thread(s)");
    println!(
        "{:<12} {:>10} {:>12} {:>9} {:>8} {:>10}",
        "config", "ms/step", "tokens/s", "GFLOP/s", "of peak", "params"
    );
    let mut reports = Vec::new();
    for c in &configs {
        let r = bench::run(c, a.steps, a.warmup, threads, peak)?;
        println!(
            "{:<12} {:>10.1} {:>12.0} {:>9.1} {:>7.1}% {:>10}",
            r.config,
            r.ms_per_step,
            r.tokens_per_s,
            r.gflops,
            100.0 * r.peak_fraction,
            r.params
        );
        reports.push(r);
    }
    a.profiling.finish(None)?;
    if a.json {
        let mut v = serde_json::to_value(reports.last().expect("at least one configuration"))?;
        if reports.len() > 1 {
            v["results"] = serde_json::to_value(&reports)?;
        }
        println!("{v}");
    }
    Ok(())
}

fn run_generate(a: &BenchArgs, configs: &[bench::BenchConfig], n: usize, threads: usize) -> anyhow::Result<()> {
    if a.save.is_some() && configs.len() != 1 {
        anyhow::bail!("--save needs exactly one --config");
    }
    println!("{:<12} {:>10} {:>12} {:>10}", "config", "new tokens", "ms/token", "tokens/s");
    let mut reports = Vec::new();
    for c in configs.iter().filter(|c| c.model.is_causal()) {
        let r = bench::generate(c, n, a.steps.min(10), threads, a.save.as_deref())?;
        println!("{:<12} {:>10} {:>12.3} {:>10.1}", r.config, r.new_tokens, r.ms_per_token, r.tokens_per_s);
        reports.push(r);
    }
    let Some(last) = reports.last() else { anyhow::bail!("no language-model configuration chosen") };
    if a.json {
        let mut v = serde_json::to_value(last)?;
        if reports.len() > 1 {
            v["results"] = serde_json::to_value(&reports)?;
        }
        println!("{v}");
    }
    Ok(())
}
