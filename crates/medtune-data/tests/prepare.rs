//! `prepare` end to end on our fixtures: files written, counts add up, nothing dropped silently,
//! no synthetic record outside train, no leakage, deterministic for a seed.

use medtune_data::augment::dose::BuiltinDoseTable;
use medtune_data::io::read_jsonl;
use medtune_data::pipeline::{prepare, PrepareOptions};
use medtune_data::DataConfig;
use std::path::Path;

const CONFIG: &str = r#"
name = "fixture-mix"
seed = 3

[[sources]]
format = "csv"
path = "qa.csv"

[[sources]]
format = "medquad"
path = "medquad"

[[sources]]
format = "specialty_dir"
path = "specialties"

[[sources]]
format = "qpain"
path = "qpain"

[split]
ratios = [0.6, 0.2, 0.2]

[augment]
mode = "hybrid"

[augment.vignettes]
count = 30
drop_diagnosis_probability = 0.5

[augment.balance]
by = "label"
"#;

fn run(out: &Path) -> medtune_data::pipeline::Prepared {
    let cfg = DataConfig::from_toml_str(CONFIG, "inline").unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let opts = PrepareOptions {
        data_dir: &data,
        out_dir: Some(out),
        strict: false,
        config_text: Some(CONFIG),
        tokens: None,
        dose_rules: &BuiltinDoseTable,
    };
    prepare(&cfg, &opts).unwrap()
}

#[test]
fn prepare_writes_a_consistent_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let p = run(dir.path());
    for f in [
        "train.jsonl",
        "validation.jsonl",
        "test.jsonl",
        "manifest.json",
        "cleaning_report.json",
        "stats.json",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    assert!(!dir.path().join("pool.jsonl").exists());
    // Every read record is either in a split or counted as dropped.
    let m = &p.manifest;
    let in_splits: usize = p
        .splits
        .values()
        .flatten()
        .filter(|r| !r.is_synthetic())
        .count();
    let dropped_after_read: usize = m
        .dropped_by_reason
        .iter()
        .filter(|(k, _)| !k.starts_with("read:"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        in_splits + dropped_after_read,
        m.records_read,
        "{:?}",
        m.dropped_by_reason
    );
    assert_eq!(m.dropped_by_reason["read:answer_removed"], 1);
    assert_eq!(
        m.dropped_by_reason["read:malformed"], 3,
        "csv row, medquad file, specialty answer"
    );
    assert_eq!(m.dropped_by_reason["clean:exact_duplicates"], 1);
    assert_eq!(m.dropped_by_reason["clean:ambiguous_question"], 1);
    // Synthetic records only in train; the JSONL on disk matches.
    for (s, recs) in &p.splits {
        let on_disk = read_jsonl(&dir.path().join(format!("{}.jsonl", s.name()))).unwrap();
        assert_eq!(&on_disk, recs);
        if s.name() != "train" {
            assert!(recs.iter().all(|r| !r.is_synthetic()));
        }
    }
    assert!(p.stats.augment.generated == 30 && p.stats.augment.rejected.is_empty());
    assert_eq!(p.stats.leakage.near_dup_pairs_crossing, 0);
    assert_eq!(m.inputs.len(), 6, "{:?}", m.inputs);
    assert!(m.inputs.iter().all(|i| i.sha256.len() == 64));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("cleaning_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["readers"]["csv"]["problems"][0]["line"], 6);
}

#[test]
fn prepare_is_deterministic_for_a_seed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(a.path());
    run(b.path());
    for f in [
        "train.jsonl",
        "validation.jsonl",
        "test.jsonl",
        "stats.json",
    ] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs"
        );
    }
}

#[test]
fn strict_mode_stops_at_the_first_malformed_input() {
    let cfg = DataConfig::from_toml_str(CONFIG, "inline").unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let opts = PrepareOptions {
        data_dir: &data,
        out_dir: None,
        strict: true,
        config_text: None,
        tokens: None,
        dose_rules: &BuiltinDoseTable,
    };
    let err = prepare(&cfg, &opts).unwrap_err().to_string();
    assert!(err.contains("qa.csv:6"), "{err}");
}
