//! `manifest.json` of a `medtune eval` report directory: what was evaluated (base model and
//! adapters with their sha256 and their own run manifests), on which data and with which
//! settings, by which code, and the headline figures — so a report can be traced and repeated.
//!
//! It carries `"kind": "evaluation"`, which `medtune runs` reads as "not a training run".

use anyhow::Context;
use medtune_eval::compare::MetricRow;
use medtune_model::LoadedModel;
use medtune_train::manifest::{code_version, sha256_file, weight_files};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// What the evaluation was asked to do (the resolved command-line settings).
pub struct EvalSettings {
    pub suites: Vec<String>,
    pub limit: Option<usize>,
    pub mode: String,
    pub mcq_target: String,
    pub batch_size: usize,
    pub max_new_tokens: usize,
    pub max_new_tokens_choice: usize,
    pub resamples: usize,
    pub safety: bool,
    pub keep_quantized: bool,
    pub data_dir: PathBuf,
    pub dataset_dir: Option<PathBuf>,
    pub split: String,
}

/// sha256 of a file, or `null` with the reason when it cannot be read (a sharded model's
/// index folder, say): the manifest records what it could not hash rather than failing the run.
fn hash_or_reason(path: &Path) -> Value {
    match sha256_file(path) {
        Ok(h) => json!(h),
        Err(e) => json!({ "unhashed": e.to_string() }),
    }
}

/// sha256 of the weights: the file itself, or for a folder one hash per `model*.safetensors`
/// file (single or sharded, in name order), as `{file: sha256}`.
fn weights_sha(path: &Path) -> Value {
    if !path.is_dir() {
        return hash_or_reason(path);
    }
    let files = match weight_files(path) {
        Ok(f) => f,
        Err(e) => return json!({ "unhashed": e.to_string() }),
    };
    let map: serde_json::Map<String, Value> = files
        .iter()
        .map(|f| {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
            (name.unwrap_or_default(), hash_or_reason(f))
        })
        .collect();
    Value::Object(map)
}

/// A JSON file read as a value, `null` when absent; malformed JSON is an error naming the file.
fn read_json(path: &Path) -> anyhow::Result<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{}: malformed JSON", path.display())),
        Err(_) => Ok(Value::Null),
    }
}

/// Builds the manifest of an evaluation of `model_path` (loaded as `lm`) and `adapters`.
pub fn build(
    model_path: &Path,
    lm: &LoadedModel,
    adapters: &[PathBuf],
    settings: &EvalSettings,
    metrics: &[MetricRow],
) -> anyhow::Result<Value> {
    let model_dir = if model_path.is_dir() {
        model_path.to_path_buf()
    } else {
        model_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    };
    let tokenizer = model_dir.join("tokenizer.json");
    let tokenizer_sha = if tokenizer.is_file() {
        hash_or_reason(&tokenizer)
    } else {
        json!("from GGUF metadata")
    };
    let adapters: Vec<Value> = adapters
        .iter()
        .map(|a| {
            Ok(json!({
                "path": a.display().to_string(),
                "adapter_model_sha256": hash_or_reason(&a.join("adapter_model.safetensors")),
                "run_manifest": read_json(&a.join("manifest.json"))?,
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let dataset_manifest = match &settings.dataset_dir {
        Some(d) => read_json(&d.join("manifest.json"))?,
        None => Value::Null,
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(json!({
        "kind": "evaluation",
        "code_version": code_version(),
        "created_unix_s": created,
        "base_model": model_path.display().to_string(),
        "base_model_sha256": weights_sha(&lm.weights_path),
        "base_storage": if settings.keep_quantized { "stored quantization" } else { "dequantized to f32" },
        "tokenizer_sha256": tokenizer_sha,
        "chat_template_sha256": lm.chat_template.as_ref().map(|t| t.template_hash()),
        "adapters": adapters,
        "settings": {
            "suites": settings.suites,
            "limit": settings.limit,
            "mode": settings.mode,
            "mcq_target": settings.mcq_target,
            "batch_size": settings.batch_size,
            "max_new_tokens": settings.max_new_tokens,
            "max_new_tokens_choice": settings.max_new_tokens_choice,
            "bootstrap_resamples": settings.resamples,
            "safety_validator": settings.safety,
            "data_dir": settings.data_dir.display().to_string(),
            "dataset_dir": settings.dataset_dir.as_ref().map(|d| d.display().to_string()),
            "heldout_split": settings.split,
        },
        "dataset_manifest": dataset_manifest,
        "metrics": metrics,
    }))
}

/// Writes `<out>/manifest.json` atomically.
pub fn write(out: &Path, manifest: &Value) -> anyhow::Result<PathBuf> {
    let path = out.join("manifest.json");
    medtune_data::io::write_json(&path, manifest)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
