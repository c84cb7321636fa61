//! ROUGE-N, ROUGE-L and ROUGE-Lsum exactly as rouge-score 0.1.2 computes them.
//!
//! Tokenizer: lowercase, every run of characters outside `[a-z0-9]` becomes a
//! space, split, optionally Porter-stem tokens longer than 3 characters, drop
//! empty tokens. ROUGE-N counts clipped n-gram overlaps; ROUGE-L uses the longest
//! common subsequence; ROUGE-Lsum splits both texts on newlines and uses the
//! union LCS of each reference sentence against all candidate sentences (Lin 2004,
//! section 3.2). With several references, each type takes the reference with the
//! highest F-measure (first one on ties).

use super::porter::PorterStemmer;
use std::collections::{BTreeSet, HashMap};

/// Precision, recall and F-measure, each in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Score {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

impl Score {
    fn new(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        Self {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// The four ROUGE types the CLI reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RougeScores {
    pub rouge1: Score,
    pub rouge2: Score,
    pub rouge_l: Score,
    pub rouge_lsum: Score,
}

/// rouge-score's `RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer)`.
#[derive(Debug, Clone, Default)]
pub struct RougeScorer {
    stemmer: Option<PorterStemmer>,
}

impl RougeScorer {
    /// A scorer, with nltk's Porter stemmer when `use_stemmer` is set.
    pub fn new(use_stemmer: bool) -> Self {
        Self {
            stemmer: use_stemmer.then(PorterStemmer::default),
        }
    }

    /// rouge-score's default tokenizer.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let lower = super::pystr::py_lower(text);
        let cleaned: String = lower
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        cleaned
            .split(' ')
            .filter(|t| !t.is_empty())
            .map(|t| match &self.stemmer {
                Some(s) if t.len() > 3 => s.stem(t),
                _ => t.to_string(),
            })
            .filter(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
            .collect()
    }

    /// All four types for one reference (`target`) and one prediction.
    pub fn score(&self, target: &str, prediction: &str) -> RougeScores {
        let t = self.tokenize(target);
        let p = self.tokenize(prediction);
        let sents = |text: &str| -> Vec<Vec<String>> {
            text.split('\n')
                .filter(|s| !s.is_empty())
                .map(|s| self.tokenize(s))
                .collect()
        };
        RougeScores {
            rouge1: rouge_n(&t, &p, 1),
            rouge2: rouge_n(&t, &p, 2),
            rouge_l: rouge_l(&t, &p),
            rouge_lsum: rouge_lsum(&sents(target), &sents(prediction)),
        }
    }

    /// Each type maximised (by F-measure) over the references; zeros when there are none.
    pub fn score_multi<S: AsRef<str>>(&self, targets: &[S], prediction: &str) -> RougeScores {
        let all: Vec<RougeScores> = targets
            .iter()
            .map(|t| self.score(t.as_ref(), prediction))
            .collect();
        let best = |get: fn(&RougeScores) -> Score| -> Score {
            let mut best: Option<Score> = None;
            for s in all.iter().map(get) {
                if best.is_none_or(|b| s.fmeasure > b.fmeasure) {
                    best = Some(s);
                }
            }
            best.unwrap_or_default()
        };
        RougeScores {
            rouge1: best(|s| s.rouge1),
            rouge2: best(|s| s.rouge2),
            rouge_l: best(|s| s.rouge_l),
            rouge_lsum: best(|s| s.rouge_lsum),
        }
    }
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut m = HashMap::new();
    if n > 0 {
        for w in tokens.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// ROUGE-N (n ≥ 1) between target and prediction tokens.
pub fn rouge_n(target: &[String], prediction: &[String], n: usize) -> Score {
    let t = ngrams(target, n);
    let p = ngrams(prediction, n);
    let overlap: usize = t
        .iter()
        .map(|(g, &c)| c.min(p.get(g).copied().unwrap_or(0)))
        .sum();
    let t_count: usize = t.values().sum();
    let p_count: usize = p.values().sum();
    Score::new(
        overlap as f64 / p_count.max(1) as f64,
        overlap as f64 / t_count.max(1) as f64,
    )
}

/// LCS length table, `(|r|+1) × (|c|+1)`.
fn lcs_table(r: &[String], c: &[String]) -> Vec<Vec<usize>> {
    let mut t = vec![vec![0usize; c.len() + 1]; r.len() + 1];
    for i in 1..=r.len() {
        for j in 1..=c.len() {
            t[i][j] = if r[i - 1] == c[j - 1] {
                t[i - 1][j - 1] + 1
            } else {
                t[i - 1][j].max(t[i][j - 1])
            };
        }
    }
    t
}

/// ROUGE-L between target and prediction tokens.
pub fn rouge_l(target: &[String], prediction: &[String]) -> Score {
    if target.is_empty() || prediction.is_empty() {
        return Score::default();
    }
    let lcs = lcs_table(target, prediction)[target.len()][prediction.len()] as f64;
    Score::new(lcs / prediction.len() as f64, lcs / target.len() as f64)
}

/// Indices into `r` of one LCS of `r` and `c` (rouge-score's backtracking order).
fn lcs_indices(r: &[String], c: &[String]) -> Vec<usize> {
    let t = lcs_table(r, c);
    let (mut i, mut j) = (r.len(), c.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if r[i - 1] == c[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// Summary-level ROUGE-Lsum between sentence-split token lists.
pub fn rouge_lsum(target: &[Vec<String>], prediction: &[Vec<String>]) -> Score {
    if target.is_empty() || prediction.is_empty() {
        return Score::default();
    }
    let m: usize = target.iter().map(Vec::len).sum();
    let n: usize = prediction.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return Score::default();
    }
    let mut count_r: HashMap<&str, usize> = HashMap::new();
    let mut count_c: HashMap<&str, usize> = HashMap::new();
    for t in target.iter().flatten() {
        *count_r.entry(t).or_insert(0) += 1;
    }
    for t in prediction.iter().flatten() {
        *count_c.entry(t).or_insert(0) += 1;
    }
    let mut hits = 0usize;
    for r in target {
        let union: BTreeSet<usize> = prediction.iter().flat_map(|c| lcs_indices(r, c)).collect();
        for i in union {
            let tok = r[i].as_str();
            let (Some(cc), Some(cr)) = (count_c.get_mut(tok), count_r.get_mut(tok)) else {
                continue;
            };
            if *cc > 0 && *cr > 0 {
                hits += 1;
                *cc -= 1;
                *cr -= 1;
            }
        }
    }
    Score::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_lowercases_and_splits_non_alphanumerics() {
        let s = RougeScorer::new(false);
        assert_eq!(
            s.tokenize("Hello, WORLD! 3.5mg"),
            ["hello", "world", "3", "5mg"]
        );
        let st = RougeScorer::new(true);
        assert_eq!(st.tokenize("running dogs ran"), ["run", "dog", "ran"]);
    }

    #[test]
    fn lcs_of_known_pair() {
        let s = RougeScorer::new(false);
        let r = s.score("the cat sat on the mat", "the cat on the mat sat");
        assert!((r.rouge_l.recall - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn multi_takes_best_fmeasure() {
        let s = RougeScorer::new(false);
        let r = s.score_multi(&["x y z", "a b c"], "a b c");
        assert_eq!(r.rouge1.fmeasure, 1.0);
        assert_eq!(s.score_multi::<&str>(&[], "a").rouge1, Score::default());
    }
}
