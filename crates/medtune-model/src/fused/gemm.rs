//! Matrix products with a scale and an accumulator, for the hand-written layer backward:
//! `c + α·a·b` written into c's own buffer on CUDA (cuBLAS with β = 1), so that LoRA's
//! `y + s·(x·Aᵀ)·Bᵀ` and sums of input gradients cost no separate scale, add or temporary.
//!
//! These ops are outside autograd (the layer backward builds no graph): on the CPU they are
//! the same arithmetic from basic ops, with a new tensor for the result.

use candle_core::{DType, InplaceOp3, Layout, Result, Tensor};

/// `c + alpha·(a·b)` for 2-D a [M, K], b [K, N] (either may be a transposed view of a
/// contiguous matrix) and c [M, N], all of one dtype (f32 or bf16). On CUDA the sum is written
/// into c's buffer and c is returned, so c must not be shared with anything the caller still
/// reads (the layer backward passes tensors it has just computed); on the CPU a new tensor.
pub fn addmm(c: Tensor, a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    let (m, k) = a.dims2()?;
    let (k2, n) = b.dims2()?;
    if k != k2 || c.dims() != [m, n] || a.dtype() != c.dtype() || b.dtype() != c.dtype() {
        candle_core::bail!(
            "addmm: a {:?} {:?} · b {:?} {:?} does not fit c {:?} {:?}",
            a.dims(),
            a.dtype(),
            b.dims(),
            b.dtype(),
            c.dims(),
            c.dtype()
        );
    }
    if !matches!(c.dtype(), DType::F32 | DType::BF16) {
        candle_core::bail!("addmm: dtype {:?}, expected f32 or bf16", c.dtype());
    }
    if !c.device().is_cuda() || c.track_op() || a.track_op() || b.track_op() {
        return c + (a.matmul(b)? * alpha)?;
    }
    let c = c.contiguous()?;
    let a = if matmul_layout(a.layout()).is_some() {
        a.clone()
    } else {
        a.contiguous()?
    };
    let b = if matmul_layout(b.layout()).is_some() {
        b.clone()
    } else {
        b.contiguous()?
    };
    c.inplace_op3(&a, &b, &Addmm { alpha })?;
    Ok(c)
}

/// `alpha·(a·b)` (a [M, K], b [K, N] as for [`addmm`]): on CUDA one cuBLAS call with the scale
/// applied inside (into a zeroed output), else a matmul and a scale.
pub fn matmul_scaled(a: &Tensor, b: &Tensor, alpha: f64) -> Result<Tensor> {
    if !a.device().is_cuda() || a.track_op() || b.track_op() {
        return a.matmul(b)? * alpha;
    }
    let c = Tensor::zeros((a.dim(0)?, b.dim(1)?), a.dtype(), a.device())?;
    addmm(c, a, b, alpha)
}

struct Addmm {
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    alpha: f64,
}

/// A 2-D operand as cuBLAS sees it: (transposed, leading dimension, start offset). Rows of
/// [R, C] at stride ld ≥ C with unit column stride are column-major [C, R] with that ld; a
/// transposed view (unit row stride, columns at stride ld ≥ R) is column-major [R, C].
fn matmul_layout(l: &Layout) -> Option<(bool, usize, usize)> {
    let (&[r, c], &[s0, s1]) = (l.dims(), l.stride()) else {
        return None;
    };
    if s1 == 1 && (s0 >= c.max(1) || r == 1) {
        Some((false, s0.max(c).max(1), l.start_offset()))
    } else if s0 == 1 && (s1 >= r.max(1) || c == 1) {
        Some((true, s1.max(r).max(1), l.start_offset()))
    } else {
        None
    }
}

impl InplaceOp3 for Addmm {
    fn name(&self) -> &'static str {
        "medtune-addmm"
    }

    fn cpu_fwd(
        &self,
        _: &mut candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
        _: &candle_core::CpuStorage,
        _: &Layout,
    ) -> Result<()> {
        // `addmm` computes CPU tensors without this op.
        candle_core::bail!("addmm: the in-place op runs on CUDA only")
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        cs: &mut candle_core::CudaStorage,
        cl: &Layout,
        as_: &candle_core::CudaStorage,
        al: &Layout,
        bs: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<()> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::cublas::sys::cublasOperation_t as Op;
        use candle_core::cuda_backend::cudarc::cublas::{Gemm, GemmConfig};
        let (m, n) = (cl.dims()[0], cl.dims()[1]);
        let k = al.dims()[1];
        let (Some((ta, lda_a, oa)), Some((tb, lda_b, ob))) = (matmul_layout(al), matmul_layout(bl))
        else {
            candle_core::bail!("addmm: operand layouts {al:?} / {bl:?} are not matrices");
        };
        let Some((c0, c1)) = cl.contiguous_offsets() else {
            candle_core::bail!("addmm: the accumulator must be contiguous");
        };
        let op = |t: bool| if t { Op::CUBLAS_OP_T } else { Op::CUBLAS_OP_N };
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: cuBLAS computes (n × m) from b then a.
        let dims = (
            n as i32,
            m as i32,
            k as i32,
            lda_b as i32,
            lda_a as i32,
            n as i32,
        );
        let blas = cs.device().cublas_handle();
        macro_rules! go {
            ($t:ty, $from:expr) => {{
                let cfg = GemmConfig {
                    transa: op(tb),
                    transb: op(ta),
                    m: dims.0,
                    n: dims.1,
                    k: dims.2,
                    alpha: $from(self.alpha),
                    lda: dims.3,
                    ldb: dims.4,
                    beta: $from(1.0),
                    ldc: dims.5,
                };
                let a = as_.as_cuda_slice::<$t>()?.slice(oa..);
                let b = bs.as_cuda_slice::<$t>()?.slice(ob..);
                let mut c = cs.as_cuda_slice_mut::<$t>()?.slice_mut(c0..c1);
                // SAFETY: the operands hold the [m, k], [k, n] and [m, n] elements the
                // configuration describes (shapes and strides checked by `addmm` and
                // `matmul_layout`), all on the device's stream.
                #[allow(unsafe_code)]
                let r = unsafe { blas.gemm(cfg, &b, &a, &mut c) };
                r.map_err(|e| candle_core::Error::Cuda(Box::new(e)))?;
            }};
        }
        match cs.dtype() {
            DType::F32 => go!(f32, |x: f64| x as f32),
            DType::BF16 => go!(half::bf16, half::bf16::from_f64),
            d => candle_core::bail!("addmm: dtype {d:?}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::testing::{max_rel_diff, values};
    use candle_core::Device;

    #[test]
    fn addmm_and_scaled_matmul_match_the_formula_with_transposed_operands() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::from_vec(values(5 * 7, 1, 1.0), (5, 7), &dev)?;
        let bt = Tensor::from_vec(values(3 * 7, 2, 1.0), (3, 7), &dev)?;
        let c = Tensor::from_vec(values(5 * 3, 3, 1.0), (5, 3), &dev)?;
        let want = (&c + (a.matmul(&bt.t()?)? * 2.0)?)?;
        assert!(max_rel_diff(&addmm(c.copy()?, &a, &bt.t()?, 2.0)?, &want)? < 1e-6);
        let want = (a.matmul(&bt.t()?)? * 0.5)?;
        assert!(max_rel_diff(&matmul_scaled(&a, &bt.t()?, 0.5)?, &want)? < 1e-6);
        assert!(addmm(c, &a, &a, 1.0).is_err(), "shape mismatch");
        Ok(())
    }

    #[test]
    fn operand_layouts() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((4, 6), DType::F32, &dev).unwrap();
        assert_eq!(matmul_layout(x.layout()), Some((false, 6, 0)));
        assert_eq!(matmul_layout(x.t().unwrap().layout()), Some((true, 6, 0)));
        // Rows of 3 at stride 6, starting at element 2.
        let cols = x.narrow(1, 2, 3).unwrap();
        assert_eq!(matmul_layout(cols.layout()), Some((false, 6, 2)));
        // A broadcast row (stride 0) is no matrix for cuBLAS.
        let row = Tensor::zeros(6, DType::F32, &dev).unwrap();
        let rows = row.broadcast_as((4, 6)).unwrap();
        assert_eq!(matmul_layout(rows.layout()), None);
    }
}
