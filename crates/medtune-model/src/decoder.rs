//! One decoder-only transformer for all six families, built from differentiable ops.
//!
//! The family only decides names, the projection layout (separate or fused), the norm kind,
//! positions (RoPE or learned) and whether attention and MLP run in sequence or in parallel.
//! [`DecoderLm::forward`] is the training/scoring path (no cache); [`DecoderLm::forward_step`]
//! is the incremental path with a [`KvCache`], used only by generation.

use crate::attention::{Attention, LayerCache, QkvProj};
use crate::config::{Arch, ModelConfig, NormKind};
use crate::error::{Error, Result};
use crate::linear::{BaseWeight, Linear};
use crate::mask::{causal_bias, explicit_bias};
use crate::mlp::{Mlp, MlpKind};
use crate::names::Names;
use crate::nf4::{Nf4Options, Nf4Tensor};
use crate::norm::Norm;
use crate::rope::Rope;
use crate::weights::Weights;
use candle_core::{DType, Device, Module, Tensor};

/// One decoder layer.
#[derive(Clone)]
pub struct Block {
    /// Norm before attention (and before the MLP for Phi-2's parallel block).
    pub attn_norm: Norm,
    /// Self-attention.
    pub attn: Attention,
    /// Norm before the MLP; `None` for parallel blocks.
    pub mlp_norm: Option<Norm>,
    /// Feed-forward block.
    pub mlp: Mlp,
}

/// Per-pass inputs shared by all layers: RoPE (cos, sin) [B, 1, T, R] and the bias [B, 1, T, S].
pub struct LayerContext {
    cos_sin: Option<(Tensor, Tensor)>,
    bias: Tensor,
}

impl LayerContext {
    /// This pass's RoPE (cos, sin) [B, 1, T, R], if the family uses RoPE.
    pub(crate) fn cos_sin(&self) -> Option<&(Tensor, Tensor)> {
        self.cos_sin.as_ref()
    }

    /// The additive attention bias [B or 1, 1, T, S] (f32).
    pub(crate) fn bias(&self) -> &Tensor {
        &self.bias
    }
}

impl Block {
    /// x [B, T, C] → [B, T, C].
    pub fn forward(
        &self,
        x: &Tensor,
        rope: Option<&Rope>,
        ctx: &LayerContext,
        cache: Option<&mut LayerCache>,
    ) -> candle_core::Result<Tensor> {
        let rope = match (rope, &ctx.cos_sin) {
            (Some(r), Some((c, s))) => Some((r, c, s)),
            _ => None,
        };
        let h = self.attn_norm.forward(x)?;
        let a = self.attn.forward(&h, rope, &ctx.bias, cache)?;
        match &self.mlp_norm {
            // Phi-2: attention and MLP both read the same normed input.
            None => (x + a)? + self.mlp.forward(&h)?,
            Some(norm) => {
                let x = (x + a)?;
                let m = self.mlp.forward(&norm.forward(&x)?)?;
                x + m
            }
        }
    }
}

/// Cached keys/values of every layer plus the padding mask of all cached positions.
#[derive(Clone, Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
}

impl KvCache {
    /// An empty cache for `n` layers.
    pub fn new(n: usize) -> Self {
        Self {
            layers: vec![LayerCache::default(); n],
        }
    }

    /// Number of cached positions S.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerCache::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the batch rows in `rows` (u32 [B']).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for l in &mut self.layers {
            l.select_rows(rows)?;
        }
        Ok(())
    }
}

/// Inputs of a full (training/scoring) forward pass.
#[derive(Clone, Copy, Default)]
pub struct ForwardInput<'a> {
    /// Token ids [B, T], any integer dtype (or integral floats).
    pub input_ids: Option<&'a Tensor>,
    /// 0/1 padding mask [B, T]; `None` = no padding.
    pub attention_mask: Option<&'a Tensor>,
    /// Position ids [B, T]; `None` = 0..T for every row (HF's default).
    pub position_ids: Option<&'a Tensor>,
    /// Explicit 0/1 visibility [B, T, T] replacing causal + padding (packed sequences).
    pub mask: Option<&'a Tensor>,
}

impl<'a> ForwardInput<'a> {
    /// Just token ids.
    pub fn ids(input_ids: &'a Tensor) -> Self {
        Self {
            input_ids: Some(input_ids),
            ..Self::default()
        }
    }

    /// Token ids plus a padding mask.
    pub fn with_mask(input_ids: &'a Tensor, attention_mask: &'a Tensor) -> Self {
        Self {
            input_ids: Some(input_ids),
            attention_mask: Some(attention_mask),
            ..Self::default()
        }
    }
}

/// A causal language model: embeddings → layers → final norm → LM head.
#[derive(Clone)]
pub struct DecoderLm {
    config: ModelConfig,
    embed: Tensor,
    positions: Option<Tensor>,
    layers: Vec<Block>,
    norm: Norm,
    lm_head: Linear,
    tied_head: bool,
    rope: Option<Rope>,
    dtype: DType,
    device: Device,
}

impl DecoderLm {
    /// Builds the model for `config` from `weights` (HF names).
    pub fn load(config: &ModelConfig, weights: &Weights) -> Result<Self> {
        let c = config;
        let n = Names::new(c.arch);
        let (hid, v) = (c.hidden_size, c.vocab_size);
        let embed = weights.tensor(n.embed(), &[v, hid])?;
        let positions = match c.arch {
            Arch::Gpt2 => Some(weights.tensor(n.positions(), &[c.max_position_embeddings, hid])?),
            _ => None,
        };
        let layers = (0..c.num_layers)
            .map(|i| load_block(c, &n, &n.layer(i), weights))
            .collect::<Result<Vec<_>>>()?;
        let norm = load_norm(c, n.final_norm(), weights)?;
        let head_name = n.lm_head();
        let head_weight = format!("{head_name}.weight");
        let tied_head = !weights.contains(&head_weight) && c.tie_word_embeddings;
        let lm_head = if !tied_head {
            let bias = if c.lm_head_bias {
                Some(weights.tensor(&format!("{head_name}.bias"), &[v])?)
            } else {
                None
            };
            Linear::new(
                head_name,
                weights.linear(&head_weight, v, hid, false)?,
                bias,
            )
        } else {
            // Tied head: reuse the embedding, quantized when the source keeps it quantized.
            let base = match weights.quantized(n.embed()) {
                Some(q) => BaseWeight::Quantized(q),
                None => BaseWeight::Dense(embed.clone()),
            };
            Linear::new(head_name, base, None)
        };
        let rope = match &c.rope {
            Some(r) => Some(Rope::new(
                r,
                c.max_position_embeddings,
                weights.dtype(),
                weights.device(),
            )?),
            None => None,
        };
        Ok(Self {
            config: c.clone(),
            embed,
            positions,
            layers,
            norm,
            lm_head,
            tied_head,
            rope,
            dtype: weights.dtype(),
            device: weights.device().clone(),
        })
    }

    /// The normalised config.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The decoder layers.
    pub fn layers(&self) -> &[Block] {
        &self.layers
    }

    /// Every linear layer with its HF module name, in model order (lm_head last).
    pub fn linears(&self) -> Vec<&Linear> {
        let mut out = Vec::new();
        for b in &self.layers {
            out.extend(b.attn.linears());
            out.extend(b.mlp.linears());
        }
        out.push(&self.lm_head);
        out
    }

    /// Every linear layer, mutable, for attaching adapters or swapping base storage.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut out = Vec::new();
        for b in &mut self.layers {
            out.extend(b.attn.linears_mut());
            out.extend(b.mlp.linears_mut());
        }
        out.push(&mut self.lm_head);
        out
    }

    /// Replaces every dense linear weight except the LM head by its NF4 quantization (QLoRA's
    /// frozen base; bitsandbytes leaves the output head unquantized too) and returns how many
    /// were replaced. A GGUF base keeps its own quantization: its GGML weights are an error.
    /// bitsandbytes quantizes each weight in the dtype the model was loaded in; to match it, pass
    /// `round_to_bf16: false` (a bf16 model's weights are already bf16).
    pub fn quantize_nf4(&mut self, options: Nf4Options) -> Result<usize> {
        let mut n = 0;
        for l in self.linears_mut() {
            if l.name() == "lm_head" {
                continue;
            }
            let q = match l.base() {
                BaseWeight::Dense(w) => Nf4Tensor::quantize(w, options)?,
                BaseWeight::Nf4(_) => continue,
                BaseWeight::Quantized(_) => {
                    return Err(Error::input(
                        l.name(),
                        "is GGML-quantized (GGUF); NF4 quantization needs a safetensors base",
                    ))
                }
            };
            l.set_base(BaseWeight::Nf4(std::sync::Arc::new(q)))?;
            n += 1;
        }
        Ok(n)
    }

    /// Replaces every GGML-quantized base weight by its dense dequantization in the compute
    /// dtype. GGML's quantized matmul also quantizes the activations to 8 bits; on SmolLM2-135M
    /// (Q4_1) that shifts the logits by ~3.5% relative, enough to change greedy answers, so
    /// inference uses the dense path when memory allows.
    pub fn dequantize_linears(&mut self) -> Result<()> {
        let dtype = self.dtype;
        for l in self.linears_mut() {
            if let BaseWeight::Quantized(_) = l.base() {
                let w = l.base().to_dense(dtype)?;
                l.set_base(BaseWeight::Dense(w))?;
            }
        }
        Ok(())
    }

    /// The linear layer with this HF module name.
    pub fn linear_mut(&mut self, name: &str) -> Option<&mut Linear> {
        self.linears_mut().into_iter().find(|l| l.name() == name)
    }

    /// Total number of parameters (embedding counted once when tied).
    pub fn num_params(&self) -> usize {
        let tied = self.tied_head;
        let norms: usize = self
            .layers
            .iter()
            .map(|b| b.attn_norm.num_params() + b.mlp_norm.as_ref().map_or(0, Norm::num_params))
            .sum();
        let linears: usize = self
            .linears()
            .iter()
            .filter(|l| !(tied && l.name() == "lm_head"))
            .map(|l| l.num_params())
            .sum();
        let head_bias = if tied {
            self.lm_head.bias().map_or(0, |b| b.elem_count())
        } else {
            0
        };
        self.embed.elem_count()
            + self.positions.as_ref().map_or(0, |p| p.elem_count())
            + norms
            + self.norm.num_params()
            + linears
            + head_bias
    }

    /// Token (+ learned position) embeddings: ids [B, T] u32, pos [B, T] u32 → [B, T, C].
    pub fn embed(&self, ids: &Tensor, pos: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let c = self.config.hidden_size;
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, c))?;
        if let Some(p) = &self.positions {
            x = (x + p.index_select(&pos.flatten_all()?, 0)?.reshape((b, t, c))?)?;
        }
        Ok(x)
    }

    /// Final norm and LM head: h [B, T, C] → logits [B, T, V] (f32).
    pub fn head(&self, h: &Tensor) -> Result<Tensor> {
        Ok(self.head_logits(h)?.to_dtype(DType::F32)?)
    }

    /// Final norm and LM head: h [B, T, C] → logits [B, T, V] in the model dtype (no f32 copy,
    /// for the fused loss, which reads bf16 logits directly).
    pub fn head_logits(&self, h: &Tensor) -> Result<Tensor> {
        let h = self.norm.forward(h)?;
        Ok(self.lm_head.forward(&h)?)
    }

    /// The final norm and the LM head (for the hand-written head backward).
    pub(crate) fn head_parts(&self) -> (&Norm, &Linear) {
        (&self.norm, &self.lm_head)
    }

    /// RoPE tables for this pass plus the attention bias, shared by every layer.
    pub fn layer_context(&self, pos: &Tensor, bias: Tensor) -> Result<LayerContext> {
        let cos_sin = match &self.rope {
            Some(r) => Some(r.cos_sin(pos)?),
            None => None,
        };
        Ok(LayerContext { cos_sin, bias })
    }

    /// The RoPE tables, if the family uses RoPE.
    pub fn rope(&self) -> Option<&Rope> {
        self.rope.as_ref()
    }

    /// Full forward pass without cache: returns logits [B, T, V] (f32).
    pub fn forward(&self, input: &ForwardInput) -> Result<Tensor> {
        let (mut x, ctx) = self.prepare(input)?;
        for layer in &self.layers {
            x = layer.forward(&x, self.rope.as_ref(), &ctx, None)?;
        }
        self.head(&x)
    }

    /// Checks the inputs of a full pass and returns the embeddings [B, T, C] and the per-pass
    /// [`LayerContext`]; `forward` is `prepare`, every layer, then [`Self::head`].
    pub fn prepare(&self, input: &ForwardInput) -> Result<(Tensor, LayerContext)> {
        let ids = input
            .input_ids
            .ok_or_else(|| Error::input("input_ids", "missing"))?;
        let ids = self.check_ids(ids)?;
        let (b, t) = ids.dims2()?;
        let pos = match input.position_ids {
            Some(p) => self.check_positions(p, b, t)?,
            None => {
                self.check_length(t)?;
                Tensor::arange(0u32, t as u32, &self.device)?
                    .unsqueeze(0)?
                    .repeat((b, 1))?
            }
        };
        let bias = match input.mask {
            Some(m) => {
                if m.dims() != [b, t, t] {
                    return Err(Error::input(
                        "mask",
                        format!("shape {:?}, expected [{b}, {t}, {t}]", m.dims()),
                    ));
                }
                explicit_bias(m, &self.device)?
            }
            None => causal_bias(
                b,
                t,
                0,
                input.attention_mask,
                self.config.sliding_window,
                &self.device,
            )?,
        };
        let ctx = self.layer_context(&pos, bias)?;
        Ok((self.embed(&ids, &pos)?, ctx))
    }

    /// Incremental pass: appends ids [B, T] at `position_ids` [B, T] to the cache and returns
    /// logits [B, T, V] (f32). `attention_mask` [B, S + T] covers cached and new positions.
    pub fn forward_step(
        &self,
        ids: &Tensor,
        position_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let h = self.step_hidden(ids, position_ids, attention_mask, cache)?;
        self.head(&h)
    }

    /// Like [`Self::forward_step`] but returns only the last position's logits [B, 1, V]
    /// (generation needs no more, and the LM head is the largest matmul).
    pub fn forward_step_last(
        &self,
        ids: &Tensor,
        position_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let h = self.step_hidden(ids, position_ids, attention_mask, cache)?;
        let t = h.dim(1)?;
        self.head(&h.narrow(1, t - 1, 1)?)
    }

    fn step_hidden(
        &self,
        ids: &Tensor,
        position_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let ids = self.check_ids(ids)?;
        let (b, t) = ids.dims2()?;
        if cache.layers.len() != self.layers.len() {
            *cache = KvCache::new(self.layers.len());
        }
        let offset = cache.len();
        let pos = self.check_positions(position_ids, b, t)?;
        let bias = causal_bias(
            b,
            t,
            offset,
            attention_mask,
            self.config.sliding_window,
            &self.device,
        )?;
        let ctx = self.layer_context(&pos, bias)?;
        let mut x = self.embed(&ids, &pos)?;
        for (layer, c) in self.layers.iter().zip(cache.layers.iter_mut()) {
            x = layer.forward(&x, self.rope.as_ref(), &ctx, Some(c))?;
        }
        Ok(x)
    }

    /// Converts ids to u32 on the model device and checks they are in 0..V.
    fn check_ids(&self, ids: &Tensor) -> Result<Tensor> {
        if ids.rank() != 2 {
            return Err(Error::input(
                "input_ids",
                format!("shape {:?}, expected [B, T]", ids.dims()),
            ));
        }
        let vals = ids
            .to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .map_err(|e| Error::input("input_ids", e.to_string()))?;
        let v = self.config.vocab_size;
        if let Some((i, bad)) = vals
            .iter()
            .enumerate()
            .find(|(_, &x)| x < 0.0 || x >= v as f64 || x.fract() != 0.0)
        {
            return Err(Error::input(
                "input_ids",
                format!("token id {bad} at flat index {i} is out of range 0..{v}"),
            ));
        }
        let u: Vec<u32> = vals.iter().map(|&x| x as u32).collect();
        Ok(Tensor::from_vec(u, ids.dims(), &self.device)?)
    }

    fn check_length(&self, t: usize) -> Result<()> {
        let max = self.config.max_position_embeddings;
        if t > max {
            return Err(Error::input(
                "input_ids",
                format!("sequence length {t} exceeds max_position_embeddings {max}"),
            ));
        }
        Ok(())
    }

    fn check_positions(&self, p: &Tensor, b: usize, t: usize) -> Result<Tensor> {
        if p.dims() != [b, t] {
            return Err(Error::input(
                "position_ids",
                format!("shape {:?}, expected [{b}, {t}]", p.dims()),
            ));
        }
        let vals = p
            .to_dtype(DType::F64)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f64>())
            .map_err(|e| Error::input("position_ids", e.to_string()))?;
        let max = self.config.max_position_embeddings;
        if let Some(bad) = vals.iter().find(|&&x| x < 0.0 || x >= max as f64) {
            return Err(Error::input(
                "position_ids",
                format!("position {bad} is out of range 0..{max} (max_position_embeddings)"),
            ));
        }
        let u: Vec<u32> = vals.iter().map(|&x| x as u32).collect();
        Ok(Tensor::from_vec(u, (b, t), &self.device)?)
    }
}

fn load_norm(c: &ModelConfig, module: &str, w: &Weights) -> Result<Norm> {
    let weight = w.tensor(&format!("{module}.weight"), &[c.hidden_size])?;
    let bias = match c.norm {
        NormKind::LayerNorm => Some(w.tensor(&format!("{module}.bias"), &[c.hidden_size])?),
        NormKind::RmsNorm => None,
    };
    Ok(Norm::new(c.norm, weight, bias, c.norm_eps))
}

fn load_linear(
    w: &Weights,
    module: String,
    out_dim: usize,
    in_dim: usize,
    bias: bool,
    conv1d: bool,
) -> Result<Linear> {
    let base = w.linear(&format!("{module}.weight"), out_dim, in_dim, conv1d)?;
    let bias = if bias {
        Some(w.tensor(&format!("{module}.bias"), &[out_dim])?)
    } else {
        None
    };
    Ok(Linear::new(module, base, bias))
}

fn load_block(c: &ModelConfig, n: &Names, prefix: &str, w: &Weights) -> Result<Block> {
    let hid = c.hidden_size;
    let conv1d = c.arch == Arch::Gpt2;
    let m = |s: &str| format!("{prefix}.{s}");
    let qkv = match c.arch {
        Arch::Phi3 | Arch::Gpt2 => QkvProj::Fused(load_linear(
            w,
            m(n.fused_qkv()),
            c.q_dim() + 2 * c.kv_dim(),
            hid,
            c.qkv_bias,
            conv1d,
        )?),
        _ => {
            let [q, k, v] = n.qkv();
            QkvProj::Separate {
                q: load_linear(w, m(q), c.q_dim(), hid, c.qkv_bias, false)?,
                k: load_linear(w, m(k), c.kv_dim(), hid, c.qkv_bias, false)?,
                v: load_linear(w, m(v), c.kv_dim(), hid, c.qkv_bias, false)?,
            }
        }
    };
    let o = load_linear(w, m(n.attn_out()), hid, c.q_dim(), c.o_bias, conv1d)?;
    let attn = Attention::new(qkv, o, c.num_heads, c.num_kv_heads, c.head_dim);
    let inter = c.intermediate_size;
    let kind = match c.arch {
        Arch::Phi3 => MlpKind::FusedGated {
            gate_up: load_linear(w, m(n.fused_gate_up()), 2 * inter, hid, c.mlp_bias, false)?,
            down: load_linear(w, m(n.gated_mlp()[2]), hid, inter, c.mlp_bias, false)?,
        },
        Arch::Phi | Arch::Gpt2 => {
            let [fc1, fc2] = n.plain_mlp();
            MlpKind::Plain {
                fc1: load_linear(w, m(fc1), inter, hid, c.mlp_bias, conv1d)?,
                fc2: load_linear(w, m(fc2), hid, inter, c.mlp_bias, conv1d)?,
            }
        }
        _ => {
            let [g, u, d] = n.gated_mlp();
            MlpKind::Gated {
                gate: load_linear(w, m(g), inter, hid, c.mlp_bias, false)?,
                up: load_linear(w, m(u), inter, hid, c.mlp_bias, false)?,
                down: load_linear(w, m(d), hid, inter, c.mlp_bias, false)?,
            }
        }
    };
    let mlp_norm = match c.arch {
        Arch::Phi => None,
        _ => Some(load_norm(c, &m(n.mlp_norm()), w)?),
    };
    Ok(Block {
        attn_norm: load_norm(c, &m(n.attn_norm()), w)?,
        attn,
        mlp_norm,
        mlp: Mlp::new(kind, c.activation),
    })
}
