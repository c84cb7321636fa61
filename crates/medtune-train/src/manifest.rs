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
            base_model_sha256: sha256_weights(weights_path)?,
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

/// The weight files of a model folder, in name order: the shards named by
/// `model.safetensors.index.json` when there is one, else `model*.safetensors`.
pub fn weight_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::io(&index, e))?;
        let mut names: Vec<String> = json["weight_map"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.dedup();
        return Ok(names.into_iter().map(|n| dir.join(n)).collect());
    }
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("model"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// sha256 of a model's weights: of the file itself, or for a folder of the lines
/// `<file name> <sha256>\n` of its [`weight_files`] in name order (so a sharded model has one
/// hash that changes when any shard does, and other files in the folder do not count). A
/// folder without weight files is an error.
pub fn sha256_weights(path: &Path) -> Result<String> {
    if !path.is_dir() {
        return sha256_file(path);
    }
    let files = weight_files(path)?;
    if files.is_empty() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no model*.safetensors weight files in this folder",
            ),
        ));
    }
    let mut h = Sha256::new();
    for f in &files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        h.update(format!("{} {}\n", name.unwrap_or_default(), sha256_file(f)?).as_bytes());
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Hex sha256 of a file, streamed. A directory is an error (see [`sha256_weights`]).
pub fn sha256_file(path: &Path) -> Result<String> {
    if path.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "a folder, not a file"),
        ));
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
        assert!(sha256_file(dir.path()).is_err(), "a folder is not a file");
    }

    #[test]
    fn a_model_folder_hashes_its_weight_files_only() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sha256_weights(dir.path()).is_err(), "no weight files");
        let shard = |n: &str, bytes: &[u8]| std::fs::write(dir.path().join(n), bytes).unwrap();
        shard("model-00001-of-00002.safetensors", b"one");
        shard("model-00002-of-00002.safetensors", b"two");
        shard("config.json", b"{}");
        let a = sha256_weights(dir.path()).unwrap();
        assert_eq!(a.len(), 64);
        shard("config.json", b"{\"changed\": true}");
        assert_eq!(
            sha256_weights(dir.path()).unwrap(),
            a,
            "other files do not count"
        );
        shard("model-00002-of-00002.safetensors", b"TWO");
        assert_ne!(
            sha256_weights(dir.path()).unwrap(),
            a,
            "a changed shard changes the hash"
        );
        let single = dir.path().join("model-00001-of-00002.safetensors");
        assert_eq!(
            sha256_weights(&single).unwrap(),
            sha256_file(&single).unwrap()
        );
        // An index names the shards (here only the first one).
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            r#"{"weight_map": {"a": "model-00001-of-00002.safetensors"}}"#,
        )
        .unwrap();
        assert_eq!(weight_files(dir.path()).unwrap(), vec![single]);
    }
}
