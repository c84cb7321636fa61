//! Self-check of the fused kernels on a device: each op against the same arithmetic written
//! with basic candle ops (the composed path), values and input gradients, on deterministic
//! inputs of awkward sizes (rows not a multiple of the block, partial rotary, masked keys,
//! ignored labels). `medtune verify --device cuda` runs it before the conformance suite.

use candle_core::{DType, Device, Result, Tensor, Var, D};

/// One comparison: what was compared, ‖fused − composed‖ / ‖composed‖, and its bound.
pub struct Check {
    /// e.g. `rms_norm value`, `rope dx`.
    pub what: String,
    /// Relative difference.
    pub rel: f64,
    /// Tolerance for the dtype.
    pub tol: f64,
}

fn rel(a: &Tensor, b: &Tensor) -> Result<f64> {
    let a = a.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let b = b.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
    let num = (&a - &b)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let den = b.sqr()?.sum_all()?.to_scalar::<f64>()?.max(1e-30);
    Ok((num / den).sqrt())
}

fn input(shape: &[usize], seed: u64, scale: f32, dev: &Device, dt: DType) -> Result<Tensor> {
    let n = shape.iter().product();
    Tensor::from_vec(super::sample_values(n, seed, scale), shape, dev)?.to_dtype(dt)
}

/// Compares `fused(inputs)` with `composed(inputs)`: the values, and the gradient of
/// Σ(y ⊙ probe) with respect to every input listed in `grad_of`.
fn compare(
    out: &mut Vec<Check>,
    name: &str,
    tol: f64,
    inputs: &[Tensor],
    grad_of: &[(usize, &str)],
    fused: &dyn Fn(&[Tensor]) -> Result<Tensor>,
    composed: &dyn Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<()> {
    let run = |f: &dyn Fn(&[Tensor]) -> Result<Tensor>| -> Result<(Tensor, Vec<Tensor>)> {
        let mut vars: Vec<Option<Var>> = Vec::with_capacity(inputs.len());
        for (i, t) in inputs.iter().enumerate() {
            let tracked = grad_of.iter().any(|(j, _)| *j == i);
            vars.push(if tracked {
                Some(Var::from_tensor(t)?)
            } else {
                None
            });
        }
        let ts: Vec<Tensor> = inputs
            .iter()
            .zip(&vars)
            .map(|(t, v)| {
                v.as_ref()
                    .map_or_else(|| t.clone(), |v| v.as_tensor().clone())
            })
            .collect();
        let y = f(&ts)?;
        let probe = input(y.dims(), 99, 1.0, y.device(), DType::F32)?;
        let grads = (y.to_dtype(DType::F32)? * probe)?.sum_all()?.backward()?;
        let mut gs = Vec::new();
        for (j, what) in grad_of {
            match vars[*j].as_ref().and_then(|v| grads.get(v.as_tensor())) {
                Some(g) => gs.push(g.clone()),
                None => candle_core::bail!("{name}: no gradient for {what}"),
            }
        }
        Ok((y, gs))
    };
    let (yf, gf) = run(fused)?;
    let (yc, gc) = run(composed)?;
    out.push(Check {
        what: format!("{name} value"),
        rel: rel(&yf, &yc)?,
        tol,
    });
    for ((a, b), (_, what)) in gf.iter().zip(&gc).zip(grad_of) {
        out.push(Check {
            what: format!("{name} {what}"),
            rel: rel(a, b)?,
            tol,
        });
    }
    Ok(())
}

/// Runs every check on `dev` in `dt` (f32 or bf16).
pub fn self_check(dev: &Device, dt: DType) -> Result<Vec<Check>> {
    let tol = if dt == DType::F32 { 1e-5 } else { 2e-2 };
    let mut out = Vec::new();

    // RMSNorm: 37 rows of 200 (register-pack kernels on CUDA), of 203 (one element per step)
    // and of 4,096 (two packs per thread in bf16).
    for (n, what) in [
        (200, "rms_norm"),
        (203, "rms_norm (odd rows)"),
        (4096, "rms_norm (long rows)"),
    ] {
        let x = input(&[37, n], 1, 2.0, dev, dt)?;
        let w = input(&[n], 2, 1.5, dev, dt)?;
        compare(
            &mut out,
            what,
            tol,
            &[x, w],
            &[(0, "dx")],
            &|t| super::rms_norm(&t[0], &t[1], 1e-5),
            &|t| {
                let xf = t[0].to_dtype(DType::F32)?;
                let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
                xf.broadcast_div(&(ms + 1e-5)?.sqrt()?)?
                    .to_dtype(dt)?
                    .broadcast_mul(&t[1])
            },
        )?;
    }

    // Attention softmax: B=2, H=3, T=S=45, causal bias per batch row with padded keys.
    let (b, h, t) = (2, 3, 45);
    let scores = input(&[b, h, t, t], 3, 4.0, dev, dt)?;
    let mut bias = vec![0f32; b * t * t];
    for bi in 0..b {
        for i in 0..t {
            for j in 0..t {
                if j > i || (bi == 1 && j < 5) {
                    bias[(bi * t + i) * t + j] = crate::mask::MASKED;
                }
            }
        }
    }
    let bias = Tensor::from_vec(bias, (b, 1, t, t), dev)?;
    let scale = 0.125;
    let softmax_composed = |t: &[Tensor]| -> Result<Tensor> {
        let s = (&t[0] * scale)?
            .to_dtype(DType::F32)?
            .broadcast_add(&t[1])?;
        crate::attention::softmax_last_dim(&s)?.to_dtype(dt)
    };
    // Rows longer than the warp kernels take (S > 1,024): the block-per-row kernels.
    let (t_long, s_long) = (3, 1100);
    let scores_long = input(&[1, 2, t_long, s_long], 19, 4.0, dev, dt)?;
    let bias_long: Vec<f32> = (0..t_long * s_long)
        .map(|i| {
            if i % s_long > 1000 + i / s_long {
                crate::mask::MASKED
            } else {
                0.0
            }
        })
        .collect();
    let bias_long = Tensor::from_vec(bias_long, (1, 1, t_long, s_long), dev)?;
    for (what, scores, bias) in [
        ("attn_softmax", scores, bias),
        ("attn_softmax (long rows)", scores_long, bias_long),
    ] {
        compare(
            &mut out,
            what,
            tol,
            &[scores, bias],
            &[(0, "d_scores")],
            &|t| super::attn_softmax(&t[0], &t[1], scale),
            &softmax_composed,
        )?;
    }

    // Cross-entropy: 33 rows over 1,000 classes, every third row ignored.
    let (n, v) = (33, 1000);
    let logits = input(&[n, v], 4, 6.0, dev, dt)?;
    let targets: Vec<u32> = (0..n as u32).map(|i| (i * 37) % v as u32).collect();
    let weights: Vec<f32> = (0..n).map(|i| if i % 3 == 2 { 0.0 } else { 1.0 }).collect();
    let targets = Tensor::from_vec(targets, n, dev)?;
    let weights = Tensor::from_vec(weights, n, dev)?;
    compare(
        &mut out,
        "cross_entropy",
        tol,
        &[logits, targets, weights],
        &[(0, "d_logits")],
        &|t| super::cross_entropy(&t[0], &t[1], &t[2]),
        &|t| {
            let x = t[0].to_dtype(DType::F32)?;
            let lse = crate::loss::log_sum_exp(&x)?;
            let picked = x.gather(&t[1].unsqueeze(1)?, 1)?;
            (lse - picked)?.squeeze(1)? * &t[2]
        },
    )?;

    // SwiGLU: [3, 7, 130] (one element per thread on CUDA) and [5, 3, 264] (16-byte packs:
    // the column count a multiple of 8).
    for (dims, seeds, what) in [
        ([3, 7, 130], (5, 6), "swiglu"),
        ([5, 3, 264], (20, 21), "swiglu (packs)"),
    ] {
        let gate = input(&dims, seeds.0, 4.0, dev, dt)?;
        let up = input(&dims, seeds.1, 2.0, dev, dt)?;
        compare(
            &mut out,
            what,
            tol,
            &[gate, up],
            &[(0, "d_gate"), (1, "d_up")],
            &|t| super::swiglu(&t[0], &t[1]),
            &|t| t[0].silu()? * &t[1],
        )?;
    }

    // RoPE: B=2, H=3, T=11, D=24, rotary dim 16 (partial), per-row positions.
    let (b, h, t, d, r) = (2, 3, 11, 24, 16);
    let x = input(&[b, h, t, d], 7, 2.0, dev, dt)?;
    let cos = rope_table(b, t, r, dev, dt, true)?;
    let sin = rope_table(b, t, r, dev, dt, false)?;
    // The composed RoPE on the first r dims, the rest passed through.
    let rope_composed = |t: &[Tensor]| -> Result<Tensor> {
        let rot = t[0].narrow(D::Minus1, 0, r)?;
        let pass = t[0].narrow(D::Minus1, r, d - r)?;
        let y =
            (rot.broadcast_mul(&t[1])? + crate::rope::rotate_half(&rot)?.broadcast_mul(&t[2])?)?;
        Tensor::cat(&[&y, &pass], D::Minus1)
    };
    compare(
        &mut out,
        "rope",
        tol,
        &[x, cos, sin],
        &[(0, "dx")],
        &|t| super::rope(&t[0], &t[1], &t[2]),
        &rope_composed,
    )?;

    // Frozen linear: x [2, 9, 48] · wᵀ, w [40, 48].
    let x = input(&[2, 9, 48], 8, 1.0, dev, dt)?;
    let w = input(&[40, 48], 9, 0.5, dev, dt)?;
    compare(
        &mut out,
        "frozen_linear",
        tol,
        &[x, w],
        &[(0, "dx")],
        &|t| super::frozen_linear(&t[0], &t[1]),
        &|t| t[0].broadcast_matmul(&t[1].t()?),
    )?;

    // Packed SwiGLU (Phi-3's gate_up_proj): [2, 5, 2 × 70].
    let gate_up = input(&[2, 5, 140], 10, 4.0, dev, dt)?;
    compare(
        &mut out,
        "swiglu_packed",
        tol,
        &[gate_up],
        &[(0, "d_gate_up")],
        &|t| super::swiglu_packed(&t[0]),
        &|t| {
            let g = t[0].narrow(D::Minus1, 0, 70)?;
            let u = t[0].narrow(D::Minus1, 70, 70)?;
            g.silu()? * u
        },
    )?;

    // RoPE on a transposed (non-contiguous) x, as attention hands it over: [B, T, H, D] → [B, H, T, D].
    let xt = input(&[b, t, h, d], 11, 2.0, dev, dt)?.transpose(1, 2)?;
    let cos = rope_table(b, t, r, dev, dt, true)?;
    let sin = rope_table(b, t, r, dev, dt, false)?;
    compare(
        &mut out,
        "rope (strided x)",
        tol,
        &[xt, cos, sin],
        &[(0, "dx")],
        &|t| super::rope(&t[0], &t[1], &t[2]),
        &rope_composed,
    )?;

    // The RoPE gradient written in [B, T, H, D] (the layer backward's layout) against the
    // gradient in [B, H, T, D] transposed: must be identical.
    let dy = input(&[b, h, t, d], 22, 2.0, dev, dt)?;
    let cos = rope_table(b, t, r, dev, dt, true)?;
    let sin = rope_table(b, t, r, dev, dt, false)?;
    out.push(Check {
        what: "rope gradient in row layout (exact)".into(),
        rel: rel(
            &super::rope_bwd_rows(&dy, &cos, &sin)?,
            &super::rope::rope_bwd(&dy, &cos, &sin)?
                .transpose(1, 2)?
                .contiguous()?,
        )?,
        tol: 0.0,
    });

    // Strided-to-contiguous copies (exact): the head transposes of attention in 16-byte units
    // (D = 24), a row length that allows only 2-byte units (D = 5), and a narrowed view.
    for (what, x) in [
        (
            "16-byte units",
            input(&[2, 9, 3, 24], 23, 1.0, dev, dt)?.transpose(1, 2)?,
        ),
        (
            "odd rows",
            input(&[2, 9, 3, 5], 24, 1.0, dev, dt)?.transpose(1, 2)?,
        ),
        (
            "narrowed",
            input(&[2, 9, 4, 24], 25, 1.0, dev, dt)?
                .narrow(2, 1, 3)?
                .transpose(1, 2)?,
        ),
    ] {
        out.push(Check {
            what: format!("contiguous copy, {what} (exact)"),
            rel: rel(&super::contiguous(&x)?, &x.contiguous()?)?,
            tol: 0.0,
        });
    }

    // Residual add in 16-byte packs plus a tail (1,001 values): must equal candle's add.
    let a = input(&[7, 143], 26, 3.0, dev, dt)?;
    let b = input(&[7, 143], 27, 3.0, dev, dt)?;
    out.push(Check {
        what: "add, packs and tail (exact)".into(),
        rel: rel(&super::add(&a, &b)?, &(&a + &b)?)?,
        tol: 0.0,
    });

    // Dropout: the fused mask against the composed one, p = 0.1, 3 × 1,001 elements.
    let x = input(&[3, 1001], 12, 2.0, dev, dt)?;
    let key = 0x5EED_1234_u64;
    compare(
        &mut out,
        "dropout",
        tol,
        &[x],
        &[(0, "dx")],
        &|t| super::dropout(&t[0], key, 0.1),
        &|t| {
            let mask = crate::dropout_mask::keep_mask(t[0].shape(), t[0].device(), dt, key, 0.1)?;
            &t[0] * mask
        },
    )?;

    // cuBLAS products with scale and accumulator (no autograd): c + 2·a·bᵀ and 0.5·aᵀ·b' with
    // transposed views, as the layer backward uses them.
    let a = input(&[37, 24], 14, 1.0, dev, dt)?;
    let bt = input(&[19, 24], 15, 1.0, dev, dt)?;
    let c = input(&[37, 19], 16, 1.0, dev, dt)?;
    let want = (&c + (a.matmul(&bt.t()?)? * 2.0)?)?;
    out.push(Check {
        what: "addmm value".into(),
        rel: rel(&super::addmm(c.copy()?, &a, &bt.t()?, 2.0)?, &want)?,
        tol,
    });
    let b2 = input(&[37, 11], 17, 1.0, dev, dt)?;
    let want = (a.t()?.matmul(&b2)? * 0.5)?;
    out.push(Check {
        what: "matmul_scaled value".into(),
        rel: rel(&super::matmul_scaled(&a.t()?, &b2, 0.5)?, &want)?,
        tol,
    });

    // NF4 dequantization (double quant, a partial last block): must be bit-identical.
    let q = crate::nf4::Nf4Tensor::quantize_values(
        &super::sample_values(70 * 33, 13, 0.3),
        &[70, 33],
        crate::nf4::Nf4Options {
            double_quant: true,
            ..Default::default()
        },
        dev,
    )
    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    // An odd size (the vector loop's tail and the padded last byte).
    let q_odd = crate::nf4::Nf4Tensor::quantize_values(
        &super::sample_values(37 * 29, 18, 0.3),
        &[37, 29],
        crate::nf4::Nf4Options {
            double_quant: false,
            ..Default::default()
        },
        dev,
    )
    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    out.push(Check {
        what: "nf4 dequantize, odd size (bit-exact)".into(),
        rel: rel(
            &super::dequantize_nf4(&q_odd, dt)?,
            &q_odd
                .dequantize_composed(dt)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        )?,
        tol: 0.0,
    });
    out.push(Check {
        what: "nf4 dequantize (bit-exact)".into(),
        rel: rel(
            &super::dequantize_nf4(&q, dt)?,
            &q.dequantize_composed(dt)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?,
        )?,
        tol: 0.0,
    });
    Ok(out)
}

/// The cos (or sin) table of the RoPE checks: [B, 1, T, R], per-row position offsets.
fn rope_table(b: usize, t: usize, r: usize, dev: &Device, dt: DType, cos: bool) -> Result<Tensor> {
    let mut v = Vec::with_capacity(b * t * r);
    for bi in 0..b {
        for p in 0..t {
            for _half in 0..2 {
                for f in 0..r / 2 {
                    let angle = ((p + 3 * bi) as f64) * 10f64.powf(-(f as f64) / 4.0);
                    v.push(if cos { angle.cos() } else { angle.sin() } as f32);
                }
            }
        }
    }
    Tensor::from_vec(v, (b, 1, t, r), dev)?.to_dtype(dt)
}
