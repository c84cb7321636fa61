//! LoRA (Hu et al. 2021) as PEFT implements it: a frozen linear layer `y = x·Wᵀ` gains
//! `s·(dropout(x)·Aᵀ)·Bᵀ` with A [R, in], B [out, R] trainable and `s = lora_alpha / R`
//! (`lora_alpha / √R` with rsLoRA). `W + s·B·A` is never formed while training: the two thin
//! matmuls cost `R·(in + out)` per token instead of `in·out`.
//!
//! - [`LoraConfig`]: PEFT's `LoraConfig` fields under PEFT's names (TOML or JSON).
//! - [`attach_lora`]: puts a freshly initialised adapter on every targeted module of a
//!   [`DecoderLm`] and returns the [`LoraSet`], the ordered list of trainable tensors under their
//!   PEFT key names (`base_model.model.<module>.lora_A.weight`).
//! - [`LoraAdapter`]: one module's A and B as f32 [`Var`]s (master weights) plus dropout.
//!
//! Initialisation follows PEFT's default: A is Kaiming-uniform with `a = √5`, i.e. uniform in
//! ±1/√in, and B is zero, so the adapted model starts equal to the base. Numbers come from our
//! own seeded ChaCha RNG (candle's CPU RNG cannot be seeded).
//!
//! Dropout masks are a pure function of (seed, module index, pass number): a layer recomputed
//! during the backward pass (see [`crate::recompute`]) sees the very masks of its first forward.
//! On the CPU they come from ChaCha8; on a GPU from [`crate::dropout_mask`], computed on the
//! device (so the masks of a CPU and a GPU run differ, each reproducible).

use crate::config::Arch;
use crate::decoder::DecoderLm;
use crate::error::{Error, Result};
use crate::linear::Adapter;
use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Which linear modules get an adapter (PEFT's `target_modules`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TargetModules {
    /// Module-name suffixes: `q_proj` matches `model.layers.0.self_attn.q_proj`; a name matches
    /// when it equals the entry or ends with `.` + entry.
    Names(Vec<String>),
    /// `"all-linear"`: every linear layer except the output head; any other string is a
    /// regular expression that must match the whole module name (as PEFT's `re.fullmatch`).
    Pattern(String),
}

/// PEFT's `layers_to_transform`: one layer index or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LayerSelection {
    /// A single layer.
    One(usize),
    /// Several layers.
    Many(Vec<usize>),
}

impl LayerSelection {
    fn contains(&self, layer: usize) -> bool {
        match self {
            LayerSelection::One(l) => *l == layer,
            LayerSelection::Many(ls) => ls.contains(&layer),
        }
    }
}

/// LoRA hyper-parameters under PEFT's field names.
///
/// ```
/// let c: medtune_model::lora::LoraConfig =
///     serde_json::from_str(r#"{"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}"#)?;
/// assert_eq!(c.scale(), 2.0);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank R.
    #[serde(default = "default_r")]
    pub r: usize,
    /// Scale numerator: `s = lora_alpha / r` (or `/ √r` with `use_rslora`).
    #[serde(default = "default_alpha")]
    pub lora_alpha: f64,
    /// Dropout probability on the adapter's input (training only).
    #[serde(default)]
    pub lora_dropout: f64,
    /// Targeted modules.
    #[serde(default = "default_targets")]
    pub target_modules: TargetModules,
    /// Only adapt these decoder layers (`None` = all).
    #[serde(default)]
    pub layers_to_transform: Option<LayerSelection>,
    /// rsLoRA scaling `lora_alpha / √r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// The base stores weights [in, out] (GPT-2 `Conv1D`). Only matters when merging: the
    /// in-memory base is always [out, in], and A, B keep PEFT's shapes.
    #[serde(default)]
    pub fan_in_fan_out: bool,
    /// Which biases train: only `"none"` is supported.
    #[serde(default = "default_bias")]
    pub bias: String,
    /// `true`: PEFT's default init (A Kaiming-uniform, B zero). `false`: B is initialised like
    /// A too (PEFT's `init_lora_weights=False`, for tests: the adapter is not the identity).
    #[serde(default = "default_true")]
    pub init_lora_weights: bool,
}

fn default_r() -> usize {
    8
}
fn default_alpha() -> f64 {
    8.0
}
fn default_targets() -> TargetModules {
    TargetModules::Pattern(ALL_LINEAR.into())
}
fn default_bias() -> String {
    "none".into()
}
fn default_true() -> bool {
    true
}

/// PEFT's shorthand for every linear layer but the output head.
pub const ALL_LINEAR: &str = "all-linear";

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: default_r(),
            lora_alpha: default_alpha(),
            lora_dropout: 0.0,
            target_modules: default_targets(),
            layers_to_transform: None,
            use_rslora: false,
            fan_in_fan_out: false,
            bias: default_bias(),
            init_lora_weights: true,
        }
    }
}

impl LoraConfig {
    /// The adapter scale s.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// Checks values PEFT would reject or that medtune does not implement.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::input(format!("lora.{field}"), msg));
        if self.r == 0 {
            return bad("r", "must be at least 1".into());
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            return bad(
                "lora_alpha",
                format!("must be a positive number, got {}", self.lora_alpha),
            );
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return bad(
                "lora_dropout",
                format!("must be in [0, 1), got {}", self.lora_dropout),
            );
        }
        if self.bias != "none" {
            return bad(
                "bias",
                format!("only \"none\" is supported, got {:?}", self.bias),
            );
        }
        match &self.target_modules {
            TargetModules::Names(n) if n.is_empty() => bad("target_modules", "empty list".into()),
            TargetModules::Pattern(p) if p != ALL_LINEAR => {
                match regex::Regex::new(&format!("^(?:{p})$")) {
                    Ok(_) => Ok(()),
                    Err(e) => bad(
                        "target_modules",
                        format!("not a valid regular expression: {e}"),
                    ),
                }
            }
            _ => Ok(()),
        }
    }

    /// Whether the module with this HF name gets an adapter. `lm_head` is the output head.
    pub fn targets(&self, module: &str) -> Result<bool> {
        let name_ok = match &self.target_modules {
            TargetModules::Names(names) => names
                .iter()
                .any(|t| module == t || module.ends_with(&format!(".{t}"))),
            TargetModules::Pattern(p) if p == ALL_LINEAR => module != "lm_head",
            TargetModules::Pattern(p) => regex::Regex::new(&format!("^(?:{p})$"))
                .map_err(|e| Error::input("lora.target_modules", e.to_string()))?
                .is_match(module),
        };
        Ok(name_ok
            && match &self.layers_to_transform {
                None => true,
                Some(sel) => layer_index(module).is_some_and(|l| sel.contains(l)),
            })
    }
}

/// The decoder layer index in a module name: its first all-digit component
/// (`model.layers.3.mlp.up_proj` → 3, `transformer.h.0.attn.c_attn` → 0, `lm_head` → none).
pub fn layer_index(module: &str) -> Option<usize> {
    module
        .split('.')
        .find(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse().ok())
}

/// PEFT's key of a module's A matrix in `adapter_model.safetensors`.
pub fn key_a(module: &str) -> String {
    format!("base_model.model.{module}.lora_A.weight")
}

/// PEFT's key of a module's B matrix.
pub fn key_b(module: &str) -> String {
    format!("base_model.model.{module}.lora_B.weight")
}

/// Switches shared by all adapters of one [`LoraSet`]: train/eval mode and the pass number
/// that seeds the dropout masks.
#[derive(Debug)]
struct SharedState {
    training: AtomicBool,
    pass: AtomicU64,
    seed: u64,
}

/// One module's adapter: A [R, in], B [out, R] (f32 [`Var`]s), scale s and dropout p.
pub struct LoraAdapter {
    module: String,
    index: u64,
    a: Var,
    b: Var,
    scale: f64,
    dropout: f64,
    state: Arc<SharedState>,
}

impl LoraAdapter {
    /// HF module name.
    pub fn module(&self) -> &str {
        &self.module
    }

    /// A [R, in] (f32).
    pub fn a(&self) -> &Var {
        &self.a
    }

    /// B [out, R] (f32).
    pub fn b(&self) -> &Var {
        &self.b
    }

    /// The scale s.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `s·B·A` [out, in] (f32): the weight change a merge adds to W.
    pub fn delta_weight(&self) -> Result<Tensor> {
        Ok((self.b.as_tensor().matmul(self.a.as_tensor())? * self.scale)?.detach())
    }

    /// Inverted dropout on x: keep with probability 1 − p, scale kept values by 1/(1 − p).
    /// The mask depends only on (seed, module index, pass), so a recomputed layer repeats it.
    pub(crate) fn dropout(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let p = self.dropout;
        if p == 0.0 || !self.state.training.load(Ordering::Relaxed) {
            return Ok(x.clone());
        }
        let pass = self.state.pass.load(Ordering::Relaxed);
        let stream = self.state.seed ^ pass.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if !x.device().is_cpu() {
            // On an accelerator the mask is computed there (a keyed permutation of the element
            // index): drawing it on the host and copying it made GPU training ~12× slower.
            let key = stream ^ self.index.wrapping_mul(0xD1B5_4A32_D192_ED03);
            if crate::fused::enabled("dropout", x) {
                return crate::fused::dropout(x, key, p);
            }
            let mask = crate::dropout_mask::keep_mask(x.shape(), x.device(), x.dtype(), key, p)?;
            return x * mask;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(stream);
        rng.set_stream(self.index);
        let keep = (1.0 / (1.0 - p)) as f32;
        let mask: Vec<f32> = (0..x.elem_count())
            .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
            .collect();
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x * mask
    }
}

impl Adapter for LoraAdapter {
    /// x [.., in] → s·(dropout(x)·Aᵀ)·Bᵀ [.., out], in x's dtype (A and B are cast to it, so a
    /// bf16 model runs the adapter in bf16 while the f32 masters receive the gradients).
    fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.dropout(x)?;
        let dt = x.dtype();
        let a = self.a.as_tensor().to_dtype(dt)?;
        let b = self.b.as_tensor().to_dtype(dt)?;
        let (r, in_dim) = a.dims2()?;
        let out_dim = b.dim(0)?;
        let lead: Vec<usize> = x.dims()[..x.rank() - 1].to_vec();
        let rows: usize = lead.iter().product();
        // [rows, in] · [in, R] → [rows, R] · [R, out] → [rows, out]
        let xa = x.reshape((rows, in_dim))?.matmul(&a.t()?)?;
        let y = (xa.matmul(&b.t()?)? * self.scale)?;
        debug_assert_eq!(xa.dim(1)?, r);
        let mut shape = lead;
        shape.push(out_dim);
        y.reshape(shape)
    }

    fn as_lora(&self) -> Option<&LoraAdapter> {
        Some(self)
    }
}

/// All adapters attached to one model, in model order, with their PEFT key names.
pub struct LoraSet {
    config: LoraConfig,
    adapters: Vec<Arc<LoraAdapter>>,
    state: Arc<SharedState>,
}

impl LoraSet {
    /// The config the adapters were built from.
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The adapters in model order.
    pub fn adapters(&self) -> &[Arc<LoraAdapter>] {
        &self.adapters
    }

    /// Trainable tensors as (PEFT key, Var), A then B per module, in model order.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::with_capacity(2 * self.adapters.len());
        for a in &self.adapters {
            out.push((key_a(&a.module), a.a.clone()));
            out.push((key_b(&a.module), a.b.clone()));
        }
        out
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.adapters
            .iter()
            .map(|a| a.a.elem_count() + a.b.elem_count())
            .sum()
    }

    /// Training mode (dropout on) or eval mode (dropout off).
    pub fn set_train(&self, training: bool) {
        self.state.training.store(training, Ordering::Relaxed);
    }

    /// Whether dropout is active.
    pub fn is_training(&self) -> bool {
        self.state.training.load(Ordering::Relaxed)
    }

    /// Starts a new forward pass: the next dropout masks differ from the previous pass's.
    pub fn next_pass(&self) -> u64 {
        self.state.pass.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The current pass number (saved with a checkpoint for an exact resume).
    pub fn pass(&self) -> u64 {
        self.state.pass.load(Ordering::Relaxed)
    }

    /// Restores the pass number from a checkpoint.
    pub fn set_pass(&self, pass: u64) {
        self.state.pass.store(pass, Ordering::Relaxed);
    }

    /// Overwrites the weights from tensors keyed by PEFT key (f32 or any float dtype). Every
    /// adapter tensor must be present with its exact shape; `origin` names the source in errors.
    pub fn set_weights(
        &self,
        tensors: &std::collections::HashMap<String, Tensor>,
        origin: &std::path::Path,
    ) -> Result<()> {
        for (key, var) in self.vars() {
            let t = tensors.get(&key).ok_or_else(|| Error::MissingTensor {
                path: origin.to_path_buf(),
                tensor: key.clone(),
            })?;
            if t.dims() != var.dims() {
                return Err(Error::WrongShape {
                    path: origin.to_path_buf(),
                    tensor: key,
                    expected: var.dims().to_vec(),
                    actual: t.dims().to_vec(),
                });
            }
            let t = t.to_dtype(DType::F32)?.to_device(var.device())?;
            var.set(&t).map_err(|source| Error::Tensor {
                path: origin.to_path_buf(),
                tensor: key.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// The weights as (PEFT key, f32 tensor) pairs, detached copies.
    pub fn weights(&self) -> Result<Vec<(String, Tensor)>> {
        self.vars()
            .into_iter()
            .map(|(k, v)| Ok((k, v.as_tensor().detach().copy()?)))
            .collect()
    }
}

/// Kaiming-uniform with `a = √5` as torch's `nn.Linear` and PEFT use it: U(±1/√fan_in), f32.
fn kaiming_uniform(
    rng: &mut ChaCha8Rng,
    rows: usize,
    fan_in: usize,
    device: &Device,
) -> Result<Tensor> {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let v: Vec<f32> = (0..rows * fan_in)
        .map(|_| rng.random_range(-bound..bound) as f32)
        .collect();
    Ok(Tensor::from_vec(v, (rows, fan_in), device)?)
}

/// Attaches a freshly initialised LoRA adapter to every module `config` targets.
///
/// A [R, in] ~ U(±1/√in) and B [out, R] = 0 (or U(±1/√R) with `init_lora_weights = false`),
/// drawn in model order from ChaCha8 seeded with `seed`. Fails when a targeted module already
/// has an adapter or when nothing matches (PEFT fails there too). Starts in training mode.
pub fn attach_lora(model: &mut DecoderLm, config: &LoraConfig, seed: u64) -> Result<LoraSet> {
    config.validate()?;
    let device = model.device().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let state = Arc::new(SharedState {
        training: AtomicBool::new(true),
        pass: AtomicU64::new(0),
        seed,
    });
    let mut adapters = Vec::new();
    for linear in model.linears_mut() {
        if !config.targets(linear.name())? {
            continue;
        }
        if linear.has_adapter() {
            return Err(Error::input(
                linear.name(),
                "already has an adapter; detach it before attaching a new one",
            ));
        }
        let (out_dim, in_dim) = linear.dims();
        let a = kaiming_uniform(&mut rng, config.r, in_dim, &device)?;
        let b = if config.init_lora_weights {
            Tensor::zeros((out_dim, config.r), DType::F32, &device)?
        } else {
            kaiming_uniform(&mut rng, out_dim, config.r, &device)?
        };
        let adapter = Arc::new(LoraAdapter {
            module: linear.name().to_string(),
            index: adapters.len() as u64,
            a: Var::from_tensor(&a)?,
            b: Var::from_tensor(&b)?,
            scale: config.scale(),
            dropout: config.lora_dropout,
            state: state.clone(),
        });
        linear.set_adapter(adapter.clone());
        adapters.push(adapter);
    }
    if adapters.is_empty() {
        let layers = match &config.layers_to_transform {
            None => String::new(),
            Some(l) => format!(" in layers {}", serde_json::json!(l)),
        };
        return Err(Error::input(
            "lora.target_modules",
            format!(
                "{}{layers} matches no linear module of this model; modules are named like `{}`",
                serde_json::json!(config.target_modules),
                model.linears().first().map_or("", |l| l.name())
            ),
        ));
    }
    let mut config = config.clone();
    // GPT-2 stores its projections as Conv1D [in, out]; PEFT flips fan_in_fan_out on for them
    // (and saves it), which tells a merge to transpose s·B·A.
    if model.config().arch == Arch::Gpt2 && adapters.iter().any(|a| a.module != "lm_head") {
        config.fan_in_fan_out = true;
    }
    Ok(LoraSet {
        config,
        adapters,
        state,
    })
}

/// Removes every adapter from the model (the base is untouched). Returns how many were removed.
pub fn detach_lora(model: &mut DecoderLm) -> usize {
    model
        .linears_mut()
        .into_iter()
        .filter_map(|l| l.take_adapter())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(targets: TargetModules) -> LoraConfig {
        LoraConfig {
            target_modules: targets,
            ..Default::default()
        }
    }

    #[test]
    fn target_matching_follows_peft_suffix_rule() -> Result<()> {
        let c = cfg(TargetModules::Names(vec![
            "q_proj".into(),
            "attn.c_proj".into(),
        ]));
        assert!(c.targets("model.layers.0.self_attn.q_proj")?);
        assert!(!c.targets("model.layers.0.self_attn.qq_proj")?);
        assert!(c.targets("transformer.h.1.attn.c_proj")?);
        assert!(!c.targets("transformer.h.1.mlp.c_proj")?);
        let all = cfg(TargetModules::Pattern(ALL_LINEAR.into()));
        assert!(all.targets("model.layers.0.mlp.down_proj")?);
        assert!(!all.targets("lm_head")?);
        let re = cfg(TargetModules::Pattern(r".*\.(q|v)_proj".into()));
        assert!(re.targets("model.layers.3.self_attn.v_proj")?);
        assert!(!re.targets("model.layers.3.self_attn.k_proj")?);
        Ok(())
    }

    #[test]
    fn layers_to_transform_uses_the_layer_index() -> Result<()> {
        let mut c = cfg(TargetModules::Pattern(ALL_LINEAR.into()));
        c.layers_to_transform = Some(LayerSelection::Many(vec![1]));
        assert!(c.targets("model.layers.1.self_attn.q_proj")?);
        assert!(!c.targets("model.layers.0.self_attn.q_proj")?);
        assert!(!c.targets("model.layers.10.self_attn.q_proj")?);
        assert_eq!(layer_index("transformer.h.7.attn.c_attn"), Some(7));
        assert_eq!(layer_index("lm_head"), None);
        Ok(())
    }

    #[test]
    fn scale_and_validation() {
        let mut c = LoraConfig {
            r: 16,
            lora_alpha: 32.0,
            ..Default::default()
        };
        assert_eq!(c.scale(), 2.0);
        c.use_rslora = true;
        assert_eq!(c.scale(), 8.0);
        c.lora_dropout = 1.0;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("lora_dropout"), "{e}");
        let e = LoraConfig {
            bias: "all".into(),
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("bias"), "{e}");
    }

    #[test]
    fn config_reads_peft_spellings_and_rejects_unknown_fields() {
        let c: LoraConfig = serde_json::from_str(
            r#"{"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], "layers_to_transform": 0}"#,
        )
        .unwrap();
        assert_eq!(
            c.target_modules,
            TargetModules::Names(vec!["q_proj".into()])
        );
        assert_eq!(c.layers_to_transform, Some(LayerSelection::One(0)));
        assert!(serde_json::from_str::<LoraConfig>(r#"{"rank": 4}"#).is_err());
    }

    fn adapter(dropout: f64, seed: u64) -> LoraAdapter {
        let dev = Device::Cpu;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        LoraAdapter {
            module: "m".into(),
            index: 0,
            a: Var::from_tensor(&kaiming_uniform(&mut rng, 2, 6, &dev).unwrap()).unwrap(),
            b: Var::from_tensor(&kaiming_uniform(&mut rng, 3, 2, &dev).unwrap()).unwrap(),
            scale: 2.0,
            dropout,
            state: Arc::new(SharedState {
                training: AtomicBool::new(true),
                pass: AtomicU64::new(0),
                seed,
            }),
        }
    }

    #[test]
    fn delta_equals_scaled_b_a_product() -> Result<()> {
        let ad = adapter(0.0, 1);
        let x = Tensor::arange(0f32, 12., &Device::Cpu)?.reshape((1, 2, 6))?;
        let y = ad.delta(&x)?; // [1, 2, 3]
        let w = ad.delta_weight()?; // [3, 6]
        let expect = x.reshape((2, 6))?.matmul(&w.t()?)?.reshape((1, 2, 3))?;
        let diff: f32 = (y - expect)?.abs()?.max_all()?.to_scalar()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }

    #[test]
    fn kaiming_bound_is_one_over_sqrt_fan_in() -> Result<()> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let t = kaiming_uniform(&mut rng, 64, 100, &Device::Cpu)?;
        let max: f32 = t.abs()?.max_all()?.to_scalar()?;
        assert!(max <= 0.1 && max > 0.09, "{max}");
        let mean: f32 = t.mean_all()?.to_scalar()?;
        assert!(mean.abs() < 0.01, "{mean}");
        Ok(())
    }

    #[test]
    fn dropout_masks_repeat_within_a_pass_and_change_between_passes() -> Result<()> {
        let ad = adapter(0.5, 7);
        let x = Tensor::ones((4, 6), DType::F32, &Device::Cpu)?;
        let m1 = ad.dropout(&x)?.to_vec2::<f32>()?;
        let m2 = ad.dropout(&x)?.to_vec2::<f32>()?;
        assert_eq!(m1, m2);
        let flat: Vec<f32> = m1.concat();
        assert!(flat.iter().all(|&v| v == 0.0 || v == 2.0));
        assert!(flat.contains(&0.0) && flat.contains(&2.0));
        ad.state.pass.store(1, Ordering::Relaxed);
        assert_ne!(ad.dropout(&x)?.to_vec2::<f32>()?, m1);
        ad.state.training.store(false, Ordering::Relaxed);
        assert_eq!(ad.dropout(&x)?.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
        Ok(())
    }
}
