//! GGUF (llama architecture) → the same decoder: metadata → [`ModelConfig`], tensors renamed to
//! HF names, quantized matrices kept quantized.
//!
//! llama.cpp stores the q/k projection rows of each head interleaved for adjacent-pair RoPE:
//! HF row `h·D + j·D/2 + i` (j ∈ {0, 1}) sits at GGUF row `h·D + 2i + j`. Rows are moved back at
//! load so that HF's `rotate_half` RoPE applies. Whole rows are moved, which works on quantized
//! bytes because a row is a whole number of GGML blocks.

use crate::config::{Activation, Arch, ModelConfig, NormKind, RopeConfig, RopeScaling};
use crate::error::{Error, Result};
use crate::linear::BaseWeight;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// GGUF tensors under HF names.
pub struct GgufWeights {
    path: PathBuf,
    tensors: HashMap<String, Arc<QTensor>>,
}

/// Everything medtune reads from a GGUF file.
pub struct GgufModel {
    /// Model config from `llama.*` metadata.
    pub config: ModelConfig,
    /// Tensors under HF names.
    pub weights: GgufWeights,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
    /// `tokenizer.ggml.tokens`, for rendering special tokens.
    pub tokens: Vec<String>,
    /// Tensor name, GGML type and shape [out, in] (GGUF names), for `inspect`.
    pub tensor_infos: Vec<(String, String, Vec<usize>)>,
    /// All metadata key/values (the `tokenizer.*` keys feed [`crate::gguf_tokenizer`]).
    pub metadata: HashMap<String, Value>,
}

impl GgufWeights {
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<&Arc<QTensor>> {
        let q = self.tensors.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.clone(),
            tensor: name.to_string(),
        })?;
        if q.shape().dims() != shape {
            return Err(Error::WrongShape {
                path: self.path.clone(),
                tensor: name.to_string(),
                expected: shape.to_vec(),
                actual: q.shape().dims().to_vec(),
            });
        }
        Ok(q)
    }

    pub(crate) fn dense(
        &self,
        name: &str,
        shape: &[usize],
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let q = self.get(name, shape)?;
        q.dequantize(device)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(|source| Error::Tensor {
                path: self.path.clone(),
                tensor: name.to_string(),
                source,
            })
    }

    pub(crate) fn linear(
        &self,
        name: &str,
        out_dim: usize,
        in_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<BaseWeight> {
        let q = self.get(name, &[out_dim, in_dim])?;
        match q.dtype() {
            GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => Ok(BaseWeight::Dense(
                self.dense(name, &[out_dim, in_dim], dtype, device)?,
            )),
            _ => Ok(BaseWeight::Quantized(q.clone())),
        }
    }

    pub(crate) fn quantized(&self, name: &str) -> Option<Arc<QTensor>> {
        self.tensors
            .get(name)
            .filter(|q| !matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16))
            .cloned()
    }
}

/// Reads a GGUF file: metadata, then every tensor (renamed, Q/K rows restored).
pub fn open(path: &Path, device: &Device) -> Result<GgufModel> {
    let bad = |message: String| Error::BadFile {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let content = Content::read(&mut file).map_err(|e| {
        bad(format!(
            "not a valid GGUF file (truncated or corrupt?): {e}"
        ))
    })?;
    let md = Meta {
        map: &content.metadata,
        path,
    };
    let arch = md.string("general.architecture")?;
    if arch != "llama" {
        return Err(Error::config(
            path,
            "general.architecture",
            format!("unsupported GGUF architecture `{arch}` (supported: llama)"),
        ));
    }
    let config = md.llama_config(&content)?;
    let mut tensors = HashMap::new();
    let mut tensor_infos = Vec::new();
    let mut names: Vec<&String> = content.tensor_infos.keys().collect();
    names.sort();
    for name in names {
        let info = &content.tensor_infos[name];
        tensor_infos.push((
            name.clone(),
            format!("{:?}", info.ggml_dtype),
            info.shape.dims().to_vec(),
        ));
        let q = content
            .tensor(&mut file, name, device)
            .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        let Some(hf) = hf_name(name) else {
            if name == "rope_freqs.weight" {
                return Err(Error::config(
                    path,
                    "rope_freqs.weight",
                    "per-frequency RoPE factors (Llama-3.1 GGUF) are not supported",
                ));
            }
            continue;
        };
        let q = if hf.ends_with("self_attn.q_proj.weight") {
            unpermute_rows(&q, config.num_heads, device)
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))?
        } else if hf.ends_with("self_attn.k_proj.weight") {
            unpermute_rows(&q, config.num_kv_heads, device)
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))?
        } else {
            q
        };
        let q = cpu_fast_kernel(q, device).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        tensors.insert(hf, Arc::new(q));
    }
    let tokens = match content.metadata.get("tokenizer.ggml.tokens") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.to_string().cloned().unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    };
    let chat_template = match content.metadata.get("tokenizer.chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(GgufModel {
        config,
        weights: GgufWeights {
            path: path.to_path_buf(),
            tensors,
        },
        chat_template,
        tokens,
        tensor_infos,
        metadata: content.metadata,
    })
}

/// GGUF llama tensor name → HF name; `None` for tensors the decoder does not use.
/// GGML types whose CPU matmul in candle has no SIMD kernel (Q4_1, Q5_0, Q5_1 run a scalar
/// `vec_dot`, measured ~20× slower per weight than Q8_0 here) are re-quantized to Q8_0 on the CPU:
/// the base stays frozen and quantized (8.5 bits/weight), and the 4-bit values are represented
/// within Q8_0's rounding (≤ 1/254 of each 32-block's absmax). Other types and other devices
/// keep the file's quantization.
fn cpu_fast_kernel(q: QTensor, device: &Device) -> candle_core::Result<QTensor> {
    let slow = matches!(
        q.dtype(),
        GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1
    );
    if !device.is_cpu() || !slow || q.shape().dims().last().is_none_or(|d| d % 32 != 0) {
        return Ok(q);
    }
    QTensor::quantize(&q.dequantize(device)?, GgmlDType::Q8_0)
}

pub fn hf_name(gguf: &str) -> Option<String> {
    let simple = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(s) = simple {
        return Some(s.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = tail.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// Moves q/k rows from llama.cpp's interleaved layout back to HF's: new row
/// `h·D + j·D/2 + i` = old row `h·D + 2i + j`. Works on raw bytes (whole GGML blocks per row).
pub fn unpermute_rows(q: &QTensor, heads: usize, device: &Device) -> candle_core::Result<QTensor> {
    permute_rows(q, heads, device, false)
}

/// The inverse of [`unpermute_rows`]: HF layout → llama.cpp's (used to write test GGUFs).
pub fn permute_rows(
    q: &QTensor,
    heads: usize,
    device: &Device,
    to_gguf: bool,
) -> candle_core::Result<QTensor> {
    let (rows, _) = q.shape().dims2()?;
    if heads == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) {
        candle_core::bail!("{rows} rows cannot be split into {heads} heads of even size")
    }
    let d = rows / heads;
    let data = q.data()?;
    let row_bytes = data.len() / rows;
    let mut out = vec![0u8; data.len()];
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..d / 2 {
                let hf_row = h * d + j * (d / 2) + i;
                let gguf_row = h * d + 2 * i + j;
                let (dst, src) = if to_gguf {
                    (gguf_row, hf_row)
                } else {
                    (hf_row, gguf_row)
                };
                out[dst * row_bytes..(dst + 1) * row_bytes]
                    .copy_from_slice(&data[src * row_bytes..(src + 1) * row_bytes]);
            }
        }
    }
    let storage = QStorage::from_data(Cow::Owned(out), device, q.dtype())?;
    QTensor::new(storage, q.shape().clone())
}

/// Typed metadata access with errors naming the file and key.
struct Meta<'a> {
    map: &'a HashMap<String, Value>,
    path: &'a Path,
}

impl Meta<'_> {
    fn get(&self, key: &str) -> Result<&Value> {
        self.map
            .get(key)
            .ok_or_else(|| Error::config(self.path, key, "missing GGUF metadata key"))
    }

    fn string(&self, key: &str) -> Result<String> {
        self.get(key)?
            .to_string()
            .cloned()
            .map_err(|e| Error::config(self.path, key, e.to_string()))
    }

    fn usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key)?;
        let n = v
            .to_u64()
            .or_else(|_| v.to_u32().map(u64::from))
            .or_else(|_| v.to_i32().map(|x| x.max(0) as u64))
            .or_else(|_| v.to_i64().map(|x| x.max(0) as u64))
            .map_err(|e| Error::config(self.path, key, e.to_string()))?;
        Ok(n as usize)
    }

    fn usize_opt(&self, key: &str) -> Result<Option<usize>> {
        if self.map.contains_key(key) {
            self.usize(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => v
                .to_f32()
                .map(f64::from)
                .or_else(|_| v.to_f64())
                .map(Some)
                .map_err(|e| Error::config(self.path, key, e.to_string())),
        }
    }

    fn token_id(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.usize_opt(key)?.map(|x| x as u32))
    }

    fn llama_config(&self, content: &Content) -> Result<ModelConfig> {
        let hidden = self.usize("llama.embedding_length")?;
        let heads = self.usize("llama.attention.head_count")?;
        let kv_heads = self
            .usize_opt("llama.attention.head_count_kv")?
            .unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || hidden % heads != 0 {
            return Err(Error::config(
                self.path,
                "llama.attention.head_count_kv",
                format!("{kv_heads} KV heads, {heads} heads and hidden size {hidden} do not fit"),
            ));
        }
        let head_dim = self
            .usize_opt("llama.attention.key_length")?
            .unwrap_or(hidden / heads);
        let vocab = match self.usize_opt("llama.vocab_size")? {
            Some(v) => v,
            None => match content.tensor_infos.get("token_embd.weight") {
                Some(info) => info.shape.dims()[0],
                None => {
                    return Err(Error::MissingTensor {
                        path: self.path.to_path_buf(),
                        tensor: "token_embd.weight".into(),
                    })
                }
            },
        };
        let rotary_dim = self
            .usize_opt("llama.rope.dimension_count")?
            .unwrap_or(head_dim);
        let scaling = match self.map.get("llama.rope.scaling.type") {
            None => RopeScaling::None,
            Some(v) => match v.to_string().map(String::as_str) {
                Ok("none") => RopeScaling::None,
                Ok("linear") => RopeScaling::Linear {
                    factor: self.f64_opt("llama.rope.scaling.factor")?.unwrap_or(1.0),
                },
                _ => {
                    return Err(Error::config(
                        self.path,
                        "llama.rope.scaling.type",
                        format!("unsupported RoPE scaling {v:?}"),
                    ))
                }
            },
        };
        let has_output = content.tensor_infos.contains_key("output.weight");
        Ok(ModelConfig {
            arch: Arch::Llama,
            vocab_size: vocab,
            hidden_size: hidden,
            intermediate_size: self.usize("llama.feed_forward_length")?,
            num_layers: self.usize("llama.block_count")?,
            num_heads: heads,
            num_kv_heads: kv_heads,
            head_dim,
            max_position_embeddings: self.usize_opt("llama.context_length")?.unwrap_or(4096),
            norm: NormKind::RmsNorm,
            norm_eps: self
                .f64_opt("llama.attention.layer_norm_rms_epsilon")?
                .unwrap_or(1e-5),
            activation: Activation::Silu,
            rope: Some(RopeConfig {
                theta: self.f64_opt("llama.rope.freq_base")?.unwrap_or(10_000.0),
                rotary_dim,
                scaling,
            }),
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            lm_head_bias: false,
            tie_word_embeddings: !has_output,
            sliding_window: None,
            bos_token_id: self.token_id("tokenizer.ggml.bos_token_id")?,
            eos_token_ids: self
                .token_id("tokenizer.ggml.eos_token_id")?
                .into_iter()
                .collect(),
            pad_token_id: self.token_id("tokenizer.ggml.padding_token_id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_name("blk.3.attn_q.weight").as_deref(),
            Some("model.layers.3.self_attn.q_proj.weight")
        );
        assert_eq!(hf_name("output.weight").as_deref(), Some("lm_head.weight"));
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
    }

    #[test]
    fn permutation_round_trips() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::arange(0f32, 8. * 32., &dev)?.reshape((8, 32))?;
        let q = QTensor::quantize(&w, GgmlDType::F32)?;
        let g = permute_rows(&q, 2, &dev, true)?;
        // head 0 (D = 4): GGUF rows are HF rows 0, 2, 1, 3.
        let gw = g.dequantize(&dev)?;
        assert_eq!(gw.get(1)?.get(0)?.to_scalar::<f32>()?, 64.0);
        let back = unpermute_rows(&g, 2, &dev)?.dequantize(&dev)?;
        let diff: f32 = (back - w)?.abs()?.sum_all()?.to_scalar()?;
        assert_eq!(diff, 0.0);
        Ok(())
    }
}
