//! RMSNorm and LayerNorm composed from differentiable tensor ops.
//!
//! candle's fused `rms_norm`/`layer_norm` have no backward (stack-notes trap 1), so these are
//! written out op by op. Statistics are computed in f32 whatever the input dtype, as HF does.

use crate::config::NormKind;
use candle_core::{DType, Module, Result, Tensor, D};

/// A normalisation layer over the last dimension: x [.., C] → [.., C].
#[derive(Clone)]
pub struct Norm {
    kind: NormKind,
    weight: Tensor,
    bias: Option<Tensor>,
    eps: f64,
}

impl Norm {
    /// `weight` [C]; `bias` [C] for LayerNorm.
    pub fn new(kind: NormKind, weight: Tensor, bias: Option<Tensor>, eps: f64) -> Self {
        Self {
            kind,
            weight,
            bias,
            eps,
        }
    }
}

impl Norm {
    /// (weight, eps) of an RMSNorm without bias; `None` for any other norm.
    pub(crate) fn rms_parts(&self) -> Option<(&Tensor, f64)> {
        match (self.kind, &self.bias) {
            (NormKind::RmsNorm, None) => Some((&self.weight, self.eps)),
            _ => None,
        }
    }

    /// Number of parameters (weight + bias).
    pub fn num_params(&self) -> usize {
        self.weight.elem_count() + self.bias.as_ref().map_or(0, |b| b.elem_count())
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if self.kind == NormKind::RmsNorm
            && self.bias.is_none()
            && crate::fused::enabled("rms_norm", x)
        {
            return crate::fused::rms_norm(x, &self.weight.to_dtype(x.dtype())?, self.eps);
        }
        let dtype = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let normed = match self.kind {
            NormKind::RmsNorm => {
                // x / sqrt(mean(x²) + eps)
                let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
                xf.broadcast_div(&(ms + self.eps)?.sqrt()?)?
            }
            NormKind::LayerNorm => {
                // (x - mean) / sqrt(var + eps), biased variance
                let mean = xf.mean_keepdim(D::Minus1)?;
                let centred = xf.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
                centred.broadcast_div(&(var + self.eps)?.sqrt()?)?
            }
        };
        // HF casts back to the input dtype before the weight multiply.
        let y = normed.to_dtype(dtype)?.broadcast_mul(&self.weight)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn rms_norm_matches_formula() -> Result<()> {
        let x = Tensor::new(&[[1f32, 2., 3., 4.]], &Device::Cpu)?;
        let w = Tensor::new(&[1f32, 1., 2., 0.5], &Device::Cpu)?;
        let y = Norm::new(NormKind::RmsNorm, w, None, 0.0).forward(&x)?;
        let rms = (30f32 / 4.).sqrt();
        let want = [1. / rms, 2. / rms, 6. / rms, 2. / rms];
        for (a, b) in y.flatten_all()?.to_vec1::<f32>()?.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        Ok(())
    }

    #[test]
    fn layer_norm_has_zero_mean() -> Result<()> {
        let x = Tensor::new(&[[1f32, 2., 3., 10.]], &Device::Cpu)?;
        let w = Tensor::ones(4, DType::F32, &Device::Cpu)?;
        let b = Tensor::zeros(4, DType::F32, &Device::Cpu)?;
        let y = Norm::new(NormKind::LayerNorm, w, Some(b), 1e-5).forward(&x)?;
        let mean: f32 = y.mean_all()?.to_scalar()?;
        assert!(mean.abs() < 1e-6);
        Ok(())
    }
}
