//! Per-specialty change between two evaluated targets (progressive training's before/after):
//! each specialty's primary figure for both, and the paired difference with its bootstrap
//! interval (same items, same resamples), with a verdict that is only "better" or "worse" when
//! the interval excludes zero and the specialty has at least [`MIN_VERDICT_N`] items.

use crate::compare::Comparison;
use crate::error::{Error, Result};
use crate::metrics::bootstrap::Interval;
use crate::run::Mode;
use crate::suite::Suite;
use serde::Serialize;
use std::fmt::Write as _;

/// One specialty's change from the first target (`before`) to a later one (`after`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecialtyChange {
    /// Suite.
    pub suite: Suite,
    /// Mode.
    pub mode: Mode,
    /// Specialty.
    pub specialty: String,
    /// The suite's primary metric.
    pub metric: String,
    /// Items.
    pub n: usize,
    /// Whether a higher figure is better (false for perplexity).
    pub higher_is_better: bool,
    /// Figure of the first target.
    pub before: Interval,
    /// Figure of the later target.
    pub after: Interval,
    /// `after − before`, paired.
    pub change: Interval,
    /// `better`, `worse`, `no clear change` (the interval of the change contains 0) or
    /// `too few items` (fewer than [`MIN_VERDICT_N`]).
    pub verdict: &'static str,
}

/// Fewest items of a specialty for a `better` / `worse` verdict (the bootstrap of fewer items
/// is too coarse to trust); below it the verdict is `too few items`.
pub const MIN_VERDICT_N: usize = 5;

fn verdict(change: &Interval, higher_is_better: bool, n: usize) -> &'static str {
    if n < MIN_VERDICT_N {
        return "too few items";
    }
    let up = change.low > 0.0;
    let down = change.high < 0.0;
    match (up, down, higher_is_better) {
        (true, _, true) | (_, true, false) => "better",
        (true, _, false) | (_, true, true) => "worse",
        _ => "no clear change",
    }
}

/// The change of every specialty from `cmp.targets[0]` to the target named `after`.
pub fn specialty_changes(cmp: &Comparison, after: &str) -> Result<Vec<SpecialtyChange>> {
    let before = cmp.targets.first().ok_or_else(|| Error::Setting {
        field: "targets".into(),
        message: "no targets".into(),
    })?;
    if before == after || !cmp.targets.iter().any(|t| t == after) {
        return Err(Error::Setting {
            field: "after".into(),
            message: format!(
                "`{after}` is not a later target of this comparison (targets: {})",
                cmp.targets.join(", ")
            ),
        });
    }
    let mut out = Vec::new();
    for a in cmp.specialties.iter().filter(|s| s.target == after) {
        let Some(b) = cmp.specialties.iter().find(|s| {
            &s.target == before
                && s.suite == a.suite
                && s.mode == a.mode
                && s.specialty == a.specialty
                && s.metric == a.metric
        }) else {
            continue;
        };
        let Some(change) = a.delta else {
            continue;
        };
        let higher_is_better = cmp
            .metric(after, a.suite, a.mode, &a.metric)
            .map(|m| m.higher_is_better)
            .unwrap_or(true);
        out.push(SpecialtyChange {
            suite: a.suite,
            mode: a.mode,
            specialty: a.specialty.clone(),
            metric: a.metric.clone(),
            n: a.n,
            higher_is_better,
            before: b.value,
            after: a.value,
            change,
            verdict: verdict(&change, higher_is_better, a.n),
        });
    }
    Ok(out)
}

/// Column names of [`to_csv`].
pub const CHANGE_COLUMNS: [&str; 15] = [
    "suite",
    "mode",
    "specialty",
    "metric",
    "n",
    "before",
    "before_ci_low",
    "before_ci_high",
    "after",
    "after_ci_low",
    "after_ci_high",
    "change",
    "change_ci_low",
    "change_ci_high",
    "verdict",
];

fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.6}")
    } else {
        String::new()
    }
}

/// The changes as CSV text.
pub fn to_csv(rows: &[SpecialtyChange]) -> Result<String> {
    let err = |e: csv::Error| Error::Setting {
        field: "csv".into(),
        message: e.to_string(),
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CHANGE_COLUMNS).map_err(err)?;
    for r in rows {
        w.write_record([
            r.suite.name().to_string(),
            r.mode.name().to_string(),
            r.specialty.clone(),
            r.metric.clone(),
            r.n.to_string(),
            num(r.before.value),
            num(r.before.low),
            num(r.before.high),
            num(r.after.value),
            num(r.after.low),
            num(r.after.high),
            num(r.change.value),
            num(r.change.low),
            num(r.change.high),
            r.verdict.to_string(),
        ])
        .map_err(err)?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Setting {
        field: "csv".into(),
        message: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|e| Error::Setting {
        field: "csv".into(),
        message: e.to_string(),
    })
}

/// The changes as a markdown table (figures with their 95% intervals).
pub fn to_markdown(rows: &[SpecialtyChange]) -> String {
    let ci = |i: &Interval| format!("{:.3} [{:.3}, {:.3}]", i.value, i.low, i.high);
    let mut s = String::from(
        "| suite | mode | specialty | metric | n | before | after | change | verdict |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {}{} | {} | {} | {} | {:+.3} [{:+.3}, {:+.3}] | {} |",
            r.suite,
            r.mode.name(),
            r.specialty.replace('|', "\\|"),
            r.metric,
            if r.higher_is_better { " ↑" } else { " ↓" },
            r.n,
            ci(&r.before),
            ci(&r.after),
            r.change.value,
            r.change.low,
            r.change.high,
            r.verdict
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::freetext::TextScorer;
    use crate::metrics::bootstrap::Bootstrap;
    use crate::run::Prediction;

    fn pred(target: &str, id: usize, group: &str, correct: bool) -> Prediction {
        Prediction {
            target: target.into(),
            suite: Suite::Medmcqa,
            mode: Mode::Likelihood,
            id: format!("q{id:02}"),
            group: group.into(),
            gold: "A".into(),
            predicted: Some(if correct { "A" } else { "B" }.into()),
            predicted_norm: Some("A".into()),
            option_logprobs: vec![-1.0, -2.0],
            reference_logprob: None,
            output: String::new(),
            extraction: None,
            text_scores: None,
            refusal: false,
            safety_flags: Vec::new(),
            variant: None,
            reference: "x".into(),
            question: "q".into(),
        }
    }

    fn comparison() -> Comparison {
        let mut preds = Vec::new();
        for i in 0..12 {
            // cardio: before always wrong, after always right; neuro: both right on the same
            // half; derm: after loses every item before had right.
            preds.push(pred("before", i, "cardio", false));
            preds.push(pred("after", i, "cardio", true));
        }
        for i in 12..24 {
            preds.push(pred("before", i, "neuro", i % 2 == 0));
            preds.push(pred("after", i, "neuro", i % 2 == 0));
        }
        for i in 24..36 {
            preds.push(pred("before", i, "derm", true));
            preds.push(pred("after", i, "derm", false));
        }
        Comparison::build(
            vec!["before".into(), "after".into()],
            preds,
            Vec::new(),
            Vec::new(),
            &Bootstrap {
                resamples: 200,
                ..Bootstrap::default()
            },
            &TextScorer::new(None),
        )
        .unwrap()
    }

    #[test]
    fn paired_changes_and_verdicts() {
        let cmp = comparison();
        let rows = specialty_changes(&cmp, "after").unwrap();
        assert_eq!(rows.len(), 3);
        let get = |s: &str| rows.iter().find(|r| r.specialty == s).unwrap();
        let c = get("cardio");
        assert_eq!(
            (c.before.value, c.after.value, c.change.value),
            (0.0, 1.0, 1.0)
        );
        assert_eq!((c.change.low, c.change.high), (1.0, 1.0));
        assert_eq!(c.verdict, "better");
        assert_eq!(c.n, 12);
        let n = get("neuro");
        // Paired on identical items: the change is exactly 0 in every resample.
        assert_eq!(
            (n.change.value, n.change.low, n.change.high),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(n.verdict, "no clear change");
        assert_eq!(get("derm").verdict, "worse");
        let csv = to_csv(&rows).unwrap();
        assert_eq!(csv.lines().count(), 4);
        assert!(csv
            .lines()
            .any(|l| l.starts_with("medmcqa,likelihood,cardio,accuracy,12,0.000000")));
        let md = to_markdown(&rows);
        assert!(md.contains("| cardio |") && md.contains("+1.000 [+1.000, +1.000]"));
        // The first target's own rows carry no delta.
        assert!(cmp
            .specialties
            .iter()
            .filter(|s| s.target == "before")
            .all(|s| s.delta.is_none()));
    }

    #[test]
    fn lower_is_better_flips_the_verdict() {
        let ch = |low: f64, high: f64| Interval {
            value: (low + high) / 2.0,
            low,
            high,
        };
        assert_eq!(verdict(&ch(-2.0, -1.0), false, 5), "better");
        assert_eq!(verdict(&ch(1.0, 2.0), false, 5), "worse");
        assert_eq!(verdict(&ch(-1.0, 2.0), false, 5), "no clear change");
        assert_eq!(verdict(&ch(1.0, 2.0), true, 5), "better");
        assert_eq!(verdict(&ch(1.0, 2.0), true, 4), "too few items");
    }

    #[test]
    fn unknown_after_target_is_named() {
        let cmp = comparison();
        let e = specialty_changes(&cmp, "later").unwrap_err().to_string();
        assert!(e.contains("later") && e.contains("before, after"), "{e}");
        assert!(specialty_changes(&cmp, "before").is_err());
    }
}
