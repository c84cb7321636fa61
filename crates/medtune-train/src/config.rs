//! The run configuration of `medtune train`: one TOML file plus `section.key=value` overrides,
//! resolved and validated once.
//!
//! ```toml
//! [model]
//! path = "models/smollm2-135m-instruct"
//! [data]
//! dataset_dir = "runs/data/medquad"
//! [lora]
//! r = 8
//! [optim]
//! lr = 2e-4
//! [train]
//! max_steps = 100
//! ```

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A configuration problem, naming the file or the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("override `{0}`: expected `section.key=value`")]
    Override(String),
    #[error("setting `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// `[model]`: the frozen base.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// A HF model directory or a `.gguf` file (or a directory holding one).
    pub path: PathBuf,
    /// `none` keeps the stored weights (a GGUF base keeps its GGML quantization), `dense`
    /// dequantizes a GGUF base to the compute dtype, `nf4` quantizes linear weights to NF4 at
    /// load (a GGUF base is dequantized first).
    pub quantization: String,
    /// With `nf4`: quantize the absmax too (bitsandbytes double quantization).
    pub double_quant: bool,
    /// `f32` or `bf16`.
    pub compute_dtype: String,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            path: PathBuf::from("models/smollm2-135m-instruct"),
            quantization: "none".into(),
            double_quant: true,
            compute_dtype: "f32".into(),
        }
    }
}

/// `[data]`: a dataset directory written by `medtune data prepare`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// Directory with `train.jsonl` and `validation.jsonl`.
    pub dataset_dir: PathBuf,
    /// Split file used for training, relative to `dataset_dir`.
    pub train_file: String,
    /// Split file used for evaluation, relative to `dataset_dir`.
    pub eval_file: String,
    /// Maximum tokens per example (longer ones follow `truncation`).
    pub max_seq_len: usize,
    /// `drop`, `truncate_prompt_left` or `truncate_answer`.
    pub truncation: String,
    /// `free_text`, `yes_no_json` or `mcq_letter`.
    pub answer_format: String,
    /// Optional system prompt.
    pub system_prompt: Option<String>,
    /// `model` (the model's own chat template) or a built-in name (chatml, llama3, ...).
    pub template: String,
    /// Use at most this many training examples (0: all).
    pub max_train_examples: usize,
    /// Use at most this many evaluation examples (0: all).
    pub max_eval_examples: usize,
    /// Fail the label audit when more than this fraction of examples has no supervised token.
    pub max_unsupervised_fraction: f64,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            dataset_dir: PathBuf::from("runs/data"),
            train_file: "train.jsonl".into(),
            eval_file: "validation.jsonl".into(),
            max_seq_len: 512,
            truncation: "truncate_prompt_left".into(),
            answer_format: "free_text".into(),
            system_prompt: None,
            template: "model".into(),
            max_train_examples: 0,
            max_eval_examples: 0,
            max_unsupervised_fraction: 0.05,
        }
    }
}

/// `[lora]`: which modules get adapters and how (PEFT's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraSection {
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    /// Module-name suffixes (`q_proj`, ...) or `["all-linear"]`.
    pub target_modules: Vec<String>,
    /// Layer indices to adapt (empty: all layers).
    pub layers_to_transform: Vec<usize>,
    pub use_rslora: bool,
}

impl Default for LoraSection {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: vec!["q_proj".into(), "v_proj".into()],
            layers_to_transform: Vec::new(),
            use_rslora: false,
        }
    }
}

/// `[optim]`: optimizer and clipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimSection {
    /// `adamw` or `adamw8bit`.
    pub name: String,
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global-norm clipping threshold (0: off).
    pub max_grad_norm: f64,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            name: "adamw".into(),
            lr: 2e-4,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            max_grad_norm: 1.0,
        }
    }
}

/// `[schedule]`: learning-rate schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSection {
    /// `constant`, `linear` or `cosine`.
    pub kind: String,
    /// Warmup in optimizer steps (used when `warmup_ratio` is 0).
    pub warmup_steps: usize,
    /// Warmup as a fraction of the total optimizer steps.
    pub warmup_ratio: f64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self {
            kind: "cosine".into(),
            warmup_steps: 0,
            warmup_ratio: 0.03,
        }
    }
}

/// `[train]`: the loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoopSection {
    /// Passes over the training set (ignored when `max_steps` > 0).
    pub epochs: usize,
    /// Optimizer steps to run (0: from `epochs`).
    pub max_steps: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step; the loss is normalised over all their supervised tokens.
    pub grad_accum: usize,
    /// Evaluate every N optimizer steps (0: only at the end).
    pub eval_every: usize,
    /// Save a checkpoint every N optimizer steps (0: only at the end).
    pub save_every: usize,
    /// Stop after this many evaluations without improvement (0: never).
    pub early_stopping_patience: usize,
    /// Seed of data order, LoRA init and dropout.
    pub seed: u64,
    /// Layer-wise activation recompute (less memory, same gradients).
    pub recompute: bool,
    /// The run directory.
    pub output_dir: PathBuf,
    /// Keep at most this many step checkpoints besides `best` (0: keep all).
    pub keep_checkpoints: usize,
}

impl Default for LoopSection {
    fn default() -> Self {
        Self {
            epochs: 1,
            max_steps: 0,
            batch_size: 4,
            grad_accum: 1,
            eval_every: 0,
            save_every: 0,
            early_stopping_patience: 0,
            seed: 42,
            recompute: false,
            output_dir: PathBuf::from("runs/train"),
            keep_checkpoints: 2,
        }
    }
}

/// The whole run configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub data: DataSection,
    pub lora: LoraSection,
    pub optim: OptimSection,
    pub schedule: ScheduleSection,
    pub train: LoopSection,
}

impl TrainConfig {
    /// Reads `path` (if given), applies `section.key=value` overrides, and validates.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (String::new(), "defaults".to_string()),
        };
        Self::from_toml_str(&text, &origin, overrides)
    }

    /// Parses TOML text (`origin` names it in errors), applies overrides and validates.
    pub fn from_toml_str(
        text: &str,
        origin: &str,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let cfg: TrainConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    origin: if overrides.is_empty() {
                        origin.to_string()
                    } else {
                        format!("{origin} with overrides")
                    },
                    message: e.to_string(),
                })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The resolved configuration as TOML (written into every run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                message: message.into(),
            })
        };
        if !matches!(self.model.quantization.as_str(), "none" | "dense" | "nf4") {
            return bad("model.quantization", "expected `none`, `dense` or `nf4`");
        }
        if !matches!(self.model.compute_dtype.as_str(), "f32" | "bf16") {
            return bad("model.compute_dtype", "expected `f32` or `bf16`");
        }
        if !matches!(self.optim.name.as_str(), "adamw" | "adamw8bit") {
            return bad("optim.name", "expected `adamw` or `adamw8bit`");
        }
        if !matches!(
            self.schedule.kind.as_str(),
            "constant" | "linear" | "cosine"
        ) {
            return bad("schedule.kind", "expected `constant`, `linear` or `cosine`");
        }
        if !(0.0..1.0).contains(&self.schedule.warmup_ratio) {
            return bad("schedule.warmup_ratio", "must be in [0, 1)");
        }
        if self.lora.r == 0 {
            return bad("lora.r", "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.lora.lora_dropout) {
            return bad("lora.lora_dropout", "must be in [0, 1)");
        }
        if self.lora.target_modules.is_empty() {
            return bad(
                "lora.target_modules",
                "name at least one module or `all-linear`",
            );
        }
        if !(self.optim.lr > 0.0 && self.optim.lr.is_finite()) {
            return bad("optim.lr", "must be a positive number");
        }
        if self.train.batch_size == 0 {
            return bad("train.batch_size", "must be at least 1");
        }
        if self.train.grad_accum == 0 {
            return bad("train.grad_accum", "must be at least 1");
        }
        if self.train.max_steps == 0 && self.train.epochs == 0 {
            return bad("train.epochs", "set `epochs` or `max_steps`");
        }
        if self.data.max_seq_len < 8 {
            return bad("data.max_seq_len", "must be at least 8");
        }
        Ok(())
    }
}

/// Sets `a.b.c = value` in `table`; the value is read as TOML (so `1e-4`, `true`, `[1, 2]` keep
/// their types) or, failing that, as a plain string.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<(), ConfigError> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| ConfigError::Override(assignment.to_string()))?;
    let parts: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(ConfigError::Override(assignment.to_string()));
    }
    let value = parse_value(raw.trim());
    let mut cur = table;
    for part in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| ConfigError::Invalid {
            key: key.to_string(),
            message: format!("`{part}` is not a table"),
        })?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let cfg = TrainConfig::from_toml_str("", "t", &[]).unwrap();
        let again = TrainConfig::from_toml_str(&cfg.to_toml(), "t", &[]).unwrap();
        assert_eq!(cfg, again);
    }

    #[test]
    fn overrides_keep_types_and_create_sections() {
        let cfg = TrainConfig::from_toml_str(
            "[optim]\nlr = 1e-3\n",
            "t",
            &[
                "optim.lr=5e-5".into(),
                "lora.target_modules=[\"q_proj\", \"k_proj\"]".into(),
                "model.path=models/x.gguf".into(),
                "train.recompute=true".into(),
            ],
        )
        .unwrap();
        assert_eq!(cfg.optim.lr, 5e-5);
        assert_eq!(cfg.lora.target_modules, vec!["q_proj", "k_proj"]);
        assert_eq!(cfg.model.path, PathBuf::from("models/x.gguf"));
        assert!(cfg.train.recompute);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = TrainConfig::from_toml_str("[optim]\nlearning_rate = 1\n", "run.toml", &[])
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("run.toml") && msg.contains("learning_rate"),
            "{msg}"
        );
        let err = TrainConfig::from_toml_str("", "t", &["optim.name=sgd".into()]).unwrap_err();
        assert!(err.to_string().contains("optim.name"));
        assert!(TrainConfig::from_toml_str("", "t", &["novalue".into()]).is_err());
    }
}
