//! `drug_interactions.csv`: drug or class pairs with severity, effect and management.

use super::{is_verified, read_rows};
use crate::error::Result;
use serde::Deserialize;

#[derive(Deserialize)]
struct Raw {
    id: String,
    drug_a: String,
    drug_a_members: String,
    drug_b: String,
    drug_b_members: String,
    severity: String,
    effect: String,
    management_hint: String,
    verification: String,
}

/// One interaction row; the member lists are resolved to drugs by the interaction rule.
#[derive(Debug, Clone)]
pub(crate) struct InteractionRow {
    pub id: String,
    /// Side names ("SSRIs / SNRIs"), used when a member list names no drug.
    pub drug_a: String,
    pub members_a: String,
    pub drug_b: String,
    pub members_b: String,
    pub severity: String,
    pub effect: String,
    pub management: String,
    pub verified: bool,
}

impl InteractionRow {
    pub fn parse_all(file: &str, text: &str) -> Result<Vec<Self>> {
        Ok(read_rows::<Raw>(file, text)?
            .into_iter()
            .map(|(_, r)| Self {
                id: r.id.trim().to_owned(),
                drug_a: r.drug_a,
                members_a: r.drug_a_members,
                drug_b: r.drug_b,
                members_b: r.drug_b_members,
                severity: r.severity.trim().to_owned(),
                effect: r.effect.trim().to_owned(),
                management: r.management_hint.trim().to_owned(),
                verified: is_verified(&r.verification),
            })
            .collect())
    }
}
