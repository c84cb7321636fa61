//! NF4 dequantization in one kernel: packed codes and block scales straight to the weight in
//! f32 or bf16, bit-identical to the composed [`Nf4Tensor::dequantize_composed`] (byte-table
//! `index_select`, `broadcast_mul` by the absmax, which under double quantization is itself an
//! `index_select`, a `broadcast_mul` and an `affine`, then a cast).
//!
//! Element `i` is `code[nibble(i)] · absmax[i / 64]` (f32 product, then one rounding to the
//! dtype), the first element of each byte in its high nibble. Under double quantization
//! `absmax[j] = state2_code[absmax_q[j]] · state2_absmax[j / 256] + offset`, a product and a sum
//! each rounded to f32 (no fused multiply-add), as the composed ops compute it.
//!
//! The base weight is frozen, so the op has no backward: the result is a constant.

use crate::nf4::{Nf4Scales, Nf4Tensor, DQ_BLOCKSIZE, NF4_BLOCKSIZE};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// The weight of `q` dequantized to `dtype` (f32 or bf16), of `q`'s shape, on `q`'s device, by
/// one fused pass (no gradient: the result is a constant).
pub fn dequantize_nf4(q: &Nf4Tensor, dtype: DType) -> Result<Tensor> {
    if !matches!(dtype, DType::F32 | DType::BF16) {
        candle_core::bail!("dequantize_nf4: output dtype {dtype:?}, expected f32 or bf16");
    }
    let n = q.elem_count();
    let nb = n.div_ceil(NF4_BLOCKSIZE);
    let dev = q.device();
    if n == 0 {
        return Tensor::zeros(q.shape(), dtype, dev);
    }
    let part = |t: &Tensor, what: &str, dt: DType, count: usize| -> Result<Tensor> {
        if t.dtype() != dt || t.elem_count() != count {
            candle_core::bail!(
                "dequantize_nf4: {what} is {:?} {:?}, expected {dt:?} with {count} elements",
                t.dtype(),
                t.dims()
            );
        }
        if !t.device().same_device(dev) {
            candle_core::bail!("dequantize_nf4: {what} is not on the packed codes' device");
        }
        t.flatten_all()?.contiguous()
    };
    let packed = part(q.packed(), "packed", DType::U8, n.div_ceil(2))?;
    let code = part(q.code(), "code", DType::F32, 16)?;
    let scales = match q.scales() {
        Nf4Scales::Absmax(absmax) => Scales::Plain(part(absmax, "absmax", DType::F32, nb)?),
        Nf4Scales::Double {
            absmax_q,
            offset,
            state2_absmax,
            state2_code,
        } => Scales::Double {
            absmax_q: part(absmax_q, "absmax_q", DType::U8, nb)?,
            offset: *offset,
            state2_absmax: part(
                state2_absmax,
                "state2_absmax",
                DType::F32,
                nb.div_ceil(DQ_BLOCKSIZE),
            )?,
            state2_code: part(state2_code, "state2_code", DType::F32, 256)?,
        },
    };
    let op = Nf4Dequant {
        n,
        shape: Shape::from(q.shape()),
        dtype,
        code,
        scales,
    };
    packed.apply_op1_no_bwd(&op)
}

/// The block scales, as contiguous 1-D tensors on the packed codes' device.
enum Scales {
    Plain(Tensor),
    Double {
        absmax_q: Tensor,
        offset: f32,
        state2_absmax: Tensor,
        state2_code: Tensor,
    },
}

struct Nf4Dequant {
    /// Number of weights.
    n: usize,
    /// The weight's shape (n elements).
    shape: Shape,
    /// Output dtype: f32 or bf16.
    dtype: DType,
    /// f32 [16].
    code: Tensor,
    scales: Scales,
}

fn host<T: candle_core::WithDType>(t: &Tensor) -> Result<Vec<T>> {
    t.to_vec1::<T>()
}

impl CustomOp1 for Nf4Dequant {
    fn name(&self) -> &'static str {
        "medtune-nf4-dequant"
    }

    fn cpu_fwd(&self, ps: &CpuStorage, pl: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((a, b)) = pl.contiguous_offsets() else {
            candle_core::bail!("dequantize_nf4: packed codes must be contiguous")
        };
        let CpuStorage::U8(packed) = ps else {
            candle_core::bail!("dequantize_nf4: packed codes must be u8")
        };
        let packed = &packed[a..b];
        let code = host::<f32>(&self.code)?;
        // The same algorithm as kernels/nf4.cu, one packed byte (two elements) at a time.
        let absmax_of: Box<dyn Fn(usize) -> f32> = match &self.scales {
            Scales::Plain(absmax) => {
                let absmax = host::<f32>(absmax)?;
                Box::new(move |j| absmax[j])
            }
            Scales::Double {
                absmax_q,
                offset,
                state2_absmax,
                state2_code,
            } => {
                let (q, s2, c2, off) = (
                    host::<u8>(absmax_q)?,
                    host::<f32>(state2_absmax)?,
                    host::<f32>(state2_code)?,
                    *offset,
                );
                Box::new(move |j| c2[q[j] as usize] * s2[j / DQ_BLOCKSIZE] + off)
            }
        };
        let mut out = Vec::with_capacity(self.n + 1);
        for (i, &byte) in packed.iter().enumerate() {
            let a = absmax_of(i / (NF4_BLOCKSIZE / 2));
            out.push(code[(byte >> 4) as usize] * a);
            out.push(code[(byte & 15) as usize] * a);
        }
        out.truncate(self.n); // odd n: the low nibble of the last byte is padding
        Ok((super::cpu_store(out, self.dtype)?, self.shape.clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        ps: &candle_core::CudaStorage,
        pl: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use super::cuda::{launch, rows, suffix, view, with_dtype, NF4};
        use candle_core::backend::BackendStorage;
        use candle_core::Storage;

        /// The CUDA storage of a part held by the op.
        fn cuda_of<'a>(
            guard: &'a candle_core::StorageRef<'_>,
            what: &str,
        ) -> Result<&'a candle_core::CudaStorage> {
            match &**guard {
                Storage::Cuda(s) => Ok(s),
                _ => candle_core::bail!("dequantize_nf4: {what} is not on the CUDA device"),
            }
        }

        let dev = ps.device().clone();
        let n = self.n as u64;
        // One thread per 16 outputs (8 packed bytes), grid-stride beyond 65,536 blocks of 256.
        let blocks = self.n.div_ceil(16).div_ceil(256).clamp(1, 65_536);
        let cfg = rows(blocks, 256);
        let packed = view::<u8>(ps, pl, "packed codes")?;
        let (cg, cl) = self.code.storage_and_layout();
        let code = view::<f32>(cuda_of(&cg, "code")?, cl, "code")?;
        let sfx = suffix(self.dtype)?;
        let out = with_dtype!(self.dtype, T => {
            // Every element is written by the kernel: no zero fill.
            let out = super::cuda::alloc_uninit::<T>(&dev, self.n)?;
            match &self.scales {
                Scales::Plain(absmax) => {
                    let (ag, al) = absmax.storage_and_layout();
                    let absmax = view::<f32>(cuda_of(&ag, "absmax")?, al, "absmax")?;
                    let name = format!("nf4_dequant_{sfx}");
                    launch!(dev, NF4, &name, cfg; &packed, &code, &absmax, &out, &n);
                }
                Scales::Double {
                    absmax_q,
                    offset,
                    state2_absmax,
                    state2_code,
                } => {
                    let (qg, ql) = absmax_q.storage_and_layout();
                    let q = view::<u8>(cuda_of(&qg, "absmax_q")?, ql, "absmax_q")?;
                    let (sg, sl) = state2_absmax.storage_and_layout();
                    let s2 = view::<f32>(cuda_of(&sg, "state2_absmax")?, sl, "state2_absmax")?;
                    let (c2g, c2l) = state2_code.storage_and_layout();
                    let c2 = view::<f32>(cuda_of(&c2g, "state2_code")?, c2l, "state2_code")?;
                    let name = format!("nf4_dequant_dq_{sfx}");
                    launch!(dev, NF4, &name, cfg; &packed, &code, &q, &s2, &c2, offset, &out, &n);
                }
            }
            candle_core::CudaStorage::wrap_cuda_slice(out, dev.clone())
        });
        Ok((out, self.shape.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::testing::values;
    use crate::nf4::Nf4Options;
    use candle_core::Device;

    fn bits(t: &Tensor) -> Result<Vec<u32>> {
        Ok(match t.dtype() {
            DType::BF16 => t
                .flatten_all()?
                .to_vec1::<half::bf16>()?
                .iter()
                .map(|v| u32::from(v.to_bits()))
                .collect(),
            _ => t
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .map(|v| v.to_bits())
                .collect(),
        })
    }

    #[test]
    fn bit_identical_to_the_composed_dequantization() -> Result<()> {
        let dev = Device::Cpu;
        // Odd sizes and partial last blocks (of 64 and, with enough blocks, of 256 absmax);
        // 64 · 300 + 17 elements give 301 blocks, i.e. two second-level blocks.
        let shapes: [&[usize]; 6] = [&[1], &[3, 5], &[131], &[2, 64], &[7, 33], &[300 * 64 + 17]];
        for (k, shape) in shapes.iter().enumerate() {
            let n: usize = shape.iter().product();
            let mut v = values(n, 10 + k as u64, 2.0);
            // A block of zeros (absmax 0, where negative codes give -0.0).
            if n >= 128 {
                v[64..128].iter_mut().for_each(|x| *x = 0.0);
            }
            for double_quant in [false, true] {
                for round_to_bf16 in [false, true] {
                    let options = Nf4Options {
                        double_quant,
                        round_to_bf16,
                    };
                    let q = Nf4Tensor::quantize_values(&v, shape, options, &dev)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                    for dtype in [DType::F32, DType::BF16] {
                        let fused = dequantize_nf4(&q, dtype)?;
                        let composed = q
                            .dequantize_composed(dtype)
                            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                        assert_eq!(fused.dims(), composed.dims());
                        assert_eq!(fused.dtype(), dtype);
                        assert_eq!(
                            bits(&fused)?,
                            bits(&composed)?,
                            "{shape:?} {options:?} {dtype:?}"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn other_dtypes_are_errors() -> Result<()> {
        let dev = Device::Cpu;
        let q = Nf4Tensor::quantize_values(&values(10, 1, 1.0), &[10], Nf4Options::default(), &dev)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        assert!(dequantize_nf4(&q, DType::F16).is_err());
        assert!(dequantize_nf4(&q, DType::F32).is_ok());
        Ok(())
    }
}
