//! SwiGLU: `y = dtype(silu(g)) ⊙ u` with `silu(g) = g / (1 + e^-g)`, and its gradients
//! `d_g = dtype(dy ⊙ u) ⊙ silu'(g)` with `silu'(g) = σ(g)·(1 + g·(1 − σ(g)))` and
//! `d_u = dy ⊙ dtype(silu(g))`, each in one kernel.
//!
//! Two entry points share the kernels: [`swiglu`] for separate gate and up tensors (Llama's
//! `gate_proj`/`up_proj`), and [`swiglu_packed`] for Phi-3's `gate_up_proj` output `[.., 2I]`
//! (first half gate, second half up), which reads the halves in place and writes the gradient
//! of the packed tensor directly (no narrow, copy or concatenation).

use super::{cpu_f32, cpu_store, prepared, round_to};
use candle_core::backend::BackendStorage;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D,
};

/// Fused `silu(gate) ⊙ up` for `gate` and `up` of the same shape and dtype (f32 or bf16).
/// Gradients flow to both inputs.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if gate.dims() != up.dims() || gate.dtype() != up.dtype() {
        candle_core::bail!(
            "swiglu: gate {:?} {:?} and up {:?} {:?} differ",
            gate.dims(),
            gate.dtype(),
            up.dims(),
            up.dtype()
        );
    }
    let gate = prepared(gate, "swiglu gate")?;
    let up = prepared(up, "swiglu up")?;
    gate.apply_op2(&up, Swiglu)
}

/// Fused `silu(gate) ⊙ up` where `gate_up` [.., 2I] holds the gate in its first I and the up
/// projection in its last I columns (f32 or bf16); returns [.., I]. Same values as
/// `swiglu(&gate_up.narrow(D::Minus1, 0, I)?, &gate_up.narrow(D::Minus1, I, I)?)`.
pub fn swiglu_packed(gate_up: &Tensor) -> Result<Tensor> {
    let n = gate_up.dim(D::Minus1)?;
    if n % 2 != 0 {
        candle_core::bail!(
            "swiglu_packed: last dimension {n} of {:?} is odd",
            gate_up.dims()
        );
    }
    prepared(gate_up, "swiglu_packed input")?.apply_op1(SwigluPacked)
}

/// The gradients (d_gate, d_up) of [`swiglu`] for `dy` (for the hand-written layer backward).
pub(crate) fn swiglu_bwd(gate: &Tensor, up: &Tensor, dy: &Tensor) -> Result<(Tensor, Tensor)> {
    let dy = check_grad(dy, gate.shape(), gate.dtype())?;
    let both = prepared(gate, "swiglu gate")?.apply_op3_no_bwd(
        &prepared(up, "swiglu up")?,
        &dy,
        &SwigluBwd,
    )?;
    Ok((both.get(0)?, both.get(1)?))
}

/// Rows × columns of the element-wise problem, and where the inputs and outputs of a row are.
#[derive(Clone, Copy)]
struct Geometry {
    rows: usize,
    cols: usize,
    /// Distance between rows of the gate (and of up) in the input buffer(s).
    in_stride: usize,
    /// Distance between rows of d_gate (and of d_up) in the gradient buffer.
    out_stride: usize,
    /// Offset of up in the (packed) input buffer, and of d_up in the gradient buffer.
    up_off: usize,
    du_off: usize,
}

impl Geometry {
    /// Separate contiguous gate and up of `shape`; gradient [2, shape] (d_gate, then d_up).
    fn separate(shape: &Shape) -> Self {
        let n = shape.elem_count();
        let cols = shape.dims().last().copied().unwrap_or(1).max(1);
        Self {
            rows: n / cols,
            cols,
            in_stride: cols,
            out_stride: cols,
            up_off: 0,
            du_off: n,
        }
    }

    /// Packed [.., 2I] input of `shape`; gradient of the same shape.
    fn packed(shape: &Shape) -> Self {
        let n = shape.elem_count();
        let two_i = shape.dims().last().copied().unwrap_or(2).max(2);
        let cols = two_i / 2;
        Self {
            rows: n / two_i,
            cols,
            in_stride: two_i,
            out_stride: two_i,
            up_off: cols,
            du_off: cols,
        }
    }

    fn outputs(&self) -> usize {
        self.rows * self.cols
    }

    #[cfg(feature = "cuda")]
    fn check_32bit(&self) -> Result<()> {
        if self.rows > i32::MAX as usize || self.cols > i32::MAX as usize {
            candle_core::bail!(
                "swiglu: {} rows of {} columns is too large",
                self.rows,
                self.cols
            );
        }
        Ok(())
    }
}

fn silu(g: f32) -> f32 {
    g / (1.0 + (-g).exp())
}

/// The forward algorithm of the kernel: `u` is indexed like `g` (row r at r·in_stride).
fn cpu_fwd(g: &[f32], u: &[f32], geo: Geometry, dt: DType) -> Vec<f32> {
    let mut y = Vec::with_capacity(geo.outputs());
    for r in 0..geo.rows {
        let (gr, ur) = (&g[r * geo.in_stride..], &u[r * geo.in_stride..]);
        y.extend((0..geo.cols).map(|c| round_to(silu(gr[c]), dt) * ur[c]));
    }
    y
}

/// The backward algorithm of the kernel: `dy` contiguous [rows, cols]; writes d_gate at
/// r·out_stride + c and d_up at du_off + r·out_stride + c of a buffer of `len` values.
fn cpu_bwd(g: &[f32], u: &[f32], dy: &[f32], geo: Geometry, len: usize, dt: DType) -> Vec<f32> {
    let mut out = vec![0f32; len];
    for r in 0..geo.rows {
        for c in 0..geo.cols {
            let i = r * geo.in_stride + c;
            let (gv, uv, dv) = (g[i], u[i], dy[r * geo.cols + c]);
            let den = 1.0 + (-gv).exp();
            let s = 1.0 / den;
            let silu = round_to(gv / den, dt);
            let o = r * geo.out_stride + c;
            out[o] = round_to(dv * uv, dt) * (s * (1.0 + gv * (1.0 - s)));
            out[geo.du_off + o] = dv * silu;
        }
    }
    out
}

fn check_grad(dy: &Tensor, shape: &Shape, dtype: DType) -> Result<Tensor> {
    if dy.shape() != shape || dy.dtype() != dtype {
        candle_core::bail!(
            "swiglu: gradient {:?} {:?} does not fit output {:?} {dtype:?}",
            dy.dims(),
            dy.dtype(),
            shape.dims()
        );
    }
    dy.contiguous()
}

#[cfg(feature = "cuda")]
mod gpu {
    //! Launches of `kernels/swiglu.cu`.
    use super::Geometry;
    use crate::fused::cuda::{alloc_uninit, launch, suffix, view, with_dtype, SWIGLU};
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::LaunchConfig;
    use candle_core::{CudaStorage, DType, Layout, Result};

    /// 256 threads over the columns, blocks over the rows (both grid-stride).
    fn config(geo: Geometry) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (
                geo.cols.div_ceil(256).min(65_535) as u32,
                geo.rows.min(65_535) as u32,
                1,
            ),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// Whether the 16-byte kernels (`_vec`) apply: every column count, stride and offset
    /// (including the inputs' start offsets) a multiple of one pack of `dtype`.
    fn packs(geo: Geometry, dtype: DType, starts: &[usize]) -> Option<usize> {
        let n = 16 / dtype.size_in_bytes();
        [
            geo.cols,
            geo.in_stride,
            geo.out_stride,
            geo.up_off,
            geo.du_off,
        ]
        .iter()
        .chain(starts)
        .all(|v| v % n == 0)
        .then_some(n)
    }

    /// 256 threads per block, one pack each (grid-stride).
    fn vec_config(geo: Geometry, n: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: ((geo.outputs() / n).div_ceil(256).min(1 << 20) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// The kernel name and launch shape: the 16-byte kernel when it applies.
    fn pick(
        base: &str,
        geo: Geometry,
        dtype: DType,
        starts: &[usize],
    ) -> Result<(String, LaunchConfig)> {
        let sfx = suffix(dtype)?;
        Ok(match packs(geo, dtype, starts) {
            Some(n) => (format!("{base}_vec_{sfx}"), vec_config(geo, n)),
            None => (format!("{base}_{sfx}"), config(geo)),
        })
    }

    /// `u` is `None` for a packed input (up = g + up_off).
    pub fn fwd(
        gs: &CudaStorage,
        gl: &Layout,
        u: Option<(&CudaStorage, &Layout)>,
        geo: Geometry,
    ) -> Result<CudaStorage> {
        geo.check_32bit()?;
        let dev = gs.device().clone();
        let starts = [gl.start_offset(), u.map_or(0, |(_, ul)| ul.start_offset())];
        let (name, cfg) = pick("swiglu_fwd", geo, gs.dtype(), &starts)?;
        let (rows, cols, in_stride) = (geo.rows as u32, geo.cols as u32, geo.in_stride as u64);
        Ok(with_dtype!(gs.dtype(), T => {
            let y = alloc_uninit::<T>(&dev, geo.outputs())?;
            if geo.outputs() > 0 {
                let g = view::<T>(gs, gl, "swiglu gate")?;
                let u = match u {
                    Some((us, ul)) => view::<T>(us, ul, "swiglu up")?,
                    None => g.slice(geo.up_off..),
                };
                launch!(dev, SWIGLU, &name, cfg; &g, &u, &y, &rows, &cols, &in_stride);
            }
            CudaStorage::wrap_cuda_slice(y, dev.clone())
        }))
    }

    /// Gradient buffer of `len` values (see `cpu_bwd`).
    #[allow(clippy::too_many_arguments)]
    pub fn bwd(
        gs: &CudaStorage,
        gl: &Layout,
        u: Option<(&CudaStorage, &Layout)>,
        ds: &CudaStorage,
        dl: &Layout,
        geo: Geometry,
        len: usize,
    ) -> Result<CudaStorage> {
        geo.check_32bit()?;
        let dev = gs.device().clone();
        let starts = [
            gl.start_offset(),
            u.map_or(0, |(_, ul)| ul.start_offset()),
            dl.start_offset(),
        ];
        let (name, cfg) = pick("swiglu_bwd", geo, gs.dtype(), &starts)?;
        let (rows, cols) = (geo.rows as u32, geo.cols as u32);
        let (in_stride, out_stride, du_off) = (
            geo.in_stride as u64,
            geo.out_stride as u64,
            geo.du_off as u64,
        );
        Ok(with_dtype!(gs.dtype(), T => {
            let out = alloc_uninit::<T>(&dev, len)?;
            if geo.outputs() > 0 {
                let g = view::<T>(gs, gl, "swiglu gate")?;
                let u = match u {
                    Some((us, ul)) => view::<T>(us, ul, "swiglu up")?,
                    None => g.slice(geo.up_off..),
                };
                let dy = view::<T>(ds, dl, "swiglu gradient")?;
                launch!(dev, SWIGLU, &name, cfg;
                    &g, &u, &dy, &out, &rows, &cols, &in_stride, &out_stride, &du_off);
            }
            CudaStorage::wrap_cuda_slice(out, dev.clone())
        }))
    }
}

/// Separate gate and up.
struct Swiglu;

/// Gradients of [`Swiglu`] from (gate, up, dy): [2, shape] = (d_gate, d_up).
struct SwigluBwd;

/// Packed [gate | up].
struct SwigluPacked;

/// Gradient of [`SwigluPacked`] from (gate_up, dy): [.., 2I] = [d_gate | d_up].
struct SwigluPackedBwd;

fn same_dtype(a: DType, b: DType, what: &str) -> Result<()> {
    if a != b {
        candle_core::bail!("swiglu: {what} has dtype {b:?}, expected {a:?}");
    }
    Ok(())
}

impl CustomOp2 for Swiglu {
    fn name(&self) -> &'static str {
        "medtune-swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_dtype(gs.dtype(), us.dtype(), "up")?;
        let g = cpu_f32(gs, gl, "swiglu gate")?;
        let u = cpu_f32(us, ul, "swiglu up")?;
        let y = cpu_fwd(&g, &u, Geometry::separate(gl.shape()), gs.dtype());
        Ok((cpu_store(y, gs.dtype())?, gl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        us: &candle_core::CudaStorage,
        ul: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        same_dtype(gs.dtype(), us.dtype(), "up")?;
        let y = gpu::fwd(gs, gl, Some((us, ul)), Geometry::separate(gl.shape()))?;
        Ok((y, gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // y has gate's shape and dtype: swiglu_bwd checks dy against them.
        let _ = y;
        let (dg, du) = swiglu_bwd(gate, up, dy)?;
        Ok((Some(dg), Some(du)))
    }
}

impl CustomOp3 for SwigluBwd {
    fn name(&self) -> &'static str {
        "medtune-swiglu-bwd"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_dtype(gs.dtype(), us.dtype(), "up")?;
        same_dtype(gs.dtype(), ds.dtype(), "the gradient")?;
        let g = cpu_f32(gs, gl, "swiglu gate")?;
        let u = cpu_f32(us, ul, "swiglu up")?;
        let dy = cpu_f32(ds, dl, "swiglu gradient")?;
        let geo = Geometry::separate(gl.shape());
        let out = cpu_bwd(&g, &u, &dy, geo, 2 * g.len(), gs.dtype());
        Ok((cpu_store(out, gs.dtype())?, both_shape(gl.shape())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        gs: &candle_core::CudaStorage,
        gl: &Layout,
        us: &candle_core::CudaStorage,
        ul: &Layout,
        ds: &candle_core::CudaStorage,
        dl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        same_dtype(gs.dtype(), us.dtype(), "up")?;
        same_dtype(gs.dtype(), ds.dtype(), "the gradient")?;
        let geo = Geometry::separate(gl.shape());
        let len = 2 * gl.shape().elem_count();
        let out = gpu::bwd(gs, gl, Some((us, ul)), ds, dl, geo, len)?;
        Ok((out, both_shape(gl.shape())))
    }
}

/// [2, shape…]: d_gate then d_up.
fn both_shape(s: &Shape) -> Shape {
    let mut dims = vec![2];
    dims.extend_from_slice(s.dims());
    Shape::from(dims)
}

/// [.., 2I] → [.., I].
fn half_shape(s: &Shape) -> Shape {
    let mut dims = s.dims().to_vec();
    if let Some(last) = dims.last_mut() {
        *last /= 2;
    }
    Shape::from(dims)
}

impl CustomOp1 for SwigluPacked {
    fn name(&self) -> &'static str {
        "medtune-swiglu-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let v = cpu_f32(s, l, "swiglu_packed input")?;
        let geo = Geometry::packed(l.shape());
        let y = cpu_fwd(&v, &v[geo.up_off.min(v.len())..], geo, s.dtype());
        Ok((cpu_store(y, s.dtype())?, half_shape(l.shape())))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        let y = gpu::fwd(s, l, None, Geometry::packed(l.shape()))?;
        Ok((y, half_shape(l.shape())))
    }

    fn bwd(&self, gate_up: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let dy = check_grad(dy, y.shape(), y.dtype())?;
        Ok(Some(gate_up.apply_op2_no_bwd(&dy, &SwigluPackedBwd)?))
    }
}

impl CustomOp2 for SwigluPackedBwd {
    fn name(&self) -> &'static str {
        "medtune-swiglu-packed-bwd"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_dtype(s.dtype(), ds.dtype(), "the gradient")?;
        let v = cpu_f32(s, l, "swiglu_packed input")?;
        let dy = cpu_f32(ds, dl, "swiglu_packed gradient")?;
        let geo = Geometry::packed(l.shape());
        let out = cpu_bwd(
            &v,
            &v[geo.up_off.min(v.len())..],
            &dy,
            geo,
            v.len(),
            s.dtype(),
        );
        Ok((cpu_store(out, s.dtype())?, l.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
        ds: &candle_core::CudaStorage,
        dl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        same_dtype(s.dtype(), ds.dtype(), "the gradient")?;
        let geo = Geometry::packed(l.shape());
        let out = gpu::bwd(s, l, None, ds, dl, geo, l.shape().elem_count())?;
        Ok((out, l.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::testing::{max_rel_diff, values};
    use candle_core::{Device, Var};

    /// Forward and gradient differences (y, d_gate, d_up) of `fused` against the composed
    /// `silu(gate) * up`, on gate/up of `dims` with a random upstream gradient.
    fn compare(
        dtype: DType,
        dims: &[usize],
        fused: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) -> Result<[f32; 3]> {
        let dev = Device::Cpu;
        let n: usize = dims.iter().product();
        let g0 = Tensor::from_vec(values(n, 11, 6.0), dims, &dev)?.to_dtype(dtype)?;
        let u0 = Tensor::from_vec(values(n, 12, 2.0), dims, &dev)?.to_dtype(dtype)?;
        let probe = Tensor::from_vec(values(n, 13, 1.0), dims, &dev)?;
        let run =
            |f: &dyn Fn(&Tensor, &Tensor) -> Result<Tensor>| -> Result<(Tensor, Tensor, Tensor)> {
                let (g, u) = (Var::from_tensor(&g0)?, Var::from_tensor(&u0)?);
                let y = f(g.as_tensor(), u.as_tensor())?;
                let grads = (y.to_dtype(DType::F32)? * &probe)?.sum_all()?.backward()?;
                Ok((
                    y,
                    grads.get(&g).unwrap().clone(),
                    grads.get(&u).unwrap().clone(),
                ))
            };
        let (y_ref, dg_ref, du_ref) = run(&|g, u| g.silu()? * u)?;
        let (y, dg, du) = run(&fused)?;
        assert_eq!(y.dtype(), dtype);
        assert_eq!(dg.dims(), dims);
        Ok([
            max_rel_diff(&y, &y_ref)?,
            max_rel_diff(&dg, &dg_ref)?,
            max_rel_diff(&du, &du_ref)?,
        ])
    }

    fn check(dtype: DType, tol: f32) -> Result<()> {
        for dims in [&[2, 3, 40][..], &[5, 37], &[7]] {
            let d = compare(dtype, dims, swiglu)?;
            assert!(d.iter().all(|&x| x <= tol), "{dtype:?} {dims:?}: {d:?}");
            eprintln!("swiglu {dtype:?} {dims:?}: y, d_gate, d_up max rel diff {d:?}");
        }
        Ok(())
    }

    /// The packed variant against the composed path on the narrowed halves of one tensor.
    fn check_packed(dtype: DType, tol: f32) -> Result<()> {
        let dev = Device::Cpu;
        let (rows, i) = (6, 45);
        let gu0 = Tensor::from_vec(values(rows * 2 * i, 21, 5.0), (2, 3, 2 * i), &dev)?
            .to_dtype(dtype)?;
        let probe = Tensor::from_vec(values(rows * i, 22, 1.0), (2, 3, i), &dev)?;
        let run = |packed: bool| -> Result<(Tensor, Tensor)> {
            let gu = Var::from_tensor(&gu0)?;
            let y = if packed {
                swiglu_packed(gu.as_tensor())?
            } else {
                (gu.narrow(D::Minus1, 0, i)?.silu()? * gu.narrow(D::Minus1, i, i)?)?
            };
            let grads = (y.to_dtype(DType::F32)? * &probe)?.sum_all()?.backward()?;
            Ok((y, grads.get(&gu).unwrap().clone()))
        };
        let (y_ref, g_ref) = run(false)?;
        let (y, g) = run(true)?;
        assert_eq!(y.dims(), [2, 3, i]);
        let (dy, dg) = (max_rel_diff(&y, &y_ref)?, max_rel_diff(&g, &g_ref)?);
        eprintln!("swiglu_packed {dtype:?}: y {dy}, d_gate_up {dg}");
        assert!(
            dy <= tol && dg <= tol,
            "{dtype:?}: forward {dy}, gradient {dg}"
        );
        Ok(())
    }

    #[test]
    fn matches_the_composed_swiglu_and_its_gradients() -> Result<()> {
        check(DType::F32, 1e-5)?;
        check(DType::BF16, 2e-2)
    }

    #[test]
    fn packed_matches_the_composed_halves() -> Result<()> {
        check_packed(DType::F32, 1e-5)?;
        check_packed(DType::BF16, 2e-2)
    }

    #[test]
    fn mismatched_inputs_are_refused() {
        let dev = Device::Cpu;
        let a = Tensor::ones((2, 4), DType::F32, &dev).unwrap();
        assert!(swiglu(&a, &Tensor::ones((2, 3), DType::F32, &dev).unwrap()).is_err());
        assert!(swiglu(&a, &a.to_dtype(DType::BF16).unwrap()).is_err());
        assert!(swiglu(
            &a.to_dtype(DType::U32).unwrap(),
            &a.to_dtype(DType::U32).unwrap()
        )
        .is_err());
        assert!(swiglu_packed(&Tensor::ones((2, 5), DType::F32, &dev).unwrap()).is_err());
    }
}
