//! The candle BERT encoder against a float64 numpy BERT on the same
//! all-MiniLM-L6-v2 weights (`tests/fixtures/embedding.json`).
//!
//! Needs the model files: `$MEDTUNE_MINILM_DIR` or `<repo>/models/all-minilm-l6-v2/`
//! (config.json, model.safetensors, tokenizer.json). Without them each test prints
//! a skip line and returns.

use candle_core::{DType, Device};
use medtune_eval::metrics::embedding::{cosine, Encoder};
use serde_json::Value;
use std::path::PathBuf;

fn model_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("MEDTUNE_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-minilm-l6-v2")
        });
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        println!(
            "SKIP: no all-MiniLM-L6-v2 weights in {} (set MEDTUNE_MINILM_DIR)",
            dir.display()
        );
        None
    }
}

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/embedding.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixture")).expect("json")
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("f64"))
        .collect()
}

fn check(dtype: DType, tol: f64) {
    let Some(dir) = model_dir() else { return };
    let enc = Encoder::load(&dir, dtype, &Device::Cpu).expect("load encoder");
    let f = fixture();
    let mut max_diff: f64 = 0.0;
    for t in f["texts"].as_array().expect("texts") {
        let text = t["text"].as_str().expect("text");
        let ids: Vec<u32> = serde_json::from_value(t["ids"].clone()).expect("ids");
        assert_eq!(
            enc.token_ids(text).expect("ids"),
            ids,
            "token ids of {text:?}"
        );
        let got = enc.sentence_embedding(text).expect("embed");
        for (g, w) in got.iter().zip(floats(&t["mean_pooled"])) {
            max_diff = max_diff.max((g - w).abs());
        }
    }
    println!("{dtype:?}: mean-pooled embeddings max abs diff {max_diff:e}");
    assert!(max_diff <= tol, "embedding diff {max_diff} > {tol}");
    let mut max_diff: f64 = 0.0;
    for p in f["pairs"].as_array().expect("pairs") {
        let (h, r) = (
            p["hypothesis"].as_str().expect("h"),
            p["reference"].as_str().expect("r"),
        );
        let bs = enc.bert_score(h, r).expect("bertscore");
        let want = floats(&p["bertscore"]);
        for (g, w) in [bs.precision, bs.recall, bs.f1].into_iter().zip(want) {
            max_diff = max_diff.max((g - w).abs());
        }
        let cos = enc.sentence_cosine(h, r).expect("cosine");
        max_diff = max_diff.max((cos - p["cosine"].as_f64().expect("cos")).abs());
    }
    println!("{dtype:?}: BERTScore and cosine max abs diff {max_diff:e}");
    assert!(max_diff <= tol, "similarity diff {max_diff} > {tol}");
}

#[test]
fn f64_encoder_matches_numpy_reference_to_1e6() {
    check(DType::F64, 1e-6);
}

#[test]
fn f32_encoder_matches_numpy_reference_to_1e4() {
    check(DType::F32, 1e-4);
}

#[test]
fn similar_sentences_score_higher_than_unrelated() {
    let Some(dir) = model_dir() else { return };
    let enc = Encoder::load(&dir, DType::F32, &Device::Cpu).expect("load encoder");
    let a = enc
        .sentence_embedding("The patient has a high fever.")
        .expect("a");
    let b = enc
        .sentence_embedding("The patient is running a temperature.")
        .expect("b");
    let c = enc
        .sentence_embedding("Quarterly revenue grew sharply.")
        .expect("c");
    assert!(cosine(&a, &b) > cosine(&a, &c) + 0.2);
}
