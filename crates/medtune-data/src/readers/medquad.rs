//! MedQuAD: one XML `<Document>` per file with `<Focus>`, annotations and `<QAPairs>`.
//!
//! Pairs whose `<Answer>` is empty (answers removed for copyright in the MedlinePlus ADAM, Drugs
//! and Herbs subsets) are skipped and counted as `answer_removed`. Files are parsed in parallel.

use super::{list_files, ReadOutput, Sink};
use crate::io::line_of;
use crate::{Error, Record, Result};
use quick_xml::events::Event;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// All XML files below `root`, sorted (MedQuAD nests one folder per subset).
fn xml_files(root: &Path) -> Result<Vec<PathBuf>> {
    if root.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = list_files(root, "xml")?;
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let p = entry.map_err(|e| Error::io(root, e))?.path();
        if p.is_dir() {
            dirs.push(p);
        }
    }
    dirs.sort();
    for d in dirs {
        out.extend(xml_files(&d)?);
    }
    Ok(out)
}

pub(super) fn read_medquad(root: &Path, name: &str, sink: &mut Sink) -> Result<()> {
    let files = xml_files(root)?;
    let parts: Vec<ReadOutput> = files
        .par_iter()
        .map(|f| {
            let mut local = Sink::new(false);
            local.file(f);
            match std::fs::read(f) {
                Ok(bytes) => parse_document(&bytes, f, name, &mut local),
                Err(e) => {
                    // A file we cannot read is a malformed input like any other.
                    let _ = local.bad(f, 0, format!("cannot read: {e}"));
                }
            }
            local.finish()
        })
        .collect();
    for p in parts {
        sink.merge(p)?;
    }
    Ok(())
}

/// Which text-bearing element we are inside.
#[derive(Clone, Copy, PartialEq)]
enum In {
    Other,
    Focus,
    Category,
    SemanticGroup,
    Question,
    Answer,
}

#[derive(Default)]
struct Doc {
    id: String,
    source: String,
    focus: String,
    category: String,
    semantic_group: String,
}

struct Pair {
    qid: String,
    qtype: String,
    question: String,
    answer: String,
    line: usize,
}

/// Parses one MedQuAD document; a malformed file is reported (whole file skipped).
fn parse_document(bytes: &[u8], path: &Path, name: &str, sink: &mut Sink) {
    match parse_pairs(bytes) {
        Ok((doc, pairs)) => {
            for p in pairs {
                if p.answer.trim().is_empty() {
                    sink.drop_reason("answer_removed");
                    continue;
                }
                let qid = if p.qid.is_empty() {
                    format!("{}-{}", doc.id, p.line)
                } else {
                    p.qid
                };
                let id = if doc.source.is_empty() {
                    qid
                } else {
                    format!("{}:{qid}", doc.source)
                };
                let group = if doc.semantic_group.is_empty() {
                    &doc.category
                } else {
                    &doc.semantic_group
                };
                sink.push(Record {
                    id: format!("{name}:{id}"),
                    question: p.question,
                    answer: p.answer,
                    specialty: Some(doc.source.clone()).filter(|s| !s.is_empty()),
                    source: name.to_string(),
                    document_id: Some(doc.id.clone()).filter(|s| !s.is_empty()),
                    focus: Some(doc.focus.trim().to_string()).filter(|s| !s.is_empty()),
                    category: Some(group.clone()).filter(|s| !s.is_empty()),
                    qtype: Some(p.qtype).filter(|s| !s.is_empty()),
                    origin: Some(format!("{}:{}", path.display(), p.line)),
                    ..Default::default()
                });
            }
        }
        Err((pos, msg)) => {
            // Non-strict sink: `bad` only records.
            let _ = sink.bad(path, line_of(bytes, pos), msg);
        }
    }
}

/// Returns the document header and its pairs, or (byte position, message) of the first error.
fn parse_pairs(bytes: &[u8]) -> std::result::Result<(Doc, Vec<Pair>), (usize, String)> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut doc = Doc::default();
    let mut pairs: Vec<Pair> = Vec::new();
    let mut inside = In::Other;
    let mut saw_document = false;
    let err = |r: &quick_xml::Reader<&[u8]>, e: &dyn std::fmt::Display| {
        (r.error_position() as usize, e.to_string())
    };
    loop {
        let event = reader.read_event().map_err(|e| err(&reader, &e))?;
        match event {
            Event::Start(e) | Event::Empty(e) => {
                let tag = e.name();
                let attr = |key: &[u8]| -> String {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == key)
                        .and_then(|a| a.unescape_value().ok().map(|v| v.into_owned()))
                        .unwrap_or_default()
                };
                // A few files use older tag names (`<doc docid corpus>`, `<doctitle-focus>`,
                // `<pair>`, lower-case tags, `<DiseaseFile fid>`); accept them all.
                inside = match tag.as_ref().to_ascii_lowercase().as_slice() {
                    b"document" | b"doc" | b"diseasefile" => {
                        saw_document = true;
                        doc.id = [attr(b"id"), attr(b"docid"), attr(b"fid")]
                            .into_iter()
                            .find(|v| !v.is_empty())
                            .unwrap_or_default();
                        doc.source = [attr(b"source"), attr(b"corpus")]
                            .into_iter()
                            .find(|v| !v.is_empty())
                            .unwrap_or_default();
                        In::Other
                    }
                    b"focus" | b"doctitle-focus" => In::Focus,
                    b"category" => In::Category,
                    b"semanticgroup" => In::SemanticGroup,
                    b"question" => {
                        pairs.push(Pair {
                            qid: attr(b"qid"),
                            qtype: attr(b"qtype"),
                            question: String::new(),
                            answer: String::new(),
                            line: line_of(bytes, reader.buffer_position() as usize),
                        });
                        In::Question
                    }
                    b"answer" => In::Answer,
                    _ => In::Other,
                };
            }
            Event::End(_) => inside = In::Other,
            Event::Text(t) => {
                let s = t.decode().map_err(|e| err(&reader, &e))?;
                push_text(&mut doc, &mut pairs, inside, &s);
            }
            Event::CData(t) => {
                let s = t.decode().map_err(|e| err(&reader, &e))?;
                push_text(&mut doc, &mut pairs, inside, &s);
            }
            Event::GeneralRef(r) => {
                let s = match r.resolve_char_ref().map_err(|e| err(&reader, &e))? {
                    Some(c) => c.to_string(),
                    None => {
                        let n = r.decode().map_err(|e| err(&reader, &e))?;
                        match n.as_ref() {
                            "amp" => "&".into(),
                            "lt" => "<".into(),
                            "gt" => ">".into(),
                            "quot" => "\"".into(),
                            "apos" => "'".into(),
                            other => format!("&{other};"),
                        }
                    }
                };
                push_text(&mut doc, &mut pairs, inside, &s);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_document {
        return Err((0, "no <Document> element".into()));
    }
    Ok((doc, pairs))
}

fn push_text(doc: &mut Doc, pairs: &mut [Pair], inside: In, s: &str) {
    match inside {
        In::Focus => doc.focus.push_str(s),
        In::Category => doc.category.push_str(s),
        In::SemanticGroup if doc.semantic_group.is_empty() => doc.semantic_group.push_str(s),
        In::Question => {
            if let Some(p) = pairs.last_mut() {
                p.question.push_str(s);
            }
        }
        In::Answer => {
            if let Some(p) = pairs.last_mut() {
                p.answer.push_str(s);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document id="0000009_1" source="TestSrc" url="x">
<Focus>Made-up Fever</Focus>
<FocusAnnotations><UMLS><SemanticGroup>Disorders</SemanticGroup></UMLS></FocusAnnotations>
<QAPairs>
  <QAPair pid="1"><Question qid="0000009_1-1" qtype="information">What is (are) Made-up Fever ?</Question>
  <Answer>A fever &amp; rash we wrote for this test &#x263A;.</Answer></QAPair>
  <QAPair pid="2"><Question qid="0000009_1-2" qtype="treatment">How to treat it ?</Question><Answer></Answer></QAPair>
</QAPairs>
</Document>"#;

    #[test]
    fn parses_pairs_entities_and_counts_removed_answers() {
        let mut sink = Sink::new(false);
        parse_document(DOC.as_bytes(), Path::new("t.xml"), "medquad", &mut sink);
        let out = sink.finish();
        assert_eq!(out.records.len(), 1);
        let r = &out.records[0];
        assert_eq!(r.id, "medquad:TestSrc:0000009_1-1");
        assert_eq!(r.answer, "A fever & rash we wrote for this test \u{263A}.");
        assert_eq!(r.focus.as_deref(), Some("Made-up Fever"));
        assert_eq!(r.category.as_deref(), Some("Disorders"));
        assert_eq!(r.qtype.as_deref(), Some("information"));
        assert_eq!(r.specialty.as_deref(), Some("TestSrc"));
        assert_eq!(out.dropped.get("answer_removed"), Some(&1));
    }

    #[test]
    fn older_tag_names() {
        let old = "<doc docid=\"0000042\" corpus=\"NINDS\"><doctitle-focus>X</doctitle-focus><qaPairs><pair pid=\"1\">\
                   <question qid=\"0000042-1\" qtype=\"information\">what is x ?</question><answer>An old-format answer.</answer></pair></qaPairs></doc>";
        let mut sink = Sink::new(false);
        parse_document(old.as_bytes(), Path::new("old.xml"), "medquad", &mut sink);
        let out = sink.finish();
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(out.records[0].id, "medquad:NINDS:0000042-1");
        assert_eq!(out.records[0].focus.as_deref(), Some("X"));
        assert_eq!(out.records[0].answer, "An old-format answer.");
    }

    #[test]
    fn malformed_xml_reports_its_line() {
        let bad = "<Document id=\"1\">\n<Focus>x</Focus>\n<QAPairs>\n</Oops>\n</Document>";
        let mut sink = Sink::new(false);
        parse_document(bad.as_bytes(), Path::new("bad.xml"), "medquad", &mut sink);
        let out = sink.finish();
        assert_eq!(out.problems.len(), 1);
        assert_eq!(out.problems[0].line, 4, "{:?}", out.problems[0]);
    }
}
