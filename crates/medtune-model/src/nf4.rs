//! NF4 4-bit weights, bit-exact with bitsandbytes' `quantize_4bit(..., quant_type="nf4")`.
//!
//! Layout (bitsandbytes 0.50):
//! - the weight is flattened row-major and cut into blocks of [`NF4_BLOCKSIZE`] = 64 values;
//!   each block stores its absolute maximum `absmax` (f32);
//! - each value `x` is scaled by `1 / absmax` (an f32 reciprocal, then a product, exactly as the
//!   CUDA kernel does) and mapped to one of the 16 NF4 codes by a fixed decision tree whose
//!   thresholds are the midpoints between neighbouring code values (strict `>` comparisons, so a
//!   value exactly on a midpoint takes the lower code); a block of zeros gives `0 * inf = NaN`,
//!   which fails every comparison and takes code 0;
//! - two codes per byte, the first element in the HIGH nibble; an odd element count pads the last
//!   low nibble with the code of 0.0;
//! - double quantization: `offset = mean(absmax)` (f32 sum times the f32 reciprocal of the count,
//!   as torch's mean does), then `absmax - offset` is quantized to 8 bits blockwise
//!   ([`DQ_BLOCKSIZE`] = 256) on bitsandbytes' signed dynamic map ([`dynamic_map`]); the per-block
//!   maxima of that second level are `state2_absmax`.
//!
//! Dequantization is `code[nibble] * absmax[block]`, with
//! `absmax = state2_code[absmax_q] * state2_absmax[block2] + offset` under double quantization.
//! bitsandbytes dequantizes to the dtype it quantized (bf16 for a bf16 weight), so
//! `dequantize(DType::BF16)` reproduces its output bit for bit.
//!
//! [`Nf4Tensor::dequantize_composed`] uses only plain tensor ops (a `[256, 2]` byte table,
//! `index_select` with u32 indices, `broadcast_mul`), so it runs on CPU and CUDA alike;
//! [`Nf4Tensor::dequantize`] uses it on the CPU and a fused kernel with bit-identical output
//! ([`crate::fused::dequantize_nf4`]) on CUDA. Quantization itself runs on the host.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use medtune_model::nf4::{Nf4Options, Nf4Tensor};
//!
//! let w = Tensor::arange(0f32, 128., &Device::Cpu)?.affine(0.01, -0.6)?.reshape((2, 64))?;
//! let q = Nf4Tensor::quantize(&w, Nf4Options { double_quant: true, ..Default::default() })?;
//! let back = q.dequantize(DType::F32)?; // [2, 64]
//! assert_eq!(back.dims(), &[2, 64]);
//! assert!(q.bits_per_parameter() < 4.7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// Elements per NF4 block (one absmax each).
pub const NF4_BLOCKSIZE: usize = 64;

/// Elements per block of the second (8-bit) quantization of the absmax vector.
pub const DQ_BLOCKSIZE: usize = 256;

/// The 16 NF4 code values (quantiles of N(0, 1) scaled to [-1, 1], with an exact zero), as
/// bitsandbytes stores them in f32.
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.696_192_8,
    -0.525_073_05,
    -0.394_917_5,
    -0.284_441_38,
    -0.184_773_43,
    -0.091_050_036,
    0.0,
    0.079_580_3,
    0.160_930_2,
    0.246_112_3,
    0.337_915_24,
    0.440_709_83,
    0.562_617,
    0.722_956_84,
    1.0,
];

/// Maps a value already scaled to [-1, 1] to its 4-bit NF4 code.
///
/// The thresholds are the midpoints between neighbouring [`NF4_CODE`] values, rounded to f32 as
/// bitsandbytes' `dQuantizeNF4` writes them; comparisons are strict `>`, so a value exactly on a
/// threshold takes the lower code, and NaN takes code 0.
pub fn nf4_code_of(x: f32) -> u8 {
    if x > 0.039_790_15 {
        if x > 0.389_312_54 {
            if x > 0.642_786_9 {
                if x > 0.861_478_45 {
                    15
                } else {
                    14
                }
            } else if x > 0.501_663_45 {
                13
            } else {
                12
            }
        } else if x > 0.203_521_25 {
            if x > 0.292_013_76 {
                11
            } else {
                10
            }
        } else if x > 0.120_255_25 {
            9
        } else {
            8
        }
    } else if x > -0.339_679_42 {
        if x > -0.137_911_74 {
            if x > -0.045_525_018 {
                7
            } else {
                6
            }
        } else if x > -0.234_607_4 {
            5
        } else {
            4
        }
    } else if x > -0.610_632_9 {
        if x > -0.459_995_27 {
            3
        } else {
            2
        }
    } else if x > -0.848_096_4 {
        1
    } else {
        0
    }
}

/// Rounds an f32 to the nearest bf16 (ties to even) and returns it as f32.
pub fn round_to_bf16(x: f32) -> f32 {
    half::bf16::from_f32(x).to_f32()
}

/// torch's f32 `linspace(start, end, steps)`: `start + step * i` for the first half and
/// `end - step * (steps - 1 - i)` for the second, each a fused multiply-add, with the step an f32.
fn torch_linspace(start: f32, end: f32, steps: usize) -> Vec<f32> {
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - 1 - i) as f32, end)
            }
        })
        .collect()
}

/// bitsandbytes' `create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)`, computed in f32
/// the way torch does, sorted ascending: 256 entries in [-1, 1] (signed) or [0, 1] (unsigned).
///
/// For exponent `i` in 0..7 it takes the midpoints of `linspace(0.1, 1, k + 1)` with `k = 2^i`
/// (signed, both signs) or `k = 2^(i+1)` (unsigned), scales them by `10^(i-6)`, then adds 0 and 1.
pub fn dynamic_map(signed: bool) -> [f32; 256] {
    let mut data: Vec<f32> = Vec::with_capacity(256);
    for i in 0..7i32 {
        let items = if signed {
            1usize << i
        } else {
            1usize << (i + 1)
        };
        let bounds = torch_linspace(0.1, 1.0, items + 1);
        let scale = 10f64.powi(i - 6) as f32;
        for pair in bounds.windows(2) {
            let mean = (pair[0] + pair[1]) / 2.0;
            data.push(scale * mean);
            if signed {
                data.push(-scale * mean);
            }
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    let mut out = [0f32; 256];
    out.copy_from_slice(&data);
    out
}

/// Index of `x` (already scaled to the map's range) in a sorted 256-entry map, as bitsandbytes'
/// `dQuantize` (non-stochastic) finds it: a 7-step binary search from index 127, then the nearer
/// of the two neighbours by midpoint; at an exact midpoint it keeps the searched pivot.
pub fn quantize_to_map(code: &[f32; 256], x: f32) -> u8 {
    let mut pivot = 127usize;
    let mut upper_pivot = 255usize;
    let mut lower_pivot = 0usize;
    let mut lower = -1.0f32;
    let mut upper = 1.0f32;
    let mut val = code[pivot];
    let mut step = 64usize;
    while step > 0 {
        if x > val {
            lower_pivot = pivot;
            lower = val;
            pivot += step;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= step;
        }
        val = code[pivot];
        step >>= 1;
    }
    if upper_pivot == 255 {
        upper = code[upper_pivot];
    }
    if lower_pivot == 0 {
        lower = code[lower_pivot];
    }
    let chosen = if x > val {
        if x > (upper + val) * 0.5 {
            upper_pivot
        } else {
            pivot
        }
    } else if x < (lower + val) * 0.5 {
        lower_pivot
    } else {
        pivot
    };
    chosen as u8
}

/// Block absolute maxima of `values` (the last block may be short).
fn block_absmax(values: &[f32], blocksize: usize) -> Vec<f32> {
    values
        .chunks(blocksize)
        .map(|b| b.iter().fold(f32::MIN, |m, v| m.max(v.abs())))
        .collect()
}

/// Blockwise 8-bit quantization on a 256-entry map, as bitsandbytes' `quantize_blockwise`:
/// per block, `absmax = max |x|`, then each `x * (1 / absmax)` goes to [`quantize_to_map`].
/// Returns `(codes [n], absmax [ceil(n / blocksize)])`.
pub fn quantize_blockwise_8bit(
    code: &[f32; 256],
    values: &[f32],
    blocksize: usize,
) -> (Vec<u8>, Vec<f32>) {
    let absmax = block_absmax(values, blocksize);
    let codes = values
        .chunks(blocksize)
        .zip(&absmax)
        .flat_map(|(block, &m)| {
            let inv = 1.0 / m;
            block.iter().map(move |&v| quantize_to_map(code, v * inv))
        })
        .collect();
    (codes, absmax)
}

/// torch's f32 mean: the sum rounded to f32, times the f32 reciprocal of the count.
fn torch_mean(values: &[f32]) -> f32 {
    let sum = values.iter().map(|&v| f64::from(v)).sum::<f64>() as f32;
    sum * (1.0 / values.len() as f32)
}

/// How to quantize a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nf4Options {
    /// Quantize the absmax vector to 8 bits (QLoRA's double quantization).
    pub double_quant: bool,
    /// Round the weight to bf16 first (what bitsandbytes does when the model is loaded in bf16,
    /// and what the conformance fixtures use). Default: true.
    pub round_to_bf16: bool,
}

impl Default for Nf4Options {
    fn default() -> Self {
        Nf4Options {
            double_quant: false,
            round_to_bf16: true,
        }
    }
}

/// The per-block scales of an [`Nf4Tensor`].
#[derive(Debug, Clone)]
pub enum Nf4Scales {
    /// One f32 absmax per block: `absmax` [n_blocks].
    Absmax(Tensor),
    /// Double quantization: `absmax = state2_code[absmax_q] * state2_absmax[block / 256] + offset`.
    Double {
        /// u8 [n_blocks].
        absmax_q: Tensor,
        /// The mean of the absmax vector that was subtracted.
        offset: f32,
        /// f32 [ceil(n_blocks / 256)].
        state2_absmax: Tensor,
        /// f32 [256]: bitsandbytes' signed dynamic map.
        state2_code: Tensor,
    },
}

/// A frozen weight stored as packed NF4 codes plus its block scales, on one device.
#[derive(Debug, Clone)]
pub struct Nf4Tensor {
    shape: Vec<usize>,
    /// u8 [ceil(n / 2)]: two codes per byte, first element in the high nibble.
    packed: Tensor,
    scales: Nf4Scales,
    /// f32 [16]: the code values.
    code: Tensor,
    /// f32 [256, 2]: for each byte, the values of its high and low nibble.
    byte_table: Tensor,
}

/// `[code[b >> 4], code[b & 15]]` for every byte b, as an f32 [256, 2] tensor.
fn byte_table(code: &[f32], device: &Device) -> Result<Tensor> {
    let mut table = Vec::with_capacity(512);
    for b in 0..256usize {
        table.push(code[b >> 4]);
        table.push(code[b & 15]);
    }
    Ok(Tensor::from_vec(table, (256, 2), device)?)
}

impl Nf4Tensor {
    /// Quantizes a float tensor of any shape (f32, bf16, f16 or f64), keeping the result on the
    /// tensor's device.
    pub fn quantize(weight: &Tensor, options: Nf4Options) -> Result<Self> {
        let values = weight
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        Self::quantize_values(&values, weight.dims(), options, weight.device())
    }

    /// Quantizes `values` (row-major, `shape.iter().product()` of them) onto `device`.
    pub fn quantize_values(
        values: &[f32],
        shape: &[usize],
        options: Nf4Options,
        device: &Device,
    ) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != values.len() || n == 0 {
            return Err(Error::input(
                "weight",
                format!(
                    "shape {shape:?} holds {n} elements but {} values were given (must be > 0)",
                    values.len()
                ),
            ));
        }
        let rounded: Vec<f32> = if options.round_to_bf16 {
            values.iter().map(|&v| round_to_bf16(v)).collect()
        } else {
            values.to_vec()
        };
        let absmax = block_absmax(&rounded, NF4_BLOCKSIZE);
        let mut codes = Vec::with_capacity(n + 1);
        for (block, &m) in rounded.chunks(NF4_BLOCKSIZE).zip(&absmax) {
            let inv = 1.0 / m;
            codes.extend(block.iter().map(|&v| nf4_code_of(v * inv)));
        }
        if n % 2 == 1 {
            codes.push(nf4_code_of(0.0));
        }
        let packed: Vec<u8> = codes.chunks(2).map(|p| (p[0] << 4) | p[1]).collect();
        let n_bytes = packed.len();
        let scales = if options.double_quant {
            let offset = torch_mean(&absmax);
            let centred: Vec<f32> = absmax.iter().map(|&a| a - offset).collect();
            let map = dynamic_map(true);
            let (q, absmax2) = quantize_blockwise_8bit(&map, &centred, DQ_BLOCKSIZE);
            let n2 = absmax2.len();
            Nf4Scales::Double {
                absmax_q: Tensor::from_vec(q, absmax.len(), device)?,
                offset,
                state2_absmax: Tensor::from_vec(absmax2, n2, device)?,
                state2_code: Tensor::from_vec(map.to_vec(), 256, device)?,
            }
        } else {
            let nb = absmax.len();
            Nf4Scales::Absmax(Tensor::from_vec(absmax, nb, device)?)
        };
        Ok(Nf4Tensor {
            shape: shape.to_vec(),
            packed: Tensor::from_vec(packed, n_bytes, device)?,
            scales,
            code: Tensor::from_vec(NF4_CODE.to_vec(), 16, device)?,
            byte_table: byte_table(&NF4_CODE, device)?,
        })
    }

    /// Rebuilds a tensor from the fixture's tensor names: `packed.<tag>` (u8, [n/2] or [n/2, 1]),
    /// `code.<tag>` (f32 [16]) and either `absmax.<tag>` or `absmax_q.<tag>`, `offset.<tag>`,
    /// `state2_absmax.<tag>`, `state2_code.<tag>`. `shape` is the weight's shape.
    pub fn from_parts(
        tensors: &HashMap<String, Tensor>,
        tag: &str,
        shape: &[usize],
    ) -> Result<Self> {
        let get = |prefix: &str| -> Result<&Tensor> {
            let name = format!("{prefix}.{tag}");
            tensors
                .get(&name)
                .ok_or_else(|| Error::input(name.clone(), "missing tensor"))
        };
        let n: usize = shape.iter().product();
        let n_blocks = n.div_ceil(NF4_BLOCKSIZE);
        let packed = get("packed")?;
        check_part(packed, &format!("packed.{tag}"), DType::U8, n.div_ceil(2))?;
        let code = get("code")?;
        check_part(code, &format!("code.{tag}"), DType::F32, 16)?;
        let device = packed.device().clone();
        let scales = if tensors.contains_key(&format!("absmax_q.{tag}")) {
            let absmax_q = get("absmax_q")?;
            check_part(absmax_q, &format!("absmax_q.{tag}"), DType::U8, n_blocks)?;
            let offset = get("offset")?;
            check_part(offset, &format!("offset.{tag}"), DType::F32, 1)?;
            let state2_absmax = get("state2_absmax")?;
            let n2 = n_blocks.div_ceil(DQ_BLOCKSIZE);
            check_part(
                state2_absmax,
                &format!("state2_absmax.{tag}"),
                DType::F32,
                n2,
            )?;
            let state2_code = get("state2_code")?;
            check_part(state2_code, &format!("state2_code.{tag}"), DType::F32, 256)?;
            Nf4Scales::Double {
                absmax_q: absmax_q.flatten_all()?.to_device(&device)?,
                offset: offset.flatten_all()?.to_vec1::<f32>()?[0],
                state2_absmax: state2_absmax.flatten_all()?.to_device(&device)?,
                state2_code: state2_code.flatten_all()?.to_device(&device)?,
            }
        } else {
            let absmax = get("absmax")?;
            check_part(absmax, &format!("absmax.{tag}"), DType::F32, n_blocks)?;
            Nf4Scales::Absmax(absmax.flatten_all()?.to_device(&device)?)
        };
        let code_values = code.flatten_all()?.to_vec1::<f32>()?;
        Ok(Nf4Tensor {
            shape: shape.to_vec(),
            packed: packed.flatten_all()?,
            scales,
            code: code.flatten_all()?.to_device(&device)?,
            byte_table: byte_table(&code_values, &device)?,
        })
    }

    /// The stored state under the fixture's names (see [`Nf4Tensor::from_parts`]); `packed` has
    /// bitsandbytes' shape [n/2, 1] and `offset` is [1].
    pub fn to_safetensors_map(&self, tag: &str) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        let n_bytes = self.packed.elem_count();
        out.insert(format!("packed.{tag}"), self.packed.reshape((n_bytes, 1))?);
        out.insert(format!("code.{tag}"), self.code.clone());
        match &self.scales {
            Nf4Scales::Absmax(absmax) => {
                out.insert(format!("absmax.{tag}"), absmax.clone());
            }
            Nf4Scales::Double {
                absmax_q,
                offset,
                state2_absmax,
                state2_code,
            } => {
                out.insert(format!("absmax_q.{tag}"), absmax_q.clone());
                let offset = Tensor::from_vec(vec![*offset], 1, self.packed.device())?;
                out.insert(format!("offset.{tag}"), offset);
                out.insert(format!("state2_absmax.{tag}"), state2_absmax.clone());
                out.insert(format!("state2_code.{tag}"), state2_code.clone());
            }
        }
        Ok(out)
    }

    /// The weight's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of weights.
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// The device the packed codes live on.
    pub fn device(&self) -> &Device {
        self.packed.device()
    }

    /// The packed codes, u8 [ceil(n / 2)].
    pub fn packed(&self) -> &Tensor {
        &self.packed
    }

    /// The code values, f32 [16] (the byte table is built from them).
    pub fn code(&self) -> &Tensor {
        &self.code
    }

    /// The block scales as stored.
    pub fn scales(&self) -> &Nf4Scales {
        &self.scales
    }

    /// Stored bits per weight: packed codes plus block scales (and, with double quantization, the
    /// 8-bit codes, second-level absmax and offset). The shared code tables (16 NF4 values and the
    /// 256-entry dynamic map) are constants of the format and not counted.
    pub fn bits_per_parameter(&self) -> f64 {
        let mut bytes = self.packed.elem_count();
        bytes += match &self.scales {
            Nf4Scales::Absmax(absmax) => absmax.elem_count() * 4,
            Nf4Scales::Double {
                absmax_q,
                state2_absmax,
                ..
            } => absmax_q.elem_count() + state2_absmax.elem_count() * 4 + 4,
        };
        (bytes * 8) as f64 / self.elem_count() as f64
    }

    /// The per-block absmax (dequantized under double quantization): f32 [n_blocks].
    pub fn absmax(&self) -> Result<Tensor> {
        match &self.scales {
            Nf4Scales::Absmax(absmax) => Ok(absmax.clone()),
            Nf4Scales::Double {
                absmax_q,
                offset,
                state2_absmax,
                state2_code,
            } => {
                let nb = absmax_q.elem_count();
                let n2 = state2_absmax.elem_count();
                // [nb] -> pad to [n2 * 256] -> [n2, 256]
                let values = state2_code
                    .index_select(&absmax_q.to_dtype(DType::U32)?, 0)?
                    .pad_with_zeros(0, 0, n2 * DQ_BLOCKSIZE - nb)?
                    .reshape((n2, DQ_BLOCKSIZE))?;
                let scaled = values.broadcast_mul(&state2_absmax.reshape((n2, 1))?)?;
                Ok(scaled
                    .flatten_all()?
                    .narrow(0, 0, nb)?
                    .affine(1.0, f64::from(*offset))?)
            }
        }
    }

    /// The dequantized weight, of the stored shape, in `dtype`. Computed in f32
    /// (`code * absmax`) and then cast, as bitsandbytes does.
    ///
    /// On CUDA (f32 or bf16) this is one fused kernel ([`crate::fused::dequantize_nf4`], unless
    /// `MEDTUNE_UNFUSED` names `nf4`), bit-identical to [`Nf4Tensor::dequantize_composed`].
    pub fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        if matches!(dtype, DType::F32 | DType::BF16) && crate::fused::enabled("nf4", &self.packed) {
            return Ok(crate::fused::dequantize_nf4(self, dtype)?);
        }
        self.dequantize_composed(dtype)
    }

    /// [`Nf4Tensor::dequantize`] from basic tensor ops only (the reference for the fused kernel).
    pub fn dequantize_composed(&self, dtype: DType) -> Result<Tensor> {
        let n = self.elem_count();
        let n_bytes = self.packed.elem_count();
        let absmax = self.absmax()?;
        let nb = absmax.elem_count();
        // [n_bytes] -> [n_bytes, 2] -> [2 * n_bytes] -> pad to [nb * 64] -> [nb, 64]
        let values = self
            .byte_table
            .index_select(&self.packed.to_dtype(DType::U32)?, 0)?
            .reshape(2 * n_bytes)?
            .pad_with_zeros(0, 0, nb * NF4_BLOCKSIZE - 2 * n_bytes)?
            .reshape((nb, NF4_BLOCKSIZE))?;
        let weights = values.broadcast_mul(&absmax.reshape((nb, 1))?)?;
        Ok(weights
            .flatten_all()?
            .narrow(0, 0, n)?
            .reshape(self.shape.as_slice())?
            .to_dtype(dtype)?)
    }

    /// Frozen linear layer `x · Wᵀ` for a weight of shape [out, in]: `x` is [..., in] and the
    /// result [..., out], in `x`'s dtype. W is dequantized just before the matmul and is a
    /// constant, so gradients flow to `x` only: by [`crate::fused::frozen_linear`], whose backward
    /// computes the input gradient alone (unless `MEDTUNE_UNFUSED` names `frozen_linear`; then a
    /// plain matmul of the rows of `x` by the detached Wᵀ).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [out_features, in_features] = self.shape[..] else {
            return Err(Error::input(
                "weight",
                format!("NF4 linear needs a 2-D weight, got shape {:?}", self.shape),
            ));
        };
        if x.dims().last() != Some(&in_features) {
            return Err(Error::input(
                "x",
                format!(
                    "last dimension of {:?} must equal the weight's in_features {in_features}",
                    x.dims()
                ),
            ));
        }
        let w = self.dequantize(x.dtype())?.detach(); // [out, in]
        if !crate::fused::disabled("frozen_linear") {
            return Ok(crate::fused::frozen_linear(x, &w)?); // [..., out]
        }
        let lead = &x.dims()[..x.rank() - 1];
        let rows: usize = lead.iter().product();
        // [rows, in] · [in, out] → [rows, out] → [..., out]
        let y = x.reshape((rows, in_features))?.matmul(&w.t()?)?;
        Ok(y.reshape([lead, &[out_features]].concat())?)
    }
}

/// Checks a stored part's dtype and element count.
fn check_part(t: &Tensor, name: &str, dtype: DType, count: usize) -> Result<()> {
    if t.dtype() != dtype || t.elem_count() != count {
        return Err(Error::input(
            name,
            format!(
                "expected {dtype:?} with {count} elements, found {:?} with shape {:?}",
                t.dtype(),
                t.dims()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_tree_picks_the_nearest_code_away_from_midpoints() {
        for (i, &c) in NF4_CODE.iter().enumerate() {
            assert_eq!(nf4_code_of(c) as usize, i, "code value {c}");
        }
        // A value on a threshold takes the lower code (strict comparison).
        assert_eq!(nf4_code_of(0.861_478_45), 14);
        assert_eq!(
            nf4_code_of(f32::from_bits(0.861_478_45f32.to_bits() + 1)),
            15
        );
        assert_eq!(nf4_code_of(-0.848_096_4), 0);
        assert_eq!(nf4_code_of(f32::NAN), 0);
        // Every value goes to the nearest code except within an ulp of a midpoint.
        for k in 0..=2000 {
            let x = -1.0 + k as f32 * 0.001;
            let nearest = (0..16)
                .min_by(|&a, &b| (NF4_CODE[a] - x).abs().total_cmp(&(NF4_CODE[b] - x).abs()))
                .unwrap_or(0);
            let got = nf4_code_of(x) as usize;
            if got != nearest {
                let mid = (NF4_CODE[got] + NF4_CODE[nearest]) / 2.0;
                assert!((x - mid).abs() < 1e-6, "x={x} got {got} nearest {nearest}");
            }
        }
    }

    #[test]
    fn dynamic_maps_are_sorted_and_span_the_range() {
        let s = dynamic_map(true);
        let u = dynamic_map(false);
        assert!(s.windows(2).all(|w| w[0] <= w[1]));
        assert!(u.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s[255], 1.0);
        assert_eq!(u[255], 1.0);
        assert_eq!(u[0], 0.0);
        assert!((s[0] + 0.992_968_75).abs() < 1e-7);
        assert_eq!(s.iter().filter(|&&v| v == 0.0).count(), 1);
        assert!(u[1] > 0.0 && u[1] < 1e-6);
    }

    #[test]
    fn quantize_to_map_finds_exact_entries_and_nearest_neighbours() {
        let map = dynamic_map(true);
        for (i, &v) in map.iter().enumerate() {
            assert_eq!(quantize_to_map(&map, v) as usize, i);
        }
        // Halfway between two entries bitsandbytes keeps the searched pivot; just above the
        // midpoint the upper entry wins.
        let lo = map[200];
        let hi = map[201];
        let above = (lo + hi) * 0.5 + (hi - lo) * 0.01;
        assert_eq!(quantize_to_map(&map, above), 201);
        let below = (lo + hi) * 0.5 - (hi - lo) * 0.01;
        assert_eq!(quantize_to_map(&map, below), 200);
    }

    #[test]
    fn odd_and_partial_blocks_round_trip_within_the_code_spacing() -> Result<()> {
        let values: Vec<f32> = (0..131)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect();
        for dq in [false, true] {
            let q = Nf4Tensor::quantize_values(
                &values,
                &[131],
                Nf4Options {
                    double_quant: dq,
                    ..Default::default()
                },
                &Device::Cpu,
            )?;
            assert_eq!(q.packed().elem_count(), 66);
            let back = q.dequantize(DType::F32)?.to_vec1::<f32>()?;
            assert_eq!(back.len(), 131);
            for (a, b) in values.iter().zip(&back) {
                // The widest gap between NF4 codes is 0.30 of the absmax (1.25 here).
                assert!((a - b).abs() <= 0.16 * 1.25 + 1e-3, "{a} vs {b}");
            }
        }
        Ok(())
    }

    #[test]
    fn zero_block_dequantizes_to_zero() -> Result<()> {
        let q =
            Nf4Tensor::quantize_values(&[0.0; 64], &[1, 64], Nf4Options::default(), &Device::Cpu)?;
        let back = q.dequantize(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        assert!(back.iter().all(|&v| v == 0.0));
        Ok(())
    }

    #[test]
    fn bad_shapes_are_errors() {
        let r = Nf4Tensor::quantize_values(&[1.0; 3], &[2, 2], Nf4Options::default(), &Device::Cpu);
        assert!(r.is_err());
        let q = Nf4Tensor::quantize_values(&[1.0; 4], &[4], Nf4Options::default(), &Device::Cpu);
        let err = q.and_then(|q| q.forward(&Tensor::zeros((1, 4), DType::F32, &Device::Cpu)?));
        assert!(err.is_err());
    }

    #[test]
    fn bits_per_parameter_matches_the_layout() -> Result<()> {
        let values = vec![0.5f32; 64 * 512];
        let plain =
            Nf4Tensor::quantize_values(&values, &[64, 512], Nf4Options::default(), &Device::Cpu)?;
        assert!((plain.bits_per_parameter() - 4.5).abs() < 1e-9);
        let dq = Nf4Tensor::quantize_values(
            &values,
            &[64, 512],
            Nf4Options {
                double_quant: true,
                ..Default::default()
            },
            &Device::Cpu,
        )?;
        // 16384 packed bytes, 512 absmax codes, 2 second-level absmax, 1 offset.
        let expected = (16384.0 + 512.0 + 2.0 * 4.0 + 4.0) * 8.0 / (64.0 * 512.0);
        assert!(
            (dq.bits_per_parameter() - expected).abs() < 1e-9,
            "{}",
            dq.bits_per_parameter()
        );
        Ok(())
    }
}
