//! Exact match and token F1 with the SQuAD v1.1 answer normalisation.
//!
//! Normalisation (the official v1.1 evaluation script): lowercase, delete ASCII
//! punctuation, replace the articles `a`, `an`, `the` (whole words) by spaces,
//! collapse whitespace. F1 is the harmonic mean of token precision and recall
//! over the multiset of normalised tokens. With several gold answers, each
//! metric takes the best one.

use super::pystr::py_split;
use regex::Regex;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The SQuAD v1.1 normalisation of an answer.
pub fn normalize_answer(s: &str) -> String {
    static ARTICLES: OnceLock<Regex> = OnceLock::new();
    let articles = ARTICLES.get_or_init(|| Regex::new(r"\b(a|an|the)\b").expect("valid regex"));
    let lower = super::pystr::py_lower(s);
    let no_punct: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let no_articles = articles.replace_all(&no_punct, " ");
    py_split(&no_articles).join(" ")
}

fn em_one(prediction: &str, truth: &str) -> f64 {
    f64::from(u8::from(
        normalize_answer(prediction) == normalize_answer(truth),
    ))
}

fn f1_one(prediction: &str, truth: &str) -> f64 {
    let p = normalize_answer(prediction);
    let t = normalize_answer(truth);
    let p_tokens = py_split(&p);
    let t_tokens = py_split(&t);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for tok in &t_tokens {
        *counts.entry(tok).or_insert(0) += 1;
    }
    let mut same = 0usize;
    for tok in &p_tokens {
        if let Some(c) = counts.get_mut(tok) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p_tokens.len() as f64;
    let recall = same as f64 / t_tokens.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

fn best<S: AsRef<str>>(truths: &[S], f: impl Fn(&str) -> f64) -> f64 {
    truths.iter().map(|t| f(t.as_ref())).fold(0.0, f64::max)
}

/// 1.0 when the normalised prediction equals some normalised gold answer, else 0.0.
pub fn exact_match<S: AsRef<str>>(prediction: &str, truths: &[S]) -> f64 {
    best(truths, |t| em_one(prediction, t))
}

/// Best token F1 of the prediction over the gold answers (0 for none).
pub fn f1<S: AsRef<str>>(prediction: &str, truths: &[S]) -> f64 {
    best(truths, |t| f1_one(prediction, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_articles_and_punctuation() {
        assert_eq!(
            normalize_answer("The  Heart-Attack, an event!"),
            "heartattack event"
        );
        assert_eq!(normalize_answer("theory"), "theory");
    }

    #[test]
    fn f1_counts_token_overlap() {
        // 2 shared of 3 predicted and 4 gold tokens: P 2/3, R 1/2, F1 4/7
        let f = f1("aspirin daily dose", &["low aspirin daily regimen"]);
        assert!((f - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!(exact_match("Aspirin.", &["x", "aspirin"]), 1.0);
        assert_eq!(f1("", &["a b"]), 0.0);
    }
}
