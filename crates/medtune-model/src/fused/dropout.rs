//! LoRA dropout in one pass: `y = x · mask` with the counter-based mask of
//! [`crate::dropout_mask`] (a keyed Feistel permutation of the element index) computed inside
//! the kernel instead of ~50 elementwise u32 tensor ops. The op is linear in x with a mask that
//! depends only on the index, so its backward is the same op applied to the gradient.

use super::{cpu_f32, cpu_store, prepared, round_to};
use crate::dropout_mask::{keep_threshold, permute_u32_reference};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Inverted dropout of `x` (f32 or bf16) at drop probability `p` with mask key `key`: the same
/// values as `x * dropout_mask::keep_mask(x.shape(), .., key, p)`.
pub fn dropout(x: &Tensor, key: u64, p: f64) -> Result<Tensor> {
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout: probability {p} is not in [0, 1)");
    }
    if x.elem_count() > u32::MAX as usize {
        candle_core::bail!(
            "dropout: {} elements exceed the 2^32 index range",
            x.elem_count()
        );
    }
    let x = prepared(x, "dropout input")?;
    x.apply_op1(Dropout { key, p })
}

#[derive(Clone, Copy)]
struct Dropout {
    key: u64,
    p: f64,
}

impl Dropout {
    fn threshold(&self) -> u32 {
        keep_threshold(self.p).min(u32::MAX as u64) as u32
    }

    /// 1/(1 − p) rounded to the storage dtype, as the composed mask is.
    fn scale(&self, dtype: candle_core::DType) -> f32 {
        round_to((1.0 / (1.0 - self.p)) as f32, dtype)
    }
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "medtune-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(s, l, "dropout input")?;
        let (t, scale) = (self.threshold(), self.scale(s.dtype()));
        let y = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                if permute_u32_reference(i as u32, self.key) >= t {
                    v * scale
                } else {
                    0.0
                }
            })
            .collect();
        Ok((cpu_store(y, s.dtype())?, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{alloc_uninit, launch, suffix, view, with_dtype, DROPOUT};
        use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
        let dev = s.device().clone();
        let n = l.shape().elem_count();
        // 16-byte packs when the input starts on a pack boundary (the output is fresh).
        let per = 16 / s.dtype().size_in_bytes();
        let (name, cfg) = if l.start_offset() % per == 0 {
            let threads = (n / per).max(1).div_ceil(256).min(1 << 20) as u32;
            let cfg = LaunchConfig {
                grid_dim: (threads, 1, 1),
                block_dim: (256, 1, 1),
                shared_mem_bytes: 0,
            };
            (format!("dropout_vec_{}", suffix(s.dtype())?), cfg)
        } else {
            let cfg = LaunchConfig::for_num_elems(n as u32);
            (format!("dropout_{}", suffix(s.dtype())?), cfg)
        };
        let keys = crate::dropout_mask::round_keys(self.key);
        let (m0, m1, m2, m3) = (keys[0].0, keys[1].0, keys[2].0, keys[3].0);
        let (c0, c1, c2, c3) = (keys[0].1, keys[1].1, keys[2].1, keys[3].1);
        let (nu, t, scale) = (n as u32, self.threshold(), self.scale(s.dtype()));
        let out = with_dtype!(s.dtype(), T => {
            let x = view::<T>(s, l, "dropout input")?;
            let y = alloc_uninit::<T>(&dev, n)?;
            launch!(dev, DROPOUT, &name, cfg; &x, &y, &nu, &m0, &m1, &m2, &m3, &c0, &c1, &c2, &c3, &t, &scale);
            candle_core::CudaStorage::wrap_cuda_slice(y, dev.clone())
        });
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op1(*self)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dropout_mask::keep_mask;
    use crate::fused::testing::values;
    use candle_core::{DType, Device, Var};

    #[test]
    fn equals_the_composed_mask_and_passes_gradients_through_it() -> Result<()> {
        for dt in [DType::F32, DType::BF16] {
            let x0 = Tensor::from_vec(values(3 * 5 * 70, 4, 2.0), (3, 5, 70), &Device::Cpu)?
                .to_dtype(dt)?;
            let (key, p) = (0x1234_5678_9ABC, 0.1);
            let x = Var::from_tensor(&x0)?;
            let y = dropout(x.as_tensor(), key, p)?;
            let mask = keep_mask(x0.shape(), &Device::Cpu, dt, key, p)?;
            let want = (&x0 * &mask)?;
            let (a, b): (Vec<f32>, Vec<f32>) = (
                y.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
                want.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?,
            );
            assert_eq!(a, b, "{dt:?}");
            let g = y.to_dtype(DType::F32)?.sum_all()?.backward()?;
            let gx: Vec<f32> = g
                .get(&x)
                .unwrap()
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            let gm: Vec<f32> = mask.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
            assert_eq!(gx, gm, "{dt:?}: gradient is the mask");
        }
        Ok(())
    }

    #[test]
    fn bad_probability_is_an_error() {
        let x = Tensor::ones(4, DType::F32, &Device::Cpu).unwrap();
        assert!(dropout(&x, 1, 1.0).is_err());
    }
}
