//! Multi-head / grouped-query self-attention with an optional KV cache (generation only).
//!
//! Shapes: x [B, T, C]; q [B, H, T, D]; k, v [B, H_kv, S, D]; bias [B, 1, T, S].
//! Grouped queries are handled without copying K/V: the `H / H_kv` query heads that share a
//! KV head are stacked along the time axis, q → [B, H_kv, (H/H_kv)·T, D].

use crate::linear::Linear;
use crate::rope::Rope;
use candle_core::{DType, Module, Result, Tensor, D};

/// The q/k/v projections: separate, or one fused matrix (Phi-3 `qkv_proj`, GPT-2 `c_attn`).
#[derive(Clone)]
pub enum QkvProj {
    /// `q_proj`, `k_proj`, `v_proj`.
    Separate {
        /// [H·D, C]
        q: Linear,
        /// [H_kv·D, C]
        k: Linear,
        /// [H_kv·D, C]
        v: Linear,
    },
    /// One [(H + 2·H_kv)·D, C] matrix; rows are q, then k, then v.
    Fused(Linear),
}

/// Cached keys and values of one layer: k, v [B, H_kv, S, D].
#[derive(Clone, Default)]
pub struct LayerCache {
    kv: Option<(Tensor, Tensor)>,
}

impl LayerCache {
    /// Number of cached positions S.
    pub fn len(&self) -> usize {
        self.kv.as_ref().map_or(0, |(k, _)| k.dims()[2])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.kv.is_none()
    }

    /// Keeps only the batch rows in `rows` (u32 [B']), e.g. when finished sequences are dropped.
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        if let Some((k, v)) = &self.kv {
            self.kv = Some((k.index_select(rows, 0)?, v.index_select(rows, 0)?));
        }
        Ok(())
    }
}

/// Self-attention of one decoder layer.
#[derive(Clone)]
pub struct Attention {
    /// q/k/v projections.
    pub qkv: QkvProj,
    /// Output projection [C, H·D] (`o_proj`, `dense`, `c_proj`).
    pub o: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    /// Builds the layer; the projections must match the head counts.
    pub fn new(
        qkv: QkvProj,
        o: Linear,
        num_heads: usize,
        num_kv_heads: usize,
        head_dim: usize,
    ) -> Self {
        Self {
            qkv,
            o,
            num_heads,
            num_kv_heads,
            head_dim,
        }
    }

    /// (heads, KV heads, head dim).
    pub(crate) fn heads(&self) -> (usize, usize, usize) {
        (self.num_heads, self.num_kv_heads, self.head_dim)
    }

    /// Every linear layer, for adapter attachment.
    pub fn linears_mut(&mut self) -> Vec<&mut Linear> {
        let mut out: Vec<&mut Linear> = match &mut self.qkv {
            QkvProj::Separate { q, k, v } => vec![q, k, v],
            QkvProj::Fused(l) => vec![l],
        };
        out.push(&mut self.o);
        out
    }

    /// Every linear layer, read-only.
    pub fn linears(&self) -> Vec<&Linear> {
        let mut out: Vec<&Linear> = match &self.qkv {
            QkvProj::Separate { q, k, v } => vec![q, k, v],
            QkvProj::Fused(l) => vec![l],
        };
        out.push(&self.o);
        out
    }

    /// x [B, T, C] → [B, T, C].
    ///
    /// `rope`: the tables and this pass's (cos, sin) [B, 1, T, R]; `bias` [B, 1, T, S] (f32);
    /// `cache`: when given, new keys/values are appended and attention spans the whole cache.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: Option<(&Rope, &Tensor, &Tensor)>,
        bias: &Tensor,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, hkv, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let (q, k, v) = match &self.qkv {
            QkvProj::Separate { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
            QkvProj::Fused(l) => {
                let qkv = l.forward(x)?;
                (
                    qkv.narrow(D::Minus1, 0, h * d)?,
                    qkv.narrow(D::Minus1, h * d, hkv * d)?,
                    qkv.narrow(D::Minus1, (h + hkv) * d, hkv * d)?,
                )
            }
        };
        // [B, T, H·D] → [B, H, T, D]
        let q = q.reshape((b, t, h, d))?.transpose(1, 2)?.contiguous()?;
        let k = k.reshape((b, t, hkv, d))?.transpose(1, 2)?.contiguous()?;
        let v = v.reshape((b, t, hkv, d))?.transpose(1, 2)?.contiguous()?;
        let (q, k) = match rope {
            Some((r, cos, sin)) => (r.apply(&q, cos, sin)?, r.apply(&k, cos, sin)?),
            None => (q, k),
        };
        let (k, v) = match cache {
            Some(c) => {
                let (k, v) = match &c.kv {
                    // cat may return a strided view when a dim has size 1; matmul needs rows.
                    Some((pk, pv)) => (
                        Tensor::cat(&[pk, &k], 2)?.contiguous()?,
                        Tensor::cat(&[pv, &v], 2)?.contiguous()?,
                    ),
                    None => (k, v),
                };
                c.kv = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let rep = h / hkv;
        // q [B, H, T, D] → [B, H_kv, rep·T, D]: heads sharing a KV head are stacked in time.
        let q = q.reshape((b, hkv, rep * t, d))?;
        let fused = crate::fused::enabled("attn_softmax", &q);
        let probs = attention_probs(&q, &k, bias, (b, h, t), v.dtype(), fused)?;
        // [B, H_kv, rep·T, D] → [B, H, T, D] → [B, T, H·D]
        let y = probs
            .matmul(&v)?
            .reshape((b, h, t, d))?
            .transpose(1, 2)?
            .reshape((b, t, h * d))?;
        self.o.forward(&y)
    }
}

/// Attention probabilities [B, H_kv, rep·T, S] in `dtype` from q [B, H_kv, rep·T, D] and
/// k [B, H_kv, S, D] (heads sharing a KV head stacked in time, as in [`Attention::forward`]) and
/// the bias [B or 1, 1, T, S]: the softmax over S of the scaled scores plus the bias, in f32.
/// `fused`: one kernel ([`crate::fused::attn_softmax`]) on the raw scores, stored in q's dtype;
/// else the composed path (scale, cast to f32, add, [`softmax_last_dim`], cast).
pub(crate) fn attention_probs(
    q: &Tensor,
    k: &Tensor,
    bias: &Tensor,
    (b, h, t): (usize, usize, usize),
    dtype: DType,
    fused: bool,
) -> Result<Tensor> {
    let (_, hkv, rt, d) = q.dims4()?;
    let s = k.dim(2)?;
    let scale = 1.0 / (d as f64).sqrt();
    if fused {
        // scores [B, H_kv, rep·T, S] → [B, H, T, S] (a free reshape of the contiguous matmul).
        let scores = q.matmul(&k.t()?)?.reshape((b, h, t, s))?;
        return crate::fused::attn_softmax(&scores, bias, scale)?
            .to_dtype(dtype)?
            .reshape((b, hkv, rt, s));
    }
    // scores [B, H_kv, rep·T, S] → [B, H, T, S], in f32 for the softmax.
    let scores = (q.matmul(&k.t()?)? * scale)?
        .to_dtype(DType::F32)?
        .reshape((b, h, t, s))?
        .broadcast_add(bias)?;
    softmax_last_dim(&scores)?
        .to_dtype(dtype)?
        .reshape((b, hkv, rt, s))
}

/// Softmax over the last dimension from basic ops (candle's fused one has no backward).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    // Subtracting the (constant) row max changes nothing mathematically and avoids overflow.
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}
