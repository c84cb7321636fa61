//! BLEU exactly as sacrebleu 2.x computes it.
//!
//! Steps (Papineni et al. 2002, with sacrebleu's conventions):
//! 1. Each segment is tokenized with the `13a` tokenizer (mteval-v13a rules).
//! 2. Per segment: hypothesis n-gram counts (n = 1..4) are clipped by the maximum
//!    count of that n-gram over all references; the reference length is the
//!    reference length closest to the hypothesis length (ties: the shorter).
//! 3. Corpus statistics are the sums of the segment statistics.
//! 4. Precision p_n = 100 · correct_n / total_n with smoothing for zero counts;
//!    BLEU = BP · exp(mean of ln p_n), with BP = exp(1 − r/c) when c < r.
//!    With `effective_order`, orders with no hypothesis n-grams are left out of the mean.
//!
//! Scores are on sacrebleu's 0–100 scale; `bp` is in [0, 1].

use super::pystr::py_split;
use regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Highest n-gram order (sacrebleu's default).
pub const MAX_NGRAM_ORDER: usize = 4;

/// sacrebleu's smoothing methods (Chen & Cherry 2014).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Smooth {
    /// No smoothing.
    None,
    /// Method 1: a zero count becomes `value` (default 0.1).
    Floor(f64),
    /// Method 2: add `value` (default 1) to counts and totals of orders n > 1.
    AddK(f64),
    /// Method 3 (mteval-v13a): the k-th zero precision becomes 100 / (2^k · total).
    Exp,
}

/// BLEU settings; `Bleu::default()` is sacrebleu's `BLEU()`.
#[derive(Debug, Clone, Copy)]
pub struct Bleu {
    /// Lowercase before tokenizing.
    pub lowercase: bool,
    /// Smoothing method.
    pub smooth: Smooth,
    /// Leave out n-gram orders that the hypothesis has none of (recommended for sentences).
    pub effective_order: bool,
}

impl Default for Bleu {
    fn default() -> Self {
        Self {
            lowercase: false,
            smooth: Smooth::Exp,
            effective_order: false,
        }
    }
}

/// Sufficient statistics of one segment or a whole corpus (sums).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BleuStats {
    /// Hypothesis length in tokens.
    pub sys_len: usize,
    /// Closest reference length in tokens.
    pub ref_len: usize,
    /// Clipped matching n-grams per order.
    pub correct: [usize; MAX_NGRAM_ORDER],
    /// Hypothesis n-grams per order.
    pub total: [usize; MAX_NGRAM_ORDER],
}

impl std::ops::AddAssign for BleuStats {
    fn add_assign(&mut self, o: Self) {
        self.sys_len += o.sys_len;
        self.ref_len += o.ref_len;
        for n in 0..MAX_NGRAM_ORDER {
            self.correct[n] += o.correct[n];
            self.total[n] += o.total[n];
        }
    }
}

/// A BLEU result, on sacrebleu's scale.
#[derive(Debug, Clone, PartialEq)]
pub struct BleuScore {
    /// BLEU in [0, 100].
    pub score: f64,
    /// Brevity penalty in [0, 1].
    pub bp: f64,
    /// Smoothed n-gram precisions in [0, 100], n = 1..4.
    pub precisions: [f64; MAX_NGRAM_ORDER],
    /// The statistics the score was computed from.
    pub stats: BleuStats,
}

fn punct_re() -> &'static [(Regex, &'static str); 4] {
    static RES: OnceLock<[(Regex, &'static str); 4]> = OnceLock::new();
    RES.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("static regex is valid");
        [
            // symbols and most ASCII punctuation become separate tokens
            (re(r"([\{-~\[-` -&\(-\+:-@/])"), " $1 "),
            // period and comma unless preceded by a digit
            (re(r"([^0-9])([\.,])"), "$1 $2 "),
            // period and comma unless followed by a digit
            (re(r"([\.,])([^0-9])"), " $1 $2"),
            // dash after a digit
            (re(r"([0-9])(-)"), "$1 $2 "),
        ]
    })
}

/// The `13a` tokenizer (sacrebleu's default): returns tokens joined by single spaces.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, rep) in punct_re() {
        line = re.replace_all(&line, *rep).into_owned();
    }
    py_split(&line).join(" ")
}

type NgramCounts<'a> = HashMap<&'a [&'a str], usize>;

fn ngram_counts<'a>(tokens: &'a [&'a str]) -> NgramCounts<'a> {
    let mut counts = HashMap::new();
    for n in 1..=MAX_NGRAM_ORDER {
        for w in tokens.windows(n) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

/// Reference length closest to `hyp_len`; ties go to the shorter reference.
fn closest_ref_len(hyp_len: usize, ref_lens: &[usize]) -> usize {
    let mut best: Option<(usize, usize)> = None;
    for &r in ref_lens {
        let diff = hyp_len.abs_diff(r);
        best = match best {
            Some((d, l)) if diff > d || (diff == d && r >= l) => Some((d, l)),
            _ => Some((diff, r)),
        };
    }
    best.map_or(0, |(_, l)| l)
}

/// sacrebleu's floored log: ln(0) is replaced by −9999999999.
fn floored_ln(x: f64) -> f64 {
    if x == 0.0 {
        -9_999_999_999.0
    } else {
        x.ln()
    }
}

impl Bleu {
    fn preprocess(&self, s: &str) -> String {
        // sacrebleu strips trailing whitespace before tokenizing
        let s = s.trim_end_matches(super::pystr::is_py_space);
        if self.lowercase {
            tokenize_13a(&super::pystr::py_lower(s))
        } else {
            tokenize_13a(s)
        }
    }

    /// Statistics of one hypothesis against its references (empty `references` gives ref_len 0).
    pub fn segment_stats<S: AsRef<str>>(&self, hypothesis: &str, references: &[S]) -> BleuStats {
        let refs: Vec<String> = references
            .iter()
            .map(|r| self.preprocess(r.as_ref()))
            .collect();
        let ref_tokens: Vec<Vec<&str>> = refs.iter().map(|r| py_split(r)).collect();
        let mut ref_max: NgramCounts = HashMap::new();
        for toks in &ref_tokens {
            for (g, c) in ngram_counts(toks) {
                let e = ref_max.entry(g).or_insert(0);
                *e = (*e).max(c);
            }
        }
        let ref_lens: Vec<usize> = ref_tokens.iter().map(Vec::len).collect();

        let hyp = self.preprocess(hypothesis);
        let hyp_tokens = py_split(&hyp);
        let mut stats = BleuStats {
            sys_len: hyp_tokens.len(),
            ref_len: closest_ref_len(hyp_tokens.len(), &ref_lens),
            ..BleuStats::default()
        };
        for (g, c) in ngram_counts(&hyp_tokens) {
            let n = g.len() - 1;
            stats.total[n] += c;
            if let Some(&rc) = ref_max.get(g) {
                stats.correct[n] += c.min(rc);
            }
        }
        stats
    }

    /// BLEU from (summed) statistics: sacrebleu's `compute_bleu`.
    pub fn score_from_stats(&self, stats: &BleuStats) -> BleuScore {
        let (sys_len, ref_len) = (stats.sys_len as f64, stats.ref_len as f64);
        let bp = if stats.sys_len < stats.ref_len {
            if stats.sys_len > 0 {
                (1.0 - ref_len / sys_len).exp()
            } else {
                0.0
            }
        } else {
            1.0
        };
        let mut precisions = [0.0; MAX_NGRAM_ORDER];
        if stats.correct.iter().all(|&c| c == 0) {
            return BleuScore {
                score: 0.0,
                bp,
                precisions,
                stats: *stats,
            };
        }
        let mut correct = stats.correct.map(|c| c as f64);
        let mut total = stats.total.map(|t| t as f64);
        let mut smooth_mteval = 1.0;
        let mut eff_order = MAX_NGRAM_ORDER;
        for n in 0..MAX_NGRAM_ORDER {
            if let Smooth::AddK(k) = self.smooth {
                if n > 0 {
                    correct[n] += k;
                    total[n] += k;
                }
            }
            if total[n] == 0.0 {
                break;
            }
            if self.effective_order {
                eff_order = n + 1;
            }
            if correct[n] == 0.0 {
                match self.smooth {
                    Smooth::Exp => {
                        smooth_mteval *= 2.0;
                        precisions[n] = 100.0 / (smooth_mteval * total[n]);
                    }
                    Smooth::Floor(v) => precisions[n] = 100.0 * v / total[n],
                    Smooth::None | Smooth::AddK(_) => {}
                }
            } else {
                precisions[n] = 100.0 * correct[n] / total[n];
            }
        }
        let log_sum: f64 = precisions[..eff_order].iter().map(|&p| floored_ln(p)).sum();
        BleuScore {
            score: bp * (log_sum / eff_order as f64).exp(),
            bp,
            precisions,
            stats: *stats,
        }
    }

    /// Sentence BLEU of one hypothesis against one or more references.
    pub fn sentence_score<S: AsRef<str>>(&self, hypothesis: &str, references: &[S]) -> BleuScore {
        self.score_from_stats(&self.segment_stats(hypothesis, references))
    }

    /// Corpus BLEU: `references[i]` holds the references of `hypotheses[i]`.
    pub fn corpus_score<H: AsRef<str>, S: AsRef<str>>(
        &self,
        hypotheses: &[H],
        references: &[Vec<S>],
    ) -> super::Result<BleuScore> {
        if hypotheses.len() != references.len() {
            return Err(super::Error::Invalid(format!(
                "{} hypotheses but {} reference sets",
                hypotheses.len(),
                references.len()
            )));
        }
        let mut sum = BleuStats::default();
        for (h, r) in hypotheses.iter().zip(references) {
            sum += self.segment_stats(h.as_ref(), r);
        }
        Ok(self.score_from_stats(&sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_splits_punctuation_but_keeps_numbers() {
        assert_eq!(tokenize_13a("Hello, world."), "Hello , world .");
        assert_eq!(
            tokenize_13a("It costs 3.50 (approx)"),
            "It costs 3.50 ( approx )"
        );
        assert_eq!(tokenize_13a("5-10 mg &amp; more"), "5 - 10 mg & more");
    }

    #[test]
    fn closest_length_prefers_shorter_on_tie() {
        assert_eq!(closest_ref_len(5, &[7, 3]), 3);
        assert_eq!(closest_ref_len(5, &[6, 4, 9]), 4);
        assert_eq!(closest_ref_len(5, &[]), 0);
    }

    #[test]
    fn identical_sentence_scores_100() {
        let s = Bleu::default().sentence_score("a b c d e", &["a b c d e"]);
        assert!((s.score - 100.0).abs() < 1e-9);
        assert_eq!(s.bp, 1.0);
    }

    #[test]
    fn no_match_scores_zero() {
        let s = Bleu::default().sentence_score("x y z", &["a b c"]);
        assert_eq!(s.score, 0.0);
    }
}
