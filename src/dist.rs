//! Data-parallel training: which world a process belongs to, and the
//! collectives a data-parallel step needs, over MPI (the `mpi` feature) or
//! none at all ([`Solo`]).
//!
//! Launchers say the world's shape in the environment: Open MPI's `mpirun`
//! (`OMPI_COMM_WORLD_SIZE`, `…_RANK`, `…_LOCAL_RANK`, `…_LOCAL_SIZE`),
//! MPICH and Intel MPI through PMI (`PMI_SIZE`, `PMI_RANK`), and Slurm's
//! `srun` (`SLURM_STEP_NUM_TASKS`, `SLURM_PROCID`, `SLURM_LOCALID`,
//! `SLURM_STEP_TASKS_PER_NODE`: the job step's, which only `srun` sets; a
//! batch script's own `SLURM_NTASKS` describes the allocation, not this
//! process, so a plain command in the script stays one process). [`WorldEnv::detect`] reads them before MPI is
//! started, so that the binary can refuse a multi-process launch it was not
//! built for, and give each rank its share of the cores.

use crate::error::{Error, Result};

/// The world a launcher started this process in, as its environment says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorldEnv {
    /// Processes in the job.
    pub size: usize,
    /// This process's rank, 0-based.
    pub rank: usize,
    /// Processes of the job on this machine (1 where the launcher does not say).
    pub local_size: usize,
    /// This process's rank among them.
    pub local_rank: usize,
    /// The launcher whose variables said so: `mpirun`, `pmi` or `slurm`.
    pub launcher: &'static str,
}

impl WorldEnv {
    /// The world of this process's environment; `None` when no launcher set it.
    pub fn detect() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// [`WorldEnv::detect`] over any variable lookup (a test's map).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let num = |key: &str| -> Result<Option<usize>> {
            match get(key) {
                None => Ok(None),
                // Slurm writes e.g. `2(x3)` for tasks per node on several nodes: the first count.
                Some(v) => {
                    let digits: String = v.trim().chars().take_while(char::is_ascii_digit).collect();
                    digits
                        .parse()
                        .map(Some)
                        .map_err(|_| Error::Distributed(format!("the launcher's variable {key}={v:?} is not a count")))
                }
            }
        };
        let launchers: [(&str, [&str; 4]); 3] = [
            (
                "mpirun",
                [
                    "OMPI_COMM_WORLD_SIZE",
                    "OMPI_COMM_WORLD_RANK",
                    "OMPI_COMM_WORLD_LOCAL_SIZE",
                    "OMPI_COMM_WORLD_LOCAL_RANK",
                ],
            ),
            ("pmi", ["PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS", "MPI_LOCALRANKID"]),
            ("slurm", ["SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "SLURM_STEP_TASKS_PER_NODE", "SLURM_LOCALID"]),
        ];
        for (launcher, [size, rank, local_size, local_rank]) in launchers {
            let (Some(n), Some(r)) = (num(size)?, num(rank)?) else {
                continue;
            };
            if n == 0 || r >= n {
                return Err(Error::Distributed(format!("{launcher} says rank {r} of {n} processes")));
            }
            let local_size = num(local_size)?.unwrap_or(1).clamp(1, n);
            let local_rank = num(local_rank)?.unwrap_or(0).min(local_size - 1);
            return Ok(Some(Self { size: n, rank: r, local_size, local_rank, launcher }));
        }
        Ok(None)
    }

    /// Worker threads for this rank when none were asked for: the machine's
    /// `cores` shared among the ranks on it, at least one each.
    pub fn threads(&self, cores: usize) -> usize {
        (cores / self.local_size.max(1)).max(1)
    }
}

/// The collectives of a data-parallel step, over `f32` (gradients, weights)
/// and `f64` (losses and counts).
pub trait Comm {
    /// This process's rank.
    fn rank(&self) -> usize;
    /// Processes in the world.
    fn size(&self) -> usize;
    /// Waits until every rank gets here.
    fn barrier(&self) -> Result<()>;
    /// Sums `buf` over every rank, in place, in whatever order the library
    /// chooses (possibly differing from a sequential sum in the last bit).
    fn allreduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// Sums `buf` over every rank, in place.
    fn allreduce_sum_f64(&self, buf: &mut [f64]) -> Result<()>;
    /// Rank 0's `buf` to every rank.
    fn broadcast(&self, buf: &mut [f32]) -> Result<()>;
    /// Block j of `send` (size × block) to rank j; block j of `recv` from rank j.
    fn alltoall(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// Every rank's `send` into `recv`, rank order.
    fn allgather(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// Ends every rank of the job with `code`, as a failed rank must: the
    /// others would otherwise wait for it forever.
    fn abort(&self, code: i32) -> !;
}

/// One process, no communication: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Comm for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
    fn allreduce_sum(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn allreduce_sum_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn alltoall(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }
    fn allgather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        recv.copy_from_slice(send);
        Ok(())
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// How gradients are summed over the ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduce {
    /// The MPI library's allreduce: fastest; its order of summation is its
    /// own, so results can differ from one process in the last bit.
    #[default]
    Native,
    /// [`sum_in_rank_order`]: bit-identical to one process summing the
    /// ranks' gradients one after another, whatever the world size.
    Deterministic,
}

/// Sums `buf` over every rank the [`Reduce`] way.
pub fn sum(comm: &dyn Comm, buf: &mut [f32], how: Reduce) -> Result<()> {
    match how {
        _ if comm.size() == 1 => Ok(()),
        Reduce::Native => comm.allreduce_sum(buf),
        Reduce::Deterministic => sum_in_rank_order(comm, buf),
    }
}

/// Sums `buf` over the ranks as ((r0 + r1) + r2) + …, element by element:
/// an alltoall gives rank j every rank's block j, which it sums in rank
/// order, and an allgather returns the blocks to everyone. The same bits as
/// one process accumulating the ranks' values in order, for any world size,
/// at the price of two collectives instead of one.
pub fn sum_in_rank_order(comm: &dyn Comm, buf: &mut [f32]) -> Result<()> {
    let (n, len) = (comm.size(), buf.len());
    let block = len.div_ceil(n).max(1);
    let mut send = vec![0.0f32; block * n];
    send[..len].copy_from_slice(buf);
    let mut recv = vec![0.0f32; block * n];
    comm.alltoall(&send, &mut recv)?;
    let mut mine = recv[..block].to_vec();
    for from in recv.chunks_exact(block).skip(1) {
        mine.iter_mut().zip(from).for_each(|(a, b)| *a += b);
    }
    comm.allgather(&mine, &mut send)?;
    buf.copy_from_slice(&send[..len]);
    Ok(())
}

/// Open MPI (or any MPI) through the `ferrompi` binding.
///
/// Chosen over rsmpi (`mpi` 0.8) by measurement (BENCHMARKS.md, "Data-parallel
/// training over MPI"): both call the same MPI functions at the same speed,
/// but ferrompi builds in 8 s with a C compiler alone, rsmpi in 36 s with
/// libclang (bindgen) and libffi; and ferrompi has `MPI_IN_PLACE`.
#[cfg(feature = "mpi")]
pub mod mpi {
    use super::{Comm, Error, Result};

    /// Up to this many floats, one blocking in-place allreduce: Open MPI
    /// 4.1's fastest below 16 MB (1M floats at np = 2: 0.5-0.6 ms, against
    /// 1.0 ms nonblocking).
    const SMALL: usize = 1 << 22;
    /// Above it, out-of-place nonblocking allreduces of this many floats,
    /// all in flight at once: 16M floats in 22 ms against 35 ms blocking
    /// (in place, the nonblocking path takes 57-73 ms).
    const BUCKET: usize = 1 << 20;

    /// An MPI world; MPI is finalised when it is dropped.
    pub struct Mpi {
        // Declared first, so dropped before `_mpi` finalises MPI.
        world: ferrompi::Communicator,
        _mpi: ferrompi::Mpi,
    }

    fn err(what: &str) -> impl Fn(ferrompi::Error) -> Error + '_ {
        move |e| Error::Distributed(format!("MPI {what}: {e}"))
    }

    impl Mpi {
        /// Starts MPI (as a singleton when no launcher started this process).
        pub fn init() -> Result<Self> {
            let mpi = ferrompi::Mpi::init().map_err(err("init"))?;
            Ok(Self { world: mpi.world(), _mpi: mpi })
        }
    }

    impl Comm for Mpi {
        fn rank(&self) -> usize {
            self.world.rank() as usize
        }
        fn size(&self) -> usize {
            self.world.size() as usize
        }
        fn barrier(&self) -> Result<()> {
            self.world.barrier().map_err(err("barrier"))
        }
        fn allreduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            let world = &self.world;
            if buf.len() <= SMALL {
                return world.allreduce_inplace(buf, ferrompi::ReduceOp::Sum).map_err(err("allreduce"));
            }
            let send = buf.to_vec();
            ferrompi::scope(|s| {
                let mut requests = Vec::new();
                for (from, to) in send.chunks(BUCKET).zip(buf.chunks_mut(BUCKET)) {
                    requests.push(world.iallreduce(s, from, to, ferrompi::ReduceOp::Sum)?);
                }
                requests.into_iter().try_for_each(|r| r.wait().map(drop))
            })
            .map_err(err("allreduce"))
        }
        fn allreduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
            self.world.allreduce_inplace(buf, ferrompi::ReduceOp::Sum).map_err(err("allreduce"))
        }
        fn broadcast(&self, buf: &mut [f32]) -> Result<()> {
            self.world.broadcast(buf, 0).map_err(err("broadcast"))
        }
        fn alltoall(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
            self.world.alltoall(send, recv).map_err(err("alltoall"))
        }
        fn allgather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
            self.world.allgather(send, recv).map_err(err("allgather"))
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn the_world_comes_from_each_launchers_variables() {
        assert_eq!(WorldEnv::from_vars(env(&[])).unwrap(), None);
        let w = WorldEnv::from_vars(env(&[
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((w.size, w.rank, w.local_size, w.local_rank, w.launcher), (4, 3, 2, 1, "mpirun"));
        assert_eq!((w.threads(16), w.threads(1)), (8, 1));
        let w = WorldEnv::from_vars(env(&[("PMI_SIZE", "2"), ("PMI_RANK", "0")])).unwrap().unwrap();
        assert_eq!((w.size, w.rank, w.local_size, w.launcher), (2, 0, 1, "pmi"));
        let slurm = [("SLURM_STEP_NUM_TASKS", "6"), ("SLURM_PROCID", "5"), ("SLURM_STEP_TASKS_PER_NODE", "3(x2)")];
        let w = WorldEnv::from_vars(env(&slurm)).unwrap().unwrap();
        assert_eq!((w.size, w.rank, w.local_size, w.launcher), (6, 5, 3, "slurm"));
        // A batch script's allocation (no srun step) is not a world: one process.
        assert_eq!(WorldEnv::from_vars(env(&[("SLURM_NTASKS", "4"), ("SLURM_PROCID", "0")])).unwrap(), None);
        // Nonsense is an error that names the variable, not a silent single process.
        let e = WorldEnv::from_vars(env(&[("PMI_SIZE", "two"), ("PMI_RANK", "0")])).unwrap_err().to_string();
        assert!(e.contains("PMI_SIZE"), "{e}");
        assert!(WorldEnv::from_vars(env(&[("SLURM_STEP_NUM_TASKS", "2"), ("SLURM_PROCID", "2")])).is_err());
    }

    #[test]
    fn one_process_reduces_to_itself() {
        let mut v = vec![1.0, 2.0, 3.0];
        sum(&Solo, &mut v, Reduce::Deterministic).unwrap();
        sum_in_rank_order(&Solo, &mut v).unwrap();
        assert_eq!(v, vec![1.0, 2.0, 3.0]);
    }
}
