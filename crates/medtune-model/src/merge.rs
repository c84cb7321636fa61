//! Merging a LoRA adapter into its base: `W' = W + s·B·A` for every adapted module, written as
//! a plain HF safetensors model that any loader reads without PEFT.
//!
//! Works on files: the base folder's safetensors (one file or shards) and a PEFT adapter
//! folder. Each merged weight keeps the base's dtype (the sum is formed in f32, then rounded).
//! GPT-2 `Conv1D` weights are stored [in, out]; PEFT marks such adapters `fan_in_fan_out`, and
//! the update is transposed to `(s·B·A)ᵀ` before it is added.

use crate::error::{Error, Result};
use crate::peft::{self, write_dir_atomic, write_safetensors, CONFIG_FILE, WEIGHTS_FILE};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// What [`merge_adapter`] wrote.
#[derive(Debug, Clone)]
pub struct MergeReport {
    /// Number of weights that received an update.
    pub merged_modules: usize,
    /// Number of tensors written.
    pub tensors: usize,
    /// Non-weight files copied from the base folder (config, tokenizer, ...).
    pub copied_files: Vec<String>,
    /// The output folder.
    pub out_dir: PathBuf,
}

/// Merges the PEFT adapter in `adapter_dir` into the safetensors model in `model_dir` and
/// writes `out_dir` (`model.safetensors` plus every other top-level file of the base folder:
/// config, generation config, tokenizer files, chat template). `out_dir` is written under a
/// temporary name and renamed into place; it must not exist yet.
pub fn merge_adapter(model_dir: &Path, adapter_dir: &Path, out_dir: &Path) -> Result<MergeReport> {
    if out_dir.exists() {
        return Err(Error::input(
            "out",
            format!("{} already exists; choose a new folder", out_dir.display()),
        ));
    }
    let config = peft::read_config(&adapter_dir.join(CONFIG_FILE))?;
    let scale = config.scale();
    let adapter_path = adapter_dir.join(WEIGHTS_FILE);
    let adapter = peft::read_tensors(&adapter_path, &Device::Cpu)?;
    let modules = adapter_modules(&adapter, &adapter_path)?;
    let (mut tensors, weight_files) = read_base(model_dir)?;
    for (module, (a, b)) in &modules {
        let name = format!("{module}.weight");
        let w = tensors.get(&name).ok_or_else(|| Error::MissingTensor {
            path: model_dir.to_path_buf(),
            tensor: name.clone(),
        })?;
        // s·B·A: [out, R] · [R, in] → [out, in]; Conv1D stores [in, out].
        let mut delta = (b.to_dtype(DType::F32)?.matmul(&a.to_dtype(DType::F32)?)? * scale)?;
        if config.fan_in_fan_out {
            delta = delta.t()?;
        }
        if delta.dims() != w.dims() {
            return Err(Error::WrongShape {
                path: adapter_path.clone(),
                tensor: format!("{module} (s·B·A)"),
                expected: w.dims().to_vec(),
                actual: delta.dims().to_vec(),
            });
        }
        let merged = (w.to_dtype(DType::F32)? + delta)?.to_dtype(w.dtype())?;
        tensors.insert(name, merged);
    }
    let copied = files_to_copy(model_dir, &weight_files)?;
    let list: Vec<(String, Tensor)> = tensors.into_iter().collect();
    let n_tensors = list.len();
    write_dir_atomic(out_dir, |tmp| {
        write_safetensors(&tmp.join("model.safetensors"), &list)?;
        for name in &copied {
            let from = model_dir.join(name);
            std::fs::copy(&from, tmp.join(name)).map_err(|e| Error::io(&from, e))?;
        }
        Ok(())
    })?;
    Ok(MergeReport {
        merged_modules: modules.len(),
        tensors: n_tensors,
        copied_files: copied,
        out_dir: out_dir.to_path_buf(),
    })
}

/// Groups adapter tensors by module: module → (A [R, in], B [out, R]).
fn adapter_modules(
    tensors: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<BTreeMap<String, (Tensor, Tensor)>> {
    let mut a_of: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut b_of: BTreeMap<String, Tensor> = BTreeMap::new();
    for (key, t) in tensors {
        let module = key.strip_prefix("base_model.model.");
        let (module, is_a) = match module {
            Some(m) if m.ends_with(".lora_A.weight") => (m.trim_end_matches(".lora_A.weight"), true),
            Some(m) if m.ends_with(".lora_B.weight") => (m.trim_end_matches(".lora_B.weight"), false),
            _ => {
                return Err(Error::BadFile {
                    path: path.to_path_buf(),
                    message: format!(
                        "unexpected tensor `{key}`: expected base_model.model.<module>.lora_A.weight / lora_B.weight"
                    ),
                })
            }
        };
        let slot = if is_a { &mut a_of } else { &mut b_of };
        slot.insert(module.to_string(), t.clone());
    }
    let mut out = BTreeMap::new();
    for (module, a) in a_of {
        let b = b_of.remove(&module).ok_or_else(|| Error::MissingTensor {
            path: path.to_path_buf(),
            tensor: crate::lora::key_b(&module),
        })?;
        out.insert(module, (a, b));
    }
    if let Some(module) = b_of.keys().next() {
        return Err(Error::MissingTensor {
            path: path.to_path_buf(),
            tensor: crate::lora::key_a(module),
        });
    }
    Ok(out)
}

/// All tensors of the base (one file or shards) in their stored dtype, plus the file names read.
fn read_base(dir: &Path) -> Result<(BTreeMap<String, Tensor>, Vec<String>)> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<String> = if single.is_file() {
        vec!["model.safetensors".into()]
    } else if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|source| Error::Json {
            path: index.clone(),
            source,
        })?;
        let map = v
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::config(&index, "weight_map", "missing or not an object"))?;
        let mut shards: Vec<String> = map
            .values()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        shards.sort();
        shards.dedup();
        shards.push("model.safetensors.index.json".into());
        shards
    } else {
        return Err(Error::io(
            &single,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "a merge needs a safetensors base (model.safetensors or a shard index); GGUF bases cannot be merged",
            ),
        ));
    };
    let mut tensors = BTreeMap::new();
    for f in files.iter().filter(|f| f.ends_with(".safetensors")) {
        tensors.extend(peft::read_tensors(&dir.join(f), &Device::Cpu)?);
    }
    Ok((tensors, files))
}

/// Top-level regular files of the base folder other than weights (config, tokenizer...).
fn files_to_copy(dir: &Path, weight_files: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_weights = weight_files.contains(&name)
            || [".safetensors", ".gguf", ".bin", ".pt", ".pth"]
                .iter()
                .any(|ext| name.ends_with(ext));
        if entry.path().is_file() && !is_weights {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}
