//! BLEU against sacrebleu 2.x vectors (`tests/fixtures/bleu.json`, tolerance 1e-6).

use medtune_eval::metrics::bleu::{tokenize_13a, Bleu, BleuScore, Smooth};
use serde_json::Value;

const TOL: f64 = 1e-6;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bleu.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixture")).expect("json")
}

fn config(name: &str) -> Bleu {
    let base = Bleu::default();
    match name {
        "exp" => base,
        "exp_eff" => Bleu {
            effective_order: true,
            ..base
        },
        "none" => Bleu {
            smooth: Smooth::None,
            ..base
        },
        "floor" => Bleu {
            smooth: Smooth::Floor(0.1),
            ..base
        },
        "add-k" => Bleu {
            smooth: Smooth::AddK(1.0),
            ..base
        },
        "exp_lower" => Bleu {
            lowercase: true,
            ..base
        },
        other => panic!("unknown config {other}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// Compares one score; returns the largest absolute difference.
fn check(label: &str, got: &BleuScore, want: &Value) -> f64 {
    let mut max_diff: f64 = 0.0;
    let mut cmp = |what: &str, g: f64, w: f64| {
        let d = (g - w).abs();
        assert!(d <= TOL, "{label} {what}: got {g}, want {w}");
        max_diff = max_diff.max(d);
    };
    cmp("score", got.score, want["score"].as_f64().expect("score"));
    cmp("bp", got.bp, want["bp"].as_f64().expect("bp"));
    for (n, p) in want["precisions"]
        .as_array()
        .expect("precisions")
        .iter()
        .enumerate()
    {
        cmp("precision", got.precisions[n], p.as_f64().expect("f64"));
    }
    assert_eq!(
        got.stats.sys_len as u64,
        want["sys_len"].as_u64().expect("sys_len"),
        "{label}"
    );
    assert_eq!(
        got.stats.ref_len as u64,
        want["ref_len"].as_u64().expect("ref_len"),
        "{label}"
    );
    max_diff
}

#[test]
fn tokenizer_13a_matches_sacrebleu() {
    let f = fixture();
    for case in f["tokenized"].as_array().expect("tokenized") {
        let text = case["text"].as_str().expect("text");
        let got = tokenize_13a(text.trim_end());
        assert_eq!(
            got,
            case["tokens"].as_str().expect("tokens"),
            "text {text:?}"
        );
    }
}

#[test]
fn sentence_bleu_matches_sacrebleu() {
    let f = fixture();
    let mut max_diff: f64 = 0.0;
    let mut n = 0;
    for s in f["sentences"].as_array().expect("sentences") {
        let refs = strings(&s["references"]);
        let hyp = s["hypothesis"].as_str().expect("hypothesis");
        for (name, want) in s["scores"].as_object().expect("scores") {
            let got = config(name).sentence_score(hyp, &refs);
            let label = format!("{} [{name}]", s["id"]);
            max_diff = max_diff.max(check(&label, &got, want));
            n += 1;
        }
    }
    println!("sentence BLEU: {n} cases, max abs diff {max_diff:e}");
    assert!(n >= 100);
}

#[test]
fn corpus_bleu_matches_sacrebleu() {
    let f = fixture();
    let sents = f["sentences"].as_array().expect("sentences");
    let hyps: Vec<String> = sents
        .iter()
        .map(|s| s["hypothesis"].as_str().expect("hyp").to_string())
        .collect();
    let second = strings(&f["corpus_second_refs"]);
    let one: Vec<Vec<String>> = sents
        .iter()
        .map(|s| vec![strings(&s["references"])[0].clone()])
        .collect();
    let two: Vec<Vec<String>> = one
        .iter()
        .zip(&second)
        .map(|(o, s)| vec![o[0].clone(), s.clone()])
        .collect();
    let mut max_diff: f64 = 0.0;
    for (key, want) in f["corpus"].as_object().expect("corpus") {
        let (name, layout) = key.split_once('/').expect("name/layout");
        let refs = match layout {
            "one_ref" => &one,
            "two_refs" => &two,
            _ => continue, // all_refs: checked by metrics_pairs.rs
        };
        let got = config(name).corpus_score(&hyps, refs).expect("corpus");
        max_diff = max_diff.max(check(key, &got, want));
    }
    println!("corpus BLEU: max abs diff {max_diff:e}");
}

#[test]
fn corpus_with_mismatched_lengths_is_an_error() {
    let err = Bleu::default().corpus_score(&["a"], &[vec!["a"], vec!["b"]]);
    assert!(err.is_err());
}
