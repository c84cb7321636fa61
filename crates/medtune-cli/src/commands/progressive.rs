//! `medtune progressive --config run.toml --recommendations training_recommendations.json
//! [--adapter DIR] --out DIR`: one round of progressive training.
//!
//! 1. Reads the weak specialties and their sampling multipliers from the recommendations.
//! 2. Draws extra training records of those specialties from the dataset's `pool.jsonl`
//!    (seeded; never a record of the holdout or validation split) and writes the enlarged
//!    dataset to `DIR/data/` with `selection.json` (requested vs available vs drawn).
//! 3. "Before" is `--adapter` (the previous round's adapter) or, without it, a run of the same
//!    config on the original data (`DIR/before/`); "after" is the same config trained on the
//!    enlarged data (`DIR/after/`).
//! 4. Evaluates both on the same items of the constant holdout with the eval crate
//!    (`DIR/eval/`: the full report) and writes the per-specialty change with paired bootstrap
//!    intervals: `DIR/specialty_change.csv` and `DIR/specialty_change.md`, plus
//!    `DIR/progressive_summary.json`.

use anyhow::{bail, Context};
use clap::Args;
use medtune_data::resample::{read_recommendations, select_extra, Selection};
use medtune_data::Record;
use medtune_eval::change::{specialty_changes, to_csv, to_markdown, SpecialtyChange};
use medtune_eval::{
    run_suites, write_report, EvalSpec, EvalTarget, Modes, NoProgress, Sources, Suite,
};
use medtune_train::config::TrainConfig;
use medtune_train::lora_model::{load_base, read_split};
use medtune_train::trainer::TrainSummary;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::train::pick_device;
use super::train_run::{set_path, train_run};

/// Draw more examples of weak specialties, retrain, and compare per specialty on the holdout.
#[derive(Args)]
pub struct ProgressiveArgs {
    /// Run configuration of the round (its dataset must have `pool.jsonl`, see `[split.progressive]`).
    #[arg(long)]
    pub config: PathBuf,
    /// `training_recommendations.json` from `medtune eval`.
    #[arg(long)]
    pub recommendations: PathBuf,
    /// The previous round's adapter ("before"); without it, "before" is trained on the original data.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Output directory of the round.
    #[arg(long)]
    pub out: PathBuf,
    /// Pool to draw from [default: <data.dataset_dir>/pool.jsonl].
    #[arg(long)]
    pub pool: Option<PathBuf>,
    /// Split file stem of the constant holdout in the dataset directory.
    #[arg(long, default_value = "test")]
    pub holdout: String,
    /// Suites scored before and after, comma separated (medquad scores the holdout split).
    #[arg(long, value_delimiter = ',', default_value = "medquad")]
    pub suite: Vec<String>,
    /// Raw benchmark data directory (for suites other than medquad).
    #[arg(long, default_value = "../shared/data")]
    pub data_dir: PathBuf,
    /// likelihood, generate or both.
    #[arg(long, default_value = "likelihood")]
    pub mode: String,
    /// At most N items per suite.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Bootstrap resamples for every interval.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seed of the draw [default: the config's train.seed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override a run-config key (`--set train.max_steps=50`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
}

/// What `progressive_summary.json` holds.
#[derive(serde::Serialize)]
struct Summary<'a> {
    recommendations: &'a Path,
    dataset_dir: &'a Path,
    enlarged_dataset_dir: PathBuf,
    holdout: &'a str,
    train_before: usize,
    train_after: usize,
    selection: &'a Selection,
    before_adapter: &'a Path,
    before_training: Option<&'a TrainSummary>,
    after_adapter: &'a Path,
    after_training: &'a TrainSummary,
    changes: &'a [SpecialtyChange],
}

fn read_required(path: &Path, what: &str, hint: &str) -> anyhow::Result<Vec<Record>> {
    if !path.is_file() {
        bail!("{what} {} not found{hint}", path.display());
    }
    Ok(read_split(path, 0)?)
}

pub fn run(args: ProgressiveArgs) -> anyhow::Result<ExitCode> {
    let cfg = TrainConfig::load(Some(&args.config), &args.overrides)?;
    let requests = read_recommendations(&args.recommendations)?;
    let suites = args
        .suite
        .iter()
        .map(|s| Suite::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let modes = Modes::parse(&args.mode)?;
    if let Some(a) = &args.adapter {
        if !a.join("adapter_config.json").is_file() {
            bail!(
                "--adapter {}: no adapter_config.json (a PEFT adapter folder is expected)",
                a.display()
            );
        }
    }
    let ds = cfg.data.dataset_dir.clone();
    let train = read_split(&ds.join(&cfg.data.train_file), cfg.data.max_train_examples)
        .with_context(|| format!("data.train_file of {}", args.config.display()))?;
    let eval_path = ds.join(&cfg.data.eval_file);
    let eval = if eval_path.is_file() {
        read_split(&eval_path, 0)?
    } else {
        Vec::new()
    };
    let holdout_file = format!("{}.jsonl", args.holdout);
    if holdout_file == cfg.data.train_file {
        bail!("--holdout {}: that is the training split", args.holdout);
    }
    let holdout = read_required(
        &ds.join(&holdout_file),
        "holdout",
        " (--holdout names its file stem)",
    )?;
    let pool_path = args.pool.clone().unwrap_or_else(|| ds.join("pool.jsonl"));
    let pool = read_required(
        &pool_path,
        "pool",
        " (prepare the dataset with [split.progressive], or pass --pool)",
    )?;
    let held: Vec<Record> = holdout.iter().chain(&eval).cloned().collect();
    let seed = args.seed.unwrap_or(cfg.train.seed);
    let selection = select_extra(&train, &pool, &held, &requests, seed)?;

    let out = args.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let data_dir = out.join("data");
    write_enlarged(
        &data_dir,
        &cfg,
        &train,
        &eval,
        &holdout,
        &holdout_file,
        &pool,
        &selection,
    )?;
    println!("{}", selection_table(&selection));
    if selection.added.is_empty() {
        bail!(
            "nothing to draw: {} specialties recommended, none with pool records available (see {})",
            selection.specialties.len(),
            data_dir.join("selection.json").display()
        );
    }

    let device = pick_device();
    let (before_adapter, before_training) = match &args.adapter {
        Some(a) => (a.clone(), None),
        None => {
            let mut ov = args.overrides.clone();
            ov.push(set_path("train.output_dir", &out.join("before")));
            let c = TrainConfig::load(Some(&args.config), &ov)?;
            let s = train_run("before (original data)", &c, &device, args.quiet)?;
            (s.adapter_dir.clone(), Some(s))
        }
    };
    let mut ov = args.overrides.clone();
    ov.push(set_path("data.dataset_dir", &data_dir));
    ov.push("data.max_train_examples=0".into());
    ov.push(set_path("train.output_dir", &out.join("after")));
    let after_cfg = TrainConfig::load(Some(&args.config), &ov)?;
    let after = train_run("after (enlarged data)", &after_cfg, &device, args.quiet)?;

    eprintln!(
        "evaluating before and after on the holdout ({})",
        args.suite.join(", ")
    );
    let mut lm = load_base(&cfg, &device).context("loading the base for evaluation")?;
    let mut spec = EvalSpec::new(
        suites,
        Sources {
            data_dir: args.data_dir.clone(),
            dataset_dir: Some(ds.clone()),
            heldout_split: args.holdout.clone(),
        },
    );
    spec.modes = modes;
    spec.limit = args.limit;
    spec.bootstrap.resamples = args.resamples;
    let targets = [
        EvalTarget {
            name: "before".into(),
            adapter: Some(before_adapter.clone()),
        },
        EvalTarget {
            name: "after".into(),
            adapter: Some(after.adapter_dir.clone()),
        },
    ];
    let cmp = run_suites(&spec, &mut lm, &targets, &mut NoProgress)?;
    write_report(&cmp, &out.join("eval"))?;
    let changes = specialty_changes(&cmp, "after")?;
    medtune_data::io::write_atomic(
        &out.join("specialty_change.csv"),
        to_csv(&changes)?.as_bytes(),
    )?;
    let md = report_markdown(&args, &selection, &changes);
    medtune_data::io::write_atomic(&out.join("specialty_change.md"), md.as_bytes())?;
    medtune_data::io::write_json(
        &out.join("progressive_summary.json"),
        &Summary {
            recommendations: &args.recommendations,
            dataset_dir: &ds,
            enlarged_dataset_dir: data_dir.clone(),
            holdout: &args.holdout,
            train_before: train.len(),
            train_after: train.len() + selection.added.len(),
            selection: &selection,
            before_adapter: &before_adapter,
            before_training: before_training.as_ref(),
            after_adapter: &after.adapter_dir,
            after_training: &after,
            changes: &changes,
        },
    )?;
    println!("{}", to_markdown(&changes));
    println!(
        "round directory: {} (specialty_change.md, eval/report.md)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes the enlarged dataset: the training split plus the drawn records, the validation and
/// holdout splits unchanged, the pool without the drawn records, and `selection.json`.
#[allow(clippy::too_many_arguments)]
fn write_enlarged(
    dir: &Path,
    cfg: &TrainConfig,
    train: &[Record],
    eval: &[Record],
    holdout: &[Record],
    holdout_file: &str,
    pool: &[Record],
    selection: &Selection,
) -> anyhow::Result<()> {
    use medtune_data::io::{write_json, write_jsonl};
    let enlarged: Vec<Record> = train.iter().chain(&selection.added).cloned().collect();
    write_jsonl(&dir.join(&cfg.data.train_file), &enlarged)?;
    if !eval.is_empty() {
        write_jsonl(&dir.join(&cfg.data.eval_file), eval)?;
    }
    write_jsonl(&dir.join(holdout_file), holdout)?;
    let drawn: std::collections::HashSet<&str> =
        selection.added.iter().map(|r| r.id.as_str()).collect();
    let rest: Vec<Record> = pool
        .iter()
        .filter(|r| !drawn.contains(r.id.as_str()))
        .cloned()
        .collect();
    write_jsonl(&dir.join("pool.jsonl"), &rest)?;
    #[derive(serde::Serialize)]
    struct File<'a> {
        selection: &'a Selection,
        added_ids: Vec<&'a str>,
    }
    write_json(
        &dir.join("selection.json"),
        &File {
            selection,
            added_ids: selection.added.iter().map(|r| r.id.as_str()).collect(),
        },
    )?;
    Ok(())
}

fn selection_table(s: &Selection) -> String {
    let mut t = String::from(
        "| specialty | multiplier | in train | requested | available | held out / trained | drawn | short |\n|---|---|---|---|---|---|---|---|\n",
    );
    for d in &s.specialties {
        t.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} |\n",
            d.specialty.replace('|', "\\|"),
            d.multiplier,
            d.in_train,
            d.requested,
            d.available,
            d.excluded,
            d.drawn,
            d.shortfall()
        ));
    }
    t
}

fn report_markdown(args: &ProgressiveArgs, s: &Selection, changes: &[SpecialtyChange]) -> String {
    let targeted: Vec<&str> = s.specialties.iter().map(|d| d.specialty.as_str()).collect();
    let targeted_rows: Vec<SpecialtyChange> = changes
        .iter()
        .filter(|c| targeted.contains(&c.specialty.as_str()))
        .cloned()
        .collect();
    format!(
        "# Progressive training round\n\nRecommendations: `{}`; draw seed {}; holdout split `{}`; before: {}.\n\n## Extra training records drawn from the pool\n\n{}\n## Change per specialty on the holdout (after − before, paired 95% bootstrap intervals)\n\n{}\n### Recommended specialties only\n\n{}\nA verdict is `better` or `worse` only when the interval of the change excludes 0 and the specialty has at least {} holdout items (else `too few items`). Full evaluation report: `eval/report.md`.\n",
        args.recommendations.display(),
        s.seed,
        args.holdout,
        match &args.adapter {
            Some(a) => format!("adapter `{}`", a.display()),
            None => "the same config trained on the original data (`before/`)".into(),
        },
        selection_table(s),
        to_markdown(changes),
        to_markdown(&targeted_rows),
        medtune_eval::change::MIN_VERDICT_N
    )
}
