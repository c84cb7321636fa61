//! HF's causal-LM loss: predict token t+1 from position t, mean cross-entropy over labels that
//! are not -100.

use crate::error::{Error, Result};
use candle_core::{DType, Tensor, D};

/// Label value that is ignored by the loss.
pub const IGNORE_INDEX: i64 = -100;

/// Summed loss and the number of supervised tokens, so a trainer can normalise over a whole
/// accumulated batch (sum of sums / sum of counts) rather than averaging per-micro-batch means.
pub struct LossSum {
    /// Scalar f32 tensor: Σ −log p(label) over supervised positions (differentiable).
    pub sum: Tensor,
    /// Number of supervised positions.
    pub count: usize,
}

/// Σ of the shifted cross-entropy: logits [B, T, V] (f32 or bf16; computed in f32), labels
/// [B, T] (any integer dtype). On CUDA this is one fused kernel ([`crate::fused::cross_entropy`])
/// reading the logits in their own dtype, unless `MEDTUNE_UNFUSED` names `cross_entropy`.
pub fn causal_lm_loss_sum(logits: &Tensor, labels: &Tensor) -> Result<LossSum> {
    loss_sum(
        logits,
        labels,
        crate::fused::enabled("cross_entropy", logits),
    )
}

/// [`causal_lm_loss_sum`] by the fused kernel over all B·T positions (`fused`: the last position
/// of each sequence predicts nothing and gets weight 0; no f32 copy of the logits) or by the
/// composed path over the B·(T−1) shifted positions.
pub(crate) fn loss_sum(logits: &Tensor, labels: &Tensor, fused: bool) -> Result<LossSum> {
    let (b, t, v) = logits.dims3()?;
    if labels.dims() != [b, t] {
        return Err(Error::input(
            "labels",
            format!(
                "shape {:?}, expected [{b}, {t}] like the logits",
                labels.dims()
            ),
        ));
    }
    let dev = logits.device();
    if t < 2 {
        return Ok(LossSum {
            sum: Tensor::zeros((), DType::F32, dev)?,
            count: 0,
        });
    }
    let (targets, weights) = shifted_targets(labels, v, fused)?;
    let rows = targets.len();
    let count = weights.iter().filter(|&&w| w > 0.0).count();
    if fused {
        // [B, T, V] → [B·T, V]: a free reshape, the logits stay in their dtype.
        let targets = Tensor::from_vec(targets, rows, dev)?;
        let weights = Tensor::from_vec(weights, rows, dev)?;
        let x = logits.reshape((rows, v))?;
        let sum = crate::fused::cross_entropy(&x, &targets, &weights)?.sum_all()?;
        return Ok(LossSum { sum, count });
    }
    let n = b * (t - 1);
    // [B, T-1, V] → [N, V]
    let x = logits
        .narrow(1, 0, t - 1)?
        .to_dtype(DType::F32)?
        .reshape((n, v))?;
    let lse = log_sum_exp(&x)?; // [N, 1]
    let targets = Tensor::from_vec(targets, (n, 1), dev)?;
    let picked = x.gather(&targets, 1)?; // [N, 1]
    let weights = Tensor::from_vec(weights, (n, 1), dev)?;
    let sum = ((lse - picked)? * weights)?.sum_all()?;
    Ok(LossSum { sum, count })
}

/// Targets and weights of the shifted loss for labels [B, T] over a vocabulary of `v`: position
/// p predicts label p + 1; ignored labels (-100) get target 0 and weight 0. `pad_last`: keep a
/// zero-weight row for the last position of each sequence (B·T rows, aligned with the logits);
/// else B·(T − 1) rows.
pub(crate) fn shifted_targets(
    labels: &Tensor,
    v: usize,
    pad_last: bool,
) -> Result<(Vec<u32>, Vec<f32>)> {
    let (b, t) = labels.dims2()?;
    let label_rows = labels
        .to_dtype(DType::I64)
        .and_then(|l| l.to_vec2::<i64>())
        .map_err(|e| Error::input("labels", e.to_string()))?;
    // Position p predicts label p + 1; `pad_last` keeps a zero-weight row for p = T − 1.
    let rows = if pad_last {
        b * t
    } else {
        b * (t.saturating_sub(1))
    };
    let mut targets = Vec::with_capacity(rows);
    let mut weights = Vec::with_capacity(rows);
    for (r, row) in label_rows.iter().enumerate() {
        for (p, &l) in row.iter().enumerate().skip(1) {
            if l == IGNORE_INDEX {
                targets.push(0u32);
                weights.push(0f32);
            } else if l < 0 || l >= v as i64 {
                return Err(Error::input(
                    "labels",
                    format!("label {l} at [{r}, {p}] is out of range 0..{v} (and not -100)"),
                ));
            } else {
                targets.push(l as u32);
                weights.push(1f32);
            }
        }
        if pad_last {
            targets.push(0);
            weights.push(0.0);
        }
    }
    Ok((targets, weights))
}

/// log Σ exp(x) over the last dimension of f32 `x` [N, V] → [N, 1], stabilised by the row max
/// (detached: it cancels in the gradient).
pub(crate) fn log_sum_exp(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    x.broadcast_sub(&max)?
        .exp()?
        .sum_keepdim(D::Minus1)?
        .log()?
        + &max
}

/// Mean shifted cross-entropy (scalar f32 tensor); 0 when no label is supervised.
pub fn causal_lm_loss(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let s = causal_lm_loss_sum(logits, labels)?;
    Ok((s.sum / s.count.max(1) as f64)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn uniform_logits_give_log_v() -> Result<()> {
        let logits = Tensor::zeros((1, 3, 4), DType::F32, &Device::Cpu)?;
        let labels = Tensor::new(&[[-100i64, 1, 2]], &Device::Cpu)?;
        let l: f32 = causal_lm_loss(&logits, &labels)?.to_scalar()?;
        assert!((l - 4f32.ln()).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn out_of_range_label_is_an_error() {
        let logits = Tensor::zeros((1, 2, 4), DType::F32, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[[0i64, 9]], &Device::Cpu).unwrap();
        let e = causal_lm_loss(&logits, &labels).unwrap_err().to_string();
        assert!(e.contains("labels") && e.contains("9"), "{e}");
    }
}
