//! `medtune progressive` end to end on the tiny llama fixture: extra records of the recommended
//! specialties come from the pool only (never a holdout or validation record, not even a copy of
//! one under another id), "before" and "after" are trained for two steps, and both are scored on
//! the same holdout items with a per-specialty change table.

mod common;

use common::{demo_records, expect_code, medtune, run_config, write_jsonl};
use std::collections::HashSet;

fn ids(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Whether the record's id ends with one of `digits`.
fn ends(r: &serde_json::Value, digits: &str) -> bool {
    let id = r["id"].as_str().unwrap();
    digits.contains(id.chars().last().unwrap())
}

#[test]
fn progressive_round_draws_from_the_pool_and_reports_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let recs = demo_records();
    let train: Vec<_> = recs.iter().filter(|r| ends(r, "12")).collect();
    let val: Vec<_> = recs.iter().filter(|r| ends(r, "3")).collect();
    let test: Vec<_> = recs.iter().filter(|r| ends(r, "45")).collect();
    let mut pool: Vec<serde_json::Value> =
        recs.iter().filter(|r| ends(r, "67890")).cloned().collect();
    // A copy of a holdout question under a new id, and one of a validation question.
    let mut leak = test[0].clone();
    leak["id"] = "leak-test".into();
    pool.push(leak);
    let mut leak = val[0].clone();
    leak["id"] = "leak-val".into();
    pool.push(leak);
    let cardio = test[0]["specialty"].as_str().unwrap().to_string();
    assert_eq!(cardio, "cardiology");
    write_jsonl(&data.join("train.jsonl"), &train);
    write_jsonl(&data.join("validation.jsonl"), &val);
    write_jsonl(&data.join("test.jsonl"), &test);
    write_jsonl(&data.join("pool.jsonl"), &pool.iter().collect::<Vec<_>>());
    std::fs::write(
        dir.join("run.toml"),
        run_config(&data, &dir.join("unused"), 2),
    )
    .unwrap();
    std::fs::write(
        dir.join("training_recommendations.json"),
        r#"{"target": "adapter", "rule": "test", "specialties": [
  {"suite": "medquad", "mode": "likelihood", "specialty": "cardiology", "metric": "perplexity",
   "value": 0.1, "ci": [0.0, 0.2], "n": 2, "suite_value": 0.3, "sampling_multiplier": 4.0},
  {"suite": "medquad", "mode": "likelihood", "specialty": "neurology", "metric": "perplexity",
   "value": 0.1, "ci": [0.0, 0.2], "n": 2, "suite_value": 0.3, "sampling_multiplier": 2.0}
]}"#,
    )
    .unwrap();

    let out = medtune(
        &[
            "progressive",
            "--config",
            "run.toml",
            "--recommendations",
            "training_recommendations.json",
            "--out",
            "round",
            "--resamples",
            "50",
            "--quiet",
        ],
        dir,
    );
    expect_code(&out, 0);
    let round = dir.join("round");
    for f in [
        "data/train.jsonl",
        "data/validation.jsonl",
        "data/test.jsonl",
        "data/pool.jsonl",
        "data/selection.json",
        "before/train_summary.json",
        "after/train_summary.json",
        "eval/report.md",
        "specialty_change.csv",
        "specialty_change.md",
        "progressive_summary.json",
    ] {
        assert!(round.join(f).is_file(), "missing {f}");
    }

    // cardiology: 2 in train × (4 − 1) = 6 requested, 5 clean pool records (the copies of a
    // holdout and of a validation question are excluded); neurology: 2 requested.
    let sel: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(round.join("data/selection.json")).unwrap())
            .unwrap();
    let spec = &sel["selection"]["specialties"];
    assert_eq!(spec[0]["specialty"], "cardiology");
    assert_eq!(spec[0]["requested"], 6);
    assert_eq!(spec[0]["available"], 5);
    assert_eq!(spec[0]["excluded"], 2);
    assert_eq!(spec[0]["drawn"], 5);
    assert_eq!(spec[1]["requested"], 2);
    assert_eq!(spec[1]["drawn"], 2);

    let new_train = ids(&round.join("data/train.jsonl"));
    assert_eq!(new_train.len(), 16 + 7);
    let held: HashSet<String> = ids(&data.join("test.jsonl"))
        .into_iter()
        .chain(ids(&data.join("validation.jsonl")))
        .collect();
    let pool_ids: HashSet<String> = ids(&data.join("pool.jsonl")).into_iter().collect();
    for id in &new_train[16..] {
        assert!(pool_ids.contains(id) && !held.contains(id), "{id}");
        assert!(!id.starts_with("leak"), "{id}");
    }
    assert_eq!(ids(&round.join("data/pool.jsonl")).len(), pool.len() - 7);
    assert_eq!(
        ids(&round.join("data/test.jsonl")),
        ids(&data.join("test.jsonl"))
    );

    // One row per holdout specialty (8), with before, after and a paired change interval.
    let csv = std::fs::read_to_string(round.join("specialty_change.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("suite,mode,specialty,metric,n,before"),
        "{csv}"
    );
    assert_eq!(lines.len(), 1 + 8, "{csv}");
    for l in &lines[1..] {
        let c: Vec<&str> = l.split(',').collect();
        assert_eq!(
            (c[0], c[1], c[3], c[4]),
            ("medquad", "likelihood", "perplexity", "2"),
            "{l}"
        );
        let v: Vec<f64> = c[5..14].iter().map(|x| x.parse().unwrap()).collect();
        assert!(v[1] <= v[0] && v[0] <= v[2], "before CI: {l}");
        assert!(v[4] <= v[3] && v[3] <= v[5], "after CI: {l}");
        assert!(
            (v[6] - (v[3] - v[0])).abs() < 1e-5,
            "change = after - before: {l}"
        );
        assert!(v[7] <= v[6] && v[6] <= v[8], "change CI: {l}");
    }
    let md = std::fs::read_to_string(round.join("specialty_change.md")).unwrap();
    assert!(
        md.contains("| cardiology |") && md.contains("requested"),
        "{md}"
    );
}

#[test]
fn missing_pool_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let recs = demo_records();
    let all: Vec<_> = recs.iter().collect();
    write_jsonl(&data.join("train.jsonl"), &all[..10]);
    write_jsonl(&data.join("test.jsonl"), &all[10..20]);
    std::fs::write(
        dir.join("run.toml"),
        run_config(&data, &dir.join("unused"), 2),
    )
    .unwrap();
    let run = || {
        medtune(
            &[
                "progressive",
                "--config",
                "run.toml",
                "--recommendations",
                "recs.json",
                "--out",
                "r",
            ],
            dir,
        )
    };
    std::fs::write(
        dir.join("recs.json"),
        r#"{"specialties": [{"specialty": "cardiology", "sampling_multiplier": 2.0}]}"#,
    )
    .unwrap();
    let out = run();
    expect_code(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pool.jsonl") && err.contains("split.progressive"),
        "{err}"
    );
    std::fs::write(
        dir.join("recs.json"),
        r#"{"specialties": [{"specialty": "x"}]}"#,
    )
    .unwrap();
    let out = run();
    expect_code(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("recs.json") && err.contains("sampling_multiplier"),
        "{err}"
    );
}
