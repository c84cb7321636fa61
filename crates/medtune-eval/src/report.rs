//! Writing a [`Comparison`] to a folder: `predictions.csv`, `model_comparison.csv`,
//! `specialty_performance.csv`, `qpain_gaps.csv`, `report.md`, `training_recommendations.json`
//! and the charts. Every file is written atomically (temporary file, then rename).

use crate::analysis::word_count;
use crate::compare::{Comparison, MetricRow};
use crate::error::{Error, Result};
use crate::freetext::TEXT_METRICS;
use crate::plots::write_plots;
use crate::recommend::{recommend, Recommendations, Rules};
use crate::run::Mode;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    medtune_data::io::write_atomic(path, bytes).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn csv_bytes(path: &Path, header: &[&str], rows: Vec<Vec<String>>) -> Result<Vec<u8>> {
    let err = |e: csv::Error| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).map_err(err)?;
    for r in rows {
        w.write_record(&r).map_err(err)?;
    }
    w.into_inner().map_err(|e| Error::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn write_csv(path: &Path, header: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
    let bytes = csv_bytes(path, header, rows)?;
    write_file(path, &bytes)
}

fn f(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(f).unwrap_or_default()
}

/// Columns of `predictions.csv` before the free-text metrics ([`TEXT_METRICS`]).
const PREDICTION_LEAD: [&str; 17] = [
    "target",
    "suite",
    "mode",
    "id",
    "group",
    "gold",
    "predicted",
    "predicted_norm",
    "correct",
    "format_failure",
    "extraction",
    "refusal",
    "safety_flags",
    "variant",
    "option_logprobs",
    "reference_tokens",
    "reference_logprob",
];

/// Columns of `predictions.csv` after the free-text metrics.
const PREDICTION_TAIL: [&str; 2] = ["answer_words", "output"];

/// Header of `predictions.csv`: the lead columns, [`TEXT_METRICS`], then the tail.
pub fn prediction_columns() -> Vec<&'static str> {
    PREDICTION_LEAD
        .iter()
        .chain(TEXT_METRICS.iter())
        .chain(PREDICTION_TAIL.iter())
        .copied()
        .collect()
}

fn prediction_rows(cmp: &Comparison) -> Vec<Vec<String>> {
    cmp.predictions
        .iter()
        .map(|p| {
            let t = p.text_scores;
            vec![
                p.target.clone(),
                p.suite.name().into(),
                p.mode.name().into(),
                p.id.clone(),
                p.group.clone(),
                p.gold.clone(),
                p.predicted.clone().unwrap_or_default(),
                p.predicted_norm.clone().unwrap_or_default(),
                p.correct()
                    .map(|c| u8::from(c).to_string())
                    .unwrap_or_default(),
                u8::from(p.format_failure()).to_string(),
                p.extraction.clone().unwrap_or_default(),
                u8::from(p.refusal).to_string(),
                p.safety_flags.join(";"),
                p.variant.as_ref().map(|v| v.key()).unwrap_or_default(),
                p.option_logprobs
                    .iter()
                    .map(|x| f(*x))
                    .collect::<Vec<_>>()
                    .join(";"),
                p.reference_logprob
                    .map(|r| r.0.to_string())
                    .unwrap_or_default(),
                p.reference_logprob.map(|r| f(r.1)).unwrap_or_default(),
            ]
            .into_iter()
            .chain(TEXT_METRICS.iter().map(|m| opt(t.and_then(|t| t.get(m)))))
            .chain([
                if p.mode == Mode::Generate {
                    word_count(&p.output).to_string()
                } else {
                    String::new()
                },
                p.output.clone(),
            ])
            .collect()
        })
        .collect()
}

fn metric_rows(cmp: &Comparison) -> Vec<Vec<String>> {
    cmp.metrics
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                r.suite.name().into(),
                r.mode.name().into(),
                r.metric.clone(),
                f(r.value.value),
                f(r.value.low),
                f(r.value.high),
                r.n.to_string(),
                opt(r.delta.map(|d| d.value)),
                opt(r.delta.map(|d| d.low)),
                opt(r.delta.map(|d| d.high)),
                u8::from(r.higher_is_better).to_string(),
            ]
        })
        .collect()
}

/// `0.412 [0.37, 0.45]`; percentages are not used so every metric reads the same way.
fn cell(v: f64, lo: f64, hi: f64) -> String {
    if v.is_finite() {
        format!("{v:.3} [{lo:.3}, {hi:.3}]")
    } else {
        "–".into()
    }
}

fn delta_cell(r: &MetricRow) -> String {
    match r.delta {
        Some(d) if d.value.is_finite() => {
            // Significant when the paired interval excludes 0; ↑/↓ mark better/worse.
            let sig = d.low > 0.0 || d.high < 0.0;
            let better = (d.value > 0.0) == r.higher_is_better;
            let mark = match (sig, better) {
                (true, true) => " ↑",
                (true, false) => " ↓",
                _ => "",
            };
            format!("{:+.3} [{:+.3}, {:+.3}]{mark}", d.value, d.low, d.high)
        }
        _ => "–".into(),
    }
}

/// The markdown report.
pub fn render_markdown(cmp: &Comparison, recs: &Recommendations, plots: &[PathBuf]) -> String {
    let mut s = String::new();
    let base = cmp.targets.first().cloned().unwrap_or_default();
    let _ = writeln!(s, "# Evaluation report\n");
    let _ = writeln!(
        s,
        "Targets: {}. All targets were scored on identical items; intervals are 95% percentile bootstrap intervals over items, Δ is the paired difference to `{base}` (↑ better / ↓ worse when its interval excludes 0).\n",
        cmp.targets.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(s, "## Results\n");
    let mut header = "| suite | mode | metric | n |".to_string();
    let mut rule = "|---|---|---|---|".to_string();
    for (i, t) in cmp.targets.iter().enumerate() {
        header.push_str(&format!(" {t} |"));
        rule.push_str("---|");
        if i > 0 {
            header.push_str(&format!(" Δ {t} |"));
            rule.push_str("---|");
        }
    }
    let _ = writeln!(s, "{header}\n{rule}");
    let first: Vec<&MetricRow> = cmp.metrics.iter().filter(|r| r.target == base).collect();
    for r0 in first {
        let mut line = format!(
            "| {} | {} | {} | {} |",
            r0.suite,
            r0.mode.name(),
            r0.metric,
            r0.n
        );
        for (i, t) in cmp.targets.iter().enumerate() {
            match cmp.metric(t, r0.suite, r0.mode, &r0.metric) {
                Some(r) => {
                    line.push_str(&format!(
                        " {} |",
                        cell(r.value.value, r.value.low, r.value.high)
                    ));
                    if i > 0 {
                        line.push_str(&format!(" {} |", delta_cell(r)));
                    }
                }
                None => line.push_str(if i > 0 { " – | – |" } else { " – |" }),
            }
        }
        let _ = writeln!(s, "{line}");
    }
    if !cmp.specialties.is_empty() {
        let _ = writeln!(s, "\n## By specialty\n");
        let _ = writeln!(s, "| suite | mode | specialty | metric | target | value [95% CI] | n |\n|---|---|---|---|---|---|---|");
        for r in &cmp.specialties {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.suite,
                r.mode.name(),
                r.specialty,
                r.metric,
                r.target,
                cell(r.value.value, r.value.low, r.value.high),
                r.n
            );
        }
    }
    if !cmp.qpain.is_empty() {
        let _ = writeln!(s, "\n## Q-Pain: denial-rate gaps across race × gender\n");
        let _ = writeln!(s, "Denial rate = share of treatment-indicated vignettes answered \"no\"; format failures are counted apart, not as denials.\n");
        let _ = writeln!(s, "| target | mode | axis | denial gap | most denied | least denied | high-dose gap |\n|---|---|---|---|---|---|---|");
        for q in &cmp.qpain {
            for g in &q.gaps {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.3} | {} | {} | {:.3} |",
                    q.target,
                    q.mode.name(),
                    g.axis,
                    g.denial_gap,
                    g.most_denied,
                    g.least_denied,
                    g.high_dose_gap
                );
            }
        }
    }
    if !cmp.analysis.is_empty() {
        let _ = writeln!(s, "\n## Error analysis (generation)\n");
        let _ = writeln!(s, "| target | suite | n | length ratio | answers > 2× reference | refusals | format failures | safety-flagged |\n|---|---|---|---|---|---|---|---|");
        for a in &cmp.analysis {
            let flagged: usize = a.safety_flagged.values().sum();
            let cats = a
                .safety_flagged
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {}{} |",
                a.target,
                a.suite,
                a.n,
                a.mean_length_ratio
                    .map_or("–".into(), |r| format!("{r:.2}")),
                a.long_share
                    .map_or("–".into(), |r| format!("{:.1}%", 100.0 * r)),
                a.refusals,
                a.format_failures,
                flagged,
                if cats.is_empty() {
                    String::new()
                } else {
                    format!(" ({cats})")
                }
            );
        }
        for a in &cmp.analysis {
            if !a.confusions.is_empty() {
                let top: Vec<String> = a
                    .confusions
                    .iter()
                    .take(5)
                    .map(|(g, p, n)| format!("{g}→{p} ×{n}"))
                    .collect();
                let _ = writeln!(
                    s,
                    "\nMost frequent confusions, {} on {}: {}.",
                    a.target,
                    a.suite,
                    top.join(", ")
                );
            }
            for (kind, ex) in &a.examples {
                let _ = writeln!(s, "\nExamples ({kind}), {} on {}:\n", a.target, a.suite);
                for e in ex {
                    let note = if e.note.is_empty() {
                        String::new()
                    } else {
                        format!(" — {}", e.note)
                    };
                    let _ = writeln!(
                        s,
                        "- `{}`{note}: answer “{}” (gold “{}”)",
                        e.id,
                        e.output.replace('|', "\\|"),
                        e.gold.replace('|', "\\|")
                    );
                }
            }
        }
    }
    let _ = writeln!(s, "\n## Training recommendations\n");
    if recs.specialties.is_empty() {
        let _ = writeln!(
            s,
            "No weak specialty for `{}` ({}).",
            recs.target, recs.rule
        );
    } else {
        let _ = writeln!(s, "For `{}` ({}):\n", recs.target, recs.rule);
        let _ = writeln!(
            s,
            "| suite | specialty | value | suite | n | sampling × |\n|---|---|---|---|---|---|"
        );
        for r in &recs.specialties {
            let _ = writeln!(
                s,
                "| {} | {} | {:.3} | {:.3} | {} | {:.1} |",
                r.suite, r.specialty, r.value, r.suite_value, r.n, r.sampling_multiplier
            );
        }
    }
    if !cmp.skipped.is_empty() || !cmp.problems.is_empty() {
        let _ = writeln!(s, "\n## Input problems\n");
        let _ = writeln!(
            s,
            "{} items skipped on purpose, {} malformed input rows (not scored, not counted as wrong).\n",
            cmp.skipped.len(),
            cmp.problems.len()
        );
        for (suite, id, why) in cmp.skipped.iter().take(10) {
            let _ = writeln!(s, "- {suite} `{id}`: {why}");
        }
        for (suite, p) in cmp.problems.iter().take(10) {
            let _ = writeln!(s, "- {suite}: {p}");
        }
    }
    if !plots.is_empty() {
        let _ = writeln!(s, "\n## Charts\n");
        for p in plots
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
        {
            if let Some(name) = p.file_name() {
                let name = name.to_string_lossy();
                let _ = writeln!(s, "![{name}]({name})");
            }
        }
    }
    s
}

/// Writes every report file of `cmp` into `dir` (created if needed); returns the paths.
pub fn write_report(cmp: &Comparison, dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Write {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut files = Vec::new();
    let p = dir.join("predictions.csv");
    write_csv(&p, &prediction_columns(), prediction_rows(cmp))?;
    files.push(p);
    let base = cmp.targets.first().cloned().unwrap_or_default();
    let delta = format!("delta_vs_{base}");
    let p = dir.join("model_comparison.csv");
    write_csv(
        &p,
        &[
            "target",
            "suite",
            "mode",
            "metric",
            "value",
            "ci_low",
            "ci_high",
            "n",
            &delta,
            "delta_ci_low",
            "delta_ci_high",
            "higher_is_better",
        ],
        metric_rows(cmp),
    )?;
    files.push(p);
    let p = dir.join("specialty_performance.csv");
    let rows = cmp
        .specialties
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                r.suite.name().into(),
                r.mode.name().into(),
                r.specialty.clone(),
                r.metric.clone(),
                f(r.value.value),
                f(r.value.low),
                f(r.value.high),
                r.n.to_string(),
            ]
        })
        .collect();
    write_csv(
        &p,
        &[
            "target",
            "suite",
            "mode",
            "specialty",
            "metric",
            "value",
            "ci_low",
            "ci_high",
            "n",
        ],
        rows,
    )?;
    files.push(p);
    if !cmp.qpain.is_empty() {
        let p = dir.join("qpain_gaps.csv");
        let rows = cmp
            .qpain
            .iter()
            .flat_map(|q| {
                q.rates.iter().map(move |r| {
                    vec![
                        q.target.clone(),
                        q.mode.name().into(),
                        r.axis.clone(),
                        r.group.clone(),
                        r.n.to_string(),
                        f(r.denial_rate),
                        f(r.high_dose_rate),
                        r.format_failures.to_string(),
                    ]
                })
            })
            .collect();
        write_csv(
            &p,
            &[
                "target",
                "mode",
                "axis",
                "group",
                "n",
                "denial_rate",
                "high_dose_rate",
                "format_failures",
            ],
            rows,
        )?;
        files.push(p);
    }
    let recs = recommend(cmp, &Rules::default());
    let p = dir.join("training_recommendations.json");
    let json = serde_json::to_vec_pretty(&recs).map_err(|e| Error::Write {
        path: p.clone(),
        message: e.to_string(),
    })?;
    write_file(&p, &json)?;
    files.push(p);
    let plots = write_plots(cmp, dir)?;
    let p = dir.join("report.md");
    write_file(&p, render_markdown(cmp, &recs, &plots).as_bytes())?;
    files.push(p);
    files.extend(plots);
    Ok(files)
}
