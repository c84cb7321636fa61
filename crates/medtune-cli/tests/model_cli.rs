//! `medtune model inspect` and `medtune model logits` end to end through the binary: inspect
//! reports the fixture models' and the SmolLM2 GGUF's sizes; logits reproduces the transformers
//! reference logits and loss of every `fixtures/hf-tiny` architecture; bad input (missing
//! folder, unknown `model_type`, truncated weights, bad input tensors) exits with code 2 and an
//! error naming the file, never a panic.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The six fixture architectures (`model_type` values).
const ARCHS: [&str; 6] = ["llama", "qwen2", "mistral", "phi3", "phi", "gpt2"];

/// `<repo>`.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `fixtures/hf-tiny/models/<arch>`.
fn model_dir(arch: &str) -> PathBuf {
    repo().join("fixtures/hf-tiny/models").join(arch)
}

fn medtune(args: &[&str]) -> std::io::Result<Output> {
    Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(args)
        .current_dir(repo())
        .output()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a run failed cleanly: exit code 2, `error:` on stderr naming `names`, no panic.
fn assert_clean_failure(out: &Output, names: &[&str]) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains("error:"), "{err}");
    for n in names {
        assert!(err.contains(n), "stderr does not name `{n}`: {err}");
    }
}

/// The value after `label` on its line of `inspect` output.
fn field<'a>(stdout: &'a str, label: &str) -> &'a str {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
        .trim()
}

/// Copies the plain files of a fixture model folder into `dst`.
fn copy_model(arch: &str, dst: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(model_dir(arch))? {
        let p = e?.path();
        if p.is_file() {
            std::fs::copy(&p, dst.join(p.file_name().unwrap_or_default()))?;
        }
    }
    Ok(())
}

/// ‖a − b‖ / ‖b‖.
fn rel(a: &Tensor, b: &Tensor) -> candle_core::Result<f64> {
    let a = a.to_dtype(DType::F64)?;
    let b = b.to_dtype(DType::F64)?;
    let num: f64 = (&a - &b)?.sqr()?.sum_all()?.to_scalar()?;
    let den: f64 = b.sqr()?.sum_all()?.to_scalar()?;
    Ok(num.sqrt() / den.sqrt())
}

fn config_json(arch: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let s = std::fs::read_to_string(model_dir(arch).join("config.json"))?;
    Ok(serde_json::from_str(&s)?)
}

#[test]
fn inspect_reports_every_fixture_model() -> TestResult {
    for arch in ARCHS {
        let dir = model_dir(arch);
        let out = medtune(&["model", "inspect", dir.to_str().unwrap()])?;
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{arch}: {}", text(&out.stderr));
        assert_eq!(field(&stdout, "architecture"), arch);
        assert!(
            field(&stdout, "format").starts_with("safetensors"),
            "{stdout}"
        );
        assert_eq!(field(&stdout, "layers"), "2", "{arch}");
        assert_eq!(field(&stdout, "hidden"), "64", "{arch}");
        assert_eq!(field(&stdout, "vocab"), "512", "{arch}");
        let cfg = config_json(arch)?;
        let heads = cfg
            .get("num_attention_heads")
            .or_else(|| cfg.get("n_head"))
            .and_then(|v| v.as_u64())
            .ok_or("heads in config.json")?;
        assert!(
            field(&stdout, "heads").starts_with(&format!("{heads} ")),
            "{arch}: {stdout}"
        );
        let stored = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
        assert_eq!(
            field(&stdout, "tensors"),
            stored.len().to_string(),
            "{arch}"
        );
        assert!(
            field(&stdout, "tokenizer").ends_with("tokenizer.json"),
            "{stdout}"
        );
        if arch == "llama" {
            // Untied head: every stored value is a parameter.
            let n: usize = stored.values().map(|t| t.elem_count()).sum();
            assert_eq!(field(&stdout, "parameters"), n.to_string(), "{stdout}");
            assert!(field(&stdout, "heads").starts_with("4 (kv 2)"), "{stdout}");
            // config.json's eos_token_id 2 plus tokenizer_config's eos_token `<|im_end|>` (3).
            assert_eq!(field(&stdout, "eos ids"), "[2, 3]", "{stdout}");
        }
    }
    Ok(())
}

/// The SmolLM2 GGUF placed by scripts/setup.sh, if present.
fn smollm_gguf() -> Option<PathBuf> {
    let found = std::fs::read_dir(repo().join("models/smollm2-135m-instruct"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "gguf"));
    if found.is_none() {
        println!("SKIPPED: models/smollm2-135m-instruct/*.gguf absent; run scripts/setup.sh");
    }
    found
}

#[test]
fn inspect_reports_the_smollm2_gguf_and_its_metadata_tokenizer() -> TestResult {
    let Some(gguf) = smollm_gguf() else {
        return Ok(());
    };
    // Alone in a folder: no tokenizer.json, so the tokenizer comes from the GGUF metadata.
    let dir = tempfile::tempdir()?;
    let alone = dir.path().join(gguf.file_name().ok_or("file name")?);
    std::os::unix::fs::symlink(std::fs::canonicalize(&gguf)?, &alone)?;
    let out = medtune(&["model", "inspect", dir.path().to_str().unwrap()])?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(field(&stdout, "format").starts_with("gguf"), "{stdout}");
    assert_eq!(field(&stdout, "architecture"), "llama");
    assert_eq!(field(&stdout, "layers"), "30");
    assert_eq!(field(&stdout, "hidden"), "576");
    assert_eq!(field(&stdout, "intermediate"), "1536");
    assert!(
        field(&stdout, "heads").starts_with("9 (kv 3), head_dim 64"),
        "{stdout}"
    );
    assert_eq!(field(&stdout, "vocab"), "49152");
    assert_eq!(field(&stdout, "context"), "8192");
    assert_eq!(field(&stdout, "tied head"), "true");
    assert_eq!(field(&stdout, "tensors"), "272");
    let storage = field(&stdout, "storage");
    assert!(storage.contains("Q4_1: 210 tensors"), "{storage}");
    assert!(storage.contains("Q8_0: 1 tensors"), "{storage}");
    assert!(storage.contains("F32: 61 tensors"), "{storage}");
    assert!(field(&stdout, "eos ids").contains('2'), "{stdout}");
    assert!(
        field(&stdout, "tokenizer").starts_with("GGUF metadata"),
        "{stdout}"
    );
    assert_eq!(field(&stdout, "chat template"), "yes");

    // The .gguf file itself, next to its tokenizer.json.
    let out = medtune(&["model", "inspect", gguf.to_str().unwrap()])?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(field(&stdout, "layers"), "30");

    // A truncated copy is an error naming it.
    let cut = dir.path().join("cut.gguf");
    let bytes = std::fs::read(&gguf)?;
    std::fs::write(&cut, &bytes[..1 << 20])?;
    let out = medtune(&["model", "inspect", cut.to_str().unwrap()])?;
    assert_clean_failure(&out, &["cut.gguf"]);
    Ok(())
}

/// Writes `input_ids`, `attention_mask` (and `labels` when asked) of an arch's oracle.
fn write_input(arch: &str, path: &Path, with_labels: bool) -> TestResult {
    let oracle =
        candle_core::safetensors::load(model_dir(arch).join("oracle.safetensors"), &Device::Cpu)?;
    let mut input: HashMap<String, Tensor> = HashMap::new();
    let mut keys = vec!["input_ids", "attention_mask"];
    if with_labels {
        keys.push("labels");
    }
    for k in keys {
        input.insert(k.to_string(), oracle[k].clone());
    }
    candle_core::safetensors::save(&input, path)?;
    Ok(())
}

fn reference(arch: &str) -> Result<(Tensor, f64), Box<dyn std::error::Error>> {
    let oracle =
        candle_core::safetensors::load(model_dir(arch).join("oracle.safetensors"), &Device::Cpu)?;
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        model_dir(arch).join("oracle.json"),
    )?)?;
    let loss = json["loss"].as_f64().ok_or("loss in oracle.json")?;
    Ok((oracle["logits"].clone(), loss))
}

#[test]
fn logits_match_the_reference_and_labels_give_the_loss() -> TestResult {
    let dir = tempfile::tempdir()?;
    for arch in ARCHS {
        let input = dir.path().join(format!("{arch}.in.safetensors"));
        let output = dir.path().join(format!("{arch}.out.safetensors"));
        write_input(arch, &input, true)?;
        let out = medtune(&[
            "model",
            "logits",
            "--model",
            model_dir(arch).to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            output.to_str().unwrap(),
        ])?;
        assert!(out.status.success(), "{arch}: {}", text(&out.stderr));
        let got = candle_core::safetensors::load(&output, &Device::Cpu)?;
        let (want_logits, want_loss) = reference(arch)?;
        let logits = got.get("logits").ok_or("logits written")?;
        assert_eq!(logits.dims(), want_logits.dims(), "{arch}");
        let r = rel(logits, &want_logits)?;
        assert!(r <= 1e-4, "{arch}: logits rel diff {r:e}");
        let loss = f64::from(
            got.get("loss")
                .ok_or("loss written with labels")?
                .to_dtype(DType::F32)?
                .to_scalar::<f32>()?,
        );
        assert!(
            (loss - want_loss).abs() <= 1e-4 * want_loss.abs(),
            "{arch}: loss {loss} vs {want_loss}"
        );
    }

    // Without labels: logits only.
    let input = dir.path().join("nolabels.safetensors");
    let output = dir.path().join("nolabels.out.safetensors");
    write_input("llama", &input, false)?;
    let out = medtune(&[
        "model",
        "logits",
        "--model",
        model_dir("llama").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        output.to_str().unwrap(),
    ])?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = candle_core::safetensors::load(&output, &Device::Cpu)?;
    assert!(got.contains_key("logits"));
    assert!(!got.contains_key("loss"), "no labels, no loss");
    Ok(())
}

#[test]
fn bad_model_folders_exit_2_naming_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;

    // Missing folder.
    let missing = dir.path().join("no-such-model");
    let out = medtune(&["model", "inspect", missing.to_str().unwrap()])?;
    assert_clean_failure(&out, &["no-such-model"]);

    // Unknown model_type.
    let unknown = dir.path().join("unknown");
    std::fs::create_dir(&unknown)?;
    copy_model("llama", &unknown)?;
    let cfg = std::fs::read_to_string(unknown.join("config.json"))?
        .replace("\"model_type\": \"llama\"", "\"model_type\": \"mamba-xl\"");
    assert!(cfg.contains("mamba-xl"), "fixture config format changed");
    std::fs::write(unknown.join("config.json"), cfg)?;
    let out = medtune(&["model", "inspect", unknown.to_str().unwrap()])?;
    assert_clean_failure(&out, &["config.json", "model_type", "mamba-xl"]);

    // Truncated weights, for inspect and logits.
    let cut = dir.path().join("cut");
    std::fs::create_dir(&cut)?;
    copy_model("llama", &cut)?;
    let weights = cut.join("model.safetensors");
    let bytes = std::fs::read(&weights)?;
    std::fs::write(&weights, &bytes[..bytes.len() / 2])?;
    let out = medtune(&["model", "inspect", cut.to_str().unwrap()])?;
    assert_clean_failure(&out, &["model.safetensors"]);
    let input = dir.path().join("in.safetensors");
    write_input("llama", &input, true)?;
    let out = medtune(&[
        "model",
        "logits",
        "--model",
        cut.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        dir.path().join("o.safetensors").to_str().unwrap(),
    ])?;
    assert_clean_failure(&out, &["model.safetensors"]);
    assert!(!dir.path().join("o.safetensors").exists());
    Ok(())
}

#[test]
fn bad_logits_inputs_exit_2_naming_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let model = model_dir("llama");
    let run = |input: &Path| {
        medtune(&[
            "model",
            "logits",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            dir.path().join("o.safetensors").to_str().unwrap(),
        ])
    };

    // Missing input file.
    let out = run(&dir.path().join("absent.safetensors"))?;
    assert_clean_failure(&out, &["absent.safetensors"]);

    // Truncated input file.
    let good = dir.path().join("good.safetensors");
    write_input("llama", &good, true)?;
    let bytes = std::fs::read(&good)?;
    let cut = dir.path().join("cut-input.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 40])?;
    let out = run(&cut)?;
    assert_clean_failure(&out, &["cut-input.safetensors"]);

    // No `input_ids`.
    let no_ids = dir.path().join("no-ids.safetensors");
    let mut only_mask = HashMap::new();
    only_mask.insert(
        "attention_mask".to_string(),
        Tensor::ones((1, 4), DType::I64, &Device::Cpu)?,
    );
    candle_core::safetensors::save(&only_mask, &no_ids)?;
    let out = run(&no_ids)?;
    assert_clean_failure(&out, &["no-ids.safetensors", "input_ids"]);

    // A token id beyond the vocabulary (512).
    let oov = dir.path().join("oov.safetensors");
    let mut ids = HashMap::new();
    ids.insert(
        "input_ids".to_string(),
        Tensor::new(&[[1i64, 600, 3]], &Device::Cpu)?,
    );
    candle_core::safetensors::save(&ids, &oov)?;
    let out = run(&oov)?;
    assert_clean_failure(&out, &["600"]);
    assert!(!dir.path().join("o.safetensors").exists());
    Ok(())
}

#[test]
fn generate_runs_from_a_folder_holding_only_the_gguf() -> TestResult {
    let Some(gguf) = smollm_gguf() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let alone = dir.path().join(gguf.file_name().ok_or("file name")?);
    std::os::unix::fs::symlink(std::fs::canonicalize(&gguf)?, &alone)?;
    let out = medtune(&[
        "generate",
        "--model",
        dir.path().to_str().unwrap(),
        "--prompt",
        "What is the capital of France?",
        "--max-new-tokens",
        "12",
    ])?;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Greedy SmolLM2-135M-Instruct answers "The capital of France is Paris."; a wrong
    // tokenizer or template would not.
    assert!(stdout.contains("Paris"), "{stdout}");
    assert!(
        !stdout.contains("<|im_end|>"),
        "special tokens are not printed: {stdout}"
    );
    Ok(())
}

#[test]
fn generate_applies_a_peft_adapter_and_names_a_missing_one() -> TestResult {
    let model = model_dir("llama");
    let adapter = model.join("lora_adapter");
    let run = |adapter: &Path| {
        medtune(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--adapter",
            adapter.to_str().unwrap(),
            "--raw",
            "--prompt",
            "hello",
            "--max-new-tokens",
            "4",
        ])
    };
    let out = run(&adapter)?;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let missing = repo().join("fixtures/hf-tiny/models/llama/no_such_adapter");
    let out = run(&missing)?;
    assert_clean_failure(&out, &["no_such_adapter", "adapter_config.json"]);
    Ok(())
}

#[test]
fn fused_switches_come_from_the_environment_and_unknown_ops_are_refused() {
    let bin = env!("CARGO_BIN_EXE_medtune");
    let out = Command::new(bin)
        .args(["bench", "train", "--list-fused"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    for op in ["nf4", "adamw", "layer_backward"] {
        assert!(
            listed.lines().any(|l| l == op),
            "{op} missing from {listed}"
        );
    }
    let out = Command::new(bin)
        .args(["bench", "train", "--list-fused"])
        .env("MEDTUNE_UNFUSED", "nf4,bogus")
        .current_dir(repo())
        .output()
        .unwrap();
    assert_clean_failure(&out, &["MEDTUNE_UNFUSED", "bogus"]);
}
