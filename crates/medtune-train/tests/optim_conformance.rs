//! Optimizers against references: AdamW against hand-written float64 steps
//! (`tests/fixtures/adamw_reference.json`, from `make_adamw_reference.py`), 8-bit AdamW against
//! f32 AdamW on a small problem, exact resume through files for both, and gradient
//! accumulation against one large batch.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use medtune_train::optim::{
    AdamW, AdamW8bit, AdamW8bitConfig, AdamWConfig, GradAccumulator, Grads, NamedVar, Optimizer,
    OptimizerMeta, OptimizerState,
};
use serde::Deserialize;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Deserialize)]
struct Reference {
    config: AdamWConfig,
    shape: Vec<usize>,
    params: Vec<f32>,
    grads: Vec<Vec<f32>>,
    lrs: Vec<f64>,
    params_after_each_step: Vec<Vec<f64>>,
    exp_avg: Vec<f64>,
    exp_avg_sq: Vec<f64>,
}

fn max_rel(ours: &[f32], theirs: &[f64], floor: f64) -> f64 {
    ours.iter()
        .zip(theirs)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(floor))
        .fold(0.0, f64::max)
}

#[test]
fn adamw_matches_the_float64_reference() -> TestResult {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/adamw_reference.json");
    let r: Reference = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let dev = Device::Cpu;
    let var = Var::from_slice(&r.params, r.shape.as_slice(), &dev)?;
    let mut opt = AdamW::new(vec![("w".into(), var.clone())], r.config)?;
    for (t, (g, lr)) in r.grads.iter().zip(&r.lrs).enumerate() {
        let grads = Grads::new(vec![Tensor::from_slice(g, r.shape.as_slice(), &dev)?]);
        opt.step(&grads, *lr)?;
        let p = var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        let err = max_rel(&p, &r.params_after_each_step[t], 1.0);
        println!("step {}: max error {err:e}", t + 1);
        assert!(err < 1e-6, "step {}: {err}", t + 1);
    }
    let state = opt.state()?;
    let m = state.tensors["w.exp_avg"].flatten_all()?.to_vec1::<f32>()?;
    let v = state.tensors["w.exp_avg_sq"]
        .flatten_all()?
        .to_vec1::<f32>()?;
    let (em, ev) = (
        max_rel(&m, &r.exp_avg, 1e-12),
        max_rel(&v, &r.exp_avg_sq, 1e-20),
    );
    println!("exp_avg max rel error {em:e}, exp_avg_sq {ev:e}");
    assert!(em < 1e-5 && ev < 1e-5);
    assert_eq!(state.meta.step, 4);
    Ok(())
}

/// Deterministic pseudo-random values in [-1, 1) (64-bit LCG).
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

/// Gradient of ½ Σ aᵢ (wᵢ − tᵢ)² (a badly conditioned quadratic), plus its value.
fn quadratic(w: &Tensor, a: &Tensor, target: &Tensor) -> candle_core::Result<(Tensor, f32)> {
    let d = (w - target)?;
    let loss = (d.sqr()? * a)?.sum_all()?.to_scalar::<f32>()? * 0.5;
    Ok(((d * a)?, loss))
}

fn params(seed: u64, dims: (usize, usize)) -> candle_core::Result<Vec<NamedVar>> {
    let dev = Device::Cpu;
    Ok(vec![
        (
            "big".to_string(),
            Var::from_vec(lcg_values(dims.0 * dims.1, seed), dims, &dev)?,
        ),
        (
            "small".to_string(),
            Var::from_vec(lcg_values(96, seed + 1), (8, 12), &dev)?,
        ),
    ])
}

#[test]
fn adamw8bit_tracks_f32_adamw() -> TestResult {
    let dev = Device::Cpu;
    let dims = (64, 128);
    let a = Tensor::from_vec(
        lcg_values(dims.0 * dims.1, 3)
            .iter()
            .map(|v| 0.1 + 10.0 * v.abs())
            .collect::<Vec<_>>(),
        dims,
        &dev,
    )?;
    let target = Tensor::from_vec(lcg_values(dims.0 * dims.1, 4), dims, &dev)?;
    let p32 = params(1, dims)?;
    let p8 = params(1, dims)?;
    let start = p32[0].1.as_tensor().copy()?;
    let mut f32_opt = AdamW::new(
        p32.clone(),
        AdamWConfig {
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let config8 = AdamW8bitConfig {
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt8 = AdamW8bit::new(p8.clone(), config8)?;
    let (mut loss32, mut loss8) = (0.0, 0.0);
    let initial = quadratic(&start, &a, &target)?.1;
    for _ in 0..150 {
        let (g32, l32) = quadratic(p32[0].1.as_tensor(), &a, &target)?;
        let (g8, l8) = quadratic(p8[0].1.as_tensor(), &a, &target)?;
        let small32 = p32[1].1.as_tensor().affine(0.5, 0.0)?;
        let small8 = p8[1].1.as_tensor().affine(0.5, 0.0)?;
        f32_opt.step(&Grads::new(vec![g32, small32]), 1e-2)?;
        opt8.step(&Grads::new(vec![g8, small8]), 1e-2)?;
        (loss32, loss8) = (l32, l8);
    }
    let w32 = p32[0].1.as_tensor();
    let w8 = p8[0].1.as_tensor();
    let moved = (w32 - &start)?.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt();
    let apart = (w32 - w8)?.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt();
    println!(
        "loss {initial:.3} -> f32 AdamW {loss32:.4}, 8-bit {loss8:.4}; \
         ‖w8 − w32‖ / ‖w32 − w0‖ = {:.4}; 8-bit state {} bytes for {} params",
        apart / moved,
        opt8.state_bytes(),
        dims.0 * dims.1 + 96
    );
    assert!(loss8 < 0.05 * initial, "8-bit AdamW did not converge");
    assert!(
        (loss8 - loss32).abs() < 0.1 * loss32.max(1e-3),
        "{loss8} vs {loss32}"
    );
    assert!(
        apart / moved < 0.05,
        "trajectories diverge: {}",
        apart / moved
    );
    // The small parameter stays in f32 (below min_8bit_size) and follows the bitsandbytes
    // update, which equals torch's when weight decay is 0.
    let s = (p32[1].1.as_tensor() - p8[1].1.as_tensor())?
        .abs()?
        .flatten_all()?
        .max(0)?;
    assert!(s.to_scalar::<f32>()? < 1e-5);
    // 8192 params quantized (2 bytes + 2·4/256), 96 in f32 (8 bytes).
    assert_eq!(opt8.state_bytes(), 8192 * 2 + 32 * 4 * 2 + 96 * 8);
    Ok(())
}

/// Saves a state the way a checkpoint does (safetensors + JSON) and reads it back.
fn round_trip(
    state: &OptimizerState,
    dir: &Path,
) -> Result<OptimizerState, Box<dyn std::error::Error>> {
    let st = dir.join("optimizer.safetensors");
    let js = dir.join("optimizer.json");
    candle_core::safetensors::save(&state.tensors, &st)?;
    std::fs::write(&js, serde_json::to_string(&state.meta)?)?;
    let tensors: HashMap<String, Tensor> = candle_core::safetensors::load(&st, &Device::Cpu)?;
    let meta: OptimizerMeta = serde_json::from_str(&std::fs::read_to_string(&js)?)?;
    Ok(OptimizerState { tensors, meta })
}

fn run_steps(opt: &mut dyn Optimizer, steps: std::ops::Range<u64>) -> TestResult {
    for step in steps {
        let grads = opt
            .params()
            .iter()
            .enumerate()
            .map(|(i, (_, v))| {
                let g = lcg_values(v.elem_count(), 100 * step + i as u64);
                Tensor::from_vec(g, v.dims(), v.device())
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        opt.step(&Grads::new(grads), 1e-3 * (1.0 + step as f64))?;
    }
    Ok(())
}

fn values(params: &[NamedVar]) -> candle_core::Result<Vec<Vec<u32>>> {
    params
        .iter()
        .map(|(_, v)| {
            Ok(v.as_tensor()
                .flatten_all()?
                .to_vec1::<f32>()?
                .into_iter()
                .map(f32::to_bits)
                .collect())
        })
        .collect()
}

#[test]
fn resume_from_saved_state_is_bit_exact() -> TestResult {
    let dir = tempfile::tempdir()?;
    type Make = fn(Vec<NamedVar>) -> Box<dyn Optimizer>;
    let makers: [(&str, Make); 2] = [
        ("adamw", |p| {
            Box::new(AdamW::new(p, AdamWConfig::default()).expect("valid config"))
        }),
        ("adamw8bit", |p| {
            Box::new(AdamW8bit::new(p, AdamW8bitConfig::default()).expect("valid config"))
        }),
    ];
    for (kind, make) in makers {
        let straight = params(9, (32, 160))?;
        let mut a = make(straight.clone());
        run_steps(a.as_mut(), 0..6)?;

        let resumed = params(9, (32, 160))?;
        let mut b = make(resumed.clone());
        run_steps(b.as_mut(), 0..3)?;
        let saved = round_trip(&b.state()?, dir.path())?;
        // A fresh optimizer over the same parameter values, as after a restart.
        let mut c = make(resumed.clone());
        c.load_state(&saved)?;
        assert_eq!(c.steps_taken(), 3);
        run_steps(c.as_mut(), 3..6)?;
        assert_eq!(
            values(&straight)?,
            values(&resumed)?,
            "{kind}: resume differs"
        );
        println!("{kind}: resumed run identical to the uninterrupted one after 6 steps");
    }
    Ok(())
}

#[test]
fn mismatched_state_is_rejected() -> TestResult {
    let p = params(2, (16, 16))?;
    let a = AdamW::new(p.clone(), AdamWConfig::default())?;
    let state = a.state()?;
    let mut other = AdamW::new(
        p.clone(),
        AdamWConfig {
            beta2: 0.95,
            ..Default::default()
        },
    )?;
    let err = other.load_state(&state).map_err(|e| e.to_string());
    assert!(err.is_err_and(|e| e.contains("config")));
    let mut eight = AdamW8bit::new(p.clone(), AdamW8bitConfig::default())?;
    assert!(eight
        .load_state(&state)
        .is_err_and(|e| e.to_string().contains("kind")));
    let fewer = vec![p[0].clone()];
    let mut short = AdamW::new(fewer, AdamWConfig::default())?;
    assert!(short
        .load_state(&state)
        .is_err_and(|e| e.to_string().contains("params")));
    let mut broken = state.clone();
    broken.tensors.remove("big.exp_avg");
    let mut same = AdamW::new(p, AdamWConfig::default())?;
    assert!(same
        .load_state(&broken)
        .is_err_and(|e| e.to_string().contains("big.exp_avg")));
    Ok(())
}

#[test]
fn accumulated_micro_batches_equal_one_big_batch() -> TestResult {
    let dev = Device::Cpu;
    let w = Var::from_vec(lcg_values(4 * 3, 5), (4, 3), &dev)?; // [in, out]
    let x = Tensor::from_vec(lcg_values(10 * 4, 6), (10, 4), &dev)?; // [N, in]
    let y = Tensor::from_vec(lcg_values(10 * 3, 7), (10, 3), &dev)?; // [N, out]
    let named = vec![("w".to_string(), w.clone())];
    let sse = |x: &Tensor, y: &Tensor| -> candle_core::Result<Tensor> {
        (x.matmul(w.as_tensor())? - y)?.sqr()?.sum_all()
    };
    // One batch of 10, loss normalised by 10.
    let full = Grads::from_store(&sse(&x, &y)?.backward()?, &named)?.scale(1.0 / 10.0)?;
    // Micro-batches of 3, 3 and 4 rows: sum the summed losses' gradients, then divide by 10.
    let mut acc = GradAccumulator::new();
    for (start, len) in [(0, 3), (3, 3), (6, 4)] {
        let loss = sse(&x.narrow(0, start, len)?, &y.narrow(0, start, len)?)?;
        acc.add(&Grads::from_store(&loss.backward()?, &named)?)?;
    }
    let summed = acc.take().ok_or("nothing accumulated")?.scale(1.0 / 10.0)?;
    let diff = (&full.tensors()[0] - &summed.tensors()[0])?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f32>()?;
    println!("accumulated vs full batch gradient: max |diff| {diff:e}");
    assert!(diff < 1e-6);
    // A parameter outside the loss has no gradient: a named error, not a silent zero.
    let unused = Var::zeros(2, DType::F32, &dev)?;
    let err = Grads::from_store(&sse(&x, &y)?.backward()?, &[("unused".into(), unused)]);
    assert!(err.is_err_and(|e| e.to_string().contains("unused")));
    Ok(())
}
