//! AdamW's update in place, for f32 parameters and states: three single-pass kernels per
//! parameter (first moment, second moment, parameter) instead of the ~15 elementwise kernels
//! of the composed update. With 224 (1B shape) to 448 (8B) LoRA tensors per step, the composed
//! update alone is thousands of kernel launches.
//!
//! The arithmetic and its order are those of `medtune-train`'s composed AdamW (which documents
//! the formula and matches `torch.optim.AdamW`):
//! `m ← m + (g − m)·(1 − β1)`, `v ← v·β2 + g²·(1 − β2)`,
//! `p ← p·decay − (m / (√v·inv_bc2 + ε))·step_size`, every constant rounded to f32 once.

#[cfg(feature = "cuda")]
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor};

/// The scalars of one AdamW step (computed in f64 by the optimizer, applied in f32).
#[derive(Debug, Clone, Copy)]
pub struct AdamWScalars {
    /// Decay of the first moment, β1.
    pub beta1: f64,
    /// Decay of the second moment, β2.
    pub beta2: f64,
    /// `1 − lr·λ` (decoupled weight decay).
    pub decay: f64,
    /// `1 / √(1 − β2ᵗ)`.
    pub inv_bc2: f64,
    /// ε, added to the bias-corrected √v.
    pub eps: f64,
    /// `lr / (1 − β1ᵗ)`.
    pub step_size: f64,
}

/// Updates `p`, `m` and `v` (f32, contiguous, same shape) in place from the gradient `g`
/// (f32, same shape).
pub fn adamw_step(p: &Tensor, m: &Tensor, v: &Tensor, g: &Tensor, s: AdamWScalars) -> Result<()> {
    for (t, what) in [
        (p, "parameter"),
        (m, "first moment"),
        (v, "second moment"),
        (g, "gradient"),
    ] {
        if t.dtype() != DType::F32 || t.dims() != p.dims() || !t.is_contiguous() {
            candle_core::bail!(
                "adamw_step: {what} is {:?} {:?} (contiguous: {}), expected contiguous f32 {:?}",
                t.dtype(),
                t.dims(),
                t.is_contiguous(),
                p.dims()
            );
        }
    }
    m.inplace_op2(g, &FirstMoment(s))?;
    v.inplace_op2(g, &SecondMoment(s))?;
    p.inplace_op3(m, v, &Param(s))
}

struct FirstMoment(AdamWScalars);
struct SecondMoment(AdamWScalars);
struct Param(AdamWScalars);

/// The contiguous f32 values of a CPU storage.
fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("adamw_step: {what} must be contiguous f32"),
    }
}

fn cpu_slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout, what: &str) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("adamw_step: {what} must be contiguous f32"),
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    //! Device views and the launch shape of the three kernels.
    use candle_core::cuda_backend::cudarc::driver::{CudaView, CudaViewMut, LaunchConfig};
    use candle_core::{CudaStorage, Layout, Result};

    pub fn view_mut<'a>(
        s: &'a mut CudaStorage,
        l: &Layout,
        what: &str,
    ) -> Result<CudaViewMut<'a, f32>> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("adamw_step: {what} must be contiguous")
        };
        Ok(s.as_cuda_slice_mut::<f32>()?.slice_mut(a..b))
    }

    pub fn view<'a>(s: &'a CudaStorage, l: &Layout, what: &str) -> Result<CudaView<'a, f32>> {
        crate::fused::cuda::view::<f32>(s, l, what)
    }

    pub fn config(l: &Layout) -> (LaunchConfig, u32) {
        let n = l.shape().elem_count() as u32;
        (LaunchConfig::for_num_elems(n), n)
    }
}

impl InplaceOp2 for FirstMoment {
    fn name(&self) -> &'static str {
        "medtune-adam-first-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let w = (1.0 - self.0.beta1) as f32;
        let g = cpu_slice(s2, l2, "gradient")?;
        for (m, g) in cpu_slice_mut(s1, l1, "first moment")?.iter_mut().zip(g) {
            *m += (g - *m) * w;
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        use super::cuda::{launch, ADAMW};
        let dev = s1.device().clone();
        let (cfg, n) = gpu::config(l1);
        let w = (1.0 - self.0.beta1) as f32;
        let g = gpu::view(s2, l2, "gradient")?;
        let mut m = gpu::view_mut(s1, l1, "first moment")?;
        launch!(dev, ADAMW, "adam_first_moment_f32", cfg; &mut m, &g, &n, &w);
        Ok(())
    }
}

impl InplaceOp2 for SecondMoment {
    fn name(&self) -> &'static str {
        "medtune-adam-second-moment"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (b2, w) = (self.0.beta2 as f32, (1.0 - self.0.beta2) as f32);
        let g = cpu_slice(s2, l2, "gradient")?;
        for (v, g) in cpu_slice_mut(s1, l1, "second moment")?.iter_mut().zip(g) {
            *v = *v * b2 + (g * g) * w;
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> Result<()> {
        use super::cuda::{launch, ADAMW};
        let dev = s1.device().clone();
        let (cfg, n) = gpu::config(l1);
        let (b2, w) = (self.0.beta2 as f32, (1.0 - self.0.beta2) as f32);
        let g = gpu::view(s2, l2, "gradient")?;
        let mut v = gpu::view_mut(s1, l1, "second moment")?;
        launch!(dev, ADAMW, "adam_second_moment_f32", cfg; &mut v, &g, &n, &b2, &w);
        Ok(())
    }
}

impl Param {
    fn constants(&self) -> [f32; 4] {
        let s = self.0;
        [s.decay, s.inv_bc2, s.eps, s.step_size].map(|x| x as f32)
    }
}

impl InplaceOp3 for Param {
    fn name(&self) -> &'static str {
        "medtune-adamw-param"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<()> {
        let [decay, inv_bc2, eps, step_size] = self.constants();
        let m = cpu_slice(s2, l2, "first moment")?;
        let v = cpu_slice(s3, l3, "second moment")?;
        for ((p, m), v) in cpu_slice_mut(s1, l1, "parameter")?.iter_mut().zip(m).zip(v) {
            *p = *p * decay - (m / (v.sqrt() * inv_bc2 + eps)) * step_size;
        }
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        use super::cuda::{launch, ADAMW};
        let dev = s1.device().clone();
        let (cfg, n) = gpu::config(l1);
        let [decay, inv_bc2, eps, step_size] = self.constants();
        let m = gpu::view(s2, l2, "first moment")?;
        let v = gpu::view(s3, l3, "second moment")?;
        let mut p = gpu::view_mut(s1, l1, "parameter")?;
        launch!(dev, ADAMW, "adamw_param_f32", cfg; &mut p, &m, &v, &n, &decay, &inv_bc2, &eps, &step_size);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::testing::{max_rel_diff, values};
    use candle_core::Device;

    /// The composed update (as medtune-train's AdamW writes it) for comparison.
    fn composed(
        p: &Tensor,
        m: &Tensor,
        v: &Tensor,
        g: &Tensor,
        s: AdamWScalars,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let m = (m + (g - m)?.affine(1.0 - s.beta1, 0.0)?)?;
        let v = (v.affine(s.beta2, 0.0)? + g.sqr()?.affine(1.0 - s.beta2, 0.0)?)?;
        let denom = v.sqrt()?.affine(s.inv_bc2, s.eps)?;
        let p = (p.affine(s.decay, 0.0)? - m.div(&denom)?.affine(s.step_size, 0.0)?)?;
        Ok((p, m, v))
    }

    #[test]
    fn three_steps_match_the_composed_update() -> Result<()> {
        let dev = Device::Cpu;
        let n = 1000;
        let mk = |seed, scale| Tensor::from_vec(values(n, seed, scale), (10, 100), &dev);
        let p = mk(1, 1.0)?;
        let (m, v) = (p.zeros_like()?, p.zeros_like()?);
        let (mut pc, mut mc, mut vc) = (p.copy()?, m.copy()?, v.copy()?);
        for t in 1..=3 {
            let g = mk(10 + t as u64, 0.5)?;
            let lr = 1e-3;
            let s = AdamWScalars {
                beta1: 0.9,
                beta2: 0.999,
                decay: 1.0 - lr * 0.01,
                inv_bc2: 1.0 / (1.0 - 0.999f64.powi(t)).sqrt(),
                eps: 1e-8,
                step_size: lr / (1.0 - 0.9f64.powi(t)),
            };
            adamw_step(&p, &m, &v, &g, s)?;
            (pc, mc, vc) = composed(&pc, &mc, &vc, &g, s)?;
            assert!(max_rel_diff(&p, &pc)? < 1e-6, "step {t} p");
            assert!(max_rel_diff(&m, &mc)? < 1e-6, "step {t} m");
            assert!(max_rel_diff(&v, &vc)? < 1e-6, "step {t} v");
        }
        Ok(())
    }

    #[test]
    fn wrong_dtype_or_shape_is_an_error() -> Result<()> {
        let dev = Device::Cpu;
        let p = Tensor::zeros(4, DType::F32, &dev)?;
        let s = AdamWScalars {
            beta1: 0.9,
            beta2: 0.999,
            decay: 1.0,
            inv_bc2: 1.0,
            eps: 1e-8,
            step_size: 1e-3,
        };
        let short = Tensor::zeros(3, DType::F32, &dev)?;
        assert!(adamw_step(&p, &p.zeros_like()?, &p.zeros_like()?, &short, s).is_err());
        let half = Tensor::zeros(4, DType::BF16, &dev)?;
        assert!(adamw_step(&half, &p.zeros_like()?, &p.zeros_like()?, &p, s).is_err());
        Ok(())
    }
}
