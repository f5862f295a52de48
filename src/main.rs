//! The `shiftlm` binary: a thin layer of argument parsing, progress bars and
//! printing over the library. Errors print their whole cause chain and exit
//! with status 2.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    // Read by candle's matrix products and by rayon when they first start.
    // Without it candle asks `num_cpus`, which can report the host's cores
    // rather than this process's share and oversubscribe (3.6× slower
    // measured on a 2-core container).
    let threads = args.threads.or_else(|| {
        let from_env = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
        from_env.filter(|&n| n > 0).or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
    });
    if let Some(n) = threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SHIFTLM_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = cli::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
