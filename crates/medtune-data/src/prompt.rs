//! Prompt building: a [`Record`] becomes chat messages plus the exact answer text the model must
//! produce, in one of three answer formats.

use crate::template::Message;
use crate::{Error, Record, Result};
use serde::{Deserialize, Serialize};

/// How the assistant answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFormat {
    /// The reference answer text.
    FreeText,
    /// `{"answer": "yes"}`, plus `"dose": "low"` for dosing questions.
    YesNoJson,
    /// The letter of the correct option.
    McqLetter,
}

/// Prompt settings (`[prompt]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptConfig {
    /// Answer format.
    pub answer_format: AnswerFormat,
    /// Optional system prompt (first message).
    #[serde(default)]
    pub system_prompt: Option<String>,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig {
            answer_format: AnswerFormat::FreeText,
            system_prompt: None,
        }
    }
}

/// Messages up to the user turn, and the answer the assistant should give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// System (optional) and user messages.
    pub messages: Vec<Message>,
    /// The assistant's answer text.
    pub answer: String,
}

/// True for dosing questions (Q-Pain and generated vignettes), whose JSON answer has a dose.
fn is_dosing(r: &Record) -> bool {
    r.dose.is_some() || r.qtype.as_deref() == Some("dosing")
}

/// Builds the prompt of `record` in `cfg`'s format.
pub fn build_prompt(record: &Record, cfg: &PromptConfig) -> Result<Prompt> {
    let bad = |m: &str| Error::Record {
        id: record.id.clone(),
        message: m.to_string(),
    };
    let mut user = String::new();
    if let Some(ctx) = record.context.as_deref().filter(|c| !c.trim().is_empty()) {
        user.push_str("Context:\n");
        user.push_str(ctx);
        user.push_str("\n\nQuestion: ");
    }
    user.push_str(&record.question);
    let answer = match cfg.answer_format {
        AnswerFormat::FreeText => record.answer.clone(),
        AnswerFormat::McqLetter => {
            if record.options.is_empty() {
                return Err(bad("mcq_letter format needs options"));
            }
            user.push_str("\n\n");
            for (i, o) in record.options.iter().enumerate() {
                user.push_str(&format!("{}. {o}\n", Record::option_letter(i)));
            }
            user.push_str("\nAnswer with the letter of the correct option.");
            record
                .label
                .clone()
                .ok_or_else(|| bad("mcq_letter format needs a label letter"))?
        }
        AnswerFormat::YesNoJson => {
            let decision = record
                .label
                .as_deref()
                .or(Some(record.answer.as_str()))
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| matches!(s.as_str(), "yes" | "no" | "maybe"))
                .ok_or_else(|| bad("yes_no_json format needs a yes/no/maybe label"))?;
            let q = serde_json::Value::String(decision.clone());
            if is_dosing(record) {
                user.push_str("\n\nReply in JSON: {\"answer\": \"yes\" or \"no\", \"dose\": \"low\" or \"high\" (only if yes)}.");
                match (&record.dose, decision.as_str()) {
                    (Some(d), "yes") => format!(
                        "{{\"answer\": {q}, \"dose\": {}}}",
                        serde_json::Value::String(d.clone())
                    ),
                    (None, "yes") => {
                        return Err(bad("a yes answer to a dosing question needs a dose class"))
                    }
                    _ => format!("{{\"answer\": {q}}}"),
                }
            } else {
                user.push_str("\n\nReply in JSON: {\"answer\": \"yes\", \"no\" or \"maybe\"}.");
                format!("{{\"answer\": {q}}}")
            }
        }
    };
    let mut messages = Vec::new();
    if let Some(s) = &cfg.system_prompt {
        messages.push(Message::new("system", s.clone()));
    }
    messages.push(Message::new("user", user));
    Ok(Prompt { messages, answer })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> Record {
        Record {
            id: "r".into(),
            question: "Offer morphine?".into(),
            answer: "yes".into(),
            label: Some("yes".into()),
            dose: Some("low".into()),
            qtype: Some("dosing".into()),
            context: Some("Patient with a fracture.".into()),
            source: "t".into(),
            ..Default::default()
        }
    }

    #[test]
    fn yes_no_json_with_dose() {
        let cfg = PromptConfig {
            answer_format: AnswerFormat::YesNoJson,
            system_prompt: Some("You are careful.".into()),
        };
        let p = build_prompt(&rec(), &cfg).unwrap();
        assert_eq!(p.answer, r#"{"answer": "yes", "dose": "low"}"#);
        assert_eq!(p.messages[0].role, "system");
        assert!(p.messages[1]
            .content
            .starts_with("Context:\nPatient with a fracture.\n\nQuestion: Offer morphine?"));
        let mut no = rec();
        no.label = Some("no".into());
        no.dose = None;
        assert_eq!(
            build_prompt(&no, &cfg).unwrap().answer,
            r#"{"answer": "no"}"#
        );
    }

    #[test]
    fn mcq_letter() {
        let r = Record {
            id: "m".into(),
            question: "Largest organ?".into(),
            answer: "Skin".into(),
            options: vec!["Liver".into(), "Skin".into()],
            label: Some("B".into()),
            source: "t".into(),
            ..Default::default()
        };
        let cfg = PromptConfig {
            answer_format: AnswerFormat::McqLetter,
            system_prompt: None,
        };
        let p = build_prompt(&r, &cfg).unwrap();
        assert_eq!(p.answer, "B");
        assert!(p.messages[0].content.contains("A. Liver\nB. Skin\n"));
        let mut free = r.clone();
        free.options.clear();
        assert!(build_prompt(&free, &cfg).is_err());
    }
}
