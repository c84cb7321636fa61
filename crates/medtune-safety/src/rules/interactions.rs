//! Drug interactions: every pair among the drugs named in the question, the answer and the
//! patient's medications, with classes expanded, against `drug_interactions.csv`.

use super::{FieldText, UNVERIFIED_NOTE};
use crate::drugs::{DrugIndex, Mention};
use crate::report::{Category, Warning, RISK_CAUTION, RISK_SERIOUS};
use crate::tables::InteractionRow;
use std::collections::{BTreeSet, HashSet};

/// An interaction row with both sides resolved to generics.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    row: InteractionRow,
    side_a: BTreeSet<String>,
    side_b: BTreeSet<String>,
}

/// All interaction rules.
#[derive(Debug, Clone)]
pub(crate) struct Interactions {
    rules: Vec<Rule>,
}

impl Interactions {
    /// Resolves member lists with a first drug index. Returns the rules and the literal substance
    /// names ("alcohol", "St John's wort") that the final index must also recognise.
    pub fn resolve(rows: Vec<InteractionRow>, index: &DrugIndex) -> (Self, Vec<String>) {
        let mut literals = BTreeSet::new();
        let rules = rows
            .into_iter()
            .map(|row| {
                let (mut side_a, lit_a) = index.resolve_members(&row.members_a);
                let (mut side_b, lit_b) = index.resolve_members(&row.members_b);
                // A member list that is only a note ("(class: QT-prolonging drugs; ...)") falls
                // back to the side's name, which a class in drug_classes.csv can define.
                if side_a.is_empty() && lit_a.is_empty() {
                    side_a = index.resolve_members(&row.drug_a).0;
                }
                if side_b.is_empty() && lit_b.is_empty() {
                    side_b = index.resolve_members(&row.drug_b).0;
                }
                side_a.extend(lit_a.iter().cloned());
                side_b.extend(lit_b.iter().cloned());
                literals.extend(lit_a);
                literals.extend(lit_b);
                Rule {
                    row,
                    side_a,
                    side_b,
                }
            })
            .collect();
        (Self { rules }, literals.into_iter().collect())
    }

    /// Warnings for every rule matched by a pair of distinct mentions across `fields`.
    pub fn check(&self, fields: &[&FieldText], index: &DrugIndex) -> Vec<Warning> {
        // Every (field, mention, ingredient) found anywhere.
        let mut found: Vec<(usize, &Mention, &str)> = Vec::new();
        for (fi, ft) in fields.iter().enumerate() {
            for m in &ft.mentions {
                for g in index.ingredients(m) {
                    found.push((fi, m, g.as_str()));
                }
            }
        }
        let mut out = Vec::new();
        let mut seen: HashSet<(usize, String, String)> = HashSet::new();
        for (ri, rule) in self.rules.iter().enumerate() {
            if rule.side_a.is_empty() || rule.side_b.is_empty() {
                continue;
            }
            for (i, &(fa, ma, ga)) in found.iter().enumerate() {
                if !rule.side_a.contains(ga) {
                    continue;
                }
                for (j, &(fb, mb, gb)) in found.iter().enumerate() {
                    if i == j || !rule.side_b.contains(gb) {
                        continue;
                    }
                    let same_mention = fa == fb && ma.range == mb.range;
                    // One product's own ingredients do not interact; the same ingredient only
                    // counts twice when it comes from two different products (duplication rows).
                    if same_mention || (ga == gb && ma.entry == mb.entry) {
                        continue;
                    }
                    let key = if ga <= gb {
                        (ri, ga.to_owned(), gb.to_owned())
                    } else {
                        (ri, gb.to_owned(), ga.to_owned())
                    };
                    if !seen.insert(key) {
                        continue;
                    }
                    let ev_field = if fields[fb].field == crate::report::Field::Answer {
                        fb
                    } else {
                        fa
                    };
                    let ev_range = if ev_field == fb {
                        mb.range.clone()
                    } else {
                        ma.range.clone()
                    };
                    out.push(self.warning(rule, ga, gb, fields[ev_field].evidence(ev_range)));
                }
            }
        }
        out
    }

    fn warning(&self, rule: &Rule, a: &str, b: &str, evidence: crate::report::Evidence) -> Warning {
        let r = &rule.row;
        let sev = r.severity.to_lowercase();
        let severe =
            sev.contains("contraindicated") || sev.contains("high") || sev.contains("major");
        let pair = if a == b {
            format!("{a} from more than one product")
        } else {
            format!("{a} + {b}")
        };
        let message = if r.verified {
            let lead = if sev.starts_with("contraindicated") {
                "Do not combine"
            } else {
                "Interaction"
            };
            format!(
                "{lead}: {pair} ({}): {}. {}.",
                r.severity,
                r.effect,
                r.management.trim_end_matches('.')
            )
        } else {
            format!(
                "{pair} may interact ({}): {}. {} {UNVERIFIED_NOTE}.",
                r.severity,
                r.effect,
                r.management.trim_end_matches('.')
            )
        };
        let risk_level = if severe && r.verified {
            RISK_SERIOUS
        } else {
            RISK_CAUTION
        };
        Warning {
            category: Category::Interaction,
            subcategory: r.severity.clone(),
            message,
            evidence: Some(evidence),
            source_row_id: r.id.clone(),
            verified: r.verified,
            risk_level,
        }
    }

    /// Rule id and resolved sides, for tests and diagnostics.
    #[cfg(test)]
    pub fn sides(&self, id: &str) -> Option<(&BTreeSet<String>, &BTreeSet<String>)> {
        self.rules
            .iter()
            .find(|r| r.row.id == id)
            .map(|r| (&r.side_a, &r.side_b))
    }
}

#[cfg(test)]
mod tests {
    use crate::tables::{TableTexts, Tables};
    use crate::{Config, Validator};

    #[test]
    fn class_rows_resolve_to_members_and_literals() {
        let t = Tables::parse(&TableTexts::embedded()).expect("tables");
        let first = crate::drugs::DrugIndex::build(&t, &[]).expect("index");
        let (rules, literals) = super::Interactions::resolve(t.interactions.clone(), &first);
        let (a, b) = rules.sides("A6").expect("A6");
        assert!(a.contains("oxycodone") && a.contains("tramadol"), "{a:?}");
        assert!(
            b.contains("alprazolam") && b.contains("alcohol") && b.contains("pregabalin"),
            "{b:?}"
        );
        let (a, b) = rules.sides("A8").expect("A8");
        assert!(a.contains("sildenafil") && b.contains("nitroglycerin"));
        let (a, b) = rules.sides("ONC-21").expect("ONC-21");
        assert!(
            a.is_empty() && b.is_empty(),
            "QT membership is left to the user"
        );
        assert!(
            literals.iter().any(|l| l == "st john's wort"),
            "{literals:?}"
        );
        assert!(!literals.iter().any(|l| l == "topical"), "{literals:?}");
        // The literal names are recognised in text by the final index.
        let v = Validator::new(Config::default()).expect("validator");
        let r = v.check("Can I drink alcohol with my Xanax?", "", None);
        assert!(
            r.of(crate::Category::Interaction).next().is_none(),
            "Xanax + alcohol has no opioid"
        );
        let r = v.check("Can I drink alcohol with oxycodone?", "", None);
        assert!(r
            .of(crate::Category::Interaction)
            .any(|w| w.source_row_id == "A6"));
    }
}
