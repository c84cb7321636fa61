//! METEOR and the WordNet reader against nltk 3.x vectors (tolerance 1e-6).
//!
//! Uses the WordNet subset in `tests/fixtures/wordnet/` (only the entries the
//! test sentences look up, written by `scripts/reference_vectors/generate.py`).

use medtune_eval::metrics::meteor::Meteor;
use medtune_eval::metrics::wordnet::WordNet;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const TOL: f64 = 1e-6;

fn fixture() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/meteor.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read fixture")).expect("json")
}

fn wordnet() -> WordNet {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wordnet");
    WordNet::open(&dir).expect("open wordnet subset")
}

#[test]
fn synonym_lookups_match_nltk() {
    let wn = wordnet();
    let f = fixture();
    let syns = f["synonyms"].as_object().expect("synonyms");
    assert!(syns.len() > 50);
    for (word, want) in syns {
        let got: BTreeSet<String> = wn
            .synsets(word)
            .expect("synsets")
            .into_iter()
            .flat_map(|s| s.lemma_names)
            .collect();
        let want: BTreeSet<String> = want
            .as_array()
            .expect("list")
            .iter()
            .map(|s| s.as_str().expect("str").to_string())
            .collect();
        assert_eq!(got, want, "synonyms of {word:?}");
    }
}

#[test]
fn meteor_matches_nltk() {
    let wn = wordnet();
    let meteor = Meteor::default();
    let mut max_diff: f64 = 0.0;
    for c in fixture()["pairs"].as_array().expect("pairs") {
        let refs: Vec<&str> = c["references"]
            .as_array()
            .expect("refs")
            .iter()
            .map(|s| s.as_str().expect("str"))
            .collect();
        let hyp = c["hypothesis"].as_str().expect("hyp");
        for (r, want) in refs.iter().zip(c["single"].as_array().expect("single")) {
            let got = meteor.score(&[r], hyp, &wn).expect("meteor");
            let want = want.as_f64().expect("f64");
            assert!(
                (got - want).abs() <= TOL,
                "{} single: got {got}, want {want}",
                c["id"]
            );
            max_diff = max_diff.max((got - want).abs());
        }
        let got = meteor.score(&refs, hyp, &wn).expect("meteor");
        let want = c["meteor"].as_f64().expect("f64");
        assert!(
            (got - want).abs() <= TOL,
            "{}: got {got}, want {want}",
            c["id"]
        );
    }
    println!("METEOR: max abs diff {max_diff:e}");
}

#[test]
fn missing_wordnet_dir_names_the_file() {
    let err = WordNet::open(Path::new("/nonexistent-wordnet")).expect_err("must fail");
    assert!(err.to_string().contains("index.noun"), "{err}");
}
