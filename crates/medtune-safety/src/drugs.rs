//! Drug recognition: one Aho-Corasick automaton over every generic, brand, abbreviation and INN
//! spelling (leftmost-longest, whole words, on normalised text), plus drug classes.

use crate::error::{Error, Result};
use crate::tables::{ClassRow, Tables};
use crate::text::{at_word_boundaries, NormText};
use aho_corasick::{AhoCorasick, MatchKind};
use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

/// One recognisable name.
#[derive(Debug, Clone)]
pub(crate) struct NameEntry {
    /// Normalised name as matched.
    pub name: String,
    /// Canonical generics it stands for; the first is the main ingredient (Percocet: oxycodone,
    /// then acetaminophen).
    pub ingredients: Vec<String>,
}

/// A name found in a text (normalised byte range).
#[derive(Debug, Clone)]
pub(crate) struct Mention {
    pub entry: usize,
    pub range: Range<usize>,
}

/// Names, classes and the automaton.
#[derive(Debug, Clone)]
pub(crate) struct DrugIndex {
    automaton: AhoCorasick,
    pub entries: Vec<NameEntry>,
    /// class -> member generics.
    class_members: HashMap<String, Vec<String>>,
    /// normalised class alias -> class.
    class_alias: HashMap<String, String>,
    /// generic -> classes it belongs to.
    classes_of: HashMap<String, Vec<String>>,
}

/// Words left over from member lists that are not drugs ("any other diphenhydramine incl. topical").
const NOT_A_DRUG: &[&str] = &["topical", "other", "others", "etc", "see", "class"];

impl DrugIndex {
    /// Builds the index from the synonym, class, dose and MME tables, plus `extra` names
    /// (literal substances from interaction rows).
    pub fn build(tables: &Tables, extra: &[String]) -> Result<Self> {
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        let mut add = |name: &str, ingredients: &[String]| {
            let key = NormText::new(name.trim()).text;
            if key.is_empty() {
                return;
            }
            let slot = by_name.entry(key).or_default();
            for i in ingredients {
                let i = i.trim().to_lowercase();
                if !i.is_empty() && !slot.contains(&i) {
                    slot.push(i);
                }
            }
        };
        for s in &tables.synonyms {
            let mut ing = vec![s.generic.clone()];
            ing.extend(s.also_contains.iter().cloned());
            add(&s.synonym, &ing);
            add(&s.generic, &combination_parts(&s.generic));
        }
        for c in &tables.classes {
            for m in &c.members {
                add(m, std::slice::from_ref(m));
            }
        }
        for d in &tables.max_doses {
            if d.limit != crate::tables::DoseLimit::NoFixed {
                add(&d.drug, std::slice::from_ref(&d.drug));
            }
        }
        for m in &tables.mme {
            add(&m.drug, std::slice::from_ref(&m.drug));
        }
        for e in extra {
            add(e, std::slice::from_ref(e));
        }
        let mut entries: Vec<NameEntry> = by_name
            .into_iter()
            .map(|(name, ingredients)| NameEntry { name, ingredients })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(entries.iter().map(|e| e.name.as_str()))
            .map_err(|e| Error::Matcher {
                what: "drug names",
                message: e.to_string(),
            })?;
        let (class_members, class_alias, classes_of) = class_maps(&tables.classes);
        Ok(Self {
            automaton,
            entries,
            class_members,
            class_alias,
            classes_of,
        })
    }

    /// Whole-word drug names in normalised `text`, left to right.
    pub fn find(&self, text: &str) -> Vec<Mention> {
        self.automaton
            .find_iter(text)
            .filter(|m| at_word_boundaries(text, &m.range()))
            .map(|m| Mention {
                entry: m.pattern().as_usize(),
                range: m.range(),
            })
            .collect()
    }

    /// The ingredients of a mention.
    pub fn ingredients(&self, m: &Mention) -> &[String] {
        &self.entries[m.entry].ingredients
    }

    /// True when `generic` belongs to `class`.
    pub fn in_class(&self, generic: &str, class: &str) -> bool {
        self.classes_of
            .get(generic)
            .is_some_and(|c| c.iter().any(|x| x == class))
    }

    /// Resolves a member list from `drug_interactions.csv` ("SSRIs; SNRIs; linezolid", "any NSAID
    /// incl. aspirin", "dronedarone (max 10 mg simvastatin)") to generics. Terms that name no known
    /// drug or class are returned in the second set as literal substance names.
    pub fn resolve_members(&self, list: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut generics = BTreeSet::new();
        let mut literals = BTreeSet::new();
        for term in member_terms(list) {
            if let Some(class) = self.class_alias.get(&term) {
                generics.extend(self.class_members[class].iter().cloned());
                continue;
            }
            if let Some(e) = self.entries.iter().find(|e| e.name == term) {
                generics.insert(e.ingredients[0].clone());
                continue;
            }
            let mut found = false;
            for (alias, class) in &self.class_alias {
                if let Some(p) = term.find(alias.as_str()) {
                    if at_word_boundaries(&term, &(p..p + alias.len())) {
                        generics.extend(self.class_members[class].iter().cloned());
                        found = true;
                    }
                }
            }
            for m in self.find(&term) {
                generics.insert(self.entries[m.entry].ingredients[0].clone());
                found = true;
            }
            if !found && term.len() >= 4 && !NOT_A_DRUG.contains(&term.as_str()) {
                literals.insert(term);
            }
        }
        (generics, literals)
    }
}

/// "sacubitril/valsartan" -> [the pair, sacubitril, valsartan]; other names -> [name].
fn combination_parts(generic: &str) -> Vec<String> {
    let mut v = vec![generic.to_owned()];
    if generic.contains('/') {
        v.extend(
            generic
                .split('/')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty()),
        );
    }
    v
}

type ClassMaps = (
    HashMap<String, Vec<String>>,
    HashMap<String, String>,
    HashMap<String, Vec<String>>,
);

fn class_maps(rows: &[ClassRow]) -> ClassMaps {
    let mut members = HashMap::new();
    let mut alias = HashMap::new();
    let mut of: HashMap<String, Vec<String>> = HashMap::new();
    for c in rows {
        let ms: Vec<String> = c.members.iter().map(|m| NormText::new(m).text).collect();
        for m in &ms {
            of.entry(m.clone()).or_default().push(c.class.clone());
        }
        members.insert(c.class.clone(), ms);
        alias.insert(NormText::new(&c.class).text, c.class.clone());
        for a in &c.aliases {
            alias.insert(NormText::new(a).text, c.class.clone());
        }
    }
    (members, alias, of)
}

/// Splits a member list into normalised terms: parenthetical notes removed, then split at `;`,
/// `+` and "incl.", with "any", "all", "other" and "etc." trimmed.
fn member_terms(list: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut depth = 0usize;
    for c in list.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let norm = NormText::new(&plain).text;
    let mut out = Vec::new();
    for part in norm.split([';', '+']) {
        for piece in part.split(" incl. ") {
            let mut t = piece.trim();
            for prefix in ["any other ", "any ", "all ", "other ", "e.g. "] {
                t = t.strip_prefix(prefix).unwrap_or(t);
            }
            for suffix in [" etc.", " etc", " iv"] {
                t = t.strip_suffix(suffix).unwrap_or(t);
            }
            let t = t.trim_matches(|c: char| c == '.' || c == ',' || c.is_whitespace());
            if !t.is_empty() {
                out.push(t.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::TableTexts;

    fn index() -> DrugIndex {
        let t = Tables::parse(&TableTexts::embedded()).expect("tables");
        DrugIndex::build(&t, &[]).expect("index")
    }

    fn names(idx: &DrugIndex, text: &str) -> Vec<Vec<String>> {
        let n = NormText::new(text);
        idx.find(&n.text)
            .iter()
            .map(|m| idx.ingredients(m).to_vec())
            .collect()
    }

    #[test]
    fn percocet_expands_to_oxycodone_and_acetaminophen() {
        let idx = index();
        assert_eq!(
            names(&idx, "Two PERCOCET tabs"),
            vec![vec!["oxycodone", "acetaminophen"]]
        );
    }

    #[test]
    fn longest_match_first_and_word_boundaries() {
        let idx = index();
        // "Tylenol with Codeine" wins over "Tylenol".
        assert_eq!(
            names(&idx, "tylenol with codeine"),
            vec![vec!["codeine", "acetaminophen"]]
        );
        // "aspirin" inside "aspirine" is not a whole word; "ASA" is.
        assert!(names(&idx, "aspirinex").is_empty());
        assert_eq!(names(&idx, "ASA 81 mg"), vec![vec!["aspirin"]]);
    }

    #[test]
    fn inn_and_unicode_spellings() {
        let idx = index();
        assert_eq!(names(&idx, "Paracetamol"), vec![vec!["acetaminophen"]]);
        assert_eq!(names(&idx, "ＭＯＲＰＨＩＮＥ"), vec![vec!["morphine"]]);
    }

    #[test]
    fn member_lists_resolve_classes() {
        let idx = index();
        let (g, lit) = idx.resolve_members("SSRIs; SNRIs; TCAs; triptans; MAOIs; linezolid");
        assert!(g.contains("sertraline") && g.contains("duloxetine") && g.contains("phenelzine"));
        assert!(g.contains("linezolid"), "{g:?} {lit:?}");
        let (g, _) = idx.resolve_members("any NSAID incl. aspirin");
        assert!(g.contains("ibuprofen") && g.contains("aspirin"));
        let (g, lit) = idx.resolve_members(
            "verapamil; dronedarone (max 10 mg simvastatin); lomitapide (max 20 mg)",
        );
        assert!(g.contains("verapamil") || lit.contains("verapamil"));
        assert!(!g.contains("simvastatin"));
        let (g, lit) = idx.resolve_members("(class: QT-prolonging drugs; see management_hint)");
        assert!(g.is_empty() && lit.is_empty());
    }
}
