//! Conformance with Hugging Face transformers on the hf-tiny fixtures (all six families):
//! logits within 1e-4 relative (‖Δ‖/‖ref‖), masked loss within 1e-5, greedy generation token
//! for token. Also: left vs right padding, KV-cache decoding vs full forward.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{model_dir, oracle, oracle_json, rel_and_max, row_u32, ARCHS};
use medtune_model::{
    causal_lm_loss, generate, generate_with, load, mask, sampling::argmax, FinishReason,
    ForwardInput, GenerateOptions, LoadOptions, RowFlow,
};

const LOGITS_REL_TOL: f64 = 1e-4;
const LOSS_TOL: f64 = 1e-5;

#[test]
fn logits_and_loss_match_hf_for_all_archs() {
    for arch in ARCHS {
        let m = load(&model_dir(arch), &LoadOptions::default()).unwrap();
        let o = oracle(arch);
        let input = ForwardInput::with_mask(&o["input_ids"], &o["attention_mask"]);
        let logits = m.model.forward(&input).unwrap();
        let (rel, max) = rel_and_max(&logits, &o["logits"]);
        let loss: f32 = causal_lm_loss(&logits, &o["labels"])
            .unwrap()
            .to_scalar()
            .unwrap();
        let want = oracle_json(arch, "loss");
        println!("{arch:8} logits rel {rel:.2e} max|Δ| {max:.2e}   loss {loss:.7} (hf {want:.7}, Δ {:.1e})", (loss as f64 - want).abs());
        assert!(rel <= LOGITS_REL_TOL, "{arch}: logits rel diff {rel:e}");
        assert!(
            (loss as f64 - want).abs() <= LOSS_TOL,
            "{arch}: loss {loss} vs {want}"
        );
    }
}

#[test]
fn greedy_generation_matches_hf_for_all_archs() {
    for arch in ARCHS {
        let m = load(&model_dir(arch), &LoadOptions::default()).unwrap();
        let o = oracle(arch);
        let prompt = row_u32(&o["gen_prompt"], 0);
        let want = row_u32(&o["gen_greedy"], 0);
        let opts = GenerateOptions {
            max_new_tokens: want.len() - prompt.len(),
            ..GenerateOptions::default()
        };
        let out = generate(
            &m.model,
            std::slice::from_ref(&prompt),
            &opts,
            None,
            &mut |_, _| {},
        )
        .unwrap();
        let mut got = prompt.clone();
        got.extend(&out[0].tokens);
        println!("{arch:8} greedy {:?}", &got[prompt.len()..]);
        assert_eq!(got, want, "{arch}: greedy tokens differ");
    }
}

#[test]
fn left_and_right_padding_agree_on_real_tokens() {
    for arch in ARCHS {
        let m = load(&model_dir(arch), &LoadOptions::default()).unwrap();
        let dev = Device::Cpu;
        let a: Vec<u32> = vec![5, 17, 99, 3, 42, 7];
        let b: Vec<u32> = vec![8, 9, 10];
        let pad = a.len() - b.len();
        // Right padding: positions 0..T (HF default); left padding: positions from the mask.
        let two_rows =
            |r0: Vec<u32>, r1: Vec<u32>| Tensor::from_vec([r0, r1].concat(), (2, 6), &dev).unwrap();
        let right = two_rows(a.clone(), [b.clone(), vec![0; pad]].concat());
        let right_mask = two_rows(vec![1; 6], [vec![1; 3], vec![0; pad]].concat());
        let left = two_rows(a.clone(), [vec![0; pad], b.clone()].concat());
        let left_mask = two_rows(vec![1; 6], [vec![0; pad], vec![1; 3]].concat());
        let left_pos = mask::positions_from_mask(&left_mask).unwrap();
        let lr = m
            .model
            .forward(&ForwardInput::with_mask(&right, &right_mask))
            .unwrap();
        let ll = m
            .model
            .forward(&ForwardInput {
                input_ids: Some(&left),
                attention_mask: Some(&left_mask),
                position_ids: Some(&left_pos),
                mask: None,
            })
            .unwrap();
        let r_real = lr.get(1).unwrap().narrow(0, 0, 3).unwrap();
        let l_real = ll.get(1).unwrap().narrow(0, pad, 3).unwrap();
        let (rel, max) = rel_and_max(&l_real, &r_real);
        println!("{arch:8} left vs right padding rel {rel:.2e} max {max:.2e}");
        assert!(rel < 1e-5, "{arch}: {rel}");
        let (rel0, _) = rel_and_max(&ll.get(0).unwrap(), &lr.get(0).unwrap());
        assert!(rel0 < 1e-6, "{arch}: unpadded row changed: {rel0}");
    }
}

#[test]
fn kv_cache_greedy_equals_full_forward_greedy() {
    for arch in ["llama", "phi", "gpt2"] {
        let m = load(&model_dir(arch), &LoadOptions::default()).unwrap();
        let prompts = vec![vec![3u32, 14, 15, 92, 65], vec![2u32, 71]];
        let opts = GenerateOptions {
            max_new_tokens: 8,
            ..GenerateOptions::default()
        };
        let cached = generate(&m.model, &prompts, &opts, None, &mut |_, _| {}).unwrap();
        for (p, g) in prompts.iter().zip(&cached) {
            // Reference: recompute the whole sequence every step, no cache, no padding.
            let mut seq = p.clone();
            for _ in 0..8 {
                let ids = Tensor::new(seq.as_slice(), &Device::Cpu)
                    .unwrap()
                    .unsqueeze(0)
                    .unwrap();
                let logits = m.model.forward(&ForwardInput::ids(&ids)).unwrap();
                let last = logits.get(0).unwrap().get(seq.len() - 1).unwrap();
                seq.push(argmax(
                    &last.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(),
                ));
            }
            assert_eq!(&seq[p.len()..], g.tokens.as_slice(), "{arch}");
        }
    }
}

/// A row stopped by the callback keeps the tokens so far and ends as `Stopped`; the other row
/// is unaffected (the same tokens as without the stop); once every row is stopped, no more
/// tokens are sampled at all.
#[test]
fn the_callback_can_stop_rows_early() {
    let m = load(&model_dir("llama"), &LoadOptions::default()).unwrap();
    let prompts = vec![vec![3u32, 14, 15, 92, 65], vec![2u32, 71]];
    let opts = GenerateOptions {
        max_new_tokens: 8,
        ..GenerateOptions::default()
    };
    let full = generate(&m.model, &prompts, &opts, None, &mut |_, _| {}).unwrap();
    let mut calls = [0usize; 2];
    let out = generate_with(&m.model, &prompts, &opts, None, &mut |r, _| {
        calls[r] += 1;
        if r == 0 && calls[0] == 2 {
            RowFlow::Stop
        } else {
            RowFlow::Continue
        }
    })
    .unwrap();
    assert_eq!(out[0].tokens, full[0].tokens[..2]);
    assert_eq!(out[0].finish, FinishReason::Stopped);
    assert_eq!(out[1].tokens, full[1].tokens);
    assert_eq!(calls[0], 2);
    // Every row stopped after its first token: one call per row, then the loop ends.
    let mut n = 0;
    let out = generate_with(&m.model, &prompts, &opts, None, &mut |_, _| {
        n += 1;
        RowFlow::Stop
    })
    .unwrap();
    assert_eq!(n, 2);
    assert!(out
        .iter()
        .all(|g| g.tokens.len() == 1 && g.finish == FinishReason::Stopped));
}

#[test]
fn bf16_compute_stays_close() {
    let m = load(
        &model_dir("llama"),
        &LoadOptions {
            dtype: DType::BF16,
            device: Device::Cpu,
        },
    )
    .unwrap();
    let o = oracle("llama");
    let logits = m
        .model
        .forward(&ForwardInput::with_mask(
            &o["input_ids"],
            &o["attention_mask"],
        ))
        .unwrap();
    assert_eq!(logits.dtype(), DType::F32);
    let (rel, _) = rel_and_max(&logits, &o["logits"]);
    println!("bf16 logits rel {rel:.2e}");
    assert!(rel < 3e-2, "{rel}");
}
