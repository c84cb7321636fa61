//! Every reader on small fixtures of our own, including malformed input.

use medtune_data::readers::{read_source, Format, ReadOutput, SourceConfig};
use medtune_data::Error;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn source(format: Format, path: &str) -> SourceConfig {
    SourceConfig {
        format,
        path: path.into(),
        name: None,
        columns: BTreeMap::new(),
        has_header: None,
        test_ids: None,
    }
}

fn read(src: &SourceConfig) -> ReadOutput {
    read_source(src, &fixtures(), false).unwrap()
}

#[test]
fn csv_with_header_reports_bad_row_with_line() {
    let out = read(&source(Format::Csv, "qa.csv"));
    assert_eq!(out.records.len(), 5);
    assert_eq!(out.records[0].question, "What is hypertension?");
    assert_eq!(out.problems.len(), 1);
    assert_eq!(out.problems[0].line, 6, "{:?}", out.problems[0]);
    assert!(out.problems[0].path.ends_with("qa.csv"));
    assert_eq!(out.dropped["malformed"], 1);
    let err = read_source(&source(Format::Csv, "qa.csv"), &fixtures(), true).unwrap_err();
    assert!(matches!(err, Error::Malformed { line: 6, .. }), "{err}");
}

#[test]
fn csv_column_mapping_and_unknown_column() {
    let mut src = source(Format::Csv, "mapped.csv");
    src.columns = [
        ("question", "Q"),
        ("answer", "A"),
        ("specialty", "Topic"),
        ("id", "Ref"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let out = read(&src);
    assert_eq!(out.records.len(), 2);
    assert_eq!(out.records[1].specialty.as_deref(), Some("endocrinology"));
    assert_eq!(out.records[1].id, "csv:r2");
    src.columns.insert("context".into(), "Notes".into());
    let err = read_source(&src, &fixtures(), false)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown column `Notes`") && err.contains("Q, A, Topic, Ref"),
        "{err}"
    );
    src.columns.insert("colour".into(), "Q".into());
    assert!(read_source(&src, &fixtures(), false)
        .unwrap_err()
        .to_string()
        .contains("unknown record field `colour`"));
}

#[test]
fn jsonl_mapping_with_nested_field_and_bad_line() {
    let mut src = source(Format::Jsonl, "mapped.jsonl");
    src.columns = [
        ("question", "query.text"),
        ("answer", "reply"),
        ("specialty", "area"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let out = read(&src);
    assert_eq!(out.records.len(), 2);
    assert_eq!(out.records[1].question, "What is tinnitus?");
    assert_eq!(out.problems[0].line, 2);
}

#[test]
fn specialty_directory() {
    let out = read(&source(Format::SpecialtyDir, "specialties"));
    assert_eq!(out.records.len(), 3);
    assert!(out
        .records
        .iter()
        .any(|r| r.specialty.as_deref() == Some("dermatology")));
    assert_eq!(out.problems.len(), 1, "the non-string answer is reported");
}

#[test]
fn medquad_counts_removed_answers_and_bad_files() {
    let out = read(&source(Format::Medquad, "medquad"));
    assert_eq!(out.records.len(), 2);
    assert_eq!(out.dropped["answer_removed"], 1);
    assert_eq!(out.problems.len(), 1);
    assert!(out.problems[0].path.ends_with("0000002_1.xml"));
    assert_eq!(out.problems[0].line, 9);
    let r = &out.records[0];
    assert_eq!(r.focus.as_deref(), Some("Imaginary Fever"));
    assert!(r.answer.contains("temperature & tiredness"));
    assert!(read_source(&source(Format::Medquad, "medquad"), &fixtures(), true).is_err());
}

#[test]
fn pubmedqa_with_official_test_ids() {
    let out = read(&source(Format::Pubmedqa, "pubmedqa/ori_pqal.json"));
    assert_eq!(out.records.len(), 3);
    let coffee = out
        .records
        .iter()
        .find(|r| r.document_id.as_deref() == Some("1002"))
        .unwrap();
    assert_eq!(coffee.fixed_split.as_deref(), Some("test"));
    assert_eq!(coffee.label.as_deref(), Some("no"));
    assert!(
        out.records
            .iter()
            .filter(|r| r.fixed_split.is_some())
            .count()
            == 1
    );
    assert_eq!(out.problems.len(), 1, "PMID 1004 lacks a decision");
}

#[test]
fn multiple_choice_sets() {
    let mcqa = read(&source(Format::Medmcqa, "medmcqa.json"));
    assert_eq!(mcqa.records.len(), 1);
    assert_eq!(mcqa.records[0].label.as_deref(), Some("C"));
    assert_eq!(mcqa.records[0].answer, "Vitamin C");
    assert_eq!(mcqa.problems[0].line, 2);
    let medqa = read(&source(Format::Medqa, "medqa.jsonl"));
    assert_eq!(medqa.records[0].options.len(), 4);
    assert_eq!(medqa.records[0].label.as_deref(), Some("A"));
    let mmlu = read(&source(Format::Mmlu, "mmlu"));
    assert_eq!(mmlu.records.len(), 2);
    assert_eq!(mmlu.records[1].answer, "Liver");
    assert_eq!(mmlu.records[1].specialty.as_deref(), Some("anatomy"));
    assert_eq!(mmlu.problems[0].line, 3);
}

#[test]
fn qpain_alpaca_sharegpt() {
    let q = read(&source(Format::Qpain, "qpain"));
    assert_eq!(q.records.len(), 2);
    assert_eq!(
        (q.records[0].answer.as_str(), q.records[0].dose.as_deref()),
        ("yes", Some("low"))
    );
    assert_eq!(
        (q.records[1].answer.as_str(), q.records[1].dose.as_deref()),
        ("no", None)
    );
    assert_eq!(q.records[0].specialty.as_deref(), Some("post_op"));
    let a = read(&source(Format::Alpaca, "alpaca.json"));
    assert_eq!(a.records.len(), 2);
    assert_eq!(
        a.records[1].context.as_deref(),
        Some("Invented note: patient is well.")
    );
    assert_eq!(a.problems.len(), 1);
    let s = read(&source(Format::Sharegpt, "sharegpt.json"));
    assert_eq!(s.records.len(), 2);
    assert_eq!(s.records[1].question, "What is a cough?");
    assert_eq!(s.dropped["later_turns_ignored"], 1);
    assert_eq!(s.problems.len(), 1);
}

#[test]
fn missing_input_is_an_error_naming_the_path() {
    let err = read_source(&source(Format::Csv, "nope.csv"), &fixtures(), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nope.csv"), "{err}");
}
