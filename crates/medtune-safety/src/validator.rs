//! The validator: builds every matcher once, then checks questions and answers.

use crate::dose::DoseParser;
use crate::drugs::DrugIndex;
use crate::error::{Error, Result};
use crate::report::{
    Action, Category, DrugFinding, Field, PatientContext, Regimen, SafetyReport, Warning,
    RISK_CAUTION,
};
use crate::rules::doses::DoseLimits;
use crate::rules::interactions::Interactions;
use crate::rules::misuse::Misuse;
use crate::rules::mme::Mme;
use crate::rules::triage::{Triage, SELF_HARM};
use crate::rules::FieldText;
use crate::tables::{TableTexts, Tables};
use crate::text::NormText;
use std::collections::HashSet;

/// Default disclaimer appended to every final text.
pub const DEFAULT_DISCLAIMER: &str = "This is general information, not medical advice. Check with a doctor or pharmacist before starting, stopping or changing any medicine.";

/// Validator settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Reference tables; [`TableTexts::embedded`] by default.
    pub tables: TableTexts,
    /// Misuse categories to enforce (`no_prescription`, `recreational`, `overdose_intent`,
    /// `defeat_abuse_deterrent`); `None` enforces every category in `misuse_rules.csv`.
    pub misuse_categories: Option<Vec<String>>,
    /// `factor_set` of `opioid_mme.csv` used for MME (default `CDC_2022_clinical`).
    pub mme_factor_set: String,
    /// Appended to every final text.
    pub disclaimer: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tables: TableTexts::embedded(),
            misuse_categories: None,
            mme_factor_set: "CDC_2022_clinical".to_owned(),
            disclaimer: DEFAULT_DISCLAIMER.to_owned(),
        }
    }
}

/// The safety validator. Build once with [`Validator::new`]; it is `Send + Sync`, so one instance
/// can serve many threads.
#[derive(Debug, Clone)]
pub struct Validator {
    index: DrugIndex,
    doses: DoseParser,
    triage: Triage,
    interactions: Interactions,
    limits: DoseLimits,
    mme: Mme,
    misuse: Misuse,
    disclaimer: String,
}

impl Validator {
    /// Parses the tables and compiles every matcher.
    pub fn new(config: Config) -> Result<Self> {
        let tables = Tables::parse(&config.tables)?;
        if !Mme::has_set(&tables.mme, &config.mme_factor_set) {
            return Err(Error::Config(format!(
                "opioid_mme.csv has no factor_set {:?}",
                config.mme_factor_set
            )));
        }
        if let Some(cats) = &config.misuse_categories {
            let known = Misuse::categories(&tables.misuse);
            if let Some(bad) = cats.iter().find(|c| !known.contains(c)) {
                return Err(Error::Config(format!(
                    "unknown misuse category {bad:?} (known: {})",
                    known.join(", ")
                )));
            }
        }
        // Interaction member lists can name substances no other table knows ("alcohol"): resolve
        // them with a first index, then build the final one with those names added.
        let first = DrugIndex::build(&tables, &[])?;
        let (interactions, literals) = Interactions::resolve(tables.interactions.clone(), &first);
        let index = DrugIndex::build(&tables, &literals)?;
        Ok(Self {
            doses: DoseParser::new()?,
            triage: Triage::new(tables.red_flags.clone())?,
            interactions,
            limits: DoseLimits::new(tables.max_doses.clone()),
            mme: Mme::new(
                tables.mme.clone(),
                config.mme_factor_set,
                tables.thresholds.clone(),
            ),
            misuse: Misuse::new(tables.misuse.clone(), config.misuse_categories.as_deref()),
            index,
            disclaimer: config.disclaimer,
        })
    }

    /// Triage before generation: emergencies, self-harm, misuse, and the drugs, doses and
    /// interactions in the question. `final_text` holds what to show before (or, when the action
    /// is `replace`, instead of) a generated answer.
    pub fn check_question(&self, question: &str, context: Option<&PatientContext>) -> SafetyReport {
        self.run(question, None, context)
    }

    /// Checks a candidate answer to `question`.
    pub fn check(
        &self,
        question: &str,
        answer: &str,
        context: Option<&PatientContext>,
    ) -> SafetyReport {
        self.run(question, Some(answer), context)
    }

    fn field<'a>(&self, field: Field, orig: &'a str) -> FieldText<'a> {
        let norm = NormText::new(orig);
        let mentions = self.index.find(&norm.text);
        FieldText {
            field,
            orig,
            norm,
            mentions,
        }
    }

    fn run(
        &self,
        question: &str,
        answer: Option<&str>,
        context: Option<&PatientContext>,
    ) -> SafetyReport {
        let meds = context
            .map(|c| c.medications.join("; "))
            .unwrap_or_default();
        let q = self.field(Field::Question, question);
        let a = answer.map(|a| self.field(Field::Answer, a));
        let c = self.field(Field::Context, &meds);
        // Answer first, so that a regimen restated from the question keeps the answer's span.
        let mut fields: Vec<&FieldText> = Vec::with_capacity(3);
        fields.extend(a.as_ref());
        fields.push(&q);
        fields.push(&c);

        let pregnant = context.and_then(|c| c.pregnant).unwrap_or(false);
        let opioid_named = fields.iter().flat_map(|f| f.mentions.iter()).any(|m| {
            self.index
                .ingredients(m)
                .iter()
                .any(|g| self.index.in_class(g, "opioid"))
        });
        let mut warnings = Vec::new();
        warnings.extend(self.triage.check(&q, false, pregnant, opioid_named));
        if let Some(a) = &a {
            warnings.extend(self.triage.check(a, true, pregnant, opioid_named));
        }
        warnings.extend(self.misuse.check(&q, &fields, &self.index));
        if let Some(a) = &a {
            warnings.extend(self.misuse.check(a, &fields, &self.index));
        }
        warnings.extend(self.interactions.check(&fields, &self.index));
        let regimens = self.regimens(&fields);
        let (daily_totals, dose_warnings) = self.limits.check(&regimens, &self.index);
        warnings.extend(dose_warnings);
        if let Some(ctx) = context {
            warnings.extend(self.limits.context_cautions(&regimens, ctx));
        }
        let (mme_per_day, mme_warnings) = self.mme.check(&regimens, &self.index);
        warnings.extend(mme_warnings);
        dedupe_emergencies(&mut warnings);
        warnings.sort_by(|x, y| {
            y.risk_level
                .cmp(&x.risk_level)
                .then(x.category.cmp(&y.category))
        });

        let drugs = fields
            .iter()
            .flat_map(|f| {
                f.mentions.iter().flat_map(move |m| {
                    self.index.ingredients(m).iter().map(move |g| DrugFinding {
                        generic: g.clone(),
                        matched: self.index.entries[m.entry].name.clone(),
                        evidence: f.evidence(m.range.clone()),
                    })
                })
            })
            .collect();
        let risk_level = warnings.iter().map(|w| w.risk_level).max().unwrap_or(0);
        let action = action_for(&warnings);
        let final_text = self.final_text(&warnings, action, answer);
        SafetyReport {
            risk_level,
            warnings,
            action,
            final_text,
            drugs,
            daily_totals,
            mme_per_day,
        }
    }

    /// Regimens from every field, with identical regimens (same drug, amount, count, frequency)
    /// counted once.
    fn regimens(&self, fields: &[&FieldText]) -> Vec<Regimen> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for f in fields {
            for d in self.doses.parse(&f.norm, &f.mentions, &self.index) {
                let key = (
                    d.generic.clone(),
                    d.unit,
                    d.amount.to_bits(),
                    d.count.to_bits(),
                    d.doses_per_day.map(f64::to_bits),
                );
                if !seen.insert(key) {
                    continue;
                }
                out.push(Regimen {
                    generic: d.generic,
                    amount: d.amount,
                    unit: d.unit.to_owned(),
                    count: d.count,
                    doses_per_day: d.doses_per_day,
                    duration_days: d.duration_days,
                    route: d.route.map(str::to_owned),
                    evidence: f.evidence(d.range),
                });
            }
        }
        out
    }

    /// Escalation messages first; then the answer with its warnings, or a replacement message;
    /// then the disclaimer.
    fn final_text(&self, warnings: &[Warning], action: Action, answer: Option<&str>) -> String {
        let mut parts: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |parts: &mut Vec<String>, s: &str| {
            if seen.insert(s.to_owned()) {
                parts.push(s.to_owned());
            }
        };
        // Escalation messages first, the supportive self-harm message before any other. They
        // carry no dose detail, so all of them are kept.
        let emergencies = warnings
            .iter()
            .filter(|w| w.category == Category::Emergency);
        for w in emergencies.clone().filter(|w| is_self_harm(w)) {
            push(&mut parts, &w.message);
        }
        for w in emergencies.filter(|w| !is_self_harm(w)) {
            push(&mut parts, &w.message);
        }
        match action {
            Action::Replace => {
                for w in warnings
                    .iter()
                    .filter(|w| blocks(w) && w.category != Category::Emergency)
                {
                    push(&mut parts, &w.message);
                }
            }
            Action::Annotate | Action::Pass => {
                let notes: Vec<&Warning> = warnings
                    .iter()
                    .filter(|w| w.category != Category::Emergency && w.risk_level >= RISK_CAUTION)
                    .collect();
                if !notes.is_empty() {
                    let list: Vec<String> =
                        notes.iter().map(|w| format!("- {}", w.message)).collect();
                    push(&mut parts, &format!("Safety notes:\n{}", list.join("\n")));
                }
                if let Some(a) = answer {
                    if !a.trim().is_empty() {
                        push(&mut parts, a.trim());
                    }
                }
            }
        }
        parts.push(self.disclaimer.clone());
        parts.join("\n\n")
    }
}

fn is_self_harm(w: &Warning) -> bool {
    w.category == Category::Emergency && w.subcategory == SELF_HARM
}

/// Warnings that withhold the answer: self-harm, misuse, and a daily methotrexate schedule.
fn blocks(w: &Warning) -> bool {
    is_self_harm(w)
        || w.category == Category::Misuse
        || (w.category == Category::DoseSchedule && w.subcategory == "daily_methotrexate")
}

fn action_for(warnings: &[Warning]) -> Action {
    if warnings.iter().any(blocks) {
        Action::Replace
    } else if warnings
        .iter()
        .any(|w| w.category == Category::Emergency || w.risk_level >= RISK_CAUTION)
    {
        Action::Annotate
    } else {
        Action::Pass
    }
}

/// The same red-flag row found in both question and answer is reported once (question kept).
fn dedupe_emergencies(warnings: &mut Vec<Warning>) {
    let mut seen = HashSet::new();
    warnings.retain(|w| w.category != Category::Emergency || seen.insert(w.source_row_id.clone()));
}
