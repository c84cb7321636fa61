//! End to end: score `tests/fixtures/pairs.jsonl` and compare every output key
//! with the sacrebleu / rouge-score / nltk / SQuAD reference vectors (1e-6).

use medtune_eval::metrics::bootstrap::Bootstrap;
use medtune_eval::metrics::pairs::{read_pairs, summarize, PairScorer};
use medtune_eval::metrics::wordnet::WordNet;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const TOL: f64 = 1e-6;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(name)).expect("read fixture");
    serde_json::from_str(&text).expect("json")
}

fn by_id(v: &Value) -> HashMap<String, Value> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| (c["id"].as_str().expect("id").to_string(), c.clone()))
        .collect()
}

fn close(label: &str, got: &Value, want: &Value) {
    let (g, w) = (got.as_f64().expect(label), want.as_f64().expect(label));
    assert!((g - w).abs() <= TOL, "{label}: got {g}, want {w}");
}

#[test]
fn every_output_key_matches_the_references() {
    let wn = WordNet::open(&fixtures().join("wordnet")).expect("wordnet subset");
    let pairs = read_pairs(&fixtures().join("pairs.jsonl")).expect("pairs");
    let scorer = PairScorer::new(&wn, None);
    let bleu = by_id(&load("bleu.json")["sentences"]);
    let rouge = by_id(&load("rouge.json"));
    let meteor = by_id(&load("meteor.json")["pairs"]);
    let squad = by_id(&load("squad.json"));
    let mut scores = Vec::new();
    for p in &pairs {
        let s = scorer.score(p).expect("score");
        let j = s.to_json();
        let id = p.id.as_str();
        let b = &bleu[id]["scores"]["exp_eff"];
        close(&format!("{id} bleu"), &j["bleu"], &b["score"]);
        close(&format!("{id} bleu_bp"), &j["bleu_bp"], &b["bp"]);
        for n in 0..4 {
            close(
                &format!("{id} bleu_precisions"),
                &j["bleu_precisions"][n],
                &b["precisions"][n],
            );
        }
        for (key, suffix) in [("plain", ""), ("stem", "_stem")] {
            for (t, prf) in rouge[id][key].as_object().expect("rouge") {
                for (k, what) in ["precision", "recall", "fmeasure"].iter().enumerate() {
                    let name = format!("{t}_{what}{suffix}");
                    close(&format!("{id} {name}"), &j[&name], &prf[k]);
                }
            }
        }
        close(&format!("{id} meteor"), &j["meteor"], &meteor[id]["meteor"]);
        close(
            &format!("{id} exact_match"),
            &j["exact_match"],
            &squad[id]["exact_match"],
        );
        close(&format!("{id} f1"), &j["f1"], &squad[id]["f1"]);
        assert!(j.get("bertscore_f1").is_none());
        scores.push(s);
    }
    let summary = summarize(&scores, &Bootstrap::default()).expect("summary");
    let c = summary.corpus_bleu;
    let want = &load("bleu.json")["corpus"]["exp/all_refs"]["score"];
    close("corpus bleu", &serde_json::json!(c.value), want);
    assert!(c.low <= c.value && c.value <= c.high, "{c:?}");
    assert_eq!(summary.n, pairs.len());
    let em = &summary.means["exact_match"];
    assert!(em.low <= em.value && em.value <= em.high);
}
