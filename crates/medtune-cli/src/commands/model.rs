//! `medtune model logits|inspect`: run a model on stored inputs, or describe it.

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand, ValueEnum};
use medtune_model::{causal_lm_loss, load, ForwardInput, LoadOptions, LoadedModel, SourceFormat};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `medtune model`.
#[derive(Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Compute logits (and the causal-LM loss when labels are given) for stored inputs.
    Logits(LogitsArgs),
    /// Print architecture, sizes, storage types and parameter count.
    Inspect(InspectArgs),
    /// Loss and LoRA gradients of a stored batch (`grad.<PEFT key>`), for conformance checks.
    LoraGrads(super::lora_grads::LoraGradsArgs),
}

/// Compute dtype choice on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum ComputeDtype {
    /// 32-bit float.
    F32,
    /// bfloat16.
    Bf16,
}

impl ComputeDtype {
    /// The candle dtype.
    pub fn dtype(self) -> DType {
        match self {
            ComputeDtype::F32 => DType::F32,
            ComputeDtype::Bf16 => DType::BF16,
        }
    }
}

#[derive(Args)]
struct LogitsArgs {
    /// Model folder (HF safetensors or one .gguf) or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// safetensors file with `input_ids` [B, T], optional `attention_mask` [B, T] and `labels`
    /// [B, T] (integer or integral float tensors).
    #[arg(long)]
    input: PathBuf,
    /// Output safetensors: `logits` [B, T, V] f32, plus scalar `loss` when labels were given.
    #[arg(long)]
    out: PathBuf,
    /// Compute dtype.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: ComputeDtype,
    /// PEFT adapter folder to apply (inference mode: no dropout).
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Quantize the base to NF4 after loading (QLoRA's frozen base).
    #[arg(long, value_enum)]
    quant: Option<super::lora_grads::Quant>,
}

#[derive(Args)]
struct InspectArgs {
    /// Model folder or .gguf file.
    model: PathBuf,
}

/// Runs `medtune model ...`.
pub fn run(args: ModelArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ModelCommand::Logits(a) => logits(a),
        ModelCommand::Inspect(a) => inspect(a),
        ModelCommand::LoraGrads(a) => super::lora_grads::run(a),
    }
}

/// Loads a model for the CLI with a clear context line.
pub fn load_model(path: &Path, dtype: DType) -> anyhow::Result<LoadedModel> {
    load(
        path,
        &LoadOptions {
            dtype,
            device: Device::Cpu,
        },
    )
    .with_context(|| format!("loading model {}", path.display()))
}

fn logits(a: LogitsArgs) -> anyhow::Result<ExitCode> {
    let (m, adapter) =
        super::lora_grads::load_adapted(&a.model, a.dtype, a.quant, a.adapter.as_deref())?;
    if let Some(set) = &adapter {
        set.set_train(false);
    }
    let inputs: HashMap<String, Tensor> = candle_core::safetensors::load(&a.input, &Device::Cpu)
        .with_context(|| format!("reading {}", a.input.display()))?;
    let ids = inputs
        .get("input_ids")
        .with_context(|| format!("{}: missing tensor `input_ids`", a.input.display()))?;
    let input = ForwardInput {
        input_ids: Some(ids),
        attention_mask: inputs.get("attention_mask"),
        ..ForwardInput::default()
    };
    let logits = m
        .model
        .forward(&input)
        .with_context(|| format!("running the model on {}", a.input.display()))?;
    let mut out = BTreeMap::new();
    if let Some(labels) = inputs.get("labels") {
        let loss = causal_lm_loss(&logits, labels)
            .with_context(|| format!("{}: labels", a.input.display()))?;
        eprintln!("loss {:.6}", loss.to_scalar::<f32>()?);
        out.insert("loss".to_string(), loss);
    }
    eprintln!("logits {:?}", logits.dims());
    out.insert("logits".to_string(), logits);
    write_safetensors_atomic(&out, &a.out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes tensors to `path` through a temp file in the same folder, then renames it.
pub fn write_safetensors_atomic(
    tensors: &BTreeMap<String, Tensor>,
    path: &Path,
) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let map: HashMap<&String, Tensor> = tensors.iter().map(|(k, v)| (k, v.clone())).collect();
    candle_core::safetensors::save(&map, &tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

fn inspect(a: InspectArgs) -> anyhow::Result<ExitCode> {
    let m = load_model(&a.model, DType::F32)?;
    let c = &m.config;
    let format = match m.format {
        SourceFormat::Safetensors => "safetensors",
        SourceFormat::Gguf => "gguf",
    };
    println!("model         {}", a.model.display());
    println!("format        {format} ({})", m.weights_path.display());
    println!("architecture  {}", c.arch.model_type());
    println!("layers        {}", c.num_layers);
    println!("hidden        {}", c.hidden_size);
    println!("intermediate  {}", c.intermediate_size);
    println!(
        "heads         {} (kv {}), head_dim {}",
        c.num_heads, c.num_kv_heads, c.head_dim
    );
    println!("vocab         {}", c.vocab_size);
    println!("context       {}", c.max_position_embeddings);
    println!("norm          {:?} eps {:e}", c.norm, c.norm_eps);
    println!("activation    {:?}", c.activation);
    match &c.rope {
        Some(r) => println!(
            "rope          theta {} rotary_dim {} scaling {:?}",
            r.theta, r.rotary_dim, r.scaling
        ),
        None => println!("positions     learned"),
    }
    if let Some(w) = c.sliding_window {
        println!("sliding win   {w}");
    }
    println!("tied head     {}", c.tie_word_embeddings);
    let mut by_type: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (_, dtype, shape) in &m.tensor_infos {
        let e = by_type.entry(dtype.as_str()).or_default();
        e.0 += 1;
        e.1 += shape.iter().product::<usize>();
    }
    let types: Vec<String> = by_type
        .iter()
        .map(|(t, (n, p))| format!("{t}: {n} tensors, {p} values"))
        .collect();
    println!("storage       {}", types.join("; "));
    println!("tensors       {}", m.tensor_infos.len());
    println!("parameters    {}", m.model.num_params());
    println!("eos ids       {:?}", m.eos_token_ids);
    let tokenizer = match &m.tokenizer {
        Some(t) if m.format == SourceFormat::Gguf && t.path() == m.weights_path => {
            format!("GGUF metadata ({})", t.path().display())
        }
        Some(t) => t.path().display().to_string(),
        None => "none".to_string(),
    };
    println!("tokenizer     {tokenizer}");
    println!(
        "chat template {}",
        if m.chat_template.is_some() {
            "yes"
        } else {
            "no"
        }
    );
    Ok(ExitCode::SUCCESS)
}
