//! AdamW with decoupled weight decay, as `torch.optim.AdamW` (single-tensor path) computes it.
//!
//! Per parameter `p` with gradient `g`, at step `t` (1-based), in this order:
//! 1. `p ← p · (1 − lr·λ)` (decoupled weight decay);
//! 2. `m ← m + (g − m)·(1 − β1)` (torch's `lerp`), `v ← v·β2 + (1 − β2)·g²`;
//! 3. `p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)` (ε outside the square root).
//!
//! States are f32 tensors on the parameter's device (whatever the parameter dtype); the update is
//! computed in f32 and cast back. On CUDA, f32 parameters are updated in place by
//! [`medtune_model::fused::adamw_step`] (three kernels per tensor, same arithmetic) unless
//! `MEDTUNE_UNFUSED` names `adamw`.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    check_meta, check_range, make_meta, saved_tensor, Grads, NamedVar, Optimizer, OptimizerState,
};
use crate::Result;

/// AdamW hyperparameters (PyTorch defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the bias-corrected √v.
    pub eps: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

impl AdamWConfig {
    /// Checks the ranges PyTorch enforces.
    pub fn validate(&self) -> Result<()> {
        check_range(
            "beta1",
            self.beta1,
            (0.0..1.0).contains(&self.beta1),
            "in [0, 1)",
        )?;
        check_range(
            "beta2",
            self.beta2,
            (0.0..1.0).contains(&self.beta2),
            "in [0, 1)",
        )?;
        check_range("eps", self.eps, self.eps >= 0.0, ">= 0")?;
        check_range(
            "weight_decay",
            self.weight_decay,
            self.weight_decay >= 0.0,
            ">= 0",
        )
    }
}

/// First and second moments of one parameter, f32 of the parameter's shape.
#[derive(Debug, Clone)]
struct Moments {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// AdamW over a fixed list of named parameters.
#[derive(Debug)]
pub struct AdamW {
    config: AdamWConfig,
    params: Vec<NamedVar>,
    moments: Vec<Moments>,
    step: u64,
}

impl AdamW {
    /// Zero moments for every parameter.
    pub fn new(params: Vec<NamedVar>, config: AdamWConfig) -> Result<Self> {
        config.validate()?;
        let moments = params
            .iter()
            .map(|(_, var)| {
                // Two allocations: the fused update writes the moments in place.
                let zeros = || Tensor::zeros(var.dims(), DType::F32, var.device());
                Ok(Moments {
                    exp_avg: zeros()?,
                    exp_avg_sq: zeros()?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            config,
            params,
            moments,
            step: 0,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &Grads, lr: f64) -> Result<()> {
        grads.check_against(&self.params)?;
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bias_correction1 = 1.0 - c.beta1.powi(t);
        let bias_correction2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let step_size = lr / bias_correction1;
        for (((_, var), g), m) in self
            .params
            .iter()
            .zip(grads.tensors())
            .zip(self.moments.iter_mut())
        {
            let g = g.to_dtype(DType::F32)?;
            if var.dtype() == DType::F32 && medtune_model::fused::enabled("adamw", var.as_tensor())
            {
                // One pass per tensor on the GPU, the same arithmetic in the same order.
                let scalars = medtune_model::fused::AdamWScalars {
                    beta1: c.beta1,
                    beta2: c.beta2,
                    decay: 1.0 - lr * c.weight_decay,
                    inv_bc2: 1.0 / bias_correction2_sqrt,
                    eps: c.eps,
                    step_size,
                };
                let g = g.contiguous()?;
                medtune_model::fused::adamw_step(
                    var.as_tensor(),
                    &m.exp_avg,
                    &m.exp_avg_sq,
                    &g,
                    scalars,
                )?;
                continue;
            }
            let p = var.as_tensor().to_dtype(DType::F32)?;
            let p = p.affine(1.0 - lr * c.weight_decay, 0.0)?;
            let exp_avg = (&m.exp_avg + (g.sub(&m.exp_avg)?.affine(1.0 - c.beta1, 0.0))?)?;
            let exp_avg_sq =
                (m.exp_avg_sq.affine(c.beta2, 0.0)? + g.sqr()?.affine(1.0 - c.beta2, 0.0)?)?;
            let denom = exp_avg_sq
                .sqrt()?
                .affine(1.0 / bias_correction2_sqrt, c.eps)?;
            let p = (p - exp_avg.div(&denom)?.affine(step_size, 0.0)?)?;
            var.set(&p.to_dtype(var.dtype())?)?;
            m.exp_avg = exp_avg;
            m.exp_avg_sq = exp_avg_sq;
        }
        Ok(())
    }

    fn steps_taken(&self) -> u64 {
        self.step
    }

    fn params(&self) -> &[NamedVar] {
        &self.params
    }

    fn state(&self) -> Result<OptimizerState> {
        let mut tensors = std::collections::HashMap::new();
        for ((name, _), m) in self.params.iter().zip(&self.moments) {
            tensors.insert(format!("{name}.exp_avg"), m.exp_avg.copy()?);
            tensors.insert(format!("{name}.exp_avg_sq"), m.exp_avg_sq.copy()?);
        }
        Ok(OptimizerState {
            tensors,
            meta: make_meta("adamw", self.step, &self.config, &self.params)?,
        })
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        check_meta(state, "adamw", &self.config, &self.params)?;
        let mut moments = Vec::with_capacity(self.params.len());
        for (name, var) in &self.params {
            let load = |suffix: &str| -> Result<Tensor> {
                let t = saved_tensor(state, &format!("{name}.{suffix}"), DType::F32, var.dims())?;
                Ok(t.to_device(var.device())?.copy()?)
            };
            moments.push(Moments {
                exp_avg: load("exp_avg")?,
                exp_avg_sq: load("exp_avg_sq")?,
            });
        }
        self.moments = moments;
        self.step = state.meta.step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// One step by hand: p=1, g=0.5, lr=0.1, λ=0.1, defaults otherwise.
    /// m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25 → update 0.1·0.5/(0.5+1e-8);
    /// p = 1·(1 − 0.01) − 0.1·(0.5/0.50000001) = 0.89000000200…
    #[test]
    fn first_step_by_hand() -> Result<()> {
        let var = Var::from_slice(&[1.0f32], 1, &Device::Cpu)?;
        let config = AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("w".into(), var.clone())], config)?;
        let g = Grads::new(vec![Tensor::from_slice(&[0.5f32], 1, &Device::Cpu)?]);
        opt.step(&g, 0.1)?;
        let p = var.as_tensor().to_vec1::<f32>()?[0];
        let expected = 0.99 - 0.1 * (0.5 / (0.5 + 1e-8));
        assert!((f64::from(p) - expected).abs() < 1e-7, "{p} vs {expected}");
        Ok(())
    }

    #[test]
    fn bad_config_is_an_error() {
        let config = AdamWConfig {
            beta1: 1.0,
            ..Default::default()
        };
        assert!(AdamW::new(vec![], config).is_err());
    }

    #[test]
    fn wrong_gradient_shape_is_an_error() -> Result<()> {
        let var = Var::from_slice(&[1.0f32, 2.0], 2, &Device::Cpu)?;
        let mut opt = AdamW::new(vec![("w".into(), var)], AdamWConfig::default())?;
        let g = Grads::new(vec![Tensor::from_slice(&[0.5f32], 1, &Device::Cpu)?]);
        assert!(opt.step(&g, 0.1).is_err());
        Ok(())
    }
}
