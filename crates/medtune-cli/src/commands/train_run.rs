//! One training run from a resolved [`TrainConfig`], as `medtune train` does it, for commands
//! that train several runs (`sweep`, `progressive`): load and prepare, write the label audit,
//! train, write `train_summary.json` into the run directory.

use anyhow::Context;
use medtune_train::config::TrainConfig;
use medtune_train::lora_model::prepare;
use medtune_train::trainer::TrainSummary;

use super::train::ProgressObserver;

/// Trains `cfg` from scratch on `device` into `cfg.train.output_dir`; `label` prefixes the
/// one-line description printed on stderr.
pub fn train_run(
    label: &str,
    cfg: &TrainConfig,
    device: &candle_core::Device,
    quiet: bool,
) -> anyhow::Result<TrainSummary> {
    let out = &cfg.train.output_dir;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut run = prepare(cfg, device).context("preparing the run")?;
    medtune_data::io::write_json(&out.join("label_audit.json"), &run.audit)?;
    let length = if cfg.train.max_steps > 0 {
        format!("{} steps", cfg.train.max_steps)
    } else {
        format!("{} epochs", cfg.train.epochs)
    };
    eprintln!(
        "{label}: {} train / {} eval examples, {} trainable parameters, {length} → {}",
        run.train_set.len(),
        run.eval_set.len(),
        run.model.lora.num_params(),
        out.display()
    );
    let mut obs = ProgressObserver::new(quiet);
    let summary = run.train(cfg, false, &mut obs)?;
    drop(obs);
    medtune_data::io::write_json(&out.join("train_summary.json"), &summary)?;
    Ok(summary)
}

/// `key=value` override with the value written as a TOML string (paths with spaces or quotes
/// survive).
pub fn set_path(key: &str, path: &std::path::Path) -> String {
    format!("{key}={}", toml::Value::String(path.display().to_string()))
}
