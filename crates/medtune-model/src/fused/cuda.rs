//! Launching the PTX kernels of `kernels/*.cu` on candle's CUDA device.

use candle_core::cuda_backend::cudarc::driver::{CudaView, DeviceRepr, LaunchConfig};
use candle_core::cuda_backend::{CudaDType, CudaStorage};
use candle_core::{Layout, Result};

/// PTX of one kernel file, by file stem.
macro_rules! ptx {
    ($stem:literal) => {
        include_str!(concat!(env!("OUT_DIR"), "/", $stem, ".ptx"))
    };
}

pub const RMS_NORM: (&str, &str) = ("medtune_rms_norm", ptx!("rms_norm"));
pub const ATTN_SOFTMAX: (&str, &str) = ("medtune_attn_softmax", ptx!("attn_softmax"));
pub const CROSS_ENTROPY: (&str, &str) = ("medtune_cross_entropy", ptx!("cross_entropy"));
pub const SWIGLU: (&str, &str) = ("medtune_swiglu", ptx!("swiglu"));
pub const ROPE: (&str, &str) = ("medtune_rope", ptx!("rope"));
pub const NF4: (&str, &str) = ("medtune_nf4", ptx!("nf4"));
pub const DROPOUT: (&str, &str) = ("medtune_dropout", ptx!("dropout"));
pub const ADAMW: (&str, &str) = ("medtune_adamw", ptx!("adamw"));
pub const LAYOUT: (&str, &str) = ("medtune_layout", ptx!("layout"));
pub const ADD: (&str, &str) = ("medtune_add", ptx!("add"));

/// Launches kernel `$name` of `$module` (a `(module name, PTX)` pair, loaded once per device)
/// on `$dev`'s stream with the given argument references (device views, slices, scalars).
macro_rules! launch {
    ($dev:expr, $module:expr, $name:expr, $cfg:expr; $($arg:expr),* $(,)?) => {{
        use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
        let f = $dev.get_or_load_custom_func($name, $module.0, $module.1)?;
        let mut b = f.builder();
        $( b.arg($arg); )*
        // SAFETY: the argument list matches the kernel's signature in kernels/*.cu, and every
        // buffer holds the element counts the kernel reads or writes (checked by the caller).
        // medtune's unsafe code is CUDA-only: here, `alloc_uninit`, `gemm.rs` and the bench's
        // memory-pool query (the workspace denies it elsewhere).
        #[allow(unsafe_code)]
        let launched = unsafe { b.launch($cfg) };
        $crate::fused::cuda::w(launched)?;
    }};
}
pub(crate) use launch;

/// Evaluates `$body` with `$t` naming the element type of `$dtype`: `f32` or `half::bf16`
/// (any other dtype is an error). The one dtype dispatch of every fused op's CUDA side.
macro_rules! with_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            candle_core::DType::F32 => {
                type $t = f32;
                $body
            }
            candle_core::DType::BF16 => {
                type $t = half::bf16;
                $body
            }
            d => candle_core::bail!("fused op: dtype {d:?}, expected f32 or bf16"),
        }
    };
}
pub(crate) use with_dtype;

/// A device buffer of `n` elements without the zero fill of `alloc_zeros`, for outputs that
/// the kernel writes completely (its contents are unspecified until then).
pub fn alloc_uninit<T: DeviceRepr>(
    dev: &candle_core::CudaDevice,
    n: usize,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaSlice<T>> {
    // SAFETY: the caller launches a kernel that writes all n elements before anything reads
    // them (stream order); until then the buffer is only passed as a kernel output.
    #[allow(unsafe_code)]
    let s = unsafe { dev.alloc::<T>(n) };
    s
}

/// A driver error as a candle error.
pub fn w<T, E: std::error::Error + Send + Sync + 'static>(
    r: std::result::Result<T, E>,
) -> Result<T> {
    r.map_err(|e| candle_core::Error::Cuda(Box::new(e)))
}

/// The contiguous device view of a storage under `layout`.
pub fn view<'a, T: CudaDType + DeviceRepr>(
    s: &'a CudaStorage,
    l: &Layout,
    what: &str,
) -> Result<CudaView<'a, T>> {
    let Some((a, b)) = l.contiguous_offsets() else {
        candle_core::bail!("fused op: {what} must be contiguous")
    };
    Ok(s.as_cuda_slice::<T>()?.slice(a..b))
}

/// Kernel-name suffix of a dtype.
pub fn suffix(dtype: candle_core::DType) -> Result<&'static str> {
    match dtype {
        candle_core::DType::F32 => Ok("f32"),
        candle_core::DType::BF16 => Ok("bf16"),
        d => candle_core::bail!("fused op: dtype {d:?}, expected f32 or bf16"),
    }
}

/// One block of `threads` per row.
pub fn rows(rows: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}
