//! Benchmark code paths on our own fixtures and the tiny llama fixture model: likelihood scores
//! against a direct computation from logits, every suite end to end with base and adapter, and
//! bad input.

use candle_core::{Device, Tensor, D};
use medtune_eval::compare::check_same_items;
use medtune_eval::likelihood::{score_choices, ChoiceRequest};
use medtune_eval::suite::{load_suite, ItemKind};
use medtune_eval::{
    run_suites, ChoiceTarget, EvalSpec, EvalTarget, Mode, Modes, NoProgress, Sources, Suite,
};
use medtune_model::{load, ForwardInput, LoadOptions, LoadedModel};
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tiny() -> LoadedModel {
    let p = root().join("../../fixtures/hf-tiny/models/llama");
    load(&p, &LoadOptions::default()).expect("tiny model loads")
}

fn sources() -> Sources {
    Sources {
        data_dir: root().join("tests/fixtures/evaldata"),
        dataset_dir: Some(root().join("tests/fixtures/evaldataset")),
        heldout_split: "test".into(),
    }
}

/// Sum of log p(cont | prompt) from one full forward pass over prompt ++ cont.
fn direct(lm: &LoadedModel, prompt: &[u32], cont: &[u32]) -> f64 {
    let ids: Vec<u32> = prompt.iter().chain(cont).copied().collect();
    let t = Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = lm
        .model
        .forward(&ForwardInput::ids(&t))
        .unwrap()
        .squeeze(0)
        .unwrap(); // [T, V]
    let max = logits.max_keepdim(D::Minus1).unwrap();
    let shifted = logits.broadcast_sub(&max).unwrap();
    let lse = shifted
        .exp()
        .unwrap()
        .sum_keepdim(D::Minus1)
        .unwrap()
        .log()
        .unwrap();
    let lp: Vec<Vec<f32>> = shifted.broadcast_sub(&lse).unwrap().to_vec2().unwrap();
    cont.iter()
        .enumerate()
        .map(|(k, &tok)| f64::from(lp[prompt.len() - 1 + k][tok as usize]))
        .sum()
}

#[test]
fn likelihood_matches_a_direct_computation_from_logits() {
    let lm = tiny();
    let enc = |s: &str| lm.encode(s).unwrap();
    // Prompts of different lengths (left padding) and options of 1..n tokens (right padding).
    let reqs = vec![
        ChoiceRequest {
            prompt: enc("Is aspirin an NSAID? Answer:"),
            options: vec![enc(" yes"), enc(" no, it is not"), enc(" maybe")],
        },
        ChoiceRequest {
            prompt: enc("Q"),
            options: vec![enc("A"), enc("B"), enc("{\"answer\": \"yes\"}")],
        },
        ChoiceRequest {
            prompt: enc("Which bone is in the upper arm of a human being?"),
            options: vec![enc("Humerus"), enc("Femur")],
        },
    ];
    let got = score_choices(&lm.model, &reqs).unwrap();
    let mut max_diff = 0.0f64;
    for (r, s) in reqs.iter().zip(&got) {
        assert_eq!(s.sum.len(), r.options.len());
        for (k, o) in r.options.iter().enumerate() {
            let want = direct(&lm, &r.prompt, o);
            max_diff = max_diff.max((s.sum[k] - want).abs());
            assert!((s.mean[k] - s.sum[k] / o.len() as f64).abs() < 1e-12);
        }
    }
    println!("likelihood vs direct: max abs diff {max_diff:.2e}");
    assert!(max_diff < 1e-4, "max abs diff {max_diff}");
    // Batching does not change the scores: each item alone gives the same numbers.
    for (r, s) in reqs.iter().zip(&got) {
        let alone = score_choices(&lm.model, std::slice::from_ref(r)).unwrap();
        for (a, b) in alone[0].sum.iter().zip(&s.sum) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}

#[test]
fn empty_options_are_an_error_not_a_zero() {
    let lm = tiny();
    let r = ChoiceRequest {
        prompt: lm.encode("Q").unwrap(),
        options: vec![vec![]],
    };
    assert!(score_choices(&lm.model, &[r]).is_err());
}

#[test]
fn suites_load_with_explicit_skips() {
    let src = sources();
    let p = load_suite(Suite::Pubmedqa, &src, None, ChoiceTarget::Letter).unwrap();
    // Only the official test ids (3 of 4).
    assert_eq!(p.items.len(), 3);
    let m = load_suite(Suite::MmluMedical, &src, None, ChoiceTarget::Letter).unwrap();
    assert_eq!(m.items.len(), 4);
    assert_eq!(m.problems.len(), 1, "{:?}", m.problems);
    assert!(
        m.problems[0].contains("anatomy_test.csv:3"),
        "{:?}",
        m.problems
    );
    let q = load_suite(Suite::Qpain, &src, None, ChoiceTarget::Letter).unwrap();
    assert_eq!(
        q.items.len(),
        9,
        "8 race × gender variants + 1 neutral vignette"
    );
    assert!(q
        .items
        .iter()
        .all(|i| !i.messages[0].content.contains("[race]")));
    let f = load_suite(Suite::Medquad, &src, None, ChoiceTarget::Letter).unwrap();
    assert_eq!(f.items.len(), 2);
    assert_eq!(f.skipped.len(), 1);
    assert!(f.skipped[0].1.contains("empty reference"));
    assert!(f.items.iter().all(|i| i.kind == ItemKind::FreeText));
    let limited = load_suite(Suite::MmluMedical, &src, Some(2), ChoiceTarget::Letter).unwrap();
    let groups: Vec<&str> = limited.items.iter().map(|i| i.group.as_str()).collect();
    assert_eq!(groups.len(), 2);
    assert_ne!(groups[0], groups[1], "--limit spreads over subjects");
}

#[test]
fn medquad_without_a_dataset_is_a_clear_error() {
    let mut src = sources();
    src.dataset_dir = None;
    let err = load_suite(Suite::Medquad, &src, None, ChoiceTarget::Letter).unwrap_err();
    assert!(err.to_string().contains("--dataset-dir"), "{err}");
    src.data_dir = root().join("tests/fixtures/no_such_dir");
    let err = load_suite(Suite::Pubmedqa, &src, None, ChoiceTarget::Letter).unwrap_err();
    assert!(err.to_string().contains("pubmedqa"), "{err}");
}

#[test]
fn every_suite_runs_for_base_and_adapter_on_identical_items() {
    let mut lm = tiny();
    let mut spec = EvalSpec::new(Suite::ALL.to_vec(), sources());
    spec.modes = Modes::Both;
    spec.max_new_tokens_choice = 6;
    spec.max_new_tokens_text = 8;
    spec.bootstrap.resamples = 200;
    spec.validator = Some(medtune_safety::Validator::new(Default::default()).unwrap());
    let targets = vec![
        EvalTarget::base(),
        EvalTarget::adapter(root().join("../../fixtures/hf-tiny/models/llama/lora_adapter")),
    ];
    let cmp = run_suites(&spec, &mut lm, &targets, &mut NoProgress).unwrap();
    // 3 pubmedqa + 2 medmcqa + 2 medqa + 4 mmlu + 9 qpain + 2 medquad items, 2 modes, 2 targets.
    assert_eq!(cmp.predictions.len(), 22 * 2 * 2);
    for suite in Suite::ALL {
        for mode in [Mode::Likelihood, Mode::Generate] {
            let ids = |t: &str| {
                let mut v: Vec<&medtune_eval::Prediction> = cmp
                    .predictions
                    .iter()
                    .filter(|p| p.target == t && p.suite == suite && p.mode == mode)
                    .collect();
                v.sort_by(|a, b| a.id.cmp(&b.id));
                v
            };
            check_same_items("test", &ids("base"), &ids("lora_adapter")).unwrap();
        }
    }
    let acc = cmp
        .metric("base", Suite::Pubmedqa, Mode::Likelihood, "accuracy")
        .unwrap();
    assert_eq!(acc.n, 3);
    assert!((0.0..=1.0).contains(&acc.value.value));
    assert!(acc.value.low <= acc.value.value && acc.value.value <= acc.value.high);
    // Accuracy is the share of predictions equal to the gold label.
    let preds: Vec<_> = cmp
        .predictions
        .iter()
        .filter(|p| p.target == "base" && p.suite == Suite::Pubmedqa && p.mode == Mode::Likelihood)
        .collect();
    let right = preds
        .iter()
        .filter(|p| p.predicted.as_deref() == Some(p.gold.as_str()))
        .count();
    assert!((acc.value.value - right as f64 / 3.0).abs() < 1e-12);
    let adapter = cmp
        .metric(
            "lora_adapter",
            Suite::Pubmedqa,
            Mode::Likelihood,
            "accuracy",
        )
        .unwrap();
    assert!(adapter.delta.is_some() && acc.delta.is_none());
    // The adapter changes the scores (it is really applied).
    let lp = |t: &str| {
        cmp.predictions
            .iter()
            .find(|p| p.target == t && p.suite == Suite::Pubmedqa && p.mode == Mode::Likelihood)
            .unwrap()
            .option_logprobs
            .clone()
    };
    assert_ne!(lp("base"), lp("lora_adapter"));
    // Free text: perplexity in likelihood mode, text metrics in generation mode.
    let ppl = cmp
        .metric("base", Suite::Medquad, Mode::Likelihood, "perplexity")
        .unwrap();
    assert!(ppl.value.value > 1.0 && ppl.value.value.is_finite());
    assert!(cmp
        .metric("base", Suite::Medquad, Mode::Generate, "rouge_l")
        .is_some());
    assert!(cmp
        .metric("base", Suite::Medquad, Mode::Generate, "meteor")
        .is_none());
    assert!(cmp
        .metric(
            "base",
            Suite::MmluMedical,
            Mode::Generate,
            "format_failure_rate"
        )
        .is_some());
    // Q-Pain gaps exist per target and mode; skipped and malformed input is reported.
    assert_eq!(cmp.qpain.len(), 4);
    assert!(cmp
        .qpain
        .iter()
        .all(|q| q.gaps.iter().any(|g| g.axis == "race")));
    assert_eq!(cmp.skipped.len(), 1);
    assert_eq!(cmp.problems.len(), 1);
    assert!(!cmp.specialties.is_empty());
    assert!(cmp.analysis.iter().all(|a| a.n > 0));
    // The model is left without an adapter.
    let again = run_suites(
        &EvalSpec::new(vec![Suite::Pubmedqa], sources()),
        &mut lm,
        &[EvalTarget::base()],
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!(
        again.predictions[0].option_logprobs.len(),
        3,
        "three decision options"
    );
}
