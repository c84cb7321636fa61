//! [`ValidatorHook`]: the real [`SafetyHook`], `medtune-safety`'s validator.
//!
//! Triage runs `check_question`; when it says `replace` (self-harm, misuse) or finds an
//! emergency (risk level 3), the server answers with its `final_text` (the escalation message
//! and disclaimer) at once and generates nothing. Every answer then
//! goes through `check`. The patient context is the validator's `PatientContext` as JSON.

use crate::safety::{SafetyHook, SafetyReport, SafetyWarning, Triage};
use crate::{Error, Result};
use medtune_safety::{Action, Config, PatientContext, Validator};

/// The validator behind the server's safety checks.
pub struct ValidatorHook {
    validator: Validator,
    disclaimer: String,
}

impl ValidatorHook {
    /// Builds the validator with its embedded tables.
    pub fn new() -> Result<Self> {
        let config = Config::default();
        let disclaimer = config.disclaimer.clone();
        let validator = Validator::new(config).map_err(|e| Error::Safety(e.to_string()))?;
        Ok(ValidatorHook {
            validator,
            disclaimer,
        })
    }

    fn convert(&self, r: &medtune_safety::SafetyReport) -> SafetyReport {
        let action = match r.action {
            Action::Pass => "pass",
            Action::Annotate => "annotate",
            Action::Replace => "replace",
        };
        let warnings = r
            .warnings
            .iter()
            .map(|w| SafetyWarning {
                category: serde_json::to_value(w.category)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{:?}", w.category)),
                subcategory: w.subcategory.clone(),
                message: w.message.clone(),
            })
            .collect();
        let disclaimer = if r
            .final_text
            .trim_end()
            .ends_with(self.disclaimer.trim_end())
        {
            self.disclaimer.clone()
        } else {
            String::new()
        };
        SafetyReport {
            risk_level: r.risk_level,
            warnings,
            action: action.into(),
            final_text: r.final_text.clone(),
            disclaimer,
        }
    }
}

fn context(
    value: Option<&serde_json::Value>,
) -> std::result::Result<Option<PatientContext>, String> {
    match value {
        None => Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) => serde_json::from_str(s)
            .map(Some)
            .map_err(|e| format!("field `patient_context`: {e}")),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| format!("field `patient_context`: {e}")),
    }
}

impl SafetyHook for ValidatorHook {
    fn triage(
        &self,
        question: &str,
        patient_context: Option<&serde_json::Value>,
    ) -> std::result::Result<Triage, String> {
        let ctx = context(patient_context)?;
        let report = self.validator.check_question(question, ctx.as_ref());
        let emergency = report.risk_level >= medtune_safety::RISK_EMERGENCY;
        Ok(if report.action == Action::Replace || emergency {
            Triage::Answer(self.convert(&report))
        } else {
            Triage::Proceed
        })
    }

    fn check(
        &self,
        question: &str,
        answer: &str,
        patient_context: Option<&serde_json::Value>,
    ) -> std::result::Result<SafetyReport, String> {
        let ctx = context(patient_context)?;
        Ok(self.convert(&self.validator.check(question, answer, ctx.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emergency_question_is_answered_by_triage() {
        let hook = ValidatorHook::new().expect("validator");
        match hook.triage("I have crushing chest pain and can't breathe", None) {
            Ok(Triage::Answer(r)) => {
                assert_eq!(r.risk_level, 3);
                assert!(
                    r.warnings.iter().any(|w| w.category == "emergency"),
                    "{r:?}"
                );
                assert!(!r.disclaimer.is_empty());
            }
            other => panic!("expected an escalation, got {other:?}"),
        }
    }

    #[test]
    fn ordinary_answer_gets_disclaimer() {
        let hook = ValidatorHook::new().expect("validator");
        assert_eq!(
            hook.triage("What is hypertension?", None),
            Ok(Triage::Proceed)
        );
        let r = hook
            .check("What is hypertension?", "High blood pressure.", None)
            .expect("check");
        assert!(r.final_text.contains("High blood pressure."));
        assert!(r.final_text.contains(&r.disclaimer) && !r.disclaimer.is_empty());
    }

    #[test]
    fn bad_patient_context_is_a_client_error() {
        let hook = ValidatorHook::new().expect("validator");
        let err = hook.triage("q", Some(&json!({"age": "old"}))).unwrap_err();
        assert!(err.contains("patient_context"), "{err}");
        let ok = hook.triage(
            "q",
            Some(&json!({"age": 70, "medications": ["warfarin 5 mg daily"]})),
        );
        assert!(ok.is_ok());
    }
}
