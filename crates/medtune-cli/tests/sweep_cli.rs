//! `medtune sweep` end to end on the tiny llama fixture: two real trials of two steps plus one
//! that fails (a target module the model does not have), ranked by eval loss with the failure
//! last; the best configuration is written and continued to the base config's full length.

mod common;

use common::{demo_records, expect_code, medtune, run_config, write_jsonl};
use medtune_train::config::TrainConfig;

#[test]
fn sweep_ranks_trials_writes_outputs_and_continues_the_best() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let recs = demo_records();
    // 16 training records (2 per specialty), 8 validation records.
    let train: Vec<_> = recs
        .iter()
        .filter(|r| {
            let id = r["id"].as_str().unwrap();
            id.ends_with('1') || id.ends_with('2')
        })
        .collect();
    let val: Vec<_> = recs
        .iter()
        .filter(|r| r["id"].as_str().unwrap().ends_with('3'))
        .collect();
    assert_eq!((train.len(), val.len()), (16, 8));
    write_jsonl(&data.join("train.jsonl"), &train);
    write_jsonl(&data.join("validation.jsonl"), &val);
    std::fs::write(
        dir.join("run.toml"),
        run_config(&data, &dir.join("unused"), 3),
    )
    .unwrap();
    std::fs::write(
        dir.join("sweep.toml"),
        r#"base_config = "run.toml"
method = "grid"
trial_steps = 2
[space]
lr = [1e-6, 2e-2]
target_modules = [["q_proj", "v_proj"], ["no_such_proj"]]
"#,
    )
    .unwrap();

    let out = medtune(
        &[
            "sweep",
            "--config",
            "sweep.toml",
            "--out",
            "sw",
            "--continue-best",
            "--quiet",
        ],
        dir,
    );
    expect_code(&out, 0);
    let sw = dir.join("sw");
    for f in [
        "sweep_plan.json",
        "sweep_results.csv",
        "sweep_results.md",
        "sweep_results.json",
        "sweep_eval_loss.png",
        "sweep_eval_loss.svg",
        "best_config.toml",
        "trial-000/train_summary.json",
        "trial-002/train_summary.json",
        "best/train_summary.json",
    ] {
        assert!(sw.join(f).is_file(), "missing {f}");
    }

    // Ranking: the two trials that trained come first, lowest eval loss first; the two with an
    // unknown target module are last, in trial order, flagged as failed.
    let csv = std::fs::read_to_string(sw.join("sweep_results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 4, "{csv}");
    let ranks: Vec<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(ranks, ["1", "2", "3", "4"]);
    let trials: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    let mut good = trials[..2].to_vec();
    good.sort_unstable();
    assert_eq!(good, ["trial-000", "trial-002"], "{csv}");
    assert_eq!(&trials[2..], ["trial-001", "trial-003"], "{csv}");
    let loss: Vec<f64> = rows[..2].iter().map(|r| r[7].parse().unwrap()).collect();
    assert!(loss.iter().all(|l| l.is_finite() && *l > 0.0), "{csv}");
    assert!(loss[0] <= loss[1], "{csv}");
    assert_ne!(
        loss[0], loss[1],
        "different learning rates must give different losses: {csv}"
    );
    // The flag is the last column (quoted when the message has commas).
    for r in &rows[2..] {
        assert!(r[11].trim_start_matches('"').starts_with("failed"), "{csv}");
    }
    assert!(
        csv.lines().nth(3).unwrap().contains("no_such_proj"),
        "{csv}"
    );
    assert!(rows[0][11].is_empty() && rows[1][11].is_empty());

    // best_config.toml is a valid run config with the winner's learning rate and full length.
    let best_text = std::fs::read_to_string(sw.join("best_config.toml")).unwrap();
    let best = TrainConfig::from_toml_str(&best_text, "best_config.toml", &[]).unwrap();
    let best_lr: f64 = rows[0][2].parse().unwrap();
    assert_eq!(best.optim.lr, best_lr);
    assert_eq!(best.lora.target_modules, ["q_proj", "v_proj"]);
    assert_eq!(best.train.max_steps, 3);
    assert!(best.train.output_dir.ends_with("best"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sw.join("best/train_summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"], 3);
    let md = std::fs::read_to_string(sw.join("sweep_results.md")).unwrap();
    assert!(md.contains("| 1 |") && md.contains("failed"), "{md}");
}

#[test]
fn bad_sweep_files_are_errors_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("sweep.toml"),
        "base_config = \"run.toml\"\nmethod = \"grid\"\ntrial_steps = 2\n[space]\nlr = [0.001, -1.0]\n",
    )
    .unwrap();
    let out = medtune(&["sweep", "--config", "sweep.toml"], dir);
    expect_code(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("space.lr[1]"), "{err}");
    std::fs::write(
        dir.join("sweep.toml"),
        "base_config = \"missing.toml\"\nmethod = \"grid\"\ntrial_steps = 2\n",
    )
    .unwrap();
    let out = medtune(&["sweep", "--config", "sweep.toml"], dir);
    expect_code(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing.toml") && err.contains("base_config"),
        "{err}"
    );
}
