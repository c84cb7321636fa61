//! Run directories: find them under a root, read each one's `manifest.json` and `metrics.jsonl`,
//! summarise and compare them (the library side of `medtune runs list|show|compare` and of the
//! provenance that `medtune serve` shows).
//!
//! A run directory is any directory holding a run `manifest.json` (one with `code_version` or
//! `base_model` and no `kind` other than `run`; a dataset's `manifest.json` from `medtune data
//! prepare` and an evaluation report's (`"kind": "evaluation"`) are not runs). The
//! `checkpoints/`, `best/` and `adapter/` directories of a run hold copies of its manifest, and a
//! run's `train/` directory is the training run that `medtune demo` extends into its own
//! manifest; none of them is listed as a run of its own. A run whose manifest or metrics cannot be read is still
//! returned, flagged with [`Problem`]s that name the file, so one bad run does not hide the others.

use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::TrainConfig;
use crate::log::MetricRow;
use crate::manifest::RunManifest;
use crate::{Error, Result};

/// File name of a run manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of a run's metrics log.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Sub-directories of a run that hold copies (or, for a demo's `train/`, the training part) of
/// its manifest, not runs of their own.
pub const RUN_PARTS: [&str; 4] = ["checkpoints", "best", "adapter", "train"];
/// How many directory levels below the root [`discover`] searches by default.
pub const DEFAULT_MAX_DEPTH: usize = 4;

/// The hyper-parameters shown in summaries (`medtune serve`, `runs show`), as flattened keys of
/// the run configuration.
pub const KEY_HYPER_PARAMETERS: [&str; 17] = [
    "model.quantization",
    "model.compute_dtype",
    "lora.r",
    "lora.lora_alpha",
    "lora.lora_dropout",
    "lora.target_modules",
    "optim.name",
    "optim.lr",
    "optim.weight_decay",
    "schedule.kind",
    "train.epochs",
    "train.max_steps",
    "train.batch_size",
    "train.grad_accum",
    "train.seed",
    "data.max_seq_len",
    "data.template",
];

/// Keys of the `train` results section that [`RunMetrics`] already shows.
const TRAIN_RESULT_KEYS: [&str; 8] = [
    "steps",
    "total_steps",
    "initial_eval_loss",
    "final_eval_loss",
    "best_eval_loss",
    "best_step",
    "final_train_loss",
    "adapter_dir",
];

/// What a `manifest.json` turned out to be.
#[derive(Debug, Clone)]
pub enum ManifestFile {
    /// A run manifest.
    Run(Box<RunManifest>),
    /// Valid JSON that is not a run manifest (e.g. a prepared dataset's manifest).
    Other(Value),
}

/// Reads a `manifest.json`. Malformed JSON, and a run manifest with missing or mistyped fields,
/// give an error naming the file (and the line, column and field that serde reports).
pub fn read_manifest(path: &Path) -> Result<ManifestFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| Error::io(path, format!("malformed JSON: {e}")))?;
    let Some(obj) = value.as_object() else {
        return Err(Error::io(path, "expected a JSON object"));
    };
    // An evaluation report's manifest (`"kind": "evaluation"`) or a dataset's is not a run.
    let other_kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "run");
    if other_kind || (!obj.contains_key("code_version") && !obj.contains_key("base_model")) {
        return Ok(ManifestFile::Other(value));
    }
    let manifest: RunManifest = serde_json::from_str(&text)
        .map_err(|e| Error::io(path, format!("not a valid run manifest: {e}")))?;
    Ok(ManifestFile::Run(Box::new(manifest)))
}

/// Where a run's metrics came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricsSource {
    /// `metrics.jsonl` in the run directory.
    MetricsLog,
    /// The `train` results section of the manifest (e.g. a demo report directory).
    Manifest,
    /// Neither was found.
    #[default]
    None,
}

/// Training metrics of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunMetrics {
    /// Optimizer steps done.
    pub steps: Option<u64>,
    /// Optimizer steps planned (from the manifest).
    pub total_steps: Option<u64>,
    /// Eval loss before the first step.
    pub initial_eval_loss: Option<f64>,
    /// Lowest eval loss after training started, and its step.
    pub best_eval_loss: Option<f64>,
    pub best_step: Option<u64>,
    /// The last eval loss.
    pub final_eval_loss: Option<f64>,
    /// The last training-step loss.
    pub final_train_loss: Option<f64>,
    /// Evaluations logged.
    pub eval_points: usize,
    /// Where these numbers came from.
    pub source: MetricsSource,
}

impl RunMetrics {
    /// Metrics from logged rows: the best eval loss is the lowest one after step 0 (as the
    /// trainer picks `best/`), or the step-0 one when it is the only evaluation.
    pub fn from_rows(rows: &[MetricRow]) -> Self {
        let evals: Vec<&MetricRow> = rows.iter().filter(|r| r.kind == "eval").collect();
        let trains: Vec<&MetricRow> = rows.iter().filter(|r| r.kind == "train").collect();
        let after_start: Vec<&MetricRow> = evals.iter().copied().filter(|r| r.step > 0).collect();
        let candidates = if after_start.is_empty() {
            evals.clone()
        } else {
            after_start
        };
        // The first of equal losses, as the trainer keeps the first improvement.
        let best = candidates
            .into_iter()
            .fold(None::<&MetricRow>, |b, r| match b {
                Some(b) if b.loss <= r.loss => Some(b),
                _ => Some(r),
            });
        RunMetrics {
            steps: rows.iter().map(|r| r.step).max(),
            total_steps: None,
            initial_eval_loss: evals.iter().find(|r| r.step == 0).map(|r| r.loss),
            best_eval_loss: best.map(|r| r.loss),
            best_step: best.map(|r| r.step),
            final_eval_loss: evals.last().map(|r| r.loss),
            final_train_loss: trains.last().map(|r| r.loss),
            eval_points: evals.len(),
            source: MetricsSource::MetricsLog,
        }
    }

    /// Metrics from the `train` results section of a manifest (the keys of a serialized
    /// `TrainSummary`); `None` when the manifest has no such section.
    pub fn from_manifest(m: &RunManifest) -> Option<Self> {
        let t = m.results.get("train")?.as_object()?;
        let f = |k: &str| t.get(k).and_then(Value::as_f64);
        let u = |k: &str| t.get(k).and_then(Value::as_u64);
        Some(RunMetrics {
            steps: u("steps"),
            total_steps: u("total_steps"),
            initial_eval_loss: f("initial_eval_loss"),
            best_eval_loss: f("best_eval_loss"),
            best_step: u("best_step"),
            final_eval_loss: f("final_eval_loss"),
            final_train_loss: f("final_train_loss"),
            eval_points: 0,
            source: MetricsSource::Manifest,
        })
    }
}

/// Reads `metrics.jsonl` rows; an unparsable line is an error naming the file and line.
pub fn read_metrics_log(path: &Path) -> Result<Vec<MetricRow>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: MetricRow = serde_json::from_str(line)
            .map_err(|e| Error::io(path, format!("line {}: {e}", i + 1)))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Something wrong with a run, naming the file at fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The file or directory.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl From<Error> for Problem {
    fn from(e: Error) -> Self {
        match e {
            Error::Io { path, message } => Problem { path, message },
            other => Problem {
                path: PathBuf::new(),
                message: other.to_string(),
            },
        }
    }
}

/// One run directory as read from disk.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The directory relative to the root it was found under (`.` for the root itself).
    pub name: String,
    /// The directory.
    pub dir: PathBuf,
    /// The manifest, when it could be read.
    pub manifest: Option<RunManifest>,
    /// Training metrics (from `metrics.jsonl`, else from the manifest's results).
    pub metrics: RunMetrics,
    /// When the run was set up (seconds since the Unix epoch).
    pub created_unix_s: Option<u64>,
    /// What could not be read; a run with problems is shown flagged.
    pub problems: Vec<Problem>,
}

impl RunRecord {
    /// Whether something about this run could not be read.
    pub fn is_flagged(&self) -> bool {
        !self.problems.is_empty()
    }
}

/// Reads the run in `dir` leniently: `None` when `dir` holds no run manifest (none, or one of
/// another kind); otherwise a record, flagged with the problems met.
pub fn inspect(dir: &Path, name: &str) -> Option<RunRecord> {
    let manifest_path = dir.join(MANIFEST_FILE);
    if !manifest_path.is_file() {
        return None;
    }
    let mut problems = Vec::new();
    let manifest = match read_manifest(&manifest_path) {
        Ok(ManifestFile::Run(m)) => Some(*m),
        Ok(ManifestFile::Other(_)) => return None,
        Err(e) => {
            problems.push(Problem::from(e));
            None
        }
    };
    let from_manifest = manifest.as_ref().and_then(RunMetrics::from_manifest);
    let log_path = dir.join(METRICS_FILE);
    let mut metrics = if log_path.is_file() {
        match read_metrics_log(&log_path) {
            Ok(rows) => RunMetrics::from_rows(&rows),
            Err(e) => {
                problems.push(Problem::from(e));
                RunMetrics::default()
            }
        }
    } else {
        from_manifest.clone().unwrap_or_default()
    };
    if metrics.total_steps.is_none() {
        metrics.total_steps = from_manifest.and_then(|m| m.total_steps);
    }
    let created_unix_s = manifest
        .as_ref()
        .and_then(|m| m.created_unix_s)
        .or_else(|| modified_unix_s(&dir.join("train_config.toml")))
        .or_else(|| modified_unix_s(&manifest_path));
    Some(RunRecord {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        manifest,
        metrics,
        created_unix_s,
        problems,
    })
}

/// Reads the run in `dir` strictly: an error names the file when the manifest is missing,
/// malformed or not a run manifest, or when `metrics.jsonl` has a bad line.
pub fn read_run(dir: &Path) -> Result<RunRecord> {
    let path = dir.join(MANIFEST_FILE);
    if !path.is_file() {
        return Err(Error::io(&path, "no run manifest here"));
    }
    let name = dir.display().to_string();
    let Some(record) = inspect(dir, &name) else {
        return Err(Error::io(
            &path,
            "not a run manifest (no `code_version` or `base_model`)",
        ));
    };
    if let Some(p) = record.problems.first() {
        return Err(Error::Io {
            path: p.path.clone(),
            message: p.message.clone(),
        });
    }
    Ok(record)
}

/// Finds the run directories under `root` (the root included), at most `max_depth` levels down,
/// skipping hidden directories and the [`RUN_PARTS`] of a run.
/// Sorted by name. An unreadable run comes back flagged; only an unreadable root is an error.
pub fn discover(root: &Path, max_depth: usize) -> Result<Vec<RunRecord>> {
    if !root.is_dir() {
        return Err(Error::io(root, "not a directory"));
    }
    std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    let mut out = Vec::new();
    walk(root, root, 0, max_depth, &mut out);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn walk(root: &Path, dir: &Path, depth: usize, max_depth: usize, out: &mut Vec<RunRecord>) {
    let name = relative_name(root, dir);
    let is_run = match inspect(dir, &name) {
        Some(r) => {
            out.push(r);
            true
        }
        None => false,
    };
    if depth >= max_depth {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.push(RunRecord {
                name,
                dir: dir.to_path_buf(),
                manifest: None,
                metrics: RunMetrics::default(),
                created_unix_s: None,
                problems: vec![Problem {
                    path: dir.to_path_buf(),
                    message: format!("cannot list directory: {e}"),
                }],
            });
            return;
        }
    };
    let mut subdirs: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.starts_with('.'))
        .filter(|(n, _)| !(is_run && RUN_PARTS.contains(&n.as_str())))
        .collect();
    subdirs.sort();
    for (_, path) in subdirs {
        walk(root, &path, depth + 1, max_depth, out);
    }
}

fn relative_name(root: &Path, dir: &Path) -> String {
    match dir.strip_prefix(root) {
        Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
        Ok(rel) => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => dir.display().to_string(),
    }
}

fn modified_unix_s(path: &Path) -> Option<u64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Flattens nested JSON objects into `a.b.c` keys (arrays and scalars are leaves).
pub fn flatten(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, &key, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

/// Every hyper-parameter of a run configuration as `section.key` → value.
pub fn hyper_parameters(cfg: &TrainConfig) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Ok(v) = serde_json::to_value(cfg) {
        flatten(&v, "", &mut out);
    }
    out
}

/// Numeric and boolean results of a manifest as `section.key` → value (the `safety` section
/// included), plus the training status.
pub fn result_metrics(m: &RunManifest) -> BTreeMap<String, Value> {
    let mut all = BTreeMap::new();
    flatten(&Value::Object(m.results.clone()), "", &mut all);
    all.into_iter()
        .filter(|(k, v)| v.is_number() || v.is_boolean() || (k == "train.status" && v.is_string()))
        .collect()
}

/// The [`result_metrics`] that [`RunMetrics`] does not already show (the `train` section's
/// steps and losses aside).
pub fn other_results(m: &RunManifest) -> BTreeMap<String, Value> {
    result_metrics(m)
        .into_iter()
        .filter(|(k, _)| {
            !k.strip_prefix("train.")
                .is_some_and(|t| TRAIN_RESULT_KEYS.contains(&t))
        })
        .collect()
}

/// A dataset input file and its checksum, from the data manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputDigest {
    /// The file (or directory source) as read.
    pub path: String,
    /// Its sha256.
    pub sha256: String,
}

/// The dataset a run trained on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetSummary {
    /// Prepared dataset directory.
    pub dir: String,
    /// Dataset name from its manifest.
    pub name: Option<String>,
    /// sha256 of the train and eval split files.
    pub train_file_sha256: String,
    pub eval_file_sha256: String,
    /// The split seed and settings from the data manifest.
    pub split_seed: Option<u64>,
    pub split: Option<Value>,
    /// The raw inputs with their sha256.
    pub inputs: Vec<InputDigest>,
}

/// The provenance of a run in one object: what `/health` returns and `runs show` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManifestSummary {
    pub code_version: String,
    pub created_unix_s: Option<u64>,
    pub base_model: String,
    pub base_model_sha256: String,
    pub base_storage: String,
    pub tokenizer_sha256: String,
    pub chat_template_sha256: String,
    pub dataset: DatasetSummary,
    /// The [`KEY_HYPER_PARAMETERS`].
    pub hyper_parameters: BTreeMap<String, Value>,
    /// Numeric results outside the `safety` section (see [`result_metrics`]).
    pub metrics: BTreeMap<String, Value>,
    /// The `safety` results section, when the run checked answers.
    pub safety: Option<Value>,
}

/// Summarises a run manifest.
pub fn summary(m: &RunManifest) -> ManifestSummary {
    let all = hyper_parameters(&m.config);
    let hyper_parameters = KEY_HYPER_PARAMETERS
        .iter()
        .filter_map(|k| all.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let metrics = result_metrics(m)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("safety."))
        .collect();
    let dm = m.data_manifest.as_ref();
    let inputs = dm
        .and_then(|d| d.get("inputs"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|i| InputDigest {
                    path: i.get("path").and_then(Value::as_str).unwrap_or("").into(),
                    sha256: i.get("sha256").and_then(Value::as_str).unwrap_or("").into(),
                })
                .collect()
        })
        .unwrap_or_default();
    ManifestSummary {
        code_version: m.code_version.clone(),
        created_unix_s: m.created_unix_s,
        base_model: m.base_model.clone(),
        base_model_sha256: m.base_model_sha256.clone(),
        base_storage: m.base_storage.clone(),
        tokenizer_sha256: m.tokenizer_sha256.clone(),
        chat_template_sha256: m.chat_template_sha256.clone(),
        dataset: DatasetSummary {
            dir: m.dataset_dir.clone(),
            name: dm
                .and_then(|d| d.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string),
            train_file_sha256: m.train_file_sha256.clone(),
            eval_file_sha256: m.eval_file_sha256.clone(),
            split_seed: dm.and_then(|d| d.get("seed")).and_then(Value::as_u64),
            split: dm
                .and_then(|d| d.get("config"))
                .and_then(|c| c.get("split"))
                .cloned(),
            inputs,
        },
        hyper_parameters,
        metrics,
        safety: m.results.get("safety").cloned(),
    }
}

/// The identity fields of a manifest compared by [`compare`], as `key` → value.
fn identity(m: &RunManifest) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (k, v) in [
        ("code_version", &m.code_version),
        ("base_model", &m.base_model),
        ("base_model_sha256", &m.base_model_sha256),
        ("base_storage", &m.base_storage),
        ("tokenizer_sha256", &m.tokenizer_sha256),
        ("chat_template_sha256", &m.chat_template_sha256),
        ("dataset_dir", &m.dataset_dir),
        ("train_file_sha256", &m.train_file_sha256),
        ("eval_file_sha256", &m.eval_file_sha256),
    ] {
        out.insert(k.to_string(), Value::String(v.clone()));
    }
    if let Some(seed) = m
        .data_manifest
        .as_ref()
        .and_then(|d| d.get("seed"))
        .cloned()
    {
        out.insert("data_split_seed".into(), seed);
    }
    out
}

/// One row of a comparison: a key and its value in each run (`None`: absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompareRow {
    pub key: String,
    pub values: Vec<Option<Value>>,
}

/// Runs side by side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Run names, in column order.
    pub runs: Vec<String>,
    /// Identity fields and hyper-parameters whose values are not all equal.
    pub differing: Vec<CompareRow>,
    /// How many identity fields and hyper-parameters are equal in every run.
    pub identical: usize,
    /// Training metrics and numeric results of every run.
    pub metrics: Vec<CompareRow>,
}

/// Compares runs: the settings that differ (the output directory aside) and all metrics.
pub fn compare(runs: &[RunRecord]) -> Comparison {
    let settings: Vec<BTreeMap<String, Value>> = runs
        .iter()
        .map(|r| {
            let mut s = BTreeMap::new();
            if let Some(m) = &r.manifest {
                s.extend(identity(m));
                s.extend(hyper_parameters(&m.config));
            }
            s.remove("train.output_dir");
            s
        })
        .collect();
    let (differing, identical) = rows_of(&settings, true);
    let metrics: Vec<BTreeMap<String, Value>> = runs
        .iter()
        .map(|r| {
            let x = &r.metrics;
            let mut s = BTreeMap::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    s.insert(k.to_string(), v);
                }
            };
            put("steps", x.steps.map(Value::from));
            put("initial_eval_loss", x.initial_eval_loss.map(Value::from));
            put("best_eval_loss", x.best_eval_loss.map(Value::from));
            put("best_step", x.best_step.map(Value::from));
            put("final_eval_loss", x.final_eval_loss.map(Value::from));
            put("final_train_loss", x.final_train_loss.map(Value::from));
            if let Some(m) = &r.manifest {
                s.extend(other_results(m));
            }
            s
        })
        .collect();
    let (mut metric_rows, _) = rows_of(&metrics, false);
    // The training metrics first, in a fixed order, then results alphabetically.
    let order = [
        "steps",
        "initial_eval_loss",
        "best_eval_loss",
        "best_step",
        "final_eval_loss",
        "final_train_loss",
    ];
    metric_rows.sort_by_key(|r| {
        (
            order
                .iter()
                .position(|k| *k == r.key)
                .unwrap_or(order.len()),
            r.key.clone(),
        )
    });
    Comparison {
        runs: runs.iter().map(|r| r.name.clone()).collect(),
        differing,
        identical,
        metrics: metric_rows,
    }
}

/// Rows over the union of keys; with `only_differing`, only keys whose values are not all
/// equal (also returns how many were equal).
fn rows_of(maps: &[BTreeMap<String, Value>], only_differing: bool) -> (Vec<CompareRow>, usize) {
    let keys: BTreeSet<&String> = maps.iter().flat_map(|m| m.keys()).collect();
    let mut rows = Vec::new();
    let mut equal = 0;
    for k in keys {
        let values: Vec<Option<Value>> = maps.iter().map(|m| m.get(k).cloned()).collect();
        let same = values.windows(2).all(|w| w[0] == w[1]);
        if same {
            equal += 1;
        }
        if !only_differing || !same {
            rows.push(CompareRow {
                key: k.clone(),
                values,
            });
        }
    }
    (rows, equal)
}

/// A setting for a table cell: numbers exactly as stored (`0.0002`, `16.0`), everything else as
/// [`cell`] writes it.
pub fn setting_cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        other => cell(other),
    }
}

/// A JSON value for a table cell: strings bare, floats to 4 decimals (scientific below 1e-3),
/// arrays comma-joined (`[]` when empty), absent or null as `-`.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float(f),
            _ => n.to_string(),
        },
        Some(Value::Array(a)) if a.is_empty() => "[]".into(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| cell(Some(x)))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// A float for a table: `0.1235`, `1.000e-4`, `1234.5678`.
pub fn float(f: f64) -> String {
    if f != 0.0 && f.abs() < 1e-3 {
        format!("{f:.3e}")
    } else {
        format!("{f:.4}")
    }
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
pub fn format_unix_utc(secs: u64) -> String {
    medtune_data::template::strftime_utc("%Y-%m-%d %H:%M UTC", secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_and_cells() {
        assert_eq!(format_unix_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_unix_utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(format_unix_utc(1_795_435_714), "2026-11-23 12:08 UTC");
        assert_eq!(cell(Some(&Value::from(2e-4))), "2.000e-4");
        assert_eq!(cell(Some(&Value::from(1.23456))), "1.2346");
        assert_eq!(cell(Some(&Value::from(8))), "8");
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&json!([]))), "[]");
        assert_eq!(setting_cell(Some(&Value::from(0.9))), "0.9");
        assert_eq!(setting_cell(Some(&Value::from(16))), "16");
        assert_eq!(setting_cell(Some(&Value::from("cosine"))), "cosine");
        assert_eq!(cell(Some(&json!(["q_proj", "v_proj"]))), "q_proj,v_proj");
    }

    #[test]
    fn best_eval_skips_the_initial_evaluation() {
        let row = |kind: &str, step: u64, loss: f64| MetricRow {
            kind: kind.into(),
            step,
            epoch: 0.0,
            loss,
            perplexity: None,
            lr: None,
            grad_norm: None,
            tokens: None,
            tokens_per_s: None,
            elapsed_s: 0.0,
        };
        let m = RunMetrics::from_rows(&[
            row("eval", 0, 1.0),
            row("train", 1, 3.0),
            row("eval", 1, 2.0),
            row("train", 2, 2.5),
            row("eval", 2, 1.5),
            row("train", 3, 2.4),
            row("eval", 3, 1.7),
        ]);
        assert_eq!(m.steps, Some(3));
        assert_eq!(m.initial_eval_loss, Some(1.0));
        assert_eq!((m.best_eval_loss, m.best_step), (Some(1.5), Some(2)));
        assert_eq!(m.final_eval_loss, Some(1.7));
        assert_eq!(m.final_train_loss, Some(2.4));
        assert_eq!(m.eval_points, 4);
    }
}
