//! `medtune train --config run.toml [--set key=value ...] [--resume]`: LoRA / QLoRA fine-tuning.

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use medtune_train::config::TrainConfig;
use medtune_train::log::MetricRow;
use medtune_train::lora_model::prepare;
use medtune_train::trainer::Observer;
use std::path::PathBuf;
use std::process::ExitCode;

/// Fine-tune LoRA adapters on a prepared dataset.
#[derive(Args)]
pub struct TrainArgs {
    /// Run configuration (TOML: [model], [data], [lora], [optim], [schedule], [train]).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override any key: `--set optim.lr=1e-4 --set train.max_steps=50`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Continue from the latest checkpoint in the output directory.
    #[arg(long)]
    pub resume: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Draws training progress on stderr: loss, lr, tokens/s and ETA.
pub struct ProgressObserver {
    bar: ProgressBar,
}

impl ProgressObserver {
    /// A progress bar (hidden when `quiet`).
    pub fn new(quiet: bool) -> Self {
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(0)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "train {bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar }
    }
}

impl Observer for ProgressObserver {
    fn on_start(&mut self, start_step: u64, total_steps: u64) {
        self.bar.set_length(total_steps);
        self.bar.set_position(start_step);
        self.bar.reset_eta();
    }
    fn on_step(&mut self, row: &MetricRow) {
        self.bar.set_position(row.step);
        self.bar.set_message(format!(
            "loss {:.4}  lr {:.2e}  {:.0} tok/s",
            row.loss,
            row.lr.unwrap_or(0.0),
            row.tokens_per_s.unwrap_or(0.0)
        ));
    }
    fn on_eval(&mut self, row: &MetricRow, improved: bool) {
        self.bar.println(format!(
            "eval @ step {}: loss {:.4}  ppl {:.2}{}",
            row.step,
            row.loss,
            row.perplexity.unwrap_or(f64::NAN),
            if improved { "  (best)" } else { "" }
        ));
    }
    fn on_message(&mut self, message: &str) {
        self.bar.println(message);
    }
}

impl Drop for ProgressObserver {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Picks the first CUDA device when medtune was built with CUDA and one is present, else the CPU.
pub fn pick_device() -> candle_core::Device {
    candle_core::Device::cuda_if_available(0).unwrap_or(candle_core::Device::Cpu)
}

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let cfg = TrainConfig::load(args.config.as_deref(), &args.overrides)?;
    let device = pick_device();
    eprintln!(
        "medtune train: base {} ({}, quantization {}), data {}, output {}",
        cfg.model.path.display(),
        cfg.model.compute_dtype,
        cfg.model.quantization,
        cfg.data.dataset_dir.display(),
        cfg.train.output_dir.display()
    );
    let mut run = prepare(&cfg, &device).context("preparing the run")?;
    let a = &run.audit;
    eprintln!(
        "label audit: {} examples, {:.1}% of tokens supervised, {} without supervision, EOS supervised: {}, template sha256 {}",
        a.examples,
        100.0 * a.supervised_fraction,
        a.examples_without_supervision,
        a.eos_supervised,
        &a.chat_template_sha256[..12.min(a.chat_template_sha256.len())]
    );
    std::fs::create_dir_all(&cfg.train.output_dir)
        .with_context(|| format!("creating {}", cfg.train.output_dir.display()))?;
    medtune_data::io::write_json(&cfg.train.output_dir.join("label_audit.json"), &run.audit)?;
    eprintln!(
        "LoRA: {} adapters, {} trainable parameters; {} train / {} eval examples ({} / {} dropped by truncation)",
        run.model.lora.adapters().len(),
        run.model.lora.num_params(),
        run.train_set.len(),
        run.eval_set.len(),
        run.dropped.0,
        run.dropped.1
    );
    let mut obs = ProgressObserver::new(args.quiet);
    let summary = run.train(&cfg, args.resume, &mut obs)?;
    drop(obs);
    medtune_data::io::write_json(&cfg.train.output_dir.join("train_summary.json"), &summary)?;
    println!(
        "trained {} steps in {:.1}s ({:.0} tokens/s); eval loss {} -> {} (best {} at step {}); adapter: {}",
        summary.steps,
        summary.elapsed_s,
        summary.tokens_per_s,
        fmt_opt(summary.initial_eval_loss),
        fmt_opt(summary.final_eval_loss),
        fmt_opt(summary.best_eval_loss),
        summary.best_step.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
        summary.adapter_dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into())
}
