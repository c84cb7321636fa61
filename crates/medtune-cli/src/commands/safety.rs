//! `medtune safety`: check answers with the safety validator, one at a time or in batches, and
//! benchmark it.

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use medtune_safety::{Action, Config, PatientContext, SafetyReport, TableTexts, Validator};
use serde::Deserialize;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Safety validator: emergencies, interactions, doses and opioid MME, misuse.
#[derive(Args)]
pub struct SafetyArgs {
    #[command(subcommand)]
    command: SafetyCommand,
}

#[derive(Subcommand)]
enum SafetyCommand {
    /// Check a question and answer (or a JSONL batch) and print the safety report.
    ///
    /// Exit status: 0 when every report can be shown as is or annotated (risk_level < 3 and
    /// action != replace); 1 when any report is an emergency (risk_level 3) or its answer was
    /// replaced; 2 on error.
    Check(CheckArgs),
    /// Print how many answers per second the validator checks on one core.
    Bench(BenchArgs),
}

#[derive(Args)]
struct CheckArgs {
    /// The user's question.
    #[arg(long, required_unless_present = "batch", conflicts_with = "batch")]
    question: Option<String>,
    /// The candidate answer; without it the question alone is triaged (before generation).
    #[arg(long, conflicts_with = "batch")]
    answer: Option<String>,
    /// Patient context JSON: {"age", "pregnant", "conditions", "medications",
    /// "renal_impairment", "hepatic_impairment"} (all optional).
    #[arg(long, conflicts_with = "batch")]
    context: Option<PathBuf>,
    /// JSONL input, one {"question", "answer"?, "context"?} per line; writes one report per line.
    #[arg(long)]
    batch: Option<PathBuf>,
    /// Write batch output here (atomically) instead of stdout.
    #[arg(long, requires = "batch")]
    out: Option<PathBuf>,
    /// Print the report as JSON instead of a table (batch output is always JSONL).
    #[arg(long)]
    json: bool,
    /// Directory with replacement reference tables (same file names as the embedded ones).
    #[arg(long)]
    tables: Option<PathBuf>,
}

#[derive(Args)]
struct BenchArgs {
    /// Number of answers to validate.
    #[arg(long, default_value_t = 20_000)]
    n: usize,
    /// Directory with replacement reference tables.
    #[arg(long)]
    tables: Option<PathBuf>,
}

/// One line of a `--batch` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    question: String,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    context: Option<PatientContext>,
}

/// Runs `medtune safety ...`.
pub fn run(args: SafetyArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        SafetyCommand::Check(a) => check(a),
        SafetyCommand::Bench(b) => bench(b),
    }
}

fn validator(tables: Option<&Path>) -> anyhow::Result<Validator> {
    let mut config = Config::default();
    if let Some(dir) = tables {
        config.tables = TableTexts::from_dir(dir)
            .with_context(|| format!("reading tables from {}", dir.display()))?;
    }
    Validator::new(config).context("building the safety validator")
}

fn gate_fails(r: &SafetyReport) -> bool {
    r.risk_level >= 3 || r.action == Action::Replace
}

fn check(a: CheckArgs) -> anyhow::Result<ExitCode> {
    let v = validator(a.tables.as_deref())?;
    if let Some(batch) = &a.batch {
        return run_batch(&v, batch, a.out.as_deref());
    }
    let question = a.question.unwrap_or_default();
    let context = match &a.context {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(
                serde_json::from_str::<PatientContext>(&text)
                    .with_context(|| format!("{}: invalid patient context", p.display()))?,
            )
        }
        None => None,
    };
    let report = match &a.answer {
        Some(ans) => v.check(&question, ans, context.as_ref()),
        None => v.check_question(&question, context.as_ref()),
    };
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &report)?;
    }
    Ok(if gate_fails(&report) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_batch(v: &Validator, path: &Path, out: Option<&Path>) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = Vec::new();
    let mut failed = 0usize;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: reading", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let item: BatchItem = serde_json::from_str(&line).with_context(|| {
            format!(
                "{}:{}: expected {{\"question\", \"answer\"?, \"context\"?}}",
                path.display(),
                i + 1
            )
        })?;
        let r = match &item.answer {
            Some(ans) => v.check(&item.question, ans, item.context.as_ref()),
            None => v.check_question(&item.question, item.context.as_ref()),
        };
        failed += usize::from(gate_fails(&r));
        lines.push(serde_json::to_string(&r)?);
    }
    let mut body = lines.join("\n");
    body.push('\n');
    match out {
        Some(p) => write_atomic(p, body.as_bytes())?,
        None => std::io::stdout().lock().write_all(body.as_bytes())?,
    }
    eprintln!(
        "checked {} items; {failed} emergency or replaced",
        lines.len()
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes to a temporary file beside `path`, then renames it into place.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

fn write_table(out: &mut impl Write, r: &SafetyReport) -> anyhow::Result<()> {
    let action = serde_json::to_value(r.action)?;
    writeln!(
        out,
        "risk_level: {}   action: {}",
        r.risk_level,
        action.as_str().unwrap_or_default()
    )?;
    if let Some(m) = r.mme_per_day {
        writeln!(out, "opioid MME/day: {m:.1}")?;
    }
    for t in &r.daily_totals {
        writeln!(out, "daily total: {} {:.1} mg/day", t.generic, t.mg_per_day)?;
    }
    if !r.warnings.is_empty() {
        writeln!(
            out,
            "\n{:<4} {:<15} {:<28} {:<24} {:<20}",
            "risk", "category", "subcategory", "source", "evidence"
        )?;
        for w in &r.warnings {
            let cat = serde_json::to_value(w.category)?;
            let ev = w
                .evidence
                .as_ref()
                .map(|e| format!("{:?}", e.text))
                .unwrap_or_default();
            writeln!(
                out,
                "{:<4} {:<15} {:<28} {:<24} {:<20}",
                w.risk_level,
                cat.as_str().unwrap_or_default(),
                w.subcategory,
                w.source_row_id,
                ev
            )?;
            writeln!(
                out,
                "     {}{}",
                if w.verified { "" } else { "[unverified] " },
                w.message
            )?;
        }
    }
    writeln!(out, "\n--- final text ---\n{}", r.final_text)?;
    Ok(())
}

/// Question/answer pairs covering every rule, cycled by the benchmark.
const BENCH_CASES: [(&str, &str); 8] = [
    ("How much oxycodone can I take after surgery?", "Oxycodone 10 mg q6h as needed for up to 5 days, with acetaminophen 500 mg every 6 hours."),
    ("I take Percocet 10/325 two tablets every 4 hours. Can I add Tylenol?", "Yes, Tylenol 1 g three times a day is fine."),
    ("I use nitroglycerin spray. Is Viagra OK?", "Sildenafil 50 mg once a day is the usual dose."),
    ("I have crushing chest pain and sweating, what should I take?", "Chew aspirin 325 mg and call emergency services."),
    ("How do I take methotrexate for rheumatoid arthritis?", "Take methotrexate 7.5 mg once weekly on the same day each week, with folic acid."),
    ("What is a normal blood pressure?", "For most adults a normal blood pressure is below 120/80 mmHg. Regular exercise, less salt and not smoking help keep it there."),
    ("My doctor switched me to a fentanyl patch.", "A 25 mcg/hr fentanyl patch is changed every 72 hours; do not apply heat over it."),
    ("Can I drink alcohol while taking tramadol and sertraline?", "Avoid alcohol. Tramadol 50 mg every 6 hours with sertraline can cause serotonin syndrome."),
];

fn bench(b: BenchArgs) -> anyhow::Result<ExitCode> {
    if b.n == 0 {
        bail!("--n must be at least 1");
    }
    let t0 = Instant::now();
    let v = validator(b.tables.as_deref())?;
    let build = t0.elapsed();
    // Warm up caches before timing.
    for (q, a) in BENCH_CASES {
        std::hint::black_box(v.check(q, a, None));
    }
    let t1 = Instant::now();
    let mut risk_sum = 0u64;
    let mut bytes = 0usize;
    for i in 0..b.n {
        let (q, a) = BENCH_CASES[i % BENCH_CASES.len()];
        let r = std::hint::black_box(v.check(q, a, None));
        risk_sum += u64::from(r.risk_level);
        bytes += q.len() + a.len();
    }
    let secs = t1.elapsed().as_secs_f64();
    println!("validator build: {:.1} ms", build.as_secs_f64() * 1e3);
    println!(
        "validated {} answers in {:.3} s on one thread: {:.0} answers/s ({:.1} MB/s of text; mean risk {:.2})",
        b.n,
        secs,
        b.n as f64 / secs,
        bytes as f64 / secs / 1e6,
        risk_sum as f64 / b.n as f64
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v() -> Validator {
        validator(None).expect("validator")
    }

    #[test]
    fn batch_writes_one_report_per_line_and_fails_the_gate_on_emergencies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.jsonl");
        let out = dir.path().join("out.jsonl");
        std::fs::write(
            &input,
            concat!(
                "{\"question\":\"How much oxycodone?\",\"answer\":\"Oxycodone 10 mg q6h\"}\n",
                "\n",
                "{\"question\":\"I have crushing chest pain and sweating\"}\n",
                "{\"question\":\"Is Cialis ok?\",\"answer\":\"Yes\",\"context\":{\"medications\":[\"nitroglycerin\"]}}\n",
            ),
        )
        .expect("write");
        let code = run_batch(&v(), &input, Some(&out)).expect("batch runs");
        assert_eq!(code, ExitCode::from(1));
        let text = std::fs::read_to_string(&out).expect("output");
        let reports: Vec<SafetyReport> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("report line"))
            .collect();
        assert_eq!(reports.len(), 3);
        assert_eq!(reports[0].mme_per_day, Some(60.0));
        assert_eq!(reports[1].risk_level, 3);
        assert!(reports[2].warnings.iter().any(|w| w.source_row_id == "A8"));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 2);
    }

    #[test]
    fn batch_error_names_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("bad.jsonl");
        std::fs::write(&input, "{\"question\":\"ok\"}\n{\"question\": 3}\n").expect("write");
        let err = run_batch(&v(), &input, None).expect_err("bad line");
        let msg = format!("{err:#}");
        assert!(msg.contains("bad.jsonl:2"), "{msg}");
    }

    #[test]
    fn table_lists_warnings_and_final_text() {
        let r = v().check("", "Take 6 g acetaminophen a day.", None);
        let mut buf = Vec::new();
        write_table(&mut buf, &r).expect("table");
        let s = String::from_utf8(buf).expect("utf8");
        assert!(s.starts_with("risk_level: 2   action: annotate"), "{s}");
        assert!(
            s.contains("max_dose") && s.contains("max_daily_doses.csv:"),
            "{s}"
        );
        assert!(s.contains("--- final text ---"));
        assert!(!gate_fails(&r));
    }
}
