//! Quantized (GGML) matmul with a backward pass for the input.
//!
//! candle's `QMatMul` has no backward: the input of a quantized layer would silently get no
//! gradient. [`QMatMulOp`] runs the forward through candle's quantized kernels and returns
//! `dx = dy · dequant(W)` in backward. The weight itself is frozen, so it gets no gradient.

use candle_core::quantized::QTensor;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use std::sync::Arc;

/// `y = x · Wᵀ` for a quantized `W` [out, in]; x [.., in] contiguous → y [.., out].
#[derive(Clone)]
pub struct QMatMulOp {
    weight: Arc<QTensor>,
}

impl QMatMulOp {
    /// Wraps a quantized weight of shape [out, in].
    pub fn new(weight: Arc<QTensor>) -> Self {
        Self { weight }
    }
}

impl CustomOp1 for QMatMulOp {
    fn name(&self) -> &'static str {
        "medtune-qmatmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.weight.cpu_fwd(storage, layout)
    }

    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        self.weight.cuda_fwd(storage, layout)
    }

    /// dx [.., in] = dy [.., out] · W [out, in]; W is dequantized for the product.
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let w = self
            .weight
            .dequantize(grad_res.device())?
            .to_dtype(grad_res.dtype())?;
        let (out_dim, in_dim) = w.dims2()?;
        let rows = grad_res.elem_count() / out_dim;
        let dx = grad_res.reshape((rows, out_dim))?.matmul(&w)?;
        let _ = in_dim;
        Ok(Some(dx.reshape(arg.shape())?))
    }
}
