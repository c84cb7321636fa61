//! `medtune runs list|show|compare` on run directories written with the real manifest and
//! metrics writers: tables name the runs and their numbers, unreadable runs are flagged with the
//! file at fault, `compare --out` writes Markdown.

use medtune_train::config::TrainConfig;
use medtune_train::log::{MetricRow, MetricsLog};
use medtune_train::manifest::RunManifest;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn medtune(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(args)
        .output()
        .expect("running medtune")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn row(kind: &str, step: u64, loss: f64) -> MetricRow {
    MetricRow {
        kind: kind.into(),
        step,
        epoch: 0.0,
        loss,
        perplexity: None,
        lr: None,
        grad_norm: None,
        tokens: None,
        tokens_per_s: None,
        elapsed_s: 0.5,
    }
}

/// A run under `root/name`: manifest (model and dataset files hashed for real, a safety
/// summary in `results`) in the run and its `best/` and `adapter/`, metrics via `MetricsLog`.
fn write_run(root: &Path, name: &str, extra: &[&str], evals: &[(u64, f64)]) -> PathBuf {
    let inputs = root.join(".inputs");
    let model = inputs.join("smollm2-test");
    let data = inputs.join("medquad-prepared");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(model.join("model.safetensors"), b"abc").unwrap();
    std::fs::write(data.join("train.jsonl"), b"abc").unwrap();
    std::fs::write(data.join("validation.jsonl"), b"").unwrap();
    let dir = root.join(name);
    let mut o = vec![
        format!("model.path={:?}", model.display().to_string()),
        format!("data.dataset_dir={:?}", data.display().to_string()),
        format!("train.output_dir={:?}", dir.display().to_string()),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    let cfg = TrainConfig::from_toml_str("", "test", &o).unwrap();
    let m = RunManifest::new(&cfg, &model.join("model.safetensors"), "nf4-dq", "tmplsha")
        .unwrap()
        .with_result(
            "safety",
            json!({"tuned": {"answers_checked": 6, "warnings": 3, "max_risk_level": 2}}),
        );
    for part in ["", "best", "adapter"] {
        std::fs::create_dir_all(dir.join(part)).unwrap();
        m.write(&dir.join(part)).unwrap();
    }
    let mut log = MetricsLog::open(&dir, None).unwrap();
    for &(step, loss) in evals {
        if step > 0 {
            log.push(row("train", step, loss + 0.5)).unwrap();
        }
        log.push(row("eval", step, loss)).unwrap();
    }
    dir
}

fn fixture() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_run(root, "alpha", &[], &[(0, 2.5), (10, 1.25), (20, 1.5)]);
    write_run(
        root,
        "sweep/beta",
        &["lora.r=32", "optim.lr=5e-5"],
        &[(0, 2.5), (10, 1.75), (20, 1.125)],
    );
    std::fs::create_dir_all(root.join("broken")).unwrap();
    std::fs::write(root.join("broken/manifest.json"), "{\"base_model\": [").unwrap();
    tmp
}

#[test]
fn list_prints_a_table_and_flags_the_broken_run() {
    let tmp = fixture();
    let root = tmp.path().to_str().unwrap();
    let o = medtune(&["runs", "list", "--root", root]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    for col in [
        "run",
        "base model",
        "dataset",
        "steps",
        "best eval loss",
        "final eval loss",
        "lr",
        "r",
        "created",
    ] {
        assert!(lines[0].contains(col), "header lacks {col}: {}", lines[0]);
    }
    let alpha = lines.iter().find(|l| l.starts_with("alpha ")).unwrap();
    for cell in [
        "smollm2-test",
        "medquad-prepared (ba7816bf8f01)",
        "20",
        "1.2500",
        "1.5000",
        "2.000e-4",
        "8",
    ] {
        assert!(alpha.contains(cell), "alpha row lacks {cell}: {alpha}");
    }
    let beta = lines.iter().find(|l| l.starts_with("sweep/beta ")).unwrap();
    for cell in ["1.1250", "5.000e-5", "32"] {
        assert!(beta.contains(cell), "beta row lacks {cell}: {beta}");
    }
    assert!(lines.iter().any(|l| l.starts_with("broken !")), "{out}");
    let note = lines.iter().find(|l| l.starts_with("! broken:")).unwrap();
    assert!(
        note.contains("broken/manifest.json") && note.contains("malformed JSON"),
        "{note}"
    );
    assert!(err.contains("1 of 3 runs"), "{err}");
    // Parts of a run are not runs.
    assert!(
        !out.contains("alpha/best") && !out.contains("alpha/adapter"),
        "{out}"
    );
}

#[test]
fn show_prints_provenance_hyper_parameters_metrics_and_safety() {
    let tmp = fixture();
    let root = tmp.path().to_str().unwrap();
    let o = medtune(&["runs", "show", "alpha", "--root", root]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    for needle in [
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "(nf4-dq)",
        "tmplsha",
        "medtune 0.1.0",
        "hyper-parameters:",
        "lora.r",
        "metrics (from metrics.jsonl):",
        "1.2500 (step 10)",
        "tuned.warnings",
        "tuned.max_risk_level",
    ] {
        assert!(out.contains(needle), "show lacks {needle}:\n{out}");
    }
    // A run directory path works as well as a name.
    let by_path = tmp.path().join("sweep/beta");
    let o = medtune(&["runs", "show", by_path.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(text(&o).0.contains("1.1250 (step 20)"));
    // A broken run is an error naming the file.
    let o = medtune(&["runs", "show", "broken", "--root", root]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("broken/manifest.json"), "{err}");
    let o = medtune(&["runs", "show", "nowhere", "--root", root]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("nowhere"));
}

#[test]
fn compare_tables_the_differing_settings_and_writes_markdown() {
    let tmp = fixture();
    let root = tmp.path().to_str().unwrap();
    let md = tmp.path().join("reports").join("cmp.md");
    let o = medtune(&[
        "runs",
        "compare",
        "alpha",
        "sweep/beta",
        "--root",
        root,
        "--out",
        md.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("settings that differ (2 of"), "{out}");
    let line = |key: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} row:\n{out}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("lora.r"), ["8", "32"]);
    assert_eq!(line("optim.lr"), ["0.0002", "0.00005"]);
    assert_eq!(line("best_eval_loss"), ["1.2500", "1.1250"]);
    assert_eq!(line("final_eval_loss"), ["1.5000", "1.1250"]);
    assert!(out.lines().all(|l| !l.starts_with("train.output_dir")));
    let written = std::fs::read_to_string(&md).unwrap();
    assert!(written.starts_with("# Run comparison: alpha vs sweep/beta"));
    assert!(
        written.contains("| optim.lr | 0.0002 | 0.00005 |"),
        "{written}"
    );
    assert!(
        written.contains("| best_eval_loss | 1.2500 | 1.1250 |"),
        "{written}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(md.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "temporary files left: {leftovers:?}");

    // One run is not a comparison; a broken run is an error naming its file.
    assert_eq!(
        medtune(&["runs", "compare", "alpha", "--root", root])
            .status
            .code(),
        Some(2)
    );
    let o = medtune(&["runs", "compare", "alpha", "broken", "--root", root]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("broken/manifest.json"));
}
