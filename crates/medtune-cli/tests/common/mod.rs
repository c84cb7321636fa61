//! Shared set-up of the CLI tests that train: a tiny dataset made from our own demo QA set
//! (`fixtures/demo/medical_qa.jsonl`, answers cut to their first sentence so examples stay short)
//! and a run config on the tiny llama of `fixtures/hf-tiny`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo records as JSON objects, answers cut to the first sentence, in file order.
pub fn demo_records() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(root().join("fixtures/demo/medical_qa.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let answer = v["answer"].as_str().unwrap();
            let first = match answer.find(". ") {
                Some(i) => &answer[..=i],
                None => answer,
            };
            serde_json::json!({
                "id": v["id"],
                "question": v["question"],
                "answer": first,
                "specialty": v["specialty"],
                "source": "demo",
            })
        })
        .collect()
}

/// Writes records as JSON lines.
pub fn write_jsonl(path: &Path, records: &[&serde_json::Value]) {
    let mut s = String::new();
    for r in records {
        s.push_str(&serde_json::to_string(r).unwrap());
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// A run config on the tiny llama fixture reading `dataset_dir`, `max_steps` steps of batch 2.
pub fn run_config(dataset_dir: &Path, output_dir: &Path, max_steps: usize) -> String {
    let model = root().join("fixtures/hf-tiny/models/llama");
    format!(
        r#"[model]
path = {model:?}
[data]
dataset_dir = {data:?}
max_seq_len = 128
truncation = "truncate_answer"
template = "model"
[lora]
r = 4
lora_alpha = 8.0
lora_dropout = 0.0
target_modules = ["q_proj", "v_proj"]
[optim]
lr = 1e-3
[schedule]
kind = "constant"
warmup_ratio = 0.0
[train]
max_steps = {max_steps}
batch_size = 2
seed = 3
output_dir = {out:?}
keep_checkpoints = 1
"#,
        model = model.display().to_string(),
        data = dataset_dir.display().to_string(),
        out = output_dir.display().to_string(),
    )
}

/// Runs the `medtune` binary in `dir`.
pub fn medtune(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Panics with the command's output unless it exited with `code`.
pub fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
