//! SQuAD, classification, perplexity and percentile figures against Python
//! vectors (official SQuAD v1.1 normalisation, scikit-learn, numpy; tolerance 1e-6).

use medtune_eval::metrics::bootstrap::percentile;
use medtune_eval::metrics::classification::classification_report;
use medtune_eval::metrics::perplexity::{corpus_perplexity, perplexity};
use medtune_eval::metrics::squad;
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

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("f64"))
        .collect()
}

fn close(label: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= TOL, "{label}: got {got}, want {want}");
}

#[test]
fn squad_matches_reference() {
    for c in fixture("squad.json").as_array().expect("cases") {
        let refs = strings(&c["references"]);
        let hyp = c["hypothesis"].as_str().expect("hyp");
        let id = c["id"].as_str().expect("id");
        assert_eq!(
            squad::normalize_answer(hyp),
            c["normalized"].as_str().expect("norm"),
            "{id}"
        );
        close(
            id,
            squad::exact_match(hyp, &refs),
            c["exact_match"].as_f64().expect("em"),
        );
        close(id, squad::f1(hyp, &refs), c["f1"].as_f64().expect("f1"));
    }
}

#[test]
fn classification_matches_sklearn() {
    let f = fixture("classification.json");
    for (name, c) in f.as_object().expect("cases") {
        let r =
            classification_report(&strings(&c["y_true"]), &strings(&c["y_pred"])).expect("report");
        assert_eq!(r.labels, strings(&c["labels"]), "{name}");
        close(name, r.accuracy, c["accuracy"].as_f64().expect("acc"));
        close(name, r.macro_f1, c["macro_f1"].as_f64().expect("macro"));
        close(name, r.micro_f1, c["micro_f1"].as_f64().expect("micro"));
        close(
            name,
            r.weighted_f1,
            c["weighted_f1"].as_f64().expect("weighted"),
        );
        let (p, rc, f1) = (
            floats(&c["precision"]),
            floats(&c["recall"]),
            floats(&c["f1"]),
        );
        for (k, cls) in r.per_class.iter().enumerate() {
            close(&format!("{name} P {}", cls.label), cls.precision, p[k]);
            close(&format!("{name} R {}", cls.label), cls.recall, rc[k]);
            close(&format!("{name} F1 {}", cls.label), cls.f1, f1[k]);
            assert_eq!(
                cls.support as u64,
                c["support"][k].as_u64().expect("support")
            );
        }
        let want: Vec<Vec<usize>> = serde_json::from_value(c["confusion"].clone()).expect("matrix");
        assert_eq!(r.confusion, want, "{name}");
    }
}

#[test]
fn perplexity_and_percentiles_match_numpy() {
    let f = fixture("perplexity_percentile.json");
    let seqs: Vec<Vec<f64>> = f["sequences"]
        .as_array()
        .expect("seqs")
        .iter()
        .map(floats)
        .collect();
    for (s, want) in seqs.iter().zip(floats(&f["per_sequence"])) {
        close("sequence perplexity", perplexity(s).expect("ppl"), want);
    }
    close(
        "corpus perplexity",
        corpus_perplexity(&seqs).expect("ppl"),
        f["corpus"].as_f64().expect("corpus"),
    );
    let values = floats(&f["values"]);
    for (q, want) in f["percentiles"].as_object().expect("percentiles") {
        let q: f64 = q.parse().expect("q");
        close(
            &format!("percentile {q}"),
            percentile(&values, q).expect("pct"),
            want.as_f64().expect("f64"),
        );
    }
}
