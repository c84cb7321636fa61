//! Run manifests and run directories: a real training run writes `manifest.json` into the run,
//! every checkpoint, `best/` and `adapter/`; `runs::discover` finds runs (not their parts), reads
//! their manifests and metrics, flags unreadable ones naming the file; `runs::compare` shows the
//! settings that differ.

use candle_core::{Device, Var};
use medtune_data::tokenize::TokenizedExample;
use medtune_train::batch::Batch;
use medtune_train::config::TrainConfig;
use medtune_train::log::{MetricRow, MetricsLog};
use medtune_train::manifest::RunManifest;
use medtune_train::optim::{Grads, NamedVar};
use medtune_train::runs::{self, MetricsSource};
use medtune_train::trainer::{train, Silent, StepModel};
use medtune_train::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Loss = (supervised tokens) · ‖w − 1‖²: falls as AdamW moves w towards 1.
struct Toy {
    w: Var,
    manifest: Option<RunManifest>,
}

impl Toy {
    fn loss(&self, batch: &Batch) -> Result<(candle_core::Tensor, usize)> {
        let n = batch.supervised;
        let sum = self
            .w
            .as_tensor()
            .affine(1.0, -1.0)?
            .sqr()?
            .sum_all()?
            .affine(n as f64, 0.0)?;
        Ok((sum, n))
    }
}

impl StepModel for Toy {
    fn params(&self) -> Vec<NamedVar> {
        vec![("toy.weight".into(), self.w.clone())]
    }
    fn loss_and_grads(&mut self, batch: &Batch, _: bool, _: u64) -> Result<(f64, usize, Grads)> {
        let (sum, n) = self.loss(batch)?;
        let grads = Grads::from_store(&sum.backward()?, &self.params())?;
        Ok((sum.to_scalar::<f32>()? as f64, n, grads))
    }
    fn eval_loss(&mut self, batch: &Batch) -> Result<(f64, usize)> {
        let (sum, n) = self.loss(batch)?;
        Ok((sum.to_scalar::<f32>()? as f64, n))
    }
    fn save_adapter(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.into(),
            message: e.to_string(),
        })?;
        let map = HashMap::from([("toy.weight".to_string(), self.w.as_tensor().clone())]);
        candle_core::safetensors::save(&map, dir.join("adapter_model.safetensors"))?;
        Ok(())
    }
    fn load_adapter(&mut self, dir: &Path) -> Result<()> {
        let map =
            candle_core::safetensors::load(dir.join("adapter_model.safetensors"), &Device::Cpu)?;
        self.w.set(&map["toy.weight"])?;
        Ok(())
    }
    fn manifest(&self) -> Option<&RunManifest> {
        self.manifest.as_ref()
    }
}

fn examples(n: usize) -> Vec<TokenizedExample> {
    (0..n)
        .map(|i| TokenizedExample {
            id: format!("ex{i}"),
            input_ids: vec![1, 2, 3, 4, (i % 5) as u32],
            labels: vec![-100, -100, 3, 4, (i % 5) as i64],
            truncated: false,
        })
        .collect()
}

/// A base "model" file and a prepared dataset (split files and a data manifest) under `dir`.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("model.safetensors"), b"weights").unwrap();
    std::fs::write(model.join("tokenizer.json"), b"{}").unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("train.jsonl"), b"abc").unwrap();
    std::fs::write(data.join("validation.jsonl"), b"").unwrap();
    let data_manifest = json!({
        "name": "medquad-mini", "tool_version": "medtune-data 0.1.0", "seed": 11,
        "config": {"split": {"validation": 0.1, "test": 0.1}},
        "inputs": [{"path": "medquad/", "files": 2, "bytes": 5, "sha256": "beef"}],
    });
    std::fs::write(data.join("manifest.json"), data_manifest.to_string()).unwrap();
    (model, data)
}

fn config(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> TrainConfig {
    let mut o = vec![
        format!("model.path={:?}", model.display().to_string()),
        format!("data.dataset_dir={:?}", data.display().to_string()),
        format!("train.output_dir={:?}", out.display().to_string()),
        "optim.lr=0.05".to_string(),
        "schedule.kind=\"constant\"".to_string(),
        "schedule.warmup_ratio=0.0".to_string(),
    ];
    o.extend(extra.iter().map(|s| s.to_string()));
    TrainConfig::from_toml_str("", "test", &o).unwrap()
}

fn manifest_for(cfg: &TrainConfig) -> RunManifest {
    RunManifest::new(
        cfg,
        &cfg.model.path.join("model.safetensors"),
        "f32",
        "template-sha",
    )
    .unwrap()
}

/// Equal to within JSON's float round trip (serde_json may parse 1 ulp off).
fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(1.0),
        (a, b) => a == b,
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn eval_row(step: u64, loss: f64) -> MetricRow {
    MetricRow {
        kind: "eval".into(),
        step,
        epoch: 0.0,
        loss,
        perplexity: Some(loss.exp()),
        lr: None,
        grad_norm: None,
        tokens: None,
        tokens_per_s: None,
        elapsed_s: 1.0,
    }
}

fn train_row(step: u64, loss: f64) -> MetricRow {
    MetricRow {
        kind: "train".into(),
        lr: Some(2e-4),
        grad_norm: Some(1.0),
        ..eval_row(step, loss)
    }
}

/// A run directory written the way the trainer writes one: manifest (with `results`) in the
/// run, a checkpoint, `best/` and `adapter/`, and metrics through [`MetricsLog`].
fn write_run(root: &Path, name: &str, cfg_extra: &[&str], rows: &[MetricRow]) -> PathBuf {
    let (model, data) = inputs(&root.join(".inputs"));
    let dir = root.join(name);
    let cfg = config(&model, &data, &dir, cfg_extra);
    let m = manifest_for(&cfg).with_result(
        "safety",
        json!({"tuned": {"answers_checked": 4, "warnings": 1, "max_risk_level": 2}}),
    );
    for part in ["", "checkpoints/step-000002", "best", "adapter"] {
        let d = dir.join(part);
        std::fs::create_dir_all(&d).unwrap();
        m.write(&d).unwrap();
    }
    std::fs::write(dir.join("train_config.toml"), cfg.to_toml()).unwrap();
    if !rows.is_empty() {
        let mut log = MetricsLog::open(&dir, None).unwrap();
        for r in rows {
            log.push(r.clone()).unwrap();
        }
    }
    dir
}

#[test]
fn a_training_run_writes_its_manifest_into_every_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, data) = inputs(tmp.path());
    let out = tmp.path().join("runs").join("toy");
    let cfg = config(
        &model,
        &data,
        &out,
        &[
            "train.max_steps=6",
            "train.batch_size=2",
            "train.eval_every=2",
            "train.save_every=2",
            "train.keep_checkpoints=0",
        ],
    );
    let mut toy = Toy {
        w: Var::from_slice(&[0.0f32, 0.5, -0.5], 3, &Device::Cpu).unwrap(),
        manifest: Some(manifest_for(&cfg)),
    };
    let summary = train(
        &cfg,
        &mut toy,
        &examples(8),
        &examples(4),
        0,
        &Device::Cpu,
        false,
        &mut Silent,
    )
    .unwrap();
    assert_eq!(summary.steps, 6);

    // The run directory and the final adapter: the finished run's metrics.
    for dir in [out.clone(), out.join("adapter")] {
        let m = read_json(&dir.join("manifest.json"));
        assert_eq!(
            m["chat_template_sha256"],
            "template-sha",
            "{}",
            dir.display()
        );
        assert_eq!(m["results"]["train"]["status"], "finished");
        assert_eq!(m["results"]["train"]["steps"], 6);
        assert!(close(
            m["results"]["train"]["best_eval_loss"].as_f64(),
            summary.best_eval_loss
        ));
        assert_eq!(m["config"]["optim"]["lr"], 0.05);
        assert_eq!(m["data_manifest"]["seed"], 11);
    }
    // Every checkpoint and its adapter: the metrics at that step.
    for step in [2u64, 4, 6] {
        let ckpt = out.join("checkpoints").join(format!("step-{step:06}"));
        for dir in [ckpt.clone(), ckpt.join("adapter")] {
            let m = read_json(&dir.join("manifest.json"));
            assert_eq!(m["results"]["train"]["steps"], step, "{}", dir.display());
            assert_eq!(m["results"]["train"]["status"], "checkpoint");
            assert_eq!(m["results"]["train"]["total_steps"], 6);
        }
    }
    // `best/` is the checkpoint of the best step.
    let best_step = summary.best_step.unwrap();
    for dir in [out.join("best"), out.join("best").join("adapter")] {
        let m = read_json(&dir.join("manifest.json"));
        assert_eq!(m["results"]["train"]["steps"], best_step);
        assert!(close(
            m["results"]["train"]["best_eval_loss"].as_f64(),
            summary.best_eval_loss
        ));
    }

    // Discovery finds the run once (not its checkpoints, best/ or adapter/), nor the dataset.
    let found = runs::discover(tmp.path(), runs::DEFAULT_MAX_DEPTH).unwrap();
    let names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["runs/toy"]);
    let r = &found[0];
    assert!(!r.is_flagged(), "{:?}", r.problems);
    assert_eq!(r.metrics.source, MetricsSource::MetricsLog);
    assert_eq!(r.metrics.steps, Some(6));
    assert_eq!(r.metrics.total_steps, Some(6));
    assert!(close(r.metrics.best_eval_loss, summary.best_eval_loss));
    assert_eq!(r.metrics.best_step, summary.best_step);
    assert!(close(r.metrics.final_eval_loss, summary.final_eval_loss));
    assert!(close(
        r.metrics.initial_eval_loss,
        summary.initial_eval_loss
    ));
    assert_eq!(r.metrics.eval_points, 4);
    assert!(r.created_unix_s.is_some());
}

#[test]
fn discover_reads_runs_and_flags_the_unreadable_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let a_rows = [
        eval_row(0, 2.0),
        train_row(1, 2.5),
        eval_row(1, 1.2),
        train_row(2, 1.9),
        eval_row(2, 1.4),
    ];
    write_run(root, "a", &[], &a_rows);
    // A demo's training part inside run `a` is not a run of its own.
    write_run(root, "a/train", &[], &a_rows);
    // No metrics.jsonl: the metrics come from the manifest's `train` results.
    let b = write_run(root, "group/b", &["lora.r=16", "optim.lr=1e-4"], &[]);
    let mb = runs::read_run(&b).unwrap().manifest.unwrap().with_result(
        "train",
        json!({"steps": 9, "total_steps": 9, "best_eval_loss": 0.75, "best_step": 6,
               "final_eval_loss": 0.8, "status": "finished"}),
    );
    mb.write(&b).unwrap();
    // A dataset directory is not a run.
    let (_, data) = inputs(&root.join("datasets"));
    assert!(data.join("manifest.json").is_file());
    // Malformed JSON, a run manifest with a mistyped field, a bad metrics line.
    std::fs::create_dir_all(root.join("bad")).unwrap();
    std::fs::write(root.join("bad/manifest.json"), "{\"code_version\": ").unwrap();
    std::fs::create_dir_all(root.join("badfield")).unwrap();
    std::fs::write(
        root.join("badfield/manifest.json"),
        json!({"code_version": "medtune 0.1.0", "base_model": "m", "config": 5}).to_string(),
    )
    .unwrap();
    let c = write_run(root, "c", &[], &a_rows);
    let mut text = std::fs::read_to_string(c.join("metrics.jsonl")).unwrap();
    text.push_str("{\"kind\": \"eval\", \"step\": \"three\"}\n");
    std::fs::write(c.join("metrics.jsonl"), text).unwrap();
    // Deeper than the search depth.
    write_run(root, "x/y/z/w/deep", &[], &[]);

    let found = runs::discover(root, 4).unwrap();
    let names: Vec<&str> = found.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "bad", "badfield", "c", "group/b"]);
    let by = |n: &str| found.iter().find(|r| r.name == n).unwrap();

    let a = by("a");
    assert!(!a.is_flagged());
    assert_eq!(a.metrics.steps, Some(2));
    assert_eq!(a.metrics.initial_eval_loss, Some(2.0));
    assert_eq!(a.metrics.best_eval_loss, Some(1.2));
    assert_eq!(a.metrics.best_step, Some(1));
    assert_eq!(a.metrics.final_eval_loss, Some(1.4));
    assert_eq!(a.metrics.final_train_loss, Some(1.9));
    assert_eq!(a.manifest.as_ref().unwrap().config.lora.r, 8);

    let b = by("group/b");
    assert_eq!(b.metrics.source, MetricsSource::Manifest);
    assert_eq!(b.metrics.steps, Some(9));
    assert_eq!(b.metrics.best_eval_loss, Some(0.75));
    assert_eq!(b.metrics.final_eval_loss, Some(0.8));

    let bad = by("bad");
    assert!(bad.is_flagged() && bad.manifest.is_none());
    assert_eq!(bad.problems[0].path, root.join("bad/manifest.json"));
    assert!(
        bad.problems[0].to_string().contains("malformed JSON"),
        "{}",
        bad.problems[0]
    );
    let badfield = by("badfield");
    assert!(badfield.is_flagged());
    let p = badfield.problems[0].to_string();
    assert!(p.contains("badfield/manifest.json") && p.contains("not a valid run manifest"));

    let c = by("c");
    assert!(c.is_flagged() && c.manifest.is_some());
    let p = c.problems[0].to_string();
    assert!(p.contains("c/metrics.jsonl") && p.contains("line 6"), "{p}");

    // Strict reading names the file.
    let err = runs::read_run(&root.join("bad")).unwrap_err().to_string();
    assert!(err.contains("bad/manifest.json"), "{err}");
    assert!(runs::read_run(&data).is_err());

    // A deeper search finds the nested run.
    let deep = runs::discover(root, 6).unwrap();
    assert!(deep.iter().any(|r| r.name == "x/y/z/w/deep"));
    assert!(runs::discover(&root.join("missing"), 4).is_err());
}

#[test]
fn compare_shows_differing_settings_and_metrics_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let a = write_run(root, "a", &[], &[eval_row(0, 2.0), eval_row(3, 1.0)]);
    let b = write_run(
        root,
        "b",
        &["lora.r=16", "optim.lr=1e-4"],
        &[eval_row(0, 2.0), eval_row(3, 1.5)],
    );
    let runs_read = [runs::read_run(&a).unwrap(), runs::read_run(&b).unwrap()];
    let c = runs::compare(&runs_read);
    let keys: Vec<&str> = c.differing.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["lora.r", "optim.lr"], "{c:?}");
    let r = &c.differing[0];
    assert_eq!(r.values, [Some(json!(8)), Some(json!(16))]);
    assert!(c.identical > 30, "identical settings: {}", c.identical);
    let row = |k: &str| c.metrics.iter().find(|r| r.key == k).unwrap();
    assert_eq!(
        row("best_eval_loss").values,
        [Some(json!(1.0)), Some(json!(1.5))]
    );
    assert_eq!(row("steps").values, [Some(json!(3)), Some(json!(3))]);
    assert_eq!(row("safety.tuned.warnings").values[0], Some(json!(1)));
    assert_eq!(c.metrics[0].key, "steps");

    let s = runs::summary(runs_read[1].manifest.as_ref().unwrap());
    assert_eq!(s.hyper_parameters["lora.r"], json!(16));
    assert_eq!(s.dataset.split_seed, Some(11));
    assert_eq!(s.dataset.inputs[0].sha256, "beef");
    assert_eq!(s.safety.as_ref().unwrap()["tuned"]["max_risk_level"], 2);
}
