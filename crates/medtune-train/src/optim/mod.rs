//! Optimizers over named candle [`Var`]s, with state that saves and restores exactly.
//!
//! - [`Grads`]: one gradient per trainable parameter, in the optimizer's parameter order.
//! - [`Optimizer`]: `step(grads, lr)`; the learning rate comes from a
//!   [`Schedule`](crate::schedule::Schedule) each step.
//! - [`AdamW`] (PyTorch's `torch.optim.AdamW`) and [`AdamW8bit`] (bitsandbytes' blockwise 8-bit
//!   AdamW).
//! - [`OptimizerState`]: a tensor map (write it with safetensors) plus [`OptimizerMeta`] (write it
//!   as JSON): the step counter, hyperparameters and parameter names and shapes, checked on load.
//! - [`GradAccumulator`]: sums gradients over micro-batches.

mod accumulate;
mod adamw;
mod adamw8bit;

pub use accumulate::GradAccumulator;
pub use adamw::{AdamW, AdamWConfig};
pub use adamw8bit::{AdamW8bit, AdamW8bitConfig};

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A trainable parameter and its name (PEFT key names for LoRA tensors).
pub type NamedVar = (String, Var);

/// One gradient per trainable parameter, in the order of the optimizer's parameters.
#[derive(Debug, Clone)]
pub struct Grads {
    tensors: Vec<Tensor>,
}

impl Grads {
    /// Wraps gradients given in parameter order.
    pub fn new(tensors: Vec<Tensor>) -> Self {
        Grads { tensors }
    }

    /// Picks each parameter's gradient out of a backward pass; a parameter without one is an
    /// error naming it (a silently frozen LoRA tensor is a bug).
    pub fn from_store(store: &GradStore, params: &[NamedVar]) -> Result<Self> {
        let tensors = params
            .iter()
            .map(|(name, var)| {
                store
                    .get(var.as_tensor())
                    .cloned()
                    .ok_or_else(|| Error::MissingGrad { name: name.clone() })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Grads { tensors })
    }

    /// The gradients, in parameter order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// Number of gradients.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// True when there are no gradients.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Every gradient multiplied by `factor` (e.g. 1 / supervised tokens of the whole batch).
    pub fn scale(&self, factor: f64) -> Result<Grads> {
        let tensors = self
            .tensors
            .iter()
            .map(|t| t.affine(factor, 0.0))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Grads { tensors })
    }

    /// Element-wise sum with `other` (same parameters, same order).
    pub fn add(&self, other: &Grads) -> Result<Grads> {
        if self.len() != other.len() {
            return Err(Error::GradMismatch {
                name: format!("#{}", self.len().min(other.len())),
                message: format!("{} gradients added to {}", other.len(), self.len()),
            });
        }
        let tensors = self
            .tensors
            .iter()
            .zip(&other.tensors)
            .enumerate()
            .map(|(i, (a, b))| {
                if a.dims() != b.dims() {
                    return Err(Error::GradMismatch {
                        name: format!("#{i}"),
                        message: format!("shape {:?} added to {:?}", b.dims(), a.dims()),
                    });
                }
                Ok(a.add(b)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Grads { tensors })
    }

    /// Checks that there is one gradient of the right shape per parameter.
    pub(crate) fn check_against(&self, params: &[NamedVar]) -> Result<()> {
        if self.len() != params.len() {
            return Err(Error::GradMismatch {
                name: format!("#{}", self.len().min(params.len())),
                message: format!("{} gradients for {} parameters", self.len(), params.len()),
            });
        }
        for ((name, var), g) in params.iter().zip(&self.tensors) {
            if var.dims() != g.dims() {
                return Err(Error::GradMismatch {
                    name: name.clone(),
                    message: format!("shape {:?}, parameter has {:?}", g.dims(), var.dims()),
                });
            }
        }
        Ok(())
    }
}

/// What an optimizer needs from the training loop.
pub trait Optimizer {
    /// Applies one update with learning rate `lr` (already scheduled).
    fn step(&mut self, grads: &Grads, lr: f64) -> Result<()>;

    /// Number of updates applied so far.
    fn steps_taken(&self) -> u64;

    /// The parameters being optimized, in gradient order.
    fn params(&self) -> &[NamedVar];

    /// A snapshot of the optimizer state, exact to the bit.
    fn state(&self) -> Result<OptimizerState>;

    /// Restores a snapshot taken by [`Optimizer::state`] from an optimizer of the same kind,
    /// hyperparameters and parameters.
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;
}

/// Name and shape of one optimized parameter, recorded in the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamMeta {
    /// The parameter's name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// The JSON half of an optimizer state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerMeta {
    /// `adamw` or `adamw8bit`.
    pub kind: String,
    /// Updates applied so far.
    pub step: u64,
    /// The hyperparameters, as the optimizer's config serializes them.
    pub config: serde_json::Value,
    /// The parameters, in order.
    pub params: Vec<ParamMeta>,
}

/// A full optimizer state: per-parameter tensors (named `<param>.<state>`) and the JSON part.
#[derive(Debug, Clone)]
pub struct OptimizerState {
    /// State tensors, e.g. `lora_A.weight.exp_avg`; save with `candle_core::safetensors::save`.
    pub tensors: HashMap<String, Tensor>,
    /// Step counter, hyperparameters and parameter list.
    pub meta: OptimizerMeta,
}

/// Builds the JSON part for `params`.
pub(crate) fn make_meta<C: Serialize>(
    kind: &str,
    step: u64,
    config: &C,
    params: &[NamedVar],
) -> Result<OptimizerMeta> {
    let config = serde_json::to_value(config)
        .map_err(|e| Error::state("config", format!("cannot serialize: {e}")))?;
    Ok(OptimizerMeta {
        kind: kind.to_string(),
        step,
        config,
        params: params
            .iter()
            .map(|(name, var)| ParamMeta {
                name: name.clone(),
                shape: var.dims().to_vec(),
            })
            .collect(),
    })
}

/// Checks that a saved state was taken from an optimizer of this kind, config and parameters.
pub(crate) fn check_meta<C: Serialize>(
    state: &OptimizerState,
    kind: &str,
    config: &C,
    params: &[NamedVar],
) -> Result<()> {
    let expected = make_meta(kind, state.meta.step, config, params)?;
    let meta = &state.meta;
    if meta.kind != expected.kind {
        return Err(Error::state(
            "kind",
            format!("saved by `{}`, loading into `{kind}`", meta.kind),
        ));
    }
    if meta.config != expected.config {
        return Err(Error::state(
            "config",
            format!("saved with {}, now {}", meta.config, expected.config),
        ));
    }
    if meta.params != expected.params {
        let first = meta
            .params
            .iter()
            .zip(&expected.params)
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("saved {}{:?}, now {}{:?}", a.name, a.shape, b.name, b.shape))
            .unwrap_or_else(|| {
                format!(
                    "saved {} parameters, now {}",
                    meta.params.len(),
                    expected.params.len()
                )
            });
        return Err(Error::state("params", first));
    }
    Ok(())
}

/// Fetches a saved state tensor and checks its dtype and shape.
pub(crate) fn saved_tensor<'a>(
    state: &'a OptimizerState,
    name: &str,
    dtype: DType,
    shape: &[usize],
) -> Result<&'a Tensor> {
    let t = state
        .tensors
        .get(name)
        .ok_or_else(|| Error::state(name, "missing"))?;
    if t.dtype() != dtype || t.dims() != shape {
        return Err(Error::state(
            name,
            format!(
                "expected {dtype:?} {shape:?}, found {:?} {:?}",
                t.dtype(),
                t.dims()
            ),
        ));
    }
    Ok(t)
}

/// Checks an optimizer hyperparameter.
pub(crate) fn check_range(field: &str, value: f64, ok: bool, rule: &str) -> Result<()> {
    if !ok || !value.is_finite() {
        return Err(Error::config(field, format!("{value} must be {rule}")));
    }
    Ok(())
}
