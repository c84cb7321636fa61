//! Answer extraction from generated text: which choice label (if any) a free-form reply gives.
//!
//! Tried in order, first hit wins:
//! 1. a JSON object with an `answer` key (`{"answer": "B"}`, `{"answer": "yes", "dose": "low"}`);
//! 2. an explicit marker: `Answer: B`, `answer is (B)`, `correct option is B`;
//! 3. a label standing alone at the start: `B`, `(B)`, `B.`, `B)`, `Yes,`;
//! 4. for MCQ, the text of exactly one option appearing in the reply;
//! 5. for decisions, the first of yes/no/maybe as a whole word.
//!
//! No match is a format failure (`None`), reported as such and never scored as a guess.

use regex::Regex;
use std::sync::OnceLock;

/// How the answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A JSON `answer` field.
    Json,
    /// `Answer: X` or similar.
    Marker,
    /// A label alone at the start.
    Leading,
    /// The text of one option.
    OptionText,
    /// The first decision word.
    Keyword,
}

impl Method {
    /// Lower-case name for CSVs.
    pub fn name(self) -> &'static str {
        match self {
            Method::Json => "json",
            Method::Marker => "marker",
            Method::Leading => "leading",
            Method::OptionText => "option_text",
            Method::Keyword => "keyword",
        }
    }
}

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| {
        Regex::new(pattern).unwrap_or_else(|e| panic!("built-in regex {pattern}: {e}"))
    })
}

fn json_fields(text: &str) -> Option<(String, Option<String>)> {
    static OBJ: OnceLock<Regex> = OnceLock::new();
    for m in re(&OBJ, r"\{[^{}]*\}").find_iter(text) {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(m.as_str()) {
            let get = |k: &str| {
                map.iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(k))
                    .and_then(|(_, v)| match v {
                        serde_json::Value::String(s) => Some(s.trim().to_string()),
                        serde_json::Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
                        _ => None,
                    })
            };
            if let Some(a) = get("answer") {
                return Some((a, get("dose")));
            }
        }
    }
    None
}

fn letter_index(s: &str, n: usize) -> Option<usize> {
    let t = s.trim().trim_matches(|c: char| "().:*[] ".contains(c));
    let mut chars = t.chars();
    let c = chars.next()?;
    if chars.next().is_some() || !c.is_ascii_alphabetic() {
        return None;
    }
    let i = (c.to_ascii_uppercase() as u8 - b'A') as usize;
    (i < n).then_some(i)
}

fn normalise(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The option index a reply to an MCQ with `options` gives.
pub fn extract_mcq(text: &str, options: &[String]) -> Option<(usize, Method)> {
    let n = options.len();
    let by_text = |s: &str| {
        let s = normalise(s);
        options
            .iter()
            .position(|o| !s.is_empty() && normalise(o) == s)
    };
    if let Some((a, _)) = json_fields(text) {
        if let Some(i) = letter_index(&a, n).or_else(|| by_text(&a)) {
            return Some((i, Method::Json));
        }
    }
    static MARKER: OnceLock<Regex> = OnceLock::new();
    let marker = re(
        &MARKER,
        r"(?i:answer|option|choice)\s*(?i:is|:|=)?\s*(?i:option\s*)?[\(\[]?\s*([A-Z])\s*[\)\]]?(?:[\s.,:;)]|$)",
    );
    if let Some(c) = marker.captures(text) {
        if let Some(i) = letter_index(&c[1], n) {
            return Some((i, Method::Marker));
        }
    }
    static LEAD: OnceLock<Regex> = OnceLock::new();
    let lead = re(
        &LEAD,
        r"^\s*[\(\[]?\*{0,2}([A-Z])\*{0,2}[\)\]]?(?:[.:)]|\s*$|\s*\n|\s+-)",
    );
    if let Some(c) = lead.captures(text) {
        if let Some(i) = letter_index(&c[1], n) {
            return Some((i, Method::Leading));
        }
    }
    let norm = format!(" {} ", normalise(text));
    let hits: Vec<usize> = options
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            let o = normalise(o);
            !o.is_empty() && norm.contains(&format!(" {o} "))
        })
        .map(|(i, _)| i)
        .collect();
    if hits.len() == 1 {
        return Some((hits[0], Method::OptionText));
    }
    None
}

fn decision_word(s: &str) -> Option<&'static str> {
    static WORD: OnceLock<Regex> = OnceLock::new();
    let w = re(&WORD, r"(?i)\b(yes|no|maybe)\b");
    w.captures(s)
        .map(|c| match c[1].to_ascii_lowercase().as_str() {
            "yes" => "yes",
            "no" => "no",
            _ => "maybe",
        })
}

fn dose_word(s: &str) -> Option<&'static str> {
    static WORD: OnceLock<Regex> = OnceLock::new();
    let w = re(&WORD, r"(?i)\b(low|high)\b");
    w.captures(s).map(|c| {
        if c[1].eq_ignore_ascii_case("low") {
            "low"
        } else {
            "high"
        }
    })
}

/// The label a decision reply gives, among `labels` (`yes`/`no`/`maybe`, or Q-Pain's
/// `no`/`yes/low`/`yes/high`, where a yes without a dose class is a format failure).
pub fn extract_decision(text: &str, labels: &[String]) -> Option<(usize, Method)> {
    let find = |decision: &str, dose: Option<&str>| {
        let want = match (decision, dose) {
            ("yes", Some(d)) if labels.iter().any(|l| l.contains('/')) => format!("yes/{d}"),
            _ => decision.to_string(),
        };
        labels.iter().position(|l| *l == want)
    };
    if let Some((a, dose)) = json_fields(text) {
        if let Some(d) = decision_word(&a).filter(|_| a.split_whitespace().count() <= 2) {
            let dose = dose.as_deref().and_then(dose_word);
            if let Some(i) = find(d, dose) {
                return Some((i, Method::Json));
            }
        }
    }
    static MARKER: OnceLock<Regex> = OnceLock::new();
    let marker = re(&MARKER, r"(?i)answer\s*(?:is|:)\s*(yes|no|maybe)\b");
    let dose = dose_word(text);
    if let Some(c) = marker.captures(text) {
        if let Some(i) = find(&c[1].to_ascii_lowercase(), dose) {
            return Some((i, Method::Marker));
        }
    }
    let d = decision_word(text)?;
    find(d, dose).map(|i| (i, Method::Keyword))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Vec<String> {
        ["Aspirin", "Ibuprofen", "Paracetamol", "Naproxen"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn mcq_formats() {
        let o = opts();
        for (text, want) in [
            ("B", Some(1)),
            ("(C)", Some(2)),
            ("D. Naproxen", Some(3)),
            ("Answer: B", Some(1)),
            ("The correct answer is (A) because", Some(0)),
            (r#"{"answer": "C"}"#, Some(2)),
            (r#"{"answer": "ibuprofen"}"#, Some(1)),
            ("I would give paracetamol here.", Some(2)),
            ("Aspirin or ibuprofen would work", None),
            ("I am not sure.", None),
            ("A patient with pain needs care.", None),
            ("E", None),
        ] {
            assert_eq!(extract_mcq(text, &o).map(|x| x.0), want, "{text}");
        }
    }

    #[test]
    fn decisions_and_doses() {
        let pub_labels: Vec<String> = ["yes", "no", "maybe"].map(String::from).to_vec();
        assert_eq!(
            extract_decision(r#"{"answer": "maybe"}"#, &pub_labels)
                .unwrap()
                .0,
            2
        );
        assert_eq!(
            extract_decision("No, it does not.", &pub_labels).unwrap().0,
            1
        );
        assert_eq!(extract_decision("Unclear from data", &pub_labels), None);
        let q: Vec<String> = ["no", "yes/low", "yes/high"].map(String::from).to_vec();
        assert_eq!(
            extract_decision(r#"{"answer": "yes", "dose": "high"}"#, &q).unwrap(),
            (2, Method::Json)
        );
        assert_eq!(
            extract_decision("Yes. A low supply (1 week).", &q)
                .unwrap()
                .0,
            1
        );
        assert_eq!(extract_decision("Yes, I would.", &q), None);
        assert_eq!(extract_decision("No.", &q).unwrap().0, 0);
    }
}
