//! `medtune sweep --config sweep.toml [--out DIR] [--continue-best] [--set key=value ...]`:
//! short training runs over a grid or random points of learning rate, LoRA rank, alpha, dropout
//! and target modules, ranked by eval loss.
//!
//! Writes into the sweep directory: one run directory per trial (`trial-000/`, ...),
//! `sweep_plan.json`, `sweep_results.csv`, `sweep_results.md`, `sweep_results.json`,
//! `sweep_eval_loss.png` / `.svg` (best eval loss per trial, best first) and `best_config.toml`
//! (the base config with the best trial's settings, full length, output `best/`);
//! `--continue-best` then trains that configuration.

use anyhow::{bail, Context};
use clap::Args;
use medtune_train::config::TrainConfig;
use medtune_train::plot::{bar_chart, Bar, Labels};
use medtune_train::sweep::{rank, to_csv, to_markdown, Ranked, SweepConfig, Trial, TrialOutcome};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use super::train::pick_device;
use super::train_run::{set_path, train_run};

/// Run a hyperparameter sweep of short trials and rank them by eval loss.
#[derive(Args)]
pub struct SweepArgs {
    /// Sweep file (TOML: base_config, method, trials, seed, trial_steps, [space]).
    #[arg(long)]
    pub config: PathBuf,
    /// Sweep directory (default: the file's `output_dir`, else `runs/sweep/<file stem>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// After ranking, train the best configuration for the base config's full length.
    #[arg(long)]
    pub continue_best: bool,
    /// Override a run-config key for every trial and the continued run (`--set data.max_seq_len=256`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// The sweep directory: `--out`, else the file's `output_dir`, else `runs/sweep/<stem>`.
fn sweep_dir(args: &SweepArgs, cfg: &SweepConfig) -> PathBuf {
    if let Some(o) = &args.out {
        return o.clone();
    }
    if let Some(o) = &cfg.output_dir {
        return o.clone();
    }
    let stem = args
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sweep".into());
    Path::new("runs/sweep").join(stem)
}

pub fn run(args: SweepArgs) -> anyhow::Result<ExitCode> {
    let sweep = SweepConfig::load(&args.config)?;
    let base_text = std::fs::read_to_string(&sweep.base_config).with_context(|| {
        format!(
            "{}: base_config {}",
            args.config.display(),
            sweep.base_config.display()
        )
    })?;
    let base_origin = sweep.base_config.display().to_string();
    // Check the base config and the overrides once, before any trial runs.
    TrainConfig::from_toml_str(&base_text, &base_origin, &args.overrides)?;
    let trial_check: Vec<String> = args
        .overrides
        .iter()
        .chain(&sweep.trial_overrides)
        .cloned()
        .collect();
    TrainConfig::from_toml_str(&base_text, &base_origin, &trial_check)
        .with_context(|| format!("{}: trial_overrides", args.config.display()))?;
    let out = sweep_dir(&args, &sweep);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let trials = sweep.trials();
    medtune_data::io::write_json(&out.join("sweep_plan.json"), &trials)?;
    eprintln!(
        "medtune sweep: {} {} trials of {} steps from {} → {}",
        trials.len(),
        sweep.method.name(),
        sweep.trial_steps,
        sweep.base_config.display(),
        out.display()
    );

    let device = pick_device();
    let mut outcomes = Vec::with_capacity(trials.len());
    for t in &trials {
        let dir = out.join(t.name());
        let started = Instant::now();
        let result = trial_config(&base_text, &base_origin, &trial_check, t, &sweep, &dir)
            .and_then(|cfg| {
                train_run(
                    &format!("{} ({})", t.name(), t.describe()),
                    &cfg,
                    &device,
                    args.quiet,
                )
            });
        let outcome = match result {
            Ok(s) => TrialOutcome {
                trial: t.clone(),
                best_eval_loss: s.best_eval_loss.or(s.final_eval_loss),
                final_train_loss: s.final_train_loss,
                steps: s.steps,
                elapsed_s: s.elapsed_s,
                error: None,
            },
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("{}: failed: {msg}", t.name());
                TrialOutcome {
                    trial: t.clone(),
                    best_eval_loss: None,
                    final_train_loss: None,
                    steps: 0,
                    elapsed_s: started.elapsed().as_secs_f64(),
                    error: Some(msg),
                }
            }
        };
        println!(
            "{}: {} → best eval loss {}",
            t.name(),
            t.describe(),
            outcome
                .best_eval_loss
                .map(|x| format!("{x:.4}"))
                .unwrap_or_else(|| "-".into())
        );
        outcomes.push(outcome);
    }

    let ranked = rank(outcomes);
    write_results(&out, &sweep, &ranked)?;
    let Some(best) = ranked.first().filter(|r| r.is_valid()) else {
        bail!(
            "no trial finished with a finite eval loss (see {}); no best_config.toml written",
            out.join("sweep_results.md").display()
        );
    };
    let best_dir = out.join("best");
    let mut best_overrides = args.overrides.clone();
    best_overrides.extend(best.outcome.trial.overrides());
    best_overrides.push(set_path("train.output_dir", &best_dir));
    let best_cfg = TrainConfig::from_toml_str(&base_text, &base_origin, &best_overrides)?;
    let header = format!(
        "# Best trial of the sweep {}: {} ({}), best eval loss {:.6} after {} steps.\n# Base: {}; full length: train.max_steps = {}, train.epochs = {}.\n",
        args.config.display(),
        best.outcome.trial.name(),
        best.outcome.trial.describe(),
        best.outcome.best_eval_loss.unwrap_or(f64::NAN),
        best.outcome.steps,
        sweep.base_config.display(),
        best_cfg.train.max_steps,
        best_cfg.train.epochs
    );
    medtune_data::io::write_atomic(
        &out.join("best_config.toml"),
        format!("{header}\n{}", best_cfg.to_toml()).as_bytes(),
    )?;
    println!(
        "best: {} ({}), eval loss {:.4}; results: {}",
        best.outcome.trial.name(),
        best.outcome.trial.describe(),
        best.outcome.best_eval_loss.unwrap_or(f64::NAN),
        out.join("sweep_results.md").display()
    );
    if args.continue_best {
        let s = train_run("best (full run)", &best_cfg, &device, args.quiet)?;
        println!(
            "continued best: {} steps, eval loss {} (best {}); adapter: {}",
            s.steps,
            fmt_opt(s.final_eval_loss),
            fmt_opt(s.best_eval_loss),
            s.adapter_dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The run config of one trial: base + overrides + trial overrides + trial settings, trained for
/// `trial_steps` into `dir`.
fn trial_config(
    base_text: &str,
    origin: &str,
    common: &[String],
    t: &Trial,
    sweep: &SweepConfig,
    dir: &Path,
) -> anyhow::Result<TrainConfig> {
    let mut ov = common.to_vec();
    ov.extend(t.overrides());
    ov.push(format!("train.max_steps={}", sweep.trial_steps));
    ov.push(set_path("train.output_dir", dir));
    Ok(TrainConfig::from_toml_str(base_text, origin, &ov)?)
}

fn write_results(out: &Path, sweep: &SweepConfig, ranked: &[Ranked]) -> anyhow::Result<()> {
    medtune_data::io::write_atomic(&out.join("sweep_results.csv"), to_csv(ranked).as_bytes())?;
    medtune_data::io::write_json(&out.join("sweep_results.json"), &ranked)?;
    let valid: Vec<&Ranked> = ranked.iter().filter(|r| r.is_valid()).collect();
    let mut plot_note = String::new();
    if !valid.is_empty() {
        let bars: Vec<Bar> = valid
            .iter()
            .map(|r| Bar {
                label: r.outcome.trial.name(),
                value: r.outcome.best_eval_loss.unwrap_or(f64::NAN),
                ci: None,
            })
            .collect();
        match bar_chart(
            &out.join("sweep_eval_loss"),
            &Labels {
                title: "Sweep: best eval loss per trial (lower is better)",
                x: "trial",
                y: "eval loss",
            },
            &bars,
        ) {
            Ok(_) => plot_note.push_str("\n![eval loss per trial](sweep_eval_loss.png)\n"),
            Err(e) => eprintln!("warning: {e}"),
        }
    }
    let md = format!(
        "# Sweep results\n\n{} trials ({}, seed {}), {} steps each, from `{}`; ranked by the lowest eval loss of each run. Failed trials and trials without a finite eval loss are ranked last and flagged.\n\n{}{}",
        ranked.len(),
        sweep.method.name(),
        sweep.seed,
        sweep.trial_steps,
        sweep.base_config.display(),
        to_markdown(ranked),
        plot_note
    );
    medtune_data::io::write_atomic(&out.join("sweep_results.md"), md.as_bytes())?;
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into())
}
