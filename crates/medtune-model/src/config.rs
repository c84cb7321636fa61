//! Hugging Face `config.json` → one normalised [`ModelConfig`] for all six families.
//!
//! Each family spells its dimensions differently (`n_embd` vs `hidden_size`), and RoPE settings
//! live either at the top level (`rope_theta`, `rope_scaling`) or, since transformers 5, in
//! `rope_parameters`. This module reads them all into the same struct.

use crate::error::{Error, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// The model families medtune implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama 2/3, SmolLM: RMSNorm, SwiGLU, RoPE, GQA.
    Llama,
    /// Mistral: Llama plus an optional sliding attention window.
    Mistral,
    /// Qwen2: Llama plus q/k/v biases, usually tied embeddings.
    Qwen2,
    /// Phi-3: fused `qkv_proj` and `gate_up_proj`.
    Phi3,
    /// Phi-2: LayerNorm, partial rotary, parallel attention and MLP, `dense`, `fc1`/`fc2`.
    Phi,
    /// GPT-2: LayerNorm, Conv1D weights stored [in, out], learned positions, tied head.
    Gpt2,
}

impl Arch {
    /// The HF `model_type` string.
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Qwen2 => "qwen2",
            Arch::Phi3 => "phi3",
            Arch::Phi => "phi",
            Arch::Gpt2 => "gpt2",
        }
    }

    fn from_model_type(s: &str) -> Option<Self> {
        Some(match s {
            "llama" => Arch::Llama,
            "mistral" => Arch::Mistral,
            "qwen2" => Arch::Qwen2,
            "phi3" => Arch::Phi3,
            "phi" => Arch::Phi,
            "gpt2" => Arch::Gpt2,
            _ => return None,
        })
    }
}

/// Normalisation layer kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormKind {
    /// `x / sqrt(mean(x²) + eps) * w`.
    RmsNorm,
    /// `(x - mean) / sqrt(var + eps) * w + b`.
    LayerNorm,
}

/// MLP activation function (HF `hidden_act` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu` / `swish`: `x·sigmoid(x)`.
    Silu,
    /// `gelu_new`, `gelu_pytorch_tanh`: tanh approximation of GELU.
    GeluTanh,
    /// `gelu`: exact GELU with erf.
    Gelu,
    /// `relu`.
    Relu,
}

impl Activation {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "silu" | "swish" => Activation::Silu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            _ => return None,
        })
    }
}

/// How RoPE frequencies are rescaled for long contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// `rope_type: linear`: every inverse frequency divided by `factor`.
    Linear {
        /// Divisor of the inverse frequencies.
        factor: f64,
    },
    /// `rope_type: llama3`: long wavelengths divided by `factor`, short ones kept, a smooth
    /// blend in between.
    Llama3 {
        /// Divisor for the long wavelengths.
        factor: f64,
        /// Wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
        low_freq_factor: f64,
        /// Wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
        high_freq_factor: f64,
        /// The context length of pre-training.
        original_max_position_embeddings: f64,
    },
}

/// Rotary position embedding settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeConfig {
    /// Base of the inverse frequencies (`rope_theta`).
    pub theta: f64,
    /// Number of leading head dimensions that are rotated (even; `head_dim` unless partial).
    pub rotary_dim: usize,
    /// Frequency rescaling.
    pub scaling: RopeScaling,
}

/// One normalised configuration for every supported family.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// Model family.
    pub arch: Arch,
    /// Vocabulary size V.
    pub vocab_size: usize,
    /// Hidden size C.
    pub hidden_size: usize,
    /// MLP inner size.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_layers: usize,
    /// Number of query heads H.
    pub num_heads: usize,
    /// Number of key/value heads (H for plain multi-head attention).
    pub num_kv_heads: usize,
    /// Per-head dimension D.
    pub head_dim: usize,
    /// Longest supported sequence (size of the RoPE table / learned position table).
    pub max_position_embeddings: usize,
    /// Normalisation kind.
    pub norm: NormKind,
    /// Normalisation epsilon.
    pub norm_eps: f64,
    /// MLP activation.
    pub activation: Activation,
    /// RoPE settings; `None` for learned absolute positions (GPT-2).
    pub rope: Option<RopeConfig>,
    /// Biases on q/k/v projections.
    pub qkv_bias: bool,
    /// Bias on the attention output projection.
    pub o_bias: bool,
    /// Biases on MLP projections.
    pub mlp_bias: bool,
    /// Bias on the LM head (Phi-2).
    pub lm_head_bias: bool,
    /// LM head shares the token embedding matrix.
    pub tie_word_embeddings: bool,
    /// Mistral sliding window: a query at i sees keys j with `i - j < window`.
    pub sliding_window: Option<usize>,
    /// Beginning-of-sequence token id.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token ids (possibly several).
    pub eos_token_ids: Vec<u32>,
    /// Padding token id.
    pub pad_token_id: Option<u32>,
}

impl ModelConfig {
    /// Reads and normalises a HF `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses the text of a HF `config.json`; `path` is only used in error messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let obj = value
            .as_object()
            .ok_or_else(|| Error::config(path, "<root>", "expected a JSON object"))?;
        Fields { obj, path }.parse()
    }

    /// Number of rows of the fused or separate q projection: `H * D`.
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Number of rows of the k (or v) projection: `H_kv * D`.
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }
}

/// A config object plus its path, for typed field access with good errors.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
}

impl Fields<'_> {
    fn err(&self, field: &str, message: impl Into<String>) -> Error {
        Error::config(self.path, field, message)
    }

    /// First present, non-null key of `names`, as usize.
    fn usize_any(&self, names: &[&str]) -> Result<Option<usize>> {
        for name in names {
            match self.obj.get(*name) {
                None | Some(Value::Null) => continue,
                Some(v) => {
                    return v.as_u64().map(|x| Some(x as usize)).ok_or_else(|| {
                        self.err(name, format!("expected a non-negative integer, got {v}"))
                    })
                }
            }
        }
        Ok(None)
    }

    fn usize_req(&self, names: &[&str]) -> Result<usize> {
        self.usize_any(names)?
            .ok_or_else(|| self.err(names[0], "missing"))
    }

    fn f64_opt(&self, name: &str) -> Result<Option<f64>> {
        f64_in(self.obj, name, self.path, name)
    }

    fn bool_or(&self, name: &str, default: bool) -> Result<bool> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.err(name, format!("expected a boolean, got {v}"))),
        }
    }

    fn token_ids(&self, name: &str) -> Result<Vec<u32>> {
        token_ids(self.obj.get(name), self.path, name)
    }

    fn parse(&self) -> Result<ModelConfig> {
        let model_type = match self.obj.get("model_type") {
            Some(Value::String(s)) => s.as_str(),
            Some(v) => return Err(self.err("model_type", format!("expected a string, got {v}"))),
            None => return Err(self.err("model_type", "missing")),
        };
        let arch = Arch::from_model_type(model_type).ok_or_else(|| {
            self.err(
                "model_type",
                format!(
                    "unsupported model type `{model_type}` (supported: llama, mistral, qwen2, phi3, phi, gpt2)"
                ),
            )
        })?;
        let hidden_size = self.usize_req(&["hidden_size", "n_embd"])?;
        let num_heads = self.usize_req(&["num_attention_heads", "n_head"])?;
        let num_layers = self.usize_req(&["num_hidden_layers", "n_layer"])?;
        let vocab_size = self.usize_req(&["vocab_size"])?;
        let intermediate_size = match arch {
            Arch::Gpt2 => self.usize_any(&["n_inner"])?.unwrap_or(4 * hidden_size),
            _ => self.usize_req(&["intermediate_size"])?,
        };
        let num_kv_heads = self
            .usize_any(&["num_key_value_heads"])?
            .unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(self.err(
                "num_key_value_heads",
                format!("{num_kv_heads} does not divide num_attention_heads {num_heads}"),
            ));
        }
        let head_dim = match self.usize_any(&["head_dim"])? {
            Some(d) => d,
            None => {
                if hidden_size % num_heads != 0 {
                    return Err(self.err(
                        "hidden_size",
                        format!("{hidden_size} is not divisible by {num_heads} heads"),
                    ));
                }
                hidden_size / num_heads
            }
        };
        let max_position_embeddings = self
            .usize_any(&["max_position_embeddings", "n_positions"])?
            .unwrap_or(4096);
        let (norm, norm_eps) = match arch {
            Arch::Phi => (
                NormKind::LayerNorm,
                self.f64_opt("layer_norm_eps")?.unwrap_or(1e-5),
            ),
            Arch::Gpt2 => (
                NormKind::LayerNorm,
                self.f64_opt("layer_norm_epsilon")?.unwrap_or(1e-5),
            ),
            _ => (
                NormKind::RmsNorm,
                self.f64_opt("rms_norm_eps")?.unwrap_or(1e-6),
            ),
        };
        let act_field = if arch == Arch::Gpt2 {
            "activation_function"
        } else {
            "hidden_act"
        };
        let activation = match self.obj.get(act_field) {
            None | Some(Value::Null) => {
                if matches!(arch, Arch::Gpt2 | Arch::Phi) {
                    Activation::GeluTanh
                } else {
                    Activation::Silu
                }
            }
            Some(Value::String(s)) => Activation::parse(s)
                .ok_or_else(|| self.err(act_field, format!("unsupported activation `{s}`")))?,
            Some(v) => return Err(self.err(act_field, format!("expected a string, got {v}"))),
        };
        let rope = match arch {
            Arch::Gpt2 => None,
            _ => Some(self.rope(arch, head_dim)?),
        };
        let attention_bias = self.bool_or("attention_bias", false)?;
        let (qkv_bias, o_bias, mlp_bias, lm_head_bias) = match arch {
            Arch::Qwen2 => (true, false, false, false),
            Arch::Phi | Arch::Gpt2 => (true, true, true, arch == Arch::Phi),
            Arch::Phi3 => (false, false, false, false),
            Arch::Llama | Arch::Mistral => (
                attention_bias,
                attention_bias,
                self.bool_or("mlp_bias", false)?,
                false,
            ),
        };
        let tie_default = matches!(arch, Arch::Gpt2);
        let tie_word_embeddings = self.bool_or("tie_word_embeddings", tie_default)?;
        let sliding_window = match arch {
            Arch::Mistral => self.usize_any(&["sliding_window"])?,
            Arch::Qwen2 if self.bool_or("use_sliding_window", false)? => {
                self.usize_any(&["sliding_window"])?
            }
            _ => None,
        };
        let bos = self.token_ids("bos_token_id")?;
        let pad = self.token_ids("pad_token_id")?;
        Ok(ModelConfig {
            arch,
            vocab_size,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            max_position_embeddings,
            norm,
            norm_eps,
            activation,
            rope,
            qkv_bias,
            o_bias,
            mlp_bias,
            lm_head_bias,
            tie_word_embeddings,
            sliding_window,
            bos_token_id: bos.first().copied(),
            eos_token_ids: self.token_ids("eos_token_id")?,
            pad_token_id: pad.first().copied(),
        })
    }

    /// RoPE from `rope_parameters` (transformers 5) or top-level `rope_theta` + `rope_scaling`.
    fn rope(&self, arch: Arch, head_dim: usize) -> Result<RopeConfig> {
        let params = match self.obj.get("rope_parameters") {
            Some(Value::Object(p)) => Some(p),
            Some(Value::Null) | None => None,
            Some(v) => {
                return Err(self.err("rope_parameters", format!("expected an object, got {v}")))
            }
        };
        let theta = match params {
            Some(p) => f64_in(p, "rope_theta", self.path, "rope_parameters.rope_theta")?,
            None => None,
        };
        let theta = match theta {
            Some(t) => t,
            None => self.f64_opt("rope_theta")?.unwrap_or(10_000.0),
        };
        let partial = match params {
            Some(p) => f64_in(
                p,
                "partial_rotary_factor",
                self.path,
                "rope_parameters.partial_rotary_factor",
            )?,
            None => None,
        };
        let partial = match partial {
            Some(f) => f,
            None => self
                .f64_opt("partial_rotary_factor")?
                .unwrap_or(if arch == Arch::Phi { 0.5 } else { 1.0 }),
        };
        let rotary_dim = (head_dim as f64 * partial) as usize;
        if rotary_dim == 0 || !rotary_dim.is_multiple_of(2) || rotary_dim > head_dim {
            return Err(self.err(
                "partial_rotary_factor",
                format!("gives rotary dim {rotary_dim} for head_dim {head_dim}; need an even number in 2..=head_dim"),
            ));
        }
        // Scaling: transformers 5 keeps rope_type and its factors inside rope_parameters;
        // older configs use a separate `rope_scaling` object.
        let (scaling_obj, field) = match (params, self.obj.get("rope_scaling")) {
            (_, Some(Value::Object(s))) => (Some(s), "rope_scaling"),
            (Some(p), _) => (Some(p), "rope_parameters"),
            (None, None | Some(Value::Null)) => (None, ""),
            (None, Some(v)) => {
                return Err(self.err("rope_scaling", format!("expected an object, got {v}")))
            }
        };
        let scaling = match scaling_obj {
            None => RopeScaling::None,
            Some(s) => parse_scaling(s, self.path, field)?,
        };
        Ok(RopeConfig {
            theta,
            rotary_dim,
            scaling,
        })
    }
}

fn parse_scaling(s: &Map<String, Value>, path: &Path, field: &str) -> Result<RopeScaling> {
    let kind = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let need = |name: &str| -> Result<f64> {
        let full = format!("{field}.{name}");
        f64_in(s, name, path, &full)?.ok_or_else(|| Error::config(path, &full, "missing"))
    };
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: need("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_max_position_embeddings: need("original_max_position_embeddings")?,
        },
        other => {
            return Err(Error::config(
                path,
                format!("{field}.rope_type"),
                format!("unsupported RoPE scaling `{other}` (supported: default, linear, llama3)"),
            ))
        }
    })
}

fn f64_in(obj: &Map<String, Value>, name: &str, path: &Path, field: &str) -> Result<Option<f64>> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::config(path, field, format!("expected a number, got {v}"))),
    }
}

/// A token id field that may be null, an integer or a list of integers.
pub(crate) fn token_ids(v: Option<&Value>, path: &Path, field: &str) -> Result<Vec<u32>> {
    let one = |v: &Value| -> Result<u32> {
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .ok_or_else(|| Error::config(path, field, format!("expected a token id, got {v}")))
    };
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModelConfig> {
        ModelConfig::from_json_str(text, Path::new("config.json"))
    }

    #[test]
    fn gpt2_names_are_mapped() {
        let c = parse(
            r#"{"model_type":"gpt2","n_embd":64,"n_head":4,"n_layer":2,"n_inner":null,
                "vocab_size":100,"n_positions":32,"activation_function":"gelu_new"}"#,
        )
        .unwrap();
        assert_eq!(c.intermediate_size, 256);
        assert_eq!(c.head_dim, 16);
        assert!(c.rope.is_none());
        assert!(c.tie_word_embeddings);
        assert_eq!(c.norm, NormKind::LayerNorm);
    }

    #[test]
    fn bad_rope_type_names_field() {
        let e = parse(
            r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,
                "num_hidden_layers":1,"vocab_size":10,"intermediate_size":8,
                "rope_scaling":{"rope_type":"yarn","factor":2.0}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rope_scaling.rope_type"), "{e}");
    }

    #[test]
    fn eos_list_is_accepted() {
        let c = parse(
            r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,
                "num_hidden_layers":1,"vocab_size":10,"intermediate_size":8,
                "eos_token_id":[5,7]}"#,
        )
        .unwrap();
        assert_eq!(c.eos_token_ids, vec![5, 7]);
    }
}
