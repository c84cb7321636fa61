//! 8-bit AdamW as bitsandbytes' `AdamW8bit` computes it (blockwise, `optim_bits=8`).
//!
//! Each parameter with at least `min_8bit_size` elements keeps its moments as u8 codes in blocks
//! of [`STATE_BLOCKSIZE`] = 256, one f32 absmax per block: the first moment on bitsandbytes'
//! signed dynamic map, the second on the unsigned one
//! ([`medtune_model::nf4::dynamic_map`]). Each step, per element (bitsandbytes'
//! `kOptimizerStatic8bit2StateBlockwise`, in f32):
//! 1. dequantize: `m = map1[c1]·absmax1`, `v = map2[c2]·absmax2`;
//! 2. `v ← v·β2 + (1 − β2)·g²`, `m ← m·β1 + (1 − β1)·g` (a non-finite `g` zeroes both and
//!    leaves the parameter alone);
//! 3. `p ← p − lr·√(1 − β2ᵗ)/(1 − β1ᵗ) · m / (√v + ε·√(1 − β2ᵗ))`, then `p ← p·(1 − lr·λ)`
//!    (bitsandbytes decays after the update, unlike torch);
//! 4. requantize with the block's new absmax (nearest map entry, see
//!    [`medtune_model::nf4::quantize_to_map`]); a first-moment code whose sign differs from `m`
//!    moves one step towards it.
//!
//! Smaller parameters keep f32 moments and the same update without quantization, as
//! bitsandbytes does below its `min_8bit_size` (default 4096). The states live in host memory and
//! the update runs on the host (the reference path; parameters on a GPU are copied each step).

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use medtune_model::nf4::{dynamic_map, quantize_to_map};
use serde::{Deserialize, Serialize};

use super::{
    check_meta, check_range, make_meta, saved_tensor, Grads, NamedVar, Optimizer, OptimizerState,
};
use crate::Result;

/// Elements per quantization block of the moment states (bitsandbytes' `BLOCKSIZE_2STATE`).
pub const STATE_BLOCKSIZE: usize = 256;

/// 8-bit AdamW hyperparameters (bitsandbytes defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamW8bitConfig {
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to √v (scaled by √(1 − β2ᵗ), as bitsandbytes does).
    pub eps: f64,
    /// Decoupled weight decay λ, applied after the Adam update.
    pub weight_decay: f64,
    /// Parameters with fewer elements keep f32 moments.
    pub min_8bit_size: usize,
}

impl Default for AdamW8bitConfig {
    fn default() -> Self {
        AdamW8bitConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            min_8bit_size: 4096,
        }
    }
}

impl AdamW8bitConfig {
    /// Checks the ranges bitsandbytes enforces.
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

/// The moments of one parameter.
#[derive(Debug, Clone)]
enum Moments {
    /// Blockwise 8-bit codes and absmax per block.
    Quantized {
        state1: Vec<u8>,
        state2: Vec<u8>,
        absmax1: Vec<f32>,
        absmax2: Vec<f32>,
    },
    /// f32 moments for small parameters.
    Full {
        exp_avg: Vec<f32>,
        exp_avg_sq: Vec<f32>,
    },
}

impl Moments {
    fn zeros(n: usize, quantized: bool) -> Self {
        if quantized {
            let blocks = n.div_ceil(STATE_BLOCKSIZE);
            Moments::Quantized {
                state1: vec![0; n],
                state2: vec![0; n],
                absmax1: vec![0.0; blocks],
                absmax2: vec![0.0; blocks],
            }
        } else {
            Moments::Full {
                exp_avg: vec![0.0; n],
                exp_avg_sq: vec![0.0; n],
            }
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Moments::Quantized {
                state1,
                state2,
                absmax1,
                absmax2,
            } => state1.len() + state2.len() + 4 * (absmax1.len() + absmax2.len()),
            Moments::Full {
                exp_avg,
                exp_avg_sq,
            } => 4 * (exp_avg.len() + exp_avg_sq.len()),
        }
    }
}

/// Per-step f32 constants of the update.
#[derive(Debug, Clone, Copy)]
struct StepConsts {
    beta1: f32,
    beta2: f32,
    /// `−lr·√(1 − β2ᵗ)/(1 − β1ᵗ)`.
    step_size: f32,
    /// `ε·√(1 − β2ᵗ)`.
    eps_hat: f32,
    /// `1 − lr·λ`, or 1 when λ = 0.
    decay: f32,
}

impl StepConsts {
    /// New parameter value from the updated moments.
    fn apply(&self, p: f32, m: f32, v: f32) -> f32 {
        let p = p + self.step_size * (m / (v.sqrt() + self.eps_hat));
        p * self.decay
    }

    fn moments(&self, m: f32, v: f32, g: f32) -> (f32, f32) {
        (
            m * self.beta1 + (1.0 - self.beta1) * g,
            v * self.beta2 + (1.0 - self.beta2) * g * g,
        )
    }
}

/// bitsandbytes' blockwise 8-bit AdamW over a fixed list of named parameters.
#[derive(Debug)]
pub struct AdamW8bit {
    config: AdamW8bitConfig,
    params: Vec<NamedVar>,
    moments: Vec<Moments>,
    map1: [f32; 256],
    map2: [f32; 256],
    step: u64,
}

impl AdamW8bit {
    /// Zero states for every parameter.
    pub fn new(params: Vec<NamedVar>, config: AdamW8bitConfig) -> Result<Self> {
        config.validate()?;
        let moments = params
            .iter()
            .map(|(_, var)| {
                let n = var.elem_count();
                Moments::zeros(n, n >= config.min_8bit_size)
            })
            .collect();
        Ok(AdamW8bit {
            config,
            params,
            moments,
            map1: dynamic_map(true),
            map2: dynamic_map(false),
            step: 0,
        })
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamW8bitConfig {
        &self.config
    }

    /// Bytes of optimizer state held (codes plus block absmax, or f32 moments).
    pub fn state_bytes(&self) -> usize {
        self.moments.iter().map(Moments::bytes).sum()
    }

    fn consts(&self, lr: f64) -> StepConsts {
        let c = &self.config;
        let t = self.step as i32;
        let (beta1, beta2, lr) = (c.beta1 as f32, c.beta2 as f32, lr as f32);
        let correction1 = 1.0 - beta1.powi(t);
        let correction2 = (1.0 - beta2.powi(t)).sqrt();
        StepConsts {
            beta1,
            beta2,
            step_size: -lr * correction2 / correction1,
            eps_hat: c.eps as f32 * correction2,
            decay: if c.weight_decay > 0.0 {
                1.0 - lr * c.weight_decay as f32
            } else {
                1.0
            },
        }
    }
}

/// One 8-bit step over a block-quantized parameter (all slices of one parameter).
#[allow(clippy::too_many_arguments)]
fn step_quantized(
    k: &StepConsts,
    map1: &[f32; 256],
    map2: &[f32; 256],
    p: &mut [f32],
    g: &[f32],
    state1: &mut [u8],
    state2: &mut [u8],
    absmax1: &mut [f32],
    absmax2: &mut [f32],
) {
    let mut m = vec![0f32; STATE_BLOCKSIZE];
    let mut v = vec![0f32; STATE_BLOCKSIZE];
    for (b, start) in (0..p.len()).step_by(STATE_BLOCKSIZE).enumerate() {
        let end = (start + STATE_BLOCKSIZE).min(p.len());
        let len = end - start;
        let (mut max1, mut max2) = (f32::MIN, f32::MIN);
        for j in 0..len {
            let i = start + j;
            let gi = g[i];
            let (mj, vj) = if gi.is_finite() {
                let m_old = map1[usize::from(state1[i])] * absmax1[b];
                let v_old = map2[usize::from(state2[i])] * absmax2[b];
                k.moments(m_old, v_old, gi)
            } else {
                (0.0, 0.0)
            };
            m[j] = mj;
            v[j] = vj;
            max1 = max1.max(mj.abs());
            max2 = max2.max(vj.abs());
        }
        absmax1[b] = max1;
        absmax2[b] = max2;
        for j in 0..len {
            let i = start + j;
            if g[i].is_finite() {
                p[i] = k.apply(p[i], m[j], v[j]);
            }
            let mut c1 = quantize_to_map(map1, m[j] / max1);
            if map1[usize::from(c1)].is_sign_negative() != m[j].is_sign_negative() {
                c1 = if m[j] > 0.0 {
                    c1.wrapping_add(1)
                } else {
                    c1.wrapping_sub(1)
                };
            }
            state1[i] = c1;
            state2[i] = quantize_to_map(map2, v[j] / max2);
        }
    }
}

/// One step over a small parameter with f32 moments.
fn step_full(
    k: &StepConsts,
    p: &mut [f32],
    g: &[f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
) {
    for i in 0..p.len() {
        let (m, v) = k.moments(exp_avg[i], exp_avg_sq[i], g[i]);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        p[i] = k.apply(p[i], m, v);
    }
}

fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

impl Optimizer for AdamW8bit {
    fn step(&mut self, grads: &Grads, lr: f64) -> Result<()> {
        grads.check_against(&self.params)?;
        self.step += 1;
        let k = self.consts(lr);
        for (((_, var), g), moments) in self
            .params
            .iter()
            .zip(grads.tensors())
            .zip(self.moments.iter_mut())
        {
            let g = host_f32(g)?;
            let mut p = host_f32(var.as_tensor())?;
            match moments {
                Moments::Quantized {
                    state1,
                    state2,
                    absmax1,
                    absmax2,
                } => step_quantized(
                    &k, &self.map1, &self.map2, &mut p, &g, state1, state2, absmax1, absmax2,
                ),
                Moments::Full {
                    exp_avg,
                    exp_avg_sq,
                } => step_full(&k, &mut p, &g, exp_avg, exp_avg_sq),
            }
            let new = Tensor::from_vec(p, var.dims(), var.device())?.to_dtype(var.dtype())?;
            var.set(&new)?;
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
        let cpu = Device::Cpu;
        let mut tensors = HashMap::new();
        for ((name, _), moments) in self.params.iter().zip(&self.moments) {
            match moments {
                Moments::Quantized {
                    state1,
                    state2,
                    absmax1,
                    absmax2,
                } => {
                    let n = state1.len();
                    let nb = absmax1.len();
                    tensors.insert(
                        format!("{name}.state1"),
                        Tensor::from_slice(state1, n, &cpu)?,
                    );
                    tensors.insert(
                        format!("{name}.state2"),
                        Tensor::from_slice(state2, n, &cpu)?,
                    );
                    tensors.insert(
                        format!("{name}.absmax1"),
                        Tensor::from_slice(absmax1, nb, &cpu)?,
                    );
                    tensors.insert(
                        format!("{name}.absmax2"),
                        Tensor::from_slice(absmax2, nb, &cpu)?,
                    );
                }
                Moments::Full {
                    exp_avg,
                    exp_avg_sq,
                } => {
                    let n = exp_avg.len();
                    tensors.insert(
                        format!("{name}.exp_avg"),
                        Tensor::from_slice(exp_avg, n, &cpu)?,
                    );
                    tensors.insert(
                        format!("{name}.exp_avg_sq"),
                        Tensor::from_slice(exp_avg_sq, n, &cpu)?,
                    );
                }
            }
        }
        Ok(OptimizerState {
            tensors,
            meta: make_meta("adamw8bit", self.step, &self.config, &self.params)?,
        })
    }

    fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        check_meta(state, "adamw8bit", &self.config, &self.params)?;
        let mut loaded = Vec::with_capacity(self.params.len());
        for ((name, var), current) in self.params.iter().zip(&self.moments) {
            let n = var.elem_count();
            let nb = n.div_ceil(STATE_BLOCKSIZE);
            let get_u8 = |s: &str, len: usize| -> Result<Vec<u8>> {
                let t = saved_tensor(state, &format!("{name}.{s}"), DType::U8, &[len])?;
                Ok(t.to_vec1::<u8>()?)
            };
            let get_f32 = |s: &str, len: usize| -> Result<Vec<f32>> {
                let t = saved_tensor(state, &format!("{name}.{s}"), DType::F32, &[len])?;
                Ok(t.to_vec1::<f32>()?)
            };
            loaded.push(match current {
                Moments::Quantized { .. } => Moments::Quantized {
                    state1: get_u8("state1", n)?,
                    state2: get_u8("state2", n)?,
                    absmax1: get_f32("absmax1", nb)?,
                    absmax2: get_f32("absmax2", nb)?,
                },
                Moments::Full { .. } => Moments::Full {
                    exp_avg: get_f32("exp_avg", n)?,
                    exp_avg_sq: get_f32("exp_avg_sq", n)?,
                },
            });
        }
        self.moments = loaded;
        self.step = state.meta.step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    #[test]
    fn state_memory_is_about_two_bytes_per_parameter() -> Result<()> {
        let var = Var::zeros((64, 256), DType::F32, &Device::Cpu)?;
        let opt = AdamW8bit::new(vec![("w".into(), var)], AdamW8bitConfig::default())?;
        let per_param = opt.state_bytes() as f64 / (64.0 * 256.0);
        // 2 codes + 2 f32 absmax per 256 values = 2.03125 bytes.
        assert!((per_param - 2.03125).abs() < 1e-12, "{per_param}");
        Ok(())
    }

    #[test]
    fn small_parameters_keep_f32_moments() -> Result<()> {
        let var = Var::zeros((8, 64), DType::F32, &Device::Cpu)?;
        let opt = AdamW8bit::new(vec![("a".into(), var)], AdamW8bitConfig::default())?;
        assert_eq!(opt.state_bytes(), 8 * 8 * 64);
        Ok(())
    }

    #[test]
    fn non_finite_gradient_leaves_the_parameter_alone() -> Result<()> {
        let var = Var::from_slice(&[1.0f32; 300], 300, &Device::Cpu)?;
        let config = AdamW8bitConfig {
            min_8bit_size: 0,
            ..Default::default()
        };
        let mut opt = AdamW8bit::new(vec![("w".into(), var.clone())], config)?;
        let mut g = vec![0.1f32; 300];
        g[5] = f32::NAN;
        g[260] = f32::INFINITY;
        opt.step(
            &Grads::new(vec![Tensor::from_vec(g, 300, &Device::Cpu)?]),
            0.01,
        )?;
        let p = var.as_tensor().to_vec1::<f32>()?;
        assert_eq!(p[5], 1.0);
        assert_eq!(p[260], 1.0);
        assert!(p[0] < 1.0 && p[299] < 1.0);
        Ok(())
    }
}
