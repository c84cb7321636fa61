//! Global-norm gradient clipping, as `torch.nn.utils.clip_grad_norm_` (L2 norm).
//!
//! `total = √(Σ ‖gᵢ‖²)` over all gradients; when `max_norm / (total + 1e-6) < 1` every gradient
//! is multiplied by that factor. The pre-clip norm is returned so the loop can log it. A
//! non-finite norm leaves the gradients untouched (the caller should skip the step or stop).

use crate::optim::Grads;
use crate::{Error, Result};

/// The global L2 norm of all gradients (squares summed per tensor in f32, then in f64).
pub fn global_norm(grads: &Grads) -> Result<f64> {
    let mut sum = 0f64;
    for g in grads.tensors() {
        let sq = g
            .to_dtype(candle_core::DType::F32)?
            .sqr()?
            .sum_all()?
            .to_scalar::<f32>()?;
        sum += f64::from(sq);
    }
    Ok(sum.sqrt())
}

/// Scales `grads` in place so their global norm is at most `max_norm`; returns the norm before
/// clipping.
pub fn clip_grad_norm(grads: &mut Grads, max_norm: f64) -> Result<f64> {
    if !max_norm.is_finite() || max_norm <= 0.0 {
        return Err(Error::config(
            "max_grad_norm",
            format!("{max_norm} must be a positive number"),
        ));
    }
    let total = global_norm(grads)?;
    if !total.is_finite() {
        return Ok(total);
    }
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        *grads = grads.scale(coef)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn grads() -> Result<Grads> {
        // ‖(3, 4)‖² + ‖(12)‖² = 25 + 144 → norm 13
        Ok(Grads::new(vec![
            Tensor::new(&[3f32, 4.], &Device::Cpu)?,
            Tensor::new(&[12f32], &Device::Cpu)?,
        ]))
    }

    #[test]
    fn clips_to_max_norm_and_returns_the_old_norm() -> Result<()> {
        let mut g = grads()?;
        let norm = clip_grad_norm(&mut g, 1.3)?;
        assert!((norm - 13.0).abs() < 1e-6);
        let after = global_norm(&g)?;
        assert!((after - 1.3).abs() < 1e-5, "{after}");
        let first = g.tensors()[0].to_vec1::<f32>()?;
        assert!((first[0] - 0.3).abs() < 1e-6 && (first[1] - 0.4).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn leaves_small_gradients_alone() -> Result<()> {
        let mut g = grads()?;
        let norm = clip_grad_norm(&mut g, 100.0)?;
        assert!((norm - 13.0).abs() < 1e-6);
        assert_eq!(g.tensors()[1].to_vec1::<f32>()?, vec![12.0]);
        Ok(())
    }

    #[test]
    fn rejects_a_bad_max_norm_and_reports_nan() -> Result<()> {
        let mut g = grads()?;
        assert!(clip_grad_norm(&mut g, 0.0).is_err());
        let mut nan = Grads::new(vec![Tensor::new(&[f32::NAN], &Device::Cpu)?]);
        assert!(clip_grad_norm(&mut nan, 1.0)?.is_nan());
        Ok(())
    }
}
