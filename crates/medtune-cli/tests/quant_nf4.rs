//! `medtune quant nf4` end to end: feed the fixture's input weights (named by shape) and check
//! that the output file reproduces `fixtures/hf-tiny/nf4/nf4.safetensors` bit for bit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture() -> Result<HashMap<String, Tensor>, Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/hf-tiny/nf4/nf4.safetensors");
    Ok(candle_core::safetensors::load(&path, &Device::Cpu)?)
}

fn bits(t: &Tensor) -> Result<Vec<u32>, candle_core::Error> {
    let flat = t.flatten_all()?;
    match t.dtype() {
        DType::U8 => Ok(flat.to_vec1::<u8>()?.into_iter().map(u32::from).collect()),
        _ => Ok(flat
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f32::to_bits)
            .collect()),
    }
}

fn medtune(args: &[&str], dir: &Path) -> std::io::Result<std::process::Output> {
    Command::new(env!("CARGO_BIN_EXE_medtune"))
        .args(args)
        .current_dir(dir)
        .output()
}

#[test]
fn quant_nf4_reproduces_the_bitsandbytes_fixture() -> TestResult {
    let fx = fixture()?;
    let dir = tempfile::tempdir()?;
    let mut input = HashMap::new();
    for shape in ["64x128", "96x64", "256x200"] {
        input.insert(shape.to_string(), fx[&format!("W.{shape}")].clone());
    }
    // A 1-D tensor is skipped when no --tensor is given.
    input.insert(
        "norm".to_string(),
        Tensor::ones(64, DType::F32, &Device::Cpu)?,
    );
    candle_core::safetensors::save(&input, dir.path().join("W.safetensors"))?;

    for (flag, suffix) in [(None, "dq0"), (Some("--double-quant"), "dq1")] {
        let out_name = format!("Q.{suffix}.safetensors");
        let mut args = vec![
            "quant",
            "nf4",
            "--input",
            "W.safetensors",
            "--out",
            &out_name,
        ];
        args.extend(flag);
        let run = medtune(&args, dir.path())?;
        let stdout = String::from_utf8_lossy(&run.stdout);
        println!("{stdout}{}", String::from_utf8_lossy(&run.stderr));
        assert!(run.status.success());
        assert!(stdout.contains("3 tensors, 65536 weights"));
        let out = candle_core::safetensors::load(dir.path().join(&out_name), &Device::Cpu)?;
        let expected: Vec<&String> = fx.keys().filter(|k| k.ends_with(suffix)).collect();
        assert_eq!(out.len(), expected.len(), "tensor count");
        for name in expected {
            let ours = out
                .get(name)
                .ok_or_else(|| format!("output lacks `{name}`"))?;
            assert_eq!(ours.dims(), fx[name].dims(), "{name}");
            assert_eq!(ours.dtype(), fx[name].dtype(), "{name}");
            assert!(bits(ours)? == bits(&fx[name])?, "{name} differs");
        }
        assert!(!dir.path().join(format!(".{out_name}.tmp")).exists());
    }
    Ok(())
}

#[test]
fn quant_nf4_selects_tensors_and_reports_bad_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut input = HashMap::new();
    input.insert(
        "a".to_string(),
        Tensor::ones((4, 64), DType::F32, &Device::Cpu)?,
    );
    input.insert(
        "b".to_string(),
        Tensor::ones((2, 64), DType::BF16, &Device::Cpu)?,
    );
    input.insert("v".to_string(), Tensor::ones(8, DType::F32, &Device::Cpu)?);
    candle_core::safetensors::save(&input, dir.path().join("W.safetensors"))?;

    let ok = medtune(
        &[
            "quant",
            "nf4",
            "--input",
            "W.safetensors",
            "--out",
            "Q.safetensors",
            "--tensor",
            "b",
        ],
        dir.path(),
    )?;
    assert!(ok.status.success());
    let out = candle_core::safetensors::load(dir.path().join("Q.safetensors"), &Device::Cpu)?;
    let mut names: Vec<&String> = out.keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "absmax.b.dq0",
            "code.b.dq0",
            "dequant.b.dq0",
            "packed.b.dq0"
        ]
    );

    for (tensor, message) in [("v", "needs a 2-D float tensor"), ("zz", "no tensor `zz`")] {
        let bad = medtune(
            &[
                "quant",
                "nf4",
                "--input",
                "W.safetensors",
                "--out",
                "X.safetensors",
                "--tensor",
                tensor,
            ],
            dir.path(),
        )?;
        assert_eq!(bad.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&bad.stderr).contains(message));
        assert!(!dir.path().join("X.safetensors").exists());
    }
    Ok(())
}
