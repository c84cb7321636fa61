//! `medtune model lora-grads`: loss and LoRA gradients of a stored batch, under PEFT key names
//! prefixed `grad.` (the layout of the hf-tiny `lora_grads.safetensors` fixtures), plus the
//! shared "model + NF4 base + adapter" loading of `model logits`.

use super::model::{load_model, write_safetensors_atomic, ComputeDtype};
use anyhow::Context;
use candle_core::{Device, Tensor};
use clap::{Args, ValueEnum};
use medtune_model::nf4::Nf4Options;
use medtune_model::{loss_and_grads, peft, Backward, LoadedModel, LoraSet, TrainBatch};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Base quantization applied after loading (QLoRA's frozen base).
#[derive(Clone, Copy, ValueEnum)]
pub enum Quant {
    /// NF4, one f32 absmax per 64 weights (bitsandbytes layout).
    Nf4,
    /// NF4 with double quantization of the absmax (QLoRA's default).
    Nf4Dq,
}

impl Quant {
    fn options(self) -> Nf4Options {
        // bitsandbytes quantizes the weights in the dtype they were loaded in (f32 or bf16).
        Nf4Options {
            double_quant: matches!(self, Quant::Nf4Dq),
            round_to_bf16: false,
        }
    }
}

/// Arguments of `medtune model lora-grads`.
#[derive(Args)]
pub struct LoraGradsArgs {
    /// Model folder (HF safetensors or one .gguf) or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    adapter: PathBuf,
    /// safetensors file with `input_ids`, `labels` and optional `attention_mask`, all [B, T].
    #[arg(long)]
    input: PathBuf,
    /// Output safetensors: `grad.<PEFT key>` per LoRA tensor (gradient of the MEAN loss over
    /// supervised tokens, as PyTorch's `loss.backward()` gives), plus scalar `loss`.
    #[arg(long)]
    out: PathBuf,
    /// Quantize the base to NF4 after loading.
    #[arg(long, value_enum)]
    quant: Option<Quant>,
    /// Compute dtype.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: ComputeDtype,
    /// Use layer-wise activation recompute instead of plain backward.
    #[arg(long)]
    recompute: bool,
}

/// Loads a model, optionally quantizes its base to NF4 and attaches a PEFT adapter.
pub fn load_adapted(
    model: &Path,
    dtype: ComputeDtype,
    quant: Option<Quant>,
    adapter: Option<&Path>,
) -> anyhow::Result<(LoadedModel, Option<LoraSet>)> {
    let mut m = load_model(model, dtype.dtype())?;
    if let Some(q) = quant {
        let n = m
            .model
            .quantize_nf4(q.options())
            .with_context(|| format!("quantizing {} to NF4", model.display()))?;
        eprintln!("quantized {n} linear layers to NF4");
    }
    let set = match adapter {
        Some(dir) => {
            let set = peft::load_peft(&mut m.model, dir)
                .with_context(|| format!("loading adapter {}", dir.display()))?;
            eprintln!(
                "adapter: {} modules, {} parameters",
                set.adapters().len(),
                set.num_params()
            );
            Some(set)
        }
        None => None,
    };
    Ok((m, set))
}

/// Runs `medtune model lora-grads`.
pub fn run(a: LoraGradsArgs) -> anyhow::Result<ExitCode> {
    let (m, set) = load_adapted(&a.model, a.dtype, a.quant, Some(&a.adapter))?;
    let set = set.context("adapter missing")?;
    let inputs: HashMap<String, Tensor> = candle_core::safetensors::load(&a.input, &Device::Cpu)
        .with_context(|| format!("reading {}", a.input.display()))?;
    let get = |name: &str| {
        inputs
            .get(name)
            .with_context(|| format!("{}: missing tensor `{name}`", a.input.display()))
    };
    let batch = TrainBatch {
        input_ids: get("input_ids")?,
        attention_mask: inputs.get("attention_mask"),
        labels: get("labels")?,
        position_ids: inputs.get("position_ids"),
    };
    let backward = if a.recompute {
        Backward::Recompute
    } else {
        Backward::Plain
    };
    let r = loss_and_grads(&m.model, &set, &batch, backward)
        .with_context(|| format!("loss and gradients on {}", a.input.display()))?;
    anyhow::ensure!(
        r.n_supervised > 0,
        "{}: no label is supervised (all -100)",
        a.input.display()
    );
    let n = r.n_supervised as f64;
    let loss = r.loss_sum / n;
    let mut out = BTreeMap::new();
    for (key, g) in r.grads {
        out.insert(format!("grad.{key}"), (g / n)?);
    }
    out.insert("loss".to_string(), Tensor::new(loss as f32, &Device::Cpu)?);
    write_safetensors_atomic(&out, &a.out)?;
    eprintln!(
        "loss {loss:.6} over {} supervised tokens; {} gradients written to {}",
        r.n_supervised,
        out.len() - 1,
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
