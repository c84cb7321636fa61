//! Provenance: `/health` carries the summary of a real run manifest (as `medtune serve` builds
//! it from the adapter's `manifest.json`), and the chat page has a panel that shows it.

mod common;

use axum::http::StatusCode;
use common::*;
use medtune_serve::{app, AppState, ServeSettings};
use medtune_train::config::TrainConfig;
use medtune_train::manifest::RunManifest;
use medtune_train::runs::{read_manifest, summary, ManifestFile};
use serde_json::json;
use std::sync::Arc;

const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const SHA256_EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Writes a base "model", a prepared dataset and an adapter directory with a run manifest whose
/// results hold training metrics and a safety summary; returns the adapter's manifest as
/// `medtune serve` reads it.
fn adapter_manifest(dir: &std::path::Path) -> serde_json::Value {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.safetensors"), b"abc").unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("train.jsonl"), b"abc").unwrap();
    std::fs::write(data.join("validation.jsonl"), b"").unwrap();
    let data_manifest = json!({
        "name": "medquad-mini",
        "seed": 7,
        "config": {"split": {"train": 0.8, "validation": 0.1, "test": 0.1}},
        "inputs": [{"path": "medquad/", "files": 3, "bytes": 10, "sha256": "f00d"}],
    });
    std::fs::write(data.join("manifest.json"), data_manifest.to_string()).unwrap();
    let cfg = TrainConfig::from_toml_str(
        "",
        "test",
        &[
            format!("model.path={:?}", model.display().to_string()),
            format!("data.dataset_dir={:?}", data.display().to_string()),
            "lora.r=16".into(),
            "optim.lr=1e-4".into(),
        ],
    )
    .unwrap();
    let m = RunManifest::new(
        &cfg,
        &model.join("model.safetensors"),
        "nf4-dq",
        "tmpl-hash",
    )
    .unwrap()
    .with_result(
        "train",
        json!({"steps": 30, "best_eval_loss": 1.25, "final_eval_loss": 1.5, "status": "finished"}),
    )
    .with_result(
        "safety",
        json!({"tuned": {"answers_checked": 6, "warnings": 2, "max_risk_level": 1}}),
    );
    let adapter = dir.join("adapter");
    std::fs::create_dir_all(&adapter).unwrap();
    m.write(&adapter).unwrap();
    match read_manifest(&adapter.join("manifest.json")).unwrap() {
        ManifestFile::Run(m) => serde_json::to_value(summary(&m)).unwrap(),
        ManifestFile::Other(v) => panic!("not read as a run manifest: {v}"),
    }
}

fn server(manifest: Option<serde_json::Value>) -> axum::Router {
    let engine = Arc::new(ScriptEngine::new());
    let (state, _worker) = AppState::new(
        engine,
        Some(Arc::new(TestSafety)),
        ServeSettings::default(),
        manifest,
    )
    .unwrap();
    app(state)
}

#[tokio::test]
async fn health_carries_the_adapter_manifest_summary() {
    let dir = tempfile::tempdir().unwrap();
    let app = server(Some(adapter_manifest(dir.path())));
    let (status, v) = send_json(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    let m = &v["manifest"];
    assert!(
        m["code_version"].as_str().unwrap().starts_with("medtune "),
        "{m}"
    );
    assert!(m["base_model"].as_str().unwrap().ends_with("model"), "{m}");
    assert_eq!(m["base_model_sha256"], SHA256_ABC);
    assert_eq!(m["base_storage"], "nf4-dq");
    assert_eq!(m["chat_template_sha256"], "tmpl-hash");
    assert_eq!(m["dataset"]["name"], "medquad-mini");
    assert_eq!(m["dataset"]["train_file_sha256"], SHA256_ABC);
    assert_eq!(m["dataset"]["eval_file_sha256"], SHA256_EMPTY);
    assert_eq!(m["dataset"]["split_seed"], 7);
    assert_eq!(m["dataset"]["split"]["validation"], 0.1);
    assert_eq!(m["dataset"]["inputs"][0]["sha256"], "f00d");
    assert_eq!(m["hyper_parameters"]["lora.r"], 16);
    assert_eq!(m["hyper_parameters"]["optim.lr"], 1e-4);
    assert_eq!(m["hyper_parameters"]["train.seed"], 42);
    assert_eq!(m["metrics"]["train.best_eval_loss"], 1.25);
    assert_eq!(m["metrics"]["train.steps"], 30);
    assert_eq!(m["metrics"]["train.status"], "finished");
    assert_eq!(m["safety"]["tuned"]["warnings"], 2);
    // The full configuration stays in the file; /health shows the key settings only.
    assert!(m["hyper_parameters"].get("train.output_dir").is_none());
}

#[tokio::test]
async fn health_without_manifest_says_null() {
    let app = server(None);
    let (status, v) = send_json(&app, get("/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["manifest"].is_null());
}

#[tokio::test]
async fn page_has_a_provenance_panel_fed_from_health() {
    let dir = tempfile::tempdir().unwrap();
    let summary = adapter_manifest(dir.path());
    let app = server(Some(summary.clone()));
    let (status, html) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"id="provenance""#), "{html}");
    assert!(html.contains(r#"id="provenance-list""#), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"));
    let (status, js) = send(&app, get("/app.js")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(js.contains("renderProvenance(info)"));
    // Every part of the summary that the panel shows is read under its served name.
    for key in [
        "code_version",
        "base_model",
        "base_model_sha256",
        "base_storage",
        "chat_template_sha256",
        "dataset",
        "hyper_parameters",
        "metrics",
        "safety",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}");
        assert!(js.contains(&format!("m.{key}")), "page does not show {key}");
    }
    for key in [
        "train_file_sha256",
        "eval_file_sha256",
        "split_seed",
        "inputs",
    ] {
        assert!(summary["dataset"].get(key).is_some(), "summary lacks {key}");
        assert!(js.contains(&format!("d.{key}")), "page does not show {key}");
    }
}
