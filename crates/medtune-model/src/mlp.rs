//! The feed-forward block: gated (SwiGLU), fused gated (Phi-3) or plain two-layer (Phi-2, GPT-2).

use crate::config::Activation;
use crate::linear::Linear;
use candle_core::{Module, Result, Tensor, D};

/// Which projections the MLP has.
#[derive(Clone)]
pub enum MlpKind {
    /// `down(act(gate(x)) * up(x))`.
    Gated {
        /// [I, C]
        gate: Linear,
        /// [I, C]
        up: Linear,
        /// [C, I]
        down: Linear,
    },
    /// Phi-3: `gate_up` [2I, C] whose first half is the gate, second half the up projection.
    FusedGated {
        /// [2I, C]
        gate_up: Linear,
        /// [C, I]
        down: Linear,
    },
    /// `fc2(act(fc1(x)))` (GPT-2 names: `c_fc`, `c_proj`).
    Plain {
        /// [I, C]
        fc1: Linear,
        /// [C, I]
        fc2: Linear,
    },
}

/// Feed-forward block: x [B, T, C] → [B, T, C].
#[derive(Clone)]
pub struct Mlp {
    /// The projections.
    pub kind: MlpKind,
    activation: Activation,
}

impl Mlp {
    /// Builds the block.
    pub fn new(kind: MlpKind, activation: Activation) -> Self {
        Self { kind, activation }
    }

    /// Whether the activation is SiLU (SwiGLU for gated kinds).
    pub(crate) fn is_silu(&self) -> bool {
        matches!(self.activation, Activation::Silu)
    }

    /// Every linear layer, for adapter attachment.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        match &mut self.kind {
            MlpKind::Gated { gate, up, down } => vec![gate, up, down],
            MlpKind::FusedGated { gate_up, down } => vec![gate_up, down],
            MlpKind::Plain { fc1, fc2 } => vec![fc1, fc2],
        }
    }

    /// Every linear layer, read-only.
    pub fn linears(&self) -> Vec<&Linear> {
        match &self.kind {
            MlpKind::Gated { gate, up, down } => vec![gate, up, down],
            MlpKind::FusedGated { gate_up, down } => vec![gate_up, down],
            MlpKind::Plain { fc1, fc2 } => vec![fc1, fc2],
        }
    }

    /// Whether `silu(gate) * up` runs as one fused kernel ([`crate::fused::swiglu`]): SiLU
    /// gating on CUDA.
    fn fused_swiglu(&self, x: &Tensor) -> bool {
        matches!(self.activation, Activation::Silu) && crate::fused::enabled("swiglu", x)
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        match self.activation {
            Activation::Silu => x.silu(),
            Activation::GeluTanh => x.gelu(),
            Activation::Gelu => x.gelu_erf(),
            Activation::Relu => x.relu(),
        }
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.kind {
            MlpKind::Gated { gate, up, down } => {
                if self.fused_swiglu(x) {
                    return down
                        .forward(&crate::fused::swiglu(&gate.forward(x)?, &up.forward(x)?)?);
                }
                down.forward(&(self.act(&gate.forward(x)?)? * up.forward(x)?)?)
            }
            MlpKind::FusedGated { gate_up, down } => {
                let gu = gate_up.forward(x)?;
                if self.fused_swiglu(x) {
                    // Reads both halves in place and writes the packed gradient directly.
                    return down.forward(&crate::fused::swiglu_packed(&gu)?);
                }
                let i = gu.dim(D::Minus1)? / 2;
                let gate = gu.narrow(D::Minus1, 0, i)?;
                let up = gu.narrow(D::Minus1, i, i)?;
                down.forward(&(self.act(&gate)? * up)?)
            }
            MlpKind::Plain { fc1, fc2 } => fc2.forward(&self.act(&fc1.forward(x)?)?),
        }
    }
}
