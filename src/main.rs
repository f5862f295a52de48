//! The `shiftlm` binary: a thin layer of argument parsing, progress bars and
//! printing over the library. Errors print their whole cause chain and exit
//! with status 2.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    if let Some(n) = args.threads {
        // Read by candle's matrix products and rayon when they first start.
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
