//! `medtune data`: prepare a dataset directory from a data config, print a prepared dataset's
//! statistics, and benchmark the pipeline on MedQuAD.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use medtune_data::augment::dose::BuiltinDoseTable;
use medtune_data::clean::{clean, CleanConfig};
use medtune_data::pipeline::{prepare, Manifest, PrepareOptions, StatsFile};
use medtune_data::prompt::PromptConfig;
use medtune_data::readers::{read_source, Format, SourceConfig};
use medtune_data::split::{split, Split, SplitConfig};
use medtune_data::template::ChatTemplate;
use medtune_data::tokenize::{
    tokenize_records, ExampleTokenizer, TokenizeConfig, Tokenizer, Truncation,
};
use medtune_data::DataConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Prepare, inspect and benchmark datasets.
#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Read, clean, split and augment the sources of a data config into a dataset directory.
    Prepare(PrepareArgs),
    /// Print a prepared dataset's manifest, cleaning report and statistics as tables.
    Stats {
        /// A directory written by `medtune data prepare`.
        dir: PathBuf,
    },
    /// Time MedQuAD parse+clean+dedup+split, and tokenization throughput (examples/s).
    Bench(BenchArgs),
}

#[derive(Args)]
struct PrepareArgs {
    /// Data config (TOML), e.g. configs/data/medquad.toml.
    #[arg(long)]
    config: PathBuf,
    /// Directory that the config's source paths are relative to.
    #[arg(long, default_value = "../shared/data")]
    data_dir: PathBuf,
    /// Output directory (default runs/data/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Stop at the first malformed row, line or file instead of reporting and skipping it.
    #[arg(long)]
    strict: bool,
    /// Tokenizer for token rules and histograms: a tokenizer.json, a .gguf file or a model
    /// directory (overrides the config's `tokenizer`).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Directory holding `medquad/`.
    #[arg(long, default_value = "../shared/data")]
    data_dir: PathBuf,
    /// Tokenizer of the tokenization figure: a tokenizer.json, a .gguf file or a model directory.
    #[arg(
        long,
        default_value = "../shared/models/smollm2-135m-instruct/tokenizer.json"
    )]
    tokenizer: PathBuf,
    /// Chat template: a built-in name, a .jinja file, or a tokenizer_config.json.
    #[arg(
        long,
        default_value = "../shared/models/smollm2-135m-instruct/chat_template.jinja"
    )]
    template: String,
    /// EOS token for a .jinja template.
    #[arg(long, default_value = "<|im_end|>")]
    eos: String,
    /// Maximum tokens per example.
    #[arg(long, default_value_t = 1024)]
    max_len: usize,
}

/// Runs `medtune data ...`.
pub fn run(args: DataArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DataCommand::Prepare(a) => run_prepare(a),
        DataCommand::Stats { dir } => run_stats(&dir),
        DataCommand::Bench(a) => run_bench(a),
    }
}

/// A tokenizer from a `tokenizer.json`, a `.gguf` file or a model directory, picked as
/// `medtune train` picks it ([`medtune_model::load_tokenizer`]): e.g. the GGUF-only default
/// model that the setup script fetches without `../shared`.
fn load_tokenizer(path: &Path) -> anyhow::Result<Tokenizer> {
    let t = medtune_model::load_tokenizer(path)
        .with_context(|| format!("loading tokenizer {}", path.display()))?;
    Ok(t.inner().clone())
}

fn run_prepare(a: PrepareArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let mut cfg = DataConfig::from_toml_str(&text, &a.config.display().to_string())?;
    let stem = a
        .config
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dataset".into());
    let name = cfg.name.clone().unwrap_or(stem);
    cfg.name = Some(name.clone());
    let tok_path = a.tokenizer.clone().or_else(|| {
        cfg.tokenizer
            .as_ref()
            .map(|p| a.config.parent().unwrap_or(Path::new(".")).join(p))
    });
    let tokenizer = tok_path.as_deref().map(load_tokenizer).transpose()?;
    let counter = tokenizer
        .as_ref()
        .map(|t| move |s: &str| t.encode(s, false).map(|e| e.len()).unwrap_or(0));
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs/data").join(&name));
    let started = Instant::now();
    let opts = PrepareOptions {
        data_dir: &a.data_dir,
        out_dir: Some(&out),
        strict: a.strict,
        config_text: Some(&text),
        tokens: counter
            .as_ref()
            .map(|c| c as &(dyn Fn(&str) -> usize + Sync)),
        dose_rules: &BuiltinDoseTable,
    };
    let p = prepare(&cfg, &opts).with_context(|| format!("preparing dataset `{name}`"))?;
    let counts: Vec<String> = p
        .manifest
        .counts
        .iter()
        .map(|(s, n)| format!("{} {n}", s.name()))
        .collect();
    let dropped: usize = p.manifest.dropped_by_reason.values().sum();
    let problems: usize = p.cleaning.readers.values().map(|r| r.problems_total).sum();
    eprintln!(
        "prepared `{name}` in {:.1} s: read {}, dropped {dropped} ({problems} malformed), {}; leakage: {} near-duplicate pairs crossing splits (a random split: {})",
        started.elapsed().as_secs_f64(),
        p.manifest.records_read,
        counts.join(", "),
        p.stats.leakage.near_dup_pairs_crossing,
        p.stats.leakage.random_split_near_dup_pairs_crossing,
    );
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Prints rows as an aligned table (first column left-aligned, others right-aligned).
fn table(header: &[&str], rows: &[Vec<String>]) {
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<0$}", w[i])
                } else {
                    format!("{c:>0$}", w[i])
                }
            })
            .collect();
        println!("  {}", parts.join("  "));
    };
    line(header.to_vec());
    line(
        w.iter()
            .map(|&n| "-".repeat(n))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

fn run_stats(dir: &Path) -> anyhow::Result<ExitCode> {
    let manifest: Manifest = read_json(&dir.join("manifest.json"))?;
    let stats: StatsFile = read_json(&dir.join("stats.json"))?;
    let cleaning: serde_json::Value = read_json(&dir.join("cleaning_report.json"))?;
    println!(
        "dataset `{}` (seed {}, {} input files, {} records read)",
        manifest.name,
        manifest.seed,
        manifest.inputs.len(),
        manifest.records_read
    );
    println!("\nsplits");
    let rows: Vec<Vec<String>> = stats
        .splits
        .iter()
        .map(|(s, st)| {
            vec![
                s.name().to_string(),
                st.records.to_string(),
                st.synthetic.to_string(),
                format!("{:.0}", st.question_chars.mean),
                format!("{:.0}", st.answer_chars.mean),
                st.answer_chars.median.to_string(),
                st.answer_chars.max.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "split",
            "records",
            "synthetic",
            "q chars (mean)",
            "a chars (mean)",
            "a chars (median)",
            "a chars (max)",
        ],
        &rows,
    );
    // specialty × label, one column per split.
    let splits: Vec<Split> = stats.splits.keys().copied().collect();
    let mut keys: std::collections::BTreeSet<(String, String)> = Default::default();
    for st in stats.splits.values() {
        for (sp, labels) in &st.by_specialty_label {
            for l in labels.keys() {
                keys.insert((sp.clone(), l.clone()));
            }
        }
    }
    println!("\ncounts by specialty × label");
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|(sp, l)| {
            let mut row = vec![format!("{sp} / {l}")];
            row.extend(splits.iter().map(|s| {
                stats.splits[s]
                    .by_specialty_label
                    .get(sp)
                    .and_then(|m| m.get(l))
                    .copied()
                    .unwrap_or(0)
                    .to_string()
            }));
            row
        })
        .collect();
    let mut header = vec!["specialty / label"];
    header.extend(splits.iter().map(|s| s.name()));
    table(&header, &rows);
    if let Some(train) = stats.splits.get(&Split::Train) {
        println!("\nanswer length histogram, train (characters)");
        let h = &train.answer_chars;
        let rows: Vec<Vec<String>> = h
            .counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| vec![format!("< {}", h.upper_bounds[i]), c.to_string()])
            .collect();
        table(&["chars", "records"], &rows);
        if let Some(t) = &train.answer_tokens {
            println!(
                "\nanswer tokens, train: mean {:.0}, median {}, max {}",
                t.mean, t.median, t.max
            );
        }
    }
    let l = &stats.leakage;
    println!("\nleakage");
    table(
        &["check", "value"],
        &[
            vec!["near-duplicate pairs".into(), l.near_dup_pairs.to_string()],
            vec![
                "groups (largest)".into(),
                format!("{} ({})", l.groups, l.largest_group),
            ],
            vec![
                "pairs crossing splits".into(),
                l.near_dup_pairs_crossing.to_string(),
            ],
            vec![
                "groups crossing splits".into(),
                l.groups_crossing.to_string(),
            ],
            vec![
                "random split: pairs crossing".into(),
                l.random_split_near_dup_pairs_crossing.to_string(),
            ],
            vec![
                "random split: groups crossing".into(),
                l.random_split_groups_crossing.to_string(),
            ],
        ],
    );
    println!("\ndropped by reason");
    let rows: Vec<Vec<String>> = manifest
        .dropped_by_reason
        .iter()
        .map(|(k, v)| vec![k.clone(), v.to_string()])
        .collect();
    table(&["reason", "records"], &rows);
    if let Some(readers) = cleaning.get("readers").and_then(|r| r.as_object()) {
        for (name, r) in readers {
            for p in r
                .get("problems")
                .and_then(|p| p.as_array())
                .into_iter()
                .flatten()
                .take(5)
            {
                println!(
                    "  {name}: {}:{}: {}",
                    p["path"].as_str().unwrap_or(""),
                    p["line"],
                    p["message"].as_str().unwrap_or("")
                );
            }
        }
    }
    if stats.augment.generated > 0 || !stats.augment.oversampled.is_empty() {
        println!(
            "\naugmentation: mode {:?}, {} generated, {} rejected, oversampled {:?}",
            stats.augment.mode,
            stats.augment.generated,
            stats.augment.rejected.len(),
            stats.augment.oversampled
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn load_template(spec: &str, eos: &str) -> anyhow::Result<ChatTemplate> {
    let path = Path::new(spec);
    if !path.exists() {
        return Ok(ChatTemplate::builtin(spec)?);
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {spec}"))?;
    if spec.ends_with(".json") {
        Ok(ChatTemplate::from_tokenizer_config(&text, spec)?)
    } else {
        Ok(ChatTemplate::from_jinja(spec, &text, "", eos)?)
    }
}

fn run_bench(a: BenchArgs) -> anyhow::Result<ExitCode> {
    let threads = rayon_threads();
    println!("medtune data bench ({threads} threads)");
    let src = SourceConfig {
        format: Format::Medquad,
        path: "medquad".into(),
        name: None,
        columns: Default::default(),
        has_header: None,
        test_ids: None,
    };
    let t0 = Instant::now();
    let read = read_source(&src, &a.data_dir, false)?;
    let t_read = t0.elapsed().as_secs_f64();
    let n_read = read.records.len();
    let t1 = Instant::now();
    let (records, _) = clean(read.records, &CleanConfig::default(), None)?;
    let t_clean = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let (_, rep) = split(&records, &SplitConfig::default(), 42)?;
    let t_split = t2.elapsed().as_secs_f64();
    let total = t_read + t_clean + t_split;
    println!(
        "  MedQuAD: {} files, {n_read} pairs read, {} after cleaning, {} near-duplicate pairs",
        read.files.len(),
        records.len(),
        rep.near_dup_pairs
    );
    table(
        &["stage", "seconds"],
        &[
            vec!["parse".into(), format!("{t_read:.2}")],
            vec!["clean".into(), format!("{t_clean:.2}")],
            vec!["dedup + split".into(), format!("{t_split:.2}")],
            vec!["total (target < 30)".into(), format!("{total:.2}")],
        ],
    );
    let tokenizer = load_tokenizer(&a.tokenizer)?;
    let template = load_template(&a.template, &a.eos)?;
    let tok = ExampleTokenizer::new(
        tokenizer,
        template,
        TokenizeConfig {
            max_len: a.max_len,
            truncation: Truncation::TruncatePromptLeft,
        },
    )?;
    let prompt = PromptConfig::default();
    let t3 = Instant::now();
    let out = tokenize_records(&tok, &records, &prompt);
    let secs = t3.elapsed().as_secs_f64();
    let mut tokens = 0usize;
    let mut kept = 0usize;
    for r in out {
        if let Some(e) = r? {
            tokens += e.input_ids.len();
            kept += 1;
        }
    }
    if records.is_empty() || secs <= 0.0 {
        bail!(
            "no MedQuAD records to tokenize under {}",
            a.data_dir.display()
        );
    }
    println!(
        "  tokenization ({}, max_len {}): {} examples in {secs:.2} s = {:.0} examples/s, {:.0} tokens/s ({kept} kept)",
        tok.template().name(),
        a.max_len,
        records.len(),
        records.len() as f64 / secs,
        tokens as f64 / secs
    );
    Ok(ExitCode::SUCCESS)
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_model() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hf-tiny/models/llama")
    }

    #[test]
    fn a_model_directory_or_its_tokenizer_json_give_the_same_tokenizer() {
        let from_dir = load_tokenizer(&fixture_model()).unwrap();
        let from_file = load_tokenizer(&fixture_model().join("tokenizer.json")).unwrap();
        let text = "Metformin lowers blood glucose.";
        let ids = |t: &Tokenizer| t.encode(text, false).unwrap().get_ids().to_vec();
        assert!(!ids(&from_dir).is_empty());
        assert_eq!(ids(&from_dir), ids(&from_file));
    }

    #[test]
    fn a_directory_without_tokenizer_or_a_bad_gguf_is_a_named_error() {
        let dir = std::env::temp_dir().join(format!("medtune-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = format!("{:#}", load_tokenizer(&dir).unwrap_err());
        assert!(err.contains("no tokenizer.json and no .gguf"), "{err}");
        // A directory with only a (broken) GGUF file: that file is read, and named.
        std::fs::write(dir.join("model.gguf"), b"not a gguf").unwrap();
        let err = format!("{:#}", load_tokenizer(&dir).unwrap_err());
        assert!(err.contains("model.gguf"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
