//! HF tensor/module names of each family, so the decoder code is written once.

use crate::config::Arch;

/// Module names of one family (weights are `<module>.weight` / `<module>.bias`).
pub struct Names {
    arch: Arch,
}

impl Names {
    /// Names for `arch`.
    pub fn new(arch: Arch) -> Self {
        Self { arch }
    }

    fn gpt2(&self) -> bool {
        self.arch == Arch::Gpt2
    }

    /// Token embedding tensor.
    pub fn embed(&self) -> &'static str {
        if self.gpt2() {
            "transformer.wte.weight"
        } else {
            "model.embed_tokens.weight"
        }
    }

    /// Learned position embedding tensor (GPT-2 only).
    pub fn positions(&self) -> &'static str {
        "transformer.wpe.weight"
    }

    /// Final norm module.
    pub fn final_norm(&self) -> &'static str {
        match self.arch {
            Arch::Gpt2 => "transformer.ln_f",
            Arch::Phi => "model.final_layernorm",
            _ => "model.norm",
        }
    }

    /// LM head module.
    pub fn lm_head(&self) -> &'static str {
        "lm_head"
    }

    /// Prefix of layer `i`.
    pub fn layer(&self, i: usize) -> String {
        if self.gpt2() {
            format!("transformer.h.{i}")
        } else {
            format!("model.layers.{i}")
        }
    }

    /// Norm before attention.
    pub fn attn_norm(&self) -> &'static str {
        if self.gpt2() {
            "ln_1"
        } else {
            "input_layernorm"
        }
    }

    /// Norm before the MLP (unused by Phi-2's parallel block).
    pub fn mlp_norm(&self) -> &'static str {
        if self.gpt2() {
            "ln_2"
        } else {
            "post_attention_layernorm"
        }
    }

    /// Separate q, k, v projections.
    pub fn qkv(&self) -> [&'static str; 3] {
        ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]
    }

    /// Fused q/k/v projection (Phi-3, GPT-2).
    pub fn fused_qkv(&self) -> &'static str {
        if self.gpt2() {
            "attn.c_attn"
        } else {
            "self_attn.qkv_proj"
        }
    }

    /// Attention output projection.
    pub fn attn_out(&self) -> &'static str {
        match self.arch {
            Arch::Gpt2 => "attn.c_proj",
            Arch::Phi => "self_attn.dense",
            _ => "self_attn.o_proj",
        }
    }

    /// Gated MLP: gate, up, down.
    pub fn gated_mlp(&self) -> [&'static str; 3] {
        ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    }

    /// Phi-3 fused gate/up projection.
    pub fn fused_gate_up(&self) -> &'static str {
        "mlp.gate_up_proj"
    }

    /// Plain MLP: in, out.
    pub fn plain_mlp(&self) -> [&'static str; 2] {
        if self.gpt2() {
            ["mlp.c_fc", "mlp.c_proj"]
        } else {
            ["mlp.fc1", "mlp.fc2"]
        }
    }
}
