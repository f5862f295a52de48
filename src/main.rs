//! The `shiftlm` binary: a thin layer of argument parsing, progress bars and
//! printing over the library. Errors print their whole cause chain and exit
//! with status 2.

use std::alloc::{GlobalAlloc, Layout};

/// mimalloc, with every allocation and free reported to the profiler, which
/// counts them only while it records (`--profile`); otherwise a report is
/// one relaxed atomic load.
struct Counting(mimalloc::MiMalloc);

// SAFETY: every call forwards to mimalloc unchanged; the reports only read
// and add to atomics, and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        shiftlm::profile::on_alloc(layout.size());
        self.0.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        shiftlm::profile::on_alloc(layout.size());
        self.0.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shiftlm::profile::on_free(layout.size());
        self.0.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A move to a new block: the new size allocated, the old one freed.
        shiftlm::profile::on_alloc(new_size);
        shiftlm::profile::on_free(layout.size());
        self.0.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting(mimalloc::MiMalloc);

mod cli;

use clap::Parser;

/// mimalloc's `purge_delay` option (its index in v2's `mi_option_e`).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // A training step frees and re-allocates the same buffers every step. By
    // default mimalloc hands freed memory back to the OS after 10 ms, and
    // the kernel then zeroes every page again on the next touch (4,112 page
    // faults and ~10% of a baby-GPT step, measured). Keep it instead: the
    // peak is resident anyway.
    // SAFETY: sets a global option; called once, before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    shiftlm::profile::count_allocations();
    let args = cli::Cli::parse();
    if let Err(e) = shiftlm::ops::cpu::isa_from_env() {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    // Read by candle's matrix products and by rayon when they first start.
    // Without it candle asks `num_cpus`, which can report the host's cores
    // rather than this process's share and oversubscribe (3.6× slower
    // measured on a 2-core container).
    // Ranks of a data-parallel job on one machine share its cores.
    let world = shiftlm::dist::WorldEnv::detect().ok().flatten();
    let threads = args.threads.or_else(|| {
        let from_env = std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok());
        from_env.filter(|&n| n > 0).or_else(|| {
            let cores = std::thread::available_parallelism().ok().map(|n| n.get())?;
            Some(world.map_or(cores, |w| w.threads(cores)))
        })
    });
    if let Some(n) = threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    // candle's element-wise thread pool spins 25,000 times before parking;
    // beside rayon's workers that steals a core from the thread doing the
    // work (baby GPT on 2 threads: 57-64 ms/step spinning, 38-42 at 1,000).
    if std::env::var_os("CANDLE_BARRIER_POOL_SPIN_LIMIT").is_none() {
        std::env::set_var("CANDLE_BARRIER_POOL_SPIN_LIMIT", "1000");
    }
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("SHIFTLM_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal()) // colour codes only for a person, not a log file
        .init();
    // Run everything on a worker of rayon's pool, so that the parallel parts
    // of each op (ours and gemm's) start on the calling thread instead of
    // being handed across threads and waited for.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .stack_size(64 << 20) // candle's backward pass walks the graph recursively
        .build()
        .expect("rayon thread pool");
    cli::progress::show_phases();
    if let Err(e) = pool.install(|| cli::run(args)) {
        eprintln!("error: {}", cli::report(&e));
        std::process::exit(2);
    }
}
