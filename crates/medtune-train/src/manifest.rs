//! `manifest.json`: what a run, checkpoint, adapter or report came from — enough to tell two
//! runs apart and to reproduce one.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

use crate::config::TrainConfig;
use crate::{Error, Result};

/// Identity of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    /// medtune version and, when known, the git commit it was built from.
    pub code_version: String,
    /// Base model path and the sha256 of its weight file.
    pub base_model: String,
    pub base_model_sha256: String,
    /// Storage of the frozen base (e.g. `gguf`, `nf4-dq`, `f32`).
    pub base_storage: String,
    /// sha256 of `tokenizer.json` (empty when the model has none).
    pub tokenizer_sha256: String,
    /// sha256 of the chat template text used to render the examples.
    pub chat_template_sha256: String,
    /// The dataset directory and the sha256 of its split files.
    pub dataset_dir: String,
    pub train_file_sha256: String,
    pub eval_file_sha256: String,
    /// The data preparation manifest (inputs with sha256, split seed and settings), if present.
    pub data_manifest: Option<serde_json::Value>,
    /// Hyper-parameters: the resolved run configuration.
    pub config: TrainConfig,
    /// Metrics and safety summary, filled in as the run goes (free-form sections: `train` holds
    /// the training summary, `safety` the safety summary of checked answers).
    #[serde(default)]
    pub results: serde_json::Map<String, serde_json::Value>,
    /// When the run was set up (seconds since the Unix epoch; absent in older manifests).
    #[serde(default)]
    pub created_unix_s: Option<u64>,
}

impl RunManifest {
    /// Builds the manifest of a run of `cfg` with the given template hash.
    pub fn new(
        cfg: &TrainConfig,
        weights_path: &Path,
        base_storage: &str,
        chat_template_sha256: &str,
    ) -> Result<Self> {
        let model_dir = if cfg.model.path.is_dir() {
            cfg.model.path.clone()
        } else {
            cfg.model
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        };
        let data_dir = &cfg.data.dataset_dir;
        let data_manifest = std::fs::read_to_string(data_dir.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        Ok(RunManifest {
            code_version: code_version(),
            base_model: cfg.model.path.display().to_string(),
            base_model_sha256: sha256_file(weights_path)?,
            base_storage: base_storage.to_string(),
            tokenizer_sha256: sha256_file(&model_dir.join("tokenizer.json")).unwrap_or_default(),
            chat_template_sha256: chat_template_sha256.to_string(),
            dataset_dir: data_dir.display().to_string(),
            train_file_sha256: sha256_file(&data_dir.join(&cfg.data.train_file))
                .unwrap_or_default(),
            eval_file_sha256: sha256_file(&data_dir.join(&cfg.data.eval_file)).unwrap_or_default(),
            data_manifest,
            config: cfg.clone(),
            results: serde_json::Map::new(),
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs()),
        })
    }

    /// A copy with the results section `key` set to `value`.
    pub fn with_result(&self, key: &str, value: serde_json::Value) -> Self {
        let mut m = self.clone();
        m.results.insert(key.to_string(), value);
        m
    }

    /// Writes `<dir>/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        medtune_data::io::write_json(&dir.join("manifest.json"), self).map_err(Error::data)
    }
}

/// `medtune <version> (<git commit>)`; the commit comes from `MEDTUNE_GIT_COMMIT` at build time.
pub fn code_version() -> String {
    match option_env!("MEDTUNE_GIT_COMMIT") {
        Some(c) if !c.is_empty() => format!("medtune {} ({c})", env!("CARGO_PKG_VERSION")),
        _ => format!("medtune {}", env!("CARGO_PKG_VERSION")),
    }
}

/// Hex sha256 of a file, streamed; a directory hashes to the empty string.
pub fn sha256_file(path: &Path) -> Result<String> {
    if path.is_dir() {
        return Ok(String::new());
    }
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_files_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w.bin");
        std::fs::write(&w, b"abc").unwrap();
        assert_eq!(
            sha256_file(&w).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let cfg = TrainConfig::default();
        let m = RunManifest::new(&cfg, &w, "f32", "t").unwrap();
        m.write(dir.path()).unwrap();
        let back: RunManifest = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(back, m);
        assert!(sha256_file(&dir.path().join("missing")).is_err());
    }
}
