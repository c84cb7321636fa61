//! Attention softmax: `p = softmax(scores · scale + bias)` over the keys, computed in f32 from
//! the raw `q·kᵀ` scores and stored in their dtype, and its gradient
//! `d_scores = scale · p ⊙ (dp − Σ(dp ⊙ p))` (one kernel each way).
//!
//! The composed path (`attention.rs`) scales, casts to f32, adds the bias, and runs the softmax
//! as five or six separate kernels over the [B, H, T, S] scores, then casts back.

use super::{cpu_f32, cpu_store, prepared};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// Elements each kernel thread loads before folding them into its running max and sum (`CHUNK`
/// in the kernels).
const CHUNK: usize = 8;

/// Most threads per block of the attention kernels: short rows (S = 512) run fastest with one
/// thread per [`CHUNK`] keys (H100: 0.14 ms at 64 threads against 0.30 ms at 256 for
/// 4×32×512×512 bf16), long ones with 128.
const ATTN_MAX_THREADS: usize = 128;

/// Longest rows of the warp-per-row kernels (32 lanes × up to 32 values in registers).
const WARP_MAX_S: usize = 1024;

/// Rows per block of the warp-per-row kernels (one warp each).
#[cfg(feature = "cuda")]
const WARP_ROWS: usize = 8;

/// Values per lane of the warp kernel for rows of `s` (a power of two; `_w<K>` kernels).
#[cfg(feature = "cuda")]
fn warp_k(s: usize) -> usize {
    s.div_ceil(32).next_power_of_two()
}

/// Launch of a warp-per-row kernel over `rows` rows.
#[cfg(feature = "cuda")]
fn warp_config(rows: usize) -> candle_core::cuda_backend::cudarc::driver::LaunchConfig {
    candle_core::cuda_backend::cudarc::driver::LaunchConfig {
        grid_dim: (rows.div_ceil(WARP_ROWS) as u32, 1, 1),
        block_dim: (32 * WARP_ROWS as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// (max m, Σ exp(x − m)) of `n` ≤ [`WARP_MAX_S`] values as the warp kernels compute them: the
/// max over everything, each of 32 lanes summing its values l, l + 32, … in order, then the
/// lanes' sums added by the xor butterfly (offsets 16, 8, 4, 2, 1).
fn warp_max_sum(n: usize, x: impl Fn(usize) -> f32) -> (f32, f32) {
    const NEG: f32 = f32::NEG_INFINITY;
    let m = (0..n).map(&x).fold(NEG, f32::max);
    let mut lanes: [f32; 32] = std::array::from_fn(|l| {
        (l..n)
            .step_by(32)
            .map(|i| {
                let v = x(i);
                if v == NEG {
                    0.0
                } else {
                    (v - m).exp()
                }
            })
            .sum()
    });
    for o in [16, 8, 4, 2, 1] {
        lanes = std::array::from_fn(|l| lanes[l] + lanes[l ^ o]);
    }
    (m, lanes[0])
}

/// Threads per block (one block per row of `n`): a power of two from 32 to `max`, about one per
/// [`CHUNK`] elements.
pub(super) fn block_threads(n: usize, max: usize) -> usize {
    n.div_ceil(CHUNK).next_power_of_two().clamp(32, max)
}

/// Running (max m, Σ exp(x − m)) of `n` values `x(i)`, as the kernels' `online_row` and
/// `block_online` compute it with `lanes` threads: lane l takes elements l, l + lanes, …, in
/// chunks of [`CHUNK`] (chunk max, then one rescale of its running sum per chunk); the block
/// then takes the largest max and rescales every lane's sum to it.
pub(super) fn online_max_sum(n: usize, lanes: usize, x: impl Fn(usize) -> f32) -> (f32, f32) {
    const NEG: f32 = f32::NEG_INFINITY;
    let per_lane: Vec<(f32, f32)> = (0..lanes.min(n))
        .map(|lane| {
            let (mut m, mut s) = (NEG, 0f32);
            for base in (lane..n).step_by(CHUNK * lanes) {
                let v: [f32; CHUNK] = std::array::from_fn(|k| {
                    let i = base + k * lanes;
                    if i < n {
                        x(i)
                    } else {
                        NEG
                    }
                });
                let nm = v.iter().fold(m, |a, &b| a.max(b));
                let cs: f32 = v
                    .iter()
                    .map(|&v| if v == NEG { 0.0 } else { (v - nm).exp() })
                    .sum();
                s = if m == NEG { 0.0 } else { s * (m - nm).exp() } + cs;
                m = nm;
            }
            (m, s)
        })
        .collect();
    let mt = per_lane.iter().fold(NEG, |a, &(m, _)| a.max(m));
    let s = per_lane
        .iter()
        .map(|&(m, s)| if m == NEG { 0.0 } else { s * (m - mt).exp() })
        .sum();
    (mt, s)
}

/// Fused attention softmax of `scores` [B, H, T, S] (f32 or bf16, the unscaled `q·kᵀ`) with the
/// additive f32 mask `bias` [B or 1, 1, T, S]: `softmax(scores · scale + bias)` over S, in f32,
/// returned in `scores`' dtype. Differentiable with respect to `scores` only (the bias is a
/// constant mask and gets no gradient).
pub fn attn_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
    let &[b, h, t, s] = scores.dims() else {
        candle_core::bail!(
            "attn_softmax: scores {:?}, expected [B, H, T, S]",
            scores.dims()
        )
    };
    let bias_fits = match bias.dims() {
        &[bb, 1, bt, bs] => (bb == b || bb == 1) && bt == t && bs == s,
        _ => false,
    };
    if !bias_fits || bias.dtype() != DType::F32 {
        candle_core::bail!(
            "attn_softmax: bias {:?} {:?} does not fit scores {:?}, expected [{b} or 1, 1, {t}, {s}] F32",
            bias.dims(),
            bias.dtype(),
            scores.dims()
        );
    }
    if s >= 1 << 30 || h * t >= 1 << 30 || b * h * t > i32::MAX as usize {
        candle_core::bail!(
            "attn_softmax: scores {:?} are too large for the kernel",
            scores.dims()
        );
    }
    let scores = prepared(scores, "attn_softmax scores")?;
    if scores.elem_count() == 0 {
        return Ok(scores);
    }
    let bias = bias.contiguous()?;
    scores.apply_op2(
        &bias,
        AttnSoftmax {
            scale: scale as f32,
            heads: h,
        },
    )
}

/// The gradient with respect to the raw scores of [`attn_softmax`], from its output `p` and
/// the output gradient `dp` (for the hand-written layer backward).
pub(crate) fn attn_softmax_bwd(p: &Tensor, dp: &Tensor, scale: f64) -> Result<Tensor> {
    let dp = dp.to_dtype(p.dtype())?.contiguous()?;
    p.contiguous()?.apply_op2_no_bwd(
        &dp,
        &AttnSoftmaxBwd {
            scale: scale as f32,
        },
    )
}

struct AttnSoftmax {
    scale: f32,
    heads: usize,
}

struct AttnSoftmaxBwd {
    scale: f32,
}

/// (rows = B·H·T, T, S) of a [B, H, T, S] layout.
fn dims_of(l: &Layout) -> Result<(usize, usize, usize)> {
    match l.dims() {
        &[b, h, t, s] => Ok((b * h * t, t, s)),
        d => candle_core::bail!("attn_softmax: layout {d:?}, expected [B, H, T, S]"),
    }
}

/// Whether the bias has a batch dimension of its own (else batch 1, shared by every sequence).
fn batched(bias: &Layout) -> bool {
    bias.dims().first().is_some_and(|&bb| bb != 1)
}

impl CustomOp2 for AttnSoftmax {
    fn name(&self) -> &'static str {
        "medtune-attn-softmax"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(xs, xl, "attn_softmax scores")?;
        let bias = cpu_f32(bs, bl, "attn_softmax bias")?;
        let (rows, t, s) = dims_of(xl)?;
        let ht = self.heads * t;
        let bb = batched(bl);
        let mut y = Vec::with_capacity(x.len());
        for row in 0..rows {
            let b = if bb { row / ht } else { 0 };
            let br = &bias[(b * t + row % t) * s..][..s];
            let xr = &x[row * s..][..s];
            let z = |i: usize| xr[i] * self.scale + br[i];
            if s <= WARP_MAX_S {
                // The warp kernels: each exponential once, times the reciprocal of the sum.
                let (m, sum) = warp_max_sum(s, z);
                let inv = 1.0 / sum;
                y.extend((0..s).map(|i| {
                    let v = z(i);
                    if v == f32::NEG_INFINITY {
                        0.0
                    } else {
                        (v - m).exp() * inv
                    }
                }));
            } else {
                let (m, sum) = online_max_sum(s, block_threads(s, ATTN_MAX_THREADS), z);
                y.extend((0..s).map(|i| (z(i) - m).exp() / sum));
            }
        }
        Ok((cpu_store(y, xs.dtype())?, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        bs: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{alloc_uninit, launch, rows, suffix, view, with_dtype, ATTN_SOFTMAX};
        let dev = xs.device().clone();
        let (r, t, s) = dims_of(xl)?;
        let sfx = suffix(xs.dtype())?;
        let (si, hi, ti) = (s as i32, self.heads as i32, t as i32);
        let (bi, scale, ru) = (i32::from(batched(bl)), self.scale, r as u32);
        let out = with_dtype!(xs.dtype(), T => {
            let x = view::<T>(xs, xl, "attn_softmax scores")?;
            let bias = view::<f32>(bs, bl, "attn_softmax bias")?;
            let y = alloc_uninit::<T>(&dev, r * s)?;
            if r * s > 0 && s <= WARP_MAX_S {
                let name = format!("attn_softmax_fwd_w{}_{sfx}", warp_k(s));
                launch!(dev, ATTN_SOFTMAX, &name, warp_config(r); &x, &bias, &y, &si, &hi, &ti, &bi, &scale, &ru);
            } else if r * s > 0 {
                let name = format!("attn_softmax_fwd_{sfx}");
                launch!(dev, ATTN_SOFTMAX, &name, rows(r, block_threads(s, ATTN_MAX_THREADS) as u32); &x, &bias, &y, &si, &hi, &ti, &bi, &scale);
            }
            candle_core::CudaStorage::wrap_cuda_slice(y, dev.clone())
        });
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _bias: &Tensor,
        p: &Tensor,
        dp: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((Some(attn_softmax_bwd(p, dp, f64::from(self.scale))?), None))
    }
}

impl CustomOp2 for AttnSoftmaxBwd {
    fn name(&self) -> &'static str {
        "medtune-attn-softmax-bwd"
    }

    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let p = cpu_f32(ps, pl, "attn_softmax output")?;
        let dp = cpu_f32(gs, gl, "attn_softmax gradient")?;
        let (_, _, s) = dims_of(pl)?;
        let mut ds = Vec::with_capacity(p.len());
        for (pr, gr) in p.chunks(s).zip(dp.chunks(s)) {
            let dot: f32 = pr.iter().zip(gr).map(|(p, g)| p * g).sum();
            ds.extend(pr.iter().zip(gr).map(|(p, g)| self.scale * p * (g - dot)));
        }
        Ok((cpu_store(ds, ps.dtype())?, pl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        ps: &candle_core::CudaStorage,
        pl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{alloc_uninit, launch, rows, suffix, view, with_dtype, ATTN_SOFTMAX};
        let dev = ps.device().clone();
        let (r, _, s) = dims_of(pl)?;
        let sfx = suffix(ps.dtype())?;
        let (si, scale, ru) = (s as i32, self.scale, r as u32);
        let out = with_dtype!(ps.dtype(), T => {
            let p = view::<T>(ps, pl, "attn_softmax output")?;
            let dp = view::<T>(gs, gl, "attn_softmax gradient")?;
            let ds = alloc_uninit::<T>(&dev, r * s)?;
            if r * s > 0 && s <= WARP_MAX_S {
                let name = format!("attn_softmax_bwd_w{}_{sfx}", warp_k(s));
                launch!(dev, ATTN_SOFTMAX, &name, warp_config(r); &p, &dp, &ds, &si, &scale, &ru);
            } else if r * s > 0 {
                let name = format!("attn_softmax_bwd_{sfx}");
                launch!(dev, ATTN_SOFTMAX, &name, rows(r, block_threads(s, ATTN_MAX_THREADS) as u32); &p, &dp, &ds, &si, &scale);
            }
            candle_core::CudaStorage::wrap_cuda_slice(ds, dev.clone())
        });
        Ok((out, pl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::{attention_probs, softmax_last_dim};
    use crate::fused::testing::{max_rel_diff, values};
    use crate::mask::causal_bias;
    use candle_core::{Device, Var};

    /// The composed path of `attention.rs`: scale in the scores' dtype, f32 softmax, cast back.
    fn composed(scores: &Tensor, bias: &Tensor, scale: f64) -> Result<Tensor> {
        let x = (scores * scale)?
            .to_dtype(DType::F32)?
            .broadcast_add(bias)?;
        softmax_last_dim(&x)?.to_dtype(scores.dtype())
    }

    /// A [B, 1, T, S] bias: causal over the last T of S keys, with left padding of `pad[b]` keys
    /// (so the first queries of a padded row see no key at all).
    fn bias(batch: usize, t: usize, s: usize, pad: &[usize]) -> crate::Result<Tensor> {
        let mask: Vec<f32> = (0..batch * s)
            .map(|i| if i % s < pad[i / s] { 0.0 } else { 1.0 })
            .collect();
        let mask = Tensor::from_vec(mask, (batch, s), &Device::Cpu)?;
        causal_bias(batch, t, s - t, Some(&mask), None, &Device::Cpu)
    }

    /// Forward values and score gradients (of Σ p ⊙ probe) of the fused and composed paths.
    fn check(
        dims: (usize, usize, usize, usize),
        bias: &Tensor,
        dtype: DType,
        tol: f32,
    ) -> crate::Result<(f32, f32)> {
        let dev = Device::Cpu;
        let (b, h, t, s) = dims;
        let n = b * h * t * s;
        let scale = 0.37;
        let x0 = Tensor::from_vec(values(n, 11, 6.0), dims, &dev)?.to_dtype(dtype)?;
        let probe = Tensor::from_vec(values(n, 12, 1.0), dims, &dev)?;
        let x = Var::from_tensor(&x0)?;
        let p_ref = composed(x.as_tensor(), bias, scale)?;
        let g_ref = (p_ref.to_dtype(DType::F32)? * &probe)?
            .sum_all()?
            .backward()?;
        let x2 = Var::from_tensor(&x0)?;
        let p = attn_softmax(x2.as_tensor(), bias, scale)?;
        assert_eq!(p.dtype(), dtype);
        let g = (p.to_dtype(DType::F32)? * &probe)?.sum_all()?.backward()?;
        let dy = max_rel_diff(&p, &p_ref)?;
        let dg = max_rel_diff(g.get(&x2).unwrap(), g_ref.get(&x).unwrap())?;
        assert!(
            dy <= tol && dg <= tol,
            "{dims:?} {dtype:?}: forward {dy}, gradient {dg}"
        );
        Ok((dy, dg))
    }

    #[test]
    fn matches_the_composed_softmax_and_its_gradient() -> crate::Result<()> {
        // S = 37 (not a multiple of 32), 300 and 2100 (several chunks of keys per thread).
        for (t, s) in [(5, 37), (3, 300), (2, 2100), (1, 1)] {
            for dims in [(2, 3, t, s), (1, 2, t, s)] {
                let pad = [2usize.min(s - 1), 0];
                for bb in [dims.0, 1] {
                    let bias = bias(bb, t, s, &pad[..bb])?;
                    let (dy, dg) = check(dims, &bias, DType::F32, 1e-5)?;
                    let (by, bg) = check(dims, &bias, DType::BF16, 2e-2)?;
                    println!("{dims:?} bias batch {bb}: f32 {dy:e} / {dg:e}, bf16 {by:e} / {bg:e}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn fully_masked_rows_average_like_the_composed_path() -> crate::Result<()> {
        // Left padding of 4 keys: queries 0..2 see only padding.
        let bias = bias(1, 6, 6, &[4])?;
        let x = Tensor::from_vec(values(2 * 36, 5, 3.0), (1, 2, 6, 6), &Device::Cpu)?;
        let d = max_rel_diff(&attn_softmax(&x, &bias, 0.5)?, &composed(&x, &bias, 0.5)?)?;
        assert!(d <= 1e-6, "{d}");
        Ok(())
    }

    #[test]
    fn attention_probs_agree_with_grouped_heads() -> crate::Result<()> {
        // q [B, H_kv, rep·T, D], k [B, H_kv, S, D] as in `Attention::forward` (H = 4, H_kv = 2).
        let dev = Device::Cpu;
        let (b, h, hkv, t, d) = (2, 4, 2, 5, 8);
        let q = Tensor::from_vec(values(b * h * t * d, 21, 2.0), (b, hkv, 2 * t, d), &dev)?;
        let k = Tensor::from_vec(values(b * hkv * t * d, 22, 2.0), (b, hkv, t, d), &dev)?;
        let bias = bias(b, t, t, &[0, 3])?;
        for dtype in [DType::F32, DType::BF16] {
            let (q, k) = (q.to_dtype(dtype)?, k.to_dtype(dtype)?);
            let fused = attention_probs(&q, &k, &bias, (b, h, t), dtype, true)?;
            let plain = attention_probs(&q, &k, &bias, (b, h, t), dtype, false)?;
            assert_eq!(fused.dims(), [b, hkv, 2 * t, t]);
            assert_eq!(fused.dtype(), dtype);
            let diff = max_rel_diff(&fused, &plain)?;
            assert!(
                diff <= if dtype == DType::F32 { 1e-5 } else { 2e-2 },
                "{dtype:?}: {diff}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_bias_of_the_wrong_shape_or_dtype_is_refused() {
        let x = Tensor::zeros((2, 3, 4, 5), DType::F32, &Device::Cpu).unwrap();
        for (shape, dtype) in [
            ((3, 1, 4, 5), DType::F32),
            ((2, 1, 4, 4), DType::F32),
            ((2, 1, 4, 5), DType::BF16),
        ] {
            let bias = Tensor::zeros(shape, dtype, &Device::Cpu).unwrap();
            let e = attn_softmax(&x, &bias, 1.0).unwrap_err().to_string();
            assert!(e.contains("bias"), "{e}");
        }
        assert!(attn_softmax(&x.flatten_all().unwrap(), &x, 1.0).is_err());
    }
}
