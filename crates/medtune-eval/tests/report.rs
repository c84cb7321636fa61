//! Report files from a real (tiny-model) comparison, and mismatched runs.

use medtune_eval::compare::Comparison;
use medtune_eval::freetext::TextScorer;
use medtune_eval::metrics::bootstrap::Bootstrap;
use medtune_eval::{
    run_suites, write_report, Error, EvalSpec, EvalTarget, Modes, NoProgress, Sources, Suite,
};
use medtune_model::{load, LoadOptions};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn comparison() -> Comparison {
    let mut lm = load(
        &root().join("../../fixtures/hf-tiny/models/llama"),
        &LoadOptions::default(),
    )
    .unwrap();
    let sources = Sources {
        data_dir: root().join("tests/fixtures/evaldata"),
        dataset_dir: Some(root().join("tests/fixtures/evaldataset")),
        heldout_split: "test".into(),
    };
    let mut spec = EvalSpec::new(
        vec![
            Suite::Pubmedqa,
            Suite::MmluMedical,
            Suite::Qpain,
            Suite::Medquad,
        ],
        sources,
    );
    spec.modes = Modes::Both;
    spec.max_new_tokens_choice = 4;
    spec.max_new_tokens_text = 6;
    spec.bootstrap.resamples = 100;
    let targets = vec![
        EvalTarget::base(),
        EvalTarget::adapter(root().join("../../fixtures/hf-tiny/models/llama/lora_adapter")),
    ];
    run_suites(&spec, &mut lm, &targets, &mut NoProgress).unwrap()
}

#[test]
fn report_files_are_written_and_consistent() {
    let cmp = comparison();
    let dir = tempfile::tempdir().unwrap();
    let files = write_report(&cmp, dir.path()).unwrap();
    for name in [
        "predictions.csv",
        "model_comparison.csv",
        "specialty_performance.csv",
        "qpain_gaps.csv",
        "training_recommendations.json",
        "report.md",
        "comparison_accuracy.png",
        "comparison_accuracy.svg",
        "answer_length.png",
        "answer_length.svg",
        "confusion_base_pubmedqa_likelihood.png",
        "specialty_mmlu-medical_likelihood.svg",
    ] {
        assert!(
            dir.path().join(name).is_file(),
            "{name} missing; wrote {files:?}"
        );
    }
    // No temporary files are left behind.
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!n.contains(".tmp"), "{n}");
    }
    let mut rd = csv::Reader::from_path(dir.path().join("predictions.csv")).unwrap();
    assert_eq!(rd.records().count(), cmp.predictions.len());
    let mut rd = csv::Reader::from_path(dir.path().join("model_comparison.csv")).unwrap();
    let headers = rd.headers().unwrap().clone();
    assert_eq!(&headers[8], "delta_vs_base");
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), cmp.metrics.len());
    let row = rows
        .iter()
        .find(|r| {
            &r[0] == "base" && &r[1] == "pubmedqa" && &r[2] == "likelihood" && &r[3] == "accuracy"
        })
        .unwrap();
    let want = cmp
        .metric(
            "base",
            Suite::Pubmedqa,
            medtune_eval::Mode::Likelihood,
            "accuracy",
        )
        .unwrap();
    assert!((row[4].parse::<f64>().unwrap() - want.value.value).abs() < 1e-6);
    assert_eq!(&row[7], "3");
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| suite | mode | metric | n | base | lora_adapter | Δ lora_adapter |"));
    assert!(md.contains("| pubmedqa | likelihood | accuracy | 3 |"));
    assert!(md.contains("Q-Pain"));
    assert!(
        md.contains("empty reference answer"),
        "skipped items are listed"
    );
    let recs: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("training_recommendations.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(recs["target"], "lora_adapter");
    assert!(recs["specialties"].is_array());
}

#[test]
fn mismatched_items_between_targets_are_an_error() {
    let cmp = comparison();
    let mut preds = cmp.predictions.clone();
    let drop = preds
        .iter()
        .position(|p| p.target == "lora_adapter" && p.suite == Suite::MmluMedical)
        .unwrap();
    let gone = preds.remove(drop).id;
    let err = Comparison::build(
        cmp.targets.clone(),
        preds,
        Vec::new(),
        Vec::new(),
        &Bootstrap::default(),
        &TextScorer::new(None),
    )
    .unwrap_err();
    assert!(matches!(err, Error::MismatchedItems { .. }));
    assert!(err.to_string().contains(&gone), "{err}");
}
