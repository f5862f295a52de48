//! Which vector instructions shiftlm's own kernels use, the switch that
//! turns AVX-512 off, and what a benchmark records about the CPU.
//!
//! The x86-64 build targets AVX2 with FMA; the matrix product ([`super::sgemm`])
//! and the recurrent cells are also compiled for AVX-512F and chosen at run
//! time. `SHIFTLM_ISA=avx2` keeps them on their AVX2 paths on any CPU, so
//! that an AVX-512 machine can measure what an AVX2-only laptop gets (as
//! PyTorch's `ATEN_CPU_CAPABILITY=avx2` does). candle's own matrix products
//! go through the `gemm` crate, built without its AVX-512 (`x86-v4`)
//! feature, so they are AVX2 either way.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The environment variable that limits the instruction set: `avx2`, or
/// `native` (the default: the best the CPU has).
pub const ISA_VAR: &str = "SHIFTLM_ISA";

/// The instruction sets the kernels can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX2 with FMA, even where AVX-512 is present.
    Avx2,
    /// Whatever the CPU has.
    Native,
}

/// The limit `SHIFTLM_ISA` sets; an error naming the variable for any
/// other value (checked by the binary before any kernel runs).
pub fn isa_from_env() -> Result<Isa> {
    match std::env::var(ISA_VAR).ok().as_deref().map(str::trim) {
        None | Some("") | Some("native") => Ok(Isa::Native),
        Some("avx2") => Ok(Isa::Avx2),
        Some(other) => {
            Err(Error::setting(format!("{ISA_VAR}={other:?}: expected avx2 (AVX-512 off) or native (the default)")))
        }
    }
}

/// Whether the AVX-512 kernels run: the CPU has AVX-512F and `SHIFTLM_ISA`
/// does not say `avx2` (an unreadable value counts as native; the binary
/// refuses it first). Read once.
pub fn avx512() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| has("avx512f") && isa_from_env().unwrap_or(Isa::Native) == Isa::Native)
}

/// The precision of the matrix products' operands (`--precision`). Weights,
/// activations, gradients and optimizer state stay f32 either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// f32 operands (the default).
    #[default]
    F32,
    /// Operands rounded to bf16 as the products pack them, accumulated in
    /// f32 (AVX512_BF16's `vdpbf16ps`): mixed precision with f32 master
    /// weights, as PyTorch's CPU autocast, but with f32 outputs.
    Bf16,
}

impl Precision {
    /// The flag's spelling: `f32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(Error::setting(format!("precision {other:?}: expected f32 or bf16"))),
        }
    }
}

static BF16: AtomicBool = AtomicBool::new(false);

/// Whether bf16 products can run here: AVX512_BF16 (`avx512_bf16` in
/// /proc/cpuinfo), with AVX-512 not turned off by `SHIFTLM_ISA=avx2`.
pub fn bf16_supported() -> bool {
    avx512() && has("avx512_bf16")
}

/// Why bf16 products cannot run here, or `None` where they can
/// ([`bf16_supported`]).
pub fn bf16_unavailable() -> Option<String> {
    if bf16_supported() {
        None
    } else if has("avx512_bf16") {
        Some(format!("{ISA_VAR}=avx2 turns AVX-512 off, and the bf16 kernel needs it"))
    } else {
        Some(format!("this CPU ({}) lacks AVX512_BF16 (`avx512_bf16` in /proc/cpuinfo)", info().model))
    }
}

/// Sets the precision of every matrix product in this process from now on
/// (a training run sets its config's). bf16 is refused where it cannot run,
/// naming what is missing ([`bf16_unavailable`]): there is no emulated
/// path, since rounding in software would be slower than f32.
pub fn set_precision(p: Precision) -> Result<()> {
    if let (Precision::Bf16, Some(why)) = (p, bf16_unavailable()) {
        return Err(Error::setting(format!("--precision bf16: {why}; use f32 (the default)")));
    }
    BF16.store(p == Precision::Bf16, Ordering::Relaxed);
    Ok(())
}

/// The precision set by [`set_precision`] (f32 until then).
pub fn precision() -> Precision {
    if bf16_products() {
        Precision::Bf16
    } else {
        Precision::F32
    }
}

/// Whether the matrix products take bf16 operands now.
#[inline]
pub(crate) fn bf16_products() -> bool {
    BF16.load(Ordering::Relaxed)
}

/// Whether the CPU has feature `name` (among those [`FLAGS`] lists).
fn has(name: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match name {
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
            "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
            "avx512_bf16" => std::arch::is_x86_feature_detected!("avx512bf16"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        false
    }
}

/// The features a benchmark row records, in /proc/cpuinfo's spelling.
pub const FLAGS: [&str; 6] = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16"];

/// What a benchmark records about the machine it ran on.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CpuInfo {
    /// The model name, with family and model numbers where /proc/cpuinfo
    /// gives them (`AMD EPYC (family 26, model 2)`).
    pub model: String,
    /// Which of [`FLAGS`] the CPU has.
    pub flags: Vec<&'static str>,
    /// The instruction set shiftlm's kernels use here: `avx512` or `avx2`.
    pub isa: &'static str,
    /// The matrix products' precision: `f32` or `bf16` ([`set_precision`]).
    pub precision: &'static str,
}

/// This machine's [`CpuInfo`].
pub fn info() -> CpuInfo {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let name = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let model = match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!("{name} (family {f}, model {m})"),
        _ => name,
    };
    let flags = FLAGS.iter().copied().filter(|f| has(f)).collect();
    CpuInfo { model, flags, isa: if avx512() { "avx512" } else { "avx2" }, precision: precision().name() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_is_described() {
        let i = info();
        assert!(!i.model.is_empty());
        // The kernels' choice follows the CPU (this test runs without SHIFTLM_ISA).
        if std::env::var_os(ISA_VAR).is_none() {
            assert_eq!(i.isa == "avx512", i.flags.contains(&"avx512f"));
        }
    }
}
