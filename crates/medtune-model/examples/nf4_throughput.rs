//! Prints NF4 quantize / dequantize / frozen-linear throughput on the CPU for one
//! Llama-3.2-1B-sized projection (2048 × 8192). A figure printer, not a test.
//!
//! Run: `cargo run --release -p medtune-model --example nf4_throughput`

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use medtune_model::nf4::{Nf4Options, Nf4Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (out_f, in_f) = (2048usize, 8192usize);
    let n = out_f * in_f;
    let mut state = 42u64;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.05
        })
        .collect();
    let w = Tensor::from_vec(values, (out_f, in_f), &Device::Cpu)?;
    for dq in [false, true] {
        let options = Nf4Options {
            double_quant: dq,
            ..Default::default()
        };
        let t = Instant::now();
        let q = Nf4Tensor::quantize(&w, options)?;
        let quant_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let reps = 5;
        for _ in 0..reps {
            q.dequantize(DType::F32)?;
        }
        let deq_s = t.elapsed().as_secs_f64() / reps as f64;
        let x = Tensor::ones((4, in_f), DType::F32, &Device::Cpu)?;
        let t = Instant::now();
        q.forward(&x)?;
        let fwd_s = t.elapsed().as_secs_f64();
        println!(
            "double_quant={dq}: {:.4} bits/param; quantize {:.0} Mweights/s; dequantize {:.0} \
             Mweights/s; forward [4, {in_f}]·Wᵀ {:.1} ms",
            q.bits_per_parameter(),
            n as f64 / quant_s / 1e6,
            n as f64 / deq_s / 1e6,
            fwd_s * 1e3
        );
    }
    Ok(())
}
