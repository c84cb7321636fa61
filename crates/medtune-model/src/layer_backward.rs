//! Hand-written backward of a Llama-style decoder layer, for layer-wise recompute.
//!
//! candle's autograd pays for generality on every node: each gradient contribution allocates a
//! zero tensor and adds into it, broadcasts are undone by reductions, and every intermediate
//! gets a gradient whether anything needs it or not. For a layer whose structure is known, the
//! chain rule can be written out once: recompute the forward while keeping exactly what the
//! backward reads, then run the backward as matrix products plus the fused backward kernels of
//! [`crate::fused`] (RMSNorm, attention softmax, RoPE, SwiGLU). The forward output of the last
//! projection is never needed (its gradient `dy` is given), so that product is skipped.
//!
//! Supported: RMSNorm before attention and before the MLP (sequential block), separate q/k/v
//! projections with RoPE (grouped-query attention included), a SiLU-gated MLP with separate gate
//! and up projections; dense or NF4 bases with optional frozen bias; LoRA adapters (dropout
//! included: the adapter's own mask is applied to the input and to the input gradient) or none.
//! This covers Llama, Mistral, Qwen2 and SmolLM2; other layers keep the autograd path.
//! The result is the same chain rule as autograd's, so gradients agree to rounding (tested
//! against the plain backward for every fixture architecture).

use crate::attention::QkvProj;
use crate::decoder::{Block, LayerContext};
use crate::fused;
use crate::linear::{BaseWeight, Linear};
use crate::lora::LoraAdapter;
use crate::mlp::MlpKind;
use candle_core::{DType, Result, Tensor};

/// (a LoRA tensor, its gradient in f32), in the order the layer produced them.
pub(crate) type VarGrads = Vec<(Tensor, Tensor)>;

/// What the backward of one linear layer reads: the dense weight, and for LoRA the adapter
/// with its (dropped-out) input, low-rank product and cast matrices.
struct LinSaved<'a> {
    w: Tensor,
    lora: Option<LoraSaved<'a>>,
}

struct LoraSaved<'a> {
    adapter: &'a LoraAdapter,
    /// dropout(x) [N, in] (x itself without dropout).
    xd: Tensor,
    /// dropout(x)·Aᵀ [N, R].
    xa: Tensor,
    /// A [R, in] and B [out, R] in the compute dtype.
    a: Tensor,
    b: Tensor,
}

fn lora_of(l: &Linear) -> Option<Option<&LoraAdapter>> {
    match l.adapter() {
        None => Some(None),
        Some(a) => a.as_lora().map(Some),
    }
}

fn linear_supported(l: &Linear) -> bool {
    matches!(l.base(), BaseWeight::Dense(_) | BaseWeight::Nf4(_)) && lora_of(l).is_some()
}

/// Whether [`block_backward`] handles this layer (otherwise the caller uses autograd).
pub(crate) fn supported(block: &Block, ctx: &LayerContext) -> bool {
    let (QkvProj::Separate { q, k, v }, MlpKind::Gated { gate, up, down }) =
        (&block.attn.qkv, &block.mlp.kind)
    else {
        return false;
    };
    block.attn_norm.rms_parts().is_some()
        && block
            .mlp_norm
            .as_ref()
            .is_some_and(|n| n.rms_parts().is_some())
        && block.mlp.is_silu()
        && ctx.cos_sin().is_some()
        && [q, k, v, &block.attn.o, gate, up, down]
            .into_iter()
            .all(linear_supported)
}

fn err(what: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("layer backward: {what}"))
}

/// Forward of a linear layer on x [N, in], keeping what its backward needs. With `output`
/// false only the saved state is built (the caller already has the output's gradient).
fn lin_fwd<'a>(l: &'a Linear, x: &Tensor, output: bool) -> Result<(Option<Tensor>, LinSaved<'a>)> {
    let dt = x.dtype();
    let w = l
        .base()
        .to_dense(dt)
        .map_err(|e| err(&format!("{}: {e}", l.name())))?
        .detach();
    let mut y = if output {
        let mut y = x.matmul(&w.t()?)?;
        if let Some(bias) = l.bias() {
            y = y.broadcast_add(bias)?;
        }
        Some(y)
    } else {
        None
    };
    let lora = match lora_of(l).ok_or_else(|| err("adapter is not LoRA"))? {
        None => None,
        Some(adapter) => {
            let xd = adapter.dropout(x)?;
            let a = adapter.a().as_tensor().to_dtype(dt)?;
            let b = adapter.b().as_tensor().to_dtype(dt)?;
            let xa = xd.matmul(&a.t()?)?;
            if let Some(out) = y.as_mut() {
                *out = (&*out + (xa.matmul(&b.t()?)? * adapter.scale())?)?;
            }
            Some(LoraSaved {
                adapter,
                xd,
                xa,
                a,
                b,
            })
        }
    };
    Ok((y, LinSaved { w, lora }))
}

/// Backward of a linear layer: dx [N, in] from dy [N, out]; LoRA gradients go to `grads`.
fn lin_bwd(s: &LinSaved, dy: &Tensor, grads: &mut VarGrads) -> Result<Tensor> {
    let mut dx = dy.matmul(&s.w)?;
    if let Some(l) = &s.lora {
        let gs = (dy * l.adapter.scale())?; // d(xa·Bᵀ)
        let db = gs.t()?.matmul(&l.xa)?; // [out, R]
        let dxa = gs.matmul(&l.b)?; // [N, R]
        let da = dxa.t()?.matmul(&l.xd)?; // [R, in]
                                          // dropout is x ⊙ mask: its input gradient is the same mask on the gradient.
        dx = (dx + l.adapter.dropout(&dxa.matmul(&l.a)?)?)?;
        grads.push((l.adapter.a().as_tensor().clone(), da.to_dtype(DType::F32)?));
        grads.push((l.adapter.b().as_tensor().clone(), db.to_dtype(DType::F32)?));
    }
    Ok(dx)
}

/// Recomputes `block` on its input x [B, T, C] and back-propagates dy [B, T, C] (the gradient
/// of the loss with respect to the layer output). Returns dx [B, T, C] and the LoRA gradients.
/// The caller checks [`supported`] first.
pub(crate) fn block_backward(
    block: &Block,
    x: &Tensor,
    dy: &Tensor,
    ctx: &LayerContext,
) -> Result<(Tensor, VarGrads)> {
    let (
        QkvProj::Separate {
            q: lq,
            k: lk,
            v: lv,
        },
        MlpKind::Gated { gate, up, down },
    ) = (&block.attn.qkv, &block.mlp.kind)
    else {
        return Err(err("unsupported layer structure"));
    };
    let (w1, eps1) = block
        .attn_norm
        .rms_parts()
        .ok_or_else(|| err("attention norm"))?;
    let (w2, eps2) = block
        .mlp_norm
        .as_ref()
        .and_then(|n| n.rms_parts())
        .ok_or_else(|| err("MLP norm"))?;
    let (cos, sin) = ctx.cos_sin().ok_or_else(|| err("no RoPE tables"))?;
    let (b, t, c) = x.dims3()?;
    let n = b * t;
    let dt = x.dtype();
    let (h, hkv, d) = block.attn.heads();
    let rep = h / hkv;
    let scale = 1.0 / (d as f64).sqrt();
    let (w1, w2) = (w1.to_dtype(dt)?, w2.to_dtype(dt)?);

    // Forward, keeping what the backward reads.
    let x = x.reshape((n, c))?;
    let h1 = fused::rms_norm(&x, &w1, eps1)?;
    let (q, sq) = lin_fwd(lq, &h1, true)?;
    let (k, sk) = lin_fwd(lk, &h1, true)?;
    let (v, sv) = lin_fwd(lv, &h1, true)?;
    let (q, k, v) = (
        q.ok_or_else(|| err("q"))?,
        k.ok_or_else(|| err("k"))?,
        v.ok_or_else(|| err("v"))?,
    );
    // [N, heads·D] → [B, heads, T, D]
    let q = fused::rope(&q.reshape((b, t, h, d))?.transpose(1, 2)?, cos, sin)?;
    let k = fused::rope(&k.reshape((b, t, hkv, d))?.transpose(1, 2)?, cos, sin)?;
    let v = v.reshape((b, t, hkv, d))?.transpose(1, 2)?.contiguous()?;
    // Query heads sharing a KV head stacked in time: [B, H_kv, rep·T, D].
    let qr = q.reshape((b, hkv, rep * t, d))?;
    let s = k.dim(2)?;
    let scores = qr.matmul(&k.t()?)?.reshape((b, h, t, s))?;
    let p = fused::attn_softmax(&scores, ctx.bias(), scale)?;
    drop(scores);
    let pr = p.reshape((b, hkv, rep * t, s))?;
    let attn = pr
        .matmul(&v)?
        .reshape((b, h, t, d))?
        .transpose(1, 2)?
        .reshape((n, h * d))?;
    let (o, so) = lin_fwd(&block.attn.o, &attn, true)?;
    let x2 = (&x + o.ok_or_else(|| err("o"))?)?;
    let h2 = fused::rms_norm(&x2, &w2, eps2)?;
    let (g, sg) = lin_fwd(gate, &h2, true)?;
    let (u, su) = lin_fwd(up, &h2, true)?;
    let (g, u) = (g.ok_or_else(|| err("gate"))?, u.ok_or_else(|| err("up"))?);
    let m = fused::swiglu(&g, &u)?;
    let (_, sd) = lin_fwd(down, &m, false)?;

    // Backward.
    let mut grads = VarGrads::new();
    let dy = dy.reshape((n, c))?;
    let dm = lin_bwd(&sd, &dy, &mut grads)?;
    let (dg, du) = fused::swiglu_bwd(&g, &u, &dm)?;
    let dh2 = (lin_bwd(&sg, &dg, &mut grads)? + lin_bwd(&su, &du, &mut grads)?)?;
    let dx2 = (&dy + fused::rms_norm_bwd(&x2, &w2, &dh2, eps2)?)?;
    let dattn = lin_bwd(&so, &dx2, &mut grads)?;
    // [N, H·D] → [B, H, T, D] → [B, H_kv, rep·T, D]
    let dout = dattn
        .reshape((b, t, h, d))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, hkv, rep * t, d))?;
    let dp = dout.matmul(&v.t()?)?; // [B, H_kv, rep·T, S]
    let dv = pr.t()?.matmul(&dout)?; // [B, H_kv, S, D]
    let dscores = fused::attn_softmax_bwd(&p, &dp.reshape((b, h, t, s))?, scale)?.reshape((
        b,
        hkv,
        rep * t,
        s,
    ))?;
    let dq = dscores.matmul(&k)?.reshape((b, h, t, d))?;
    let dk = dscores.t()?.matmul(&qr)?; // [B, H_kv, S, D]
    let dq = fused::rope_bwd(&dq, cos, sin)?;
    let dk = fused::rope_bwd(&dk, cos, sin)?;
    // [B, heads, T, D] → [N, heads·D]
    let rows = |z: Tensor, heads: usize| z.transpose(1, 2)?.reshape((n, heads * d));
    let dh1 = ((lin_bwd(&sq, &rows(dq, h)?, &mut grads)?
        + lin_bwd(&sk, &rows(dk, hkv)?, &mut grads)?)?
        + lin_bwd(&sv, &rows(dv, hkv)?, &mut grads)?)?;
    let dx = (dx2 + fused::rms_norm_bwd(&x, &w1, &dh1, eps1)?)?;
    Ok((dx.reshape((b, t, c))?, grads))
}
