//! A linear layer with a frozen weight: `y = x · wᵀ` whose backward computes the input
//! gradient `dx = dy · w` only.
//!
//! candle's `Matmul` backward always computes the gradient of both operands, so for a frozen
//! base weight every step would run a wasted weight-gradient GEMM (as large as the forward one)
//! plus a weight-sized accumulation. Here the weight is held by the op rather than passed as an
//! operand, so the autograd graph does not reach it at all. The forward is the same backend
//! matmul as `x.matmul(&w.t())` on the rows of `x` (bit-identical to it).
//!
//! Used on every device (the saving is real on the CPU too) unless `MEDTUNE_UNFUSED` names
//! `frozen_linear`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Storage, Tensor};

/// `x · wᵀ` for `x` [.., in] and a FROZEN weight `w` [out, in] of the same dtype: [.., out].
///
/// Gradients flow to `x` only. The weight must be frozen: a `Var` weight, or one computed from
/// a `Var`, is an error (its gradient would otherwise be silently missing); use
/// `x.matmul(&w.t())` for a trainable one.
pub fn frozen_linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (out_dim, in_dim) = match w.dims() {
        &[o, i] => (o, i),
        d => candle_core::bail!("frozen_linear: weight must be [out, in], got {d:?}"),
    };
    if x.rank() == 0 || x.dims()[x.rank() - 1] != in_dim || x.dtype() != w.dtype() {
        candle_core::bail!(
            "frozen_linear: input {:?} {:?} does not fit weight [{out_dim}, {in_dim}] {:?}",
            x.dims(),
            x.dtype(),
            w.dtype()
        );
    }
    if !x.device().same_device(w.device()) {
        candle_core::bail!("frozen_linear: input and weight are on different devices");
    }
    if w.track_op() {
        candle_core::bail!(
            "frozen_linear: the weight gets no gradient, so it must be frozen (not a Var, nor \
             computed from one)"
        );
    }
    let lead = &x.dims()[..x.rank() - 1];
    let rows: usize = lead.iter().product();
    let out_shape = [lead, &[out_dim]].concat();
    // The weight is a constant here (detach: no graph is kept alive through it).
    let w = w.contiguous()?.detach();
    // [rows, in]; contiguous so that any input layout gives the standard GEMM operand.
    let x2 = x.contiguous()?.reshape((rows, in_dim))?;
    if rows == 0 || out_dim == 0 || in_dim == 0 {
        // Nothing to multiply (candle's matmul gives the zeros); the gradient is still x-only.
        return x2.matmul(&w.t()?)?.reshape(out_shape);
    }
    x2.apply_op1(FrozenLinear { w })?.reshape(out_shape)
}

struct FrozenLinear {
    /// [out, in], contiguous, detached.
    w: Tensor,
}

impl FrozenLinear {
    /// `(1, rows, out, in)`: the matmul's (batch, m, n, k) for x [rows, in] · wᵀ [in, out].
    fn bmnk(&self, xl: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (out_dim, in_dim) = self.w.dims2()?;
        match xl.dims() {
            &[rows, k] if k == in_dim => Ok((1, rows, out_dim, in_dim)),
            d => candle_core::bail!(
                "frozen_linear: input rows {d:?} do not fit weight [{out_dim}, {in_dim}]"
            ),
        }
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "medtune-frozen-linear"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let bmnk = self.bmnk(xl)?;
        let wt = self.w.t()?; // [in, out], a transposed view of w's storage
        let (guard, wl) = wt.storage_and_layout();
        let Storage::Cpu(ws) = &*guard else {
            candle_core::bail!("frozen_linear: weight is not on the CPU")
        };
        let y = xs.matmul(ws, bmnk, xl, wl)?;
        Ok((y, Shape::from((bmnk.1, bmnk.2))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let bmnk = self.bmnk(xl)?;
        let wt = self.w.t()?;
        let (guard, wl) = wt.storage_and_layout();
        let Storage::Cuda(ws) = &*guard else {
            candle_core::bail!("frozen_linear: weight is not on the CUDA device")
        };
        let y = xs.matmul(ws, bmnk, xl, wl)?;
        Ok((y, Shape::from((bmnk.1, bmnk.2))))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        // [rows, out] · [out, in] → [rows, in]; no weight gradient.
        Ok(Some(dy.contiguous()?.matmul(&self.w)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::testing::{max_rel_diff, values};
    use candle_core::{DType, Device, Var};

    /// Value and input gradient of `frozen_linear` vs `x.matmul(w.t())` (broadcast over the
    /// leading dims) for an input of shape `dims` [.., in].
    fn check(
        dims: &[usize],
        out_dim: usize,
        dtype: DType,
        transpose_x: bool,
    ) -> Result<(f32, f32)> {
        let dev = Device::Cpu;
        let in_dim = *dims.last().unwrap_or(&1);
        let n: usize = dims.iter().product();
        let x0 = Tensor::from_vec(values(n, 1, 2.0), dims, &dev)?.to_dtype(dtype)?;
        // The Var holds x (or, for a non-contiguous input, xᵀ over the last two dims, and the
        // input is its transposed view).
        let held = if transpose_x {
            x0.t()?.contiguous()?
        } else {
            x0.clone()
        };
        let input = |v: &Var| -> Result<Tensor> {
            let t = v.as_tensor();
            if transpose_x {
                let t = t.t()?;
                assert!(!t.is_contiguous());
                Ok(t)
            } else {
                Ok(t.clone())
            }
        };
        let w = Tensor::from_vec(values(out_dim * in_dim, 2, 1.0), (out_dim, in_dim), &dev)?
            .to_dtype(dtype)?;
        let out_shape = [&dims[..dims.len() - 1], &[out_dim]].concat();
        let probe = Tensor::from_vec(values(out_shape.iter().product(), 3, 1.0), out_shape, &dev)?;

        let x = Var::from_tensor(&held)?;
        let y_ref = input(&x)?.broadcast_matmul(&w.t()?)?;
        let g_ref = (y_ref.to_dtype(DType::F32)? * &probe)?
            .sum_all()?
            .backward()?;
        let x2 = Var::from_tensor(&held)?;
        let y = frozen_linear(&input(&x2)?, &w)?;
        assert_eq!(y.dims(), y_ref.dims());
        assert_eq!(y.dtype(), dtype);
        let g = (y.to_dtype(DType::F32)? * &probe)?.sum_all()?.backward()?;
        let (Some(dx), Some(dx_ref)) = (g.get(&x2), g_ref.get(&x)) else {
            candle_core::bail!("missing input gradient")
        };
        assert_eq!(dx.dims(), held.dims());
        Ok((max_rel_diff(&y, &y_ref)?, max_rel_diff(dx, dx_ref)?))
    }

    #[test]
    fn matches_the_matmul_and_its_input_gradient() -> Result<()> {
        for (dims, out_dim) in [
            (&[5, 12][..], 7),
            (&[2, 3, 40][..], 33),
            (&[2, 3, 40][..], 1),
        ] {
            for transpose_x in [false, true] {
                let (dy, dg) = check(dims, out_dim, DType::F32, transpose_x)?;
                assert!(
                    dy <= 1e-5 && dg <= 1e-5,
                    "f32 {dims:?}: forward {dy}, gradient {dg}"
                );
                let (dy, dg) = check(dims, out_dim, DType::BF16, transpose_x)?;
                assert!(
                    dy <= 2e-2 && dg <= 2e-2,
                    "bf16 {dims:?}: forward {dy}, gradient {dg}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn the_forward_is_bit_identical_to_the_2d_matmul() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::from_vec(values(6 * 50, 4, 1.0), (2, 3, 50), &dev)?;
        let w = Tensor::from_vec(values(9 * 50, 5, 1.0), (9, 50), &dev)?;
        let y = frozen_linear(&x, &w)?.flatten_all()?.to_vec1::<f32>()?;
        let r = x
            .reshape((6, 50))?
            .matmul(&w.t()?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(y, r);
        Ok(())
    }

    #[test]
    fn no_weight_gradient_and_a_trainable_weight_is_refused() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::ones((3, 4), DType::F32, &dev)?;
        let x = Var::ones((2, 4), DType::F32, &dev)?;
        assert!(frozen_linear(x.as_tensor(), w.as_tensor()).is_err());
        // Nor a weight computed from a Var.
        assert!(frozen_linear(x.as_tensor(), &(w.as_tensor() * 2.0)?).is_err());
        // A frozen weight: the input gets its gradient, the weight none (it is not in the graph).
        let w2 = w.as_tensor().detach();
        let g = frozen_linear(x.as_tensor(), &w2)?.sum_all()?.backward()?;
        assert!(g.get(&w2).is_none() && g.get(&w).is_none());
        assert_eq!(
            g.get(&x).map(|d| d.to_vec2::<f32>()).transpose()?,
            Some(vec![vec![3f32; 4]; 2])
        );
        Ok(())
    }

    #[test]
    fn shape_and_dtype_mismatches_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::ones((3, 4), DType::F32, &dev)?;
        assert!(frozen_linear(&Tensor::ones((2, 5), DType::F32, &dev)?, &w).is_err());
        assert!(frozen_linear(&Tensor::ones((2, 4), DType::BF16, &dev)?, &w).is_err());
        assert!(
            frozen_linear(&Tensor::ones((2, 4), DType::F32, &dev)?, &w.flatten_all()?).is_err()
        );
        // Empty inputs give an empty output.
        let y = frozen_linear(&Tensor::ones((0, 4), DType::F32, &dev)?, &w)?;
        assert_eq!(y.dims(), &[0, 3]);
        Ok(())
    }
}
