//! From predictions to figures: per target × suite × mode metrics with bootstrap intervals,
//! paired differences against the first target (the base), per-specialty figures, confusion
//! matrices, Q-Pain gaps and the error analysis.
//!
//! Every figure is a statistic over the aligned items of one suite and mode, so its interval
//! and the paired difference (same resampled items for both targets) come from one bootstrap.

use crate::analysis::{analyse, word_count, ErrorAnalysis};
use crate::error::{Error, Result};
use crate::freetext::{TextScorer, TEXT_METRICS};
use crate::metrics::bleu::BleuStats;
use crate::metrics::bootstrap::{Bootstrap, Interval};
use crate::metrics::classification::classification_report;
use crate::qpain::{gaps, Gap, GroupRate, Outcome};
use crate::run::{Mode, Prediction};
use crate::suite::Suite;
use serde::Serialize;
use std::collections::BTreeMap;

/// Label used for a format failure in confusion matrices.
pub const NO_ANSWER: &str = "(none)";

/// One figure of one target on one suite and mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricRow {
    /// Target.
    pub target: String,
    /// Suite.
    pub suite: Suite,
    /// Mode.
    pub mode: Mode,
    /// Metric name.
    pub metric: String,
    /// Value with its bootstrap interval.
    pub value: Interval,
    /// Items.
    pub n: usize,
    /// Paired difference to the first target (absent for the first target itself).
    pub delta: Option<Interval>,
    /// Whether higher is better.
    pub higher_is_better: bool,
}

/// A figure for one specialty / subject.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecialtyRow {
    /// Target.
    pub target: String,
    /// Suite.
    pub suite: Suite,
    /// Mode.
    pub mode: Mode,
    /// Specialty.
    pub specialty: String,
    /// Metric name (the suite's primary metric).
    pub metric: String,
    /// Value with its interval.
    pub value: Interval,
    /// Items.
    pub n: usize,
    /// Paired difference to the first target on the same items and bootstrap resamples
    /// (absent for the first target itself).
    pub delta: Option<Interval>,
}

/// Confusion matrix of one target × suite × mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    /// Target.
    pub target: String,
    /// Suite.
    pub suite: Suite,
    /// Mode.
    pub mode: Mode,
    /// Axis labels (gold rows, predicted columns).
    pub labels: Vec<String>,
    /// `matrix[gold][predicted]`.
    pub matrix: Vec<Vec<usize>>,
}

/// Q-Pain rates and gaps of one target × mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QpainResult {
    /// Target.
    pub target: String,
    /// Mode.
    pub mode: Mode,
    /// Per-group rates.
    pub rates: Vec<GroupRate>,
    /// Largest gaps per axis.
    pub gaps: Vec<Gap>,
}

/// Everything a report needs.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Targets in order; the first is the reference for differences.
    pub targets: Vec<String>,
    /// Every prediction.
    pub predictions: Vec<Prediction>,
    /// Figures.
    pub metrics: Vec<MetricRow>,
    /// Per-specialty figures.
    pub specialties: Vec<SpecialtyRow>,
    /// Confusion matrices of choice suites.
    pub confusions: Vec<Confusion>,
    /// Q-Pain gaps.
    pub qpain: Vec<QpainResult>,
    /// Error analysis (generation mode).
    pub analysis: Vec<ErrorAnalysis>,
    /// Items left out on purpose: suite, id, reason.
    pub skipped: Vec<(Suite, String, String)>,
    /// Malformed input rows reported by the readers.
    pub problems: Vec<(Suite, String)>,
}

/// A statistic over a list of aligned predictions and resampled indices.
#[derive(Debug, Clone, Copy)]
enum Stat {
    Accuracy,
    AccuracyNorm,
    MacroF1,
    FormatFailureRate,
    Text(&'static str),
    CorpusBleu,
    LengthRatio,
    Perplexity,
}

impl Stat {
    fn name(self) -> String {
        match self {
            Stat::Accuracy => "accuracy".into(),
            Stat::AccuracyNorm => "accuracy_norm".into(),
            Stat::MacroF1 => "macro_f1".into(),
            Stat::FormatFailureRate => "format_failure_rate".into(),
            Stat::Text(m) => m.into(),
            Stat::CorpusBleu => "corpus_bleu".into(),
            Stat::LengthRatio => "length_ratio".into(),
            Stat::Perplexity => "perplexity".into(),
        }
    }

    fn higher_is_better(self) -> bool {
        !matches!(
            self,
            Stat::FormatFailureRate | Stat::Perplexity | Stat::LengthRatio
        )
    }

    fn for_mode(suite: Suite, mode: Mode, has_meteor: bool) -> Vec<Stat> {
        match (suite.is_choice(), mode) {
            (true, Mode::Likelihood) => vec![Stat::Accuracy, Stat::AccuracyNorm, Stat::MacroF1],
            (true, Mode::Generate) => {
                vec![Stat::Accuracy, Stat::MacroF1, Stat::FormatFailureRate]
            }
            (false, Mode::Likelihood) => vec![Stat::Perplexity],
            (false, Mode::Generate) => {
                let mut v: Vec<Stat> = TEXT_METRICS
                    .iter()
                    .filter(|m| **m != "meteor" || has_meteor)
                    .map(|m| Stat::Text(m))
                    .collect();
                v.push(Stat::CorpusBleu);
                v.push(Stat::LengthRatio);
                v
            }
        }
    }
}

/// Per-item data a statistic reads, precomputed once per prediction list.
struct Cols<'a> {
    preds: Vec<&'a Prediction>,
    bleu: Vec<BleuStats>,
}

impl Cols<'_> {
    fn eval(&self, stat: Stat, idx: &[usize], scorer: &TextScorer) -> f64 {
        let n = idx.len().max(1) as f64;
        let mean =
            |f: &dyn Fn(&Prediction) -> f64| idx.iter().map(|&i| f(self.preds[i])).sum::<f64>() / n;
        match stat {
            Stat::Accuracy => mean(&|p| f64::from(u8::from(p.correct() == Some(true)))),
            Stat::AccuracyNorm => mean(&|p| {
                f64::from(u8::from(
                    p.predicted_norm.as_deref() == Some(p.gold.as_str()),
                ))
            }),
            Stat::FormatFailureRate => mean(&|p| f64::from(u8::from(p.format_failure()))),
            Stat::MacroF1 => {
                let gold: Vec<&str> = idx.iter().map(|&i| self.preds[i].gold.as_str()).collect();
                let pred: Vec<&str> = idx
                    .iter()
                    .map(|&i| self.preds[i].predicted.as_deref().unwrap_or(NO_ANSWER))
                    .collect();
                classification_report(&gold, &pred).map_or(f64::NAN, |r| r.macro_f1)
            }
            Stat::Text(m) => mean(&|p| p.text_scores.and_then(|t| t.get(m)).unwrap_or(f64::NAN)),
            Stat::CorpusBleu => {
                let mut sum = BleuStats::default();
                for &i in idx {
                    sum += self.bleu[i];
                }
                scorer.bleu_from_stats(&sum)
            }
            Stat::LengthRatio => {
                mean(&|p| word_count(&p.output) as f64 / word_count(&p.reference).max(1) as f64)
            }
            Stat::Perplexity => {
                let (mut tok, mut lp) = (0usize, 0.0f64);
                for &i in idx {
                    if let Some((t, l)) = self.preds[i].reference_logprob {
                        tok += t;
                        lp += l;
                    }
                }
                if tok == 0 {
                    f64::NAN
                } else {
                    (-lp / tok as f64).exp()
                }
            }
        }
    }
}

/// Predictions of `target` on `suite`/`mode`, in the order of `ids`.
fn aligned<'a>(
    preds: &'a [Prediction],
    target: &str,
    suite: Suite,
    mode: Mode,
) -> Vec<&'a Prediction> {
    let mut v: Vec<&Prediction> = preds
        .iter()
        .filter(|p| p.target == target && p.suite == suite && p.mode == mode)
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// Checks that two prediction lists cover the same item ids (after sorting by id).
pub fn check_same_items(context: &str, a: &[&Prediction], b: &[&Prediction]) -> Result<()> {
    if a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.id == y.id) {
        return Ok(());
    }
    let ia: std::collections::BTreeSet<&str> = a.iter().map(|p| p.id.as_str()).collect();
    let ib: std::collections::BTreeSet<&str> = b.iter().map(|p| p.id.as_str()).collect();
    let only_a: Vec<&&str> = ia.difference(&ib).take(3).collect();
    let only_b: Vec<&&str> = ib.difference(&ia).take(3).collect();
    Err(Error::MismatchedItems {
        context: context.into(),
        detail: format!(
            "{} vs {} items; only in first: {only_a:?}; only in second: {only_b:?}",
            a.len(),
            b.len()
        ),
    })
}

fn interval(bs: &Bootstrap, n: usize, f: impl FnMut(&[usize]) -> f64) -> Result<Interval> {
    let v = bs.interval(n, f)?;
    Ok(v)
}

impl Comparison {
    /// Computes every figure from `predictions` (see the module docs).
    pub fn build(
        targets: Vec<String>,
        predictions: Vec<Prediction>,
        skipped: Vec<(Suite, String, String)>,
        problems: Vec<(Suite, String)>,
        bs: &Bootstrap,
        scorer: &TextScorer,
    ) -> Result<Comparison> {
        let mut stages: Vec<(Suite, Mode)> =
            predictions.iter().map(|p| (p.suite, p.mode)).collect();
        stages.sort();
        stages.dedup();
        let has_meteor = predictions
            .iter()
            .any(|p| p.text_scores.is_some_and(|t| t.meteor.is_some()));
        let mut metrics = Vec::new();
        let mut specialties = Vec::new();
        let mut confusions = Vec::new();
        let mut qpain = Vec::new();
        for &(suite, mode) in &stages {
            let cols: Vec<Cols> = targets
                .iter()
                .map(|t| {
                    let preds = aligned(&predictions, t, suite, mode);
                    let bleu = preds
                        .iter()
                        .map(|p| scorer.bleu_stats(&p.output, &p.reference))
                        .collect();
                    Cols { preds, bleu }
                })
                .collect();
            let context = format!("{suite}/{}", mode.name());
            for (t, c) in targets.iter().zip(&cols).skip(1) {
                check_same_items(
                    &format!("{context}: {} vs {t}", targets[0]),
                    &cols[0].preds,
                    &c.preds,
                )?;
            }
            let n = cols[0].preds.len();
            if n == 0 {
                continue;
            }
            for stat in Stat::for_mode(suite, mode, has_meteor) {
                for (ti, (t, c)) in targets.iter().zip(&cols).enumerate() {
                    let value = interval(bs, n, |idx| c.eval(stat, idx, scorer))?;
                    let delta = if ti == 0 {
                        None
                    } else {
                        Some(interval(bs, n, |idx| {
                            c.eval(stat, idx, scorer) - cols[0].eval(stat, idx, scorer)
                        })?)
                    };
                    metrics.push(MetricRow {
                        target: t.clone(),
                        suite,
                        mode,
                        metric: stat.name(),
                        value,
                        n,
                        delta,
                        higher_is_better: stat.higher_is_better(),
                    });
                }
            }
            let primary = Stat::for_mode(suite, mode, has_meteor)
                .into_iter()
                .find(|s| matches!(s, Stat::Accuracy | Stat::Perplexity | Stat::Text("rouge_l")))
                .unwrap_or(Stat::Accuracy);
            for (ti, (t, c)) in targets.iter().zip(&cols).enumerate() {
                let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for (i, p) in c.preds.iter().enumerate() {
                    groups.entry(p.group.as_str()).or_default().push(i);
                }
                for (g, members) in groups {
                    let pick =
                        |idx: &[usize]| -> Vec<usize> { idx.iter().map(|&k| members[k]).collect() };
                    let value =
                        interval(bs, members.len(), |idx| c.eval(primary, &pick(idx), scorer))?;
                    // Items are aligned by id across targets, so `members` index both columns.
                    let delta = if ti == 0 {
                        None
                    } else {
                        Some(interval(bs, members.len(), |idx| {
                            let real = pick(idx);
                            c.eval(primary, &real, scorer) - cols[0].eval(primary, &real, scorer)
                        })?)
                    };
                    specialties.push(SpecialtyRow {
                        target: t.clone(),
                        suite,
                        mode,
                        specialty: g.to_string(),
                        metric: primary.name(),
                        value,
                        n: members.len(),
                        delta,
                    });
                }
                if suite.is_choice() {
                    let gold: Vec<&str> = c.preds.iter().map(|p| p.gold.as_str()).collect();
                    let pred: Vec<&str> = c
                        .preds
                        .iter()
                        .map(|p| p.predicted.as_deref().unwrap_or(NO_ANSWER))
                        .collect();
                    let r = classification_report(&gold, &pred)?;
                    confusions.push(Confusion {
                        target: t.clone(),
                        suite,
                        mode,
                        labels: r.labels,
                        matrix: r.confusion,
                    });
                }
                if suite == Suite::Qpain {
                    let outcomes: Vec<Outcome> = c
                        .preds
                        .iter()
                        .map(|p| Outcome {
                            variant: p.variant.as_ref(),
                            gold: &p.gold,
                            predicted: p.predicted.as_deref(),
                        })
                        .collect();
                    let (rates, gaps) = gaps(&outcomes);
                    qpain.push(QpainResult {
                        target: t.clone(),
                        mode,
                        rates,
                        gaps,
                    });
                }
            }
        }
        let mut analysis = Vec::new();
        let refs: Vec<&Prediction> = predictions.iter().collect();
        for t in &targets {
            for &(suite, mode) in &stages {
                if mode == Mode::Generate {
                    analysis.push(analyse(t, suite, &refs));
                }
            }
        }
        Ok(Comparison {
            targets,
            predictions,
            metrics,
            specialties,
            confusions,
            qpain,
            analysis,
            skipped,
            problems,
        })
    }

    /// The row of `metric` for `target` on `suite`/`mode`.
    pub fn metric(
        &self,
        target: &str,
        suite: Suite,
        mode: Mode,
        metric: &str,
    ) -> Option<&MetricRow> {
        self.metrics.iter().find(|r| {
            r.target == target && r.suite == suite && r.mode == mode && r.metric == metric
        })
    }
}
