//! Error analysis of generated answers: verbosity against the reference, refusals, format
//! failures, and answers the safety validator flags, each with counts and a few examples.

use crate::run::{Mode, Prediction};
use crate::suite::Suite;
use medtune_safety::{Field, Validator};
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// An answer longer than this many times its reference counts as overly long.
pub const LONG_RATIO: f64 = 2.0;
/// Examples kept per finding.
pub const EXAMPLES: usize = 3;

/// Whether `text` reads as a refusal or a deflection instead of an answer.
pub fn is_refusal(text: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?i)\b(i\s+(?:cannot|can't|can not|am unable to|am not able to|won't|will not)\s+(?:provide|give|answer|help|offer|recommend|prescribe|assist)|as an ai\b|i'?m (?:sorry|afraid),? (?:but )?i|i do not have enough information|unable to (?:answer|provide))",
        )
        .ok()
    })
    .as_ref()
    .is_some_and(|re| re.is_match(text))
}

/// Categories (snake_case) of the warnings the validator raises on text in `answer`.
pub fn safety_flags(v: &Validator, question: &str, answer: &str) -> Vec<String> {
    let report = v.check(question, answer, None);
    let mut cats: Vec<String> = report
        .warnings
        .iter()
        .filter(|w| {
            w.evidence
                .as_ref()
                .is_some_and(|e| e.field == Field::Answer)
        })
        .map(|w| {
            serde_json::to_value(w.category)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{:?}", w.category))
        })
        .collect();
    cats.sort();
    cats.dedup();
    cats
}

/// Words in `s` (whitespace split).
pub fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// One example answer for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    /// Item id.
    pub id: String,
    /// The answer (shortened).
    pub output: String,
    /// Gold label or reference (shortened).
    pub gold: String,
    /// What was found (category, predicted label, ratio).
    pub note: String,
}

/// The findings for one target × suite in generation mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorAnalysis {
    /// Target.
    pub target: String,
    /// Suite.
    pub suite: Suite,
    /// Generated items.
    pub n: usize,
    /// Mean answer/reference word-count ratio (free text only).
    pub mean_length_ratio: Option<f64>,
    /// Share of answers longer than [`LONG_RATIO`] × the reference (free text only).
    pub long_share: Option<f64>,
    /// Refusals.
    pub refusals: usize,
    /// Format failures (choice items with no extractable answer).
    pub format_failures: usize,
    /// Answers with at least one safety warning, by category.
    pub safety_flagged: BTreeMap<String, usize>,
    /// Wrong answers by (gold, predicted) pair, most frequent first (choice items).
    pub confusions: Vec<(String, String, usize)>,
    /// Examples per finding (`refusal`, `format_failure`, `long`, `safety`, `wrong`).
    pub examples: BTreeMap<String, Vec<Example>>,
}

fn shorten(s: &str, n: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    }
}

/// Analyses the generation-mode predictions of one target on one suite.
pub fn analyse(target: &str, suite: Suite, preds: &[&Prediction]) -> ErrorAnalysis {
    let preds: Vec<&&Prediction> = preds
        .iter()
        .filter(|p| p.mode == Mode::Generate && p.target == target && p.suite == suite)
        .collect();
    let mut a = ErrorAnalysis {
        target: target.into(),
        suite,
        n: preds.len(),
        mean_length_ratio: None,
        long_share: None,
        refusals: 0,
        format_failures: 0,
        safety_flagged: BTreeMap::new(),
        confusions: Vec::new(),
        examples: BTreeMap::new(),
    };
    let push = |a: &mut ErrorAnalysis, kind: &str, p: &Prediction, note: String| {
        let list = a.examples.entry(kind.into()).or_default();
        if list.len() < EXAMPLES {
            list.push(Example {
                id: p.id.clone(),
                output: shorten(&p.output, 160),
                gold: shorten(&p.gold, 100),
                note,
            });
        }
    };
    let mut ratios = Vec::new();
    let mut confusion: BTreeMap<(String, String), usize> = BTreeMap::new();
    for p in &preds {
        if p.refusal {
            a.refusals += 1;
            push(&mut a, "refusal", p, String::new());
        }
        if p.format_failure() {
            a.format_failures += 1;
            push(&mut a, "format_failure", p, String::new());
        }
        for c in &p.safety_flags {
            *a.safety_flagged.entry(c.clone()).or_default() += 1;
        }
        if !p.safety_flags.is_empty() {
            push(&mut a, "safety", p, p.safety_flags.join(", "));
        }
        if suite.is_choice() {
            if let Some(pred) = p.predicted.as_deref().filter(|x| *x != p.gold) {
                *confusion.entry((p.gold.clone(), pred.into())).or_default() += 1;
                push(&mut a, "wrong", p, format!("predicted {pred}"));
            }
        } else {
            let r = word_count(&p.reference);
            if r > 0 {
                let ratio = word_count(&p.output) as f64 / r as f64;
                ratios.push(ratio);
                if ratio > LONG_RATIO {
                    push(&mut a, "long", p, format!("{ratio:.1}× the reference"));
                }
            }
        }
    }
    if !ratios.is_empty() {
        let n = ratios.len() as f64;
        a.mean_length_ratio = Some(ratios.iter().sum::<f64>() / n);
        a.long_share = Some(ratios.iter().filter(|&&r| r > LONG_RATIO).count() as f64 / n);
    }
    let mut conf: Vec<(String, String, usize)> =
        confusion.into_iter().map(|((g, p), n)| (g, p, n)).collect();
    conf.sort_by(|x, y| y.2.cmp(&x.2).then_with(|| (&x.0, &x.1).cmp(&(&y.0, &y.1))));
    a.confusions = conf;
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_recognised() {
        assert!(is_refusal("I cannot provide medical advice."));
        assert!(is_refusal("I'm sorry, but I can't help with that."));
        assert!(is_refusal("As an AI, I do not prescribe."));
        assert!(!is_refusal("Ibuprofen 400 mg every 6 hours."));
        assert!(!is_refusal(
            "Patients who cannot sleep should see a doctor."
        ));
    }

    #[test]
    fn shorten_keeps_short_text() {
        assert_eq!(shorten("a  b\nc", 10), "a b c");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }
}
