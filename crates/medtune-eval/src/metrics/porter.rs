//! The Porter stemmer as nltk's `PorterStemmer` implements it.
//!
//! Porter (1980), "An algorithm for suffix stripping", steps 1a–5b, with the
//! variants nltk offers. rouge-score and nltk's METEOR both use nltk's default
//! mode, [`Mode::NltkExtensions`]. Words are handled as sequences of Unicode
//! scalar values, as Python handles `str`.

use std::collections::HashMap;

/// Which variant of the algorithm to run (nltk's `mode` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// nltk's default: the published algorithm plus nltk's fixes and irregular forms.
    #[default]
    NltkExtensions,
    /// Martin Porter's later amendments to the published algorithm.
    MartinExtensions,
    /// The algorithm as published in 1980.
    OriginalAlgorithm,
}

/// A Porter stemmer; `PorterStemmer::default()` is nltk's `PorterStemmer()`.
#[derive(Debug, Clone)]
pub struct PorterStemmer {
    mode: Mode,
    /// Irregular forms (nltk mode only): word → stem.
    pool: HashMap<&'static str, &'static str>,
}

impl Default for PorterStemmer {
    fn default() -> Self {
        Self::new(Mode::NltkExtensions)
    }
}

type Cond<'a> = Option<&'a dyn Fn(&[char]) -> bool>;

/// Condition on the stem left after removing the suffix.
struct Rule<'a> {
    suffix: &'a str,
    replacement: String,
    condition: Cond<'a>,
}

fn rule<'a>(suffix: &'a str, replacement: &str, condition: Cond<'a>) -> Rule<'a> {
    Rule {
        suffix,
        replacement: replacement.to_string(),
        condition,
    }
}

fn ends_with(word: &[char], suffix: &str) -> bool {
    let n = suffix.chars().count();
    n <= word.len() && word[word.len() - n..].iter().copied().eq(suffix.chars())
}

fn strip(word: &[char], suffix: &str) -> Vec<char> {
    word[..word.len() - suffix.chars().count()].to_vec()
}

fn join(stem: &[char], tail: &str) -> Vec<char> {
    stem.iter().copied().chain(tail.chars()).collect()
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Consonant flag per letter: `y` is a consonant at the start or after a vowel.
fn consonant_flags(word: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(word.len());
    for (i, &c) in word.iter().enumerate() {
        let f = if is_vowel(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(f);
    }
    flags
}

fn is_consonant(word: &[char], i: usize) -> bool {
    consonant_flags(&word[..=i])[i]
}

/// m in [C](VC)^m[V]: the number of vowel→consonant transitions.
fn measure(stem: &[char]) -> usize {
    let f = consonant_flags(stem);
    f.windows(2).filter(|w| !w[0] && w[1]).count()
}

fn contains_vowel(stem: &[char]) -> bool {
    consonant_flags(stem).iter().any(|&c| !c)
}

fn ends_double_consonant(word: &[char]) -> bool {
    let n = word.len();
    n >= 2 && word[n - 1] == word[n - 2] && is_consonant(word, n - 1)
}

impl PorterStemmer {
    /// A stemmer running the given variant.
    pub fn new(mode: Mode) -> Self {
        let mut pool = HashMap::new();
        if mode == Mode::NltkExtensions {
            let irregular: [(&str, &[&str]); 12] = [
                ("sky", &["sky", "skies"]),
                ("die", &["dying"]),
                ("lie", &["lying"]),
                ("tie", &["tying"]),
                ("news", &["news"]),
                ("inning", &["innings", "inning"]),
                ("outing", &["outings", "outing"]),
                ("canning", &["cannings", "canning"]),
                ("howe", &["howe"]),
                ("proceed", &["proceed"]),
                ("exceed", &["exceed"]),
                ("succeed", &["succeed"]),
            ];
            for (stem, forms) in irregular {
                for f in forms {
                    pool.insert(*f, stem);
                }
            }
        }
        Self { mode, pool }
    }

    fn nltk(&self) -> bool {
        self.mode == Mode::NltkExtensions
    }

    /// consonant-vowel-consonant ending, last consonant not w, x or y
    /// (nltk mode also accepts a two-letter vowel-consonant word).
    fn ends_cvc(&self, w: &[char]) -> bool {
        let n = w.len();
        (n >= 3
            && is_consonant(w, n - 3)
            && !is_consonant(w, n - 2)
            && is_consonant(w, n - 1)
            && !matches!(w[n - 1], 'w' | 'x' | 'y'))
            || (self.nltk() && n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
    }

    /// Applies the first rule whose suffix matches (`*d`: a double consonant).
    fn apply_rules(word: &[char], rules: &[Rule]) -> Vec<char> {
        for r in rules {
            if r.suffix == "*d" && ends_double_consonant(word) {
                let stem = &word[..word.len() - 2];
                return match r.condition {
                    Some(c) if !c(stem) => word.to_vec(),
                    _ => join(stem, &r.replacement),
                };
            }
            if ends_with(word, r.suffix) {
                let stem = strip(word, r.suffix);
                return match r.condition {
                    Some(c) if !c(&stem) => word.to_vec(),
                    _ => join(&stem, &r.replacement),
                };
            }
        }
        word.to_vec()
    }

    fn step1a(&self, w: &[char]) -> Vec<char> {
        if self.nltk() && ends_with(w, "ies") && w.len() == 4 {
            return join(&strip(w, "ies"), "ie");
        }
        Self::apply_rules(
            w,
            &[
                rule("sses", "ss", None),
                rule("ies", "i", None),
                rule("ss", "ss", None),
                rule("s", "", None),
            ],
        )
    }

    fn step1b(&self, w: &[char]) -> Vec<char> {
        if self.nltk() && ends_with(w, "ied") {
            let tail = if w.len() == 4 { "ie" } else { "i" };
            return join(&strip(w, "ied"), tail);
        }
        if ends_with(w, "eed") {
            let stem = strip(w, "eed");
            return if measure(&stem) > 0 {
                join(&stem, "ee")
            } else {
                w.to_vec()
            };
        }
        let mut inter = None;
        for suffix in ["ed", "ing"] {
            if ends_with(w, suffix) {
                let s = strip(w, suffix);
                if contains_vowel(&s) {
                    inter = Some(s);
                    break;
                }
            }
        }
        let Some(inter) = inter else {
            return w.to_vec();
        };
        let last = inter[inter.len() - 1];
        let not_lsz = move |_: &[char]| !matches!(last, 'l' | 's' | 'z');
        let add_e = |s: &[char]| measure(s) == 1 && self.ends_cvc(s);
        Self::apply_rules(
            &inter,
            &[
                rule("at", "ate", None),
                rule("bl", "ble", None),
                rule("iz", "ize", None),
                rule("*d", &last.to_string(), Some(&not_lsz)),
                rule("", "e", Some(&add_e)),
            ],
        )
    }

    fn step1c(&self, w: &[char]) -> Vec<char> {
        let nltk_cond = |s: &[char]| s.len() > 1 && is_consonant(s, s.len() - 1);
        let orig_cond = |s: &[char]| contains_vowel(s);
        let cond: &dyn Fn(&[char]) -> bool = if self.nltk() { &nltk_cond } else { &orig_cond };
        Self::apply_rules(w, &[rule("y", "i", Some(cond))])
    }

    fn step2(&self, w: &[char]) -> Vec<char> {
        let pos = |s: &[char]| measure(s) > 0;
        if self.nltk() && ends_with(w, "alli") && pos(&strip(w, "alli")) {
            return self.step2(&join(&strip(w, "alli"), "al"));
        }
        let p: Cond = Some(&pos);
        let mut rules = vec![
            rule("ational", "ate", p),
            rule("tional", "tion", p),
            rule("enci", "ence", p),
            rule("anci", "ance", p),
            rule("izer", "ize", p),
            if self.mode == Mode::OriginalAlgorithm {
                rule("abli", "able", p)
            } else {
                rule("bli", "ble", p)
            },
            rule("alli", "al", p),
            rule("entli", "ent", p),
            rule("eli", "e", p),
            rule("ousli", "ous", p),
            rule("ization", "ize", p),
            rule("ation", "ate", p),
            rule("ator", "ate", p),
            rule("alism", "al", p),
            rule("iveness", "ive", p),
            rule("fulness", "ful", p),
            rule("ousness", "ous", p),
            rule("aliti", "al", p),
            rule("iviti", "ive", p),
            rule("biliti", "ble", p),
        ];
        // nltk tests the measure of the word minus "logi"'s last three letters
        let logi_nltk = |_: &[char]| measure(&w[..w.len().saturating_sub(3)]) > 0;
        match self.mode {
            Mode::NltkExtensions => {
                rules.push(rule("fulli", "ful", p));
                rules.push(rule("logi", "log", Some(&logi_nltk)));
            }
            Mode::MartinExtensions => rules.push(rule("logi", "log", p)),
            Mode::OriginalAlgorithm => {}
        }
        Self::apply_rules(w, &rules)
    }

    fn step3(&self, w: &[char]) -> Vec<char> {
        let pos = |s: &[char]| measure(s) > 0;
        let p: Cond = Some(&pos);
        Self::apply_rules(
            w,
            &[
                rule("icate", "ic", p),
                rule("ative", "", p),
                rule("alize", "al", p),
                rule("iciti", "ic", p),
                rule("ical", "ic", p),
                rule("ful", "", p),
                rule("ness", "", p),
            ],
        )
    }

    fn step4(&self, w: &[char]) -> Vec<char> {
        let gt1 = |s: &[char]| measure(s) > 1;
        let ion = |s: &[char]| measure(s) > 1 && matches!(s.last(), Some('s' | 't'));
        let g: Cond = Some(&gt1);
        let rules: Vec<Rule> = [
            "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent",
        ]
        .into_iter()
        .map(|s| rule(s, "", g))
        .chain(std::iter::once(rule("ion", "", Some(&ion))))
        .chain(
            ["ou", "ism", "ate", "iti", "ous", "ive", "ize"]
                .into_iter()
                .map(|s| rule(s, "", g)),
        )
        .collect();
        Self::apply_rules(w, &rules)
    }

    fn step5a(&self, w: &[char]) -> Vec<char> {
        if ends_with(w, "e") {
            let stem = strip(w, "e");
            let m = measure(&stem);
            if m > 1 || (m == 1 && !self.ends_cvc(&stem)) {
                return stem;
            }
        }
        w.to_vec()
    }

    fn step5b(&self, w: &[char]) -> Vec<char> {
        let cond = |_: &[char]| measure(&w[..w.len() - 1]) > 1;
        Self::apply_rules(w, &[rule("ll", "l", Some(&cond))])
    }

    /// Stems one word (lowercased first, as nltk does by default).
    pub fn stem(&self, word: &str) -> String {
        let lower = word.to_lowercase();
        if self.nltk() {
            if let Some(s) = self.pool.get(lower.as_str()) {
                return (*s).to_string();
            }
        }
        if self.mode != Mode::OriginalAlgorithm && word.chars().count() <= 2 {
            return lower;
        }
        let mut w: Vec<char> = lower.chars().collect();
        w = self.step1a(&w);
        w = self.step1b(&w);
        w = self.step1c(&w);
        w = self.step2(&w);
        w = self.step3(&w);
        w = self.step4(&w);
        w = self.step5a(&w);
        w = self.step5b(&w);
        w.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_examples() {
        let p = PorterStemmer::default();
        for (w, s) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("relational", "relat"),
            ("hopping", "hop"),
            ("generalizations", "gener"),
            ("dying", "die"),
            ("a", "a"),
        ] {
            assert_eq!(p.stem(w), s, "{w}");
        }
    }

    #[test]
    fn measure_counts_vc_pairs() {
        let m = |s: &str| measure(&s.chars().collect::<Vec<_>>());
        assert_eq!(m("tr"), 0);
        assert_eq!(m("trouble"), 1);
        assert_eq!(m("troubles"), 2);
    }
}
