//! Misuse and out-of-scope requests: obtaining prescription drugs without a prescription, misuse
//! or overdose, defeating abuse-deterrent forms. Categories can be switched off in the config.

use super::FieldText;
use crate::drugs::DrugIndex;
use crate::report::{Category, Warning};
use crate::tables::MisuseRow;

/// Enabled misuse rules.
#[derive(Debug, Clone)]
pub(crate) struct Misuse {
    rows: Vec<MisuseRow>,
}

impl Misuse {
    /// Keeps the rows whose category is in `enabled` (all rows when `None`).
    pub fn new(rows: Vec<MisuseRow>, enabled: Option<&[String]>) -> Self {
        let rows = rows
            .into_iter()
            .filter(|r| enabled.is_none_or(|e| e.iter().any(|c| c == &r.category)))
            .collect();
        Self { rows }
    }

    /// Categories present in the table (for validating the config).
    pub fn categories(rows: &[MisuseRow]) -> Vec<String> {
        let mut c: Vec<String> = rows.iter().map(|r| r.category.clone()).collect();
        c.sort();
        c.dedup();
        c
    }

    /// One warning per rule that matches `ft`; rules with `requires_class` need a drug of that
    /// class named in any of `all` fields.
    pub fn check(&self, ft: &FieldText, all: &[&FieldText], index: &DrugIndex) -> Vec<Warning> {
        let mut out = Vec::new();
        for r in &self.rows {
            let Some(m) = r.pattern.find(&ft.norm.text) else {
                continue;
            };
            if !r.requires_class.is_empty() {
                let named = all.iter().flat_map(|f| f.mentions.iter()).any(|mention| {
                    index
                        .ingredients(mention)
                        .iter()
                        .any(|g| r.requires_class.iter().any(|c| index.in_class(g, c)))
                });
                if !named {
                    continue;
                }
            }
            out.push(Warning {
                category: Category::Misuse,
                subcategory: r.subcategory.clone(),
                message: r.message.clone(),
                evidence: Some(ft.evidence(m.range())),
                source_row_id: r.id.clone(),
                // Our own rules: a policy, not a clinical fact to verify.
                verified: true,
                risk_level: r.risk_level,
            });
        }
        out
    }
}
