//! `medtune bench train`: LoRA / QLoRA training throughput on random-init weights of a real
//! model shape, built on the device (no files). Prints tokens/s, step time and peak device
//! memory, and the ratio to a baseline measured by `bench_hf.py` when one is given. A
//! benchmark, not a test: it prints figures and asserts nothing.

use crate::commands::model::ComputeDtype;
use anyhow::Context;
use candle_core::Device;
use clap::{Args, ValueEnum};
use medtune_train::bench::{self, BenchOptions, BenchQuant, BenchReport, BenchShape};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `medtune bench train`.
#[derive(Args)]
pub struct BenchTrainArgs {
    /// Model shape (random weights).
    #[arg(long, value_enum, default_value = "llama-1b")]
    shape: ShapeArg,
    /// Base storage: NF4 with double quantization (QLoRA) or dense (LoRA).
    #[arg(long, value_enum, default_value = "nf4-dq")]
    quant: QuantArg,
    /// Sequences per step.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Tokens per sequence.
    #[arg(long, default_value_t = 512)]
    seq: usize,
    /// LoRA rank (adapters on q, k, v, o, gate, up, down).
    #[arg(long, default_value_t = 16)]
    lora_r: usize,
    /// LoRA alpha.
    #[arg(long, default_value_t = 32.0)]
    lora_alpha: f64,
    /// LoRA dropout (0 = off; masks are drawn on the device as in `medtune train`).
    #[arg(long, default_value_t = 0.0)]
    lora_dropout: f64,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// Untimed warm-up steps before the timed ones.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Device; default: the first CUDA GPU when built with CUDA and one is present, else CPU.
    #[arg(long, value_enum)]
    device: Option<DeviceArg>,
    /// Compute dtype of the base and activations.
    #[arg(long, value_enum, default_value = "bf16")]
    dtype: ComputeDtype,
    /// Whole-graph backward instead of layer-wise recompute.
    #[arg(long)]
    no_recompute: bool,
    /// Seed of weights, adapters and token batches.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Print the names of the fused kernels (for `MEDTUNE_UNFUSED`) and exit.
    #[arg(long)]
    list_fused: bool,
    /// CUDA: after building, hold all free device memory except what keeps model plus training
    /// within this many GiB, so that a run that completes shows it fits.
    #[arg(long, value_name = "GIB")]
    memory_limit_gib: Option<f64>,
    /// Build only the first N decoder layers of the shape, for profiling (every layer runs the
    /// same kernels). The figures are then not the shape's: no baseline ratio is printed.
    #[arg(long, value_name = "N")]
    layers: Option<usize>,
    /// `bench_hf.json` written by the baseline script: print the ratio to its matching row.
    #[arg(long)]
    baseline: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShapeArg {
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
    #[value(name = "llama-1b")]
    Llama1b,
    #[value(name = "llama-8b")]
    Llama8b,
}

#[derive(Clone, Copy, ValueEnum)]
enum QuantArg {
    #[value(name = "nf4-dq")]
    Nf4Dq,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

/// Runs `medtune bench train`.
pub fn run(a: BenchTrainArgs) -> anyhow::Result<ExitCode> {
    if a.list_fused {
        for op in medtune_model::fused::OPS {
            println!("{op}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let device = match a.device {
        Some(DeviceArg::Cpu) => Device::Cpu,
        Some(DeviceArg::Cuda) => Device::new_cuda(0).context(
            "no CUDA device (hint: build with scripts/build-cuda.sh and run on the GPU machine)",
        )?,
        None => Device::cuda_if_available(0).unwrap_or(Device::Cpu),
    };
    let opts = BenchOptions {
        shape: match a.shape {
            ShapeArg::Smollm2_135m => BenchShape::Smollm2_135m,
            ShapeArg::Llama1b => BenchShape::Llama1b,
            ShapeArg::Llama8b => BenchShape::Llama8b,
        },
        quant: match a.quant {
            QuantArg::Nf4Dq => BenchQuant::Nf4Dq,
            QuantArg::None => BenchQuant::None,
        },
        batch: a.batch,
        seq: a.seq,
        lora_r: a.lora_r,
        lora_alpha: a.lora_alpha,
        lora_dropout: a.lora_dropout,
        steps: a.steps,
        warmup: a.warmup,
        recompute: !a.no_recompute,
        dtype: a.dtype.dtype(),
        seed: a.seed,
        memory_limit_gib: a.memory_limit_gib,
        layers: a.layers,
    };
    eprintln!(
        "medtune bench train: {} {} on {:?}, batch {} x {} tokens, LoRA r={} alpha={} dropout={}, {} {}, {} warm-up + {} timed steps",
        match opts.layers {
            Some(l) => format!("{} (first {l} layers only)", opts.shape.name()),
            None => opts.shape.name().to_string(),
        },
        opts.quant.name(),
        device.location(),
        opts.batch,
        opts.seq,
        opts.lora_r,
        opts.lora_alpha,
        opts.lora_dropout,
        opts.dtype.as_str(),
        if opts.recompute { "recompute" } else { "plain backward" },
        opts.warmup,
        opts.steps,
    );
    let report = bench::run(&opts, &device, &mut |i, s, loss| {
        eprintln!("  step {:>3}: {:.3} s, loss {:.4}", i + 1, s, loss);
    })
    .context("benchmark failed")?;
    print_summary(&report);
    if let (Some(l), Some(_)) = (opts.layers, &a.baseline) {
        println!("no baseline ratio: only {l} layers of the shape were built (--layers)");
    } else if let Some(path) = &a.baseline {
        let base = baseline_row(path, &report)?;
        print_ratio(&report, &base);
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&report)?;
        write_atomic(path, text.as_bytes())?;
        eprintln!("report written to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

const GIB: f64 = (1u64 << 30) as f64;

fn print_summary(r: &BenchReport) {
    let o = &r.options;
    let layers = o.layers.map(|l| format!(" layers {l}")).unwrap_or_default();
    println!(
        "shape {}{layers} quant {} device {} batch {} seq {} lora_r {}",
        o.shape.name(),
        o.quant.name(),
        r.device,
        o.batch,
        o.seq,
        o.lora_r
    );
    println!(
        "params: base {:.1} M, trainable {:.2} M; build {:.1} s",
        r.base_params as f64 / 1e6,
        r.trainable_params as f64 / 1e6,
        r.build_s
    );
    println!(
        "tokens/s {:.0}  step {:.3} s (median {:.3} s)  final loss {:.4}",
        r.tokens_per_s, r.s_per_step, r.median_step_s, r.final_loss
    );
    match (r.mem_peak_bytes, r.peak_over_start_gib()) {
        (Some(p), Some(over)) => println!(
            "peak device memory {:.2} GiB in use ({:.2} GiB over the {:.2} GiB in use before the build)",
            p as f64 / GIB,
            over,
            r.mem_before_bytes.unwrap_or(0) as f64 / GIB
        ),
        _ => println!("peak device memory: n/a on the CPU"),
    }
    if let Some(gib) = r.allocated_peak_gib() {
        println!(
            "peak allocated {gib:.2} GiB (live tensors incl. the model; like torch max_memory_allocated)"
        );
    }
    if let (Some(held), Some(limit)) = (r.held_bytes, r.options.memory_limit_gib) {
        println!(
            "ran with all but {limit:.2} GiB of free device memory held ({:.2} GiB held)",
            held as f64 / GIB
        );
    }
    println!(
        "fused kernels: {}",
        if r.fused_ops.is_empty() {
            "none".to_string()
        } else {
            r.fused_ops.join(", ")
        }
    );
    if r.keep_weights {
        println!("dense weights kept from the recompute for the backward (MEDTUNE_KEEP_WEIGHTS=1)");
    }
    if let Ok(kib) = super::peak_rss_kib(std::process::id()) {
        println!("peak rss {:.0} MiB (whole process)", kib as f64 / 1024.0);
    }
}

/// One row of the baseline's `bench_hf.json`.
#[derive(serde::Deserialize)]
struct BaselineRow {
    shape: String,
    quant: String,
    tokens_per_s: f64,
    peak_mem_gib: f64,
}

/// The baseline row of the same shape and quantization (the baseline calls dense `bf16`).
fn baseline_row(path: &Path, r: &BenchReport) -> anyhow::Result<BaselineRow> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading baseline {}", path.display()))?;
    let rows: Vec<BaselineRow> = serde_json::from_str(&text)
        .with_context(|| format!("{}: expected bench_hf.py's JSON list", path.display()))?;
    let quant = match r.options.quant {
        BenchQuant::Nf4Dq => "nf4-dq",
        BenchQuant::None => "bf16",
    };
    rows.into_iter()
        .find(|b| b.shape == r.options.shape.name() && b.quant == quant)
        .with_context(|| {
            format!(
                "{}: no row with shape {} and quant {quant}",
                path.display(),
                r.options.shape.name()
            )
        })
}

fn print_ratio(r: &BenchReport, b: &BaselineRow) {
    print!(
        "baseline {:.0} tokens/s, {:.2} GiB peak -> speed ratio {:.2}x",
        b.tokens_per_s,
        b.peak_mem_gib,
        r.tokens_per_s / b.tokens_per_s
    );
    // Like for like: the baseline reports torch's max_memory_allocated.
    match r.allocated_peak_gib().or(r.peak_over_start_gib()) {
        Some(ours) => println!(", memory ratio {:.2}x", ours / b.peak_mem_gib),
        None => println!(),
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    Ok(())
}
