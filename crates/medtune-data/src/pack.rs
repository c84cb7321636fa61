//! Packing several tokenized examples into one sequence, and building right-padded batches.
//!
//! A packed sequence carries, per token, the example it belongs to (`segment_ids`, 1-based; 0
//! is padding in a [`Batch`]) and its position inside that example (`position_ids`, restarting
//! at 0). The attention mask this describes is block-diagonal and causal: token q may attend to
//! token k iff k ≤ q and both are in the same segment, so examples never see each other. The
//! first label of every segment is −100, so no loss crosses an example boundary. Batches are
//! tensor-free: the trainer turns these vectors into tensors.

use crate::tokenize::{TokenizedExample, IGNORE_INDEX};
use serde::{Deserialize, Serialize};

/// Several examples in one sequence of length ≤ `max_len`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedSequence {
    /// Token ids, length T.
    pub input_ids: Vec<u32>,
    /// Labels, length T.
    pub labels: Vec<i64>,
    /// Position within the own example, length T.
    pub position_ids: Vec<u32>,
    /// 1-based example index within the sequence, length T.
    pub segment_ids: Vec<u32>,
    /// Ids of the packed examples, in order.
    pub example_ids: Vec<String>,
}

/// Greedy packing in the given order: an example starts a new sequence when it does not fit.
/// Examples longer than `max_len` get their own (over-long) sequence; tokenize with the same
/// `max_len` to avoid that.
pub fn pack(examples: &[TokenizedExample], max_len: usize) -> Vec<PackedSequence> {
    let mut out: Vec<PackedSequence> = Vec::new();
    for ex in examples {
        let fits = out
            .last()
            .is_some_and(|s| s.input_ids.len() + ex.input_ids.len() <= max_len);
        if !fits {
            out.push(PackedSequence {
                input_ids: Vec::new(),
                labels: Vec::new(),
                position_ids: Vec::new(),
                segment_ids: Vec::new(),
                example_ids: Vec::new(),
            });
        }
        let Some(seq) = out.last_mut() else { continue };
        let segment = seq.example_ids.len() as u32 + 1;
        seq.input_ids.extend_from_slice(&ex.input_ids);
        let first = seq.labels.len();
        seq.labels.extend_from_slice(&ex.labels);
        if let Some(l) = seq.labels.get_mut(first) {
            *l = IGNORE_INDEX;
        }
        seq.position_ids.extend(0..ex.input_ids.len() as u32);
        seq.segment_ids
            .extend(std::iter::repeat_n(segment, ex.input_ids.len()));
        seq.example_ids.push(ex.id.clone());
    }
    out
}

/// A right-padded batch, row-major `[B, T]` vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// B.
    pub batch_size: usize,
    /// T (longest row).
    pub seq_len: usize,
    /// `[B, T]` token ids, padding = pad id.
    pub input_ids: Vec<u32>,
    /// `[B, T]` labels, padding = −100.
    pub labels: Vec<i64>,
    /// `[B, T]` 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u8>,
    /// `[B, T]` positions within each example (padding 0).
    pub position_ids: Vec<u32>,
    /// `[B, T]` example index within the row, 1-based (padding 0).
    pub segment_ids: Vec<u32>,
}

impl Batch {
    /// One example per row.
    pub fn from_examples(examples: &[TokenizedExample], pad_id: u32) -> Batch {
        let rows: Vec<PackedSequence> = examples
            .iter()
            .map(|e| pack(std::slice::from_ref(e), usize::MAX).remove(0))
            .collect();
        Self::from_packed(&rows, pad_id)
    }

    /// One packed sequence per row.
    pub fn from_packed(rows: &[PackedSequence], pad_id: u32) -> Batch {
        let b = rows.len();
        let t = rows.iter().map(|r| r.input_ids.len()).max().unwrap_or(0);
        let mut batch = Batch {
            batch_size: b,
            seq_len: t,
            input_ids: vec![pad_id; b * t],
            labels: vec![IGNORE_INDEX; b * t],
            attention_mask: vec![0; b * t],
            position_ids: vec![0; b * t],
            segment_ids: vec![0; b * t],
        };
        for (i, r) in rows.iter().enumerate() {
            let n = r.input_ids.len();
            let row = i * t..i * t + n;
            batch.input_ids[row.clone()].copy_from_slice(&r.input_ids);
            batch.labels[row.clone()].copy_from_slice(&r.labels);
            batch.attention_mask[row.clone()].fill(1);
            batch.position_ids[row.clone()].copy_from_slice(&r.position_ids);
            batch.segment_ids[row].copy_from_slice(&r.segment_ids);
        }
        batch
    }

    /// Whether query position `q` may attend to key position `k` in row `b`: causal, within one
    /// segment, and never to padding.
    pub fn may_attend(&self, b: usize, q: usize, k: usize) -> bool {
        let (sq, sk) = (
            self.segment_ids[b * self.seq_len + q],
            self.segment_ids[b * self.seq_len + k],
        );
        k <= q && sq != 0 && sq == sk
    }

    /// Tokens with a label (the loss is averaged over these).
    pub fn supervised_tokens(&self) -> usize {
        self.labels.iter().filter(|&&l| l != IGNORE_INDEX).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, n: usize, prompt: usize) -> TokenizedExample {
        let input_ids: Vec<u32> = (0..n as u32).map(|i| i + 10).collect();
        let labels = input_ids
            .iter()
            .enumerate()
            .map(|(i, &t)| if i < prompt { IGNORE_INDEX } else { t as i64 })
            .collect();
        TokenizedExample {
            id: id.into(),
            input_ids,
            labels,
            truncated: false,
        }
    }

    #[test]
    fn packed_examples_never_attend_to_each_other() {
        let exs = [ex("a", 5, 2), ex("b", 4, 1), ex("c", 6, 3), ex("d", 3, 1)];
        let packed = pack(&exs, 10);
        assert_eq!(packed.len(), 2);
        assert_eq!(packed[0].example_ids, ["a", "b"]);
        assert_eq!(packed[1].example_ids, ["c", "d"]);
        assert_eq!(packed[0].position_ids, [0, 1, 2, 3, 4, 0, 1, 2, 3]);
        assert_eq!(packed[0].segment_ids, [1, 1, 1, 1, 1, 2, 2, 2, 2]);
        let batch = Batch::from_packed(&packed, 0);
        assert_eq!((batch.batch_size, batch.seq_len), (2, 9));
        for b in 0..2 {
            for q in 0..batch.seq_len {
                for k in 0..batch.seq_len {
                    let (sq, sk) = (batch.segment_ids[b * 9 + q], batch.segment_ids[b * 9 + k]);
                    if sq != sk || sk == 0 || sq == 0 {
                        assert!(
                            !batch.may_attend(b, q, k),
                            "row {b}: {q} sees {k} across examples"
                        );
                    }
                    if k > q {
                        assert!(!batch.may_attend(b, q, k));
                    }
                }
            }
        }
        assert!(batch.may_attend(0, 4, 0));
        assert!(batch.may_attend(0, 8, 5));
        // Labels: nothing supervised at a segment start, padding ignored.
        for (i, &s) in batch.segment_ids.iter().enumerate() {
            if s != 0 && (i % 9 == 0 || batch.segment_ids[i - 1] != s) {
                assert_eq!(batch.labels[i], IGNORE_INDEX);
            }
        }
        assert_eq!(batch.attention_mask[9..], [1, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(batch.supervised_tokens(), 3 + 3 + 3 + 2);
    }

    #[test]
    fn right_padding() {
        let batch = Batch::from_examples(&[ex("a", 3, 1), ex("b", 5, 2)], 7);
        assert_eq!(batch.seq_len, 5);
        assert_eq!(batch.input_ids[..5], [10, 11, 12, 7, 7]);
        assert_eq!(batch.attention_mask[..5], [1, 1, 1, 0, 0]);
        assert_eq!(batch.labels[3..5], [IGNORE_INDEX, IGNORE_INDEX]);
        assert!(!batch.may_attend(0, 4, 0), "padding attends nowhere");
    }
}
