//! `medtune runs list|show|compare`: read run directories (their `manifest.json` and
//! `metrics.jsonl`) and print them as tables.

use anyhow::Context;
use clap::{Args, Subcommand};
use medtune_train::runs::{
    self, cell, float, format_unix_utc, setting_cell, summary, Comparison, RunRecord,
    DEFAULT_MAX_DEPTH, MANIFEST_FILE,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// List, show and compare training runs.
#[derive(Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// A table of the runs under a directory (unreadable runs are flagged with `!`).
    List {
        /// Directory searched for run directories.
        #[arg(long, default_value = "runs")]
        root: PathBuf,
        /// Directory levels searched below the root.
        #[arg(long, default_value_t = DEFAULT_MAX_DEPTH)]
        depth: usize,
    },
    /// One run: provenance, hyper-parameters, metrics and safety summary.
    Show {
        /// A run directory, or its name under --root.
        run: String,
        /// Directory that run names are relative to.
        #[arg(long, default_value = "runs")]
        root: PathBuf,
    },
    /// The settings that differ between runs, and their metrics side by side.
    Compare {
        /// Run directories, or names under --root (two or more).
        #[arg(required = true, num_args = 2..)]
        runs: Vec<String>,
        /// Directory that run names are relative to.
        #[arg(long, default_value = "runs")]
        root: PathBuf,
        /// Also write the comparison as Markdown to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: RunsArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        RunsCommand::List { root, depth } => list(&root, depth),
        RunsCommand::Show { run, root } => show(&resolve(&root, &run)?),
        RunsCommand::Compare { runs, root, out } => {
            let dirs = runs
                .iter()
                .map(|r| resolve(&root, r))
                .collect::<anyhow::Result<Vec<_>>>()?;
            compare(&dirs, &runs, out.as_deref())
        }
    }
}

/// A run argument as a directory: the path itself when it holds a manifest, else `root/run`.
fn resolve(root: &Path, run: &str) -> anyhow::Result<PathBuf> {
    let direct = PathBuf::from(run);
    if direct.join(MANIFEST_FILE).is_file() {
        return Ok(direct);
    }
    let under = root.join(run);
    if under.join(MANIFEST_FILE).is_file() {
        return Ok(under);
    }
    anyhow::bail!(
        "run `{run}`: no {MANIFEST_FILE} in {} or {}",
        direct.display(),
        under.display()
    )
}

fn list(root: &Path, depth: usize) -> anyhow::Result<ExitCode> {
    let records = runs::discover(root, depth)
        .with_context(|| format!("listing runs under {}", root.display()))?;
    if records.is_empty() {
        println!(
            "no runs under {} (no {MANIFEST_FILE} found)",
            root.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let header = [
        "run",
        "base model",
        "dataset",
        "steps",
        "best eval loss",
        "final eval loss",
        "lr",
        "r",
        "created",
    ];
    let rows: Vec<Vec<String>> = records.iter().map(list_row).collect();
    print!("{}", text_table(&header, &rows));
    let flagged: Vec<&RunRecord> = records.iter().filter(|r| r.is_flagged()).collect();
    if !flagged.is_empty() {
        println!();
        for r in &flagged {
            for p in &r.problems {
                println!("! {}: {p}", r.name);
            }
        }
        eprintln!(
            "{} of {} runs could not be read completely (flagged with `!`)",
            flagged.len(),
            records.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list_row(r: &RunRecord) -> Vec<String> {
    let name = if r.is_flagged() {
        format!("{} !", r.name)
    } else {
        r.name.clone()
    };
    let (base, dataset, lr, rank) = match &r.manifest {
        Some(m) => (
            last_component(&m.base_model),
            dataset_label(m),
            float(m.config.optim.lr),
            m.config.lora.r.to_string(),
        ),
        None => ("-".into(), "-".into(), "-".into(), "-".into()),
    };
    let steps = match (r.metrics.steps, r.metrics.total_steps) {
        (Some(s), Some(t)) if s != t => format!("{s}/{t}"),
        (Some(s), _) => s.to_string(),
        (None, _) => "-".into(),
    };
    vec![
        name,
        base,
        dataset,
        steps,
        opt_float(r.metrics.best_eval_loss),
        opt_float(r.metrics.final_eval_loss),
        lr,
        rank,
        r.created_unix_s
            .map(format_unix_utc)
            .unwrap_or_else(|| "-".into()),
    ]
}

/// `name (sha256 prefix of the train split)`; the name from the data manifest, else the
/// dataset directory's last component.
fn dataset_label(m: &medtune_train::manifest::RunManifest) -> String {
    let name = m
        .data_manifest
        .as_ref()
        .and_then(|d| d.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| last_component(&m.dataset_dir));
    if m.train_file_sha256.is_empty() {
        name
    } else {
        format!("{name} ({})", short(&m.train_file_sha256))
    }
}

fn show(dir: &Path) -> anyhow::Result<ExitCode> {
    let r = runs::read_run(dir).with_context(|| format!("reading run {}", dir.display()))?;
    let Some(m) = &r.manifest else {
        anyhow::bail!("{}: no run manifest", dir.join(MANIFEST_FILE).display());
    };
    let s = summary(m);
    let mut lines: Vec<(String, String)> = vec![
        ("run".into(), r.dir.display().to_string()),
        (
            "created".into(),
            r.created_unix_s
                .map(format_unix_utc)
                .unwrap_or_else(|| "-".into()),
        ),
        ("code version".into(), s.code_version.clone()),
        (
            "base model".into(),
            format!("{} ({})", s.base_model, s.base_storage),
        ),
        ("base model sha256".into(), or_dash(&s.base_model_sha256)),
        ("tokenizer sha256".into(), or_dash(&s.tokenizer_sha256)),
        (
            "chat template sha256".into(),
            or_dash(&s.chat_template_sha256),
        ),
        (
            "dataset".into(),
            match &s.dataset.name {
                Some(n) => format!("{n} ({})", s.dataset.dir),
                None => s.dataset.dir.clone(),
            },
        ),
        (
            "train split sha256".into(),
            or_dash(&s.dataset.train_file_sha256),
        ),
        (
            "eval split sha256".into(),
            or_dash(&s.dataset.eval_file_sha256),
        ),
        (
            "split seed".into(),
            s.dataset
                .split_seed
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    if let Some(split) = &s.dataset.split {
        lines.push(("split settings".into(), split.to_string()));
    }
    for i in &s.dataset.inputs {
        lines.push(("input".into(), format!("{} sha256 {}", i.path, i.sha256)));
    }
    println!("{}", key_values(&lines));

    println!("\nhyper-parameters:");
    let hp: Vec<(String, String)> = runs::hyper_parameters(&m.config)
        .iter()
        .map(|(k, v)| (k.clone(), setting_cell(Some(v))))
        .collect();
    println!("{}", indent(&key_values(&hp)));

    println!("\nmetrics ({}):", metrics_source(&r));
    let x = &r.metrics;
    let mut mt: Vec<(String, String)> = vec![
        (
            "steps".into(),
            match (x.steps, x.total_steps) {
                (Some(s), Some(t)) => format!("{s} of {t}"),
                (Some(s), None) => s.to_string(),
                _ => "-".into(),
            },
        ),
        ("initial eval loss".into(), opt_float(x.initial_eval_loss)),
        (
            "best eval loss".into(),
            match (x.best_eval_loss, x.best_step) {
                (Some(l), Some(s)) => format!("{} (step {s})", float(l)),
                (l, _) => opt_float(l),
            },
        ),
        ("final eval loss".into(), opt_float(x.final_eval_loss)),
        ("final train loss".into(), opt_float(x.final_train_loss)),
    ];
    for (k, v) in runs::other_results(m) {
        if !k.starts_with("safety.") {
            mt.push((k, cell(Some(&v))));
        }
    }
    println!("{}", indent(&key_values(&mt)));

    println!("\nsafety:");
    match &s.safety {
        Some(v) => {
            let mut flat = std::collections::BTreeMap::new();
            runs::flatten(v, "", &mut flat);
            let sf: Vec<(String, String)> = flat
                .iter()
                .map(|(k, v)| (k.clone(), cell(Some(v))))
                .collect();
            println!("{}", indent(&key_values(&sf)));
        }
        None => println!("  no safety summary in this run's manifest"),
    }
    Ok(ExitCode::SUCCESS)
}

fn metrics_source(r: &RunRecord) -> &'static str {
    match r.metrics.source {
        runs::MetricsSource::MetricsLog => "from metrics.jsonl",
        runs::MetricsSource::Manifest => "from the manifest",
        runs::MetricsSource::None => "none recorded",
    }
}

fn compare(dirs: &[PathBuf], names: &[String], out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut records = Vec::with_capacity(dirs.len());
    for (dir, name) in dirs.iter().zip(names) {
        let mut r =
            runs::read_run(dir).with_context(|| format!("reading run {}", dir.display()))?;
        r.name = name.clone();
        records.push(r);
    }
    let c = runs::compare(&records);
    let (settings, metrics) = tables(&c);
    println!(
        "settings that differ ({} of {}; {} equal):",
        c.differing.len(),
        c.differing.len() + c.identical,
        c.identical
    );
    if c.differing.is_empty() {
        println!("  none");
    } else {
        print!("{}", text_table(&settings.0, &settings.1));
    }
    println!("\nmetrics:");
    print!("{}", text_table(&metrics.0, &metrics.1));
    if let Some(path) = out {
        let md = markdown(&c, &settings, &metrics);
        medtune_data::io::write_atomic(path, md.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

type Table = (Vec<String>, Vec<Vec<String>>);

/// The settings table and the metrics table of a comparison (header, rows).
fn tables(c: &Comparison) -> (Table, Table) {
    let header = |first: &str| {
        std::iter::once(first.to_string())
            .chain(c.runs.iter().cloned())
            .collect::<Vec<_>>()
    };
    let rows = |rs: &[runs::CompareRow], fmt: fn(Option<&Value>) -> String| -> Vec<Vec<String>> {
        rs.iter()
            .map(|r| {
                std::iter::once(r.key.clone())
                    .chain(r.values.iter().map(|v| fmt(v.as_ref())))
                    .collect::<Vec<String>>()
            })
            .collect()
    };
    (
        (header("setting"), rows(&c.differing, setting_cell)),
        (header("metric"), rows(&c.metrics, cell)),
    )
}

fn markdown(c: &Comparison, settings: &Table, metrics: &Table) -> String {
    let mut md = format!("# Run comparison: {}\n\n", c.runs.join(" vs "));
    md.push_str(&format!(
        "## Settings that differ\n\n{} of {} settings differ ({} equal).\n\n",
        c.differing.len(),
        c.differing.len() + c.identical,
        c.identical
    ));
    if !c.differing.is_empty() {
        md.push_str(&markdown_table(&settings.0, &settings.1));
    }
    md.push_str("\n## Metrics\n\n");
    md.push_str(&markdown_table(&metrics.0, &metrics.1));
    md
}

fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut t = format!(
        "| {} |\n|{}\n",
        header
            .iter()
            .map(|h| esc(h))
            .collect::<Vec<_>>()
            .join(" | "),
        "---|".repeat(header.len())
    );
    for r in rows {
        t.push_str(&format!(
            "| {} |\n",
            r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    t
}

/// Columns padded to their widest cell, two spaces apart.
fn text_table<H: AsRef<str>>(header: &[H], rows: &[Vec<String>]) -> String {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.as_ref().chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header.iter().map(|h| h.as_ref()).collect());
    out.push_str(
        &(widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
            + "\n"),
    );
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn key_values(lines: &[(String, String)]) -> String {
    let w = lines
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    lines
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn last_component(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| path.to_string())
}

fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

fn opt_float(v: Option<f64>) -> String {
    v.map(float).unwrap_or_else(|| "-".into())
}
