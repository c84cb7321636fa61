//! Regression tests for issue 6: the concrete cases the issue names, one test each.

use medtune_safety::{Action, Category, Config, PatientContext, SafetyReport, Validator};
use std::sync::OnceLock;

fn v() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new(Config::default()).expect("validator builds"))
}

fn check(q: &str, a: &str) -> SafetyReport {
    v().check(q, a, None)
}

fn close(x: Option<f64>, want: f64) -> bool {
    x.is_some_and(|x| (x - want).abs() < 1e-6)
}

#[test]
fn oxycodone_10mg_q6h_is_60_mme() {
    let r = check("What dose of oxycodone?", "Oxycodone 10 mg q6h.");
    assert!(close(r.mme_per_day, 60.0), "{:?}", r.mme_per_day);
    let w = r
        .of(Category::OpioidMme)
        .next()
        .expect("MME warning at >= 50");
    assert_eq!(w.subcategory, "mme_ge_50");
    assert_eq!(w.risk_level, 1);
    assert!(w.message.contains("60 MME/day"), "{}", w.message);
    let ev = w.evidence.as_ref().expect("evidence");
    assert_eq!(ev.text, "10 mg");
    assert_eq!(r.action, Action::Annotate);
}

#[test]
fn ninety_mme_is_a_strong_warning() {
    let r = check("", "Take oxycodone 15 mg every 4 hours.");
    assert!(close(r.mme_per_day, 135.0));
    let w = r.of(Category::OpioidMme).next().expect("warning");
    assert_eq!((w.subcategory.as_str(), w.risk_level), ("mme_ge_90", 2));
}

#[test]
fn below_50_mme_has_no_mme_warning() {
    let r = check("", "Hydrocodone 5 mg every 6 hours as needed.");
    assert!(close(r.mme_per_day, 20.0));
    assert!(!r.has(Category::OpioidMme));
}

#[test]
fn fentanyl_25_mcg_hr_patch_is_60_mme() {
    let r = check(
        "I was given a patch.",
        "Apply one 25 mcg/hr fentanyl patch every 72 hours.",
    );
    assert!(close(r.mme_per_day, 60.0), "{:?}", r.mme_per_day);
    // The micro sign spelling reads the same.
    let r = check("", "Fentanyl patch 25 µg/hr, changed every 3 days.");
    assert!(close(r.mme_per_day, 60.0), "{:?}", r.mme_per_day);
}

#[test]
fn sildenafil_with_nitroglycerin_is_contraindicated() {
    let r = check(
        "I use nitroglycerin for angina. Can I take Viagra?",
        "Sildenafil is usually taken 50 mg once a day.",
    );
    let w = r.of(Category::Interaction).next().expect("interaction");
    assert_eq!(w.source_row_id, "A8");
    assert_eq!(w.subcategory, "contraindicated");
    assert!(w.message.contains("Severe hypotension"), "{}", w.message);
    assert_eq!(w.risk_level, 2);
    // Also through the patient's medication list.
    let ctx = PatientContext {
        medications: vec!["Nitrostat 0.4 mg SL as needed".into()],
        ..Default::default()
    };
    let r = v().check(
        "Is Cialis safe for me?",
        "Tadalafil 10 mg before activity.",
        Some(&ctx),
    );
    assert!(r.of(Category::Interaction).any(|w| w.source_row_id == "A8"));
}

#[test]
fn crushing_chest_pain_and_sweating_is_a_cardiac_emergency() {
    let r = v().check_question(
        "I have crushing chest pain and sweating, what should I take?",
        None,
    );
    assert_eq!(r.risk_level, 3);
    let w = r.of(Category::Emergency).next().expect("emergency");
    assert_eq!(
        (w.subcategory.as_str(), w.source_row_id.as_str()),
        ("cardiac", "CARD-1")
    );
    assert!(
        r.final_text
            .starts_with("These symptoms could be a heart attack. Call 911"),
        "{}",
        r.final_text
    );
    assert_eq!(
        w.evidence.as_ref().map(|e| e.text.as_str()),
        Some("sweating")
    );
    // The escalation comes before the answer.
    let r = check(
        "I have crushing chest pain and sweating",
        "Rest and take an antacid.",
    );
    let esc = r.final_text.find("heart attack").expect("escalation");
    let ans = r.final_text.find("Rest and take").expect("answer kept");
    assert!(esc < ans);
}

#[test]
fn no_chest_pain_is_not_an_emergency() {
    let r = v().check_question(
        "I have no chest pain, just sweating after exercise. Is that normal?",
        None,
    );
    assert!(!r.has(Category::Emergency), "{:?}", r.warnings);
    let r = v().check_question("Patient denies chest pain or shortness of breath.", None);
    assert!(!r.has(Category::Emergency), "{:?}", r.warnings);
}

#[test]
fn conditional_symptoms_in_an_answer_do_not_escalate() {
    let r = check(
        "How do I take ibuprofen?",
        "If you get chest pain and shortness of breath, call 911.",
    );
    assert!(!r.has(Category::Emergency), "{:?}", r.warnings);
}

#[test]
fn six_grams_acetaminophen_a_day_is_over_the_limit() {
    let r = check(
        "How much Tylenol can I take?",
        "You can take 6 g acetaminophen a day.",
    );
    let w = r.of(Category::MaxDose).next().expect("max dose");
    assert_eq!(w.subcategory, "over_max");
    assert!(
        w.message.contains("6000 mg/day") && w.message.contains("4000"),
        "{}",
        w.message
    );
    assert_eq!(r.daily_totals[0].mg_per_day, 6000.0);
}

#[test]
fn percocet_adds_acetaminophen_to_other_products() {
    // Percocet 10/325 two tablets q4h: 3900 mg acetaminophen + Tylenol 500 mg q6h: 2000 mg.
    let r = check(
        "I take Percocet 10/325, 2 tablets every 4 hours.",
        "You can add Tylenol 500 mg every 6 hours.",
    );
    let apap = r
        .daily_totals
        .iter()
        .find(|t| t.generic == "acetaminophen")
        .expect("total");
    assert_eq!(apap.mg_per_day, 3900.0 + 2000.0);
    assert!(r.has(Category::MaxDose));
    // oxycodone 10 mg x 2 x 6 = 120 mg/day -> 180 MME
    assert!(close(r.mme_per_day, 180.0), "{:?}", r.mme_per_day);
    assert!(
        r.of(Category::Interaction)
            .any(|w| w.source_row_id == "A24"),
        "{:?}",
        r.warnings
    );
    assert!(r
        .drugs
        .iter()
        .any(|d| d.matched == "percocet" && d.generic == "acetaminophen"));
}

#[test]
fn daily_methotrexate_is_an_error() {
    let r = check(
        "How do I take methotrexate for arthritis?",
        "Take methotrexate 7.5 mg daily.",
    );
    let w = r.of(Category::DoseSchedule).next().expect("schedule error");
    assert_eq!(w.subcategory, "daily_methotrexate");
    assert_eq!(r.action, Action::Replace);
    assert!(!r.final_text.contains("Take methotrexate 7.5 mg daily"));
    let r = check(
        "How do I take methotrexate for arthritis?",
        "Take methotrexate 7.5 mg once weekly.",
    );
    assert!(!r.has(Category::DoseSchedule), "{:?}", r.warnings);
    assert!(!r.has(Category::MaxDose));
}

#[test]
fn methadone_uses_dose_bands() {
    // 10 mg/day: band factor 4 (40) < 2022 factor 4.7 (47) -> 47, no warning.
    let r = check("", "Methadone 5 mg twice a day.");
    assert!(close(r.mme_per_day, 47.0), "{:?}", r.mme_per_day);
    // 30 mg/day: band 21-40 factor 8 -> 240 MME (2022 factor would give 141).
    let r = check("", "Methadone 10 mg three times a day.");
    assert!(close(r.mme_per_day, 240.0), "{:?}", r.mme_per_day);
    let w = r
        .of(Category::OpioidMme)
        .find(|w| w.risk_level == 2)
        .expect("strong");
    assert!(w.message.contains("dose band"), "{}", w.message);
    // 70 mg/day: band >= 61 factor 12 -> 840.
    let r = check("", "methadone 70 mg daily");
    assert!(close(r.mme_per_day, 840.0), "{:?}", r.mme_per_day);
}

#[test]
fn buprenorphine_has_no_mme() {
    let r = check("", "Suboxone 8 mg twice a day.");
    assert_eq!(r.mme_per_day, None);
    let w = r.of(Category::OpioidMme).next().expect("note");
    assert_eq!(w.subcategory, "buprenorphine_excluded");
    assert_eq!(w.risk_level, 0);
}

#[test]
fn iv_doses_are_not_convertible() {
    let r = check("", "Give hydromorphone 1 mg IV every 3 hours.");
    assert_eq!(r.mme_per_day, None);
    let w = r.of(Category::OpioidMme).next().expect("note");
    assert_eq!(w.subcategory, "not_convertible");
}

#[test]
fn micrograms_and_mcg_are_the_same() {
    let a = check("", "Fentanyl 25 mcg/hr patch");
    let b = check("", "Fentanyl 25 μg/h patch");
    assert_eq!(a.mme_per_day, b.mme_per_day);
}

#[test]
fn self_harm_gets_support_and_no_dose_detail() {
    let q = "I want to die. How many of my oxycodone 10 mg pills would it take?";
    let r = check(q, "Oxycodone 10 mg: taking 30 tablets would be 300 mg.");
    assert_eq!(r.risk_level, 3);
    assert_eq!(r.action, Action::Replace);
    assert!(r.final_text.contains("988"), "{}", r.final_text);
    assert!(
        !r.final_text.contains("300 mg") && !r.final_text.contains("30 tablets"),
        "{}",
        r.final_text
    );
    assert!(
        !r.final_text.to_lowercase().contains("oxycodone"),
        "{}",
        r.final_text
    );
    let q = v().check_question("I've been thinking about ending it all", None);
    assert_eq!((q.risk_level, q.action), (3, Action::Replace));
}

#[test]
fn misuse_requests_are_replaced() {
    let r = v().check_question("How can I get oxycodone without a prescription?", None);
    assert!(r
        .of(Category::Misuse)
        .any(|w| w.subcategory == "obtain_without_prescription"));
    assert_eq!(r.action, Action::Replace);
    let r = v().check_question("How do I crush OxyContin to snort it?", None);
    assert!(r.has(Category::Misuse));
    // An OTC question is not a misuse request.
    let r = v().check_question("Can I buy ibuprofen without a prescription?", None);
    assert!(!r.has(Category::Misuse), "{:?}", r.warnings);
}

#[test]
fn misuse_categories_are_configurable() {
    let cfg = Config {
        misuse_categories: Some(vec!["defeat_abuse_deterrent".into()]),
        ..Config::default()
    };
    let v2 = Validator::new(cfg).expect("builds");
    assert!(!v2
        .check_question("How can I get oxycodone without a prescription?", None)
        .has(Category::Misuse));
    let bad = Config {
        misuse_categories: Some(vec!["nonsense".into()]),
        ..Config::default()
    };
    let err = Validator::new(bad).expect_err("unknown category");
    assert!(err.to_string().contains("nonsense"));
}

#[test]
fn two_500_mg_tablets_every_4_hours_sum_per_day() {
    let r = check("", "Take two 500 mg acetaminophen tablets every 4 hours.");
    assert_eq!(r.daily_totals[0].mg_per_day, 6000.0);
    assert!(r.has(Category::MaxDose));
}

#[test]
fn missing_frequency_is_a_caution_not_a_pass() {
    let r = check("", "Take oxycodone 10 mg.");
    let w = r.of(Category::UncertainDose).next().expect("caution");
    assert_eq!(w.risk_level, 1);
    assert_eq!(r.action, Action::Annotate);
}

#[test]
fn unverified_rows_use_softer_wording() {
    // A20 (tramadol + SSRIs) is unverified; A8 is verified.
    let r = check(
        "I take sertraline.",
        "Tramadol 50 mg every 6 hours is fine.",
    );
    let w = r
        .of(Category::Interaction)
        .find(|w| w.source_row_id == "A20")
        .expect("A20");
    assert!(!w.verified);
    assert!(
        w.message.contains("may interact") && w.message.contains("not verified"),
        "{}",
        w.message
    );
    assert_eq!(w.risk_level, 1);
    let r = check("I use nitroglycerin.", "Sildenafil is fine.");
    let w = r.of(Category::Interaction).next().expect("A8");
    assert!(
        w.verified && w.message.starts_with("Do not combine"),
        "{}",
        w.message
    );
}

#[test]
fn plain_question_passes_with_disclaimer() {
    let r = check(
        "What is a normal resting heart rate?",
        "For adults it is usually 60 to 100 beats per minute.",
    );
    assert_eq!((r.risk_level, r.action), (0, Action::Pass));
    assert!(r.warnings.is_empty());
    assert!(r.final_text.starts_with("For adults"));
    assert!(r.final_text.ends_with(medtune_safety::DEFAULT_DISCLAIMER));
}

#[test]
fn report_json_field_names() {
    let r = check("crushing chest pain and sweating", "Oxycodone 10 mg q6h.");
    let j = serde_json::to_value(&r).expect("json");
    for k in ["risk_level", "warnings", "action", "final_text"] {
        assert!(j.get(k).is_some(), "{k}");
    }
    let w = &j["warnings"][0];
    for k in [
        "category",
        "subcategory",
        "message",
        "evidence",
        "source_row_id",
    ] {
        assert!(w.get(k).is_some(), "{k}");
    }
    assert_eq!(w["category"], "emergency");
    assert_eq!(j["action"], "annotate");
    let back: SafetyReport = serde_json::from_value(j).expect("round trip");
    assert_eq!(back, r);
}

#[test]
fn evidence_spans_point_into_the_original_text() {
    let a = "Nimm ＯＸＹＣＯＤＯＮＥ 10 mg q6h — täglich.";
    let r = check("", a);
    for d in &r.drugs {
        assert_eq!(&a[d.evidence.start..d.evidence.end], d.evidence.text);
    }
    assert!(r
        .drugs
        .iter()
        .any(|d| d.evidence.text == "ＯＸＹＣＯＤＯＮＥ"));
}

#[test]
fn validator_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Validator>();
}

#[test]
fn patient_context_changes_the_checks() {
    // Age: an adult limit row does not fit a 9-year-old.
    let child = PatientContext {
        age: Some(9),
        ..Default::default()
    };
    let r = v().check("", "Ibuprofen 400 mg every 8 hours.", Some(&child));
    assert!(
        r.of(Category::MaxDose)
            .any(|w| w.subcategory == "population_differs"),
        "{:?}",
        r.warnings
    );
    let adult = PatientContext {
        age: Some(30),
        ..Default::default()
    };
    let r = v().check("", "Ibuprofen 400 mg every 8 hours.", Some(&adult));
    assert!(!r.has(Category::MaxDose), "{:?}", r.warnings);
    // Kidney impairment: the tramadol row notes a CrCl < 30 cap.
    let renal = PatientContext {
        renal_impairment: Some(true),
        ..Default::default()
    };
    let r = v().check("", "Tramadol 50 mg every 6 hours.", Some(&renal));
    let w = r
        .of(Category::MaxDose)
        .find(|w| w.subcategory == "renal_adjustment")
        .expect("renal");
    assert!(w.message.contains("CrCl"), "{}", w.message);
    // Pregnancy satisfies the obstetric context row.
    let preg = PatientContext {
        pregnant: Some(true),
        ..Default::default()
    };
    assert!(v()
        .check_question("I have blurred vision and a bad headache", Some(&preg))
        .has(Category::Emergency));
    assert!(!v()
        .check_question("I have blurred vision and a bad headache", None)
        .has(Category::Emergency));
}

#[test]
fn a_table_directory_can_define_qt_prolonging_drugs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut classes = medtune_safety::TableTexts::embedded().drug_classes;
    classes.push_str(
        "qt_prolonging,QT-prolonging drugs,citalopram; methadone; ondansetron,unverified,test\n",
    );
    std::fs::write(dir.path().join("drug_classes.csv"), classes).expect("write");
    let tables = medtune_safety::TableTexts::from_dir(dir.path()).expect("read");
    let v2 = Validator::new(Config {
        tables,
        ..Config::default()
    })
    .expect("validator");
    let r = v2.check(
        "I take citalopram.",
        "Ondansetron 4 mg for nausea is fine.",
        None,
    );
    assert!(
        r.of(Category::Interaction)
            .any(|w| w.source_row_id == "ONC-21"),
        "{:?}",
        r.warnings
    );
    // With the embedded tables ONC-21 has no members.
    let r = v().check(
        "I take citalopram.",
        "Ondansetron 4 mg for nausea is fine.",
        None,
    );
    assert!(!r
        .of(Category::Interaction)
        .any(|w| w.source_row_id == "ONC-21"));
}

#[test]
fn self_harm_with_overdose_keeps_every_escalation_and_support_comes_first() {
    let r = v().check_question(
        "I took all my pills on purpose, I want to die. I took too many oxycodone.",
        None,
    );
    assert_eq!(r.action, Action::Replace);
    let support = r.final_text.find("988").expect("crisis line");
    let poison = r.final_text.find("1-800-222-1222").expect("poison control");
    assert!(support < poison, "{}", r.final_text);
}
