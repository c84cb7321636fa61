//! `medtune eval` end to end on the tiny llama fixture and our own benchmark fixtures: the report
//! directory gets a `manifest.json` naming the base, the adapter (with its hash), the settings and
//! the figures, and `medtune runs list` does not mistake it for a training run.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn eval_report_carries_a_manifest_that_runs_list_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("reports/eval-1");
    let model = root().join("fixtures/hf-tiny/models/llama");
    let adapter = model.join("lora_adapter");
    let data = root().join("crates/medtune-eval/tests/fixtures/evaldata");
    let o = Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(["eval", "--quiet", "--suite", "pubmedqa", "--limit", "3"])
        .args(["--resamples", "50", "--no-safety"])
        .arg("--model")
        .arg(&model)
        .arg("--adapter")
        .arg(&adapter)
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");

    let text = std::fs::read_to_string(out.join("manifest.json")).expect("manifest.json written");
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["kind"], "evaluation");
    assert_eq!(m["base_model"], model.display().to_string());
    // A folder model: one sha256 per safetensors file.
    let sha = m["base_model_sha256"]["model.safetensors"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(sha.len(), 64, "{text}");
    assert_eq!(
        m["base_model_sha256"].as_object().map(|o| o.len()),
        Some(1),
        "{text}"
    );
    assert_eq!(m["settings"]["suites"][0], "pubmedqa");
    assert_eq!(m["settings"]["limit"], 3);
    let ad = &m["adapters"][0];
    assert_eq!(ad["path"], adapter.display().to_string());
    assert_eq!(ad["adapter_model_sha256"].as_str().map(str::len), Some(64));
    // One accuracy row per target (base and adapter) with its interval and item count.
    let acc: Vec<&serde_json::Value> = m["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["metric"] == "accuracy")
        .collect();
    assert_eq!(acc.len(), 2, "{text}");
    for r in acc {
        assert_eq!(r["n"], 3);
        let v = r["value"]["value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v));
    }

    let l = Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(["runs", "list", "--root"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&l.stdout);
    assert!(l.status.success(), "{listing}");
    assert!(
        !listing.contains("eval-1"),
        "an evaluation report is not a training run:\n{listing}"
    );
}
