//! `medtune eval metrics` run as a binary on the medtune-eval fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../medtune-eval/tests/fixtures")
}

fn medtune(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run medtune")
}

#[test]
fn scores_every_pair_and_writes_summary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = fixtures().join("pairs.jsonl");
    let wordnet = fixtures().join("wordnet");
    let out = tmp.path().join("scores.jsonl");
    let summary = tmp.path().join("summary.json");
    let o = medtune(
        &[
            "eval",
            "metrics",
            "--input",
            input.to_str().expect("utf8"),
            "--out",
            "scores.jsonl",
            "--wordnet",
            wordnet.to_str().expect("utf8"),
            "--summary",
            "summary.json",
            "--resamples",
            "200",
        ],
        tmp.path(),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("corpus_bleu"), "{stderr}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out)
        .expect("scores")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let n_in = std::fs::read_to_string(&input)
        .expect("input")
        .lines()
        .count();
    assert_eq!(lines.len(), n_in);
    for key in [
        "id",
        "bleu",
        "bleu_bp",
        "bleu_precisions",
        "rouge1_precision",
        "rouge2_recall",
        "rougeL_fmeasure",
        "rougeLsum_fmeasure",
        "rouge1_fmeasure_stem",
        "rougeLsum_recall_stem",
        "meteor",
        "exact_match",
        "f1",
    ] {
        assert!(lines[0].get(key).is_some(), "missing {key} in {}", lines[0]);
    }
    let identical = lines
        .iter()
        .find(|l| l["id"] == "identical")
        .expect("identical");
    assert_eq!(identical["exact_match"], 1.0);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).expect("summary")).expect("json");
    assert_eq!(s["n"].as_u64(), Some(n_in as u64));
    assert_eq!(s["resamples"].as_u64(), Some(200));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn empty_references_fail_with_line_number() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("pairs.jsonl"),
        "{\"id\":\"a\",\"references\":[\"x\"],\"hypothesis\":\"x\"}\n{\"id\":\"b\",\"references\":[],\"hypothesis\":\"y\"}\n",
    )
    .expect("write");
    let wordnet = fixtures().join("wordnet");
    let o = medtune(
        &[
            "eval",
            "metrics",
            "--input",
            "pairs.jsonl",
            "--out",
            "scores.jsonl",
            "--wordnet",
            wordnet.to_str().expect("utf8"),
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("pairs.jsonl:2") && stderr.contains("references"),
        "{stderr}"
    );
    assert!(!tmp.path().join("scores.jsonl").exists());
}
