//! `medtune quant nf4`: quantize the 2-D float tensors of a safetensors file to NF4 (bit-exact
//! with bitsandbytes) and write the packed state under the conformance fixture's names.
//!
//! For an input tensor `NAME` the tag is `NAME.dq0` (plain) or `NAME.dq1` (double
//! quantization), and the output holds `packed.<tag>` (u8 [n/2, 1]), `code.<tag>` (f32 [16]),
//! `absmax.<tag>` or `absmax_q.<tag>` + `offset.<tag>` + `state2_absmax.<tag>` +
//! `state2_code.<tag>`, and `dequant.<tag>` (the dequantized weight as bitsandbytes returns it:
//! bf16 values stored as f32). A file whose tensors are named by shape (`64x128`) thus reproduces
//! `fixtures/hf-tiny/nf4/nf4.safetensors` exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use candle_core::{DType, Device, Tensor};
use clap::{Args, Subcommand};
use medtune_model::nf4::{Nf4Options, Nf4Tensor};

/// Quantize weights.
#[derive(Args)]
pub struct QuantArgs {
    #[command(subcommand)]
    command: QuantCommand,
}

#[derive(Subcommand)]
enum QuantCommand {
    /// Quantize 2-D float tensors to NF4 (blocks of 64, bitsandbytes layout).
    Nf4(Nf4Args),
}

#[derive(Args)]
struct Nf4Args {
    /// Input safetensors file.
    #[arg(long)]
    input: PathBuf,
    /// Output safetensors file (written atomically).
    #[arg(long)]
    out: PathBuf,
    /// Also quantize the block absmax to 8 bits (QLoRA double quantization).
    #[arg(long)]
    double_quant: bool,
    /// Quantize only this tensor (repeatable); default: every 2-D float tensor.
    #[arg(long = "tensor", value_name = "NAME")]
    tensors: Vec<String>,
}

/// Runs `medtune quant ...`.
pub fn run(args: QuantArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        QuantCommand::Nf4(args) => nf4(&args),
    }
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
}

fn nf4(args: &Nf4Args) -> anyhow::Result<ExitCode> {
    let input = candle_core::safetensors::load(&args.input, &Device::Cpu)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let names: Vec<String> = if args.tensors.is_empty() {
        let mut all: Vec<String> = input
            .iter()
            .filter(|(_, t)| t.rank() == 2 && is_float(t.dtype()))
            .map(|(name, _)| name.clone())
            .collect();
        all.sort();
        all
    } else {
        args.tensors.clone()
    };
    if names.is_empty() {
        bail!("{}: no 2-D float tensor to quantize", args.input.display());
    }
    let options = Nf4Options {
        double_quant: args.double_quant,
        ..Default::default()
    };
    let suffix = if args.double_quant { "dq1" } else { "dq0" };
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let (mut weights, mut stored_bits) = (0usize, 0f64);
    for name in &names {
        let w = input
            .get(name)
            .with_context(|| format!("{}: no tensor `{name}`", args.input.display()))?;
        if w.rank() != 2 || !is_float(w.dtype()) {
            bail!(
                "{}: tensor `{name}` is {:?} {:?}; NF4 needs a 2-D float tensor",
                args.input.display(),
                w.dtype(),
                w.dims()
            );
        }
        let q = Nf4Tensor::quantize(w, options).with_context(|| format!("quantizing `{name}`"))?;
        let tag = format!("{name}.{suffix}");
        out.extend(q.to_safetensors_map(&tag)?);
        let dequant = q.dequantize(DType::BF16)?.to_dtype(DType::F32)?;
        out.insert(format!("dequant.{tag}"), dequant);
        let bits = q.bits_per_parameter();
        println!("{name} {:?}: {bits:.4} bits/parameter", w.dims());
        weights += q.elem_count();
        stored_bits += bits * q.elem_count() as f64;
    }
    write_atomically(&out, &args.out)?;
    println!(
        "{} tensors, {weights} weights, {:.4} bits/parameter -> {}",
        names.len(),
        stored_bits / weights as f64,
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the tensors to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(tensors: &HashMap<String, Tensor>, path: &Path) -> anyhow::Result<()> {
    let file_name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    let written = candle_core::safetensors::save(tensors, &tmp)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if written.is_err() {
        // Best effort: the temporary file may not exist if the write failed early.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
