//! Rotary position embeddings in HF's `rotate_half` layout, composed from differentiable ops.
//!
//! The cos/sin tables are computed once at load for every position up to
//! `max_position_embeddings`; each forward pass only gathers the rows of its position ids.

use crate::config::{RopeConfig, RopeScaling};
use candle_core::{DType, Device, Result, Tensor, D};

/// Precomputed cos/sin tables [P, R] where R is the rotary dimension.
#[derive(Clone)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
    rotary_dim: usize,
    max_positions: usize,
}

/// Inverse frequencies `1 / theta^(2i/R)` for i in 0..R/2, after long-context rescaling.
pub fn inverse_frequencies(cfg: &RopeConfig) -> Vec<f64> {
    let r = cfg.rotary_dim;
    let base: Vec<f64> = (0..r / 2)
        .map(|i| 1.0 / cfg.theta.powf((2 * i) as f64 / r as f64))
        .collect();
    match &cfg.scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old_ctx,
        } => {
            // Llama 3.1: wavelengths longer than old_ctx/low are slowed by `factor`, shorter
            // than old_ctx/high are kept, and in between the two are blended linearly in
            // old_ctx/wavelength.
            let low_wavelen = old_ctx / low_freq_factor;
            let high_wavelen = old_ctx / high_freq_factor;
            base.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old_ctx / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

impl Rope {
    /// Tables for positions 0..max_positions, stored in `dtype` on `device`.
    pub fn new(
        cfg: &RopeConfig,
        max_positions: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        let inv = inverse_frequencies(cfg);
        let half = inv.len();
        let mut cos = Vec::with_capacity(max_positions * 2 * half);
        let mut sin = Vec::with_capacity(max_positions * 2 * half);
        for p in 0..max_positions {
            // HF concatenates the frequencies with themselves: [f0..f_{R/2}, f0..f_{R/2}].
            for _ in 0..2 {
                for f in &inv {
                    // HF multiplies in f32; do the same so long positions agree.
                    let angle = (p as f32 * *f as f32) as f64;
                    cos.push(angle.cos() as f32);
                    sin.push(angle.sin() as f32);
                }
            }
        }
        let shape = (max_positions, 2 * half);
        Ok(Self {
            cos: Tensor::from_vec(cos, shape, device)?.to_dtype(dtype)?,
            sin: Tensor::from_vec(sin, shape, device)?.to_dtype(dtype)?,
            rotary_dim: 2 * half,
            max_positions,
        })
    }

    /// Number of positions in the tables.
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Gathers the tables for `position_ids` [B, T] (u32): returns (cos, sin), each [B, 1, T, R].
    pub fn cos_sin(&self, position_ids: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = position_ids.dims2()?;
        let flat = position_ids.flatten_all()?;
        let cos = self
            .cos
            .index_select(&flat, 0)?
            .reshape((b, 1, t, self.rotary_dim))?;
        let sin = self
            .sin
            .index_select(&flat, 0)?
            .reshape((b, 1, t, self.rotary_dim))?;
        Ok((cos, sin))
    }

    /// Rotates the first R dims of x [B, H, T, D] by (cos, sin) [B, 1, T, R]; returns [B, H, T, D].
    /// On CUDA this is one fused kernel with a fused backward ([`crate::fused::rope`]).
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        if crate::fused::enabled("rope", x) {
            return crate::fused::rope(x, cos, sin);
        }
        let d = x.dim(D::Minus1)?;
        let r = self.rotary_dim;
        let (x_rot, x_pass) = if r == d {
            (x.clone(), None)
        } else {
            (
                x.narrow(D::Minus1, 0, r)?,
                Some(x.narrow(D::Minus1, r, d - r)?),
            )
        };
        let rotated = (x_rot.broadcast_mul(cos)? + rotate_half(&x_rot)?.broadcast_mul(sin)?)?;
        match x_pass {
            None => Ok(rotated),
            Some(pass) => Tensor::cat(&[&rotated, &pass], D::Minus1),
        }
    }
}

/// [x1, x2] → [-x2, x1] over the last dimension (split in halves).
pub(crate) fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(scaling: RopeScaling) -> RopeConfig {
        RopeConfig {
            theta: 500_000.0,
            rotary_dim: 128,
            scaling,
        }
    }

    #[test]
    fn llama3_scaling_keeps_high_and_slows_low_frequencies() {
        let plain = inverse_frequencies(&cfg(RopeScaling::None));
        let scaled = inverse_frequencies(&cfg(RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        }));
        // wavelength of f0 is 2π < 8192/4: unchanged.
        assert_eq!(plain[0], scaled[0]);
        // the lowest frequency has wavelength > 8192: divided by 8.
        let last = plain.len() - 1;
        assert!((scaled[last] - plain[last] / 8.0).abs() < 1e-15);
    }

    #[test]
    fn position_zero_is_identity() -> Result<()> {
        let c = RopeConfig {
            theta: 10_000.0,
            rotary_dim: 4,
            scaling: RopeScaling::None,
        };
        let rope = Rope::new(&c, 8, DType::F32, &Device::Cpu)?;
        let x = Tensor::arange(0f32, 8., &Device::Cpu)?.reshape((1, 1, 2, 4))?;
        let pos = Tensor::new(&[[0u32, 0]], &Device::Cpu)?;
        let (cos, sin) = rope.cos_sin(&pos)?;
        let y = rope.apply(&x, &cos, &sin)?;
        assert_eq!(
            y.flatten_all()?.to_vec1::<f32>()?,
            x.flatten_all()?.to_vec1::<f32>()?
        );
        Ok(())
    }
}
