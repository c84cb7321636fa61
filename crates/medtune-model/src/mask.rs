//! Attention masks: causal + padding (+ Mistral sliding window), or an explicit mask for packed
//! sequences, turned into an additive bias [B, 1, T, S].
//!
//! Query i of a forward pass sits at cache index `offset + i`; key j at cache index j. A key is
//! visible when `j <= offset + i`, `attention_mask[b, j] == 1`, and (with a window W)
//! `offset + i - j < W`. Invisible keys get a large negative bias; a row with no visible key
//! (left padding) then becomes a harmless uniform average instead of NaN.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// Bias added to the scores of invisible keys.
pub const MASKED: f32 = -1e9;

/// Reads a [B, S] or [B, T, S] 0/1 tensor of any numeric dtype as rows of booleans.
fn to_bool_rows(t: &Tensor, field: &str) -> Result<Vec<bool>> {
    let values = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| Error::input(field, e.to_string()))?;
    values
        .iter()
        .map(|&v| {
            if v == 0.0 {
                Ok(false)
            } else if v == 1.0 {
                Ok(true)
            } else {
                Err(Error::input(field, format!("expected 0 or 1, found {v}")))
            }
        })
        .collect()
}

/// Additive bias [B, 1, T, S] (f32) for `t` queries starting at cache index `offset`.
///
/// `attention_mask` [B, S] (0/1, any dtype) covers the cached and the new keys; `None` means all
/// visible. `sliding_window` restricts each query to the last W keys.
pub fn causal_bias(
    batch: usize,
    t: usize,
    offset: usize,
    attention_mask: Option<&Tensor>,
    sliding_window: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let s = offset + t;
    let pad = match attention_mask {
        Some(m) => {
            let dims = m.dims();
            if dims != [batch, s] {
                return Err(Error::input(
                    "attention_mask",
                    format!("shape {dims:?}, expected [{batch}, {s}]"),
                ));
            }
            Some(to_bool_rows(m, "attention_mask")?)
        }
        None => None,
    };
    let mut bias = vec![0f32; batch * t * s];
    for b in 0..batch {
        for i in 0..t {
            let q = offset + i;
            let row = &mut bias[(b * t + i) * s..(b * t + i + 1) * s];
            for (j, v) in row.iter_mut().enumerate() {
                let causal = j <= q;
                let in_window = sliding_window.is_none_or(|w| q - j.min(q) < w);
                let not_pad = pad.as_ref().is_none_or(|p| p[b * s + j]);
                if !(causal && in_window && not_pad) {
                    *v = MASKED;
                }
            }
        }
    }
    Ok(Tensor::from_vec(bias, (batch, 1, t, s), device)?)
}

/// Additive bias [B, 1, T, T] from an explicit 0/1 visibility mask [B, T, T] (e.g. block-diagonal
/// causal masks of packed sequences): 1 = query may see key.
pub fn explicit_bias(mask: &Tensor, device: &Device) -> Result<Tensor> {
    let (b, t, s) = mask.dims3().map_err(|_| {
        Error::input(
            "mask",
            format!("shape {:?}, expected [B, T, T]", mask.dims()),
        )
    })?;
    let rows = to_bool_rows(mask, "mask")?;
    let bias: Vec<f32> = rows.iter().map(|&v| if v { 0.0 } else { MASKED }).collect();
    Ok(Tensor::from_vec(bias, (b, 1, t, s), device)?)
}

/// HF-style position ids from a padding mask [B, S]: `cumsum(mask) - 1`, 0 on padding.
/// Returns u32 [B, S]. Used for left-padded generation.
pub fn positions_from_mask(attention_mask: &Tensor) -> Result<Tensor> {
    let (b, s) = attention_mask
        .dims2()
        .map_err(|e| Error::input("attention_mask", e.to_string()))?;
    let rows = to_bool_rows(attention_mask, "attention_mask")?;
    let mut out = Vec::with_capacity(b * s);
    for r in 0..b {
        let mut n = 0u32;
        for j in 0..s {
            if rows[r * s + j] {
                out.push(n);
                n += 1;
            } else {
                out.push(0);
            }
        }
    }
    Ok(Tensor::from_vec(out, (b, s), attention_mask.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causal_with_left_padding() -> Result<()> {
        let m = Tensor::new(&[[0u32, 1, 1]], &Device::Cpu)?;
        let bias = causal_bias(1, 3, 0, Some(&m), None, &Device::Cpu)?;
        let v = bias.flatten_all()?.to_vec1::<f32>()?;
        let x = MASKED;
        assert_eq!(v, vec![x, x, x, x, 0., x, x, 0., 0.]);
        Ok(())
    }

    #[test]
    fn sliding_window_hides_old_keys() -> Result<()> {
        let bias = causal_bias(1, 3, 0, None, Some(2), &Device::Cpu)?;
        let v = bias.flatten_all()?.to_vec1::<f32>()?;
        let x = MASKED;
        assert_eq!(v, vec![0., x, x, 0., 0., x, x, 0., 0.]);
        Ok(())
    }

    #[test]
    fn positions_skip_padding() -> Result<()> {
        let m = Tensor::new(&[[0i64, 0, 1, 1, 1]], &Device::Cpu)?;
        let p = positions_from_mask(&m)?.to_vec2::<u32>()?;
        assert_eq!(p, vec![vec![0, 0, 0, 1, 2]]);
        Ok(())
    }

    #[test]
    fn non_binary_mask_is_an_error() {
        let m = Tensor::new(&[[0f32, 2.0]], &Device::Cpu).unwrap();
        let e = causal_bias(1, 2, 0, Some(&m), None, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("attention_mask"));
    }
}
