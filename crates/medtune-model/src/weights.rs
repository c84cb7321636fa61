//! Weight sources: memory-mapped safetensors (single file or sharded) and GGUF, behind one
//! lookup by HF tensor name that checks shapes and converts to the compute dtype.

use crate::error::{Error, Result};
use crate::gguf::GgufWeights;
use crate::linear::BaseWeight;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Memory-mapped safetensors files with a name → file routing table.
pub struct SafetensorsWeights {
    files: Vec<(PathBuf, MmapedSafetensors)>,
    routing: HashMap<String, usize>,
    /// Path used in "missing tensor" errors (the file, or the shard index).
    origin: PathBuf,
}

impl SafetensorsWeights {
    /// Opens `model.safetensors`, or the shards listed in `model.safetensors.index.json`, in `dir`.
    pub fn open_dir(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let single = dir.join("model.safetensors");
        if index.is_file() {
            Self::open_index(&index)
        } else if single.is_file() {
            Self::open_files(std::slice::from_ref(&single), single.clone())
        } else {
            Err(Error::io(
                &single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model.safetensors, model.safetensors.index.json or .gguf file in this folder",
                ),
            ))
        }
    }

    /// Opens the shards listed in a `model.safetensors.index.json` (its `weight_map`).
    pub fn open_index(index: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: index.to_path_buf(),
                source,
            })?;
        let map = value
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::config(index, "weight_map", "missing or not an object"))?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shards: Vec<PathBuf> = Vec::new();
        for (tensor, file) in map {
            let file = file.as_str().ok_or_else(|| {
                Error::config(
                    index,
                    format!("weight_map.{tensor}"),
                    "expected a file name",
                )
            })?;
            let path = dir.join(file);
            if !shards.contains(&path) {
                shards.push(path);
            }
        }
        shards.sort();
        Self::open_files(&shards, index.to_path_buf())
    }

    /// Opens the given safetensors files; `origin` names the set in errors.
    pub fn open_files(paths: &[PathBuf], origin: PathBuf) -> Result<Self> {
        let mut files = Vec::with_capacity(paths.len());
        let mut routing = HashMap::new();
        for path in paths {
            if !path.is_file() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
                ));
            }
            // SAFETY: the file is mapped read-only; medtune never writes model files while a
            // model is loaded, and candle validates the header and every tensor's byte range
            // against the mapped length before any tensor is read.
            #[allow(unsafe_code)]
            let st = unsafe { MmapedSafetensors::new(path) }.map_err(|e| Error::BadFile {
                path: path.clone(),
                message: format!("not a valid safetensors file (truncated or corrupt?): {e}"),
            })?;
            for (name, _) in st.tensors() {
                routing.insert(name, files.len());
            }
            files.push((path.clone(), st));
        }
        Ok(Self {
            files,
            routing,
            origin,
        })
    }

    /// Every tensor name with its file dtype and shape.
    pub fn tensor_infos(&self) -> Vec<(String, String, Vec<usize>)> {
        let mut out = Vec::new();
        for (_, st) in &self.files {
            for (name, view) in st.tensors() {
                out.push((name, format!("{:?}", view.dtype()), view.shape().to_vec()));
            }
        }
        out.sort();
        out
    }

    fn contains(&self, name: &str) -> bool {
        self.routing.contains_key(name)
    }

    fn load(&self, name: &str, shape: &[usize], dtype: DType, device: &Device) -> Result<Tensor> {
        let idx = *self.routing.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.origin.clone(),
            tensor: name.to_string(),
        })?;
        let (path, st) = &self.files[idx];
        let tensor_err = |source| Error::Tensor {
            path: path.clone(),
            tensor: name.to_string(),
            source,
        };
        let view = st.get(name).map_err(tensor_err)?;
        if view.shape() != shape {
            return Err(Error::WrongShape {
                path: path.clone(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
                actual: view.shape().to_vec(),
            });
        }
        st.load(name, device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(tensor_err)
    }
}

/// Where the weights come from.
pub enum WeightSource {
    /// HF safetensors.
    Safetensors(SafetensorsWeights),
    /// A GGUF file, tensors already renamed to HF names.
    Gguf(GgufWeights),
    /// Tensors already in memory, by HF name (generated weights for benchmarks and tests).
    Tensors(HashMap<String, Tensor>),
}

/// The in-memory source's tensor `name`, checked against `shape`, converted to `dtype`.
fn in_memory(
    map: &HashMap<String, Tensor>,
    name: &str,
    shape: &[usize],
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let origin = PathBuf::from("(in-memory tensors)");
    let t = map.get(name).ok_or_else(|| Error::MissingTensor {
        path: origin.clone(),
        tensor: name.to_string(),
    })?;
    if t.dims() != shape {
        return Err(Error::WrongShape {
            path: origin,
            tensor: name.to_string(),
            expected: shape.to_vec(),
            actual: t.dims().to_vec(),
        });
    }
    t.to_device(device)
        .and_then(|t| t.to_dtype(dtype))
        .map_err(|source| Error::Tensor {
            path: origin,
            tensor: name.to_string(),
            source,
        })
}

/// Looks up weights by HF name, checks shapes and converts to the compute dtype.
pub struct Weights {
    source: WeightSource,
    dtype: DType,
    device: Device,
}

impl Weights {
    /// Wraps a source; dense tensors come out in `dtype` on `device`.
    pub fn new(source: WeightSource, dtype: DType, device: Device) -> Self {
        Self {
            source,
            dtype,
            device,
        }
    }

    /// The compute dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device tensors are loaded on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether a tensor of this name exists.
    pub fn contains(&self, name: &str) -> bool {
        match &self.source {
            WeightSource::Safetensors(s) => s.contains(name),
            WeightSource::Gguf(g) => g.contains(name),
            WeightSource::Tensors(m) => m.contains_key(name),
        }
    }

    /// A dense tensor of the given shape (norm weights, biases, embeddings).
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        match &self.source {
            WeightSource::Safetensors(s) => s.load(name, shape, self.dtype, &self.device),
            WeightSource::Gguf(g) => g.dense(name, shape, self.dtype, &self.device),
            WeightSource::Tensors(m) => in_memory(m, name, shape, self.dtype, &self.device),
        }
    }

    /// The frozen weight of a linear layer with `out_dim` outputs and `in_dim` inputs.
    ///
    /// `conv1d` marks GPT-2's Conv1D layout: stored [in, out], returned as [out, in].
    pub fn linear(
        &self,
        name: &str,
        out_dim: usize,
        in_dim: usize,
        conv1d: bool,
    ) -> Result<BaseWeight> {
        match &self.source {
            WeightSource::Safetensors(s) => {
                let w = if conv1d {
                    s.load(name, &[in_dim, out_dim], self.dtype, &self.device)?
                        .t()
                        .and_then(|t| t.contiguous())
                        .map_err(|source| Error::Tensor {
                            path: s.origin.clone(),
                            tensor: name.to_string(),
                            source,
                        })?
                } else {
                    s.load(name, &[out_dim, in_dim], self.dtype, &self.device)?
                };
                Ok(BaseWeight::Dense(w))
            }
            WeightSource::Gguf(g) => g.linear(name, out_dim, in_dim, self.dtype, &self.device),
            WeightSource::Tensors(m) => {
                let w = in_memory(m, name, &[out_dim, in_dim], self.dtype, &self.device)?;
                Ok(BaseWeight::Dense(w))
            }
        }
    }

    /// The quantized tensor behind `name`, when the source keeps it quantized (GGUF).
    pub fn quantized(&self, name: &str) -> Option<Arc<candle_core::quantized::QTensor>> {
        match &self.source {
            WeightSource::Safetensors(_) | WeightSource::Tensors(_) => None,
            WeightSource::Gguf(g) => g.quantized(name),
        }
    }
}
