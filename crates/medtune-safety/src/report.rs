//! The report returned for every check: risk level, warnings with evidence, action and final text.

use serde::{Deserialize, Serialize};

/// Risk levels: 0 none, 1 caution, 2 serious, 3 emergency.
pub const RISK_NONE: u8 = 0;
/// Something to double-check (uncertain dose, unverified reference, MME ≥ 50).
pub const RISK_CAUTION: u8 = 1;
/// A likely harmful instruction (over a maximum, MME ≥ 90, contraindicated pair, misuse).
pub const RISK_SERIOUS: u8 = 2;
/// An emergency: escalate to emergency services or a crisis line now.
pub const RISK_EMERGENCY: u8 = 3;

/// The kind of rule that raised a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A red-flag symptom from `emergency_red_flags.csv`.
    Emergency,
    /// A drug pair from `drug_interactions.csv`.
    Interaction,
    /// A daily total above `max_daily_doses.csv`.
    MaxDose,
    /// Opioid morphine milligram equivalents per day.
    OpioidMme,
    /// A wrong schedule (methotrexate daily).
    DoseSchedule,
    /// A dose the parser could not read completely.
    UncertainDose,
    /// Obtaining, misusing or tampering with medicines.
    Misuse,
}

/// What the validator did with the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Nothing to add beyond the disclaimer.
    Pass,
    /// The answer is kept, with warnings (and any escalation message first).
    Annotate,
    /// The answer is withheld and replaced by a safety message.
    Replace,
}

/// Which input text a span points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// The user's question.
    Question,
    /// The candidate answer.
    Answer,
    /// The patient context (medication list, pregnancy flag).
    Context,
}

/// The text that triggered a warning: a byte range into the original (not normalised) field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Which input holds the span.
    pub field: Field,
    /// Start byte (inclusive) in that input.
    pub start: usize,
    /// End byte (exclusive) in that input.
    pub end: usize,
    /// The original text of the span.
    pub text: String,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    /// Rule family.
    pub category: Category,
    /// Finer kind: the red-flag category, the interaction severity, `over_max`, `mme_ge_90`, ...
    pub subcategory: String,
    /// Plain-language message shown to the user.
    pub message: String,
    /// Where in the input the finding came from, if it has one place.
    pub evidence: Option<Evidence>,
    /// The reference row behind the finding (e.g. `CARD-1`, `A8`, `max_daily_doses.csv:3`).
    pub source_row_id: String,
    /// Whether that row is verified in a stored source; unverified rows get softer wording.
    pub verified: bool,
    /// This warning's own risk level (0..=3).
    pub risk_level: u8,
}

/// A drug found in the inputs, after brand and combination expansion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrugFinding {
    /// Canonical generic name (e.g. `oxycodone`).
    pub generic: String,
    /// The name as written, normalised (e.g. `percocet`).
    pub matched: String,
    /// Where it was found.
    pub evidence: Evidence,
}

/// A parsed dosing regimen for one ingredient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regimen {
    /// Canonical generic name of the ingredient.
    pub generic: String,
    /// Amount per dose in `unit`.
    pub amount: f64,
    /// `mg`, `mcg`, `mcg/hr` (patches) or `ml`.
    pub unit: String,
    /// Units taken per dose (e.g. 2 for "two 500 mg tablets").
    pub count: f64,
    /// Doses per day (0.142857... for weekly); `None` when no frequency was found.
    pub doses_per_day: Option<f64>,
    /// Course length in days, when stated.
    pub duration_days: Option<f64>,
    /// Route when stated (`oral`, `iv`, `im`, `transdermal`, ...).
    pub route: Option<String>,
    /// The dose text.
    pub evidence: Evidence,
}

impl Regimen {
    /// Total per day in `unit`, when the frequency is known.
    pub fn daily_amount(&self) -> Option<f64> {
        self.doses_per_day.map(|f| self.amount * self.count * f)
    }
}

/// Total daily amount of one ingredient summed over every product and regimen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyTotal {
    /// Canonical generic name.
    pub generic: String,
    /// Total in mg per day (mcg converted).
    pub mg_per_day: f64,
}

/// The result of [`crate::Validator::check`] or [`crate::Validator::check_question`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SafetyReport {
    /// Highest risk among the warnings: 0 none, 1 caution, 2 serious, 3 emergency.
    pub risk_level: u8,
    /// Findings, most severe first.
    pub warnings: Vec<Warning>,
    /// What was done with the answer.
    pub action: Action,
    /// Text to show the user: escalation first, then warnings, then the answer (unless replaced),
    /// then the disclaimer.
    pub final_text: String,
    /// Drugs recognised in the question, answer and context.
    pub drugs: Vec<DrugFinding>,
    /// Daily totals per ingredient, where a full regimen was written.
    pub daily_totals: Vec<DailyTotal>,
    /// Opioid MME/day over all convertible opioids, when any was computed.
    pub mme_per_day: Option<f64>,
}

impl SafetyReport {
    /// True when any warning has this category.
    pub fn has(&self, category: Category) -> bool {
        self.warnings.iter().any(|w| w.category == category)
    }

    /// Warnings of one category.
    pub fn of(&self, category: Category) -> impl Iterator<Item = &Warning> {
        self.warnings.iter().filter(move |w| w.category == category)
    }
}

/// Optional facts about the patient that change the checks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientContext {
    /// Age in years.
    #[serde(default)]
    pub age: Option<u32>,
    /// Pregnant, or gave birth within the last year.
    #[serde(default)]
    pub pregnant: Option<bool>,
    /// Conditions, free text (e.g. `diabetes`).
    #[serde(default)]
    pub conditions: Vec<String>,
    /// Current medications, free text (e.g. `warfarin 5 mg daily`).
    #[serde(default)]
    pub medications: Vec<String>,
    /// Kidney impairment.
    #[serde(default)]
    pub renal_impairment: Option<bool>,
    /// Liver impairment.
    #[serde(default)]
    pub hepatic_impairment: Option<bool>,
}
