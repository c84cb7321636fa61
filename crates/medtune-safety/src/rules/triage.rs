//! Emergency triage from `emergency_red_flags.csv`: phrase and combination triggers with simple
//! negation ("no chest pain") and, on answers, conditional phrasing ("if you get chest pain").

use super::{FieldText, UNVERIFIED_NOTE};
use crate::error::{Error, Result};
use crate::report::{Category, Warning};
use crate::tables::{RedFlagRow, Trigger};
use crate::text::{at_word_boundaries, polarity, NormText, Polarity};
use aho_corasick::{AhoCorasick, MatchKind};
use std::collections::HashMap;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    A,
    B,
    Context,
}

/// All red-flag phrases in one automaton.
#[derive(Debug, Clone)]
pub(crate) struct Triage {
    rows: Vec<RedFlagRow>,
    automaton: AhoCorasick,
    /// For each phrase of the automaton: the (row, list) pairs it belongs to.
    targets: Vec<Vec<(usize, List)>>,
}

/// The category used for self-harm rows; its message replaces the answer.
pub(crate) const SELF_HARM: &str = "self-harm";

impl Triage {
    pub fn new(rows: Vec<RedFlagRow>) -> Result<Self> {
        let mut phrase_ids: HashMap<String, usize> = HashMap::new();
        let mut phrases: Vec<String> = Vec::new();
        let mut targets: Vec<Vec<(usize, List)>> = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let lists = [
                (List::A, &r.patterns_a),
                (List::B, &r.patterns_b),
                (List::Context, &r.context),
            ];
            for (list, pats) in lists {
                for p in pats {
                    let key = NormText::new(p).text;
                    let id = *phrase_ids.entry(key.clone()).or_insert_with(|| {
                        phrases.push(key);
                        targets.push(Vec::new());
                        phrases.len() - 1
                    });
                    targets[id].push((i, list));
                }
            }
        }
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&phrases)
            .map_err(|e| Error::Matcher {
                what: "red-flag phrases",
                message: e.to_string(),
            })?;
        Ok(Self {
            rows,
            automaton,
            targets,
        })
    }

    /// Red flags in one text. `answer` also drops conditional mentions and skips self-harm rows
    /// (self-harm is about the person asking). `pregnant` satisfies context rows; `opioid_named`
    /// satisfies the opioid side of overdose rows.
    pub fn check(
        &self,
        ft: &FieldText,
        answer: bool,
        pregnant: bool,
        opioid_named: bool,
    ) -> Vec<Warning> {
        let text = ft.norm.text.as_str();
        // hits[row] = first affirmed range per list.
        let mut hits: Vec<[Option<Range<usize>>; 3]> = vec![[None, None, None]; self.rows.len()];
        for m in self.automaton.find_overlapping_iter(text) {
            let r = m.range();
            if !at_word_boundaries(text, &r) {
                continue;
            }
            match polarity(text, r.start) {
                Polarity::Negated => continue,
                Polarity::Hypothetical if answer => continue,
                _ => {}
            }
            for &(row, list) in &self.targets[m.pattern().as_usize()] {
                let slot = &mut hits[row][list as usize];
                if slot.is_none() {
                    *slot = Some(r.clone());
                }
            }
        }
        let mut out = Vec::new();
        for (row, [a, b, ctx]) in self.rows.iter().zip(hits) {
            if answer && row.category == SELF_HARM {
                continue;
            }
            let evidence = match row.trigger {
                Trigger::AnyPhrase => a,
                Trigger::AAndB => a.and(b),
                Trigger::AAndBOrOpioidB => match (a, b) {
                    (Some(_), Some(b)) => Some(b),
                    (None, Some(b)) if opioid_named => Some(b),
                    _ => None,
                },
                Trigger::ContextAndA => {
                    if ctx.is_some() || pregnant {
                        a
                    } else {
                        None
                    }
                }
            };
            let Some(ev) = evidence else { continue };
            let message = if row.verified {
                row.message.clone()
            } else {
                format!("This may be urgent {UNVERIFIED_NOTE}: {}", row.message)
            };
            out.push(Warning {
                category: Category::Emergency,
                subcategory: row.category.clone(),
                message,
                evidence: Some(ft.evidence(ev)),
                source_row_id: row.id.clone(),
                verified: row.verified,
                risk_level: row.risk_level,
            });
        }
        out
    }
}
