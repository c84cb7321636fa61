//! Metrics of a run: one JSON object per line in `metrics.jsonl` and the same rows in
//! `metrics.csv`, appended as the run goes (a crash loses at most the line being written).

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One logged row: a training step or an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// `train` or `eval`.
    pub kind: String,
    /// Optimizer steps done.
    pub step: u64,
    /// Fractional epoch.
    pub epoch: f64,
    /// Mean loss over supervised tokens (train: of this step; eval: of the eval set).
    pub loss: f64,
    /// exp(loss), for eval rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perplexity: Option<f64>,
    /// Learning rate used for this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Global gradient norm before clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
    /// Tokens (all positions, padding excluded) processed in this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Throughput of this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// Seconds since the run (or its resume) started.
    pub elapsed_s: f64,
}

const CSV_HEADER: &str =
    "kind,step,epoch,loss,perplexity,lr,grad_norm,tokens,tokens_per_s,elapsed_s";

/// Appends rows to `metrics.jsonl` and `metrics.csv` in a run directory.
pub struct MetricsLog {
    jsonl: PathBuf,
    csv: PathBuf,
    rows: Vec<MetricRow>,
}

impl MetricsLog {
    /// Opens the log of `dir`. A fresh run starts empty files; a resumed run keeps the rows up to
    /// `resume_step` and drops later ones (they belong to the interrupted attempt).
    pub fn open(dir: &Path, resume_step: Option<u64>) -> Result<Self> {
        let jsonl = dir.join("metrics.jsonl");
        let csv = dir.join("metrics.csv");
        let mut rows = Vec::new();
        if let Some(limit) = resume_step {
            if let Ok(text) = std::fs::read_to_string(&jsonl) {
                for (i, line) in text.lines().enumerate() {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let row: MetricRow = serde_json::from_str(line).map_err(|e| Error::Io {
                        path: jsonl.clone(),
                        message: format!("line {}: {e}", i + 1),
                    })?;
                    if row.step <= limit {
                        rows.push(row);
                    }
                }
            }
        }
        let log = MetricsLog { jsonl, csv, rows };
        log.rewrite()?;
        Ok(log)
    }

    /// All rows so far.
    pub fn rows(&self) -> &[MetricRow] {
        &self.rows
    }

    /// Appends one row to both files.
    pub fn push(&mut self, row: MetricRow) -> Result<()> {
        let mut line = serde_json::to_string(&row).map_err(|e| Error::Io {
            path: self.jsonl.clone(),
            message: e.to_string(),
        })?;
        line.push('\n');
        append(&self.jsonl, line.as_bytes())?;
        append(&self.csv, csv_line(&row).as_bytes())?;
        self.rows.push(row);
        Ok(())
    }

    fn rewrite(&self) -> Result<()> {
        let mut jsonl = String::new();
        let mut csv = format!("{CSV_HEADER}\n");
        for r in &self.rows {
            jsonl.push_str(&serde_json::to_string(r).unwrap_or_default());
            jsonl.push('\n');
            csv.push_str(&csv_line(r));
        }
        medtune_data::io::write_atomic(&self.jsonl, jsonl.as_bytes()).map_err(Error::data)?;
        medtune_data::io::write_atomic(&self.csv, csv.as_bytes()).map_err(Error::data)
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

fn csv_line(r: &MetricRow) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{}\n",
        r.kind,
        r.step,
        r.epoch,
        r.loss,
        opt(r.perplexity),
        opt(r.lr),
        opt(r.grad_norm),
        r.tokens.map(|t| t.to_string()).unwrap_or_default(),
        opt(r.tokens_per_s),
        r.elapsed_s
    )
}

fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    f.write_all(bytes).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, step: u64, loss: f64) -> MetricRow {
        MetricRow {
            kind: kind.into(),
            step,
            epoch: 0.0,
            loss,
            perplexity: None,
            lr: Some(1e-4),
            grad_norm: None,
            tokens: Some(10),
            tokens_per_s: None,
            elapsed_s: 0.5,
        }
    }

    #[test]
    fn resume_drops_rows_after_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetricsLog::open(dir.path(), None).unwrap();
        for s in 1..=4 {
            log.push(row("train", s, 2.0 / s as f64)).unwrap();
        }
        let log = MetricsLog::open(dir.path(), Some(2)).unwrap();
        assert_eq!(log.rows().len(), 2);
        let csv = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
        assert_eq!(csv.lines().count(), 3, "{csv}");
        assert!(csv.starts_with("kind,step"));
    }
}
