//! Readers: every supported source format into [`Record`]s.
//!
//! A reader never panics on bad input. A malformed row, line or file becomes a [`Problem`] (with
//! file and line) and is skipped, or aborts the read with [`Error::Malformed`] in strict mode.
//! Records a reader skips on purpose (e.g. MedQuAD pairs whose answer was removed) are counted
//! by reason in [`ReadOutput::dropped`], so nothing disappears silently.

mod csv;
mod json;
mod medquad;
mod pubmedqa;

use crate::{Error, Record, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The input formats medtune reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// CSV with a header (default mapping `question,answer`, e.g. `mle_screening_dataset.csv`).
    Csv,
    /// A JSON array of objects, with a field mapping.
    Json,
    /// JSON Lines, one object per line, with a field mapping.
    Jsonl,
    /// A directory of `dataset_with_answers_{specialty}.json` files holding `{question: answer}`.
    SpecialtyDir,
    /// MedQuAD: a directory tree of XML documents.
    Medquad,
    /// PubMedQA `ori_pqal.json`, with the official test ids from `test_ground_truth.json`.
    Pubmedqa,
    /// MedMCQA JSONL (`opa..opd`, `cop`).
    Medmcqa,
    /// MedQA-USMLE JSONL (`options`, `answer_idx`).
    Medqa,
    /// MMLU CSVs without header (`question,A,B,C,D,answer`), a file or a directory of them.
    Mmlu,
    /// Q-Pain CSVs (`Vignette,Question,Answer,Dosage,Explanation`), a file or a directory.
    Qpain,
    /// Alpaca JSON (`instruction`, `input`, `output`).
    Alpaca,
    /// ShareGPT (`conversations: [{from, value}]`) or messages (`messages: [{role, content}]`) JSON.
    Sharegpt,
}

/// One input source as written in the data config (`[[sources]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Input format.
    pub format: Format,
    /// File or directory, relative to the data directory unless absolute.
    pub path: PathBuf,
    /// Source id put in [`Record::source`] and record ids; defaults to the format name.
    #[serde(default)]
    pub name: Option<String>,
    /// Record field → column (CSV) or field path (JSON, dotted for nesting). Only for
    /// `csv`, `json` and `jsonl`. Fields: id, question, answer, context, options, label,
    /// specialty, document_id, focus, category, qtype, explanation. `options` may list several columns
    /// separated by `|`.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// For `csv`: whether the first row is a header (default true). Without a header,
    /// columns are named by their 0-based index.
    #[serde(default)]
    pub has_header: Option<bool>,
    /// For `pubmedqa`: the ground-truth file whose ids form the official test split
    /// (default `test_ground_truth.json` beside the input, when present).
    #[serde(default)]
    pub test_ids: Option<PathBuf>,
}

impl SourceConfig {
    /// The source id used in records.
    pub fn source_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            serde_json::to_value(self.format)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        })
    }
}

/// A malformed input item that was reported (and skipped, outside strict mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// The input file.
    pub path: String,
    /// 1-based line (0 when unknown, e.g. an element of a JSON array).
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// Everything one read produced.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct ReadOutput {
    /// Records read.
    pub records: Vec<Record>,
    /// Malformed items reported and skipped.
    pub problems: Vec<Problem>,
    /// Items skipped on purpose, counted by reason (`malformed` counts the problems).
    pub dropped: BTreeMap<String, usize>,
    /// Every file that was read, for the manifest's checksums.
    pub files: Vec<PathBuf>,
}

/// Collects records and problems while a reader runs; enforces strict mode.
pub(crate) struct Sink {
    strict: bool,
    out: ReadOutput,
}

impl Sink {
    pub(crate) fn new(strict: bool) -> Self {
        Sink {
            strict,
            out: ReadOutput::default(),
        }
    }

    /// Reports a malformed item: an error in strict mode, otherwise recorded and skipped.
    pub(crate) fn bad(
        &mut self,
        path: &Path,
        line: usize,
        message: impl Into<String>,
    ) -> Result<()> {
        let message = message.into();
        if self.strict {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                line,
                message,
            });
        }
        self.out.problems.push(Problem {
            path: path.display().to_string(),
            line,
            message,
        });
        *self.out.dropped.entry("malformed".into()).or_default() += 1;
        Ok(())
    }

    pub(crate) fn drop_reason(&mut self, reason: &str) {
        *self.out.dropped.entry(reason.into()).or_default() += 1;
    }

    pub(crate) fn push(&mut self, record: Record) {
        self.out.records.push(record);
    }

    pub(crate) fn file(&mut self, path: &Path) {
        self.out.files.push(path.to_path_buf());
    }

    /// Merges another sink's output (used after parallel reads).
    pub(crate) fn merge(&mut self, other: ReadOutput) -> Result<()> {
        if self.strict {
            if let Some(p) = other.problems.first() {
                return Err(Error::Malformed {
                    path: PathBuf::from(&p.path),
                    line: p.line,
                    message: p.message.clone(),
                });
            }
        }
        self.out.records.extend(other.records);
        self.out.problems.extend(other.problems);
        for (k, v) in other.dropped {
            *self.out.dropped.entry(k).or_default() += v;
        }
        self.out.files.extend(other.files);
        Ok(())
    }

    pub(crate) fn finish(self) -> ReadOutput {
        self.out
    }
}

/// Reads one source. `data_dir` resolves relative paths; `strict` makes the first malformed
/// item fatal.
pub fn read_source(source: &SourceConfig, data_dir: &Path, strict: bool) -> Result<ReadOutput> {
    let path = if source.path.is_absolute() {
        source.path.clone()
    } else {
        data_dir.join(&source.path)
    };
    if !path.exists() {
        return Err(Error::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "input not found"),
        ));
    }
    let mapped = matches!(source.format, Format::Csv | Format::Json | Format::Jsonl);
    if !mapped && !source.columns.is_empty() {
        return Err(Error::config(
            "sources.columns",
            format!(
                "a column mapping is only allowed for csv/json/jsonl, not {:?}",
                source.format
            ),
        ));
    }
    if mapped {
        for field in source.columns.keys() {
            if !MAPPABLE_FIELDS.contains(&field.as_str()) {
                return Err(Error::config(
                    "sources.columns",
                    format!(
                        "unknown record field `{field}` (known: {})",
                        MAPPABLE_FIELDS.join(", ")
                    ),
                ));
            }
        }
    }
    let name = source.source_name();
    let mut sink = Sink::new(strict);
    match source.format {
        Format::Csv => csv::read_mapped(&path, &name, source, &mut sink)?,
        Format::Mmlu => csv::read_mmlu(&path, &name, &mut sink)?,
        Format::Qpain => csv::read_qpain(&path, &name, &mut sink)?,
        Format::Json => json::read_mapped_json(&path, &name, &source.columns, &mut sink)?,
        Format::Jsonl => json::read_mapped_jsonl(&path, &name, &source.columns, &mut sink)?,
        Format::SpecialtyDir => json::read_specialty_dir(&path, &name, &mut sink)?,
        Format::Medmcqa => json::read_medmcqa(&path, &name, &mut sink)?,
        Format::Medqa => json::read_medqa(&path, &name, &mut sink)?,
        Format::Alpaca => json::read_alpaca(&path, &name, &mut sink)?,
        Format::Sharegpt => json::read_sharegpt(&path, &name, &mut sink)?,
        Format::Medquad => medquad::read_medquad(&path, &name, &mut sink)?,
        Format::Pubmedqa => {
            pubmedqa::read_pubmedqa(&path, &name, source.test_ids.as_deref(), &mut sink)?
        }
    }
    Ok(sink.finish())
}

/// Record fields a column mapping may name.
pub const MAPPABLE_FIELDS: &[&str] = &[
    "id",
    "question",
    "answer",
    "context",
    "options",
    "label",
    "specialty",
    "document_id",
    "focus",
    "category",
    "qtype",
    "explanation",
];

/// Sets one mapped field on a record from its text value(s).
pub(crate) fn set_field(record: &mut Record, field: &str, values: Vec<String>) {
    let first = || values.first().cloned().filter(|s| !s.is_empty());
    match field {
        "id" => record.id = first().unwrap_or_default(),
        "question" => record.question = first().unwrap_or_default(),
        "answer" => record.answer = first().unwrap_or_default(),
        "context" => record.context = first(),
        "label" => record.label = first(),
        "specialty" => record.specialty = first(),
        "document_id" => record.document_id = first(),
        "focus" => record.focus = first(),
        "category" => record.category = first(),
        "qtype" => record.qtype = first(),
        "explanation" => record.explanation = first(),
        "options" => record.options = values.into_iter().filter(|s| !s.is_empty()).collect(),
        _ => {}
    }
}

/// Files of a directory (or the file itself), sorted by name, filtered by extension.
pub(crate) fn list_files(path: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(|e| Error::io(path, e))? {
        let p = entry.map_err(|e| Error::io(path, e))?.path();
        if p.is_file() && p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext)) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Normalises a yes/no/maybe answer as written in sources ("Yes.", "NO") to lower case.
pub(crate) fn decision_word(s: &str) -> Option<String> {
    let w = s.trim().trim_end_matches('.').to_ascii_lowercase();
    matches!(w.as_str(), "yes" | "no" | "maybe").then_some(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_words() {
        assert_eq!(decision_word("Yes."), Some("yes".into()));
        assert_eq!(decision_word(" NO "), Some("no".into()));
        assert_eq!(decision_word("perhaps"), None);
    }

    #[test]
    fn source_name_defaults_to_format() {
        let s: SourceConfig = toml::from_str("format = \"specialty_dir\"\npath = \"x\"").unwrap();
        assert_eq!(s.source_name(), "specialty_dir");
    }

    #[test]
    fn unknown_config_key_is_rejected() {
        let r: std::result::Result<SourceConfig, _> =
            toml::from_str("format = \"csv\"\npath = \"x\"\ncolumnz = {}");
        assert!(r.is_err());
    }
}
