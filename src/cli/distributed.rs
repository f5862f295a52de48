//! `--distributed`: data-parallel training over MPI (`mpirun -np N shiftlm
//! train …`, or Slurm's `srun`), with the world read from the launcher's
//! environment.

use shiftlm::dist::{Comm, Reduce, WorldEnv};
use std::rc::Rc;

/// How `train` runs across processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Mode {
    /// MPI when a launcher started more than one process, else one process.
    #[default]
    Auto,
    /// Always through MPI (a lone process is a world of one).
    Mpi,
    /// One independent process, whatever the environment says.
    Off,
}

/// The flags of a data-parallel run.
#[derive(Debug, Clone, clap::Args)]
pub struct DistArgs {
    /// Data-parallel training over MPI: auto (when mpirun, srun or a PMI launcher started
    /// more than one process), mpi, or off. Each rank takes its slice of every global
    /// batch (batch size × grad accum × ranks); rank 0 writes checkpoints, metrics and
    /// the report. Needs a binary built with `--features mpi`.
    #[arg(long, value_enum, default_value_t = Mode::Auto, help_heading = "Distributed")]
    pub distributed: Mode,
    /// Sum gradients in rank order (an alltoall, the sum, an allgather) instead of MPI's
    /// allreduce: N ranks with --grad-accum 1 then give the same bits as one process with
    /// --grad-accum N, at the cost of a second collective. (With --grad-accum A > 1 each
    /// rank first sums its own A micro-batches, so the grouping, and the last bits, differ.)
    #[arg(long, help_heading = "Distributed")]
    pub deterministic_reduce: bool,
}

/// The world this process trains in, when it is one rank of several (or
/// `--distributed mpi`); `None` for an ordinary single process.
pub fn start(a: &DistArgs) -> anyhow::Result<Option<(Rc<dyn Comm>, Reduce)>> {
    let env = WorldEnv::detect()?;
    let want = match a.distributed {
        Mode::Off => false,
        Mode::Mpi => true,
        Mode::Auto => env.is_some_and(|w| w.size > 1),
    };
    if !want {
        return Ok(None);
    }
    let how = if a.deterministic_reduce { Reduce::Deterministic } else { Reduce::Native };
    let comm = init(env)?;
    if let Some(w) = env {
        anyhow::ensure!(
            comm.size() == w.size && comm.rank() == w.rank,
            "MPI says rank {} of {}, the {} environment rank {} of {}",
            comm.rank(),
            comm.size(),
            w.launcher,
            w.rank,
            w.size
        );
    }
    Ok(Some((comm, how)))
}

#[cfg(feature = "mpi")]
fn init(_env: Option<WorldEnv>) -> anyhow::Result<Rc<dyn Comm>> {
    use anyhow::Context as _;
    let mpi = shiftlm::dist::mpi::Mpi::init().context("starting MPI")?;
    Ok(Rc::new(mpi))
}

#[cfg(not(feature = "mpi"))]
fn init(env: Option<WorldEnv>) -> anyhow::Result<Rc<dyn Comm>> {
    let who = match env {
        Some(w) => format!("{} started {} processes, but ", w.launcher, w.size),
        None => String::new(),
    };
    anyhow::bail!(
        "{who}this shiftlm was built without MPI, so each process would train alone and race the others to write the same checkpoints. Build it with `cargo build --release --features mpi` (Debian packages: openmpi-bin libopenmpi-dev), or pass --distributed off to run independent processes"
    )
}
