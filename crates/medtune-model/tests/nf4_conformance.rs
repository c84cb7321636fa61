//! NF4 conformance with bitsandbytes 0.50.2 (`fixtures/hf-tiny/nf4/nf4.safetensors`, made by
//! `quantize_4bit(W.bfloat16(), blocksize=64, quant_type="nf4")` with and without double
//! quantization). Packed bytes and every scale tensor must be identical; dequantized weights
//! must match within 1e-6 (they are bf16 in bitsandbytes, so bit-equal in practice).

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, Var};
use medtune_model::nf4::{dynamic_map, Nf4Options, Nf4Tensor};

const SHAPES: [&str; 3] = ["64x128", "96x64", "256x200"];
const DEQUANT_TOLERANCE: f32 = 1e-6;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn fixture() -> Result<HashMap<String, Tensor>, Box<dyn std::error::Error>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/hf-tiny/nf4/nf4.safetensors");
    Ok(candle_core::safetensors::load(&path, &Device::Cpu)?)
}

fn get<'a>(map: &'a HashMap<String, Tensor>, name: &str) -> Result<&'a Tensor, String> {
    map.get(name)
        .ok_or_else(|| format!("fixture has no tensor `{name}`"))
}

/// Bytes of a tensor (u8 as is, f32 as bit patterns), for exact comparison.
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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32, candle_core::Error> {
    (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

#[test]
fn nf4_matches_bitsandbytes_bit_for_bit() -> TestResult {
    let fx = fixture()?;
    for shape in SHAPES {
        let w = get(&fx, &format!("W.{shape}"))?;
        for (dq, suffix) in [(false, "dq0"), (true, "dq1")] {
            let tag = format!("{shape}.{suffix}");
            let options = Nf4Options {
                double_quant: dq,
                round_to_bf16: true,
            };
            let q = Nf4Tensor::quantize(w, options)?;
            let ours = q.to_safetensors_map(&tag)?;
            let mut names: Vec<&String> = ours.keys().collect();
            names.sort();
            for name in names {
                let mine = &ours[name];
                let theirs = get(&fx, name)?;
                assert_eq!(mine.dtype(), theirs.dtype(), "{name}: dtype");
                assert_eq!(mine.dims(), theirs.dims(), "{name}: shape");
                let (a, b) = (bits(mine)?, bits(theirs)?);
                let mismatches = a.iter().zip(&b).filter(|(x, y)| x != y).count();
                println!("{name}: {mismatches} of {} differ", a.len());
                assert_eq!(mismatches, 0, "{name} differs from bitsandbytes");
            }
            let expected = get(&fx, &format!("dequant.{tag}"))?;
            let deq = q.dequantize(DType::BF16)?.to_dtype(DType::F32)?;
            let diff = max_abs_diff(&deq, expected)?;
            let deq32 = q.dequantize(DType::F32)?;
            let diff32 = max_abs_diff(&deq32, expected)?;
            println!(
                "dequant.{tag}: max |diff| {diff:e} (bf16 output), {diff32:e} (f32 output, \
                 differs by bf16 rounding only); bits/param {:.4}",
                q.bits_per_parameter()
            );
            assert!(diff <= DEQUANT_TOLERANCE, "dequant.{tag}: {diff}");

            // The fixture's own state, read back, dequantizes the same way.
            let dims = w.dims().to_vec();
            let loaded = Nf4Tensor::from_parts(&fx, &tag, &dims)?;
            let diff_loaded = max_abs_diff(
                &loaded.dequantize(DType::BF16)?.to_dtype(DType::F32)?,
                expected,
            )?;
            assert!(
                diff_loaded <= DEQUANT_TOLERANCE,
                "from_parts {tag}: {diff_loaded}"
            );
        }
    }
    Ok(())
}

#[test]
fn signed_dynamic_map_matches_bitsandbytes() -> TestResult {
    let fx = fixture()?;
    let theirs = bits(get(&fx, "state2_code.64x128.dq1")?)?;
    let ours: Vec<u32> = dynamic_map(true).iter().map(|v| v.to_bits()).collect();
    assert_eq!(ours, theirs);
    Ok(())
}

#[test]
fn missing_or_misshapen_parts_are_errors() -> TestResult {
    let fx = fixture()?;
    let err = Nf4Tensor::from_parts(&fx, "64x128.dq7", &[64, 128]);
    assert!(err.is_err_and(|e| e.to_string().contains("packed.64x128.dq7")));
    let err = Nf4Tensor::from_parts(&fx, "64x128.dq0", &[64, 64]);
    assert!(err.is_err_and(|e| e.to_string().contains("packed.64x128.dq0")));
    Ok(())
}

/// Small deterministic pseudo-random values in [-1, 1) (64-bit LCG).
fn lcg_values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn frozen_linear_matches_dense_matmul_and_passes_gradients_to_x() -> TestResult {
    let dev = Device::Cpu;
    let w = Tensor::from_vec(lcg_values(96 * 64, 7), (96, 64), &dev)?; // [out, in]
    let q = Nf4Tensor::quantize(
        &w,
        Nf4Options {
            double_quant: true,
            ..Default::default()
        },
    )?;
    let x = Var::from_vec(lcg_values(2 * 3 * 64, 11), (2, 3, 64), &dev)?; // [B, T, in]
    let y = q.forward(x.as_tensor())?; // [B, T, out]
    assert_eq!(y.dims(), &[2, 3, 96]);
    let wd = q.dequantize(DType::F32)?;
    let dense = x.as_tensor().broadcast_matmul(&wd.t()?)?;
    let diff = max_abs_diff(&y, &dense)?;
    println!("forward vs dense: max |diff| {diff:e}");
    assert!(diff < 1e-5);

    // d(sum y)/dx = ones · W → every row equals the column sums of W.
    let grads = y.sum_all()?.backward()?;
    let gx = grads.get(x.as_tensor()).ok_or("x got no gradient")?;
    let col_sums = wd.sum(0)?; // [in]
    let expected = col_sums.broadcast_as((2, 3, 64))?;
    let gdiff = max_abs_diff(gx, &expected)?;
    println!("grad x vs ones·W: max |diff| {gdiff:e}");
    assert!(gdiff < 1e-5);
    Ok(())
}
