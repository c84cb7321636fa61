//! Opioid morphine milligram equivalents per day with the CDC 2022 clinical factors: methadone by
//! the CDC 2016 dose bands (and the 2022 single factor; the larger is used), fentanyl patches as
//! mcg/hr × 2.4, no MME for buprenorphine, and parenteral doses reported as not convertible.

use super::fmt_num;
use crate::drugs::DrugIndex;
use crate::report::{Category, Regimen, Warning, RISK_CAUTION, RISK_NONE, RISK_SERIOUS};
use crate::tables::{MmeRow, MmeThresholds};
use std::collections::BTreeMap;

/// Factor set whose methadone rows carry dose bands.
const BAND_SET: &str = "CDC_2016_clinical";

/// MME computation for one factor set.
#[derive(Debug, Clone)]
pub(crate) struct Mme {
    rows: Vec<MmeRow>,
    factor_set: String,
    thresholds: MmeThresholds,
}

/// Per-opioid daily exposure gathered from the regimens.
#[derive(Default)]
struct Exposure<'a> {
    oral_mg: f64,
    patch_mcg_hr: f64,
    worst: Option<&'a Regimen>,
}

impl Mme {
    pub fn new(rows: Vec<MmeRow>, factor_set: String, thresholds: MmeThresholds) -> Self {
        Self {
            rows,
            factor_set,
            thresholds,
        }
    }

    /// True when the table has rows for `set`.
    pub fn has_set(rows: &[MmeRow], set: &str) -> bool {
        rows.iter().any(|r| r.factor_set == set)
    }

    fn row(&self, set: &str, drug: &str, patch: bool) -> Option<&MmeRow> {
        self.rows.iter().find(|r| {
            r.factor_set == set && r.drug == drug && r.route_form.contains("patch") == patch
        })
    }

    /// Total MME/day (when any opioid dose was convertible) and the warnings.
    pub fn check(&self, regimens: &[Regimen], index: &DrugIndex) -> (Option<f64>, Vec<Warning>) {
        let mut out = Vec::new();
        let mut exposure: BTreeMap<&str, Exposure> = BTreeMap::new();
        let mut noted: Vec<(String, &str)> = Vec::new();
        let mut note =
            |out: &mut Vec<Warning>, r: &Regimen, sub: &'static str, msg: String, id: String| {
                if noted.iter().any(|(g, s)| g == &r.generic && *s == sub) {
                    return;
                }
                noted.push((r.generic.clone(), sub));
                out.push(Warning {
                    category: Category::OpioidMme,
                    subcategory: sub.to_owned(),
                    message: msg,
                    evidence: Some(r.evidence.clone()),
                    source_row_id: id,
                    verified: true,
                    risk_level: RISK_NONE,
                });
            };
        for r in regimens
            .iter()
            .filter(|r| index.in_class(&r.generic, "opioid"))
        {
            let g = r.generic.as_str();
            let set_row = self.row(&self.factor_set, g, r.unit == "mcg/hr");
            if g == "buprenorphine" || set_row.is_some_and(|x| x.factor.is_none()) {
                let id = self
                    .row(&self.factor_set, g, false)
                    .map_or_else(|| "opioid_mme.csv".into(), |x| x.id.clone());
                note(&mut out, r, "buprenorphine_excluded", "No MME is computed for buprenorphine: the CDC tables exclude it (partial agonist with a ceiling effect), and MME factors must not be used for opioid use disorder treatment.".into(), id);
                continue;
            }
            if r.route.as_deref() == Some("parenteral") {
                note(&mut out, r, "not_convertible", format!("The {g} dose is parenteral (IV/injection). The CDC MME factors cover oral and transdermal doses only, so no MME/day was computed for it."), "opioid_mme.csv".into());
                continue;
            }
            if set_row.is_none() {
                note(&mut out, r, "not_convertible", format!("No {} conversion factor exists for {g} in this form, so no MME/day was computed for it.", self.factor_set), "opioid_mme.csv".into());
                continue;
            }
            let e = exposure.entry(g).or_default();
            match (r.unit.as_str(), r.daily_amount()) {
                ("mcg/hr", _) => e.patch_mcg_hr += r.amount * r.count,
                ("mg", Some(d)) => e.oral_mg += d,
                _ => continue,
            }
            if e.worst.is_none() {
                e.worst = Some(r);
            }
        }
        let mut total = 0.0;
        let mut parts = Vec::new();
        let mut worst: Option<(&Regimen, f64)> = None;
        let mut any = false;
        for (g, e) in &exposure {
            let mut mme = 0.0;
            if e.patch_mcg_hr > 0.0 {
                if let Some(f) = self.row(&self.factor_set, g, true).and_then(|x| x.factor) {
                    mme += e.patch_mcg_hr * f;
                    parts.push(format!(
                        "{g} patch {} mcg/hr × {}",
                        fmt_num(e.patch_mcg_hr),
                        fmt_num(f)
                    ));
                }
            }
            if e.oral_mg > 0.0 {
                if let Some(f) = self.row(&self.factor_set, g, false).and_then(|x| x.factor) {
                    let band = self
                        .rows
                        .iter()
                        .filter(|x| x.factor_set == BAND_SET && x.drug == *g)
                        .find(|x| {
                            x.band
                                .is_some_and(|(lo, hi)| e.oral_mg >= lo && e.oral_mg < hi)
                        })
                        .and_then(|x| x.factor);
                    match band {
                        Some(b) if b > f => {
                            mme += e.oral_mg * b;
                            parts.push(format!(
                                "{g} {} mg/day × {} (CDC 2016 dose band; the 2022 factor {} gives {})",
                                fmt_num(e.oral_mg),
                                fmt_num(b),
                                fmt_num(f),
                                fmt_num(e.oral_mg * f)
                            ));
                        }
                        _ => {
                            mme += e.oral_mg * f;
                            parts.push(format!(
                                "{g} {} mg/day × {}",
                                fmt_num(e.oral_mg),
                                fmt_num(f)
                            ));
                        }
                    }
                }
            }
            if mme > 0.0 {
                any = true;
                total += mme;
                if let Some(w) = e.worst {
                    if worst.is_none_or(|(_, m)| mme > m) {
                        worst = Some((w, mme));
                    }
                }
            }
        }
        if !any {
            return (None, out);
        }
        let t = &self.thresholds;
        let level = if total >= t.strong {
            Some((format!("mme_ge_{}", fmt_num(t.strong)), RISK_SERIOUS, t.strong_id.clone(), format!("This is at or above {} MME/day: avoid this dose or have it carefully justified by the prescriber, and ask about naloxone.", fmt_num(t.strong))))
        } else if total >= t.caution {
            Some((format!("mme_ge_{}", fmt_num(t.caution)), RISK_CAUTION, t.caution_id.clone(), format!("This is at or above {} MME/day, where overdose risk rises: the prescriber should reassess benefits and risks, and naloxone should be offered.", fmt_num(t.caution))))
        } else {
            None
        };
        if let Some((sub, risk, id, advice)) = level {
            out.push(Warning {
                category: Category::OpioidMme,
                subcategory: sub,
                message: format!(
                    "Opioid dose ≈ {} MME/day ({}). {advice}",
                    fmt_num(total),
                    parts.join(" + ")
                ),
                evidence: worst.map(|(r, _)| r.evidence.clone()),
                source_row_id: id,
                verified: true,
                risk_level: risk,
            });
        }
        (Some(total), out)
    }
}
