//! Embedding similarity with a BERT encoder written on candle.
//!
//! The encoder is a plain BERT (Devlin et al. 2019) as in HF `BertModel`:
//! embeddings (word + position + token type) → LayerNorm → L × [self-attention,
//! residual + LayerNorm, GELU feed-forward, residual + LayerNorm]. Weights keep
//! their HF names (`encoder.layer.{i}.attention.self.query.weight`, ...). The
//! default model is sentence-transformers' all-MiniLM-L6-v2 (L 6, C 384, 12 heads).
//!
//! Two similarities:
//! - [`Encoder::sentence_cosine`]: cosine of mean-pooled last-layer token vectors
//!   (sentence-transformers' pooling for this model).
//! - [`Encoder::bert_score`]: BERTScore-style greedy matching (Zhang et al. 2020)
//!   on last-layer token vectors without `[CLS]`/`[SEP]`, no idf weights and no
//!   baseline rescaling: P = mean over hypothesis tokens of the best cosine with
//!   a reference token, R likewise from the reference side, F = 2PR/(P+R).
//!
//! Shapes: T tokens in one sequence, C hidden size, H heads, D = C/H.

use super::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use std::collections::HashMap;
use std::path::Path;

/// The `config.json` keys the encoder needs (HF BERT spelling).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: String,
}

struct Linear {
    /// (out, in)
    weight: Tensor,
    /// (out,)
    bias: Tensor,
}

impl Linear {
    /// (T, in) → (T, out)
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// (T, C) → (T, C), normalised over C.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

/// A loaded BERT encoder with its tokenizer.
pub struct Encoder {
    config: BertConfig,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
}

/// BERTScore-style precision, recall and F1.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BertScore {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// Longest input in tokens (sentence-transformers' `max_seq_length` for MiniLM).
pub const MAX_SEQ_LEN: usize = 256;

fn tok_err(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer {
        context: context.to_string(),
        msg: e.to_string(),
    }
}

impl Encoder {
    /// Loads `config.json`, `model.safetensors` and `tokenizer.json` from `dir`;
    /// computes in `dtype` (F32 normally, F64 for reference checks).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|source| Error::Io {
            path: cfg_path.clone(),
            source,
        })?;
        let config: BertConfig = serde_json::from_str(&cfg_text).map_err(|e| Error::Parse {
            path: cfg_path.clone(),
            line: e.line(),
            msg: e.to_string(),
        })?;
        if config.hidden_act != "gelu" {
            return Err(Error::Invalid(format!(
                "{}: hidden_act {:?} is not supported (only \"gelu\")",
                cfg_path.display(),
                config.hidden_act
            )));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(Error::Invalid(format!(
                "{}: hidden_size {} is not a multiple of num_attention_heads {}",
                cfg_path.display(),
                config.hidden_size,
                config.num_attention_heads
            )));
        }
        let weights_path = dir.join("model.safetensors");
        let tensors = candle_core::safetensors::load(&weights_path, device)?;
        let w = Weights {
            map: tensors,
            dtype,
            path: weights_path.display().to_string(),
        };
        let c = config.hidden_size;
        let norm = |p: &str| -> Result<LayerNorm> {
            Ok(LayerNorm {
                weight: w.get(&format!("{p}.weight"), &[c])?,
                bias: w.get(&format!("{p}.bias"), &[c])?,
                eps: config.layer_norm_eps,
            })
        };
        let linear = |p: &str, out: usize, inp: usize| -> Result<Linear> {
            Ok(Linear {
                weight: w.get(&format!("{p}.weight"), &[out, inp])?,
                bias: w.get(&format!("{p}.bias"), &[out])?,
            })
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let f = config.intermediate_size;
            layers.push(Layer {
                query: linear(&format!("{p}.attention.self.query"), c, c)?,
                key: linear(&format!("{p}.attention.self.key"), c, c)?,
                value: linear(&format!("{p}.attention.self.value"), c, c)?,
                attn_out: linear(&format!("{p}.attention.output.dense"), c, c)?,
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                intermediate: linear(&format!("{p}.intermediate.dense"), f, c)?,
                output: linear(&format!("{p}.output.dense"), c, f)?,
                out_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let tok_path = dir.join("tokenizer.json");
        let ctx = tok_path.display().to_string();
        let mut tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| tok_err(&ctx, e))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length: MAX_SEQ_LEN.min(config.max_position_embeddings),
                ..Default::default()
            }))
            .map_err(|e| tok_err(&ctx, e))?;
        Ok(Self {
            word: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, c])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[config.max_position_embeddings, c],
            )?,
            token_type: w.get(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab_size, c],
            )?,
            emb_norm: norm("embeddings.LayerNorm")?,
            layers,
            tokenizer,
            device: device.clone(),
            config,
        })
    }

    /// Token ids of `text` with `[CLS]` … `[SEP]`, truncated to [`MAX_SEQ_LEN`].
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| tok_err("encode", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Last-layer hidden states of one sequence of ids: (T,) → (T, C).
    pub fn forward(&self, ids: &[u32]) -> Result<Tensor> {
        let t = ids.len();
        let (c, h) = (self.config.hidden_size, self.config.num_attention_heads);
        let d = c / h;
        let ids_t = Tensor::new(ids, &self.device)?;
        let pos = Tensor::arange(0u32, t as u32, &self.device)?;
        let x = self
            .word
            .index_select(&ids_t, 0)?
            .add(&self.position.index_select(&pos, 0)?)?
            .broadcast_add(&self.token_type.get(0)?)?;
        let mut x = self.emb_norm.forward(&x)?; // (T, C)
        let scale = 1.0 / (d as f64).sqrt();
        for layer in &self.layers {
            // (T, C) → (H, T, D)
            let heads = |y: Tensor| -> Result<Tensor> {
                Ok(y.reshape((t, h, d))?.transpose(0, 1)?.contiguous()?)
            };
            let q = heads(layer.query.forward(&x)?)?;
            let k = heads(layer.key.forward(&x)?)?;
            let v = heads(layer.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?; // (H, T, T)
            let probs = softmax_last(&scores)?;
            let ctx = probs
                .matmul(&v)? // (H, T, D)
                .transpose(0, 1)?
                .contiguous()?
                .reshape((t, c))?;
            let a = layer
                .attn_norm
                .forward(&(layer.attn_out.forward(&ctx)? + &x)?)?;
            let inter = layer.intermediate.forward(&a)?.gelu_erf()?; // (T, F)
            x = layer
                .out_norm
                .forward(&(layer.output.forward(&inter)? + &a)?)?;
        }
        Ok(x)
    }

    /// Both views of one text, from a single forward pass.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let hidden = self.forward(&self.token_ids(text)?)?; // (T, C)
        let mean_pooled = hidden.mean(0)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let rows = hidden.to_dtype(DType::F64)?.to_vec2::<f64>()?;
        let n = rows.len();
        // drop [CLS] and [SEP], normalise each token vector
        let content = rows
            .into_iter()
            .take(n.saturating_sub(1))
            .skip(1)
            .map(|v| {
                let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                v.into_iter().map(|x| x / norm).collect()
            })
            .collect();
        Ok(Encoded {
            mean_pooled,
            content,
        })
    }

    /// Mean-pooled sentence vector of `text`: (C,) as f64.
    pub fn sentence_embedding(&self, text: &str) -> Result<Vec<f64>> {
        Ok(self.encode(text)?.mean_pooled)
    }

    /// Cosine similarity of the mean-pooled vectors of two texts.
    pub fn sentence_cosine(&self, a: &str, b: &str) -> Result<f64> {
        Ok(self.encode(a)?.cosine(&self.encode(b)?))
    }

    /// BERTScore-style P/R/F1 of a hypothesis against one reference (zeros if either is empty).
    pub fn bert_score(&self, hypothesis: &str, reference: &str) -> Result<BertScore> {
        Ok(self
            .encode(hypothesis)?
            .bert_score(&self.encode(reference)?))
    }
}

/// One encoded text: the mean-pooled vector (C,) and the unit-normalised token
/// vectors without `[CLS]`/`[SEP]` (T−2, C).
#[derive(Debug, Clone)]
pub struct Encoded {
    pub mean_pooled: Vec<f64>,
    pub content: Vec<Vec<f64>>,
}

impl Encoded {
    /// Cosine of the mean-pooled vectors.
    pub fn cosine(&self, other: &Encoded) -> f64 {
        cosine(&self.mean_pooled, &other.mean_pooled)
    }

    /// BERTScore-style P/R/F1 with `self` as hypothesis and `reference` as reference.
    pub fn bert_score(&self, reference: &Encoded) -> BertScore {
        greedy_match(&self.content, &reference.content)
    }
}

/// Greedy matching on unit vectors: `h` (Th, C), `r` (Tr, C).
pub fn greedy_match(h: &[Vec<f64>], r: &[Vec<f64>]) -> BertScore {
    if h.is_empty() || r.is_empty() {
        return BertScore::default();
    }
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let sim: Vec<Vec<f64>> = h
        .iter()
        .map(|a| r.iter().map(|b| dot(a, b)).collect())
        .collect();
    let precision = sim
        .iter()
        .map(|row| row.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .sum::<f64>()
        / h.len() as f64;
    let recall = (0..r.len())
        .map(|j| {
            sim.iter()
                .map(|row| row[j])
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .sum::<f64>()
        / r.len() as f64;
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    BertScore {
        precision,
        recall,
        f1,
    }
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Softmax over the last dimension, from basic ops: (…, T) → (…, T).
fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    Ok(e.broadcast_div(&sum)?)
}

struct Weights {
    map: HashMap<String, Tensor>,
    dtype: DType,
    path: String,
}

impl Weights {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self
            .map
            .get(name)
            .ok_or_else(|| Error::Invalid(format!("{}: tensor {name} is missing", self.path)))?;
        if t.dims() != shape {
            return Err(Error::Invalid(format!(
                "{}: tensor {name} has shape {:?}, expected {shape:?}",
                self.path,
                t.dims()
            )));
        }
        Ok(t.to_dtype(self.dtype)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_match_of_hand_vectors() {
        let h = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let r = vec![vec![1.0, 0.0]];
        let s = greedy_match(&h, &r);
        // P = (1 + 0)/2, R = 1
        assert!((s.precision - 0.5).abs() < 1e-12);
        assert!((s.recall - 1.0).abs() < 1e-12);
        assert!((s.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(greedy_match(&[], &r), BertScore::default());
    }

    #[test]
    fn softmax_rows_sum_to_one() {
        let x = Tensor::new(&[[1.0f64, 2.0, 3.0], [0.0, 0.0, 0.0]], &Device::Cpu).expect("t");
        let s = softmax_last(&x)
            .expect("softmax")
            .to_vec2::<f64>()
            .expect("vec");
        assert!((s[1][0] - 1.0 / 3.0).abs() < 1e-12);
        assert!((s[0].iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn cosine_of_parallel_and_orthogonal() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-12);
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
    }
}
