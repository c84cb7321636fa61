//! Clinical constraints on generated doses.
//!
//! [`DoseRules`] is the seam to the safety crate: the pipeline checks every synthetic dose
//! through it. [`BuiltinDoseTable`] is a small table covering exactly the dose classes the
//! vignette generator can produce, with limits taken from public clinical sources:
//! - IV hydromorphone for opioid-naive adults: the injection label's initial range is 0.2–1 mg
//!   every 2–3 hours, so a single dose above 1 mg is rejected (Q-Pain's classes are 0.5 / 1 mg).
//! - Oral regimens: morphine milligram equivalents per day with the CDC 2022 conversion factors
//!   (morphine 1, hydrocodone 1, oxycodone 1.5) must stay below 50 MME/day, the CDC threshold
//!   at which benefits and risks must be reassessed.
//! - Supply: at most 7 days for acute or post-operative pain (CDC: more than 7 days is rarely
//!   needed) and at most 28 days for chronic pain (Q-Pain's "High (4 weeks)").

use serde::{Deserialize, Serialize};

/// Route of administration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Intravenous, dosed per administration.
    Iv,
    /// Oral, dosed as a regimen.
    Oral,
}

/// A dose as the generator writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoseSpec {
    /// Generic drug name, lower case.
    pub drug: String,
    /// Route.
    pub route: Route,
    /// Amount per administration, mg.
    pub amount_mg: f64,
    /// Dosing interval in hours (oral regimens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_hours: Option<f64>,
    /// Days of supply (oral regimens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supply_days: Option<u32>,
    /// Acute or post-operative (true) versus chronic (false) pain.
    pub acute: bool,
}

/// A check of a dose against clinical limits; `Err` explains the violated limit.
pub trait DoseRules: Sync {
    /// Checks one dose.
    fn check(&self, dose: &DoseSpec) -> std::result::Result<(), String>;
}

/// One row of the built-in table.
#[derive(Debug, Clone, Copy)]
struct Limit {
    drug: &'static str,
    route: Route,
    /// Maximum single dose, mg (IV).
    max_single_mg: Option<f64>,
    /// MME conversion factor (oral).
    mme_factor: Option<f64>,
}

const LIMITS: &[Limit] = &[
    Limit {
        drug: "hydromorphone",
        route: Route::Iv,
        max_single_mg: Some(1.0),
        mme_factor: None,
    },
    Limit {
        drug: "morphine",
        route: Route::Oral,
        max_single_mg: None,
        mme_factor: Some(1.0),
    },
    Limit {
        drug: "hydrocodone",
        route: Route::Oral,
        max_single_mg: None,
        mme_factor: Some(1.0),
    },
    Limit {
        drug: "oxycodone",
        route: Route::Oral,
        max_single_mg: None,
        mme_factor: Some(1.5),
    },
];

/// MME/day below which generated oral regimens must stay.
pub const MAX_MME_PER_DAY: f64 = 50.0;
/// Longest supply for acute and post-operative pain, days.
pub const MAX_ACUTE_SUPPLY_DAYS: u32 = 7;
/// Longest supply for chronic pain, days.
pub const MAX_CHRONIC_SUPPLY_DAYS: u32 = 28;

/// The built-in table (see the module docs for sources).
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinDoseTable;

/// Morphine milligram equivalents per day of an oral regimen.
pub fn mme_per_day(amount_mg: f64, every_hours: f64, factor: f64) -> f64 {
    amount_mg * (24.0 / every_hours) * factor
}

impl DoseRules for BuiltinDoseTable {
    fn check(&self, d: &DoseSpec) -> std::result::Result<(), String> {
        let limit = LIMITS
            .iter()
            .find(|l| l.drug == d.drug && l.route == d.route)
            .ok_or_else(|| {
                format!(
                    "no limit known for {} ({:?}): not allowed in synthetic data",
                    d.drug, d.route
                )
            })?;
        if d.amount_mg.is_nan() || d.amount_mg <= 0.0 {
            return Err(format!(
                "{}: dose must be positive, got {} mg",
                d.drug, d.amount_mg
            ));
        }
        if let Some(max) = limit.max_single_mg {
            if d.amount_mg > max {
                return Err(format!(
                    "{} {:?} {} mg exceeds the {max} mg single-dose limit",
                    d.drug, d.route, d.amount_mg
                ));
            }
        }
        if let Some(f) = limit.mme_factor {
            let every = d
                .every_hours
                .filter(|h| *h > 0.0)
                .ok_or_else(|| format!("{}: oral regimen needs a dosing interval", d.drug))?;
            let mme = mme_per_day(d.amount_mg, every, f);
            if mme >= MAX_MME_PER_DAY {
                return Err(format!(
                    "{} {} mg every {every} h is {mme} MME/day, not below {MAX_MME_PER_DAY}",
                    d.drug, d.amount_mg
                ));
            }
            let max_days = if d.acute {
                MAX_ACUTE_SUPPLY_DAYS
            } else {
                MAX_CHRONIC_SUPPLY_DAYS
            };
            let days = d
                .supply_days
                .ok_or_else(|| format!("{}: oral regimen needs a supply length", d.drug))?;
            if days > max_days {
                return Err(format!(
                    "{} supply of {days} days exceeds {max_days} days for {} pain",
                    d.drug,
                    if d.acute { "acute" } else { "chronic" }
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oral(drug: &str, mg: f64, h: f64, days: u32, acute: bool) -> DoseSpec {
        DoseSpec {
            drug: drug.into(),
            route: Route::Oral,
            amount_mg: mg,
            every_hours: Some(h),
            supply_days: Some(days),
            acute,
        }
    }

    #[test]
    fn limits() {
        let t = BuiltinDoseTable;
        let iv = |mg| DoseSpec {
            drug: "hydromorphone".into(),
            route: Route::Iv,
            amount_mg: mg,
            every_hours: None,
            supply_days: None,
            acute: true,
        };
        assert!(t.check(&iv(0.5)).is_ok());
        assert!(t.check(&iv(1.0)).is_ok());
        assert!(t.check(&iv(2.0)).is_err());
        assert!(t.check(&oral("oxycodone", 5.0, 6.0, 7, true)).is_ok()); // 30 MME/day
        assert!(t.check(&oral("oxycodone", 10.0, 6.0, 7, true)).is_err()); // 60 MME/day
        assert!(t.check(&oral("hydrocodone", 5.0, 6.0, 28, true)).is_err()); // acute, 28 days
        assert!(t.check(&oral("hydrocodone", 5.0, 6.0, 28, false)).is_ok());
        assert!(t.check(&oral("fentanyl", 5.0, 6.0, 7, true)).is_err());
        assert_eq!(mme_per_day(7.5, 6.0, 1.0), 30.0);
    }
}
