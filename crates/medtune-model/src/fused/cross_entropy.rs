//! Weighted cross-entropy per row of logits: `loss[i] = w[i] · (logsumexp(x[i]) − x[i, t[i]])`
//! in f32, read straight from the (bf16) logits, and its gradient
//! `dx[i, j] = g[i] · w[i] · (softmax(x[i])_j − [j = t[i]])` in the logits' dtype (one kernel each
//! way, one block per row).
//!
//! The composed path (`loss.rs`) first copies the shifted logits to a new f32 [N, V] tensor
//! (for Llama 3, V = 128 256: the largest activation of a step), then runs max, subtract, exp,
//! sum, log, gather as separate kernels, and as many again backward. Rows with weight 0
//! (ignored labels, the last position of each sequence) are skipped: they cost nothing.

use super::attn_softmax::{block_threads, online_max_sum};
use super::{cpu_f32, cpu_store, prepared};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// Most threads per block: a Llama-3 row (V = 128 256) is read ~10 % faster backward with 1024
/// threads than with 256 (H100, 2048 rows of bf16).
const MAX_THREADS: usize = 1024;

/// Fused weighted cross-entropy: logits `[N, V]` (f32 or bf16), targets `[N]` u32, weights `[N]`
/// f32 (0 = ignored row, whose target is not read) → per-row losses `[N]` f32. Differentiable with
/// respect to the logits only. A target outside 0..V in a row of nonzero weight is an error on
/// the CPU and gives a NaN loss on CUDA (callers validate labels on the host).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let &[n, v] = logits.dims() else {
        candle_core::bail!("cross_entropy: logits {:?}, expected [N, V]", logits.dims())
    };
    if targets.dims() != [n] || targets.dtype() != DType::U32 {
        candle_core::bail!(
            "cross_entropy: targets {:?} {:?}, expected [{n}] U32 like the logits {:?}",
            targets.dims(),
            targets.dtype(),
            logits.dims()
        );
    }
    if weights.dims() != [n] || weights.dtype() != DType::F32 {
        candle_core::bail!(
            "cross_entropy: weights {:?} {:?}, expected [{n}] F32 like the logits {:?}",
            weights.dims(),
            weights.dtype(),
            logits.dims()
        );
    }
    if v == 0 || v >= 1 << 30 || n > i32::MAX as usize {
        candle_core::bail!(
            "cross_entropy: logits {:?} not supported (V must be in 1..2³⁰)",
            logits.dims()
        );
    }
    let logits = prepared(logits, "cross_entropy logits")?;
    if n == 0 {
        return Tensor::zeros(0, DType::F32, logits.device());
    }
    logits.apply_op3(&targets.contiguous()?, &weights.contiguous()?, CrossEntropy)
}

struct CrossEntropy;

struct CrossEntropyBwd;

/// (N, V) of a [N, V] layout.
fn dims_of(l: &Layout) -> Result<(usize, usize)> {
    match l.dims() {
        &[n, v] => Ok((n, v)),
        d => candle_core::bail!("cross_entropy: logits layout {d:?}, expected [N, V]"),
    }
}

fn cpu_u32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [u32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::U32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("cross_entropy: targets must be contiguous u32"),
    }
}

/// Target of `row` as an index into its `v` logits.
fn target(t: &[u32], row: usize, v: usize) -> Result<usize> {
    let t = t[row] as usize;
    if t >= v {
        candle_core::bail!("cross_entropy: target {t} of row {row} is out of range 0..{v}");
    }
    Ok(t)
}

impl CustomOp3 for CrossEntropy {
    fn name(&self) -> &'static str {
        "medtune-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(xs, xl, "cross_entropy logits")?;
        let t = cpu_u32(ts, tl)?;
        let w = cpu_f32(ws, wl, "cross_entropy weights")?;
        let (n, v) = dims_of(xl)?;
        let mut loss = Vec::with_capacity(n);
        for (row, xr) in x.chunks(v).enumerate() {
            if w[row] == 0.0 {
                loss.push(0.0);
                continue;
            }
            let (m, s) = online_max_sum(v, block_threads(v, MAX_THREADS), |i| xr[i]);
            let lse = s.ln() + m;
            loss.push((lse - xr[target(t, row, v)?]) * w[row]);
        }
        Ok((CpuStorage::F32(loss), Shape::from(n)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ts: &candle_core::CudaStorage,
        tl: &Layout,
        ws: &candle_core::CudaStorage,
        wl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{launch, rows, suffix, view, with_dtype, CROSS_ENTROPY};
        let dev = xs.device().clone();
        let (n, v) = dims_of(xl)?;
        let name = format!("cross_entropy_fwd_{}", suffix(xs.dtype())?);
        let vi = v as i32;
        let t = view::<u32>(ts, tl, "cross_entropy targets")?;
        let w = view::<f32>(ws, wl, "cross_entropy weights")?;
        let loss = dev.alloc_zeros::<f32>(n)?;
        with_dtype!(xs.dtype(), T => {
            let x = view::<T>(xs, xl, "cross_entropy logits")?;
            launch!(dev, CROSS_ENTROPY, &name, rows(n, block_threads(v, MAX_THREADS) as u32); &x, &t, &w, &loss, &vi);
        });
        Ok((
            candle_core::CudaStorage::wrap_cuda_slice(loss, dev.clone()),
            Shape::from(n),
        ))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        weights: &Tensor,
        _loss: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // g · w per row (a tiny [N] op), so that the kernel takes three inputs.
        let gw = (grad.to_dtype(DType::F32)? * weights)?;
        Ok((Some(cross_entropy_bwd(logits, targets, &gw)?), None, None))
    }
}

/// The logits gradient of [`cross_entropy`] for per-row output gradients `gw` [N] (f32; the
/// row weights already applied), for the hand-written head backward.
pub(crate) fn cross_entropy_bwd(logits: &Tensor, targets: &Tensor, gw: &Tensor) -> Result<Tensor> {
    logits
        .contiguous()?
        .apply_op3_no_bwd(targets, &gw.contiguous()?, &CrossEntropyBwd)
}

impl CustomOp3 for CrossEntropyBwd {
    fn name(&self) -> &'static str {
        "medtune-cross-entropy-bwd"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_f32(xs, xl, "cross_entropy logits")?;
        let t = cpu_u32(ts, tl)?;
        let gw = cpu_f32(gs, gl, "cross_entropy gradient")?;
        let (_, v) = dims_of(xl)?;
        let mut dx = vec![0f32; x.len()];
        for (row, (xr, dr)) in x.chunks(v).zip(dx.chunks_mut(v)).enumerate() {
            let g = gw[row];
            if g == 0.0 {
                continue;
            }
            let (m, s) = online_max_sum(v, block_threads(v, MAX_THREADS), |i| xr[i]);
            let c = g / s;
            for (d, &xi) in dr.iter_mut().zip(xr) {
                *d = c * (xi - m).exp();
            }
            dr[target(t, row, v)?] -= g;
        }
        Ok((cpu_store(dx, xs.dtype())?, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        ts: &candle_core::CudaStorage,
        tl: &Layout,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{launch, rows, suffix, view, with_dtype, CROSS_ENTROPY};
        let dev = xs.device().clone();
        let (n, v) = dims_of(xl)?;
        let name = format!("cross_entropy_bwd_{}", suffix(xs.dtype())?);
        let vi = v as i32;
        let t = view::<u32>(ts, tl, "cross_entropy targets")?;
        let gw = view::<f32>(gs, gl, "cross_entropy gradient")?;
        let out = with_dtype!(xs.dtype(), T => {
            let x = view::<T>(xs, xl, "cross_entropy logits")?;
            // Zero-initialised: the kernel skips rows whose gradient is 0.
            let dx = dev.alloc_zeros::<T>(n * v)?;
            launch!(dev, CROSS_ENTROPY, &name, rows(n, block_threads(v, MAX_THREADS) as u32); &x, &t, &gw, &dx, &vi);
            candle_core::CudaStorage::wrap_cuda_slice(dx, dev.clone())
        });
        Ok((out, xl.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::testing::{max_rel_diff, values};
    use crate::loss::{loss_sum, IGNORE_INDEX};
    use candle_core::{Device, Var};

    /// Labels [B, T] with some ignored positions, and one sequence entirely ignored.
    fn labels(b: usize, t: usize, v: usize) -> Result<Tensor> {
        let l: Vec<i64> = (0..b * t)
            .map(|i| {
                let (r, p) = (i / t, i % t);
                if r == 1 || p % 4 == 2 {
                    IGNORE_INDEX
                } else {
                    ((i * 7919 + 13) % v) as i64
                }
            })
            .collect();
        Tensor::from_vec(l, (b, t), &Device::Cpu)
    }

    /// (loss, count, gradient of the loss w.r.t. the logits) by the composed or the fused path.
    fn run(
        logits0: &Tensor,
        labels: &Tensor,
        fused: bool,
    ) -> crate::Result<(Tensor, usize, Tensor)> {
        let x = Var::from_tensor(logits0)?;
        let l = loss_sum(x.as_tensor(), labels, fused)?;
        let g = l.sum.backward()?;
        let dx = g.get(&x).expect("a logits gradient").clone();
        Ok((l.sum, l.count, dx))
    }

    fn check(
        b: usize,
        t: usize,
        v: usize,
        spread: f32,
        dtype: DType,
        tol: f32,
    ) -> crate::Result<(f32, f32)> {
        let logits = Tensor::from_vec(values(b * t * v, 31, spread), (b, t, v), &Device::Cpu)?
            .to_dtype(dtype)?;
        let labels = labels(b, t, v)?;
        let (l_ref, n_ref, g_ref) = run(&logits, &labels, false)?;
        let (l, n, g) = run(&logits, &labels, true)?;
        assert_eq!(n, n_ref);
        assert_eq!(g.dtype(), dtype);
        // The loss is a sum over rows: compare relative to its size.
        let (l, l_ref) = (l.to_scalar::<f32>()?, l_ref.to_scalar::<f32>()?);
        let dl = (l - l_ref).abs() / l_ref.abs().max(1.0);
        let dg = max_rel_diff(&g, &g_ref)?;
        assert!(
            dl <= tol && dg <= tol,
            "{b}×{t}×{v} {dtype:?}: loss {l} vs {l_ref} ({dl}), gradient {dg}"
        );
        Ok((dl, dg))
    }

    #[test]
    fn matches_the_composed_loss_and_its_gradient() -> crate::Result<()> {
        // V = 37 (not a multiple of 32), 1000, 20000 (several chunks of logits per thread); large
        // logits check the max subtraction.
        for (b, t, v, spread) in [
            (2, 5, 37, 3.0),
            (2, 3, 20000, 8.0),
            (3, 6, 1000, 4.0),
            (2, 3, 300, 60.0),
            (1, 2, 1, 1.0),
        ] {
            let (fl, fg) = check(b, t, v, spread, DType::F32, 1e-5)?;
            let (bl, bg) = check(b, t, v, spread, DType::BF16, 2e-2)?;
            println!("{b}×{t}×{v}: f32 loss {fl:e} grad {fg:e}; bf16 loss {bl:e} grad {bg:e}");
        }
        Ok(())
    }

    #[test]
    fn rows_match_the_formula_and_zero_weights_give_zero() -> Result<()> {
        let dev = Device::Cpu;
        let (n, v) = (4, 40);
        let x = Tensor::from_vec(values(n * v, 7, 5.0), (n, v), &dev)?;
        let t = Tensor::new(&[3u32, 0, 39, 500], &dev)?;
        let w = Tensor::new(&[1f32, 0.5, 2.0, 0.0], &dev)?;
        let loss = cross_entropy(&x, &t, &w)?.to_vec1::<f32>()?;
        let rows = x.to_vec2::<f32>()?;
        for (i, (row, &wi)) in rows.iter().zip(&[1f32, 0.5, 2.0, 0.0]).enumerate() {
            let want = if wi == 0.0 {
                0.0
            } else {
                let lse = row.iter().map(|x| x.exp()).sum::<f32>().ln();
                wi * (lse - row[[3, 0, 39][i]])
            };
            assert!(
                (loss[i] - want).abs() <= 1e-5 * want.abs().max(1.0),
                "row {i}: {} vs {want}",
                loss[i]
            );
        }
        Ok(())
    }

    #[test]
    fn bad_inputs_are_refused() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((3, 5), DType::F32, &dev).unwrap();
        let t = Tensor::new(&[0u32, 1, 2], &dev).unwrap();
        let w = Tensor::ones(3, DType::F32, &dev).unwrap();
        let e = |r: Result<Tensor>| r.unwrap_err().to_string();
        assert!(e(cross_entropy(&x, &t.to_dtype(DType::I64).unwrap(), &w)).contains("targets"));
        assert!(e(cross_entropy(&x, &t.narrow(0, 0, 2).unwrap(), &w)).contains("targets"));
        assert!(e(cross_entropy(&x, &t, &w.to_dtype(DType::BF16).unwrap())).contains("weights"));
        assert!(e(cross_entropy(&x.unsqueeze(0).unwrap(), &t, &w)).contains("logits"));
        let out_of_range = Tensor::new(&[0u32, 5, 2], &dev).unwrap();
        assert!(e(cross_entropy(&x, &out_of_range, &w)).contains("out of range"));
    }
}
