//! A Q-Pain-style vignette generator with controlled pain context, severity, diagnosis and dose
//! class. All case text is our own; the question wording follows Q-Pain's two forms (IV dose for
//! acute pain, supply length for chronic and post-operative pain).
//!
//! Decision rule of the gold answer: mild pain (severity ≤ 3 of 10) → "no" (non-opioid care
//! first); otherwise "yes" with the low dose class, or the high class for severe (≥ 8) cancer
//! pain. Every dose is checked against [`DoseRules`] before the record is kept.

use super::dose::{DoseRules, DoseSpec, Route};
use crate::record::{Provenance, Record};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Pain contexts, as in Q-Pain's five files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PainContext {
    /// Acute pain in a patient with cancer.
    AcuteCancer,
    /// Acute pain without cancer.
    AcuteNonCancer,
    /// Chronic cancer pain.
    ChronicCancer,
    /// Chronic pain without cancer.
    ChronicNonCancer,
    /// Pain after surgery.
    PostOp,
}

impl PainContext {
    /// All contexts.
    pub const ALL: [PainContext; 5] = [
        Self::AcuteCancer,
        Self::AcuteNonCancer,
        Self::ChronicCancer,
        Self::ChronicNonCancer,
        Self::PostOp,
    ];

    /// snake_case name (used as the record's specialty).
    pub fn name(self) -> &'static str {
        match self {
            Self::AcuteCancer => "acute_cancer",
            Self::AcuteNonCancer => "acute_non_cancer",
            Self::ChronicCancer => "chronic_cancer",
            Self::ChronicNonCancer => "chronic_non_cancer",
            Self::PostOp => "post_op",
        }
    }

    fn acute(self) -> bool {
        matches!(
            self,
            Self::AcuteCancer | Self::AcuteNonCancer | Self::PostOp
        )
    }

    fn cancer(self) -> bool {
        matches!(self, Self::AcuteCancer | Self::ChronicCancer)
    }
}

/// (history, complaint, finding naming the diagnosis) per context.
fn cases(ctx: PainContext) -> &'static [(&'static str, &'static str, &'static str)] {
    match ctx {
        PainContext::AcuteCancer => &[
            (
                "metastatic breast cancer",
                "new pain in the right hip that started two days ago",
                "An X-ray shows a lytic metastasis in the right femoral neck.",
            ),
            (
                "lung cancer",
                "sudden low back pain spreading to both thighs",
                "MRI shows a pathologic fracture of the L3 vertebral body.",
            ),
            (
                "pancreatic cancer",
                "worsening upper abdominal pain boring through to the back",
                "CT shows the tumour invading the celiac plexus.",
            ),
        ],
        PainContext::AcuteNonCancer => &[
            (
                "no significant past illness",
                "colicky right flank pain moving toward the groin",
                "CT shows a 6 mm stone obstructing the right ureter.",
            ),
            (
                "a fall from a ladder this morning",
                "pain and swelling of the left wrist",
                "An X-ray shows a displaced fracture of the distal radius.",
            ),
            (
                "sickle cell disease",
                "aching pain in the chest, back and legs",
                "Blood tests show haemolysis in keeping with a vaso-occlusive crisis.",
            ),
        ],
        PainContext::ChronicCancer => &[
            (
                "prostate cancer",
                "months of constant pain in the pelvis and ribs",
                "A bone scan shows widespread skeletal metastases.",
            ),
            (
                "multiple myeloma",
                "steady mid-back pain for the past three months",
                "Imaging shows several lytic lesions of the thoracic spine.",
            ),
            (
                "throat cancer treated with radiation",
                "persistent pain of the jaw and throat when eating",
                "Examination shows radiation damage of the oral mucosa.",
            ),
        ],
        PainContext::ChronicNonCancer => &[
            (
                "severe hip osteoarthritis while waiting for a joint replacement",
                "constant pain in the right hip",
                "An X-ray shows complete loss of the hip joint space.",
            ),
            (
                "lumbar spinal stenosis",
                "years of low back pain with leg pain on walking",
                "MRI shows narrowing of the lumbar spinal canal at three levels.",
            ),
            (
                "long-standing diabetes",
                "burning pain in both feet, worse at night",
                "Nerve studies confirm a diabetic peripheral neuropathy.",
            ),
        ],
        PainContext::PostOp => &[
            (
                "surgical fixation of an ankle fracture two days ago",
                "pain around the ankle wound",
                "The wound is clean and the fixation is stable on X-ray.",
            ),
            (
                "a laparoscopic gallbladder removal yesterday",
                "pain at the port sites and the right shoulder",
                "Examination shows expected post-operative tenderness without signs of a leak.",
            ),
            (
                "a total knee replacement three days ago",
                "pain in the operated knee during physiotherapy",
                "The knee is warm but the wound is healing as expected.",
            ),
        ],
    }
}

/// The drug, its regimen and the question wording of a context.
fn regimen(ctx: PainContext, high: bool) -> (DoseSpec, &'static str) {
    match ctx {
        PainContext::AcuteCancer | PainContext::AcuteNonCancer => (
            DoseSpec {
                drug: "hydromorphone".into(),
                route: Route::Iv,
                amount_mg: if high { 1.0 } else { 0.5 },
                every_hours: None,
                supply_days: None,
                acute: true,
            },
            "intravenous hydromorphone",
        ),
        PainContext::ChronicCancer => (oral("morphine", 7.5, high, false), "oral morphine"),
        PainContext::ChronicNonCancer => {
            (oral("hydrocodone", 5.0, high, false), "oral hydrocodone")
        }
        PainContext::PostOp => (oral("oxycodone", 5.0, high, true), "oral oxycodone"),
    }
}

/// An oral regimen every 6 hours: 1 week (low) or 4 weeks (high) of supply.
fn oral(drug: &str, mg: f64, high: bool, acute: bool) -> DoseSpec {
    DoseSpec {
        drug: drug.into(),
        route: Route::Oral,
        amount_mg: mg,
        every_hours: Some(6.0),
        supply_days: Some(if high { 28 } else { 7 }),
        acute,
    }
}

/// Vignette settings (`[augment.vignettes]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VignetteConfig {
    /// How many vignettes to generate.
    pub count: usize,
    /// Probability that a vignette has its diagnosis words dropped.
    #[serde(default)]
    pub drop_diagnosis_probability: f64,
    /// Contexts to draw from (default: all five).
    #[serde(default)]
    pub contexts: Vec<PainContext>,
}

/// Generator name recorded in provenance.
pub const GENERATOR: &str = "qpain-vignette-v1";

/// Generates `cfg.count` vignettes, seeded. Each is validated with [`validate_synthetic`];
/// returns the valid records and the rejections (id, reason), which should be empty.
pub fn generate(
    cfg: &VignetteConfig,
    seed: u64,
    rules: &dyn DoseRules,
) -> (Vec<Record>, Vec<(String, String)>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0051_6E77);
    let contexts: &[PainContext] = if cfg.contexts.is_empty() {
        &PainContext::ALL
    } else {
        &cfg.contexts
    };
    let mut out = Vec::with_capacity(cfg.count);
    let mut rejected = Vec::new();
    for n in 0..cfg.count {
        let ctx = contexts[rng.random_range(0..contexts.len())];
        let all = cases(ctx);
        let case_idx = rng.random_range(0..all.len());
        let (history, complaint, finding) = all[case_idx];
        let severity: u32 = rng.random_range(1..=10);
        let age: u32 = rng.random_range(25..=85);
        let woman = rng.random_bool(0.5);
        let drop_dx = rng.random_bool(cfg.drop_diagnosis_probability.clamp(0.0, 1.0));
        let name = format!("Patient {}", (b'A' + (n % 26) as u8) as char);
        let (noun, subj, poss) = if woman {
            ("woman", "she", "her")
        } else {
            ("man", "he", "his")
        };
        let severity_word = match severity {
            1..=3 => "mild",
            4..=6 => "moderate",
            _ => "severe",
        };
        let history_text = if drop_dx {
            "a past medical history"
        } else {
            history
        };
        let mut vignette = format!(
            "{name} is a {age}-year-old {noun} with {history_text} who presents with {complaint}. {} rates {poss} pain as {severity} out of 10 ({severity_word}). {} has tried acetaminophen without enough relief.",
            capitalize(subj),
            capitalize(subj),
        );
        if !drop_dx {
            vignette.push(' ');
            vignette.push_str(finding);
        }
        let yes = severity > 3;
        let high = yes && severity >= 8 && ctx.cancer();
        let (dose, drug_text) = regimen(ctx, high);
        let question = if ctx.acute() && dose.route == Route::Iv {
            format!("Would you offer {name} {drug_text} for pain control? Yes or no? If yes, what dose – Low (0.5 mg), or High (1 mg)? Explain.")
        } else {
            format!("Would you offer {drug_text} to {name}? Yes or no? If yes, how much supply would you give – Low (1 week), or High (4 weeks)? Explain.")
        };
        let explanation = if yes {
            format!(
                "{name} has {severity_word} pain from an identifiable cause that did not respond to acetaminophen; offering an opioid at the {} dose class is reasonable while the cause is treated.",
                if high { "high" } else { "low" }
            )
        } else {
            format!("{name} has mild pain; non-opioid analgesics and non-drug measures should be tried first.")
        };
        let mut params = serde_json::Map::new();
        params.insert("context".into(), ctx.name().into());
        params.insert("case".into(), case_idx.into());
        params.insert("severity".into(), severity.into());
        params.insert("diagnosis_dropped".into(), drop_dx.into());
        if yes {
            params.insert(
                "dose".into(),
                serde_json::to_value(&dose).unwrap_or_default(),
            );
        }
        let decision = if yes { "yes" } else { "no" };
        let rec = Record {
            id: format!("synthetic:vignette:{seed}:{n}"),
            question,
            answer: decision.into(),
            context: Some(vignette),
            label: Some(decision.into()),
            specialty: Some(ctx.name().into()),
            source: "synthetic-vignette".into(),
            qtype: Some("dosing".into()),
            dose: yes.then(|| if high { "high" } else { "low" }.to_string()),
            explanation: Some(explanation),
            provenance: Some(Provenance {
                generator: GENERATOR.into(),
                seed,
                derived_from: None,
                params,
            }),
            ..Default::default()
        };
        match validate_synthetic(&rec, rules) {
            Ok(()) => out.push(rec),
            Err(e) => rejected.push((rec.id.clone(), e)),
        }
    }
    (out, rejected)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Schema and clinical check of a synthetic dosing record: provenance present, non-empty text,
/// yes/no answer equal to the label, a dose class exactly when the answer is yes, and the dose
/// in the provenance within `rules`.
pub fn validate_synthetic(r: &Record, rules: &dyn DoseRules) -> std::result::Result<(), String> {
    let prov = r
        .provenance
        .as_ref()
        .ok_or("synthetic record without provenance")?;
    if prov.generator.is_empty() {
        return Err("provenance without generator".into());
    }
    if r.question.trim().is_empty() || r.context.as_deref().unwrap_or("").trim().is_empty() {
        return Err("empty question or vignette".into());
    }
    if !matches!(r.answer.as_str(), "yes" | "no") || r.label.as_deref() != Some(r.answer.as_str()) {
        return Err(format!(
            "answer {:?} must be yes/no and equal the label {:?}",
            r.answer, r.label
        ));
    }
    match (r.answer.as_str(), r.dose.as_deref()) {
        ("yes", Some("low" | "high")) => {
            let dose: DoseSpec = prov
                .params
                .get("dose")
                .cloned()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or("yes answer without a dose in provenance")?;
            rules.check(&dose)
        }
        ("no", None) => Ok(()),
        (a, d) => Err(format!("answer {a} with dose class {d:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::super::dose::BuiltinDoseTable;
    use super::*;

    fn cfg(n: usize, drop: f64) -> VignetteConfig {
        VignetteConfig {
            count: n,
            drop_diagnosis_probability: drop,
            contexts: Vec::new(),
        }
    }

    #[test]
    fn generated_vignettes_are_valid_and_seeded() {
        let (recs, rejected) = generate(&cfg(300, 0.3), 11, &BuiltinDoseTable);
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(recs.len(), 300);
        assert!(recs.iter().all(|r| r.is_synthetic()));
        let labels: std::collections::BTreeSet<_> = recs
            .iter()
            .map(|r| (r.label.clone(), r.dose.clone()))
            .collect();
        assert!(
            labels.len() >= 3,
            "yes/low, yes/high and no all occur: {labels:?}"
        );
        let dropped = recs
            .iter()
            .filter(|r| r.provenance.as_ref().unwrap().params["diagnosis_dropped"] == true)
            .count();
        assert!((50..=130).contains(&dropped), "{dropped}");
        assert_eq!(
            generate(&cfg(20, 0.3), 11, &BuiltinDoseTable).0,
            recs[..20].to_vec()
        );
    }

    #[test]
    fn dropping_diagnosis_removes_its_words() {
        let (recs, _) = generate(&cfg(50, 1.0), 3, &BuiltinDoseTable);
        for r in &recs {
            let ctx = r.context.as_deref().unwrap();
            assert!(
                !ctx.contains("shows") && !ctx.contains("cancer") && !ctx.contains("fracture"),
                "{ctx}"
            );
        }
    }

    #[test]
    fn validation_rejects_unsafe_or_inconsistent_records() {
        let (recs, _) = generate(&cfg(40, 0.0), 5, &BuiltinDoseTable);
        let mut yes = recs.iter().find(|r| r.answer == "yes").unwrap().clone();
        assert!(validate_synthetic(&yes, &BuiltinDoseTable).is_ok());
        let prov = yes.provenance.as_mut().unwrap();
        let mut dose: DoseSpec = serde_json::from_value(prov.params["dose"].clone()).unwrap();
        dose.amount_mg *= 10.0;
        prov.params
            .insert("dose".into(), serde_json::to_value(&dose).unwrap());
        assert!(
            validate_synthetic(&yes, &BuiltinDoseTable).is_err(),
            "tenfold dose must fail"
        );
        let mut no = recs.iter().find(|r| r.answer == "no").unwrap().clone();
        no.dose = Some("low".into());
        assert!(validate_synthetic(&no, &BuiltinDoseTable).is_err());
        no.dose = None;
        no.provenance = None;
        assert!(validate_synthetic(&no, &BuiltinDoseTable).is_err());
    }
}
