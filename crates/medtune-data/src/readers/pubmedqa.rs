//! PubMedQA PQA-L: `ori_pqal.json` keyed by PMID, plus the official test ids.

use super::{decision_word, Sink};
use crate::io::read_to_string;
use crate::{Error, Record, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// Reads `path` (the `ori_pqal.json` file, or a directory holding it). Ids listed in
/// `test_ids` (default `test_ground_truth.json` beside it, if present) get `fixed_split = test`.
pub(super) fn read_pubmedqa(
    path: &Path,
    name: &str,
    test_ids: Option<&Path>,
    sink: &mut Sink,
) -> Result<()> {
    let file = if path.is_dir() {
        path.join("ori_pqal.json")
    } else {
        path.to_path_buf()
    };
    let dir = file.parent().unwrap_or(Path::new("."));
    let truth = match test_ids {
        Some(p) if p.is_absolute() => Some(p.to_path_buf()),
        Some(p) => Some(dir.join(p)),
        None => Some(dir.join("test_ground_truth.json")).filter(|p| p.exists()),
    };
    let mut test: BTreeSet<String> = BTreeSet::new();
    if let Some(t) = &truth {
        sink.file(t);
        let text = read_to_string(t)?;
        let v: Value = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            path: t.clone(),
            line: e.line(),
            message: e.to_string(),
        })?;
        let Value::Object(m) = v else {
            return Err(Error::Malformed {
                path: t.clone(),
                line: 1,
                message: "expected an object {pmid: decision}".into(),
            });
        };
        test.extend(m.keys().cloned());
    }
    sink.file(&file);
    let text = read_to_string(&file)?;
    let doc: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => return sink.bad(&file, e.line(), format!("invalid JSON: {e}")),
    };
    let Value::Object(items) = doc else {
        return sink.bad(&file, 1, "expected an object keyed by PMID");
    };
    for (pmid, item) in &items {
        let q = item.get("QUESTION").and_then(Value::as_str);
        let decision = item
            .get("final_decision")
            .and_then(Value::as_str)
            .and_then(decision_word);
        let (Some(q), Some(decision)) = (q, decision) else {
            sink.bad(
                &file,
                0,
                format!("PMID {pmid}: missing QUESTION or final_decision yes/no/maybe"),
            )?;
            continue;
        };
        let contexts: Vec<&str> = item
            .get("CONTEXTS")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        sink.push(Record {
            id: format!("{name}:{pmid}"),
            question: q.to_string(),
            answer: decision.clone(),
            context: Some(contexts.join("\n\n")).filter(|s| !s.is_empty()),
            label: Some(decision),
            source: name.to_string(),
            document_id: Some(pmid.clone()),
            explanation: item
                .get("LONG_ANSWER")
                .and_then(Value::as_str)
                .map(str::to_owned),
            fixed_split: test.contains(pmid).then(|| "test".to_string()),
            origin: Some(format!("{}#{pmid}", file.display())),
            ..Default::default()
        });
    }
    Ok(())
}
