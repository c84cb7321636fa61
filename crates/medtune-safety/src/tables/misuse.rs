//! `misuse_rules.csv` (written by medtune): regular expressions for requests to obtain medicines
//! without a prescription, to misuse or overdose, or to defeat abuse-deterrent forms.

use super::{field_error, read_rows, split_list};
use crate::error::Result;
use serde::Deserialize;

#[derive(Deserialize)]
struct Raw {
    id: String,
    category: String,
    subcategory: String,
    risk_level: String,
    requires_class: String,
    pattern: String,
    message: String,
}

/// One misuse rule, its pattern compiled (matched against normalised, lower-case text).
#[derive(Debug, Clone)]
pub(crate) struct MisuseRow {
    pub id: String,
    /// Configurable category (`no_prescription`, `recreational`, ...).
    pub category: String,
    pub subcategory: String,
    pub risk_level: u8,
    /// The rule fires only when a drug of one of these classes is named (empty: always).
    pub requires_class: Vec<String>,
    pub pattern: regex::Regex,
    pub message: String,
}

impl MisuseRow {
    pub fn parse_all(file: &str, text: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for (line, r) in read_rows::<Raw>(file, text)? {
            let risk_level = match r.risk_level.trim().parse::<u8>() {
                Ok(v) if v <= 3 => v,
                _ => {
                    return Err(field_error(
                        file,
                        line,
                        "risk_level",
                        format!("{:?} is not 0..=3", r.risk_level),
                    ))
                }
            };
            let pattern = regex::Regex::new(&r.pattern)
                .map_err(|e| field_error(file, line, "pattern", e.to_string()))?;
            out.push(Self {
                id: r.id.trim().to_owned(),
                category: r.category.trim().to_owned(),
                subcategory: r.subcategory.trim().to_owned(),
                risk_level,
                requires_class: split_list(&r.requires_class),
                pattern,
                message: r.message.trim().to_owned(),
            });
        }
        Ok(out)
    }
}
