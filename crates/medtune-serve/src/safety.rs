//! The [`SafetyHook`] trait: triage before generation and a report on every answer. The real
//! implementation wraps `medtune-safety` (see `safety_validator.rs`).

use serde::Serialize;

/// One safety finding about a question or answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SafetyWarning {
    /// e.g. `emergency`, `interaction`, `max_dose`.
    pub category: String,
    /// Finer label inside the category.
    pub subcategory: String,
    /// Human-readable explanation.
    pub message: String,
}

/// The safety report attached to every answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SafetyReport {
    /// 0 (none) ..= 3 (emergency).
    pub risk_level: u8,
    /// Findings.
    pub warnings: Vec<SafetyWarning>,
    /// What the validator did: `pass`, `annotate` or `replace`.
    pub action: String,
    /// The text to show the user (the answer, annotated or replaced, with the disclaimer).
    pub final_text: String,
    /// The disclaimer contained in `final_text`, for display next to the answer.
    pub disclaimer: String,
}

/// Outcome of triage on a question, before any generation.
#[derive(Debug, Clone, PartialEq)]
pub enum Triage {
    /// Generate an answer as usual.
    Proceed,
    /// Do not generate: answer with the report's `final_text` (e.g. an emergency escalation).
    Answer(SafetyReport),
}

/// Safety checks the server runs on requests with safety enabled.
pub trait SafetyHook: Send + Sync + 'static {
    /// Checks the question (and optional patient context, any JSON) before generation.
    /// An `Err` is a client error (e.g. a malformed patient context) and becomes a 400.
    fn triage(
        &self,
        question: &str,
        patient_context: Option<&serde_json::Value>,
    ) -> std::result::Result<Triage, String>;

    /// Checks a generated answer and returns the report to send with it.
    fn check(
        &self,
        question: &str,
        answer: &str,
        patient_context: Option<&serde_json::Value>,
    ) -> std::result::Result<SafetyReport, String>;
}
