//! Contiguous copies of strided 4-D tensors in wide units, for the head transposes around
//! attention (`[B, T, H, D] ↔ [B, H, T, D]`).
//!
//! candle's strided copy moves one element per thread and recomputes the index from every
//! dimension; on an H200 it ran at about 0.3 TB/s and was 5–7 % of a QLoRA step. The kernel
//! here moves up to 16 bytes per thread (8 bf16 values of the unit-stride last dimension) and
//! is used by the hand-written layer path, which builds no autograd graph ([`contiguous`]
//! refuses tensors that carry one).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// `x` as a contiguous tensor (the same values as `x.contiguous()`). A strided 4-D f32/bf16
/// tensor on CUDA whose last dimension has unit stride is copied by the wide-unit kernel;
/// anything else goes through candle. No gradient flows through the kernel path: `x` must not
/// carry an autograd graph there.
pub(crate) fn contiguous(x: &Tensor) -> Result<Tensor> {
    if x.is_contiguous()
        || !x.device().is_cuda()
        || x.rank() != 4
        || x.stride()[3] != 1
        || !matches!(
            x.dtype(),
            candle_core::DType::F32 | candle_core::DType::BF16
        )
        || x.elem_count() >= u32::MAX as usize
    {
        return x.contiguous();
    }
    if x.track_op() {
        candle_core::bail!("fused contiguous: the input carries an autograd graph");
    }
    x.apply_op1_no_bwd(&Copy4)
}

/// The copy; `cpu_fwd` is the same gather, for the unit tests of the geometry.
struct Copy4;

/// Source offset (relative to the layout start) of each element of a 4-D layout, in order.
fn gather_offsets(l: &Layout) -> Result<Vec<usize>> {
    let (&[n0, n1, n2, n3], &[s0, s1, s2, s3]) = (l.dims(), l.stride()) else {
        candle_core::bail!("fused contiguous: {:?} is not 4-D", l.dims());
    };
    let mut out = Vec::with_capacity(n0 * n1 * n2 * n3);
    for a in 0..n0 {
        for b in 0..n1 {
            for c in 0..n2 {
                for e in 0..n3 {
                    out.push(a * s0 + b * s1 + c * s2 + e * s3);
                }
            }
        }
    }
    Ok(out)
}

impl CustomOp1 for Copy4 {
    fn name(&self) -> &'static str {
        "medtune-contiguous"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let start = l.start_offset();
        let idx = gather_offsets(l)?;
        let out = match s {
            CpuStorage::F32(v) => CpuStorage::F32(idx.iter().map(|&i| v[start + i]).collect()),
            CpuStorage::BF16(v) => CpuStorage::BF16(idx.iter().map(|&i| v[start + i]).collect()),
            _ => candle_core::bail!(
                "fused contiguous: dtype {:?}, expected f32 or bf16",
                s.dtype()
            ),
        };
        Ok((out, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{alloc_uninit, launch, with_dtype, LAYOUT};
        use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
        let (&[n0, n1, n2, n3], &[s0, s1, s2, s3]) = (l.dims(), l.stride()) else {
            candle_core::bail!("fused contiguous: {:?} is not 4-D", l.dims());
        };
        if s3 != 1 && n3 > 1 {
            candle_core::bail!("fused contiguous: the last dimension must have unit stride");
        }
        let dev = s.device().clone();
        let elem = s.dtype().size_in_bytes();
        let n = n0 * n1 * n2 * n3;
        // The widest unit dividing the row bytes, the strides and the start offset.
        let fits = |u: usize| {
            [n3, s0, s1, s2, l.start_offset()]
                .iter()
                .all(|&v| (v * elem) % u == 0)
        };
        let unit = [16, 8, 4, 2]
            .into_iter()
            .find(|&u| u >= elem && fits(u))
            .unwrap_or(elem);
        let k = unit / elem; // elements per unit
        let (units, n3u) = ((n / k) as u32, (n3 / k) as u32);
        let (s0u, s1u, s2u) = ((s0 / k) as u64, (s1 / k) as u64, (s2 / k) as u64);
        let (n1u, n2u) = (n1 as u32, n2 as u32);
        let cfg = LaunchConfig {
            grid_dim: (units.div_ceil(256).clamp(1, 65_535 * 16), 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // Byte-level views: the storage as u8, reinterpreted by the kernel in units.
        let out = with_dtype!(s.dtype(), T => {
            let src = s.as_cuda_slice::<T>()?.slice(l.start_offset()..);
            let y = alloc_uninit::<T>(&dev, n)?;
            if n > 0 {
                let name = format!("copy4_b{unit}");
                launch!(dev, LAYOUT, &name, cfg; &src, &y, &units, &n1u, &n2u, &n3u, &s0u, &s1u, &s2u);
            }
            candle_core::CudaStorage::wrap_cuda_slice(y, dev.clone())
        });
        Ok((out, l.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::testing::{assert_same, sample};
    use candle_core::{DType, Device};

    #[test]
    fn the_gather_equals_candles_contiguous() -> Result<()> {
        for dt in [DType::F32, DType::BF16] {
            let base = sample(&[2, 7, 3, 10], 3, dt)?;
            for x in [
                base.transpose(1, 2)?,
                base.narrow(3, 2, 5)?.transpose(1, 2)?,
                base.narrow(1, 1, 4)?,
            ] {
                let what = format!("{dt:?} {:?} {:?}", x.dims(), x.stride());
                assert_same(&x.apply_op1_no_bwd(&Copy4)?, &x.contiguous()?, &what)?;
            }
        }
        Ok(())
    }

    #[test]
    fn cpu_tensors_take_candles_path() -> Result<()> {
        let x = Tensor::zeros((2, 3, 4, 5), DType::F32, &Device::Cpu)?.transpose(1, 2)?;
        assert!(contiguous(&x)?.is_contiguous());
        Ok(())
    }
}
