//! ROUGE and the Porter stemmer against rouge-score 0.1.2 / nltk vectors (tolerance 1e-6).

use medtune_eval::metrics::porter::{Mode, PorterStemmer};
use medtune_eval::metrics::rouge::{RougeScorer, RougeScores, Score};
use serde_json::Value;

const TOL: f64 = 1e-6;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixture")).expect("json")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn pick(s: &RougeScores, t: &str) -> Score {
    match t {
        "rouge1" => s.rouge1,
        "rouge2" => s.rouge2,
        "rougeL" => s.rouge_l,
        "rougeLsum" => s.rouge_lsum,
        other => panic!("unknown type {other}"),
    }
}

fn compare(label: &str, got: &RougeScores, want: &Value) -> f64 {
    let mut max_diff: f64 = 0.0;
    for (t, prf) in want.as_object().expect("types") {
        let g = pick(got, t);
        let w: Vec<f64> = prf
            .as_array()
            .expect("prf")
            .iter()
            .map(|x| x.as_f64().expect("f64"))
            .collect();
        for (what, gv, wv) in [
            ("P", g.precision, w[0]),
            ("R", g.recall, w[1]),
            ("F", g.fmeasure, w[2]),
        ] {
            let d = (gv - wv).abs();
            assert!(d <= TOL, "{label} {t} {what}: got {gv}, want {wv}");
            max_diff = max_diff.max(d);
        }
    }
    max_diff
}

#[test]
fn rouge_matches_rouge_score() {
    let cases = fixture("rouge.json");
    let mut max_diff: f64 = 0.0;
    for c in cases.as_array().expect("cases") {
        let refs = strings(&c["references"]);
        let hyp = c["hypothesis"].as_str().expect("hyp");
        for (key, stem) in [("plain", false), ("stem", true)] {
            let scorer = RougeScorer::new(stem);
            let label = format!("{} {key}", c["id"]);
            assert_eq!(
                scorer.tokenize(hyp),
                strings(&c[format!("{key}_tokens")]),
                "{label}"
            );
            max_diff = max_diff.max(compare(&label, &scorer.score_multi(&refs, hyp), &c[key]));
            let first = scorer.score(&refs[0], hyp);
            max_diff = max_diff.max(compare(&label, &first, &c[format!("{key}_first_ref")]));
        }
    }
    println!("ROUGE: max abs diff {max_diff:e}");
}

#[test]
fn porter_matches_nltk_in_all_modes() {
    let f = fixture("porter.json");
    for (mode_name, mode) in [
        ("nltk", Mode::NltkExtensions),
        ("martin", Mode::MartinExtensions),
        ("original", Mode::OriginalAlgorithm),
    ] {
        let stemmer = PorterStemmer::new(mode);
        let words = f[mode_name].as_object().expect("words");
        let mut wrong = Vec::new();
        for (w, want) in words {
            let got = stemmer.stem(w);
            if got != want.as_str().expect("stem") {
                wrong.push(format!("{w}: got {got}, want {want}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{mode_name}: {} of {} wrong: {wrong:?}",
            wrong.len(),
            words.len()
        );
    }
}
