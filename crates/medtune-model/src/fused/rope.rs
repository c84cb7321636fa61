//! Rotary position embedding in HF's `rotate_half` layout, and its input gradient.
//!
//! With R the rotary dim, half = R/2, i < half and j = i + half:
//! `y[i] = x[i]·cos[i] − x[j]·sin[i]`, `y[j] = x[j]·cos[j] + x[i]·sin[j]`, `y[k] = x[k]` for
//! k ≥ R. The map is linear in x, so the gradient is its transpose:
//! `dx[i] = dy[i]·cos[i] + dy[j]·sin[j]`, `dx[j] = dy[j]·cos[j] − dy[i]·sin[i]`, `dx[k] = dy[k]`,
//! i.e. the same rotation with the sine of the pair swapped and negated; one kernel does both.
//! Each product and each sum is rounded to the model dtype, as in the composed
//! `x·cos + rotate_half(x)·sin` (`crate::rope::Rope::apply`).
//!
//! x may be strided over B, H and T (e.g. the `[B, T, H, D] → [B, H, T, D]` transpose of a
//! projection) as long as D has unit stride; the output is contiguous.

use super::{cpu_f32, cpu_store, round_to};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// Fused RoPE of `x` [B, H, T, D] (f32 or bf16) with tables `cos`, `sin` [B or 1, 1, T, R]
/// (R even, R ≤ D; cast to x's dtype if needed). Gradients flow to x only: the tables are
/// constants.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (x, cos, sin) = prepared(x, cos, sin)?;
    x.apply_op3(
        &cos,
        &sin,
        Rope {
            bwd: false,
            rows_out: false,
        },
    )
}

/// The op's inputs: x (or dy) f32/bf16 with unit stride over D (copied if not), the shapes
/// checked against each other, the tables cast to x's dtype and contiguous.
fn prepared(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let dtype = x.dtype();
    if !matches!(dtype, DType::F32 | DType::BF16) {
        candle_core::bail!("rope: input has dtype {dtype:?}, expected f32 or bf16");
    }
    let x = if x.rank() == 4 && x.stride()[3] != 1 {
        x.contiguous()?
    } else {
        x.clone()
    };
    Geometry::new(x.layout(), cos.layout(), sin.layout())?;
    let cos = cos.to_dtype(dtype)?.contiguous()?;
    let sin = sin.to_dtype(dtype)?.contiguous()?;
    Ok((x, cos, sin))
}

/// The input gradient of [`rope`] for `dy` [B, H, T, D] (its autograd backward).
pub(crate) fn rope_bwd(dy: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    rope_grad(dy, cos, sin, false)
}

/// The input gradient of [`rope`] for `dy` [B, H, T, D], written as [B, T, H, D]: the layout
/// of the q/k projection outputs, so that the hand-written backward needs no transpose.
pub(crate) fn rope_bwd_rows(dy: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    rope_grad(dy, cos, sin, true)
}

fn rope_grad(dy: &Tensor, cos: &Tensor, sin: &Tensor, rows_out: bool) -> Result<Tensor> {
    let (dy, cos, sin) = prepared(dy, cos, sin)?;
    dy.apply_op3_no_bwd(
        &cos,
        &sin,
        &Rope {
            bwd: true,
            rows_out,
        },
    )
}

/// Forward (`bwd: false`, input x) or gradient (`bwd: true`, input dy) rotation; the output
/// is [B, H, T, D], or [B, T, H, D] with `rows_out`.
struct Rope {
    bwd: bool,
    rows_out: bool,
}

impl Rope {
    /// Output strides over (B, H, T) and the output shape.
    fn output(&self, geo: &Geometry) -> ((usize, usize, usize), Shape) {
        let (b, h, t, d) = (geo.b, geo.h, geo.t, geo.d);
        if self.rows_out {
            ((t * h * d, d, h * d), Shape::from((b, t, h, d)))
        } else {
            ((h * t * d, t * d, d), Shape::from((b, h, t, d)))
        }
    }
}

/// Sizes of the problem: x [b, h, t, d] with strides (sb, sh, st, 1), tables [cb, 1, t, r].
#[derive(Clone, Copy)]
struct Geometry {
    b: usize,
    h: usize,
    t: usize,
    d: usize,
    r: usize,
    cb: usize,
    sb: usize,
    sh: usize,
    st: usize,
}

impl Geometry {
    fn new(xl: &Layout, cl: &Layout, sl: &Layout) -> Result<Self> {
        let (&[b, h, t, d], &[cb, one, ct, r]) = (xl.dims(), cl.dims()) else {
            candle_core::bail!(
                "rope: input {:?} and cos {:?} must both be 4-D",
                xl.dims(),
                cl.dims()
            );
        };
        if sl.dims() != cl.dims()
            || one != 1
            || ct != t
            || r % 2 != 0
            || r > d
            || (cb != 1 && cb != b)
        {
            candle_core::bail!(
                "rope: cos {:?} / sin {:?} do not fit input {:?} (expected [{b} or 1, 1, {t}, R], \
                 R even, R <= {d})",
                cl.dims(),
                sl.dims(),
                xl.dims()
            );
        }
        let s = xl.stride();
        if d > 1 && s[3] != 1 {
            candle_core::bail!(
                "rope: input {:?} must have unit stride over its last dimension",
                xl.dims()
            );
        }
        Ok(Self {
            b,
            h,
            t,
            d,
            r,
            cb,
            sb: s[0],
            sh: s[1],
            st: s[2],
        })
    }

    fn rows(&self) -> usize {
        self.b * self.h * self.t
    }

    /// Offset of row (b, h, t) of x, relative to the layout's start offset.
    fn x_row(&self, row: usize) -> usize {
        let (t, bh) = (row % self.t, row / self.t);
        let (h, b) = (bh % self.h, bh / self.h);
        b * self.sb + h * self.sh + t * self.st
    }

    /// Offset of the table row of x's row.
    fn table_row(&self, row: usize) -> usize {
        let (t, b) = (row % self.t, row / (self.t * self.h));
        ((if self.cb == 1 { 0 } else { b }) * self.t + t) * self.r
    }
}

/// Values of a (possibly strided) storage as f32, indexed like the layout from its start offset.
fn cpu_strided_f32(s: &CpuStorage, l: &Layout) -> Result<Vec<f32>> {
    let a = l.start_offset();
    Ok(match s {
        CpuStorage::F32(v) => v[a..].to_vec(),
        CpuStorage::BF16(v) => v[a..].iter().map(|x| x.to_f32()).collect(),
        _ => candle_core::bail!(
            "rope: input has dtype {:?}, expected f32 or bf16",
            s.dtype()
        ),
    })
}

/// The algorithm of the kernel, row by row.
fn cpu_rotate(
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    geo: Geometry,
    bwd: bool,
    out: (usize, usize, usize),
    dt: DType,
) -> Vec<f32> {
    let half = geo.r / 2;
    let mut y = vec![0f32; geo.rows() * geo.d];
    for row in 0..geo.rows() {
        let (t, bh) = (row % geo.t, row / geo.t);
        let o = (bh / geo.h) * out.0 + (bh % geo.h) * out.1 + t * out.2;
        let yr = &mut y[o..o + geo.d];
        let xr = &x[geo.x_row(row)..];
        let c = geo.table_row(row);
        let (cr, sr) = (&cos[c..c + geo.r], &sin[c..c + geo.r]);
        for i in 0..half {
            let j = i + half;
            let (sa, sb) = if bwd {
                (-sr[j], -sr[i])
            } else {
                (sr[i], sr[j])
            };
            let (a, p) = (round_to(xr[i] * cr[i], dt), round_to(xr[j] * sa, dt));
            let (c, q) = (round_to(xr[j] * cr[j], dt), round_to(xr[i] * sb, dt));
            yr[i] = a - p;
            yr[j] = c + q;
        }
        yr[geo.r..].copy_from_slice(&xr[geo.r..geo.d]);
    }
    y
}

#[cfg(feature = "cuda")]
#[allow(clippy::too_many_arguments)]
fn cuda_rotate(
    xs: &candle_core::CudaStorage,
    xl: &Layout,
    cs: &candle_core::CudaStorage,
    cl: &Layout,
    ss: &candle_core::CudaStorage,
    sl: &Layout,
    bwd: bool,
    out: (usize, usize, usize),
) -> Result<candle_core::CudaStorage> {
    use super::cuda::{alloc_uninit, launch, suffix, view, with_dtype, ROPE};
    use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
    let geo = Geometry::new(xl, cl, sl)?;
    if geo.rows() > i32::MAX as usize || geo.d > i32::MAX as usize {
        candle_core::bail!("rope: input {:?} is too large", xl.dims());
    }
    let dev = xs.device().clone();
    let name = format!("rope_{}", suffix(xs.dtype())?);
    let work = geo.r / 2 + (geo.d - geo.r);
    // One warp-multiple of threads per row, several rows per block (about 256 threads).
    let threads = (work.div_ceil(32) * 32).clamp(32, 256) as u32;
    let per_block = (256 / threads).max(1);
    let (h, t, d, r, cb) = (
        geo.h as u32,
        geo.t as u32,
        geo.d as u32,
        geo.r as u32,
        geo.cb as u32,
    );
    let (sb, sh, st) = (geo.sb as u64, geo.sh as u64, geo.st as u64);
    let (ob, oh, ot) = (out.0 as u64, out.1 as u64, out.2 as u64);
    let (flag, nrows) = (bwd as i32, geo.rows() as u32);
    Ok(with_dtype!(xs.dtype(), T => {
        let y = alloc_uninit::<T>(&dev, geo.rows() * geo.d)?;
        if geo.rows() > 0 && geo.d > 0 {
            let x = xs.as_cuda_slice::<T>()?.slice(xl.start_offset()..);
            let c = view::<T>(cs, cl, "rope cos")?;
            let s = view::<T>(ss, sl, "rope sin")?;
            // RPT = 4 rows per thread (kernels/rope.cu).
            let blocks = (geo.rows() as u32).div_ceil(per_block * 4).min(1 << 20);
            let cfg = LaunchConfig {
                grid_dim: (blocks, 1, 1),
                block_dim: (threads, per_block, 1),
                shared_mem_bytes: 0,
            };
            launch!(dev, ROPE, &name, cfg;
                &x, &c, &s, &y, &h, &t, &d, &r, &sb, &sh, &st, &ob, &oh, &ot, &cb, &flag, &nrows);
        }
        candle_core::CudaStorage::wrap_cuda_slice(y, dev.clone())
    }))
}

fn same_dtypes(x: DType, c: DType, s: DType) -> Result<()> {
    if c != x || s != x {
        candle_core::bail!("rope: cos {c:?} / sin {s:?} differ from the input dtype {x:?}");
    }
    Ok(())
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        if self.bwd {
            "medtune-rope-bwd"
        } else {
            "medtune-rope"
        }
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_dtypes(xs.dtype(), cs.dtype(), ss.dtype())?;
        let geo = Geometry::new(xl, cl, sl)?;
        let x = cpu_strided_f32(xs, xl)?;
        let cos = cpu_f32(cs, cl, "rope cos")?;
        let sin = cpu_f32(ss, sl, "rope sin")?;
        let (out, shape) = self.output(&geo);
        let y = cpu_rotate(&x, &cos, &sin, geo, self.bwd, out, xs.dtype());
        Ok((cpu_store(y, xs.dtype())?, shape))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        xs: &candle_core::CudaStorage,
        xl: &Layout,
        cs: &candle_core::CudaStorage,
        cl: &Layout,
        ss: &candle_core::CudaStorage,
        sl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        same_dtypes(xs.dtype(), cs.dtype(), ss.dtype())?;
        let geo = Geometry::new(xl, cl, sl)?;
        let (out, shape) = self.output(&geo);
        let y = cuda_rotate(xs, xl, cs, cl, ss, sl, self.bwd, out)?;
        Ok((y, shape))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.bwd {
            candle_core::bail!("rope: the gradient op has no gradient itself");
        }
        if dy.shape() != y.shape() || dy.dtype() != y.dtype() {
            candle_core::bail!(
                "rope: gradient {:?} {:?} does not fit output {:?} {:?}",
                dy.dims(),
                dy.dtype(),
                y.dims(),
                y.dtype()
            );
        }
        let dx = rope_bwd(dy, cos, sin)?;
        Ok((Some(dx), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RopeConfig, RopeScaling};
    use crate::fused::testing::{max_rel_diff, values};
    use candle_core::{Device, Var};

    /// (forward, gradient) max relative differences of the fused op against the composed
    /// `Rope::apply` on x [b, h, t, d] (built as [b, t, h, d] and transposed when `strided`).
    fn compare(
        dtype: DType,
        x_dims: (usize, usize, usize, usize),
        tables: (&Tensor, &Tensor),
        strided: bool,
    ) -> Result<(f32, f32)> {
        let dev = Device::Cpu;
        let (b, h, t, d) = x_dims;
        let r = tables.0.dim(3)?;
        let composed = crate::rope::Rope::new(
            &RopeConfig {
                theta: 10_000.0,
                rotary_dim: r,
                scaling: RopeScaling::None,
            },
            1,
            dtype,
            &dev,
        )?;
        let n = b * h * t * d;
        let x0 = if strided {
            Tensor::from_vec(values(n, 31, 3.0), (b, t, h, d), &dev)?.to_dtype(dtype)?
        } else {
            Tensor::from_vec(values(n, 31, 3.0), (b, h, t, d), &dev)?.to_dtype(dtype)?
        };
        let probe = Tensor::from_vec(values(n, 32, 1.0), (b, h, t, d), &dev)?;
        let (cos, sin) = (tables.0.to_dtype(dtype)?, tables.1.to_dtype(dtype)?);
        let run = |fused: bool| -> Result<(Tensor, Tensor)> {
            let xv = Var::from_tensor(&x0)?;
            let x = if strided {
                xv.as_tensor().transpose(1, 2)?
            } else {
                xv.as_tensor().clone()
            };
            let y = if fused {
                rope(&x, &cos, &sin)?
            } else {
                composed.apply(&x, &cos, &sin)?
            };
            assert_eq!(y.dims(), [b, h, t, d]);
            let grads = (y.to_dtype(DType::F32)? * &probe)?.sum_all()?.backward()?;
            Ok((y, grads.get(&xv).unwrap().clone()))
        };
        let (y_ref, g_ref) = run(false)?;
        let (y, g) = run(true)?;
        assert_eq!(y.dtype(), dtype);
        assert!(y.is_contiguous());
        Ok((max_rel_diff(&y, &y_ref)?, max_rel_diff(&g, &g_ref)?))
    }

    /// HF tables (rotary dim r) for per-row positions [b, t].
    fn hf_tables(r: usize, positions: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
        let cfg = RopeConfig {
            theta: 10_000.0,
            rotary_dim: r,
            scaling: RopeScaling::None,
        };
        let table = crate::rope::Rope::new(&cfg, 64, DType::F32, &Device::Cpu)?;
        table.cos_sin(&Tensor::new(positions.to_vec(), &Device::Cpu)?)
    }

    /// (name, x dims, (cos, sin), strided input).
    type Case = (
        &'static str,
        (usize, usize, usize, usize),
        (Tensor, Tensor),
        bool,
    );

    fn check(dtype: DType, tol: f32) -> Result<()> {
        let per_row = vec![(0u32..7).collect::<Vec<_>>(), (20u32..27).rev().collect()];
        let shared = vec![(3u32..10).collect::<Vec<_>>()];
        let cases: Vec<Case> = vec![
            (
                "R = D, per-row positions",
                (2, 3, 7, 16),
                hf_tables(16, &per_row)?,
                false,
            ),
            (
                "R < D (partial), per-row positions",
                (2, 3, 7, 20),
                hf_tables(8, &per_row)?,
                false,
            ),
            (
                "R = D, shared table",
                (2, 3, 7, 16),
                hf_tables(16, &shared)?,
                false,
            ),
            (
                "R < D, strided input",
                (2, 3, 7, 20),
                hf_tables(6, &per_row)?,
                true,
            ),
            ("R = 0", (1, 2, 7, 5), hf_tables(0, &shared)?, false),
            (
                // sin[i] != sin[i + half]: checks that the gradient uses the right sine of
                // each pair.
                "arbitrary tables",
                (2, 2, 7, 12),
                (
                    Tensor::from_vec(values(2 * 7 * 10, 41, 1.0), (2, 1, 7, 10), &Device::Cpu)?,
                    Tensor::from_vec(values(2 * 7 * 10, 42, 1.0), (2, 1, 7, 10), &Device::Cpu)?,
                ),
                true,
            ),
        ];
        for (what, dims, (cos, sin), strided) in cases {
            let (dy, dg) = compare(dtype, dims, (&cos, &sin), strided)?;
            eprintln!("rope {dtype:?} {what}: forward {dy}, gradient {dg}");
            assert!(
                dy <= tol && dg <= tol,
                "{dtype:?} {what}: forward {dy}, gradient {dg}"
            );
        }
        Ok(())
    }

    #[test]
    fn matches_the_composed_rope_and_its_gradient() -> Result<()> {
        check(DType::F32, 1e-6)?;
        check(DType::BF16, 2e-2)
    }

    #[test]
    fn the_row_layout_gradient_is_the_transposed_gradient() -> Result<()> {
        let (b, h, t, d) = (2, 3, 7, 12);
        let tables = hf_tables(8, &[(0u32..7).collect(), (3u32..10).collect()])?;
        for dt in [DType::F32, DType::BF16] {
            let dy = Tensor::from_vec(values(b * h * t * d, 5, 2.0), (b, h, t, d), &Device::Cpu)?
                .to_dtype(dt)?;
            let (cos, sin) = (tables.0.to_dtype(dt)?, tables.1.to_dtype(dt)?);
            let rows = rope_bwd_rows(&dy, &cos, &sin)?;
            assert_eq!(rows.dims(), [b, t, h, d]);
            let want = rope_bwd(&dy, &cos, &sin)?.transpose(1, 2)?.contiguous()?;
            crate::fused::testing::assert_same(&rows, &want, &format!("{dt:?}"))?;
        }
        Ok(())
    }

    #[test]
    fn mismatched_tables_are_refused() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3, 5, 8), DType::F32, &dev)?;
        let bad = |dims: (usize, usize, usize, usize)| -> Result<bool> {
            let t = Tensor::zeros(dims, DType::F32, &dev)?;
            Ok(rope(&x, &t, &t).is_err())
        };
        assert!(bad((3, 1, 5, 8))?, "batch 3 for input batch 2");
        assert!(bad((2, 1, 4, 8))?, "wrong T");
        assert!(bad((2, 1, 5, 7))?, "odd R");
        assert!(bad((2, 1, 5, 10))?, "R > D");
        assert!(bad((2, 2, 5, 8))?, "second dim not 1");
        assert!(!bad((1, 1, 5, 4))?, "shared partial table is fine");
        let c = Tensor::zeros((2, 1, 5, 8), DType::F32, &dev)?;
        assert!(rope(&x.to_dtype(DType::U32)?, &c, &c).is_err());
        assert!(rope(&x.flatten_to(1)?, &c, &c).is_err());
        Ok(())
    }
}
