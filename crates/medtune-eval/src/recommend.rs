//! Training recommendations: specialties where the evaluated model does clearly worse than on
//! its suite as a whole, with a suggested sampling increase for the next progressive-training
//! round (written as `training_recommendations.json`).
//!
//! Rule: for the last target (the newest adapter, or the base when alone), per suite and mode,
//! a specialty with at least [`Rules::min_n`] items is weak when its primary metric (higher is
//! better) is below the suite figure by more than [`Rules::margin`]. Its sampling multiplier is
//! `suite / max(specialty, floor)`, clamped to `[1, max_multiplier]` and rounded to 0.1.

use crate::compare::Comparison;
use crate::run::Mode;
use crate::suite::Suite;
use serde::Serialize;

/// Thresholds of the rule.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Smallest specialty considered.
    pub min_n: usize,
    /// How far below the suite figure a specialty must be.
    pub margin: f64,
    /// Largest multiplier suggested.
    pub max_multiplier: f64,
    /// Lower bound of the specialty figure in the ratio (avoids division by ~0).
    pub floor: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            min_n: 5,
            margin: 0.05,
            max_multiplier: 3.0,
            floor: 0.05,
        }
    }
}

/// One weak specialty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    /// Suite.
    pub suite: Suite,
    /// Mode the figure comes from.
    pub mode: Mode,
    /// Specialty as named in the data (`Record::specialty`).
    pub specialty: String,
    /// Metric.
    pub metric: String,
    /// The specialty's figure.
    pub value: f64,
    /// Its 95% interval.
    pub ci: (f64, f64),
    /// Items.
    pub n: usize,
    /// The suite's figure.
    pub suite_value: f64,
    /// Suggested factor on the specialty's sampling weight.
    pub sampling_multiplier: f64,
}

/// The file's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendations {
    /// Whose figures were used.
    pub target: String,
    /// The rule in words.
    pub rule: String,
    /// Weak specialties, lowest figure first.
    pub specialties: Vec<Recommendation>,
}

/// Applies `rules` to `cmp` (see the module docs).
pub fn recommend(cmp: &Comparison, rules: &Rules) -> Recommendations {
    let target = cmp.targets.last().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for s in cmp.specialties.iter().filter(|s| s.target == target) {
        let Some(suite_row) = cmp.metric(&target, s.suite, s.mode, &s.metric) else {
            continue;
        };
        if !suite_row.higher_is_better || s.n < rules.min_n {
            continue;
        }
        let (v, sv) = (s.value.value, suite_row.value.value);
        if !(v.is_finite() && sv.is_finite()) || v >= sv - rules.margin {
            continue;
        }
        let m = (sv / v.max(rules.floor)).clamp(1.0, rules.max_multiplier);
        out.push(Recommendation {
            suite: s.suite,
            mode: s.mode,
            specialty: s.specialty.clone(),
            metric: s.metric.clone(),
            value: v,
            ci: (s.value.low, s.value.high),
            n: s.n,
            suite_value: sv,
            sampling_multiplier: (m * 10.0).round() / 10.0,
        });
    }
    out.sort_by(|a, b| a.value.total_cmp(&b.value));
    Recommendations {
        target,
        rule: format!(
            "specialties with n >= {} whose figure is more than {} below their suite's; multiplier = suite / max(specialty, {}), clamped to [1, {}]",
            rules.min_n, rules.margin, rules.floor, rules.max_multiplier
        ),
        specialties: out,
    }
}
