//! Property tests: arbitrary Unicode (and dose-like token soup) never panics, and every evidence
//! span is a valid slice of the field it names.

use medtune_safety::{Config, Evidence, Field, PatientContext, SafetyReport, Validator};
use proptest::prelude::*;
use std::sync::OnceLock;

fn v() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new(Config::default()).expect("validator"))
}

fn span_ok(e: &Evidence, q: &str, a: &str, ctx: &str) -> bool {
    let src = match e.field {
        Field::Question => q,
        Field::Answer => a,
        Field::Context => ctx,
    };
    e.start <= e.end && src.get(e.start..e.end) == Some(e.text.as_str())
}

fn assert_spans(r: &SafetyReport, q: &str, a: &str, ctx: &str) {
    for w in &r.warnings {
        if let Some(e) = &w.evidence {
            assert!(span_ok(e, q, a, ctx), "bad span {e:?}");
        }
        assert!(w.risk_level <= 3);
    }
    for d in &r.drugs {
        assert!(span_ok(&d.evidence, q, a, ctx), "bad span {:?}", d.evidence);
    }
    assert!(r.risk_level <= 3);
}

/// Tokens that drive the drug, dose, frequency and negation code paths.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("oxycodone".to_owned()),
        Just("Percocet".to_owned()),
        Just("methadone".to_owned()),
        Just("fentanyl patch".to_owned()),
        Just("µg/hr".to_owned()),
        Just("mcg".to_owned()),
        Just("mg".to_owned()),
        Just("g".to_owned()),
        Just("q6h".to_owned()),
        Just("every 4 to 6 hours".to_owned()),
        Just("twice a day".to_owned()),
        Just("weekly".to_owned()),
        Just("no".to_owned()),
        Just("chest pain".to_owned()),
        Just("sweating".to_owned()),
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just("IV".to_owned()),
        (0u32..100_000).prop_map(|n| n.to_string()),
        "\\PC{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_unicode_never_panics(q in "\\PC*", a in "(?s).*", med in ".*") {
        let ctx = PatientContext { medications: vec![med.clone()], pregnant: Some(true), ..Default::default() };
        let r = v().check(&q, &a, Some(&ctx));
        assert_spans(&r, &q, &a, &med);
        let r = v().check_question(&a, None);
        assert_spans(&r, &a, "", "");
    }

    #[test]
    fn dose_token_soup_never_panics(tokens in proptest::collection::vec(token(), 0..40)) {
        let text = tokens.join(" ");
        let r = v().check(&text, &text, None);
        assert_spans(&r, &text, &text, "");
        if let Some(m) = r.mme_per_day {
            prop_assert!(m.is_finite() && m >= 0.0);
        }
        for t in &r.daily_totals {
            prop_assert!(t.mg_per_day.is_finite());
        }
    }
}
