//! Training-throughput benchmark (`medtune bench train`): random-init weights of a real model
//! shape built directly on the device (no files), LoRA on all seven projections, timed steps of
//! loss + backward + AdamW.
//!
//! It mirrors the baseline script (transformers + PEFT + bitsandbytes, `bench_hf.py`): random
//! token batches without padding, `labels = input_ids`, bf16 compute, gradient checkpointing
//! (here: layer-wise recompute), and reports tokens/s = B·T·steps / time of the timed steps.
//!
//! - [`BenchShape`]: the HF `config.json` of SmolLM2-135M, Llama-3.2-1B or Llama-3.1-8B (the
//!   baseline's 4,096-position RoPE table, no RoPE scaling).
//! - [`random_weights`]: every dense tensor by HF name; N(0, 0.02) from cuRAND (seeded) on CUDA,
//!   a uniform of the same variance from ChaCha8 on the CPU (candle's CPU RNG cannot be seeded).
//! - [`random_nf4`]: an NF4 + double-quant weight whose codes and 8-bit scales are drawn at
//!   random: the kernels' speed does not depend on the values, and quantizing 7 B weights on
//!   the host would dominate the run.
//! - [`run`] → [`BenchReport`]; peak device memory is sampled by [`gpu_mem::PeakProbe`].

pub mod gpu_mem;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use medtune_model::nf4::{dynamic_map, Nf4Tensor, DQ_BLOCKSIZE, NF4_BLOCKSIZE, NF4_CODE};
use medtune_model::{
    attach_lora, loss_and_grads, Backward, BaseWeight, DecoderLm, LoraConfig, LoraSet, ModelConfig,
    TrainBatch, WeightSource, Weights,
};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::optim::{AdamW, AdamWConfig, Grads, Optimizer};
use crate::{Error, Result};

/// Standard deviation of the random init (HF's `initializer_range`).
const INIT_STD: f64 = 0.02;
/// Learning rate of the timed AdamW steps (the baseline's).
const LR: f64 = 1e-4;

/// A model shape to benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BenchShape {
    /// SmolLM2-135M: 30 layers, hidden 576, 9 heads (3 kv), vocab 49,152, tied head.
    #[serde(rename = "smollm2-135m")]
    Smollm2_135m,
    /// Llama-3.2-1B: 16 layers, hidden 2,048, 32 heads (8 kv), vocab 128,256, tied head.
    #[serde(rename = "llama-1b")]
    Llama1b,
    /// Llama-3.1-8B: 32 layers, hidden 4,096, 32 heads (8 kv), vocab 128,256.
    #[serde(rename = "llama-8b")]
    Llama8b,
}

impl BenchShape {
    /// The CLI name (`smollm2-135m`, `llama-1b`, `llama-8b`), as the baseline script names them.
    pub fn name(self) -> &'static str {
        match self {
            BenchShape::Smollm2_135m => "smollm2-135m",
            BenchShape::Llama1b => "llama-1b",
            BenchShape::Llama8b => "llama-8b",
        }
    }

    /// The shape's HF `config.json` text.
    pub fn config_json(self) -> String {
        // (hidden, intermediate, layers, heads, kv heads, vocab, rope theta, tied head)
        let (h, i, l, nh, nkv, v, theta, tied) = match self {
            BenchShape::Smollm2_135m => (576, 1536, 30, 9, 3, 49152, 100000.0, true),
            BenchShape::Llama1b => (2048, 8192, 16, 32, 8, 128256, 500000.0, true),
            BenchShape::Llama8b => (4096, 14336, 32, 32, 8, 128256, 500000.0, false),
        };
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": h,
            "intermediate_size": i,
            "num_hidden_layers": l,
            "num_attention_heads": nh,
            "num_key_value_heads": nkv,
            "head_dim": h / nh,
            "vocab_size": v,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
            "hidden_act": "silu",
            "rope_theta": theta,
            "tie_word_embeddings": tied,
            "attention_bias": false,
            "mlp_bias": false,
        })
        .to_string()
    }

    /// The normalised config.
    pub fn config(self) -> Result<ModelConfig> {
        let origin = format!("<bench shape {}>", self.name());
        ModelConfig::from_json_str(&self.config_json(), Path::new(&origin)).map_err(Error::model)
    }
}

impl std::str::FromStr for BenchShape {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "smollm2-135m" => Ok(BenchShape::Smollm2_135m),
            "llama-1b" => Ok(BenchShape::Llama1b),
            "llama-8b" => Ok(BenchShape::Llama8b),
            _ => Err(Error::Config {
                field: "shape".into(),
                message: format!("`{s}`: expected smollm2-135m, llama-1b or llama-8b"),
            }),
        }
    }
}

/// How the frozen base is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BenchQuant {
    /// NF4 with double quantization (QLoRA); the LM head stays dense, as in bitsandbytes.
    #[serde(rename = "nf4-dq")]
    Nf4Dq,
    /// Dense base in the compute dtype (plain LoRA).
    #[serde(rename = "none")]
    None,
}

impl BenchQuant {
    /// The CLI / report name: `nf4-dq` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            BenchQuant::Nf4Dq => "nf4-dq",
            BenchQuant::None => "none",
        }
    }
}

/// Settings of one benchmark run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchOptions {
    /// Model shape.
    pub shape: BenchShape,
    /// Base storage.
    pub quant: BenchQuant,
    /// Sequences per step (B).
    pub batch: usize,
    /// Tokens per sequence (T).
    pub seq: usize,
    /// LoRA rank R.
    pub lora_r: usize,
    /// LoRA alpha (scale alpha / R).
    pub lora_alpha: f64,
    /// LoRA dropout on the adapter inputs (the adapters run in training mode).
    pub lora_dropout: f64,
    /// Timed steps.
    pub steps: usize,
    /// Untimed steps first (kernel compilation, allocator warm-up).
    pub warmup: usize,
    /// Layer-wise recompute (gradient checkpointing) instead of whole-graph backward.
    pub recompute: bool,
    /// Compute dtype of the base and activations (LoRA masters and optimizer stay f32).
    #[serde(serialize_with = "dtype_name")]
    pub dtype: DType,
    /// Seed of the weights, the adapters and the token batches.
    pub seed: u64,
    /// CUDA: after building, hold all free device memory but what keeps model plus training
    /// within this many GiB, so that a run that completes shows it fits (`None`: no limit).
    pub memory_limit_gib: Option<f64>,
    /// Build only this many decoder layers of the shape (`None`: all of them). For profiling:
    /// every layer runs the same kernels, so a few layers show the per-layer costs in a
    /// fraction of the time. Figures of such a run are not the shape's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layers: Option<usize>,
}

fn dtype_name<S: serde::Serializer>(d: &DType, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

impl BenchOptions {
    fn validate(&self) -> Result<()> {
        let bad = |field: &str, message: &str| {
            Err(Error::Config {
                field: field.into(),
                message: message.into(),
            })
        };
        if self.batch == 0 {
            return bad("batch", "must be at least 1");
        }
        if self.seq < 2 || self.seq > 4096 {
            return bad("seq", "must be in 2..=4096 (the benchmark's RoPE table)");
        }
        if self.lora_r == 0 {
            return bad("lora_r", "must be at least 1");
        }
        if self.steps == 0 {
            return bad("steps", "must be at least 1");
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad("lora_dropout", "must be in [0, 1)");
        }
        if self
            .memory_limit_gib
            .is_some_and(|g| g.is_nan() || g <= 0.0)
        {
            return bad("memory_limit_gib", "must be a positive number of GiB");
        }
        if let Some(l) = self.layers {
            let all = self.shape.config()?.num_layers;
            if l == 0 || l > all {
                return bad(
                    "layers",
                    &format!(
                        "must be in 1..={all} ({} has {all} layers)",
                        self.shape.name()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// The settings.
    pub options: BenchOptions,
    /// Device, e.g. `cuda:0` or `cpu`.
    pub device: String,
    /// Base parameters (embedding counted once when tied).
    pub base_params: usize,
    /// Trainable LoRA parameters.
    pub trainable_params: usize,
    /// Seconds to build the model, quantize and attach adapters.
    pub build_s: f64,
    /// Wall time of each timed step, seconds (device synchronised after each).
    pub step_s: Vec<f64>,
    /// B·T·steps / Σ step_s.
    pub tokens_per_s: f64,
    /// Mean seconds per timed step.
    pub s_per_step: f64,
    /// Median seconds per timed step.
    pub median_step_s: f64,
    /// Mean token loss of the last step.
    pub final_loss: f64,
    /// Device memory in use before the model was built, bytes (CUDA only).
    pub mem_before_bytes: Option<u64>,
    /// Highest device memory in use during the timed steps, bytes (CUDA only; sampled).
    pub mem_peak_bytes: Option<u64>,
    /// Peak bytes allocated to live tensors (model, adapters, optimizer, activations) from the
    /// end of the build to the end of the timed steps: the memory pool's high watermark,
    /// without what the pool keeps for reuse (CUDA only). The counterpart of PyTorch's
    /// `max_memory_allocated`, which the baseline reports.
    pub allocated_peak_bytes: Option<u64>,
    /// The `memory_limit_gib` hold actually made, bytes (excluded from the figures above
    /// except `mem_peak_bytes`).
    pub held_bytes: Option<u64>,
    /// Fused kernels in use on this device (see `medtune_model::fused`; `MEDTUNE_UNFUSED`).
    pub fused_ops: Vec<String>,
    /// Whether the recompute kept dense weights for the backward (`MEDTUNE_KEEP_WEIGHTS`).
    pub keep_weights: bool,
}

impl BenchReport {
    /// Peak memory over what was in use before the model was built (CUDA context and other
    /// processes excluded), GiB.
    pub fn peak_over_start_gib(&self) -> Option<f64> {
        match (self.mem_peak_bytes, self.mem_before_bytes) {
            (Some(p), Some(b)) => {
                Some(p.saturating_sub(b + self.held_bytes.unwrap_or(0)) as f64 / GIB)
            }
            _ => None,
        }
    }

    /// [`BenchReport::allocated_peak_bytes`] in GiB.
    pub fn allocated_peak_gib(&self) -> Option<f64> {
        self.allocated_peak_bytes.map(|b| b as f64 / GIB)
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// A random f32 tensor of `shape` with standard deviation `std`, in `dtype` on `device`.
///
/// CUDA: N(0, std) from cuRAND (seed it with `device.set_seed`). CPU: U(±√3·std) from `rng`.
pub fn random_tensor(
    shape: &[usize],
    std: f64,
    dtype: DType,
    device: &Device,
    rng: &mut ChaCha8Rng,
) -> Result<Tensor> {
    let t = if device.is_cpu() {
        let a = (3.0f64).sqrt() * std;
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random_range(-a..a) as f32).collect();
        Tensor::from_vec(v, shape, device)?
    } else {
        Tensor::randn(0f32, std as f32, shape, device)?
    };
    Ok(t.to_dtype(dtype)?)
}

/// `n` random bytes as a u8 [n] tensor on `device`.
fn random_bytes(n: usize, device: &Device, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    if device.is_cpu() {
        let mut v = vec![0u8; n];
        rng.fill_bytes(&mut v);
        Ok(Tensor::from_vec(v, n, device)?)
    } else {
        // U[0, 256) truncated to u8.
        Ok(Tensor::rand(0f32, 256f32, n, device)?.to_dtype(DType::U8)?)
    }
}

/// Every dense tensor of a llama-family `config` under its HF name: linear weights and the
/// embedding random ([`random_tensor`]), norm weights one.
pub fn random_weights(
    config: &ModelConfig,
    dtype: DType,
    device: &Device,
    seed: u64,
) -> Result<Weights> {
    if !device.is_cpu() {
        device.set_seed(seed)?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (h, i) = (config.hidden_size, config.intermediate_size);
    let (q, kv) = (config.q_dim(), config.kv_dim());
    let mut map = HashMap::new();
    let mut put = |name: String, shape: &[usize], rng: &mut ChaCha8Rng| -> Result<()> {
        map.insert(name, random_tensor(shape, INIT_STD, dtype, device, rng)?);
        Ok(())
    };
    put(
        "model.embed_tokens.weight".into(),
        &[config.vocab_size, h],
        &mut rng,
    )?;
    for l in 0..config.num_layers {
        let p = format!("model.layers.{l}");
        for (m, shape) in [
            ("self_attn.q_proj", [q, h]),
            ("self_attn.k_proj", [kv, h]),
            ("self_attn.v_proj", [kv, h]),
            ("self_attn.o_proj", [h, q]),
            ("mlp.gate_proj", [i, h]),
            ("mlp.up_proj", [i, h]),
            ("mlp.down_proj", [h, i]),
        ] {
            put(format!("{p}.{m}.weight"), &shape, &mut rng)?;
        }
    }
    if !config.tie_word_embeddings {
        put("lm_head.weight".into(), &[config.vocab_size, h], &mut rng)?;
    }
    let mut norms = vec!["model.norm.weight".to_string()];
    for l in 0..config.num_layers {
        norms.push(format!("model.layers.{l}.input_layernorm.weight"));
        norms.push(format!("model.layers.{l}.post_attention_layernorm.weight"));
    }
    for n in norms {
        map.insert(n, Tensor::ones(h, dtype, device)?);
    }
    Ok(Weights::new(
        WeightSource::Tensors(map),
        dtype,
        device.clone(),
    ))
}

/// An NF4 + double-quant weight of `shape` with random codes and random 8-bit block scales
/// (absmax in about [0.03, 0.07]) on `device`, in bitsandbytes' layout.
pub fn random_nf4(shape: &[usize], device: &Device, rng: &mut ChaCha8Rng) -> Result<Nf4Tensor> {
    let tag = "w";
    let n: usize = shape.iter().product();
    let n_blocks = n.div_ceil(NF4_BLOCKSIZE);
    let n2 = n_blocks.div_ceil(DQ_BLOCKSIZE);
    let mut parts = HashMap::new();
    parts.insert(
        format!("packed.{tag}"),
        random_bytes(n.div_ceil(2), device, rng)?,
    );
    parts.insert(
        format!("absmax_q.{tag}"),
        random_bytes(n_blocks, device, rng)?,
    );
    parts.insert(
        format!("code.{tag}"),
        Tensor::from_vec(NF4_CODE.to_vec(), 16, device)?,
    );
    parts.insert(
        format!("offset.{tag}"),
        Tensor::from_vec(vec![0.05f32], 1, device)?,
    );
    parts.insert(
        format!("state2_absmax.{tag}"),
        Tensor::from_vec(vec![0.02f32; n2], n2, device)?,
    );
    parts.insert(
        format!("state2_code.{tag}"),
        Tensor::from_vec(dynamic_map(true).to_vec(), 256, device)?,
    );
    Nf4Tensor::from_parts(&parts, tag, shape).map_err(Error::model)
}

/// Builds the benchmark model on `device`: random base (NF4-quantized when asked, LM head
/// dense), LoRA R / alpha on q, k, v, o, gate, up, down (A Kaiming-uniform, B zero, as PEFT).
pub fn build_model(opts: &BenchOptions, device: &Device) -> Result<(DecoderLm, LoraSet)> {
    let mut config = opts.shape.config()?;
    if let Some(l) = opts.layers {
        config.num_layers = l;
    }
    let weights = random_weights(&config, opts.dtype, device, opts.seed)?;
    let mut model = DecoderLm::load(&config, &weights).map_err(Error::model)?;
    drop(weights);
    if opts.quant == BenchQuant::Nf4Dq {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x4e46_3400);
        for l in model.linears_mut() {
            if l.name() == "lm_head" {
                continue;
            }
            let (out_dim, in_dim) = l.dims();
            let q = random_nf4(&[out_dim, in_dim], device, &mut rng)?;
            l.set_base(BaseWeight::Nf4(Arc::new(q)))
                .map_err(Error::model)?;
        }
    }
    let lora = LoraConfig {
        r: opts.lora_r,
        lora_alpha: opts.lora_alpha,
        lora_dropout: opts.lora_dropout,
        ..LoraConfig::default()
    };
    let set = attach_lora(&mut model, &lora, opts.seed).map_err(Error::model)?;
    set.set_train(true);
    Ok((model, set))
}

/// Random token batches ids [B, T] u32 (also the labels), drawn from ChaCha8, on the host
/// like a real batch (the model checks ids and labels there and uploads them).
fn random_ids(opts: &BenchOptions, vocab: usize, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let n = opts.batch * opts.seq;
    let v: Vec<u32> = (0..n).map(|_| rng.random_range(0..vocab as u32)).collect();
    Ok(Tensor::from_vec(v, (opts.batch, opts.seq), &Device::Cpu)?)
}

/// Builds the model, runs `warmup` then `steps` training steps, and reports the timings.
/// `on_step(i, seconds, loss)` is called after every timed step.
pub fn run(
    opts: &BenchOptions,
    device: &Device,
    on_step: &mut dyn FnMut(usize, f64, f64),
) -> Result<BenchReport> {
    opts.validate()?;
    let mem_before = gpu_mem::used_bytes(device)?;
    let t0 = Instant::now();
    let (model, lora) = build_model(opts, device)?;
    device.synchronize()?;
    // The limit covers the model plus training; the build's own transients (dense random
    // weights before quantization) are over by now.
    let hold = match (
        opts.memory_limit_gib,
        gpu_mem::used_bytes(device)?,
        mem_before,
    ) {
        (Some(g), Some(now), Some(before)) => {
            let model = now.saturating_sub(before);
            gpu_mem::hold_all_but(device, ((g * GIB) as u64).saturating_sub(model))?
        }
        _ => None,
    };
    let held_bytes = hold.as_ref().map(|t| t.elem_count() as u64);
    gpu_mem::reset_allocated_peak(device)?;
    let build_s = t0.elapsed().as_secs_f64();
    let base_params = model.num_params();
    let trainable_params = lora.num_params();
    let mut opt = AdamW::new(lora.vars(), AdamWConfig::default())?;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed.wrapping_add(1));
    let vocab = model.config().vocab_size;
    let backward = if opts.recompute {
        Backward::Recompute
    } else {
        Backward::Plain
    };
    let mut step = |rng: &mut ChaCha8Rng| -> Result<f64> {
        let ids = random_ids(opts, vocab, rng)?;
        let batch = TrainBatch {
            input_ids: &ids,
            attention_mask: None,
            labels: &ids,
            position_ids: None,
        };
        let out = loss_and_grads(&model, &lora, &batch, backward).map_err(Error::model)?;
        // Mean-loss gradients, as the baseline's `loss.backward()`.
        let n = out.n_supervised.max(1) as f64;
        let grads = Grads::new(out.grads.into_iter().map(|(_, g)| g).collect()).scale(1.0 / n)?;
        opt.step(&grads, LR)?;
        device.synchronize()?;
        Ok(out.loss_sum / n)
    };
    for _ in 0..opts.warmup {
        step(&mut rng)?;
    }
    let probe = gpu_mem::PeakProbe::start(device)?;
    let mut step_s = Vec::with_capacity(opts.steps);
    let mut final_loss = f64::NAN;
    for i in 0..opts.steps {
        let t = Instant::now();
        final_loss = step(&mut rng)?;
        let dt = t.elapsed().as_secs_f64();
        step_s.push(dt);
        on_step(i, dt, final_loss);
    }
    let mem_peak = probe.stop()?;
    let allocated_peak =
        gpu_mem::allocated_peak(device)?.map(|p| p.saturating_sub(held_bytes.unwrap_or(0)));
    drop(hold);
    let total: f64 = step_s.iter().sum();
    let mut sorted = step_s.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(BenchReport {
        options: opts.clone(),
        device: device_name(device),
        base_params,
        trainable_params,
        build_s,
        tokens_per_s: (opts.batch * opts.seq * opts.steps) as f64 / total,
        s_per_step: total / opts.steps as f64,
        median_step_s: sorted[sorted.len() / 2],
        step_s,
        final_loss,
        mem_before_bytes: mem_before,
        mem_peak_bytes: mem_peak,
        allocated_peak_bytes: allocated_peak,
        held_bytes,
        fused_ops: medtune_model::fused::active(device)
            .into_iter()
            .map(String::from)
            .collect(),
        keep_weights: medtune_model::fused::keep_weights(),
    })
}

fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_opts(quant: BenchQuant) -> BenchOptions {
        BenchOptions {
            shape: BenchShape::Smollm2_135m,
            quant,
            batch: 1,
            seq: 8,
            lora_r: 4,
            lora_alpha: 8.0,
            lora_dropout: 0.1,
            steps: 1,
            warmup: 0,
            recompute: true,
            dtype: DType::F32,
            seed: 7,
            memory_limit_gib: None,
            layers: None,
        }
    }

    #[test]
    fn shapes_parse_to_their_published_sizes() {
        let c = BenchShape::Llama8b.config().unwrap();
        assert_eq!((c.hidden_size, c.num_layers, c.head_dim), (4096, 32, 128));
        assert!(!c.tie_word_embeddings);
        let c = BenchShape::Llama1b.config().unwrap();
        assert_eq!((c.q_dim(), c.kv_dim(), c.vocab_size), (2048, 512, 128256));
        assert!(c.tie_word_embeddings);
        let c = BenchShape::Smollm2_135m.config().unwrap();
        assert_eq!((c.hidden_size, c.num_heads, c.num_kv_heads), (576, 9, 3));
        assert!("llama-70b".parse::<BenchShape>().is_err());
    }

    #[test]
    fn random_nf4_has_the_requested_shape_and_scale() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let q = random_nf4(&[8, 128], &Device::Cpu, &mut rng).unwrap();
        let w = q.dequantize(DType::F32).unwrap();
        assert_eq!(w.dims(), &[8, 128]);
        let max = w
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // |code| ≤ 1 and absmax = map·0.02 + 0.05 ≤ 0.07.
        assert!(max > 0.0 && max <= 0.0701, "max |w| {max}");
    }

    #[test]
    fn smollm2_shape_builds_and_counts_parameters() {
        // Full SmolLM2-135M shape in f32 on the CPU: build only, no step (too slow for a test).
        let (model, lora) = build_model(&tiny_opts(BenchQuant::None), &Device::Cpu).unwrap();
        // 134,515,008 parameters with the tied head (SmolLM2-135M's published count).
        assert_eq!(model.num_params(), 134_515_008);
        // R·(in + out) per projection: per layer q,k,v,o,gate,up,down.
        let r = 4;
        let per_layer = r * ((576 + 576) + 2 * (576 + 192) + (576 + 576) + 3 * (576 + 1536));
        assert_eq!(lora.num_params(), 30 * per_layer);
    }

    #[test]
    fn a_bench_step_trains_on_a_reduced_model() {
        let mut opts = tiny_opts(BenchQuant::Nf4Dq);
        opts.steps = 2;
        let mut seen = Vec::new();
        let report = run(&opts, &Device::Cpu, &mut |i, s, loss| {
            seen.push((i, s, loss))
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(report.step_s.len(), 2);
        // Random weights: the loss is near ln(V) = ln(49152) ≈ 10.8.
        assert!(
            (report.final_loss - 49152f64.ln()).abs() < 1.0,
            "{}",
            report.final_loss
        );
        assert!(report.tokens_per_s > 0.0);
        assert!(report.mem_peak_bytes.is_none());
    }

    #[test]
    fn bad_options_are_named() {
        let mut opts = tiny_opts(BenchQuant::None);
        opts.seq = 1;
        let err = run(&opts, &Device::Cpu, &mut |_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("seq"), "{err}");
        let mut opts = tiny_opts(BenchQuant::None);
        opts.layers = Some(31);
        let err = run(&opts, &Device::Cpu, &mut |_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("layers"), "{err}");
        assert!(err.to_string().contains("1..=30"), "{err}");
    }

    #[test]
    fn a_layer_override_builds_that_many_layers() {
        let mut opts = tiny_opts(BenchQuant::None);
        opts.layers = Some(2);
        let (model, lora) = build_model(&opts, &Device::Cpu).unwrap();
        assert_eq!(model.config().num_layers, 2);
        let r = 4;
        let per_layer = r * ((576 + 576) + 2 * (576 + 192) + (576 + 576) + 3 * (576 + 1536));
        assert_eq!(lora.num_params(), 2 * per_layer);
    }
}
