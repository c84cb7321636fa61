//! RMSNorm with a frozen weight: `y = w ⊙ dtype(x · (mean(x²) + eps)^-½)` over the last
//! dimension, and its input gradient `dx = r·g − x·r³·Σ(g⊙x)/n` with `g = dy ⊙ w`.

use super::{cpu_f32, cpu_store, prepared, round_to};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};

/// Fused RMSNorm of `x` [.., n] with weight `w` [n] (same dtype, f32 or bf16). The weight is
/// treated as frozen: asking for its gradient (a `Var` weight) is an error, not a silent zero.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let n = x.dim(D::Minus1)?;
    if w.dims() != [n] || w.dtype() != x.dtype() {
        candle_core::bail!(
            "rms_norm: weight {:?} {:?} does not fit input {:?} {:?}",
            w.dims(),
            w.dtype(),
            x.dims(),
            x.dtype()
        );
    }
    if w.is_variable() {
        candle_core::bail!(
            "rms_norm: the fused kernel has no weight gradient; weight must be frozen"
        );
    }
    let x = prepared(x, "rms_norm input")?;
    let w = prepared(w, "rms_norm weight")?;
    x.apply_op2(&w, RmsNorm { eps: eps as f32 })
}

/// The input gradient of [`rms_norm`] for `dy` (the hand-written layer backward calls it
/// directly, without autograd): the kernel of the op's own backward.
pub(crate) fn rms_norm_bwd(x: &Tensor, w: &Tensor, dy: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &dy.contiguous()?,
        &RmsNormBwd { eps: eps as f32 },
    )
}

struct RmsNorm {
    eps: f32,
}

struct RmsNormBwd {
    eps: f32,
}

fn rows_of(l: &Layout) -> Result<(usize, usize)> {
    let n = *l.dims().last().unwrap_or(&1);
    Ok((l.shape().elem_count() / n.max(1), n))
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "medtune-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(xs, xl, "rms_norm input")?;
        let w = cpu_f32(ws, wl, "rms_norm weight")?;
        let (_, n) = rows_of(xl)?;
        let dt = xs.dtype();
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks(n) {
            let ms = row.iter().map(|v| v * v).sum::<f32>() / n as f32;
            let r = 1.0 / (ms + self.eps).sqrt();
            y.extend(row.iter().zip(&w).map(|(v, w)| round_to(v * r, dt) * w));
        }
        Ok((cpu_store(y, dt)?, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{alloc_uninit, launch, view, with_dtype, RMS_NORM};
        let dev = xs.device().clone();
        let (r, n) = rows_of(xl)?;
        let starts = [xl.start_offset(), wl.start_offset()];
        let (name, cfg) = gpu::pick("rms_norm_fwd", xs.dtype(), r, n, &starts)?;
        let (ni, eps) = (n as i32, self.eps);
        let out = with_dtype!(xs.dtype(), T => {
            let x = view::<T>(xs, xl, "rms_norm input")?;
            let w = view::<T>(ws, wl, "rms_norm weight")?;
            let y = alloc_uninit::<T>(&dev, r * n)?;
            launch!(dev, RMS_NORM, &name, cfg; &x, &w, &y, &ni, &eps);
            candle_core::CudaStorage::wrap_cuda_slice(y, dev.clone())
        });
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(rms_norm_bwd(x, w, dy, f64::from(self.eps))?), None))
    }
}

impl CustomOp3 for RmsNormBwd {
    fn name(&self) -> &'static str {
        "medtune-rms-norm-bwd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(xs, xl, "rms_norm input")?;
        let w = cpu_f32(ws, wl, "rms_norm weight")?;
        let dy = cpu_f32(gs, gl, "rms_norm gradient")?;
        let (_, n) = rows_of(xl)?;
        let mut dx = Vec::with_capacity(x.len());
        for (row, drow) in x.chunks(n).zip(dy.chunks(n)) {
            let sxx: f32 = row.iter().map(|v| v * v).sum();
            let sgx: f32 = row
                .iter()
                .zip(drow)
                .zip(&w)
                .map(|((v, d), w)| d * w * v)
                .sum();
            let r = 1.0 / (sxx / n as f32 + self.eps).sqrt();
            let c = r * r * r * sgx / n as f32;
            dx.extend(
                row.iter()
                    .zip(drow)
                    .zip(&w)
                    .map(|((v, d), w)| r * d * w - v * c),
            );
        }
        Ok((cpu_store(dx, xs.dtype())?, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{alloc_uninit, launch, view, with_dtype, RMS_NORM};
        let dev = xs.device().clone();
        let (r, n) = rows_of(xl)?;
        let starts = [xl.start_offset(), wl.start_offset(), gl.start_offset()];
        let (name, cfg) = gpu::pick("rms_norm_bwd", xs.dtype(), r, n, &starts)?;
        let (ni, eps) = (n as i32, self.eps);
        let out = with_dtype!(xs.dtype(), T => {
            let x = view::<T>(xs, xl, "rms_norm input")?;
            let w = view::<T>(ws, wl, "rms_norm weight")?;
            let dy = view::<T>(gs, gl, "rms_norm gradient")?;
            let dx = alloc_uninit::<T>(&dev, r * n)?;
            launch!(dev, RMS_NORM, &name, cfg; &x, &w, &dy, &dx, &ni, &eps);
            candle_core::CudaStorage::wrap_cuda_slice(dx, dev.clone())
        });
        Ok((out, xl.shape().clone()))
    }
}

#[cfg(feature = "cuda")]
mod gpu {
    //! Kernel choice for `kernels/rms_norm.cu`.
    use crate::fused::cuda::{rows, suffix};
    use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
    use candle_core::{DType, Result};

    /// Most 16-byte packs a thread of the register kernels holds (`_p1`, `_p2`, `_p4`).
    const MAX_PACKS: usize = 4;

    /// Kernel name and launch for `r` rows of `n`: the register-pack kernel `<base>_p<P>` when
    /// n is a multiple of a pack, every start is pack-aligned and a row fits in
    /// 256 × [`MAX_PACKS`] packs; else the one-element-per-step kernel with 256 threads.
    pub fn pick(
        base: &str,
        dtype: DType,
        r: usize,
        n: usize,
        starts: &[usize],
    ) -> Result<(String, LaunchConfig)> {
        let sfx = suffix(dtype)?;
        let per = 16 / dtype.size_in_bytes();
        if n % per == 0 && starts.iter().all(|s| s % per == 0) {
            let packs = n / per;
            let threads = (packs.div_ceil(32) * 32).clamp(32, 256);
            let p = packs.div_ceil(threads).next_power_of_two();
            if p <= MAX_PACKS {
                return Ok((format!("{base}_p{p}_{sfx}"), rows(r, threads as u32)));
            }
        }
        Ok((format!("{base}_{sfx}"), rows(r, 256)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NormKind;
    use crate::fused::testing::{max_rel_diff, values};
    use crate::norm::Norm;
    use candle_core::{DType, Device, Module, Var};

    fn check(dtype: DType, tol: f32) -> Result<()> {
        let dev = Device::Cpu;
        let (rows, n) = (6, 40);
        let x0 = Tensor::from_vec(values(rows * n, 1, 3.0), (2, 3, n), &dev)?.to_dtype(dtype)?;
        let w = Tensor::from_vec(values(n, 2, 1.5), n, &dev)?.to_dtype(dtype)?;
        let probe = Tensor::from_vec(values(rows * n, 3, 1.0), (2, 3, n), &dev)?.to_dtype(dtype)?;
        let composed = Norm::new(NormKind::RmsNorm, w.clone(), None, 1e-5);
        let x = Var::from_tensor(&x0)?;
        let y_ref = composed.forward(x.as_tensor())?;
        let g_ref = (y_ref.to_dtype(DType::F32)? * probe.to_dtype(DType::F32)?)?
            .sum_all()?
            .backward()?;
        let x2 = Var::from_tensor(&x0)?;
        let y = rms_norm(x2.as_tensor(), &w, 1e-5)?;
        let g = (y.to_dtype(DType::F32)? * probe.to_dtype(DType::F32)?)?
            .sum_all()?
            .backward()?;
        let dy = max_rel_diff(&y, &y_ref)?;
        let dg = max_rel_diff(g.get(&x2).unwrap(), g_ref.get(&x).unwrap())?;
        assert!(
            dy <= tol && dg <= tol,
            "{dtype:?}: forward {dy}, gradient {dg}"
        );
        Ok(())
    }

    #[test]
    fn matches_the_composed_norm_and_its_gradient() -> Result<()> {
        check(DType::F32, 1e-5)?;
        check(DType::BF16, 2e-2)
    }

    #[test]
    fn a_trainable_weight_is_refused() {
        let w = Var::ones(4, DType::F32, &Device::Cpu).unwrap();
        let x = Tensor::ones((2, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(rms_norm(&x, w.as_tensor(), 1e-5).is_err());
    }
}
