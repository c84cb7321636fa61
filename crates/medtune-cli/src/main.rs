//! The `medtune` binary: wires the library crates into subcommands.
//!
//! Exit codes: 0 success, 1 a gate failed (e.g. a safety check or a conformance check), 2 error.

mod commands;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Fine-tune small open LLMs into medical question-answering assistants.
#[derive(Parser)]
#[command(name = "medtune", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // subcommand variants (one line each):
    /// Run the hf-tiny conformance checks on a device (`--device cuda`) and dtype.
    Verify(commands::verify::VerifyArgs),
    /// Export a trained adapter: `export merged` folds it into the base (HF safetensors).
    Export(commands::export::ExportArgs),
    /// Evaluate base vs adapters on medical benchmarks; `eval metrics` scores text pairs.
    Eval(commands::eval::EvalArgs),
    /// Serve a model: REST + OpenAI-compatible API, chat page, safety report on every answer.
    Serve(commands::serve::ServeArgs),
    /// Run a model on stored inputs (logits, loss) or describe it.
    Model(commands::model::ModelArgs),
    /// Chat with a model: render its chat template and print the answer.
    Generate(commands::generate::GenerateArgs),
    /// Benchmarks that print figures (e.g. generation tokens/s).
    Bench(commands::bench_generate::BenchArgs),
    /// Check answers for safety (emergencies, interactions, doses, opioid MME, misuse).
    Safety(commands::safety::SafetyArgs),
    /// Quantize weights (NF4, bit-exact with bitsandbytes).
    Quant(commands::quant::QuantArgs),
    /// Prepare, inspect and benchmark datasets.
    Data(commands::data::DataArgs),
    /// Fine-tune LoRA/QLoRA adapters (`--config run.toml`, `--set key=value`, `--resume`).
    Train(commands::train::TrainArgs),
    /// The main job: prepare MedQuAD, evaluate, fine-tune, evaluate again, safety-check, report.
    Demo(commands::demo::DemoArgs),
    /// Hyperparameter sweep: short trials over lr, r, alpha, dropout, targets; ranked by eval loss.
    Sweep(commands::sweep::SweepArgs),
    /// Progressive training: draw more examples of weak specialties, retrain, compare per specialty.
    Progressive(commands::progressive::ProgressiveArgs),
    /// List, show and compare training runs (`runs list|show|compare`).
    Runs(commands::runs::RunsArgs),
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        // subcommand dispatch (one line each):
        Command::Verify(args) => commands::verify::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Model(args) => commands::model::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Bench(args) => commands::bench_generate::run(args),
        Command::Safety(args) => commands::safety::run(args),
        Command::Quant(args) => commands::quant::run(args),
        Command::Data(args) => commands::data::run(args),
        Command::Train(args) => commands::train::run(args),
        Command::Demo(args) => commands::demo::run(args),
        Command::Sweep(args) => commands::sweep::run(args),
        Command::Progressive(args) => commands::progressive::run(args),
        Command::Runs(args) => commands::runs::run(args),
    }
}

/// The fused-path switches from the environment: `MEDTUNE_UNFUSED=op,op,…|all` (ablations),
/// `MEDTUNE_FUSED_CPU=1` (fused CPU implementations on the CPU) and `MEDTUNE_KEEP_WEIGHTS=1`
/// (the recompute keeps dequantized weights for the backward: faster, more memory).
fn configure_fused() -> anyhow::Result<()> {
    let unfused = std::env::var("MEDTUNE_UNFUSED")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let on_cpu = std::env::var("MEDTUNE_FUSED_CPU").is_ok_and(|v| v == "1");
    let keep_weights = std::env::var("MEDTUNE_KEEP_WEIGHTS").is_ok_and(|v| v == "1");
    medtune_model::fused::configure(medtune_model::fused::FusedSettings {
        unfused,
        on_cpu,
        keep_weights,
    })
    .map_err(|e| anyhow::anyhow!("MEDTUNE_UNFUSED / MEDTUNE_FUSED_CPU: {e}"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDTUNE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Err(err) = configure_fused() {
        eprintln!("error: {err:#}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
