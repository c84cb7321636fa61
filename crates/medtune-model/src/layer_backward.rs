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
use crate::decoder::{Block, DecoderLm, LayerContext};
use crate::fused;
use crate::linear::{BaseWeight, Linear};
use crate::lora::LoraAdapter;
use crate::mlp::MlpKind;
use candle_core::{DType, Result, Tensor};

/// (a LoRA tensor, its gradient in f32), in the order the layer produced them.
pub(crate) type VarGrads = Vec<(Tensor, Tensor)>;

/// What the backward of one linear layer reads: the layer, its dense weight when the
/// recompute kept it (`w`; else the backward dequantizes it again), and for LoRA the adapter
/// with its (dropped-out) input, low-rank product and cast matrices.
struct LinSaved<'a> {
    linear: &'a Linear,
    w: Option<Tensor>,
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
    /// Whether dropout changed x (training with p > 0).
    dropped: bool,
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
/// The layer's base weight [out, in] as a dense tensor in `dt`.
fn dense(l: &Linear, dt: DType) -> Result<Tensor> {
    Ok(l.base()
        .to_dense(dt)
        .map_err(|e| err(&format!("{}: {e}", l.name())))?
        .detach())
}

/// With `keep_w` the dense weight of the product is kept for the backward (one NF4
/// dequantization per weight less, for the memory of the layer's dense weights).
fn lin_fwd<'a>(
    l: &'a Linear,
    x: &Tensor,
    output: bool,
    keep_w: bool,
) -> Result<(Option<Tensor>, LinSaved<'a>)> {
    let dt = x.dtype();
    let mut kept = None;
    let mut y = if output {
        let w = dense(l, dt)?;
        let mut y = x.matmul(&w.t()?)?;
        if let Some(bias) = l.bias() {
            y = y.broadcast_add(bias)?;
        }
        if keep_w {
            kept = Some(w);
        }
        Some(y)
    } else {
        None
    };
    let lora = match lora_of(l).ok_or_else(|| err("adapter is not LoRA"))? {
        None => None,
        Some(adapter) => {
            let xd = adapter.dropout(x)?;
            // Detached: nothing here may build an autograd graph, or every layer's tensors would
            // stay reachable from the gradient handed down to the next layer.
            let a = adapter.a().as_tensor().detach().to_dtype(dt)?;
            let b = adapter.b().as_tensor().detach().to_dtype(dt)?;
            let xa = xd.matmul(&a.t()?)?;
            if let Some(out) = y.take() {
                // y + s·(xa·Bᵀ) in one product accumulated into y.
                y = Some(fused::addmm(out, &xa, &b.t()?, adapter.scale())?);
            }
            let dropped = xd.id() != x.id();
            Some(LoraSaved {
                adapter,
                xd,
                xa,
                a,
                b,
                dropped,
            })
        }
    };
    Ok((
        y,
        LinSaved {
            linear: l,
            w: kept,
            lora,
        },
    ))
}

/// Backward of a linear layer: `acc` + dx [N, in] from dy [N, out] (`acc`, when given, is
/// consumed and accumulated into); LoRA gradients go to `grads`.
fn lin_bwd(s: &LinSaved, dy: &Tensor, acc: Option<Tensor>, grads: &mut VarGrads) -> Result<Tensor> {
    let w = match &s.w {
        Some(w) => w.clone(),
        None => dense(s.linear, dy.dtype())?,
    };
    let mut dx = match acc {
        None => dy.matmul(&w)?,
        Some(acc) => fused::addmm(acc, dy, &w, 1.0)?,
    };
    drop(w);
    if let Some(l) = &s.lora {
        let scale = l.adapter.scale();
        // d(xa·Bᵀ) = s·dy, with s applied inside the products.
        let db = fused::matmul_scaled(&dy.t()?, &l.xa, scale)?; // [out, R]
        let dxa = fused::matmul_scaled(dy, &l.b, scale)?; // [N, R]
        let da = dxa.t()?.matmul(&l.xd)?; // [R, in]
        dx = if l.dropped {
            // dropout is x ⊙ mask: its input gradient is the same mask on the gradient.
            fused::add(&dx, &l.adapter.dropout(&dxa.matmul(&l.a)?)?)?
        } else {
            fused::addmm(dx, &dxa, &l.a, 1.0)?
        };
        grads.push((l.adapter.a().as_tensor().clone(), da.to_dtype(DType::F32)?));
        grads.push((l.adapter.b().as_tensor().clone(), db.to_dtype(DType::F32)?));
    }
    Ok(dx)
}

/// The layer's structure, checked: norms, projections and sizes.
struct Parts<'a> {
    q: &'a Linear,
    k: &'a Linear,
    v: &'a Linear,
    o: &'a Linear,
    gate: &'a Linear,
    up: &'a Linear,
    down: &'a Linear,
    w1: Tensor,
    eps1: f64,
    w2: Tensor,
    eps2: f64,
    cos: &'a Tensor,
    sin: &'a Tensor,
    /// (B, T, C, H, H_kv, D)
    dims: (usize, usize, usize, usize, usize, usize),
}

fn parts<'a>(block: &'a Block, x: &Tensor, ctx: &'a LayerContext) -> Result<Parts<'a>> {
    let (QkvProj::Separate { q, k, v }, MlpKind::Gated { gate, up, down }) =
        (&block.attn.qkv, &block.mlp.kind)
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
    let (h, hkv, d) = block.attn.heads();
    let dt = x.dtype();
    Ok(Parts {
        q,
        k,
        v,
        o: &block.attn.o,
        gate,
        up,
        down,
        w1: w1.to_dtype(dt)?,
        eps1,
        w2: w2.to_dtype(dt)?,
        eps2,
        cos,
        sin,
        dims: (b, t, c, h, hkv, d),
    })
}

/// Everything the backward reads from one forward of the layer.
struct Saved<'a> {
    x: Tensor,
    x2: Tensor,
    g: Tensor,
    u: Tensor,
    qr: Tensor,
    k: Tensor,
    v: Tensor,
    p: Tensor,
    lin: [LinSaved<'a>; 7],
}

/// The layer forward without autograd. `for_backward`: skip the down projection's output and
/// return `None` for y (the backward has its gradient); else y [B, T, C].
/// `keep`: keep the dense weights for the backward (only with `for_backward`).
fn forward<'a>(
    p: &Parts<'a>,
    x: &Tensor,
    ctx: &LayerContext,
    for_backward: bool,
    keep: bool,
) -> Result<(Option<Tensor>, Saved<'a>)> {
    let (b, t, c, h, hkv, d) = p.dims;
    let (n, rep) = (b * t, h / hkv);
    let scale = 1.0 / (d as f64).sqrt();
    let x = x.detach().reshape((n, c))?;
    let keep = for_backward && keep;
    let h1 = fused::rms_norm(&x, &p.w1, p.eps1)?;
    let (q, sq) = lin_fwd(p.q, &h1, true, keep)?;
    let (k, sk) = lin_fwd(p.k, &h1, true, keep)?;
    let (v, sv) = lin_fwd(p.v, &h1, true, keep)?;
    let (q, k, v) = (
        q.ok_or_else(|| err("q"))?,
        k.ok_or_else(|| err("k"))?,
        v.ok_or_else(|| err("v"))?,
    );
    // [N, heads·D] → [B, heads, T, D]
    let q = fused::rope(&q.reshape((b, t, h, d))?.transpose(1, 2)?, p.cos, p.sin)?;
    let k = fused::rope(&k.reshape((b, t, hkv, d))?.transpose(1, 2)?, p.cos, p.sin)?;
    let v = fused::contiguous(&v.reshape((b, t, hkv, d))?.transpose(1, 2)?)?;
    // Query heads sharing a KV head stacked in time: [B, H_kv, rep·T, D].
    let qr = q.reshape((b, hkv, rep * t, d))?;
    let s = k.dim(2)?;
    let scores = qr.matmul(&k.t()?)?.reshape((b, h, t, s))?;
    let probs = fused::attn_softmax(&scores, ctx.bias(), scale)?;
    drop(scores);
    let attn = probs
        .reshape((b, hkv, rep * t, s))?
        .matmul(&v)?
        .reshape((b, h, t, d))?;
    let attn = fused::contiguous(&attn.transpose(1, 2)?)?.reshape((n, h * d))?;
    let (o, so) = lin_fwd(p.o, &attn, true, keep)?;
    let x2 = fused::add(&x, &o.ok_or_else(|| err("o"))?)?;
    let h2 = fused::rms_norm(&x2, &p.w2, p.eps2)?;
    let (g, sg) = lin_fwd(p.gate, &h2, true, keep)?;
    let (u, su) = lin_fwd(p.up, &h2, true, keep)?;
    let (g, u) = (g.ok_or_else(|| err("gate"))?, u.ok_or_else(|| err("up"))?);
    let m = fused::swiglu(&g, &u)?;
    let (dn, sd) = lin_fwd(p.down, &m, !for_backward, keep)?;
    let y = match dn {
        Some(dn) => Some(fused::add(&x2, &dn)?.reshape((b, t, c))?),
        None => None,
    };
    let saved = Saved {
        x,
        x2,
        g,
        u,
        qr,
        k,
        v,
        p: probs,
        lin: [sq, sk, sv, so, sg, su, sd],
    };
    Ok((y, saved))
}

/// The output [B, T, C] of `block` on x [B, T, C] without building an autograd graph: the
/// first pass of layer-wise recompute. The caller checks [`supported`] first.
pub(crate) fn block_forward(block: &Block, x: &Tensor, ctx: &LayerContext) -> Result<Tensor> {
    let p = parts(block, x, ctx)?;
    forward(&p, x, ctx, false, false)?
        .0
        .ok_or_else(|| err("forward produced no output"))
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
    block_backward_with(block, x, dy, ctx, fused::keep_weights())
}

/// [`block_backward`] with the choice of [`fused::FusedSettings::keep_weights`] made here.
fn block_backward_with(
    block: &Block,
    x: &Tensor,
    dy: &Tensor,
    ctx: &LayerContext,
    keep_weights: bool,
) -> Result<(Tensor, VarGrads)> {
    let p = parts(block, x, ctx)?;
    let (b, t, c, h, hkv, d) = p.dims;
    let (n, rep) = (b * t, h / hkv);
    let scale = 1.0 / (d as f64).sqrt();
    let (_, sv) = forward(&p, x, ctx, true, keep_weights)?;
    // Taken apart so that each saved tensor is freed right after its last use.
    let Saved {
        x,
        x2,
        g,
        u,
        qr,
        k,
        v,
        p: probs,
        lin: [sq, sk, svv, so, sg, su, sd],
    } = sv;
    let s = k.dim(2)?;

    let mut grads = VarGrads::new();
    let dy = dy.detach().reshape((n, c))?;
    let dm = lin_bwd(&sd, &dy, None, &mut grads)?;
    drop(sd);
    let (dg, du) = fused::swiglu_bwd(&g, &u, &dm)?;
    drop((g, u, dm));
    let dh2 = lin_bwd(&sg, &dg, None, &mut grads)?;
    drop((sg, dg));
    let dh2 = lin_bwd(&su, &du, Some(dh2), &mut grads)?;
    drop((su, du));
    let dx2 = fused::add(&dy, &fused::rms_norm_bwd(&x2, &p.w2, &dh2, p.eps2)?)?;
    drop((x2, dh2, dy));
    let dattn = lin_bwd(&so, &dx2, None, &mut grads)?;
    drop(so);
    // [N, H·D] → [B, H, T, D] → [B, H_kv, rep·T, D]
    let dout = fused::contiguous(&dattn.reshape((b, t, h, d))?.transpose(1, 2)?)?.reshape((
        b,
        hkv,
        rep * t,
        d,
    ))?;
    drop(dattn);
    let pr = probs.reshape((b, hkv, rep * t, s))?;
    let dp = dout.matmul(&v.t()?)?; // [B, H_kv, rep·T, S]
    let dv = pr.t()?.matmul(&dout)?; // [B, H_kv, S, D]
    drop((dout, v, pr));
    let dscores = fused::attn_softmax_bwd(&probs, &dp.reshape((b, h, t, s))?, scale)?.reshape((
        b,
        hkv,
        rep * t,
        s,
    ))?;
    drop((dp, probs));
    let dq = dscores.matmul(&k)?.reshape((b, h, t, d))?;
    let dk = dscores.t()?.matmul(&qr)?; // [B, H_kv, S, D]
    drop((dscores, k, qr));
    // [B, heads, T, D] → [B, T, heads, D] = [N, heads·D]: the RoPE gradients are written in
    // that layout directly, dv is transposed.
    let dq = fused::rope_bwd_rows(&dq, p.cos, p.sin)?.reshape((n, h * d))?;
    let dk = fused::rope_bwd_rows(&dk, p.cos, p.sin)?.reshape((n, hkv * d))?;
    let dv = fused::contiguous(&dv.transpose(1, 2)?)?.reshape((n, hkv * d))?;
    let dh1 = lin_bwd(&sq, &dq, None, &mut grads)?;
    let dh1 = lin_bwd(&sk, &dk, Some(dh1), &mut grads)?;
    let dh1 = lin_bwd(&svv, &dv, Some(dh1), &mut grads)?;
    drop((sq, sk, svv));
    let dx = fused::add(&dx2, &fused::rms_norm_bwd(&x, &p.w1, &dh1, p.eps1)?)?;
    if dx.track_op() {
        // A graph here would keep every layer's tensors alive through the gradient chain.
        return Err(err("the input gradient carries an autograd graph"));
    }
    Ok((dx.reshape((b, t, c))?, grads))
}

/// Rows of logits computed at once by [`head_backward`]: [`HEAD_CHUNK`, V] instead of all B·T
/// rows (for a 128k vocabulary, 64 MiB in bf16 per chunk instead of 512 MiB for 4 × 512 tokens).
pub(crate) const HEAD_CHUNK: usize = 256;

/// Whether [`head_backward`] handles the model's head: an RMSNorm without bias and an LM head
/// with a dense or NF4 base and no adapter.
pub(crate) fn head_supported(model: &DecoderLm) -> bool {
    let (norm, head) = model.head_parts();
    norm.rms_parts().is_some()
        && matches!(head.base(), BaseWeight::Dense(_) | BaseWeight::Nf4(_))
        && head.adapter().is_none()
}

/// Summed shifted cross-entropy of the final hidden state h [B, T, C] against labels [B, T],
/// the number of supervised tokens, and dL/dh [B, T, C], without autograd and without the full
/// logits: the LM head, the fused loss and its gradient run over [`HEAD_CHUNK`] rows at a time.
pub(crate) fn head_backward(
    model: &DecoderLm,
    h: &Tensor,
    labels: &Tensor,
) -> crate::error::Result<(f64, usize, Tensor)> {
    head_backward_chunked(model, h, labels, HEAD_CHUNK)
}

fn head_backward_chunked(
    model: &DecoderLm,
    h: &Tensor,
    labels: &Tensor,
    chunk: usize,
) -> crate::error::Result<(f64, usize, Tensor)> {
    let (norm, head) = model.head_parts();
    let (w_norm, eps) = norm.rms_parts().ok_or_else(|| err("final norm"))?;
    let (b, t, c) = h.dims3()?;
    let n = b * t;
    let dt = h.dtype();
    let w = dense(head, dt)?; // [V, C]
    let v = w.dim(0)?;
    if labels.dims() != [b, t] {
        return Err(crate::error::Error::input(
            "labels",
            format!("shape {:?}, expected [{b}, {t}]", labels.dims()),
        ));
    }
    let (targets, weights) = crate::loss::shifted_targets(labels, v, true)?;
    let count = weights.iter().filter(|&&x| x > 0.0).count();
    let dev = h.device();
    let targets = Tensor::from_vec(targets, n, dev)?;
    let weights = Tensor::from_vec(weights, n, dev)?;
    let w_norm = w_norm.to_dtype(dt)?;
    let h = h.detach().reshape((n, c))?;
    let hn = fused::rms_norm(&h, &w_norm, eps)?;
    let mut loss = Tensor::zeros((), DType::F32, dev)?;
    let mut dhn = Vec::with_capacity(n.div_ceil(chunk));
    for r0 in (0..n).step_by(chunk) {
        let rows = chunk.min(n - r0);
        let x = hn.narrow(0, r0, rows)?;
        let mut logits = x.matmul(&w.t()?)?; // [rows, V]
        if let Some(bias) = head.bias() {
            logits = logits.broadcast_add(bias)?;
        }
        let (tg, wt) = (targets.narrow(0, r0, rows)?, weights.narrow(0, r0, rows)?);
        loss = (loss + fused::cross_entropy(&logits, &tg, &wt)?.sum_all()?)?;
        // d(Σ loss)/d(row loss) = 1: the row gradient is the row weight.
        let dlogits = fused::cross_entropy_bwd(&logits, &tg, &wt)?;
        drop(logits);
        dhn.push(dlogits.matmul(&w)?); // [rows, C]
    }
    let dhn = Tensor::cat(&dhn, 0)?;
    let dh = fused::rms_norm_bwd(&h, &w_norm, &dhn, eps)?;
    let loss = f64::from(loss.to_scalar::<f32>()?);
    Ok((loss, count, dh.reshape((b, t, c))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::causal_lm_loss_sum;
    use candle_core::{Device, Var};

    fn to_vec(t: &Tensor) -> Vec<f32> {
        t.to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("values")
    }

    /// Keeping the recomputed forward's dense weights changes nothing but the memory: the
    /// same dx and LoRA gradients, bit for bit, on an NF4 base with LoRA dropout.
    #[test]
    fn kept_weights_give_identical_gradients() -> crate::error::Result<()> {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/hf-tiny/models/llama");
        let mut m = crate::load(&dir, &crate::LoadOptions::default())?;
        m.model.quantize_nf4(crate::nf4::Nf4Options::default())?;
        let lora = crate::lora::LoraConfig {
            r: 4,
            lora_alpha: 8.0,
            lora_dropout: 0.1,
            init_lora_weights: false,
            ..Default::default()
        };
        let set = crate::attach_lora(&mut m.model, &lora, 3)?;
        set.set_train(true);
        let model = &m.model;
        let (b, t) = (2, 7);
        let ids: Vec<u32> = (0..(b * t) as u32).map(|i| (i * 13) % 100).collect();
        let ids = Tensor::from_vec(ids, (b, t), &Device::Cpu)?;
        let (x, ctx) = model.prepare(&crate::decoder::ForwardInput::ids(&ids))?;
        let layer = &model.layers()[0];
        assert!(supported(layer, &ctx));
        let c = model.config().hidden_size;
        let dy = Tensor::from_vec(
            crate::fused::sample_values(b * t * c, 9, 1.0),
            (b, t, c),
            &Device::Cpu,
        )?;
        let (dx0, g0) = block_backward_with(layer, &x, &dy, &ctx, false)?;
        let (dx1, g1) = block_backward_with(layer, &x, &dy, &ctx, true)?;
        assert_eq!(to_vec(&dx0), to_vec(&dx1));
        assert_eq!(g0.len(), 14);
        for ((va, ga), (vb, gb)) in g0.iter().zip(&g1) {
            assert_eq!(va.id(), vb.id());
            assert_eq!(to_vec(ga), to_vec(gb));
        }
        Ok(())
    }

    /// The chunked head (chunks of 4 rows, the last one partial) against autograd through
    /// `head_logits` and the loss, on the Llama fixture with some ignored labels.
    #[test]
    fn chunked_head_matches_autograd() -> crate::error::Result<()> {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/hf-tiny/models/llama");
        let m = crate::load(&dir, &crate::LoadOptions::default())?;
        let model = &m.model;
        assert!(head_supported(model));
        let c = model.config().hidden_size;
        let v = model.config().vocab_size as u32;
        let (b, t) = (2, 9);
        let h = Tensor::from_vec(
            crate::fused::sample_values(b * t * c, 5, 2.0),
            (b, t, c),
            &Device::Cpu,
        )?;
        let labels: Vec<i64> = (0..(b * t) as i64)
            .map(|i| if i % 5 == 3 { -100 } else { (i * 7) % v as i64 })
            .collect();
        let labels = Tensor::from_vec(labels, (b, t), &Device::Cpu)?;
        let (loss, count, dh) = head_backward_chunked(model, &h, &labels, 4)?;
        let hv = Var::from_tensor(&h)?;
        let want = causal_lm_loss_sum(&model.head_logits(hv.as_tensor())?, &labels)?;
        let grads = want.sum.backward()?;
        let want_dh = grads.get(hv.as_tensor()).expect("gradient of h");
        let want_loss = f64::from(want.sum.to_scalar::<f32>()?);
        assert_eq!(count, want.count);
        assert!(
            (loss - want_loss).abs() <= 1e-5 * want_loss.abs(),
            "{loss} vs {want_loss}"
        );
        let diff = (&dh - want_dh)?.abs()?.max_all()?.to_scalar::<f32>()?;
        let scale = want_dh.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff <= 1e-5 * scale, "dh differs by {diff} (max {scale})");
        Ok(())
    }
}
