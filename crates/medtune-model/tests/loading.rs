//! Config variants, sharded safetensors, and every kind of bad input: each must be an error
//! naming the file and the tensor or field, never a panic.
#![allow(clippy::result_large_err)]

mod common;

use candle_core::{Device, Tensor};
use common::{model_dir, oracle, rel_and_max};
use medtune_model::{load, ForwardInput, LoadOptions, ModelConfig, RopeScaling};
use std::collections::HashMap;
use std::path::Path;

fn parse(text: &str) -> medtune_model::Result<ModelConfig> {
    ModelConfig::from_json_str(text, Path::new("cfg/config.json"))
}

const BASE: &str = r#""model_type":"llama","hidden_size":64,"num_attention_heads":4,
    "num_hidden_layers":2,"vocab_size":512,"intermediate_size":128"#;

#[test]
fn rope_parameters_and_top_level_rope_theta_agree() {
    let new = parse(&format!(
        r#"{{{BASE},"rope_parameters":{{"rope_theta":5e5,"rope_type":"default"}}}}"#
    ))
    .unwrap();
    let old = parse(&format!(
        r#"{{{BASE},"rope_theta":5e5,"rope_scaling":null}}"#
    ))
    .unwrap();
    assert_eq!(new.rope, old.rope);
    assert_eq!(new.rope.unwrap().theta, 5e5);
}

#[test]
fn llama3_rope_scaling_in_both_spellings() {
    let want = RopeScaling::Llama3 {
        factor: 32.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192.0,
    };
    let old = parse(&format!(
        r#"{{{BASE},"rope_theta":5e5,"rope_scaling":{{"rope_type":"llama3","factor":32.0,
            "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}}}"#
    ))
    .unwrap();
    let new = parse(&format!(
        r#"{{{BASE},"rope_parameters":{{"rope_theta":5e5,"rope_type":"llama3","factor":32.0,
            "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}}}}"#
    ))
    .unwrap();
    assert_eq!(old.rope.as_ref().unwrap().scaling, want);
    assert_eq!(new.rope, old.rope);
    let missing = parse(&format!(
        r#"{{{BASE},"rope_scaling":{{"rope_type":"llama3","factor":8.0}}}}"#
    ))
    .unwrap_err()
    .to_string();
    assert!(
        missing.contains("cfg/config.json") && missing.contains("rope_scaling.low_freq_factor"),
        "{missing}"
    );
}

#[test]
fn explicit_head_dim_wins() {
    let c = parse(&format!(r#"{{{BASE},"head_dim":32}}"#)).unwrap();
    assert_eq!(c.head_dim, 32);
    assert_eq!(c.q_dim(), 128);
    let d = parse(&format!(r#"{{{BASE}}}"#)).unwrap();
    assert_eq!(d.head_dim, 16);
}

#[test]
fn unknown_model_type_names_file_and_field() {
    let e = parse(r#"{"model_type":"bert","hidden_size":8}"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cfg/config.json") && e.contains("model_type") && e.contains("bert"),
        "{e}"
    );
    let e = parse(r#"{"hidden_size":8}"#).unwrap_err().to_string();
    assert!(e.contains("model_type") && e.contains("missing"), "{e}");
    let e = parse(&format!(r#"{{{BASE},"num_key_value_heads":3}}"#))
        .unwrap_err()
        .to_string();
    assert!(e.contains("num_key_value_heads"), "{e}");
}

/// A copy of the llama fixture folder in a temp dir, with its tensors edited by `edit`.
fn edited_llama(edit: impl FnOnce(&mut HashMap<String, Tensor>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut t =
        candle_core::safetensors::load(model_dir("llama").join("model.safetensors"), &Device::Cpu)
            .unwrap();
    edit(&mut t);
    candle_core::safetensors::save(&t, dir.path().join("model.safetensors")).unwrap();
    std::fs::copy(
        model_dir("llama").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    dir
}

#[test]
fn sharded_safetensors_load_like_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let t =
        candle_core::safetensors::load(model_dir("llama").join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let (mut a, mut b) = (HashMap::new(), HashMap::new());
    let mut map = serde_json::Map::new();
    for (i, (k, v)) in t.into_iter().enumerate() {
        let file = if i % 2 == 0 {
            "model-00001-of-00002.safetensors"
        } else {
            "model-00002-of-00002.safetensors"
        };
        map.insert(k.clone(), file.into());
        if i % 2 == 0 {
            a.insert(k, v)
        } else {
            b.insert(k, v)
        };
    }
    candle_core::safetensors::save(&a, dir.path().join("model-00001-of-00002.safetensors"))
        .unwrap();
    candle_core::safetensors::save(&b, dir.path().join("model-00002-of-00002.safetensors"))
        .unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    std::fs::copy(
        model_dir("llama").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let o = oracle("llama");
    let m = load(dir.path(), &LoadOptions::default()).unwrap();
    let logits = m
        .model
        .forward(&ForwardInput::with_mask(
            &o["input_ids"],
            &o["attention_mask"],
        ))
        .unwrap();
    let (rel, _) = rel_and_max(&logits, &o["logits"]);
    assert!(rel < 1e-4, "{rel}");
}

#[test]
fn f16_and_bf16_files_are_converted() {
    for dtype in [candle_core::DType::F16, candle_core::DType::BF16] {
        let dir = edited_llama(|t| {
            for v in t.values_mut() {
                *v = v.to_dtype(dtype).unwrap();
            }
        });
        let o = oracle("llama");
        let m = load(dir.path(), &LoadOptions::default()).unwrap();
        let logits = m
            .model
            .forward(&ForwardInput::with_mask(
                &o["input_ids"],
                &o["attention_mask"],
            ))
            .unwrap();
        let (rel, _) = rel_and_max(&logits, &o["logits"]);
        println!("{dtype:?} weights: rel {rel:.2e}");
        assert!(rel < 5e-2, "{dtype:?}: {rel}");
    }
}

fn load_err(dir: &Path) -> String {
    match load(dir, &LoadOptions::default()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_path_is_an_error() {
    let e = load_err(Path::new("/nonexistent/model-dir"));
    assert!(e.contains("/nonexistent/model-dir"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = load_err(empty.path());
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn missing_tensor_names_file_and_tensor() {
    let dir = edited_llama(|t| {
        t.remove("model.layers.1.mlp.up_proj.weight");
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("model.safetensors") && e.contains("model.layers.1.mlp.up_proj.weight"),
        "{e}"
    );
}

#[test]
fn wrong_shape_names_file_tensor_and_shapes() {
    let dir = edited_llama(|t| {
        let w = Tensor::zeros((32, 63), candle_core::DType::F32, &Device::Cpu).unwrap();
        t.insert("model.layers.0.self_attn.k_proj.weight".into(), w);
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("model.layers.0.self_attn.k_proj.weight")
            && e.contains("[32, 63]")
            && e.contains("[32, 64]"),
        "{e}"
    );
}

#[test]
fn truncated_safetensors_names_file() {
    let dir = edited_llama(|_| {});
    let file = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    for keep in [bytes.len() - 1, bytes.len() / 2, 20, 4] {
        std::fs::write(&file, &bytes[..keep]).unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("model.safetensors") && e.contains("truncated"),
            "{keep}: {e}"
        );
    }
}

#[test]
fn unknown_model_type_in_folder_names_config() {
    let dir = edited_llama(|_| {});
    let cfg = std::fs::read_to_string(dir.path().join("config.json"))
        .unwrap()
        .replace("\"llama\"", "\"bert\"");
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("model_type"), "{e}");
}

#[test]
fn out_of_range_token_id_is_an_error() {
    let m = load(&model_dir("llama"), &LoadOptions::default()).unwrap();
    let ids = Tensor::new(&[[1u32, 512]], &Device::Cpu).unwrap();
    let e = m
        .model
        .forward(&ForwardInput::ids(&ids))
        .unwrap_err()
        .to_string();
    assert!(e.contains("input_ids") && e.contains("512"), "{e}");
    let neg = Tensor::new(&[[1i64, -3]], &Device::Cpu).unwrap();
    let e = m
        .model
        .forward(&ForwardInput::ids(&neg))
        .unwrap_err()
        .to_string();
    assert!(e.contains("input_ids"), "{e}");
    let long = Tensor::zeros((1, 300), candle_core::DType::U32, &Device::Cpu).unwrap();
    let e = m
        .model
        .forward(&ForwardInput::ids(&long))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_position_embeddings"), "{e}");
}

#[test]
fn tokenizer_and_template_come_from_the_folder() {
    let m = load(&model_dir("qwen2"), &LoadOptions::default()).unwrap();
    let msgs = [medtune_model::Message::new("user", "hi")];
    let text = m
        .chat_template
        .as_ref()
        .unwrap()
        .render(&msgs, true)
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = m.chat_prompt(&msgs).unwrap();
    assert!(m.tokenizer().unwrap().decode(&ids).unwrap().contains("hi"));
    let im_end = m.tokenizer().unwrap().token_to_id("<|im_end|>").unwrap();
    assert!(m.eos_token_ids.contains(&im_end), "{:?}", m.eos_token_ids);
}
