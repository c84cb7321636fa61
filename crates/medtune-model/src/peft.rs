//! PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors`, read and written
//! in the layout PEFT 0.21 uses, so an adapter trained here loads with
//! `PeftModel.from_pretrained` and an adapter trained with PEFT loads here.
//!
//! Tensor keys are `base_model.model.<HF module>.lora_A.weight` (A [R, in]) and `.lora_B.weight`
//! (B [out, R]), f32.
//!
//! GGUF llama bases: the loader moves llama.cpp's permuted q/k rows back to HF order, so the
//! in-memory model, and thus every B trained on it, is already in HF layout; the saved adapter
//! fits the HF checkpoint with no transform (`tests/lora_conformance.rs` checks this).
//!
//! ```no_run
//! use medtune_model::{load, LoadOptions, peft};
//! # fn main() -> medtune_model::Result<()> {
//! let mut m = load("models/smollm2".as_ref(), &LoadOptions::default())?;
//! let set = peft::load_peft(&mut m.model, "runs/adapter".as_ref())?;
//! peft::save_peft(&set, "runs/copy".as_ref(), Some("HuggingFaceTB/SmolLM2-135M"))?;
//! # Ok(()) }
//! ```

use crate::decoder::DecoderLm;
use crate::error::{Error, Result};
use crate::lora::{attach_lora, LayerSelection, LoraConfig, LoraSet, TargetModules, ALL_LINEAR};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The adapter config file name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The adapter weights file name.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// Reads a PEFT `adapter_config.json` into a [`LoraConfig`]. PEFT writes many fields; those
/// that change the computation and that medtune does not implement (DoRA, per-module ranks,
/// `modules_to_save`, trained biases) are errors, the rest are ignored.
pub fn read_config(path: &Path) -> Result<LoraConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    let field = |k: &str| v.get(k).filter(|x| !x.is_null());
    let bad = |k: &str, m: String| Error::config(path, k, m);
    match field("peft_type").and_then(Value::as_str) {
        Some("LORA") => {}
        other => {
            return Err(bad(
                "peft_type",
                format!("expected \"LORA\", found {other:?}"),
            ))
        }
    }
    for flag in ["use_dora", "lora_bias", "use_qalora"] {
        if field(flag).and_then(Value::as_bool) == Some(true) {
            return Err(bad(flag, "is true; only plain LoRA is supported".into()));
        }
    }
    for pattern in ["rank_pattern", "alpha_pattern"] {
        if field(pattern)
            .and_then(Value::as_object)
            .is_some_and(|o| !o.is_empty())
        {
            return Err(bad(
                pattern,
                "per-module ranks/alphas are not supported".into(),
            ));
        }
    }
    if field("modules_to_save")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        return Err(bad(
            "modules_to_save",
            "fully trained extra modules are not supported".into(),
        ));
    }
    let num = |k: &str| -> Result<Option<f64>> {
        match field(k) {
            None => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| bad(k, format!("expected a number, found {x}"))),
        }
    };
    let flag = |k: &str| -> Result<bool> {
        match field(k) {
            None => Ok(false),
            Some(x) => x
                .as_bool()
                .ok_or_else(|| bad(k, format!("expected true/false, found {x}"))),
        }
    };
    let r = num("r")?.ok_or_else(|| bad("r", "missing".into()))?;
    if r < 1.0 || r.fract() != 0.0 {
        return Err(bad("r", format!("expected a positive integer, found {r}")));
    }
    let target_modules: TargetModules = match field("target_modules") {
        Some(t) => serde_json::from_value(t.clone()).map_err(|e| {
            bad(
                "target_modules",
                format!("expected a list of names or a string: {e}"),
            )
        })?,
        None => return Err(bad("target_modules", "missing".into())),
    };
    let layers_to_transform: Option<LayerSelection> = match field("layers_to_transform") {
        Some(t) => Some(serde_json::from_value(t.clone()).map_err(|e| {
            bad(
                "layers_to_transform",
                format!("expected an index or a list: {e}"),
            )
        })?),
        None => None,
    };
    let config = LoraConfig {
        r: r as usize,
        lora_alpha: num("lora_alpha")?.unwrap_or(8.0),
        lora_dropout: num("lora_dropout")?.unwrap_or(0.0),
        target_modules,
        layers_to_transform,
        use_rslora: flag("use_rslora")?,
        fan_in_fan_out: flag("fan_in_fan_out")?,
        bias: field("bias")
            .and_then(Value::as_str)
            .unwrap_or("none")
            .to_string(),
        init_lora_weights: true,
    };
    config
        .validate()
        .map_err(|e| Error::config(path, "lora", e.to_string()))?;
    Ok(config)
}

/// Attaches the adapter stored in `dir` to `model` and returns it (in training mode; call
/// [`LoraSet::set_train`]`(false)` for inference). Every targeted module must have its A and B
/// in the file with the right shapes, and the file must hold nothing else.
pub fn load_peft(model: &mut DecoderLm, dir: &Path) -> Result<LoraSet> {
    let config_path = dir.join(CONFIG_FILE);
    let config = read_config(&config_path)?;
    let weights_path = dir.join(WEIGHTS_FILE);
    if !weights_path.is_file() {
        return Err(Error::io(
            &weights_path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "adapter weights not found"),
        ));
    }
    let tensors = read_tensors(&weights_path, model.device())?;
    let set = attach_lora(model, &config, 0)
        .map_err(|e| Error::config(&config_path, "target_modules", e.to_string()))?;
    let expected: BTreeSet<String> = set.vars().into_iter().map(|(k, _)| k).collect();
    if let Some(extra) = tensors.keys().find(|k| !expected.contains(*k)) {
        return Err(Error::BadFile {
            path: weights_path,
            message: format!(
                "tensor `{extra}` belongs to no module targeted by {CONFIG_FILE} (or the base model differs)"
            ),
        });
    }
    set.set_weights(&tensors, &weights_path)?;
    Ok(set)
}

/// [`load_peft`] for inference: the adapter in eval mode (no dropout), as generation, scoring
/// and serving use it.
pub fn load_peft_for_inference(model: &mut DecoderLm, dir: &Path) -> Result<LoraSet> {
    let set = load_peft(model, dir)?;
    set.set_train(false);
    Ok(set)
}

impl LoraSet {
    /// Writes this adapter as PEFT does; see [`save_peft`].
    pub fn save_peft(&self, dir: &Path, base_model_name_or_path: Option<&str>) -> Result<()> {
        save_peft(self, dir, base_model_name_or_path)
    }

    /// Overwrites this set's weights with those of the adapter folder `dir` (e.g. to resume
    /// from a checkpoint). The file must hold exactly this set's tensors with the same shapes.
    pub fn load_peft_weights(&self, dir: &Path) -> Result<()> {
        let path = dir.join(WEIGHTS_FILE);
        let device = match self.vars().first() {
            Some((_, v)) => v.device().clone(),
            None => Device::Cpu,
        };
        let tensors = read_tensors(&path, &device)?;
        let expected: BTreeSet<String> = self.vars().into_iter().map(|(k, _)| k).collect();
        if let Some(extra) = tensors.keys().find(|k| !expected.contains(*k)) {
            return Err(Error::BadFile {
                path,
                message: format!("tensor `{extra}` is not part of this adapter"),
            });
        }
        self.set_weights(&tensors, &path)
    }
}

/// Reads a safetensors file onto `device`, naming the file in errors.
pub fn read_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, device).map_err(|e| Error::BadFile {
        path: path.to_path_buf(),
        message: format!("not a readable safetensors file: {e}"),
    })
}

/// The `adapter_config.json` PEFT 0.21 writes for this LoRA, field for field.
pub fn config_json(set: &LoraSet, base_model_name_or_path: Option<&str>) -> Value {
    let c = set.config();
    // PEFT saves "all-linear" expanded to the set of module leaf names it matched.
    let targets = match &c.target_modules {
        TargetModules::Pattern(p) if p == ALL_LINEAR => {
            let names: BTreeSet<&str> = set
                .adapters()
                .iter()
                .map(|a| a.module().rsplit('.').next().unwrap_or(a.module()))
                .collect();
            json!(names)
        }
        TargetModules::Names(n) => json!(n),
        TargetModules::Pattern(p) => json!(p),
    };
    json!({
        "alora_invocation_tokens": null,
        "alpha_pattern": {},
        "arrow_config": null,
        "auto_mapping": null,
        "base_model_name_or_path": base_model_name_or_path,
        "bias": c.bias,
        "corda_config": null,
        "ensure_weight_tying": false,
        "eva_config": null,
        "exclude_modules": null,
        "fan_in_fan_out": c.fan_in_fan_out,
        "inference_mode": true,
        "init_lora_weights": c.init_lora_weights,
        "kasa_config": null,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": c.layers_to_transform,
        "loftq_config": {},
        "lora_alpha": c.lora_alpha,
        "lora_bias": false,
        "lora_dropout": c.lora_dropout,
        "lora_ga_config": null,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "monteclora_config": null,
        "peft_type": "LORA",
        "peft_version": "0.21.0",
        "qalora_group_size": 16,
        "r": c.r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "target_parameters": null,
        "task_type": "CAUSAL_LM",
        "trainable_token_indices": null,
        "use_bdlora": null,
        "use_dora": false,
        "use_qalora": false,
        "use_rslora": c.use_rslora,
        "velora_config": null
    })
}

/// Writes the adapter to `dir` as PEFT does (config + f32 weights under PEFT keys). The folder
/// is built under a temporary name beside `dir` and renamed into place, so `dir` is never
/// half-written; an existing `dir` is replaced.
pub fn save_peft(set: &LoraSet, dir: &Path, base_model_name_or_path: Option<&str>) -> Result<()> {
    let config = config_json(set, base_model_name_or_path);
    let text = serde_json::to_string_pretty(&config).map_err(|source| Error::Json {
        path: dir.join(CONFIG_FILE),
        source,
    })?;
    let tensors = set.weights()?;
    write_dir_atomic(dir, |tmp| {
        write_file(&tmp.join(CONFIG_FILE), text.as_bytes())?;
        write_safetensors(&tmp.join(WEIGHTS_FILE), &tensors)
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Builds a folder with `fill(tmp)` in a temporary sibling of `dir`, then renames it to `dir`
/// (moving an existing `dir` aside first and deleting it after).
pub(crate) fn write_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dir
        .file_name()
        .ok_or_else(|| Error::input("out", format!("{} has no folder name", dir.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let pid = std::process::id();
    let tmp = parent.join(format!(".{name}.tmp-{pid}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = parent.join(format!(".{name}.old-{pid}"));
    let had_old = dir.exists();
    if had_old {
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
    if had_old {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Writes tensors as safetensors with PyTorch's `{"format": "pt"}` metadata, keys sorted.
/// f32, f16, bf16, i64, u32 and u8 tensors are stored in their dtype.
pub(crate) fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut sorted: Vec<&(String, Tensor)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut data: Vec<u8> = Vec::new();
    for (name, t) in sorted {
        let (dtype, bytes) = tensor_bytes(t).map_err(|source| Error::Tensor {
            path: path.to_path_buf(),
            tensor: name.clone(),
            source,
        })?;
        let start = data.len();
        data.extend_from_slice(&bytes);
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": t.dims(), "data_offsets": [start, data.len()]}),
        );
    }
    let mut head = serde_json::to_vec(&Value::Object(header)).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    // The header is padded with spaces to a multiple of 8 bytes, as the reference writer does.
    while !head.len().is_multiple_of(8) {
        head.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + head.len() + data.len());
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&data);
    write_file(path, &out)
}

/// safetensors dtype name and little-endian bytes of a tensor.
fn tensor_bytes(t: &Tensor) -> candle_core::Result<(&'static str, Vec<u8>)> {
    let flat = t.flatten_all()?.to_device(&Device::Cpu)?;
    Ok(match t.dtype() {
        DType::F32 => (
            "F32",
            flat.to_vec1::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::F16 => (
            "F16",
            flat.to_vec1::<half::f16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::BF16 => (
            "BF16",
            flat.to_vec1::<half::bf16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::F64 => (
            "F64",
            flat.to_vec1::<f64>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::I64 => (
            "I64",
            flat.to_vec1::<i64>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::U32 => (
            "U32",
            flat.to_vec1::<u32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::U8 => ("U8", flat.to_vec1::<u8>()?),
        other => {
            return Err(candle_core::Error::Msg(format!(
                "cannot store dtype {other:?} in safetensors"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_writer_round_trips_through_candle() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let p = dir.path().join("t.safetensors");
        let a = Tensor::arange(0f32, 6., &Device::Cpu)?.reshape((2, 3))?;
        let b = Tensor::new(&[1u8, 2, 3], &Device::Cpu)?;
        let c = a.to_dtype(DType::BF16)?;
        write_safetensors(
            &p,
            &[
                ("b".into(), b.clone()),
                ("a".into(), a.clone()),
                ("c".into(), c),
            ],
        )?;
        let back = read_tensors(&p, &Device::Cpu)?;
        assert_eq!(back["a"].to_vec2::<f32>()?, a.to_vec2::<f32>()?);
        assert_eq!(back["b"].to_vec1::<u8>()?, vec![1, 2, 3]);
        assert_eq!(back["c"].dtype(), DType::BF16);
        let bytes = std::fs::read(&p).map_err(|e| Error::io(&p, e))?;
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])) as usize;
        assert!(n.is_multiple_of(8));
        let head: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        assert_eq!(head["__metadata__"]["format"], "pt");
        Ok(())
    }

    #[test]
    fn atomic_dir_write_replaces_and_cleans_up() -> Result<()> {
        let root = tempfile::tempdir().map_err(|e| Error::io("tmp", e))?;
        let dir = root.path().join("adapter");
        write_dir_atomic(&dir, |t| write_file(&t.join("x"), b"1"))?;
        write_dir_atomic(&dir, |t| write_file(&t.join("y"), b"2"))?;
        assert!(!dir.join("x").exists() && dir.join("y").is_file());
        let failed = write_dir_atomic(&dir, |_| Err(Error::input("test", "fail")));
        assert!(failed.is_err());
        assert!(dir.join("y").is_file());
        let names: Vec<_> = std::fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary folders left behind");
        Ok(())
    }

    #[test]
    fn config_errors_name_the_field() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join(CONFIG_FILE);
        std::fs::write(
            &p,
            r#"{"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"], "use_dora": true}"#,
        )
        .unwrap();
        let e = read_config(&p).unwrap_err().to_string();
        assert!(e.contains("use_dora") && e.contains(CONFIG_FILE), "{e}");
        std::fs::write(&p, r#"{"peft_type": "IA3", "r": 4}"#).unwrap();
        assert!(read_config(&p)
            .unwrap_err()
            .to_string()
            .contains("peft_type"));
        std::fs::write(&p, r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": "all-linear", "layers_to_transform": [1]}"#).unwrap();
        let c = read_config(&p).unwrap();
        assert_eq!(c.scale(), 2.0);
        assert_eq!(c.layers_to_transform, Some(LayerSelection::Many(vec![1])));
    }
}
