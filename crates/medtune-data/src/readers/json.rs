//! JSON readers: mapped JSON/JSONL, per-specialty `{question: answer}` files, MedMCQA, MedQA,
//! Alpaca and ShareGPT/messages.

use super::{list_files, set_field, Sink};
use crate::io::read_to_string;
use crate::{Error, Record, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Looks up a dotted path (`a.b.c`) in a JSON object.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.get(key))
}

/// The text values of a JSON value: a string, a number, or each element of an array.
fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items.iter().flat_map(texts).collect(),
        Value::Object(map) => map.values().flat_map(texts).collect(),
        other => vec![other.to_string()],
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Parses a whole file as JSON; a syntax error is reported with its line.
fn parse_file(path: &Path, sink: &mut Sink) -> Result<Option<Value>> {
    sink.file(path);
    let text = read_to_string(path)?;
    match serde_json::from_str(&text) {
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            sink.bad(path, e.line(), format!("invalid JSON: {e}"))?;
            Ok(None)
        }
    }
}

/// Calls `f(line_no, value)` for each non-empty line of a JSONL file; bad lines are reported.
fn each_line(
    path: &Path,
    sink: &mut Sink,
    mut f: impl FnMut(usize, &Value, &mut Sink) -> Result<()>,
) -> Result<()> {
    sink.file(path);
    let text = read_to_string(path)?;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(line) {
            Ok(v) => f(i + 1, &v, sink)?,
            Err(e) => sink.bad(path, i + 1, format!("invalid JSON line: {e}"))?,
        }
    }
    Ok(())
}

/// Builds a record from one JSON object with a field mapping (default `question`, `answer`).
fn mapped_record(
    v: &Value,
    name: &str,
    columns: &BTreeMap<String, String>,
    path: &Path,
    line: usize,
    fallback_id: String,
    sink: &mut Sink,
) -> Result<Option<Record>> {
    if !v.is_object() {
        sink.bad(path, line, "expected a JSON object")?;
        return Ok(None);
    }
    let mut mapping = columns.clone();
    for f in ["question", "answer"] {
        mapping
            .entry(f.to_string())
            .or_insert_with(|| f.to_string());
    }
    let mut rec = Record {
        source: name.to_string(),
        origin: Some(format!("{}:{line}", path.display())),
        ..Default::default()
    };
    for (field, spec) in &mapping {
        let mut values = Vec::new();
        for key in spec.split('|').map(str::trim) {
            match lookup(v, key) {
                Some(x) => values.extend(texts(x)),
                None if field == "question" || field == "answer" => {
                    let keys: Vec<&str> = v
                        .as_object()
                        .map(|m| m.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    return Err(Error::UnknownColumn {
                        path: path.to_path_buf(),
                        field: field.clone(),
                        column: key.to_string(),
                        available: format!("{} (line {line})", keys.join(", ")),
                    });
                }
                None => {}
            }
        }
        set_field(&mut rec, field, values);
    }
    rec.id = if rec.id.is_empty() {
        fallback_id
    } else {
        format!("{name}:{}", rec.id)
    };
    Ok(Some(rec))
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A JSON array of objects (or an object holding one array) with a field mapping.
pub(super) fn read_mapped_json(
    path: &Path,
    name: &str,
    columns: &BTreeMap<String, String>,
    sink: &mut Sink,
) -> Result<()> {
    for file in list_files(path, "json")? {
        let Some(doc) = parse_file(&file, sink)? else {
            continue;
        };
        let items = match &doc {
            Value::Array(a) => a.as_slice(),
            Value::Object(m) => match m.values().find(|x| x.is_array()) {
                Some(Value::Array(a)) => a.as_slice(),
                _ => {
                    sink.bad(&file, 1, "expected a JSON array of objects")?;
                    continue;
                }
            },
            _ => {
                sink.bad(&file, 1, "expected a JSON array of objects")?;
                continue;
            }
        };
        for (i, item) in items.iter().enumerate() {
            let id = format!("{name}:{}:{}", stem(&file), i + 1);
            if let Some(r) = mapped_record(item, name, columns, &file, 0, id, sink)? {
                sink.push(r);
            }
        }
    }
    Ok(())
}

/// JSON Lines with a field mapping.
pub(super) fn read_mapped_jsonl(
    path: &Path,
    name: &str,
    columns: &BTreeMap<String, String>,
    sink: &mut Sink,
) -> Result<()> {
    for file in list_files(path, "jsonl")?
        .into_iter()
        .chain(if path.is_dir() {
            list_files(path, "json")?
        } else {
            Vec::new()
        })
    {
        let st = stem(&file);
        each_line(&file, sink, |line, v, sink| {
            if let Some(r) = mapped_record(
                v,
                name,
                columns,
                &file,
                line,
                format!("{name}:{st}:{line}"),
                sink,
            )? {
                sink.push(r);
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// `dataset_with_answers_{specialty}.json` files, each a `{question: answer}` object.
pub(super) fn read_specialty_dir(path: &Path, name: &str, sink: &mut Sink) -> Result<()> {
    const PREFIX: &str = "dataset_with_answers_";
    for file in list_files(path, "json")? {
        let st = stem(&file);
        let Some(specialty) = st.strip_prefix(PREFIX) else {
            sink.drop_reason("file_name_not_dataset_with_answers");
            continue;
        };
        let Some(doc) = parse_file(&file, sink)? else {
            continue;
        };
        let Value::Object(map) = doc else {
            sink.bad(&file, 1, "expected an object {question: answer}")?;
            continue;
        };
        for (i, (q, a)) in map.iter().enumerate() {
            let Value::String(answer) = a else {
                sink.bad(
                    &file,
                    0,
                    format!("answer of question {:?} is not a string", truncate(q)),
                )?;
                continue;
            };
            sink.push(Record {
                id: format!("{name}:{specialty}:{}", i + 1),
                question: q.clone(),
                answer: answer.clone(),
                specialty: Some(specialty.to_string()),
                source: name.to_string(),
                origin: Some(file.display().to_string()),
                ..Default::default()
            });
        }
    }
    Ok(())
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// MedMCQA: `question, opa..opd, cop (1-based), exp, subject_name, choice_type, id`.
pub(super) fn read_medmcqa(path: &Path, name: &str, sink: &mut Sink) -> Result<()> {
    for file in list_files(path, "json")?
        .into_iter()
        .chain(if path.is_dir() {
            list_files(path, "jsonl")?
        } else {
            Vec::new()
        })
    {
        each_line(&file, sink, |line, v, sink| {
            let (Some(q), Some(cop)) = (
                str_field(v, "question"),
                v.get("cop").and_then(Value::as_u64),
            ) else {
                return sink.bad(&file, line, "missing `question` or integer `cop`");
            };
            let options: Vec<String> = ["opa", "opb", "opc", "opd"]
                .iter()
                .map(|k| str_field(v, k).unwrap_or_default())
                .collect();
            if !(1..=4).contains(&cop) {
                return sink.bad(&file, line, format!("`cop` = {cop} is not in 1..4"));
            }
            let idx = (cop - 1) as usize;
            let id = str_field(v, "id").unwrap_or_else(|| line.to_string());
            sink.push(Record {
                id: format!("{name}:{id}"),
                question: q,
                answer: options[idx].clone(),
                options,
                label: Some(Record::option_letter(idx).to_string()),
                specialty: str_field(v, "subject_name"),
                qtype: str_field(v, "choice_type"),
                explanation: str_field(v, "exp").filter(|s| !s.trim().is_empty()),
                source: name.to_string(),
                origin: Some(format!("{}:{line}", file.display())),
                ..Default::default()
            });
            Ok(())
        })?;
    }
    Ok(())
}

/// MedQA-USMLE: `question, options {A..}, answer, answer_idx, meta_info`.
pub(super) fn read_medqa(path: &Path, name: &str, sink: &mut Sink) -> Result<()> {
    for file in list_files(path, "jsonl")? {
        let st = stem(&file);
        each_line(&file, sink, |line, v, sink| {
            let (Some(q), Some(Value::Object(opts)), Some(letter)) = (
                str_field(v, "question"),
                v.get("options"),
                str_field(v, "answer_idx"),
            ) else {
                return sink.bad(
                    &file,
                    line,
                    "missing `question`, `options` object or `answer_idx`",
                );
            };
            let mut keys: Vec<&String> = opts.keys().collect();
            keys.sort();
            let options: Vec<String> = keys
                .iter()
                .map(|k| opts[*k].as_str().unwrap_or_default().to_string())
                .collect();
            let Some(idx) = keys.iter().position(|k| **k == letter) else {
                return sink.bad(
                    &file,
                    line,
                    format!("answer_idx `{letter}` is not an option key"),
                );
            };
            sink.push(Record {
                id: format!("{name}:{st}:{line}"),
                question: q,
                answer: options[idx].clone(),
                options,
                label: Some(letter),
                qtype: str_field(v, "meta_info"),
                source: name.to_string(),
                origin: Some(format!("{}:{line}", file.display())),
                ..Default::default()
            });
            Ok(())
        })?;
    }
    Ok(())
}

/// Alpaca: a JSON array of `{instruction, input, output}`; `input` becomes the context.
pub(super) fn read_alpaca(path: &Path, name: &str, sink: &mut Sink) -> Result<()> {
    for file in list_files(path, "json")? {
        let Some(doc) = parse_file(&file, sink)? else {
            continue;
        };
        let Value::Array(items) = doc else {
            sink.bad(&file, 1, "expected a JSON array")?;
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let (Some(q), Some(a)) = (str_field(item, "instruction"), str_field(item, "output"))
            else {
                sink.bad(
                    &file,
                    0,
                    format!("element {i}: missing `instruction` or `output`"),
                )?;
                continue;
            };
            sink.push(Record {
                id: format!("{name}:{}:{}", stem(&file), i + 1),
                question: q,
                answer: a,
                context: str_field(item, "input").filter(|s| !s.trim().is_empty()),
                source: name.to_string(),
                origin: Some(format!("{}#{i}", file.display())),
                ..Default::default()
            });
        }
    }
    Ok(())
}

/// ShareGPT (`conversations: [{from, value}]`) or messages (`messages: [{role, content}]`):
/// the first user turn and the assistant reply after it; later turns are counted, not used.
pub(super) fn read_sharegpt(path: &Path, name: &str, sink: &mut Sink) -> Result<()> {
    for file in list_files(path, "json")? {
        let Some(doc) = parse_file(&file, sink)? else {
            continue;
        };
        let Value::Array(items) = doc else {
            sink.bad(&file, 1, "expected a JSON array of conversations")?;
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let turns: Vec<(String, String)> =
                if let Some(Value::Array(c)) = item.get("conversations") {
                    c.iter()
                        .map(|t| {
                            (
                                str_field(t, "from").unwrap_or_default(),
                                str_field(t, "value").unwrap_or_default(),
                            )
                        })
                        .collect()
                } else if let Some(Value::Array(m)) = item.get("messages") {
                    m.iter()
                        .map(|t| {
                            (
                                str_field(t, "role").unwrap_or_default(),
                                str_field(t, "content").unwrap_or_default(),
                            )
                        })
                        .collect()
                } else {
                    sink.bad(
                        &file,
                        0,
                        format!("element {i}: no `conversations` or `messages` array"),
                    )?;
                    continue;
                };
            let is_user = |r: &str| matches!(r, "human" | "user");
            let is_bot = |r: &str| matches!(r, "gpt" | "assistant");
            let Some(u) = turns.iter().position(|(r, _)| is_user(r)) else {
                sink.bad(&file, 0, format!("element {i}: no user turn"))?;
                continue;
            };
            let Some((_, answer)) = turns.get(u + 1).filter(|(r, _)| is_bot(r)) else {
                sink.bad(
                    &file,
                    0,
                    format!("element {i}: user turn not followed by an assistant turn"),
                )?;
                continue;
            };
            let extra = turns.len().saturating_sub(u + 2);
            if extra > 0 {
                sink.drop_reason("later_turns_ignored");
            }
            sink.push(Record {
                id: format!("{name}:{}:{}", stem(&file), i + 1),
                question: turns[u].1.clone(),
                answer: answer.clone(),
                source: name.to_string(),
                origin: Some(format!("{}#{i}", file.display())),
                ..Default::default()
            });
        }
    }
    Ok(())
}
