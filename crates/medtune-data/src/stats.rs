//! Dataset statistics: counts by split × specialty × label and length histograms.

use crate::split::Split;
use crate::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A histogram over power-of-two buckets: bucket i counts values in [2^(i-1), 2^i), bucket 0
/// counts 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    /// Upper bounds (exclusive) of the buckets: 1, 2, 4, 8, ...
    pub upper_bounds: Vec<usize>,
    /// Count per bucket.
    pub counts: Vec<usize>,
    /// Smallest value.
    pub min: usize,
    /// Largest value.
    pub max: usize,
    /// Mean.
    pub mean: f64,
    /// Median (lower middle).
    pub median: usize,
}

impl Histogram {
    /// Histogram of `values`.
    pub fn of(values: &[usize]) -> Histogram {
        if values.is_empty() {
            return Histogram::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let max = sorted[sorted.len() - 1];
        let nb = (usize::BITS - max.leading_zeros()) as usize + 1;
        let mut counts = vec![0; nb];
        for &v in values {
            counts[(usize::BITS - v.leading_zeros()) as usize] += 1;
        }
        Histogram {
            upper_bounds: (0..nb).map(|i| 1usize << i).collect(),
            counts,
            min: sorted[0],
            max,
            mean: values.iter().sum::<usize>() as f64 / values.len() as f64,
            median: sorted[(sorted.len() - 1) / 2],
        }
    }
}

/// Statistics of one split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitStats {
    /// Records.
    pub records: usize,
    /// Synthetic records among them.
    pub synthetic: usize,
    /// specialty → label → count (`-` when absent).
    pub by_specialty_label: BTreeMap<String, BTreeMap<String, usize>>,
    /// Question length in characters.
    pub question_chars: Histogram,
    /// Answer length in characters.
    pub answer_chars: Histogram,
    /// Question+context length in tokens (when a tokenizer was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<Histogram>,
    /// Answer length in tokens (when a tokenizer was given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_tokens: Option<Histogram>,
}

/// Computes [`SplitStats`] for a split. `tokens` counts tokens of a text when given.
pub fn split_stats(records: &[Record], tokens: Option<crate::clean::TokenCounter>) -> SplitStats {
    use rayon::prelude::*;
    let mut s = SplitStats {
        records: records.len(),
        ..Default::default()
    };
    for r in records {
        s.synthetic += r.is_synthetic() as usize;
        *s.by_specialty_label
            .entry(r.specialty.clone().unwrap_or_else(|| "-".into()))
            .or_default()
            .entry(r.label.clone().unwrap_or_else(|| "-".into()))
            .or_default() += 1;
    }
    let q: Vec<usize> = records.iter().map(|r| r.question.chars().count()).collect();
    let a: Vec<usize> = records.iter().map(|r| r.answer.chars().count()).collect();
    s.question_chars = Histogram::of(&q);
    s.answer_chars = Histogram::of(&a);
    if let Some(t) = tokens {
        let pt: Vec<usize> = records
            .par_iter()
            .map(|r| t(&r.question) + r.context.as_deref().map(t).unwrap_or(0))
            .collect();
        let at: Vec<usize> = records.par_iter().map(|r| t(&r.answer)).collect();
        s.prompt_tokens = Some(Histogram::of(&pt));
        s.answer_tokens = Some(Histogram::of(&at));
    }
    s
}

/// Statistics per split name.
pub type Stats = BTreeMap<Split, SplitStats>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let h = Histogram::of(&[0, 1, 3, 4, 100]);
        assert_eq!(h.upper_bounds, [1, 2, 4, 8, 16, 32, 64, 128]);
        assert_eq!(h.counts, [1, 1, 1, 1, 0, 0, 0, 1]);
        assert_eq!((h.min, h.max, h.median), (0, 100, 3));
        assert!((h.mean - 21.6).abs() < 1e-9);
    }

    #[test]
    fn counts_by_specialty_and_label() {
        let r = |s: &str, l: &str| Record {
            id: "x".into(),
            question: "q".into(),
            answer: "a".into(),
            specialty: Some(s.into()),
            label: Some(l.into()),
            source: "t".into(),
            ..Default::default()
        };
        let st = split_stats(
            &[r("a", "yes"), r("a", "no"), r("a", "yes"), r("b", "no")],
            None,
        );
        assert_eq!(st.by_specialty_label["a"]["yes"], 2);
        assert_eq!(st.by_specialty_label["b"]["no"], 1);
        assert_eq!(st.records, 4);
    }
}
