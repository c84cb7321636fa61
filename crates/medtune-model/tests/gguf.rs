//! GGUF loading: a tiny GGUF written from the llama fixture (Q/K rows permuted the llama.cpp
//! way) must give HF's logits exactly in F32 and closely when quantized; the tied head is used
//! when `output.weight` is absent; quantized layers pass gradients to their input.

mod common;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Module, Tensor, Var};
use common::{model_dir, oracle, rel_and_max};
use medtune_model::gguf::permute_rows;
use medtune_model::{load, BaseWeight, ForwardInput, Linear, LoadOptions};
use std::collections::HashMap;
use std::path::Path;

/// HF name → GGUF name for the llama fixture.
fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = map.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, tail) = rest.split_once('.').unwrap();
    let module = match tail {
        "input_layernorm.weight" => "attn_norm",
        "post_attention_layernorm.weight" => "ffn_norm",
        "self_attn.q_proj.weight" => "attn_q",
        "self_attn.k_proj.weight" => "attn_k",
        "self_attn.v_proj.weight" => "attn_v",
        "self_attn.o_proj.weight" => "attn_output",
        "mlp.gate_proj.weight" => "ffn_gate",
        "mlp.up_proj.weight" => "ffn_up",
        "mlp.down_proj.weight" => "ffn_down",
        other => panic!("unexpected tensor {other}"),
    };
    format!("blk.{layer}.{module}.weight")
}

/// Writes the llama fixture as GGUF: matrices in `matrix_type`, norms F32.
fn write_llama_gguf(path: &Path, matrix_type: GgmlDType, with_output: bool) {
    let dev = Device::Cpu;
    let tensors =
        candle_core::safetensors::load(model_dir("llama").join("model.safetensors"), &dev).unwrap();
    let mut q: Vec<(String, QTensor)> = Vec::new();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for hf in names {
        if hf == "lm_head.weight" && !with_output {
            continue;
        }
        let t = &tensors[hf];
        let kind = if t.rank() == 1 {
            GgmlDType::F32
        } else {
            matrix_type
        };
        let mut qt = QTensor::quantize(t, kind).unwrap();
        if hf.ends_with("q_proj.weight") {
            qt = permute_rows(&qt, 4, &dev, true).unwrap();
        } else if hf.ends_with("k_proj.weight") {
            qt = permute_rows(&qt, 2, &dev, true).unwrap();
        }
        q.push((gguf_name(hf), qt));
    }
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.embedding_length", Value::U32(64)),
        ("llama.block_count", Value::U32(2)),
        ("llama.feed_forward_length", Value::U32(128)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(10_000.0)),
        ("llama.context_length", Value::U32(256)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        (
            "tokenizer.chat_template",
            Value::String("{{ messages[0]['content'] }}".into()),
        ),
    ];
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = q.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

fn logits_of(path: &Path) -> Tensor {
    let m = load(path, &LoadOptions::default()).unwrap();
    let o = oracle("llama");
    m.model
        .forward(&ForwardInput::with_mask(
            &o["input_ids"],
            &o["attention_mask"],
        ))
        .unwrap()
}

#[test]
fn f32_gguf_reproduces_hf_logits_through_the_qk_permutation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_llama_gguf(&path, GgmlDType::F32, true);
    let (rel, max) = rel_and_max(&logits_of(&path), &oracle("llama")["logits"]);
    println!("gguf F32 vs HF: rel {rel:.2e} max {max:.2e}");
    assert!(rel < 1e-4, "{rel}");
}

#[test]
fn quantized_gguf_stays_close_to_hf() {
    // Activations are quantized to 8 bits inside GGML's matmul, so even Q8_0 is not exact; the
    // random-init fixture's small logits make 4-bit errors look large in relative terms.
    let cases = [
        (GgmlDType::F16, 1e-3),
        (GgmlDType::Q8_0, 3e-2),
        (GgmlDType::Q4_1, 2.5e-1),
        (GgmlDType::Q4_0, 2.5e-1),
    ];
    for (kind, tol) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tiny.gguf");
        write_llama_gguf(&path, kind, true);
        let m = load(&path, &LoadOptions::default()).unwrap();
        let q_proj = m.model.linears()[0];
        let quantized = matches!(q_proj.base(), BaseWeight::Quantized(_));
        assert_eq!(
            quantized,
            kind != GgmlDType::F16,
            "{kind:?}: only GGML block types stay quantized"
        );
        let (rel, max) = rel_and_max(&logits_of(&path), &oracle("llama")["logits"]);
        println!("gguf {kind:?} vs HF: rel {rel:.2e} max {max:.2e}");
        assert!(rel < tol, "{kind:?}: {rel}");
    }
}

#[test]
fn missing_output_weight_ties_the_head_to_the_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tied.gguf");
    write_llama_gguf(&path, GgmlDType::F32, false);
    let m = load(&path, &LoadOptions::default()).unwrap();
    assert!(m.config.tie_word_embeddings);
    assert_eq!(m.eos_token_ids, vec![2]);
    assert!(m.chat_template.is_some());
    // Reference: the safetensors model with lm_head replaced by the embedding.
    let st_dir = tempfile::tempdir().unwrap();
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(model_dir("llama").join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let embed = tensors["model.embed_tokens.weight"].clone();
    tensors.insert("lm_head.weight".into(), embed);
    candle_core::safetensors::save(&tensors, st_dir.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        model_dir("llama").join("config.json"),
        st_dir.path().join("config.json"),
    )
    .unwrap();
    let (rel, _) = rel_and_max(&logits_of(&path), &logits_of(st_dir.path()));
    assert!(rel < 1e-6, "{rel}");
}

#[test]
fn truncated_gguf_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    write_llama_gguf(&path, GgmlDType::Q8_0, true);
    let bytes = std::fs::read(&path).unwrap();
    for keep in [bytes.len() - 100, bytes.len() / 2, 200, 10] {
        std::fs::write(&path, &bytes[..keep]).unwrap();
        let e = load(&path, &LoadOptions::default())
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.contains("cut.gguf"), "{keep}: {e}");
    }
}

#[test]
fn quantized_linear_passes_input_gradients() {
    // K-quants need rows of 256; the gradient must be dy · dequant(W).
    let dev = Device::Cpu;
    let w: Vec<f32> = (0..32 * 256)
        .map(|i| ((i * 7919 % 1000) as f32 / 1000.0) - 0.5)
        .collect();
    let w = Tensor::from_vec(w, (32, 256), &dev).unwrap();
    for kind in [
        GgmlDType::Q4K,
        GgmlDType::Q6K,
        GgmlDType::Q8_0,
        GgmlDType::Q4_0,
    ] {
        let q = std::sync::Arc::new(QTensor::quantize(&w, kind).unwrap());
        let wd = q.dequantize(&dev).unwrap();
        let lin = Linear::new("test", BaseWeight::Quantized(q), None);
        let x: Vec<f32> = (0..2 * 3 * 256)
            .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5)
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(x, (2, 3, 256), &dev).unwrap()).unwrap();
        let y = lin.forward(x.as_tensor()).unwrap();
        let dense = x.as_tensor().broadcast_matmul(&wd.t().unwrap()).unwrap();
        let (rel_fwd, _) = rel_and_max(&y, &dense);
        let g = Tensor::arange(0f32, 2. * 3. * 32., &dev)
            .unwrap()
            .reshape((2, 3, 32))
            .unwrap();
        let grads = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let dx = grads.get(x.as_tensor()).expect("input gradient");
        // d/dx Σ g ⊙ (x Wᵀ) = g W
        let want = g.broadcast_matmul(&wd).unwrap();
        let (rel_bwd, _) = rel_and_max(dx, &want);
        println!("{kind:?}: forward rel {rel_fwd:.2e}, dx rel {rel_bwd:.2e}");
        assert!(rel_fwd < 2e-2, "{kind:?} forward {rel_fwd}");
        assert!(rel_bwd < 1e-6, "{kind:?} backward {rel_bwd}");
        assert_eq!(dx.dtype(), DType::F32);
    }
}

#[test]
fn quantized_matmul_matches_dense_at_smollm_shapes() {
    let dev = Device::Cpu;
    for (out_dim, in_dim) in [(1536usize, 576usize), (576, 1536), (192, 576)] {
        let w: Vec<f32> = (0..out_dim * in_dim)
            .map(|i| ((i * 7919 % 1013) as f32 / 1013.0) - 0.5)
            .collect();
        let w = Tensor::from_vec(w, (out_dim, in_dim), &dev).unwrap();
        for kind in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let q = std::sync::Arc::new(QTensor::quantize(&w, kind).unwrap());
            let wd = q.dequantize(&dev).unwrap();
            let lin = Linear::new("test", BaseWeight::Quantized(q), None);
            for rows in [1usize, 3, 37] {
                // Non-zero block sums: Q4_1's per-block minimum multiplies Σx.
                let x: Vec<f32> = (0..rows * in_dim)
                    .map(|i| ((i * 31 % 97) as f32 / 97.0) + 0.3)
                    .collect();
                let x = Tensor::from_vec(x, (1, rows, in_dim), &dev).unwrap();
                let y = lin.forward(&x).unwrap();
                let dense = x.broadcast_matmul(&wd.t().unwrap()).unwrap();
                let (rel, _) = rel_and_max(&y, &dense);
                println!("{kind:?} [{out_dim}x{in_dim}] rows {rows}: rel {rel:.2e}");
                assert!(rel < 2e-2, "{kind:?} {out_dim}x{in_dim} rows {rows}: {rel}");
            }
        }
    }
}
