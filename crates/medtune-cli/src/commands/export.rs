//! `medtune export merged`: fold a LoRA adapter into its base and write a plain HF model.

use anyhow::Context;
use clap::{Args, Subcommand};
use medtune_model::merge::merge_adapter;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `medtune export`.
#[derive(Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    command: ExportCommand,
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Write base + adapter as one safetensors model (W + s·B·A), with config and tokenizer.
    Merged(MergedArgs),
}

#[derive(Args)]
struct MergedArgs {
    /// Base model folder (HF safetensors).
    #[arg(long)]
    model: PathBuf,
    /// PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    adapter: PathBuf,
    /// Output folder (must not exist).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `medtune export ...`.
pub fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        ExportCommand::Merged(a) => {
            let r = merge_adapter(&a.model, &a.adapter, &a.out).with_context(|| {
                format!(
                    "merging adapter {} into {}",
                    a.adapter.display(),
                    a.model.display()
                )
            })?;
            eprintln!(
                "merged {} modules; wrote {} tensors and {} files ({}) to {}",
                r.merged_modules,
                r.tensors,
                r.copied_files.len(),
                r.copied_files.join(", "),
                r.out_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
