//! The label audit run before training: are the labels what completion-only training needs?

use medtune_data::tokenize::{TokenizedExample, IGNORE_INDEX};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What the audit found; written to `label_audit.json` in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelAudit {
    /// Examples audited.
    pub examples: usize,
    /// All tokens.
    pub tokens: usize,
    /// Tokens with a label (not −100).
    pub supervised_tokens: usize,
    /// `supervised_tokens / tokens`.
    pub supervised_fraction: f64,
    /// Examples whose labels are all −100 (they teach nothing).
    pub examples_without_supervision: usize,
    /// Ids of a few of those.
    pub unsupervised_examples: Vec<String>,
    /// Examples whose last supervised token is the EOS id.
    pub examples_with_supervised_eos: usize,
    /// Whether every supervised example ends with a supervised EOS.
    pub eos_supervised: bool,
    /// Examples truncated by the tokenizer.
    pub truncated: usize,
    /// sha256 of the chat template used to render the examples.
    pub chat_template_sha256: String,
}

/// Audits `examples`; fails when more than `max_unsupervised_fraction` of them carry no label.
pub fn audit_labels(
    examples: &[TokenizedExample],
    eos_id: u32,
    chat_template_sha256: &str,
    max_unsupervised_fraction: f64,
) -> Result<LabelAudit> {
    let mut a = LabelAudit {
        examples: examples.len(),
        tokens: 0,
        supervised_tokens: 0,
        supervised_fraction: 0.0,
        examples_without_supervision: 0,
        unsupervised_examples: Vec::new(),
        examples_with_supervised_eos: 0,
        eos_supervised: false,
        truncated: 0,
        chat_template_sha256: chat_template_sha256.to_string(),
    };
    for e in examples {
        a.tokens += e.input_ids.len();
        let sup = e.labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
        a.supervised_tokens += sup;
        a.truncated += usize::from(e.truncated);
        if sup == 0 {
            a.examples_without_supervision += 1;
            if a.unsupervised_examples.len() < 5 {
                a.unsupervised_examples.push(e.id.clone());
            }
        }
        if e.labels.iter().rev().find(|&&l| l != IGNORE_INDEX) == Some(&(eos_id as i64)) {
            a.examples_with_supervised_eos += 1;
        }
    }
    a.supervised_fraction = a.supervised_tokens as f64 / a.tokens.max(1) as f64;
    let supervised_examples = a.examples - a.examples_without_supervision;
    a.eos_supervised =
        supervised_examples > 0 && a.examples_with_supervised_eos >= supervised_examples;
    if a.examples == 0 {
        return Err(Error::Audit("no training examples".into()));
    }
    let frac = a.examples_without_supervision as f64 / a.examples as f64;
    if frac > max_unsupervised_fraction {
        return Err(Error::Audit(format!(
            "{} of {} examples ({:.1}%) have no supervised token (limit {:.1}%), e.g. {:?}",
            a.examples_without_supervision,
            a.examples,
            100.0 * frac,
            100.0 * max_unsupervised_fraction,
            a.unsupervised_examples
        )));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: &str, labels: &[i64]) -> TokenizedExample {
        TokenizedExample {
            id: id.into(),
            input_ids: vec![1; labels.len()],
            labels: labels.to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn counts_supervision_and_eos() {
        let xs = vec![ex("a", &[-100, 5, 2]), ex("b", &[-100, -100, 7, 2])];
        let a = audit_labels(&xs, 2, "h", 0.0).unwrap();
        assert_eq!(a.supervised_tokens, 4);
        assert_eq!(a.tokens, 7);
        assert!(a.eos_supervised);
        assert_eq!(a.examples_without_supervision, 0);
    }

    #[test]
    fn fails_above_the_unsupervised_threshold() {
        let xs = vec![ex("a", &[-100, 5, 2]), ex("empty", &[-100, -100])];
        let err = audit_labels(&xs, 2, "h", 0.25).unwrap_err().to_string();
        assert!(err.contains("empty") && err.contains("1 of 2"), "{err}");
        assert!(audit_labels(&xs, 2, "h", 0.5).is_ok());
        let a = audit_labels(&[ex("a", &[-100, 5])], 2, "h", 0.0).unwrap();
        assert!(!a.eos_supervised);
    }
}
