//! The one linear layer type: a frozen base weight plus an optional adapter slot.
//!
//! Every projection in every family goes through [`Linear`], named by its HF module name
//! (e.g. `model.layers.0.self_attn.q_proj`), so that an adapter (LoRA) can be attached per
//! module and the base kept frozen whatever its storage (dense, GGML-quantized).

use crate::error::Result;
use crate::nf4::{Nf4Scales, Nf4Tensor};
use crate::qmatmul::QMatMulOp;
use candle_core::quantized::QTensor;
use candle_core::{Module, Tensor};
use std::sync::Arc;

/// Storage of a frozen base weight of logical shape [out, in].
#[derive(Clone)]
pub enum BaseWeight {
    /// A dense tensor [out, in] in the compute dtype.
    Dense(Tensor),
    /// A GGML-quantized tensor [out, in], run by [`QMatMulOp`] (input gradients only).
    Quantized(Arc<QTensor>),
    /// A bitsandbytes-layout NF4 tensor [out, in], dequantized to x's dtype just before the
    /// matmul (a constant, so gradients reach the input only; see [`Nf4Tensor::forward`]).
    Nf4(Arc<Nf4Tensor>),
}

impl BaseWeight {
    /// `x · Wᵀ`: x [.., in] → [.., out], in x's dtype.
    ///
    /// Dense and NF4 bases go through [`crate::fused::frozen_linear`] on every device (the
    /// backward computes the input gradient only, not candle's unused weight gradient), unless
    /// `MEDTUNE_UNFUSED` names `frozen_linear`.
    pub fn matmul_t(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            BaseWeight::Dense(w) if !w.track_op() && !crate::fused::disabled("frozen_linear") => {
                crate::fused::frozen_linear(x, w)
            }
            BaseWeight::Dense(w) => {
                let (out_dim, in_dim) = w.dims2()?;
                let lead: Vec<usize> = x.dims()[..x.rank() - 1].to_vec();
                let rows: usize = lead.iter().product();
                // [rows, in] · [in, out] → [rows, out]
                let y = x.reshape((rows, in_dim))?.matmul(&w.t()?)?;
                let mut shape = lead;
                shape.push(out_dim);
                y.reshape(shape)
            }
            BaseWeight::Quantized(q) => {
                let dtype = x.dtype();
                let x = match dtype {
                    candle_core::DType::F32 => x.contiguous()?,
                    _ => x.to_dtype(candle_core::DType::F32)?.contiguous()?,
                };
                let y = x.apply_op1(QMatMulOp::new(q.clone()))?;
                y.to_dtype(dtype)
            }
            BaseWeight::Nf4(q) => q
                .forward(x)
                .map_err(|e| candle_core::Error::Msg(format!("NF4 linear: {e}"))),
        }
    }

    /// Logical shape (out, in).
    pub fn dims(&self) -> (usize, usize) {
        match self {
            BaseWeight::Dense(w) => {
                let d = w.dims();
                (d[0], d[1])
            }
            BaseWeight::Quantized(q) => {
                let d = q.shape().dims();
                (d[0], d[1])
            }
            BaseWeight::Nf4(q) => {
                let d = q.shape();
                (d[0], d[1])
            }
        }
    }

    /// The weight as a dense tensor [out, in] (dequantized if needed), in `dtype`.
    pub fn to_dense(&self, dtype: candle_core::DType) -> Result<Tensor> {
        Ok(match self {
            BaseWeight::Dense(w) => w.to_dtype(dtype)?,
            BaseWeight::Quantized(q) => q.dequantize(&q.device())?.to_dtype(dtype)?,
            BaseWeight::Nf4(q) => q.dequantize(dtype)?,
        })
    }

    /// Human-readable storage type, e.g. `F32` or `Q4_1`.
    pub fn storage_name(&self) -> String {
        match self {
            BaseWeight::Dense(w) => format!("{:?}", w.dtype()).to_uppercase(),
            BaseWeight::Quantized(q) => format!("{:?}", q.dtype()),
            BaseWeight::Nf4(q) => match q.scales() {
                Nf4Scales::Absmax(_) => "NF4".into(),
                Nf4Scales::Double { .. } => "NF4-DQ".into(),
            },
        }
    }
}

/// A trainable addition to a frozen linear layer, e.g. LoRA: `y += s·(dropout(x)·Aᵀ)·Bᵀ`.
pub trait Adapter: Send + Sync {
    /// The adapter's contribution for input x [.., in]: returns [.., out].
    fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor>;

    /// This adapter as LoRA, when it is one (the hand-written layer backward needs its
    /// matrices; anything else keeps the autograd path).
    fn as_lora(&self) -> Option<&crate::lora::LoraAdapter> {
        None
    }
}

/// `y = x·Wᵀ + b (+ adapter(x))`, x [.., in] → y [.., out].
#[derive(Clone)]
pub struct Linear {
    name: String,
    base: BaseWeight,
    bias: Option<Tensor>,
    adapter: Option<Arc<dyn Adapter>>,
}

impl Linear {
    /// A layer named by its HF module name (without `.weight`).
    pub fn new(name: impl Into<String>, base: BaseWeight, bias: Option<Tensor>) -> Self {
        Self {
            name: name.into(),
            base,
            bias,
            adapter: None,
        }
    }

    /// HF module name, e.g. `model.layers.0.self_attn.q_proj`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The frozen base weight.
    pub fn base(&self) -> &BaseWeight {
        &self.base
    }

    /// The bias [out], if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// (out, in).
    pub fn dims(&self) -> (usize, usize) {
        self.base.dims()
    }

    /// Attaches (or replaces) the adapter.
    pub fn set_adapter(&mut self, adapter: Arc<dyn Adapter>) {
        self.adapter = Some(adapter);
    }

    /// Removes the adapter, returning it.
    pub fn take_adapter(&mut self) -> Option<Arc<dyn Adapter>> {
        self.adapter.take()
    }

    /// The attached adapter, if any.
    pub(crate) fn adapter(&self) -> Option<&Arc<dyn Adapter>> {
        self.adapter.as_ref()
    }

    /// Whether an adapter is attached.
    pub fn has_adapter(&self) -> bool {
        self.adapter.is_some()
    }

    /// Replaces the base weight (e.g. with an NF4-quantized copy); shapes must agree.
    pub fn set_base(&mut self, base: BaseWeight) -> Result<()> {
        if base.dims() != self.base.dims() {
            return Err(crate::Error::input(
                &self.name,
                format!(
                    "new base weight {:?} != {:?}",
                    base.dims(),
                    self.base.dims()
                ),
            ));
        }
        self.base = base;
        Ok(())
    }

    /// Number of base parameters (weight + bias).
    pub fn num_params(&self) -> usize {
        let (o, i) = self.dims();
        o * i + self.bias.as_ref().map_or(0, |b| b.elem_count())
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = self.base.matmul_t(x)?;
        if let Some(b) = &self.bias {
            y = y.broadcast_add(b)?;
        }
        if let Some(a) = &self.adapter {
            y = (y + a.delta(x)?)?;
        }
        Ok(y)
    }
}
