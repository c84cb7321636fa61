//! `prepare`: read → clean → prompt check → split → augment train → write the dataset directory.
//!
//! Output directory:
//! - `train.jsonl`, `validation.jsonl`, `test.jsonl` (and `pool.jsonl` in the progressive layout)
//! - `manifest.json`: inputs with sha256, the resolved config, seed, counts, timings
//! - `cleaning_report.json`: reader problems and drops, each cleaning rule with examples
//! - `stats.json`: counts by split × specialty × label, length histograms, leakage check,
//!   augmentation report

use crate::augment::{augment_train, dose::DoseRules, AugmentReport};
use crate::clean::{clean, CleaningReport, TokenCounter};
use crate::config::DataConfig;
use crate::io::{sha256_hex, write_json, write_jsonl};
use crate::prompt::build_prompt;
use crate::readers::{read_source, Problem};
use crate::split::{split, Split, SplitReport};
use crate::stats::{split_stats, Stats};
use crate::{Error, Record, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Reader results of one source, as reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// Records read.
    pub records: usize,
    /// Items skipped, by reason (`malformed` counts problems).
    pub dropped: BTreeMap<String, usize>,
    /// The first problems (file, line, message).
    pub problems: Vec<Problem>,
    /// All problems.
    pub problems_total: usize,
}

/// `cleaning_report.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FullCleaningReport {
    /// Per source name.
    pub readers: BTreeMap<String, SourceReport>,
    /// Records whose id was already used (renamed with a `~n` suffix).
    pub id_collisions: usize,
    /// Cleaning rules.
    pub cleaning: CleaningReport,
    /// Records that do not fit the prompt's answer format (dropped), with the first reasons.
    pub prompt_format_dropped: usize,
    /// Examples of prompt-format drops.
    pub prompt_format_examples: Vec<String>,
    /// All drops by reason, readers and cleaning together.
    pub dropped_by_reason: BTreeMap<String, usize>,
}

/// One input in the manifest: a file, or a directory source with many files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    /// Path as read (for a directory: the source's root).
    pub path: String,
    /// Number of files (1 for a file).
    pub files: usize,
    /// Total size in bytes.
    pub bytes: u64,
    /// sha256 of the content; for a directory, sha256 of the sorted lines
    /// `<relative path>\t<sha256 of file>\n` of all its files.
    pub sha256: String,
}

/// Sources with more files than this are listed as one directory entry in the manifest.
const MAX_FILES_LISTED: usize = 20;

/// Checksums of one source's files.
fn hash_inputs(root: &Path, files: &[PathBuf]) -> Result<Vec<InputFile>> {
    let each: Vec<InputFile> = files
        .par_iter()
        .map(|p| {
            let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            Ok(InputFile {
                path: p.display().to_string(),
                files: 1,
                bytes: bytes.len() as u64,
                sha256: sha256_hex(&bytes),
            })
        })
        .collect::<Result<_>>()?;
    if each.len() <= MAX_FILES_LISTED {
        return Ok(each);
    }
    let mut lines: Vec<String> = each
        .iter()
        .map(|f| {
            let rel = Path::new(&f.path)
                .strip_prefix(root)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| f.path.clone());
            format!("{rel}\t{}\n", f.sha256)
        })
        .collect();
    lines.sort();
    Ok(vec![InputFile {
        path: root.display().to_string(),
        files: each.len(),
        bytes: each.iter().map(|f| f.bytes).sum(),
        sha256: sha256_hex(lines.concat().as_bytes()),
    }])
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Dataset name.
    pub name: String,
    /// medtune-data version.
    pub tool_version: String,
    /// Seed used.
    pub seed: u64,
    /// The config as resolved.
    pub config: DataConfig,
    /// sha256 of the config text, when given.
    pub config_sha256: Option<String>,
    /// Inputs with checksums (for a directory source, every file in it).
    pub inputs: Vec<InputFile>,
    /// Records per split.
    pub counts: BTreeMap<Split, usize>,
    /// Records read, before cleaning.
    pub records_read: usize,
    /// Drops by reason.
    pub dropped_by_reason: BTreeMap<String, usize>,
    /// Seconds per stage.
    pub timings_s: BTreeMap<String, f64>,
    /// Whether the read was strict.
    pub strict: bool,
}

/// `stats.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsFile {
    /// Per split.
    pub splits: Stats,
    /// Leakage check of the split.
    pub leakage: SplitReport,
    /// Augmentation.
    pub augment: AugmentReport,
}

/// Everything `prepare` produced, also written to disk.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Records per split (train includes synthetic records).
    pub splits: BTreeMap<Split, Vec<Record>>,
    /// Manifest.
    pub manifest: Manifest,
    /// Cleaning report.
    pub cleaning: FullCleaningReport,
    /// Statistics.
    pub stats: StatsFile,
}

/// Options of a prepare run.
pub struct PrepareOptions<'a> {
    /// Directory that relative source paths resolve against.
    pub data_dir: &'a Path,
    /// Output directory (`None`: compute only, write nothing; used by the benchmark).
    pub out_dir: Option<&'a Path>,
    /// Make the first malformed input fatal.
    pub strict: bool,
    /// The config text, for its checksum in the manifest.
    pub config_text: Option<&'a str>,
    /// Token counter for token rules and histograms.
    pub tokens: Option<TokenCounter<'a>>,
    /// Dose rules for synthetic records.
    pub dose_rules: &'a dyn DoseRules,
}

const MAX_PROBLEMS_REPORTED: usize = 50;

/// Runs the whole preparation.
pub fn prepare(cfg: &DataConfig, opts: &PrepareOptions) -> Result<Prepared> {
    cfg.validate()?;
    let mut timings = BTreeMap::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, timings: &mut BTreeMap<String, f64>| {
        timings.insert(name.to_string(), clock.elapsed().as_secs_f64());
        clock = Instant::now();
    };

    // Read.
    let mut report = FullCleaningReport::default();
    let mut records = Vec::new();
    let mut files: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    for src in &cfg.sources {
        let out = read_source(src, opts.data_dir, opts.strict)?;
        let rep = report.readers.entry(src.source_name()).or_default();
        rep.records += out.records.len();
        for (k, v) in &out.dropped {
            *rep.dropped.entry(k.clone()).or_default() += v;
            *report
                .dropped_by_reason
                .entry(format!("read:{k}"))
                .or_default() += v;
        }
        rep.problems_total += out.problems.len();
        rep.problems
            .extend(out.problems.into_iter().take(MAX_PROBLEMS_REPORTED));
        records.extend(out.records);
        files.push((opts.data_dir.join(&src.path), out.files));
    }
    let records_read = records.len();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &mut records {
        let n = seen.entry(r.id.clone()).or_default();
        *n += 1;
        if *n > 1 {
            r.id = format!("{}~{n}", r.id);
            report.id_collisions += 1;
        }
    }
    lap("read", &mut timings);

    // Clean, then drop records that cannot be shown in the configured answer format.
    let (records, cleaning) = clean(records, &cfg.clean, opts.tokens)?;
    for (k, v) in cleaning.dropped_by_reason() {
        *report
            .dropped_by_reason
            .entry(format!("clean:{k}"))
            .or_default() += v;
    }
    report.cleaning = cleaning;
    let mut kept = Vec::with_capacity(records.len());
    for r in records {
        match build_prompt(&r, &cfg.prompt) {
            Ok(_) => kept.push(r),
            Err(e) => {
                report.prompt_format_dropped += 1;
                if report.prompt_format_examples.len() < 5 {
                    report.prompt_format_examples.push(e.to_string());
                }
            }
        }
    }
    if report.prompt_format_dropped > 0 {
        report
            .dropped_by_reason
            .insert("prompt_format".into(), report.prompt_format_dropped);
    }
    lap("clean", &mut timings);

    // Split.
    let (assign, split_report) = split(&kept, &cfg.split, cfg.seed)?;
    let mut splits: BTreeMap<Split, Vec<Record>> = BTreeMap::new();
    for s in [Split::Train, Split::Validation, Split::Test] {
        splits.insert(s, Vec::new());
    }
    if cfg.split.progressive.is_some() {
        splits.insert(Split::Pool, Vec::new());
    }
    for (r, s) in kept.into_iter().zip(assign) {
        splits.entry(s).or_default().push(r);
    }
    lap("dedup_split", &mut timings);

    // Augment the training split only.
    let train = splits.remove(&Split::Train).unwrap_or_default();
    let (train, augment) = augment_train(train, &cfg.augment, cfg.seed, opts.dose_rules)?;
    splits.insert(Split::Train, train);
    for (s, recs) in &splits {
        if *s != Split::Train {
            if let Some(r) = recs.iter().find(|r| r.is_synthetic()) {
                return Err(Error::Record {
                    id: r.id.clone(),
                    message: format!("synthetic record in {} split", s.name()),
                });
            }
        }
    }
    lap("augment", &mut timings);

    // Stats and manifest.
    let stats = StatsFile {
        splits: splits
            .iter()
            .map(|(s, recs)| (*s, split_stats(recs, opts.tokens)))
            .collect(),
        leakage: split_report,
        augment,
    };
    let mut inputs = Vec::new();
    for (root, list) in &files {
        inputs.extend(hash_inputs(root, list)?);
    }
    lap("stats_hash", &mut timings);
    let manifest = Manifest {
        name: cfg.name.clone().unwrap_or_else(|| "dataset".into()),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        seed: cfg.seed,
        config: cfg.clone(),
        config_sha256: opts.config_text.map(|t| sha256_hex(t.as_bytes())),
        inputs,
        counts: splits.iter().map(|(s, r)| (*s, r.len())).collect(),
        records_read,
        dropped_by_reason: report.dropped_by_reason.clone(),
        timings_s: timings,
        strict: opts.strict,
    };
    let prepared = Prepared {
        splits,
        manifest,
        cleaning: report,
        stats,
    };
    if let Some(dir) = opts.out_dir {
        write_dataset(dir, &prepared)?;
    }
    Ok(prepared)
}

/// Writes a prepared dataset (every file atomically).
pub fn write_dataset(dir: &Path, p: &Prepared) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for (s, recs) in &p.splits {
        write_jsonl(&dir.join(format!("{}.jsonl", s.name())), recs)?;
    }
    write_json(&dir.join("cleaning_report.json"), &p.cleaning)?;
    write_json(&dir.join("stats.json"), &p.stats)?;
    write_json(&dir.join("manifest.json"), &p.manifest)
}
