//! Fused kernels for the training hot path on CUDA, each with its own backward.
//!
//! candle's own fused ops (`rms_norm`, `softmax_last_dim`, `rope`, …) have no backward, so the
//! decoder composes those layers from basic ops; on a GPU every basic op is a kernel that reads
//! and writes a full activation (profile in `bench/README.md`: ~90 % of a QLoRA step was such
//! elementwise kernels). The ops here do the same arithmetic in one pass each, as candle
//! `CustomOp`s whose `bwd` is itself a fused kernel, so gradients keep flowing.
//!
//! Every op has a CPU implementation of the same algorithm (used by the unit tests, which
//! compare forward values and gradients with the composed path) and a CUDA kernel
//! (`kernels/*.cu`, compiled to PTX by `build.rs` under the `cuda` feature). The decoder uses
//! the fused path only on CUDA ([`enabled`]); `medtune verify --device cuda` checks each
//! kernel against the composed path on the GPU.
//!
//! [`configure`] can switch single ops back to the composed path (the CLI's
//! `MEDTUNE_UNFUSED=name,name,…` or `all`), so that a benchmark can show what each one is worth.

mod adamw;
mod add;
mod attn_softmax;
mod check;
mod cross_entropy;
#[cfg(feature = "cuda")]
mod cuda;
mod dropout;
mod frozen_linear;
mod gemm;
mod layout;
mod nf4;
mod rms_norm;
mod rope;
mod swiglu;

pub use adamw::{adamw_step, AdamWScalars};
pub use attn_softmax::attn_softmax;
pub use check::{self_check, Check};
pub use cross_entropy::cross_entropy;
pub use dropout::dropout;
pub use frozen_linear::frozen_linear;
pub use gemm::{addmm, matmul_scaled};
pub use nf4::dequantize_nf4;
pub use rms_norm::rms_norm;
pub use rope::rope;
pub use swiglu::{swiglu, swiglu_packed};

pub(crate) use add::add;
pub(crate) use attn_softmax::attn_softmax_bwd;
pub(crate) use cross_entropy::cross_entropy_bwd;
pub(crate) use layout::contiguous;
pub(crate) use rms_norm::rms_norm_bwd;
pub(crate) use rope::rope_bwd_rows;
pub(crate) use swiglu::swiglu_bwd;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

/// Names of the fused ops, as used by `MEDTUNE_UNFUSED`.
pub const OPS: &[&str] = &[
    "rms_norm",
    "attn_softmax",
    "cross_entropy",
    "swiglu",
    "rope",
    "nf4",
    "frozen_linear",
    "dropout",
    "adamw",
    "layer_backward",
];

/// Process-wide switches of the fused path, set once by the binary with [`configure`] (the
/// `medtune` CLI reads them from `MEDTUNE_UNFUSED` and `MEDTUNE_FUSED_CPU`); the library itself
/// reads no environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FusedSettings {
    /// Ops switched back to the composed path ([`OPS`] names, or `all`), for ablations.
    pub unfused: Vec<String>,
    /// Use the fused ops' CPU implementations on the CPU too (for comparisons).
    pub on_cpu: bool,
    /// Hand-written layer backward: keep the dense (dequantized) weights of the recomputed
    /// forward for the backward products instead of dequantizing them again. One NF4
    /// dequantization per weight and step less, for one layer's dense weights of memory
    /// (Llama-3.1-8B: +0.3 GiB at the peak; measured in `bench/README.md`).
    pub keep_weights: bool,
}

static SETTINGS: std::sync::OnceLock<FusedSettings> = std::sync::OnceLock::new();

/// Fixes the switches for the rest of the process. Unknown op names are an error, and so is a
/// second call (or a call after the first fused op ran with the defaults).
pub fn configure(settings: FusedSettings) -> crate::Result<()> {
    if let Some(bad) = settings
        .unfused
        .iter()
        .find(|s| s.as_str() != "all" && !OPS.contains(&s.as_str()))
    {
        return Err(crate::Error::input(
            "unfused",
            format!(
                "unknown fused op `{bad}` (known: {}, or all)",
                OPS.join(", ")
            ),
        ));
    }
    SETTINGS
        .set(settings)
        .map_err(|_| crate::Error::input("fused settings", "already fixed for this process"))
}

fn settings() -> &'static FusedSettings {
    SETTINGS.get_or_init(FusedSettings::default)
}

/// [`FusedSettings::keep_weights`].
pub fn keep_weights() -> bool {
    settings().keep_weights
}

/// Whether the fused version of `op` is used for tensors on `t`'s device: on CUDA (and on the
/// CPU with [`FusedSettings::on_cpu`]) unless [`FusedSettings::unfused`] names it.
pub fn enabled(op: &str, t: &Tensor) -> bool {
    (t.device().is_cuda() || settings().on_cpu) && !disabled(op)
}

/// The fused ops used for tensors on `device`: on CUDA all of them unless switched off; on the
/// CPU only `frozen_linear` (the others keep the composed path there unless `on_cpu`).
pub fn active(device: &candle_core::Device) -> Vec<&'static str> {
    OPS.iter()
        .copied()
        .filter(|op| device.is_cuda() || settings().on_cpu || *op == "frozen_linear")
        .filter(|op| !disabled(op))
        .collect()
}

/// Whether [`FusedSettings::unfused`] names `op` (or says `all`).
pub(crate) fn disabled(op: &str) -> bool {
    settings().unfused.iter().any(|s| s == op || s == "all")
}

/// A contiguous CPU storage as f32 values (f32 and bf16 only).
fn cpu_f32(s: &CpuStorage, l: &Layout, what: &str) -> Result<Vec<f32>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("fused op: {what} must be contiguous")
    };
    Ok(match s {
        CpuStorage::F32(v) => v[a..b].to_vec(),
        CpuStorage::BF16(v) => v[a..b].iter().map(|x| x.to_f32()).collect(),
        _ => candle_core::bail!(
            "fused op: {what} has dtype {:?}, expected f32 or bf16",
            s.dtype()
        ),
    })
}

/// f32 values stored as `dtype` (rounded to nearest even for bf16).
fn cpu_store(v: Vec<f32>, dtype: DType) -> Result<CpuStorage> {
    Ok(match dtype {
        DType::F32 => CpuStorage::F32(v),
        DType::BF16 => CpuStorage::BF16(v.into_iter().map(half::bf16::from_f32).collect()),
        d => candle_core::bail!("fused op: dtype {d:?}, expected f32 or bf16"),
    })
}

/// `x` rounded through `dtype` (identity for f32): "compute in f32, store in the model dtype".
fn round_to(x: f32, dtype: DType) -> f32 {
    match dtype {
        DType::BF16 => half::bf16::from_f32(x).to_f32(),
        _ => x,
    }
}

/// Checks that `t` is f32 or bf16 and returns it contiguous.
fn prepared(t: &Tensor, what: &str) -> Result<Tensor> {
    match t.dtype() {
        DType::F32 | DType::BF16 => t.contiguous(),
        d => candle_core::bail!("fused op: {what} has dtype {d:?}, expected f32 or bf16"),
    }
}

/// Deterministic pseudo-random values in [−scale, scale) (xorshift), for checks and tests.
pub(crate) fn sample_values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers for comparing a fused op with the composed path on the CPU.
    use candle_core::{Result, Tensor};

    /// Largest |a − b| / max(1, |b|) over all elements.
    pub fn max_rel_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        let a = a
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let b = b
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(a.len(), b.len());
        Ok(a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
            .fold(0.0, f32::max))
    }

    #[test]
    fn self_check_passes_on_the_cpu() {
        // The CPU implementations of the fused ops against the composed formulas, f32 and bf16;
        // the same check runs on the GPU in `medtune verify --device cuda`.
        for dt in [candle_core::DType::F32, candle_core::DType::BF16] {
            let checks = super::self_check(&candle_core::Device::Cpu, dt).unwrap();
            assert!(checks.len() >= 15, "{} checks", checks.len());
            for c in checks {
                assert!(c.rel <= c.tol, "{dt:?} {}: {} > {}", c.what, c.rel, c.tol);
            }
        }
    }

    /// Deterministic pseudo-random values in [−scale, scale).
    pub fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        super::sample_values(n, seed, scale)
    }

    /// A CPU tensor of `dims` with [`values`] in `dtype`.
    pub fn sample(dims: &[usize], seed: u64, dtype: candle_core::DType) -> Result<Tensor> {
        let n = dims.iter().product();
        Tensor::from_vec(values(n, seed, 3.0), dims, &candle_core::Device::Cpu)?.to_dtype(dtype)
    }

    /// Asserts that two tensors hold the same values (compared in f32) and shape.
    pub fn assert_same(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        let f = |t: &Tensor| -> Result<Vec<f32>> {
            t.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1()
        };
        assert_eq!(f(a)?, f(b)?, "{what}");
        Ok(())
    }
}
