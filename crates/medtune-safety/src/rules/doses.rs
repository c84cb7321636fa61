//! Daily totals per ingredient (summed over every product), maxima from `max_daily_doses.csv`,
//! the methotrexate weekly schedule, and cautions for doses that could not be read completely.

use super::{fmt_num, UNVERIFIED_NOTE};
use crate::drugs::DrugIndex;
use crate::report::{
    Category, DailyTotal, PatientContext, Regimen, Warning, RISK_CAUTION, RISK_SERIOUS,
};
use crate::tables::{DoseLimit, MaxDoseRow};
use std::collections::BTreeMap;

/// The drug whose daily schedule is an error.
const WEEKLY_ONLY: &str = "methotrexate";

/// Maximum-dose rules.
#[derive(Debug, Clone)]
pub(crate) struct DoseLimits {
    rows: Vec<MaxDoseRow>,
}

impl DoseLimits {
    pub fn new(rows: Vec<MaxDoseRow>) -> Self {
        Self { rows }
    }

    fn rows_for<'a>(&'a self, generic: &'a str) -> impl Iterator<Item = &'a MaxDoseRow> + 'a {
        self.rows.iter().filter(move |r| r.drug == generic)
    }

    /// Daily totals (mg/day) per ingredient and the warnings they raise.
    pub fn check(
        &self,
        regimens: &[Regimen],
        index: &DrugIndex,
    ) -> (Vec<DailyTotal>, Vec<Warning>) {
        let mut totals: BTreeMap<&str, (f64, &Regimen)> = BTreeMap::new();
        let mut out = Vec::new();
        for r in regimens {
            let opioid = index.in_class(&r.generic, "opioid");
            // Parenteral opioid doses are reported by the MME rule as not convertible.
            let relevant = (self.rows_for(&r.generic).next().is_some() || opioid)
                && !(opioid && r.route.as_deref() == Some("parenteral"));
            match (r.unit.as_str(), r.daily_amount()) {
                ("mg", Some(daily)) => {
                    let slot = totals.entry(r.generic.as_str()).or_insert((0.0, r));
                    slot.0 += daily;
                    if r.amount * r.count * r.doses_per_day.unwrap_or(0.0) >= slot.1.daily_amount().unwrap_or(0.0) {
                        slot.1 = r;
                    }
                }
                ("mg", None) if relevant => out.push(uncertain(r, "no frequency was found, so the daily total was not computed")),
                ("ml", _) if relevant => out.push(uncertain(r, "a liquid volume was given without its strength, so the amount of drug is unknown")),
                ("mg/kg", _) if relevant => out.push(uncertain(r, "the dose is per kilogram of body weight, so the daily total depends on the weight")),
                _ => {}
            }
            if r.generic == WEEKLY_ONLY {
                if let Some(w) = self.schedule(r) {
                    out.push(w);
                }
            }
        }
        for (generic, (total, worst)) in &totals {
            out.extend(self.over_max(generic, *total, worst));
        }
        let totals = totals
            .into_iter()
            .map(|(g, (t, _))| DailyTotal {
                generic: g.to_owned(),
                mg_per_day: t,
            })
            .collect();
        (totals, out)
    }

    /// Cautions from the patient context: a limit row written for another age group, and row
    /// notes about kidney, liver or older-age limits when the patient has that condition.
    pub fn context_cautions(&self, regimens: &[Regimen], ctx: &PatientContext) -> Vec<Warning> {
        let mut out = Vec::new();
        let mut done: Vec<(String, &'static str)> = Vec::new();
        for r in regimens {
            for row in self.rows_for(&r.generic) {
                if row.limit == DoseLimit::NoFixed {
                    continue;
                }
                let notes = row.notes.to_lowercase();
                let pop = row.population.to_lowercase();
                let mut found: Vec<(&'static str, String)> = Vec::new();
                if let Some(age) = ctx.age {
                    let min_age = if pop.contains("6+") {
                        6
                    } else if pop.contains("12+") {
                        12
                    } else if pop.starts_with("adult") {
                        18
                    } else {
                        0
                    };
                    if age < min_age {
                        found.push(("population_differs", format!(
                            "The reference maximum for {} is for {}; for a {age}-year-old the dose is different (often by weight). Check it with a pharmacist or doctor.",
                            r.generic, row.population
                        )));
                    }
                    const OLDER: [&str; 6] = ["age >", ">60", ">75", "65+", "older", "elderly"];
                    if age >= 60 && OLDER.iter().any(|k| notes.contains(k) || pop.contains(k)) {
                        found.push((
                            "older_adult_limit",
                            format!(
                                "For older adults the {} limit may be lower: {} {}",
                                r.generic, row.population, row.notes
                            ),
                        ));
                    }
                }
                if ctx.renal_impairment == Some(true)
                    && ["renal", "crcl", "egfr", "kidney"]
                        .iter()
                        .any(|k| notes.contains(k))
                {
                    found.push((
                        "renal_adjustment",
                        format!(
                            "With kidney impairment the {} limit differs: {}",
                            r.generic, row.notes
                        ),
                    ));
                }
                if ctx.hepatic_impairment == Some(true)
                    && ["hepatic", "liver"].iter().any(|k| notes.contains(k))
                {
                    found.push((
                        "hepatic_adjustment",
                        format!(
                            "With liver impairment take particular care with {}: {}",
                            r.generic, row.notes
                        ),
                    ));
                }
                for (sub, message) in found {
                    if done.iter().any(|(g, s)| g == &r.generic && *s == sub) {
                        continue;
                    }
                    done.push((r.generic.clone(), sub));
                    let message = if row.verified {
                        message
                    } else {
                        format!("{message} {UNVERIFIED_NOTE}")
                    };
                    out.push(Warning {
                        category: Category::MaxDose,
                        subcategory: sub.to_owned(),
                        message,
                        evidence: Some(r.evidence.clone()),
                        source_row_id: row.id.clone(),
                        verified: row.verified,
                        risk_level: RISK_CAUTION,
                    });
                }
            }
        }
        out
    }

    /// Methotrexate for RA/psoriasis is taken once weekly; daily intake has caused deaths.
    fn schedule(&self, r: &Regimen) -> Option<Warning> {
        let f = r.doses_per_day?;
        let row = self
            .rows_for(WEEKLY_ONLY)
            .find(|x| matches!(x.limit, DoseLimit::Weekly(_)));
        let (id, verified) = row.map_or((String::from("max_daily_doses.csv"), false), |x| {
            (x.id.clone(), x.verified)
        });
        let (sub, risk, msg) = if f >= 1.0 - 1e-9 {
            (
                "daily_methotrexate",
                RISK_SERIOUS,
                "Error: methotrexate for arthritis or psoriasis is taken ONCE A WEEK, not daily. Taking it every day by mistake has caused deaths. Check the schedule with the prescriber or pharmacist before taking another dose.",
            )
        } else if f > 1.0 / 7.0 + 1e-9 {
            (
                "more_than_weekly",
                RISK_CAUTION,
                "Methotrexate for arthritis or psoriasis is usually taken once a week; this schedule is more frequent. Check it with the prescriber or pharmacist.",
            )
        } else {
            return None;
        };
        Some(Warning {
            category: Category::DoseSchedule,
            subcategory: sub.to_owned(),
            message: msg.to_owned(),
            evidence: Some(r.evidence.clone()),
            source_row_id: id,
            verified,
            risk_level: risk,
        })
    }

    /// Compares a daily total with every limit row of the drug: above the highest limit is
    /// `over_max`; above only a lower, product-specific limit is `over_product_limit`.
    fn over_max(&self, generic: &str, total: f64, worst: &Regimen) -> Option<Warning> {
        let limits: Vec<(&MaxDoseRow, f64, &str)> = self
            .rows_for(generic)
            .filter_map(|r| match r.limit {
                DoseLimit::Daily(m) => Some((r, m, "day")),
                DoseLimit::Weekly(m) => Some((r, m, "week")),
                DoseLimit::NoFixed => None,
            })
            .collect();
        let amount_for = |per: &str| if per == "week" { total * 7.0 } else { total };
        let exceeded: Vec<&(&MaxDoseRow, f64, &str)> = limits
            .iter()
            .filter(|(_, m, per)| amount_for(per) > *m + 1e-9)
            .collect();
        let (top_row, top, top_per) = *limits.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
        let (row, max, per) = **exceeded.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
        let over_all = max >= top && per == top_per;
        let amount = amount_for(per);
        let what = format!("{} mg/{per} of {generic}", fmt_num(amount));
        let limit = format!(
            "{} mg/{per} ({}; {})",
            fmt_num(max),
            row.product_context,
            row.population
        );
        let (sub, risk, message) = if over_all {
            let risk = if row.verified {
                RISK_SERIOUS
            } else {
                RISK_CAUTION
            };
            let msg = if row.verified {
                format!("The total of {what} is above the maximum of {limit}. Do not take more than the maximum; ask a pharmacist or doctor.")
            } else {
                format!("The total of {what} may be above the commonly cited maximum of {limit} {UNVERIFIED_NOTE}.")
            };
            ("over_max", risk, msg)
        } else {
            let msg = format!(
                "The total of {what} is above the limit of {limit}, though within {} mg/{top_per} ({}). Check which product and limit apply.",
                fmt_num(top),
                top_row.product_context
            );
            ("over_product_limit", RISK_CAUTION, msg)
        };
        Some(Warning {
            category: Category::MaxDose,
            subcategory: sub.to_owned(),
            message,
            evidence: Some(worst.evidence.clone()),
            source_row_id: row.id.clone(),
            verified: row.verified,
            risk_level: risk,
        })
    }
}

fn uncertain(r: &Regimen, why: &str) -> Warning {
    Warning {
        category: Category::UncertainDose,
        subcategory: match r.unit.as_str() {
            "ml" => "liquid_volume",
            "mg/kg" => "weight_based",
            _ => "no_frequency",
        }
        .to_owned(),
        message: format!(
            "Could not check the {} dose \"{}\": {why}. Please confirm the full dose and how often to take it with a pharmacist.",
            r.generic, r.evidence.text
        ),
        evidence: Some(r.evidence.clone()),
        source_row_id: "dose_parser".to_owned(),
        verified: true,
        risk_level: RISK_CAUTION,
    }
}
