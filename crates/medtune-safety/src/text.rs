//! Text normalisation with a byte map back to the original, so that every evidence span points at
//! the caller's text.
//!
//! Normalisation: Unicode NFKC per character, lower case, typographic quotes and dashes folded to
//! ASCII, the micro sign and Greek mu folded to `u` (so `µg` reads `ug`), and runs of whitespace
//! folded to one space.

use std::ops::Range;
use unicode_normalization::UnicodeNormalization;

/// A normalised copy of a text plus, for each normalised byte, the original byte range of the
/// character it came from.
#[derive(Debug, Clone)]
pub(crate) struct NormText {
    /// The normalised text (lower case, folded punctuation, single spaces).
    pub text: String,
    /// `starts[i]`: original start byte of the character that produced normalised byte `i`.
    starts: Vec<usize>,
    /// `ends[i]`: original end byte of that character.
    ends: Vec<usize>,
}

impl NormText {
    /// Normalises `orig`.
    pub fn new(orig: &str) -> Self {
        let mut text = String::with_capacity(orig.len());
        let mut starts = Vec::with_capacity(orig.len());
        let mut ends = Vec::with_capacity(orig.len());
        let mut last_space = true;
        for (pos, c) in orig.char_indices() {
            let end = pos + c.len_utf8();
            let mut push = |ch: char, text: &mut String| {
                let before = text.len();
                text.push(ch);
                for _ in before..text.len() {
                    starts.push(pos);
                    ends.push(end);
                }
            };
            if c.is_whitespace() {
                if !last_space {
                    push(' ', &mut text);
                }
                last_space = true;
                continue;
            }
            last_space = false;
            if c.is_ascii() {
                push(c.to_ascii_lowercase(), &mut text);
                continue;
            }
            if let Some(folded) = fold_char(c) {
                push(folded, &mut text);
                continue;
            }
            for n in std::iter::once(c).nfkc() {
                match fold_char(n) {
                    Some(f) => push(f, &mut text),
                    None if n.is_whitespace() => push(' ', &mut text),
                    None => {
                        for l in n.to_lowercase() {
                            push(l, &mut text);
                        }
                    }
                }
            }
        }
        Self { text, starts, ends }
    }

    /// Maps a byte range of the normalised text back to a byte range of the original text.
    pub fn orig_range(&self, r: Range<usize>) -> Range<usize> {
        if self.starts.is_empty() {
            return 0..0;
        }
        let s = r.start.min(self.starts.len() - 1);
        let e = r.end.max(r.start + 1).min(self.ends.len()) - 1;
        self.starts[s]..self.ends[e].max(self.starts[s])
    }
}

/// Folds characters that NFKC leaves apart but that mean the same thing in dosing text.
fn fold_char(c: char) -> Option<char> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{02BC}' | '\u{2032}' | '`' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{2033}' => '"',
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2212}' => '-',
        '\u{00B5}' | '\u{03BC}' | '\u{039C}' => 'u',
        _ => return None,
    })
}

/// True when `c` counts as part of a word for boundary checks.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// True when `text[range]` has no word character immediately on either side.
pub(crate) fn at_word_boundaries(text: &str, range: &Range<usize>) -> bool {
    let before = text[..range.start].chars().next_back();
    let after = text[range.end..].chars().next();
    let first = text[range.clone()].chars().next();
    let last = text[range.clone()].chars().next_back();
    // A boundary is only needed where the match itself starts or ends with a word character.
    let left_ok = !(first.is_some_and(is_word_char) && before.is_some_and(is_word_char));
    let right_ok = !(last.is_some_and(is_word_char) && after.is_some_and(is_word_char));
    left_ok && right_ok
}

/// Splits normalised text into sentence-like clauses: at `.` `!` `?` `;` and line breaks, but
/// not at a decimal point (`7.5`) or inside common abbreviations (`e.g.`, `q.i.d.`).
pub(crate) fn sentences(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let split = match b {
            b'!' | b'?' | b';' | b'\n' => true,
            b'.' => {
                let next = bytes.get(i + 1).copied();
                let prev = if i > 0 {
                    bytes.get(i - 1).copied()
                } else {
                    None
                };
                let decimal = prev.is_some_and(|p| p.is_ascii_digit())
                    && next.is_some_and(|n| n.is_ascii_digit());
                // "b.i.d." and "e.g.": a single letter before the dot and a letter right after.
                let abbrev = next.is_some_and(|n| n.is_ascii_alphabetic())
                    || (i >= 2
                        && bytes[i - 2] == b'.'
                        && prev.is_some_and(|p| p.is_ascii_alphabetic()));
                !decimal && !abbrev
            }
            _ => false,
        };
        if split {
            if i > start {
                out.push(start..i);
            }
            start = i + 1;
        }
    }
    if start < text.len() {
        out.push(start..text.len());
    }
    out
}

/// Words that negate a finding later in the same clause ("no chest pain", "denies numbness").
const NEGATION_CUES: &[&str] = &[
    "no", "not", "denies", "denied", "deny", "without", "never", "negative", "absent", "free",
    "none", "nor", "don't", "doesn't", "didn't", "haven't", "hasn't", "isn't", "aren't", "wasn't",
];

/// Words that make a finding hypothetical ("if you get chest pain, call 911"); used on answers.
const HYPOTHETICAL_CUES: &[&str] = &[
    "if", "unless", "should", "when", "whenever", "case", "watch", "signs", "symptoms", "such",
];

/// Words that end the reach of a negation or condition inside a clause.
const SCOPE_BREAKS: &[&str] = &[
    "but", "however", "although", "though", "yet", "now", "except",
];

/// How a phrase occurrence reads in its clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Polarity {
    /// Stated as present.
    Affirmed,
    /// Stated as absent ("no chest pain").
    Negated,
    /// Stated as a condition ("if you have chest pain").
    Hypothetical,
}

/// Looks at up to 8 words before `start` in the clause that holds it, stopping at a scope break.
pub(crate) fn polarity(text: &str, start: usize) -> Polarity {
    let clause_start = text[..start]
        .rfind(['.', '!', '?', ';', ':', '\n', ','])
        .map_or(0, |p| p + 1);
    // Commas separate list items ("no fever, chills or sweating") as often as clauses: look past
    // one comma when the words before the phrase continue a list with "or"/"nor".
    let mut window: Vec<&str> = text[clause_start..start]
        .split(|c: char| !(is_word_char(c) || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    if window.iter().any(|w| *w == "or" || *w == "nor")
        && clause_start > 0
        && text.as_bytes()[clause_start - 1] == b','
    {
        let prev_start = text[..clause_start - 1]
            .rfind(['.', '!', '?', ';', ':', '\n'])
            .map_or(0, |p| p + 1);
        let mut prev: Vec<&str> = text[prev_start..clause_start - 1]
            .split(|c: char| !(is_word_char(c) || c == '\''))
            .filter(|w| !w.is_empty())
            .collect();
        prev.append(&mut window);
        window = prev;
    }
    let mut result = Polarity::Affirmed;
    for w in window.iter().rev().take(8) {
        if SCOPE_BREAKS.contains(w) {
            break;
        }
        if NEGATION_CUES.contains(w) {
            return Polarity::Negated;
        }
        if result == Polarity::Affirmed && HYPOTHETICAL_CUES.contains(w) {
            result = Polarity::Hypothetical;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_maps_back() {
        let orig = "Take 25 µg/hr  FENTANYL\u{2019}s patch";
        let n = NormText::new(orig);
        assert_eq!(n.text, "take 25 ug/hr fentanyl's patch");
        let s = n.text.find("fentanyl").expect("found");
        let r = n.orig_range(s..s + "fentanyl".len());
        assert_eq!(&orig[r], "FENTANYL");
        let u = n.text.find("ug").expect("found");
        assert_eq!(&orig[n.orig_range(u..u + 2)], "µg");
    }

    #[test]
    fn fullwidth_letters_fold() {
        let n = NormText::new("ＯＸＹＣＯＤＯＮＥ");
        assert_eq!(n.text, "oxycodone");
        assert_eq!(n.orig_range(0..9), 0.."ＯＸＹＣＯＤＯＮＥ".len());
    }

    #[test]
    fn splits_sentences_but_not_decimals() {
        let t = "take 7.5 mg weekly. then stop; call b.i.d. ok";
        let parts: Vec<&str> = sentences(t).into_iter().map(|r| &t[r]).collect();
        assert_eq!(
            parts,
            vec!["take 7.5 mg weekly", " then stop", " call b.i.d. ok"]
        );
    }

    #[test]
    fn negation_and_conditions() {
        let t = "i have no chest pain but i am sweating";
        assert_eq!(polarity(t, t.find("chest").unwrap_or(0)), Polarity::Negated);
        assert_eq!(
            polarity(t, t.find("sweating").unwrap_or(0)),
            Polarity::Affirmed
        );
        let t = "no fever, chills or sweating";
        assert_eq!(
            polarity(t, t.find("sweating").unwrap_or(0)),
            Polarity::Negated
        );
        let t = "if you get chest pain, call 911";
        assert_eq!(
            polarity(t, t.find("chest").unwrap_or(0)),
            Polarity::Hypothetical
        );
        let t = "crushing chest pain and sweating";
        assert_eq!(
            polarity(t, t.find("sweating").unwrap_or(0)),
            Polarity::Affirmed
        );
    }

    #[test]
    fn word_boundaries() {
        let t = "afebrile fever";
        assert!(!at_word_boundaries(t, &(1..6)));
        assert!(at_word_boundaries(t, &(9..14)));
    }
}
