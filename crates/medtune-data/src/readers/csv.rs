//! CSV readers: mapped `question,answer` CSVs, MMLU (no header) and Q-Pain.

use super::{decision_word, list_files, set_field, Sink, SourceConfig};
use crate::{Error, Record, Result};
use std::path::Path;

/// Opens a CSV reader over `path`; rows must all have the same number of fields.
fn open(path: &Path, has_header: bool) -> Result<::csv::Reader<std::fs::File>> {
    ::csv::ReaderBuilder::new()
        .has_headers(has_header)
        .flexible(false)
        .from_path(path)
        .map_err(|e| Error::Malformed {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        })
}

/// Line of a CSV error, when the csv crate knows it.
fn error_line(e: &::csv::Error) -> usize {
    e.position().map(|p| p.line() as usize).unwrap_or(0)
}

/// A CSV with a header and a column mapping (default `question` and `answer` columns).
pub(super) fn read_mapped(
    path: &Path,
    name: &str,
    source: &SourceConfig,
    sink: &mut Sink,
) -> Result<()> {
    let has_header = source.has_header.unwrap_or(true);
    let mut mapping = source.columns.clone();
    for f in ["question", "answer"] {
        if !mapping.contains_key(f) {
            let default = if has_header {
                f.to_string()
            } else {
                ["0", "1"][(f == "answer") as usize].to_string()
            };
            mapping.insert(f.to_string(), default);
        }
    }
    for file in list_files(path, "csv")? {
        sink.file(&file);
        let mut reader = open(&file, has_header)?;
        let headers: Vec<String> = if has_header {
            reader
                .headers()
                .map_err(|e| Error::Malformed {
                    path: file.clone(),
                    line: 1,
                    message: e.to_string(),
                })?
                .iter()
                .map(|h| h.trim().to_string())
                .collect()
        } else {
            Vec::new()
        };
        // Resolve every mapped column to its index once; unknown columns are a clear error.
        let mut resolved: Vec<(String, Vec<usize>)> = Vec::new();
        for (field, spec) in &mapping {
            let mut idx = Vec::new();
            for col in spec.split('|').map(str::trim) {
                let found = if has_header {
                    headers.iter().position(|h| h == col)
                } else {
                    col.parse::<usize>().ok()
                };
                match found {
                    Some(i) => idx.push(i),
                    None => {
                        return Err(Error::UnknownColumn {
                            path: file.clone(),
                            field: field.clone(),
                            column: col.to_string(),
                            available: if has_header {
                                headers.join(", ")
                            } else {
                                "0-based indices".into()
                            },
                        })
                    }
                }
            }
            resolved.push((field.clone(), idx));
        }
        for (row_no, row) in reader.records().enumerate() {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    sink.bad(&file, error_line(&e), e.to_string())?;
                    continue;
                }
            };
            let line = row.position().map(|p| p.line() as usize).unwrap_or(0);
            let mut rec = Record {
                source: name.to_string(),
                origin: Some(format!("{}:{line}", file.display())),
                ..Default::default()
            };
            for (field, idx) in &resolved {
                let mut values = Vec::with_capacity(idx.len());
                for &i in idx {
                    match row.get(i) {
                        Some(v) => values.push(v.to_string()),
                        None => {
                            sink.bad(
                                &file,
                                line,
                                format!("column {i} missing for field `{field}`"),
                            )?;
                            values.clear();
                            break;
                        }
                    }
                }
                set_field(&mut rec, field, values);
            }
            if rec.id.is_empty() {
                rec.id = format!("{name}:{}:{}", stem(&file), row_no + 1);
            } else {
                rec.id = format!("{name}:{}", rec.id);
            }
            sink.push(rec);
        }
    }
    Ok(())
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// MMLU: `question,A,B,C,D,answer` without header; the subject comes from the file name.
pub(super) fn read_mmlu(path: &Path, name: &str, sink: &mut Sink) -> Result<()> {
    for file in list_files(path, "csv")? {
        sink.file(&file);
        let subject = stem(&file)
            .trim_end_matches("_test")
            .trim_end_matches("_dev")
            .to_string();
        let mut reader = open(&file, false)?;
        for (row_no, row) in reader.records().enumerate() {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    sink.bad(&file, error_line(&e), e.to_string())?;
                    continue;
                }
            };
            let line = row.position().map(|p| p.line() as usize).unwrap_or(0);
            if row.len() != 6 {
                sink.bad(
                    &file,
                    line,
                    format!(
                        "expected 6 columns (question,A,B,C,D,answer), got {}",
                        row.len()
                    ),
                )?;
                continue;
            }
            let letter = row[5].trim().to_ascii_uppercase();
            let Some(idx) = ["A", "B", "C", "D"].iter().position(|l| *l == letter) else {
                sink.bad(
                    &file,
                    line,
                    format!("answer column `{}` is not one of A-D", &row[5]),
                )?;
                continue;
            };
            let options: Vec<String> = (1..5).map(|i| row[i].to_string()).collect();
            sink.push(Record {
                id: format!("{name}:{subject}:{}", row_no + 1),
                question: row[0].to_string(),
                answer: options[idx].clone(),
                options,
                label: Some(letter),
                specialty: Some(subject.clone()),
                source: name.to_string(),
                origin: Some(format!("{}:{line}", file.display())),
                ..Default::default()
            });
        }
    }
    Ok(())
}

/// Parses a Q-Pain dosage cell (`Low (0.5 mg)`, `High (4 weeks)`, `N/A`) into a dose class.
fn dose_class(cell: &str) -> Option<String> {
    let w = cell.trim().to_ascii_lowercase();
    if w.starts_with("low") {
        Some("low".into())
    } else if w.starts_with("high") {
        Some("high".into())
    } else {
        None
    }
}

/// Q-Pain: `Vignette,Question,Answer,Dosage,Explanation`; the pain context comes from the
/// file name (`data_acute_cancer.csv` → `acute_cancer`).
pub(super) fn read_qpain(path: &Path, name: &str, sink: &mut Sink) -> Result<()> {
    const COLUMNS: [&str; 5] = ["Vignette", "Question", "Answer", "Dosage", "Explanation"];
    for file in list_files(path, "csv")? {
        sink.file(&file);
        let context = stem(&file).trim_start_matches("data_").to_string();
        let mut reader = open(&file, true)?;
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| Error::Malformed {
                path: file.clone(),
                line: 1,
                message: e.to_string(),
            })?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut idx = [0usize; 5];
        for (slot, col) in idx.iter_mut().zip(COLUMNS) {
            *slot = headers
                .iter()
                .position(|h| h == col)
                .ok_or_else(|| Error::UnknownColumn {
                    path: file.clone(),
                    field: col.to_ascii_lowercase(),
                    column: col.to_string(),
                    available: headers.join(", "),
                })?;
        }
        for (row_no, row) in reader.records().enumerate() {
            let row = match row {
                Ok(r) => r,
                Err(e) => {
                    sink.bad(&file, error_line(&e), e.to_string())?;
                    continue;
                }
            };
            let line = row.position().map(|p| p.line() as usize).unwrap_or(0);
            let Some(decision) = decision_word(&row[idx[2]]) else {
                sink.bad(
                    &file,
                    line,
                    format!("Answer `{}` is not Yes/No", &row[idx[2]]),
                )?;
                continue;
            };
            let dose = if decision == "yes" {
                dose_class(&row[idx[3]])
            } else {
                None
            };
            sink.push(Record {
                id: format!("{name}:{context}:{}", row_no + 1),
                question: row[idx[1]].to_string(),
                answer: decision.clone(),
                context: Some(row[idx[0]].to_string()),
                label: Some(decision),
                specialty: Some(context.clone()),
                source: name.to_string(),
                qtype: Some("dosing".into()),
                dose,
                explanation: Some(row[idx[4]].to_string()).filter(|s| !s.trim().is_empty()),
                origin: Some(format!("{}:{line}", file.display())),
                ..Default::default()
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dose_classes() {
        assert_eq!(dose_class("Low (0.5 mg)"), Some("low".into()));
        assert_eq!(dose_class("High (4 weeks)"), Some("high".into()));
        assert_eq!(dose_class("N/A"), None);
    }
}
