//! Cleaning: each rule can be switched off, and counts what it changed or dropped, with a few
//! examples, in a [`CleaningReport`] (written as `cleaning_report.json`).
//!
//! Order: missing fields → normalisation (NFKC, whitespace, lowercase, regex) → missing again →
//! length in characters → length in tokens → ambiguity → exact duplicates → conflicting answers.

use crate::{Error, Record, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use unicode_normalization::UnicodeNormalization;

/// Cleaning settings (`[clean]` in the data config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanConfig {
    /// Unicode NFKC normalisation of all text fields.
    pub nfkc: bool,
    /// Whitespace normalisation: trims lines, collapses runs of spaces, at most one blank line.
    pub whitespace: bool,
    /// Lowercase all text (off by default: it hurts cased tokenizers).
    pub lowercase: bool,
    /// Regex clean-ups applied in order after the normalisations.
    pub regex: Vec<RegexRule>,
    /// Minimum question length in characters.
    pub min_question_chars: usize,
    /// Maximum question length in characters (none: no limit).
    pub max_question_chars: Option<usize>,
    /// Minimum answer length in characters.
    pub min_answer_chars: usize,
    /// Maximum answer length in characters (none: no limit).
    pub max_answer_chars: Option<usize>,
    /// Minimum question+answer length in tokens (needs a tokenizer).
    pub min_tokens: Option<usize>,
    /// Maximum question+answer length in tokens (needs a tokenizer).
    pub max_tokens: Option<usize>,
    /// Drop context-poor questions such as "Why?" or "What about it?".
    pub ambiguity_filter: bool,
    /// Drop exact duplicates (same question, context, options and answer), keeping the first.
    pub exact_duplicates: bool,
    /// What to do when the same question has different answers.
    pub conflicts: ConflictPolicy,
    /// How many examples each rule keeps in the report.
    pub max_examples: usize,
}

impl Default for CleanConfig {
    fn default() -> Self {
        CleanConfig {
            nfkc: true,
            whitespace: true,
            lowercase: false,
            regex: Vec::new(),
            min_question_chars: 3,
            max_question_chars: None,
            min_answer_chars: 1,
            max_answer_chars: None,
            min_tokens: None,
            max_tokens: None,
            ambiguity_filter: true,
            exact_duplicates: true,
            conflicts: ConflictPolicy::Report,
            max_examples: 3,
        }
    }
}

/// A regex clean-up: every match of `pattern` in `fields` is replaced by `replace`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRule {
    /// Rule name used in the report.
    pub name: String,
    /// Regex (Rust `regex` syntax).
    pub pattern: String,
    /// Replacement (`$1` refers to groups).
    #[serde(default)]
    pub replace: String,
    /// Fields to apply it to: `question`, `answer`, `context` (default question and answer).
    #[serde(default = "default_regex_fields")]
    pub fields: Vec<String>,
}

fn default_regex_fields() -> Vec<String> {
    vec!["question".into(), "answer".into()]
}

/// Policy for the same question with different answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    /// Keep all, count them in the report.
    Report,
    /// Keep the first answer, drop the rest.
    KeepFirst,
    /// Drop every record of a conflicting question.
    DropAll,
}

/// What one rule did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleReport {
    /// Whether the rule ran.
    pub enabled: bool,
    /// Records changed (normalisations) or flagged (filters).
    pub affected: usize,
    /// Records dropped by this rule.
    pub dropped: usize,
    /// A few examples: record id and what happened.
    pub examples: Vec<RuleExample>,
}

/// One example in a [`RuleReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleExample {
    /// Record id.
    pub id: String,
    /// What the rule saw or did.
    pub detail: String,
}

/// The cleaning report: counts per rule, in rule order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleaningReport {
    /// Records in.
    pub input: usize,
    /// Records out.
    pub kept: usize,
    /// Per rule, keyed by rule name.
    pub rules: BTreeMap<String, RuleReport>,
}

impl CleaningReport {
    /// Records dropped, by rule (only rules that dropped something).
    pub fn dropped_by_reason(&self) -> BTreeMap<String, usize> {
        self.rules
            .iter()
            .filter(|(_, r)| r.dropped > 0)
            .map(|(k, r)| (k.clone(), r.dropped))
            .collect()
    }

    fn rule(&mut self, name: &str, enabled: bool) -> &mut RuleReport {
        let r = self.rules.entry(name.to_string()).or_default();
        r.enabled = enabled;
        r
    }
}

impl RuleReport {
    fn note(&mut self, max: usize, id: &str, detail: impl FnOnce() -> String) {
        self.affected += 1;
        if self.examples.len() < max {
            self.examples.push(RuleExample {
                id: id.to_string(),
                detail: detail(),
            });
        }
    }
}

/// A token counter (e.g. backed by a `tokenizers::Tokenizer`) for the token-length rules.
pub type TokenCounter<'a> = &'a (dyn Fn(&str) -> usize + Sync);

/// Compiled regex rules.
fn compile(rules: &[RegexRule]) -> Result<Vec<(RegexRule, Regex)>> {
    rules
        .iter()
        .map(|r| {
            for f in &r.fields {
                if !["question", "answer", "context"].contains(&f.as_str()) {
                    return Err(Error::config(
                        format!("clean.regex.{}.fields", r.name),
                        format!("unknown field `{f}`"),
                    ));
                }
            }
            Regex::new(&r.pattern)
                .map(|re| (r.clone(), re))
                .map_err(|e| {
                    Error::config(format!("clean.regex.{}.pattern", r.name), e.to_string())
                })
        })
        .collect()
}

/// Whitespace normalisation: trim each line, collapse spaces/tabs, keep at most one blank line.
pub fn normalize_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.lines() {
        let collapsed = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        out.push_str(&collapsed);
        blank_run = 0;
    }
    out
}

/// Words that carry no topic: a question made only of these is context-poor.
const VAGUE_WORDS: &[&str] = &[
    "why", "what", "how", "when", "where", "who", "which", "about", "it", "this", "that", "these",
    "those", "so", "and", "then", "is", "are", "was", "does", "do", "did", "can", "could",
    "should", "would", "will", "the", "a", "an", "of", "for", "to", "me", "you", "tell", "more",
    "else", "really", "again", "ok", "okay", "them", "they", "there", "now",
];

/// True for context-poor questions like "Why?", "What about it?", "And then?".
pub fn is_ambiguous(question: &str) -> bool {
    let words: Vec<String> = question
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    words.len() <= 6 && words.iter().all(|w| VAGUE_WORDS.contains(&w.as_str()))
}

fn preview(s: &str) -> String {
    let p: String = s.chars().take(80).collect();
    if p.len() < s.len() {
        format!("{p}…")
    } else {
        p
    }
}

/// Applies a text transform to every text field; returns the first changed field with its
/// text before and after, if any changed.
fn map_text(r: &mut Record, f: &dyn Fn(&str) -> String) -> Option<(&'static str, String, String)> {
    let mut first = None;
    let mut apply = |name: &'static str, s: &mut String| {
        let t = f(s);
        if t != *s {
            if first.is_none() {
                first = Some((name, s.clone(), t.clone()));
            }
            *s = t;
        }
    };
    apply("question", &mut r.question);
    apply("answer", &mut r.answer);
    if let Some(c) = r.context.as_mut() {
        apply("context", c);
    }
    if let Some(e) = r.explanation.as_mut() {
        apply("explanation", e);
    }
    for o in &mut r.options {
        apply("option", o);
    }
    first
}

/// Shows where two strings first differ, with a little context.
fn diff_preview(before: &str, after: &str) -> String {
    let start = before
        .char_indices()
        .zip(after.chars())
        .find(|((_, a), b)| a != b)
        .map(|((i, _), _)| i)
        .unwrap_or(before.len().min(after.len()));
    let from = before[..start]
        .char_indices()
        .rev()
        .nth(20)
        .map(|(i, _)| i)
        .unwrap_or(0);
    format!(
        "{:?} -> {:?}",
        preview(&before[from..]),
        preview(after.get(from..).unwrap_or(after))
    )
}

/// Cleans `records` by `cfg`. `tokens` is required when a token-length rule is set.
pub fn clean(
    records: Vec<Record>,
    cfg: &CleanConfig,
    tokens: Option<TokenCounter>,
) -> Result<(Vec<Record>, CleaningReport)> {
    let regexes = compile(&cfg.regex)?;
    if (cfg.min_tokens.is_some() || cfg.max_tokens.is_some()) && tokens.is_none() {
        return Err(Error::config(
            "clean.min_tokens/max_tokens",
            "token-length rules need a tokenizer (set `tokenizer`)",
        ));
    }
    let max = cfg.max_examples;
    let mut rep = CleaningReport {
        input: records.len(),
        ..Default::default()
    };
    let missing = |r: &Record| {
        r.question.trim().is_empty() || r.answer.trim().is_empty() || r.source.is_empty()
    };

    // 1. Missing or empty fields.
    let mut recs = Vec::with_capacity(records.len());
    {
        let rule = rep.rule("missing_fields", true);
        for r in records {
            if missing(&r) {
                rule.dropped += 1;
                rule.note(max, &r.id, || "empty question or answer".into());
            } else {
                recs.push(r);
            }
        }
    }

    // 2. Normalisations.
    type TextMap<'f> = &'f dyn Fn(&str) -> String;
    let norms: [(&str, bool, TextMap); 3] = [
        ("nfkc", cfg.nfkc, &|s: &str| s.nfkc().collect()),
        ("whitespace", cfg.whitespace, &normalize_whitespace),
        ("lowercase", cfg.lowercase, &|s: &str| s.to_lowercase()),
    ];
    for (name, on, f) in norms {
        let rule = rep.rule(name, on);
        if !on {
            continue;
        }
        for r in &mut recs {
            if let Some((field, before, after)) = map_text(r, f) {
                rule.note(max, &r.id, || {
                    format!("{field}: {}", diff_preview(&before, &after))
                });
            }
        }
    }
    for (rr, re) in &regexes {
        let rule = rep.rule(&format!("regex:{}", rr.name), true);
        for r in &mut recs {
            let mut changed = None;
            for field in &rr.fields {
                let slot = match field.as_str() {
                    "question" => Some(&mut r.question),
                    "answer" => Some(&mut r.answer),
                    _ => r.context.as_mut(),
                };
                if let Some(s) = slot {
                    if re.is_match(s) {
                        let after = re.replace_all(s, rr.replace.as_str()).trim().to_string();
                        if changed.is_none() {
                            changed = Some(format!("{field}: {}", diff_preview(s, &after)));
                        }
                        *s = after;
                    }
                }
            }
            if let Some(detail) = changed {
                rule.note(max, &r.id, || detail);
            }
        }
    }

    // 3. Missing again (a clean-up may have emptied a field), then the filters.
    let qmax = cfg.max_question_chars.unwrap_or(usize::MAX);
    let amax = cfg.max_answer_chars.unwrap_or(usize::MAX);
    let tmin = cfg.min_tokens.unwrap_or(0);
    let tmax = cfg.max_tokens.unwrap_or(usize::MAX);
    type Filter<'a> = (&'a str, bool, Box<dyn Fn(&Record) -> Option<String> + 'a>);
    let filters: Vec<Filter> = vec![
        (
            "empty_after_cleanup",
            true,
            Box::new(|r: &Record| missing(r).then(|| "empty after clean-up".to_string())),
        ),
        (
            "length_chars",
            true,
            Box::new(move |r: &Record| {
                let (q, a) = (r.question.chars().count(), r.answer.chars().count());
                (q < cfg.min_question_chars || q > qmax || a < cfg.min_answer_chars || a > amax)
                    .then(|| format!("question {q} chars, answer {a} chars"))
            }),
        ),
        (
            "length_tokens",
            tokens.is_some() && (cfg.min_tokens.is_some() || cfg.max_tokens.is_some()),
            Box::new(move |r: &Record| {
                let count = tokens.map(|t| t(&r.question) + t(&r.answer)).unwrap_or(0);
                (count < tmin || count > tmax).then(|| format!("{count} tokens"))
            }),
        ),
        (
            "ambiguous_question",
            cfg.ambiguity_filter,
            Box::new(|r: &Record| is_ambiguous(&r.question).then(|| format!("{:?}", r.question))),
        ),
    ];
    for (name, on, f) in &filters {
        let rule = rep.rule(name, *on);
        if !*on {
            continue;
        }
        recs.retain(|r| match f(r) {
            Some(detail) => {
                rule.dropped += 1;
                rule.note(max, &r.id, || detail);
                false
            }
            None => true,
        });
    }

    // 4. Exact duplicates.
    let qkey = |r: &Record| {
        format!(
            "{}\u{1}{}\u{1}{}",
            r.question,
            r.context.as_deref().unwrap_or(""),
            r.options.join("\u{2}")
        )
    };
    {
        let rule = rep.rule("exact_duplicates", cfg.exact_duplicates);
        if cfg.exact_duplicates {
            let mut seen: HashMap<(String, String), String> = HashMap::new();
            recs.retain(|r| match seen.get(&(qkey(r), r.answer.clone())) {
                Some(first) => {
                    rule.dropped += 1;
                    rule.note(max, &r.id, || format!("duplicate of {first}"));
                    false
                }
                None => {
                    seen.insert((qkey(r), r.answer.clone()), r.id.clone());
                    true
                }
            });
        }
    }

    // 5. Same question, different answers.
    {
        let mut answers: HashMap<String, HashSet<&str>> = HashMap::new();
        for r in &recs {
            answers
                .entry(qkey(r))
                .or_default()
                .insert(r.answer.as_str());
        }
        let conflicting: HashSet<String> = answers
            .into_iter()
            .filter(|(_, a)| a.len() > 1)
            .map(|(k, _)| k)
            .collect();
        let rule = rep.rule("conflicting_answers", true);
        let mut kept_first: HashSet<String> = HashSet::new();
        recs.retain(|r| {
            let k = qkey(r);
            if !conflicting.contains(&k) {
                return true;
            }
            rule.note(max, &r.id, || {
                format!("question {:?} has several answers", preview(&r.question))
            });
            let keep = match cfg.conflicts {
                ConflictPolicy::Report => true,
                ConflictPolicy::DropAll => false,
                ConflictPolicy::KeepFirst => kept_first.insert(k),
            };
            if !keep {
                rule.dropped += 1;
            }
            keep
        });
    }
    rep.kept = recs.len();
    Ok((recs, rep))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, q: &str, a: &str) -> Record {
        Record {
            id: id.into(),
            question: q.into(),
            answer: a.into(),
            source: "t".into(),
            ..Default::default()
        }
    }

    #[test]
    fn whitespace_rules() {
        assert_eq!(
            normalize_whitespace("  a \t b \n\n\n c  \n d"),
            "a b\n\nc\nd"
        );
    }

    #[test]
    fn ambiguity() {
        assert!(is_ambiguous("Why?"));
        assert!(is_ambiguous("What about it?"));
        assert!(is_ambiguous("And then?"));
        assert!(!is_ambiguous("Why does aspirin thin blood?"));
        assert!(!is_ambiguous("What is glaucoma?"));
    }

    #[test]
    fn every_rule_counts_what_it_did() {
        let recs = vec![
            rec("1", "What is ﬁbrosis ?", "Scarring."),
            rec("2", "What is fibrosis ?", "Scarring."), // duplicate after NFKC
            rec("3", "Why?", "Because."),
            rec("4", "What is   gout?", ""),
            rec("5", "What is gout?", "A  form of arthritis."),
            rec("6", "What is gout?", "Uric acid crystals in joints."),
            rec("7", "Hi?", "x"),
        ];
        let cfg = CleanConfig {
            conflicts: ConflictPolicy::KeepFirst,
            min_answer_chars: 2,
            ..Default::default()
        };
        let (out, rep) = clean(recs, &cfg, None).unwrap();
        let ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["1", "5"]);
        assert_eq!(out[0].question, "What is fibrosis ?");
        assert_eq!(out[1].answer, "A form of arthritis.");
        assert_eq!(rep.rules["missing_fields"].dropped, 1);
        assert_eq!(rep.rules["nfkc"].affected, 1);
        assert_eq!(rep.rules["exact_duplicates"].dropped, 1);
        assert_eq!(rep.rules["ambiguous_question"].dropped, 1);
        assert_eq!(rep.rules["length_chars"].dropped, 1);
        assert_eq!(rep.rules["conflicting_answers"].affected, 2);
        assert_eq!(rep.rules["conflicting_answers"].dropped, 1);
        assert!(!rep.rules["lowercase"].enabled);
        assert_eq!(rep.input, 7);
        assert_eq!(rep.kept, 2);
        let dropped: usize = rep.dropped_by_reason().values().sum();
        assert_eq!(
            dropped + rep.kept,
            rep.input,
            "every dropped record is counted"
        );
    }

    #[test]
    fn regex_and_tokens() {
        let cfg = CleanConfig {
            regex: vec![RegexRule {
                name: "refs".into(),
                pattern: r"\[\d+\]".into(),
                replace: String::new(),
                fields: vec!["answer".into()],
            }],
            max_tokens: Some(3),
            ..Default::default()
        };
        let words = |s: &str| s.split_whitespace().count();
        let recs = vec![
            rec("1", "What is gout?", "Arthritis [1]"),
            rec("2", "What is a very long question?", "Yes"),
        ];
        let (out, rep) = clean(recs, &cfg, Some(&words)).unwrap();
        assert_eq!(out.len(), 0);
        assert_eq!(rep.rules["regex:refs"].affected, 1);
        assert_eq!(rep.rules["length_tokens"].dropped, 2);
        let bad = CleanConfig {
            max_tokens: Some(4),
            ..Default::default()
        };
        assert!(clean(vec![], &bad, None).is_err());
    }
}
