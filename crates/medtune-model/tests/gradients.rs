//! Gradient plumbing: every LoRA tensor of every architecture receives a non-zero gradient, by
//! plain backward and by layer-wise recompute, and the two agree; only LoRA tensors train; a cut
//! graph is reported; gradients pass through frozen dense, NF4 and GGML-quantized weights to
//! the layer input; the bf16 compute path stays close to f32. (GGML-quantized GGUF bases are
//! trained in `lora_conformance.rs`, which writes the GGUF.)

mod common;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Module, Tensor, Var};
use common::{model_dir, oracle, rel_and_max, ARCHS};
use medtune_model::lora::{LoraAdapter, TargetModules};
use medtune_model::nf4::{Nf4Options, Nf4Tensor};
use medtune_model::{
    attach_lora, load, loss_and_grads, peft, Adapter, Backward, BaseWeight, Error, Linear,
    LoadOptions, LoraConfig, TrainBatch,
};
use std::collections::HashMap;
use std::sync::Arc;

fn batch(o: &HashMap<String, Tensor>) -> TrainBatch<'_> {
    TrainBatch {
        input_ids: &o["input_ids"],
        attention_mask: Some(&o["attention_mask"]),
        labels: &o["labels"],
        position_ids: None,
    }
}

/// All-linear LoRA with non-zero B (so every A gets a non-zero gradient) and dropout on.
fn config() -> LoraConfig {
    LoraConfig {
        r: 4,
        lora_alpha: 8.0,
        lora_dropout: 0.1,
        init_lora_weights: false,
        ..Default::default()
    }
}

fn norm(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        .sqrt()
}

#[test]
fn every_lora_tensor_gets_a_gradient_and_recompute_matches_plain() {
    for arch in ARCHS {
        let o = oracle(arch);
        let mut m = load(&model_dir(arch), &LoadOptions::default()).unwrap();
        let set = attach_lora(&mut m.model, &config(), 42).unwrap();
        let n_linear = m.model.linears().len() - 1; // all but lm_head
        assert_eq!(set.adapters().len(), n_linear, "{arch}: all-linear");
        // Same pass number for both paths: identical dropout masks.
        let pass = set.pass();
        let plain = loss_and_grads(&m.model, &set, &batch(&o), Backward::Plain).unwrap();
        set.set_pass(pass);
        let re = loss_and_grads(&m.model, &set, &batch(&o), Backward::Recompute).unwrap();
        assert_eq!(plain.grads.len(), 2 * n_linear);
        assert_eq!(plain.n_supervised, re.n_supervised);
        assert!((plain.loss_sum - re.loss_sum).abs() <= 1e-6 * plain.loss_sum.abs());
        let mut worst = 0f64;
        for ((key, g), (key2, g2)) in plain.grads.iter().zip(&re.grads) {
            assert_eq!(key, key2);
            let n = norm(g);
            assert!(
                n.is_finite() && n > 0.0,
                "{arch}: {key} got a zero gradient"
            );
            let (rel, _) = rel_and_max(g2, g);
            assert!(rel < 1e-5, "{arch}: {key}: recompute vs plain {rel:.2e}");
            worst = worst.max(rel);
        }
        println!(
            "{arch}: {} tensors, recompute vs plain worst rel {worst:.2e}",
            plain.grads.len()
        );
    }
}

#[test]
fn hand_written_layer_backward_matches_plain() {
    // Llama, Qwen2 and Mistral layers take the hand-written backward (the others fall back to
    // autograd inside the same call); dropout is on, so its mask handling is covered too.
    for arch in ARCHS {
        let o = oracle(arch);
        let mut m = load(&model_dir(arch), &LoadOptions::default()).unwrap();
        let set = attach_lora(&mut m.model, &config(), 42).unwrap();
        let manual =
            medtune_model::recompute::manual_backward_layers(&m.model, &batch(&o)).unwrap();
        let expect_manual = matches!(arch, "llama" | "qwen2" | "mistral");
        assert_eq!(
            manual == m.model.layers().len(),
            expect_manual,
            "{arch}: {manual} layers take the hand-written backward"
        );
        let pass = set.pass();
        let plain = loss_and_grads(&m.model, &set, &batch(&o), Backward::Plain).unwrap();
        set.set_pass(pass);
        let re = loss_and_grads(&m.model, &set, &batch(&o), Backward::RecomputeManual).unwrap();
        assert_eq!(plain.grads.len(), re.grads.len());
        assert!((plain.loss_sum - re.loss_sum).abs() <= 1e-6 * plain.loss_sum.abs());
        let mut worst = 0f64;
        for ((key, g), (key2, g2)) in plain.grads.iter().zip(&re.grads) {
            assert_eq!(key, key2);
            assert!(norm(g2) > 0.0, "{arch}: {key} got a zero gradient");
            let (rel, _) = rel_and_max(g2, g);
            assert!(rel < 1e-5, "{arch}: {key}: hand-written vs plain {rel:.2e}");
            worst = worst.max(rel);
        }
        println!("{arch}: {manual} hand-written layers, worst rel {worst:.2e}");
    }
}

#[test]
fn hand_written_layer_backward_in_bf16_and_on_nf4_stays_close() {
    let o = oracle("llama");
    let opts = LoadOptions {
        dtype: DType::BF16,
        ..LoadOptions::default()
    };
    let mut m = load(&model_dir("llama"), &opts).unwrap();
    m.model
        .quantize_nf4(Nf4Options {
            double_quant: true,
            round_to_bf16: true,
        })
        .unwrap();
    let set = attach_lora(&mut m.model, &config(), 7).unwrap();
    let pass = set.pass();
    let auto = loss_and_grads(&m.model, &set, &batch(&o), Backward::Recompute).unwrap();
    set.set_pass(pass);
    let manual = loss_and_grads(&m.model, &set, &batch(&o), Backward::RecomputeManual).unwrap();
    // The first pass is the hand-written forward too: the same formulas in another order.
    let loss_rel = (auto.loss_sum - manual.loss_sum).abs() / auto.loss_sum;
    assert!(loss_rel < 1e-3, "loss {loss_rel:.2e}");
    let mut worst = 0f64;
    for ((k, g), (_, want)) in manual.grads.iter().zip(&auto.grads) {
        assert_eq!(g.dtype(), DType::F32, "{k}");
        let (rel, _) = rel_and_max(g, want);
        worst = worst.max(rel);
    }
    println!("bf16 NF4: hand-written vs autograd worst grad rel {worst:.2e}");
    assert!(worst < 5e-2, "{worst:.2e}");
}

#[test]
fn dropout_changes_the_loss_in_training_and_not_in_eval() {
    let o = oracle("llama");
    let mut m = load(&model_dir("llama"), &LoadOptions::default()).unwrap();
    let set = attach_lora(&mut m.model, &config(), 1).unwrap();
    let l1 = loss_and_grads(&m.model, &set, &batch(&o), Backward::Plain)
        .unwrap()
        .loss_sum;
    let l2 = loss_and_grads(&m.model, &set, &batch(&o), Backward::Plain)
        .unwrap()
        .loss_sum;
    assert_ne!(l1, l2, "a new pass draws new masks");
    set.set_train(false);
    let e1 = loss_and_grads(&m.model, &set, &batch(&o), Backward::Plain)
        .unwrap()
        .loss_sum;
    let e2 = loss_and_grads(&m.model, &set, &batch(&o), Backward::Recompute)
        .unwrap()
        .loss_sum;
    assert!((e1 - e2).abs() <= 1e-6 * e1.abs());
}

#[test]
fn only_lora_tensors_train() {
    let o = oracle("qwen2");
    let mut m = load(&model_dir("qwen2"), &LoadOptions::default()).unwrap();
    let set = attach_lora(&mut m.model, &config(), 3).unwrap();
    for l in m.model.linears() {
        if let BaseWeight::Dense(w) = l.base() {
            assert!(!w.is_variable(), "{}: base weight is a Var", l.name());
        }
        if let Some(b) = l.bias() {
            assert!(!b.is_variable(), "{}: bias is a Var", l.name());
        }
    }
    let vars = set.vars();
    assert!(vars
        .iter()
        .all(|(k, v)| v.is_variable() && k.starts_with("base_model.model.")));
    assert!(vars.iter().all(|(_, v)| v.dtype() == DType::F32));
    let r = loss_and_grads(&m.model, &set, &batch(&o), Backward::Plain).unwrap();
    assert_eq!(r.grads.len(), vars.len());
    // Base weights are unchanged by training: the model without adapters equals the fixture.
    medtune_model::detach_lora(&mut m.model);
    let logits = m
        .model
        .forward(&medtune_model::ForwardInput::with_mask(
            &o["input_ids"],
            &o["attention_mask"],
        ))
        .unwrap();
    let (rel, _) = rel_and_max(&logits, &o["logits"]);
    assert!(rel < 1e-4);
}

/// An adapter that cuts the graph (as candle's fused ops without backward do).
struct Cut(Arc<LoraAdapter>);

impl Adapter for Cut {
    fn delta(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        Ok(self.0.delta(x)?.detach())
    }
}

#[test]
fn a_cut_graph_is_an_error_naming_the_tensor() {
    let o = oracle("llama");
    let mut m = load(&model_dir("llama"), &LoadOptions::default()).unwrap();
    let set = attach_lora(&mut m.model, &config(), 5).unwrap();
    let victim = set.adapters()[3].clone();
    let name = victim.module().to_string();
    m.model
        .linear_mut(&name)
        .unwrap()
        .set_adapter(Arc::new(Cut(victim)));
    for backward in [Backward::Plain, Backward::Recompute] {
        match loss_and_grads(&m.model, &set, &batch(&o), backward) {
            Err(Error::NoGradient { tensor }) => assert!(tensor.contains(&name), "{tensor}"),
            Err(e) => panic!("wrong error {e}"),
            Ok(_) => panic!("{backward:?}: a tensor without gradient went unnoticed"),
        }
    }
}

#[test]
fn gradients_reach_the_input_through_dense_nf4_and_ggml_bases() {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 0.05, (96, 64), &dev).unwrap();
    let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 5, 64), &dev).unwrap()).unwrap();
    let nf4 = Nf4Tensor::quantize(
        &w,
        Nf4Options {
            double_quant: true,
            ..Default::default()
        },
    )
    .unwrap();
    let bases = [
        ("dense", BaseWeight::Dense(w.clone()), 1e-6),
        ("nf4-dq", BaseWeight::Nf4(Arc::new(nf4)), 1e-6),
        // GGML quantizes activations to 8 bits inside its matmul: the forward is approximate,
        // the backward uses the dequantized weight exactly.
        (
            "q8_0",
            BaseWeight::Quantized(Arc::new(QTensor::quantize(&w, GgmlDType::Q8_0).unwrap())),
            1e-6,
        ),
    ];
    for (name, base, tol) in bases {
        let wd = base.to_dense(DType::F32).unwrap();
        let lin = Linear::new("test", base, None);
        let y = lin.forward(x.as_tensor()).unwrap(); // [2, 5, 96]
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx = g
            .get(x.as_tensor())
            .unwrap_or_else(|| panic!("{name}: no input gradient"));
        // d(sum(x·Wᵀ))/dx = 1·W: every row of dx is the column sums of W.
        let want = wd
            .sum(0)
            .unwrap()
            .reshape((1, 1, 64))
            .unwrap()
            .broadcast_as((2, 5, 64))
            .unwrap();
        let (rel, _) = rel_and_max(dx, &want);
        assert!(rel < tol, "{name}: dx rel {rel:.2e}");
    }
}

#[test]
fn qlora_base_trains_every_lora_tensor() {
    let o = oracle("llama");
    let mut m = load(&model_dir("llama"), &LoadOptions::default()).unwrap();
    m.model
        .quantize_nf4(Nf4Options {
            double_quant: true,
            round_to_bf16: false,
        })
        .unwrap();
    let set = attach_lora(&mut m.model, &config(), 9).unwrap();
    for backward in [Backward::Plain, Backward::Recompute] {
        let r = loss_and_grads(&m.model, &set, &batch(&o), backward).unwrap();
        for (k, g) in &r.grads {
            assert!(norm(g) > 0.0, "NF4 {backward:?}: {k}");
        }
    }
}

#[test]
fn bf16_compute_gives_close_gradients() {
    let o = oracle("llama");
    let adapter = model_dir("llama").join("lora_adapter");
    let mut f = load(&model_dir("llama"), &LoadOptions::default()).unwrap();
    let sf = peft::load_peft(&mut f.model, &adapter).unwrap();
    let reference = loss_and_grads(&f.model, &sf, &batch(&o), Backward::Plain).unwrap();
    let opts = LoadOptions {
        dtype: DType::BF16,
        ..LoadOptions::default()
    };
    let mut b = load(&model_dir("llama"), &opts).unwrap();
    let sb = peft::load_peft(&mut b.model, &adapter).unwrap();
    let r = loss_and_grads(&b.model, &sb, &batch(&o), Backward::Recompute).unwrap();
    let loss_rel = (r.loss_sum - reference.loss_sum).abs() / reference.loss_sum;
    assert!(loss_rel < 1e-2, "bf16 loss {loss_rel:.2e}");
    let mut worst = 0f64;
    for ((k, g), (_, want)) in r.grads.iter().zip(&reference.grads) {
        assert_eq!(g.dtype(), DType::F32, "{k}: master gradients stay f32");
        let (rel, _) = rel_and_max(g, want);
        worst = worst.max(rel);
    }
    println!("bf16 vs f32: loss rel {loss_rel:.2e}, worst grad rel {worst:.2e}");
    assert!(worst < 0.1, "bf16 gradients {worst:.2e}");
}

#[test]
fn layers_to_transform_and_targets_select_modules() {
    let mut m = load(&model_dir("gpt2"), &LoadOptions::default()).unwrap();
    let cfg = LoraConfig {
        target_modules: TargetModules::Names(vec!["attn.c_proj".into()]),
        layers_to_transform: Some(medtune_model::lora::LayerSelection::One(1)),
        ..Default::default()
    };
    let set = attach_lora(&mut m.model, &cfg, 0).unwrap();
    let names: Vec<&str> = set.adapters().iter().map(|a| a.module()).collect();
    assert_eq!(names, ["transformer.h.1.attn.c_proj"]);
    // Default init: B = 0, so the model is unchanged.
    let b = set.adapters()[0]
        .b()
        .as_tensor()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    assert_eq!(b.to_scalar::<f32>().unwrap(), 0.0);
    let bad = LoraConfig {
        target_modules: TargetModules::Names(vec!["q_proj".into()]),
        ..Default::default()
    };
    let e = attach_lora(&mut m.model, &bad, 0)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("matches no linear module"), "{e}");
}

#[test]
fn set_saves_and_reloads_its_weights_and_marks_gpt2_conv1d() {
    let o = oracle("gpt2");
    let mut m = load(&model_dir("gpt2"), &LoadOptions::default()).unwrap();
    let set = attach_lora(&mut m.model, &config(), 11).unwrap();
    assert!(
        set.config().fan_in_fan_out,
        "GPT-2 Conv1D adapters are fan_in_fan_out, as in PEFT"
    );
    set.set_train(false);
    let before = m
        .model
        .forward(&medtune_model::ForwardInput::with_mask(
            &o["input_ids"],
            &o["attention_mask"],
        ))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    set.save_peft(tmp.path(), Some("gpt2-tiny")).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join(peft::CONFIG_FILE)).unwrap())
            .unwrap();
    assert_eq!(saved["fan_in_fan_out"], true);
    assert_eq!(
        saved["target_modules"],
        serde_json::json!(["c_attn", "c_fc", "c_proj"])
    );
    // Scramble, then restore from the folder.
    for (_, v) in set.vars() {
        v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
    }
    set.load_peft_weights(tmp.path()).unwrap();
    let after = m
        .model
        .forward(&medtune_model::ForwardInput::with_mask(
            &o["input_ids"],
            &o["attention_mask"],
        ))
        .unwrap();
    let (_, max) = rel_and_max(&after, &before);
    assert_eq!(max, 0.0);
    // Another model's adapter is refused.
    let mut llama = load(&model_dir("llama"), &LoadOptions::default()).unwrap();
    let other = attach_lora(&mut llama.model, &config(), 0).unwrap();
    let e = other.load_peft_weights(tmp.path()).unwrap_err().to_string();
    assert!(e.contains(peft::WEIGHTS_FILE), "{e}");
}
