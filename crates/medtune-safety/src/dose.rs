//! Dose parsing: amount, unit, count, frequency, duration and route, attached to the nearest drug
//! name in the same sentence ("10 mg q6h", "two 500 mg tablets every 4 hours", "25 mcg/hr patch",
//! "7.5 mg weekly", "Percocet 10/325").

use crate::drugs::{DrugIndex, Mention};
use crate::error::{Error, Result};
use crate::text::{sentences, NormText};
use regex::Regex;
use std::ops::Range;

/// A dose found in a sentence, before it is split into ingredients.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedDose {
    /// Ingredient names (canonical generics).
    pub generic: String,
    pub amount: f64,
    /// `mg`, `mcg/hr`, `mg/kg` or `ml` (grams and micrograms are converted to mg).
    pub unit: &'static str,
    pub count: f64,
    pub doses_per_day: Option<f64>,
    pub duration_days: Option<f64>,
    pub route: Option<&'static str>,
    /// Normalised byte range of the dose text.
    pub range: Range<usize>,
}

/// Precompiled dose patterns.
#[derive(Debug, Clone)]
pub(crate) struct DoseParser {
    amount: Regex,
    ratio: Regex,
    count: Regex,
    frequency: Regex,
    duration: Regex,
    route: Regex,
}

const NUM_WORDS: &str = "one|two|three|four|five|six|seven|eight|nine|ten|twelve";

fn word_number(s: &str) -> Option<f64> {
    let v = match s {
        "one" | "once" => 1.0,
        "two" | "twice" => 2.0,
        "three" | "thrice" => 3.0,
        "four" => 4.0,
        "five" => 5.0,
        "six" => 6.0,
        "seven" => 7.0,
        "eight" => 8.0,
        "nine" => 9.0,
        "ten" => 10.0,
        "twelve" => 12.0,
        _ => return parse_decimal(s),
    };
    Some(v)
}

/// "1,000" (thousands) -> 1000; "2,5" (decimal comma) -> 2.5; "7.5" -> 7.5.
fn parse_decimal(s: &str) -> Option<f64> {
    let thousands = s.contains(',')
        && s.split(',')
            .skip(1)
            .all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()));
    if thousands {
        s.replace(',', "").parse().ok()
    } else {
        s.replace(',', ".").parse().ok()
    }
}

impl DoseParser {
    pub fn new() -> Result<Self> {
        let re = |p: &str| {
            Regex::new(p).map_err(|e| Error::Matcher {
                what: "dose patterns",
                message: e.to_string(),
            })
        };
        Ok(Self {
            amount: re(&format!(
                r"(?:\b(?P<cw>{NUM_WORDS})\s+|\b(?P<cd>\d+)\s*(?:x|\*|×)\s*)?\b(?P<num>\d{{1,3}}(?:,\d{{3}})+|\d+(?:[.,]\d+)?)(?:\s*(?:-|to)\s*(?P<num2>\d+(?:[.,]\d+)?))?\s*(?P<unit>mg/kg|mcg/kg|mcg/hr|mcg/h|ug/hr|ug/h|mcg per hour|micrograms? per hour|micrograms?|mcg|ug|milligrams?|mg|grams?|g|ml|milliliters?)(?:[^a-z0-9]|$)"
            ))?,
            ratio: re(r"\b(?P<a>\d+(?:\.\d+)?)\s*/\s*(?P<b>\d+(?:\.\d+)?)\b(?:\s*mg)?")?,
            count: re(&format!(
                r"\b(?P<n>\d+|{NUM_WORDS}|half a|a half)(?:\s*(?:-|to|or)\s*(?P<n2>\d+|{NUM_WORDS}))?\s+(?:tablets?|tabs?|capsules?|caps?|pills?|patch(?:es)?|doses?)\b"
            ))?,
            frequency: re(&format!(
                r"(?x)
                \bq\.?\s?(?P<qh>\d+)(?:\s?-\s?(?P<qh2>\d+))?\s?(?:h|hr|hrs|hours?)\b
              | \bevery\s+(?P<eh>\d+|{NUM_WORDS})(?:\s*(?:-|to|or)\s*(?P<eh2>\d+|{NUM_WORDS}))?\s*(?:hours?|hrs?|h)\b
              | \b(?P<hourly>every\s+hour|hourly)\b
              | \b(?P<tw>once|twice|thrice|one\s+time|two\s+times|three\s+times|four\s+times|five\s+times|six\s+times|\d+\s*(?:times|x))\s+(?:a|per|each|every|/)?\s*(?P<tu>day|daily|24\s*hours|week|weekly)\b
              | \b(?P<bid>bid|b\.i\.d\.?)(?:[^a-z]|$)
              | \b(?P<tid>tid|t\.i\.d\.?)(?:[^a-z]|$)
              | \b(?P<qid>qid|q\.i\.d\.?)(?:[^a-z]|$)
              | \b(?P<eod>every\s+other\s+day|qod)\b
              | \bevery\s+(?P<nd>\d+|{NUM_WORDS})\s+days\b
              | \b(?P<week>weekly|once-weekly|per\s+week|a\s+week|each\s+week|every\s+week|/\s?week|/wk)\b
              | (?P<day>\bqd\b|\bq\.d\.|\bdaily\b|\ba\s+day\b|\bper\s+day\b|/\s?day\b|/d\b|\beach\s+day\b|\bevery\s+day\b|\bnightly\b|\bat\s+bedtime\b|\bqhs\b|\bevery\s+(?:morning|night|evening)\b|\bin\s+24\s+hours\b|\bper\s+24\s+hours\b|/\s?24\s?h)"
            ))?,
            duration: re(&format!(
                r"\b(?:for|x)\s*(?P<n>\d+|{NUM_WORDS})\s*(?P<u>days?|weeks?|months?)\b"
            ))?,
            route: re(
                r"\b(?P<iv>iv|i\.v\.|intravenous(?:ly)?|intramuscular(?:ly)?|subcutaneous(?:ly)?|injection|injected|infusion|epidural|intrathecal)\b|\b(?P<td>patch(?:es)?|transdermal)\b|\b(?P<po>oral(?:ly)?|by mouth|po|tablets?|capsules?)\b",
            )?,
        })
    }

    /// Doses in `norm`, each attached to the nearest drug mention of its sentence (the closest one
    /// before it, else the closest after it).
    pub fn parse(
        &self,
        norm: &NormText,
        mentions: &[Mention],
        index: &DrugIndex,
    ) -> Vec<ParsedDose> {
        let text = norm.text.as_str();
        let mut out = Vec::new();
        for sent in sentences(text) {
            let in_sent: Vec<&Mention> = mentions
                .iter()
                .filter(|m| m.range.start >= sent.start && m.range.end <= sent.end)
                .collect();
            if in_sent.is_empty() {
                continue;
            }
            let s = &text[sent.clone()];
            let base = sent.start;
            let route = self.route(s);
            let duration = self.duration(s);
            let counts: Vec<(Range<usize>, f64)> = self
                .count
                .captures_iter(s)
                .filter_map(|c| {
                    let m = c.get(0)?;
                    let n = word_number(c.name("n")?.as_str()).or(Some(0.5))?;
                    let n2 = c.name("n2").and_then(|x| word_number(x.as_str()));
                    Some((
                        base + m.start()..base + m.end(),
                        n2.map_or(n, |n2| n.max(n2)),
                    ))
                })
                .collect();
            let amounts: Vec<regex::Captures> = self.amount.captures_iter(s).collect();
            let mut used: Vec<Range<usize>> = Vec::new();
            // "Percocet 10/325": main ingredient / second ingredient in mg.
            for c in self.ratio.captures_iter(s) {
                let Some(m) = c.get(0) else { continue };
                let range = base + m.start()..base + m.end();
                let Some(owner) = nearest(&in_sent, &range) else {
                    continue;
                };
                let ing = index.ingredients(owner);
                if ing.len() < 2 {
                    continue;
                }
                let (Some(a), Some(b)) = (
                    c.name("a").and_then(|x| x.as_str().parse::<f64>().ok()),
                    c.name("b").and_then(|x| x.as_str().parse::<f64>().ok()),
                ) else {
                    continue;
                };
                let count = count_near(&counts, &range, &sent);
                let freq = self.frequency_after(text, &range, &sent, &amounts, base);
                for (generic, amount) in [(&ing[0], a), (&ing[1], b)] {
                    out.push(ParsedDose {
                        generic: generic.clone(),
                        amount,
                        unit: "mg",
                        count,
                        doses_per_day: freq,
                        duration_days: duration,
                        route,
                        range: range.clone(),
                    });
                }
                used.push(range);
            }
            for (i, c) in amounts.iter().enumerate() {
                let Some(m) = c.get(0) else { continue };
                let num_start = c
                    .name("cw")
                    .or(c.name("cd"))
                    .or(c.name("num"))
                    .map_or(m.start(), |x| x.start());
                let unit_m = c.name("unit");
                let end = unit_m.map_or(m.end(), |u| u.end());
                let range = base + num_start..base + end;
                if used
                    .iter()
                    .any(|u| u.start < range.end && range.start < u.end)
                {
                    continue;
                }
                let Some(owner) = nearest(&in_sent, &range) else {
                    continue;
                };
                let (Some(num), Some(unit)) = (
                    c.name("num").and_then(|x| word_number(x.as_str())),
                    unit_m.map(|u| u.as_str()),
                ) else {
                    continue;
                };
                let num = c
                    .name("num2")
                    .and_then(|x| word_number(x.as_str()))
                    .map_or(num, |n2| num.max(n2));
                let (amount, unit) = match unit {
                    "mg/kg" => (num, "mg/kg"),
                    "mcg/kg" => (num / 1000.0, "mg/kg"),
                    u if u.contains("hour") || u.contains("/h") => (num, "mcg/hr"),
                    "mcg" | "ug" | "microgram" | "micrograms" => (num / 1000.0, "mg"),
                    "g" | "gram" | "grams" => (num * 1000.0, "mg"),
                    "ml" | "milliliter" | "milliliters" => (num, "ml"),
                    _ => (num, "mg"),
                };
                let count = match c.name("cw").or(c.name("cd")) {
                    Some(x) => word_number(x.as_str()).unwrap_or(1.0),
                    None => count_near(&counts, &range, &sent),
                };
                let next_start = amounts
                    .get(i + 1)
                    .and_then(|n| n.get(0))
                    .map(|n| base + n.start());
                let freq = self
                    .frequency_in(text, range.end..next_start.unwrap_or(sent.end))
                    .or_else(|| {
                        self.frequency_in(text, owner.range.start.min(range.start)..range.start)
                    });
                out.push(ParsedDose {
                    generic: index.ingredients(owner)[0].clone(),
                    amount,
                    unit,
                    count,
                    doses_per_day: freq,
                    duration_days: duration,
                    route,
                    range,
                });
            }
        }
        out
    }

    fn frequency_after(
        &self,
        text: &str,
        range: &Range<usize>,
        sent: &Range<usize>,
        amounts: &[regex::Captures],
        base: usize,
    ) -> Option<f64> {
        let next = amounts
            .iter()
            .filter_map(|c| c.get(0))
            .map(|m| base + m.start())
            .find(|&s| s >= range.end)
            .unwrap_or(sent.end);
        self.frequency_in(text, range.end..next.max(range.end))
    }

    /// Doses per day from the first frequency expression in `text[range]`.
    pub fn frequency_in(&self, text: &str, range: Range<usize>) -> Option<f64> {
        let s = text.get(range)?;
        let c = self.frequency.captures(s)?;
        let num = |name: &str| c.name(name).and_then(|x| word_number(x.as_str()));
        if let Some(h) = num("qh").or_else(|| num("eh")) {
            // "every 4 to 6 hours": the shorter interval gives the most doses a day.
            let h2 = num("qh2").or_else(|| num("eh2")).unwrap_or(h);
            let h = h.min(h2);
            return (h > 0.0).then(|| 24.0 / h);
        }
        if c.name("hourly").is_some() {
            return Some(24.0);
        }
        if let Some(tw) = c.name("tw") {
            let t = tw.as_str();
            let n = word_number(t.split_whitespace().next().unwrap_or(t)).or_else(|| {
                t.trim_end_matches(|ch: char| !ch.is_ascii_digit())
                    .parse()
                    .ok()
            })?;
            let per_week = c.name("tu").is_some_and(|u| u.as_str().starts_with("week"));
            return Some(if per_week { n / 7.0 } else { n });
        }
        if c.name("bid").is_some() {
            return Some(2.0);
        }
        if c.name("tid").is_some() {
            return Some(3.0);
        }
        if c.name("qid").is_some() {
            return Some(4.0);
        }
        if c.name("eod").is_some() {
            return Some(0.5);
        }
        if let Some(d) = num("nd") {
            return (d > 0.0).then(|| 1.0 / d);
        }
        if c.name("week").is_some() {
            return Some(1.0 / 7.0);
        }
        c.name("day").map(|_| 1.0)
    }

    fn duration(&self, s: &str) -> Option<f64> {
        let c = self.duration.captures(s)?;
        let n = word_number(c.name("n")?.as_str())?;
        let u = c.name("u")?.as_str();
        Some(if u.starts_with("week") {
            n * 7.0
        } else if u.starts_with("month") {
            n * 30.0
        } else {
            n
        })
    }

    fn route(&self, s: &str) -> Option<&'static str> {
        let c = self.route.captures(s)?;
        if c.name("iv").is_some() {
            Some("parenteral")
        } else if c.name("td").is_some() {
            Some("transdermal")
        } else {
            Some("oral")
        }
    }
}

/// The mention closest before `range` in the sentence, else the closest after it.
fn nearest<'a>(mentions: &[&'a Mention], range: &Range<usize>) -> Option<&'a Mention> {
    mentions
        .iter()
        .filter(|m| m.range.end <= range.start)
        .max_by_key(|m| m.range.end)
        .or_else(|| {
            mentions
                .iter()
                .filter(|m| m.range.start >= range.end)
                .min_by_key(|m| m.range.start)
        })
        .copied()
}

/// The unit count ("2 tablets") nearest to a dose in the same sentence, 1 if none.
fn count_near(counts: &[(Range<usize>, f64)], range: &Range<usize>, sent: &Range<usize>) -> f64 {
    counts
        .iter()
        .filter(|(r, _)| r.start >= sent.start && r.end <= sent.end)
        .filter(|(r, _)| r.end <= range.start || r.start >= range.end)
        .min_by_key(|(r, _)| r.start.abs_diff(range.start))
        .map_or(1.0, |(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::{TableTexts, Tables};

    fn parse(text: &str) -> Vec<ParsedDose> {
        let t = Tables::parse(&TableTexts::embedded()).expect("tables");
        let idx = DrugIndex::build(&t, &[]).expect("index");
        let n = NormText::new(text);
        let m = idx.find(&n.text);
        DoseParser::new().expect("patterns").parse(&n, &m, &idx)
    }

    #[test]
    fn q6h() {
        let d = parse("Oxycodone 10 mg q6h as needed");
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].amount, d[0].count, d[0].doses_per_day),
            (10.0, 1.0, Some(4.0))
        );
    }

    #[test]
    fn two_tablets_every_four_hours() {
        let d = parse("Take two 500 mg tablets of acetaminophen every 4 hours.");
        assert_eq!(d[0].generic, "acetaminophen");
        assert_eq!(
            (d[0].amount, d[0].count, d[0].doses_per_day),
            (500.0, 2.0, Some(6.0))
        );
        let d = parse("Tylenol 500 mg, 2 tablets every 4 to 6 hours");
        assert_eq!(
            (d[0].amount, d[0].count, d[0].doses_per_day),
            (500.0, 2.0, Some(6.0))
        );
    }

    #[test]
    fn patch_weekly_grams_and_micrograms() {
        let d = parse("a 25 mcg/hr fentanyl patch");
        assert_eq!(
            (d[0].generic.as_str(), d[0].amount, d[0].unit),
            ("fentanyl", 25.0, "mcg/hr")
        );
        assert_eq!(d[0].route, Some("transdermal"));
        let d = parse("methotrexate 7.5 mg weekly for 12 weeks");
        assert!((d[0].doses_per_day.unwrap_or(0.0) - 1.0 / 7.0).abs() < 1e-9);
        assert_eq!(d[0].duration_days, Some(84.0));
        let d = parse("6 g acetaminophen a day");
        assert_eq!((d[0].amount, d[0].doses_per_day), (6000.0, Some(1.0)));
        let d = parse("levothyroxine 100 µg daily");
        assert!((d[0].amount - 0.1).abs() < 1e-12);
        let d = parse("levothyroxine 100 mcg once a day");
        assert!((d[0].amount - 0.1).abs() < 1e-12);
    }

    #[test]
    fn ratio_form_splits_combination() {
        let d = parse("Percocet 10/325, 2 tablets q4h");
        let oxy = d
            .iter()
            .find(|x| x.generic == "oxycodone")
            .expect("oxycodone");
        let apap = d
            .iter()
            .find(|x| x.generic == "acetaminophen")
            .expect("apap");
        assert_eq!(
            (oxy.amount, oxy.count, oxy.doses_per_day),
            (10.0, 2.0, Some(6.0))
        );
        assert_eq!(apap.amount, 325.0);
    }

    #[test]
    fn thousands_separators_and_weight_based_doses() {
        let d = parse("acetaminophen 1,000 mg every 6 hours");
        assert_eq!((d[0].amount, d[0].doses_per_day), (1000.0, Some(4.0)));
        let d = parse("paracetamol 2,5 g daily");
        assert_eq!(d[0].amount, 2500.0);
        let d = parse("ibuprofen 10 mg/kg every 8 hours");
        assert_eq!((d[0].amount, d[0].unit), (10.0, "mg/kg"));
    }

    #[test]
    fn frequencies() {
        let p = DoseParser::new().expect("patterns");
        let f = |s: &str| p.frequency_in(s, 0..s.len());
        assert_eq!(f("twice a day"), Some(2.0));
        assert_eq!(f("three times daily"), Some(3.0));
        assert_eq!(f("bid"), Some(2.0));
        assert_eq!(f("t.i.d."), Some(3.0));
        assert_eq!(f("every 12 hours"), Some(2.0));
        assert_eq!(f("once weekly"), Some(1.0 / 7.0));
        assert_eq!(f("at bedtime"), Some(1.0));
        assert_eq!(f("every other day"), Some(0.5));
        assert_eq!(f("sometimes"), None);
    }

    #[test]
    fn amount_without_drug_is_ignored() {
        assert!(parse("What dose: Low (0.5 mg), or High (1 mg)?").is_empty());
    }
}
