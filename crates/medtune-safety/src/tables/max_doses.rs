//! `max_daily_doses.csv`: per-drug maxima (per day, or per week for methotrexate).

use super::{field_error, is_verified, read_rows};
use crate::error::Result;
use serde::Deserialize;

#[derive(Deserialize)]
struct Raw {
    drug: String,
    product_context: String,
    max_daily_amount: String,
    unit: String,
    population_or_indication: String,
    limit_type: String,
    verification: String,
    notes: String,
}

/// The kind of limit a row gives, in mg.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DoseLimit {
    /// Maximum per day (or per 24 h), mg.
    Daily(f64),
    /// Maximum per week, mg, taken once weekly (methotrexate).
    Weekly(f64),
    /// No fixed maximum (opioids: use MME; warfarin: INR).
    NoFixed,
}

/// One maximum-dose row.
#[derive(Debug, Clone)]
pub(crate) struct MaxDoseRow {
    /// `max_daily_doses.csv:LINE`.
    pub id: String,
    /// Drug name with formulation notes removed ("naproxen sodium" -> "naproxen").
    pub drug: String,
    pub product_context: String,
    pub population: String,
    pub limit: DoseLimit,
    pub verified: bool,
    /// Free-text notes (renal, age and interaction caps).
    pub notes: String,
}

impl MaxDoseRow {
    pub fn parse_all(file: &str, text: &str) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for (line, r) in read_rows::<Raw>(file, text)? {
            let numbers: Vec<f64> = r
                .max_daily_amount
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .filter_map(|t| t.parse::<f64>().ok())
                .collect();
            let limit = if r.limit_type.starts_with("no_fixed") {
                DoseLimit::NoFixed
            } else {
                let Some(max) = numbers.iter().copied().reduce(f64::max) else {
                    return Err(field_error(file, line, "max_daily_amount", "no number"));
                };
                let unit = r.unit.to_ascii_lowercase();
                if !unit.starts_with("mg") {
                    return Err(field_error(
                        file,
                        line,
                        "unit",
                        format!("unit {:?} is not mg", r.unit),
                    ));
                }
                if unit.contains("week") || r.limit_type == "weekly_max" {
                    DoseLimit::Weekly(max)
                } else {
                    DoseLimit::Daily(max)
                }
            };
            out.push(Self {
                id: format!("{file}:{line}"),
                drug: clean_drug_name(&r.drug),
                product_context: r.product_context.trim().to_owned(),
                population: r.population_or_indication.trim().to_owned(),
                limit,
                verified: is_verified(&r.verification),
                notes: r.notes.trim().to_owned(),
            });
        }
        Ok(out)
    }
}

/// Drops parenthetical notes and salt or release words: "paroxetine (IR)" -> "paroxetine".
pub(crate) fn clean_drug_name(name: &str) -> String {
    let mut depth = 0usize;
    let mut plain = String::new();
    for c in name.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    const DROP: &[&str] = &[
        "sodium",
        "sulfate",
        "hydrochloride",
        "tartrate",
        "xl",
        "ir",
        "er",
        "sr",
    ];
    plain
        .split_whitespace()
        .filter(|w| !DROP.contains(&w.to_ascii_lowercase().as_str()))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_names() {
        assert_eq!(clean_drug_name("paroxetine (IR)"), "paroxetine");
        assert_eq!(clean_drug_name("naproxen sodium"), "naproxen");
        assert_eq!(clean_drug_name("bupropion XL"), "bupropion");
        assert_eq!(clean_drug_name("meperidine (pethidine)"), "meperidine");
    }
}
