//! Shared helpers for the integration tests: fixture paths and tensor comparison.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// The six fixture architectures.
pub const ARCHS: [&str; 6] = ["llama", "qwen2", "mistral", "phi3", "phi", "gpt2"];

/// `<repo>/fixtures/hf-tiny`.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hf-tiny")
}

/// `<repo>/fixtures/hf-tiny/models/<arch>`.
pub fn model_dir(arch: &str) -> PathBuf {
    fixtures().join("models").join(arch)
}

/// The oracle tensors of one architecture.
pub fn oracle(arch: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(model_dir(arch).join("oracle.safetensors"), &Device::Cpu)
        .expect("oracle.safetensors")
}

/// A number from `oracle.json`.
pub fn oracle_json(arch: &str, key: &str) -> f64 {
    let text = std::fs::read_to_string(model_dir(arch).join("oracle.json")).expect("oracle.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v[key].as_f64().expect("number")
}

/// ‖a − b‖ / ‖b‖ and max |a − b|.
pub fn rel_and_max(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let a = a.to_dtype(candle_core::DType::F64).unwrap();
    let b = b.to_dtype(candle_core::DType::F64).unwrap();
    let d = (&a - &b).unwrap();
    let num: f64 = d.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
    let den: f64 = b.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
    let max: f64 = d.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    (num.sqrt() / den.sqrt(), max)
}

/// Row `r` of an integer [B, T] tensor as u32s.
pub fn row_u32(t: &Tensor, r: usize) -> Vec<u32> {
    t.get(r)
        .unwrap()
        .to_dtype(candle_core::DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|x| x as u32)
        .collect()
}
