//! `emergency_red_flags.csv`: phrase and combination triggers with an escalation message.

use super::{field_error, is_verified, read_rows, split_list};
use crate::error::Result;
use crate::report::{RISK_EMERGENCY, RISK_SERIOUS};
use serde::Deserialize;

#[derive(Deserialize)]
struct Raw {
    id: String,
    category: String,
    priority: String,
    trigger_type: String,
    patterns_a: String,
    patterns_b: String,
    context_required: String,
    escalation_message: String,
    verification: String,
}

/// How a row's phrase lists combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Any phrase of list A.
    AnyPhrase,
    /// A phrase of A and a phrase of B.
    AAndB,
    /// As `AAndB`, or a phrase of B with any opioid named.
    AAndBOrOpioidB,
    /// A context phrase (or the patient context flag) and a phrase of A.
    ContextAndA,
}

/// One red-flag row.
#[derive(Debug, Clone)]
pub(crate) struct RedFlagRow {
    pub id: String,
    pub category: String,
    /// 3 for `emergency_now`, 2 for `urgent_now`.
    pub risk_level: u8,
    pub trigger: Trigger,
    pub patterns_a: Vec<String>,
    pub patterns_b: Vec<String>,
    pub context: Vec<String>,
    pub message: String,
    pub verified: bool,
}

impl RedFlagRow {
    pub fn parse_all(file: &str, text: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for (line, r) in read_rows::<Raw>(file, text)? {
            let risk_level = match r.priority.trim() {
                "emergency_now" => RISK_EMERGENCY,
                "urgent_now" => RISK_SERIOUS,
                other => {
                    return Err(field_error(
                        file,
                        line,
                        "priority",
                        format!("unknown priority {other:?}"),
                    ))
                }
            };
            let t = r.trigger_type.trim();
            let trigger = if t.starts_with("any_phrase") {
                Trigger::AnyPhrase
            } else if t.contains("CONTEXT") {
                Trigger::ContextAndA
            } else if t.contains("opioid mentioned") {
                Trigger::AAndBOrOpioidB
            } else if t.starts_with("combination") {
                Trigger::AAndB
            } else {
                return Err(field_error(
                    file,
                    line,
                    "trigger_type",
                    format!("unknown trigger {t:?}"),
                ));
            };
            let patterns_a = split_list(&r.patterns_a);
            let patterns_b = split_list(&r.patterns_b);
            let context: Vec<String> = split_list(&r.context_required)
                .into_iter()
                .map(|c| c.split('(').next().unwrap_or_default().trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect();
            if patterns_a.is_empty() && trigger != Trigger::AAndBOrOpioidB {
                return Err(field_error(file, line, "patterns_a", "empty"));
            }
            let needs_b = matches!(trigger, Trigger::AAndB | Trigger::AAndBOrOpioidB);
            if needs_b && patterns_b.is_empty() {
                return Err(field_error(
                    file,
                    line,
                    "patterns_b",
                    "empty for a combination trigger",
                ));
            }
            if trigger == Trigger::ContextAndA && context.is_empty() {
                return Err(field_error(
                    file,
                    line,
                    "context_required",
                    "empty for a context trigger",
                ));
            }
            out.push(Self {
                id: r.id.trim().to_owned(),
                category: r.category.trim().to_owned(),
                risk_level,
                trigger,
                patterns_a,
                patterns_b,
                context,
                message: r.escalation_message.trim().to_owned(),
                verified: is_verified(&r.verification),
            });
        }
        Ok(out)
    }
}
