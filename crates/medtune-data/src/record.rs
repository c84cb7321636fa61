//! The one record type every reader produces and every later stage consumes.

use serde::{Deserialize, Serialize};

/// One question/answer example, whatever its source format.
///
/// Serialised as one JSON object per line in the split files. Optional fields are omitted when
/// empty so the JSONL stays readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Record {
    /// Stable id, unique within a prepared dataset (e.g. `medquad:0000001_1-1`).
    pub id: String,
    /// The question as asked (for multiple choice: the stem without options).
    pub question: String,
    /// The reference answer: free text, or the option text for multiple choice, or the
    /// decision word (yes/no/maybe) for PubMedQA and Q-Pain.
    pub answer: String,
    /// Supporting text shown with the question (PubMedQA abstract, Q-Pain vignette).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Multiple-choice options in order (A, B, C, ...); empty for open questions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Class label: MCQ letter, yes/no/maybe, or a source-specific category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Specialty, subject or category used for stratification and per-specialty holdouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialty: Option<String>,
    /// Source id, e.g. `medquad`, `pubmedqa`, `medmcqa`.
    pub source: String,
    /// The document the example came from (MedQuAD document, PubMedQA PMID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    /// The topic the question is about (MedQuAD `Focus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focus: Option<String>,
    /// A coarser category (MedQuAD `SemanticGroup` or `Category`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Question type (MedQuAD `qtype`, MedQA `meta_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qtype: Option<String>,
    /// Dose class for dosing questions (`low`, `high`), as in Q-Pain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dose: Option<String>,
    /// Explanation or long answer, when the source gives one besides the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// A split fixed by the source (PubMedQA's official test ids are `test`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_split: Option<String>,
    /// Where the record came from: `file:line` for read records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Set only on synthetic records: how they were made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// How a synthetic record was made; its presence marks the record as synthetic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Generator name, e.g. `vignette-v1` or `oversample`.
    pub generator: String,
    /// Seed of the run that made it.
    pub seed: u64,
    /// Id of the record it was copied from (oversampling), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<String>,
    /// Generator parameters that produced this record (context, severity, ...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl Record {
    /// True when the record was generated rather than read from a source.
    pub fn is_synthetic(&self) -> bool {
        self.provenance.is_some()
    }

    /// The option letter (`A`, `B`, ...) for the option at `index`.
    pub fn option_letter(index: usize) -> char {
        // Options beyond Z do not occur in any supported source; wrap rather than panic.
        (b'A' + (index % 26) as u8) as char
    }

    /// The stratification key `specialty` or `label` for this record (`-` when absent).
    pub fn key(&self, by: StratifyBy) -> &str {
        match by {
            StratifyBy::Label => self.label.as_deref().unwrap_or("-"),
            StratifyBy::Specialty => self.specialty.as_deref().unwrap_or("-"),
        }
    }
}

/// Which field stratification, holdouts and balancing look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StratifyBy {
    /// [`Record::label`].
    Label,
    /// [`Record::specialty`].
    Specialty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trip_omits_empty_fields() {
        let r = Record {
            id: "x:1".into(),
            question: "Q?".into(),
            answer: "A.".into(),
            source: "x".into(),
            ..Default::default()
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"id":"x:1","question":"Q?","answer":"A.","source":"x"}"#
        );
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        assert!(!back.is_synthetic());
    }

    #[test]
    fn option_letters() {
        assert_eq!(Record::option_letter(0), 'A');
        assert_eq!(Record::option_letter(3), 'D');
    }
}
