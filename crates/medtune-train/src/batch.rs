//! Micro-batches as tensors: right-padded `input_ids`, `attention_mask` and `labels`.

use candle_core::{Device, Tensor};
use medtune_data::tokenize::{TokenizedExample, IGNORE_INDEX};

use crate::Result;

/// A right-padded micro-batch. B examples, T = the longest of them.
#[derive(Debug, Clone)]
pub struct Batch {
    /// [B, T] u32 token ids (padding positions hold `pad_id`).
    pub input_ids: Tensor,
    /// [B, T] u32: 1 on real tokens, 0 on padding.
    pub attention_mask: Tensor,
    /// [B, T] i64: the token id where supervised, −100 elsewhere (HF convention, unshifted).
    pub labels: Tensor,
    /// Real (non-padding) tokens in the batch.
    pub tokens: usize,
    /// Supervised tokens after the one-position shift (what the loss averages over).
    pub supervised: usize,
}

/// Stacks `examples` into one right-padded [`Batch`] on `device`.
pub fn collate(examples: &[&TokenizedExample], pad_id: u32, device: &Device) -> Result<Batch> {
    let b = examples.len();
    let t = examples
        .iter()
        .map(|e| e.input_ids.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut ids = vec![pad_id; b * t];
    let mut mask = vec![0u32; b * t];
    let mut labels = vec![IGNORE_INDEX; b * t];
    let mut tokens = 0;
    let mut supervised = 0;
    for (i, e) in examples.iter().enumerate() {
        let n = e.input_ids.len();
        ids[i * t..i * t + n].copy_from_slice(&e.input_ids);
        mask[i * t..i * t + n].fill(1);
        labels[i * t..i * t + n].copy_from_slice(&e.labels);
        tokens += n;
        // The first label never contributes: position 0 predicts nothing (shift by one).
        supervised += e
            .labels
            .iter()
            .skip(1)
            .filter(|&&l| l != IGNORE_INDEX)
            .count();
    }
    Ok(Batch {
        input_ids: Tensor::from_vec(ids, (b, t), device)?,
        attention_mask: Tensor::from_vec(mask, (b, t), device)?,
        labels: Tensor::from_vec(labels, (b, t), device)?,
        tokens,
        supervised,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(ids: &[u32], labels: &[i64]) -> TokenizedExample {
        TokenizedExample {
            id: "x".into(),
            input_ids: ids.to_vec(),
            labels: labels.to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn pads_right_and_counts_shifted_supervision() {
        let a = ex(&[5, 6, 7], &[-100, 6, 7]);
        let b = ex(&[8, 9], &[8, 9]);
        let batch = collate(&[&a, &b], 0, &Device::Cpu).unwrap();
        assert_eq!(
            batch.input_ids.to_vec2::<u32>().unwrap(),
            vec![vec![5, 6, 7], vec![8, 9, 0]]
        );
        assert_eq!(
            batch.attention_mask.to_vec2::<u32>().unwrap(),
            vec![vec![1, 1, 1], vec![1, 1, 0]]
        );
        assert_eq!(
            batch.labels.to_vec2::<i64>().unwrap(),
            vec![vec![-100, 6, 7], vec![8, 9, -100]]
        );
        assert_eq!(batch.tokens, 5);
        // a: labels at positions 1, 2; b: label at position 1 (position 0 is never predicted).
        assert_eq!(batch.supervised, 3);
    }
}
