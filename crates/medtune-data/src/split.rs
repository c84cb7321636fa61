//! Leakage-aware splitting.
//!
//! Records are first grouped: near duplicates (MinHash + LSH, see [`crate::near_dup`]) and,
//! optionally, records sharing a document or focus are joined by union-find. Whole groups are
//! then assigned to splits, so a group is never split. Groups holding a record with a fixed split
//! (PubMedQA's official test ids) go to that split. Assignment is seeded and deterministic.
//!
//! Two layouts:
//! - ratios (default 80/10/10) into train/validation/test, optionally stratified by label or
//!   specialty;
//! - a constant holdout of N records per specialty as `test`, and with `progressive` set, an
//!   initial training set (a fraction of the rest) with its own validation part, and the
//!   remainder as `pool` for progressive training.

use crate::near_dup::{near_duplicate_pairs, DedupText, NearDupConfig, UnionFind};
use crate::record::StratifyBy;
use crate::{Error, Record, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The splits a record can land in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Training.
    Train,
    /// Validation (model selection).
    Validation,
    /// Test (never trained on).
    Test,
    /// Unlabelled-for-now pool for progressive training.
    Pool,
}

impl Split {
    /// All splits, in file order.
    pub const ALL: [Split; 4] = [Split::Train, Split::Validation, Split::Test, Split::Pool];

    /// File-name stem (`train`, `validation`, `test`, `pool`).
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
            Split::Pool => "pool",
        }
    }

    fn parse(s: &str) -> Option<Split> {
        Split::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// Grouping beyond near duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// Records sharing [`Record::document_id`] stay together.
    Document,
    /// Records sharing [`Record::focus`] stay together (MedQuAD repeats question templates per focus).
    Focus,
}

/// Split settings (`[split]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Train/validation/test fractions (must sum to 1).
    pub ratios: [f64; 3],
    /// Keep records of the same document or focus in one split.
    pub group_by: Option<GroupBy>,
    /// Stratify the assignment by this key.
    pub stratify_by: Option<StratifyBy>,
    /// A constant test set of N records per specialty (replaces the test ratio).
    pub holdout_per_specialty: Option<usize>,
    /// Progressive-training layout (needs `holdout_per_specialty`).
    pub progressive: Option<ProgressiveConfig>,
    /// Near-duplicate detection.
    pub near_dup: NearDupConfig,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            ratios: [0.8, 0.1, 0.1],
            group_by: None,
            stratify_by: None,
            holdout_per_specialty: None,
            progressive: None,
            near_dup: NearDupConfig::default(),
        }
    }
}

/// Progressive layout: `initial_fraction` of the non-holdout records form the first training set,
/// of which `eval_fraction` is validation; the rest is the pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressiveConfig {
    /// Fraction of the non-holdout records in the initial training set.
    pub initial_fraction: f64,
    /// Fraction of the initial training set used for validation.
    pub eval_fraction: f64,
}

/// What the split did, including the leakage check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SplitReport {
    /// Records per split.
    pub counts: BTreeMap<Split, usize>,
    /// Groups formed (after near-duplicate and document/focus grouping).
    pub groups: usize,
    /// Largest group.
    pub largest_group: usize,
    /// Near-duplicate pairs found.
    pub near_dup_pairs: usize,
    /// LSH bands × rows used.
    pub lsh_bands_rows: (usize, usize),
    /// Near-duplicate pairs whose records are in different splits (0 by construction).
    pub near_dup_pairs_crossing: usize,
    /// Groups whose records are in more than one split (0 by construction).
    pub groups_crossing: usize,
    /// A record-level random split with the same fractions and seed, for comparison:
    /// near-duplicate pairs it would have put in different splits.
    pub random_split_near_dup_pairs_crossing: usize,
    /// ... and groups it would have spread over several splits.
    pub random_split_groups_crossing: usize,
}

impl SplitConfig {
    /// Checks fractions and combinations.
    pub fn validate(&self) -> Result<()> {
        let sum: f64 = self.ratios.iter().sum();
        if self.ratios.iter().any(|r| !(0.0..=1.0).contains(r)) || (sum - 1.0).abs() > 1e-6 {
            return Err(Error::config(
                "split.ratios",
                format!(
                    "fractions must be in [0,1] and sum to 1, got {:?}",
                    self.ratios
                ),
            ));
        }
        if let Some(p) = &self.progressive {
            if self.holdout_per_specialty.is_none() {
                return Err(Error::config(
                    "split.progressive",
                    "needs split.holdout_per_specialty (the constant test set)",
                ));
            }
            for (name, v) in [
                ("initial_fraction", p.initial_fraction),
                ("eval_fraction", p.eval_fraction),
            ] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(Error::config(
                        format!("split.progressive.{name}"),
                        format!("must be in [0,1], got {v}"),
                    ));
                }
            }
        }
        let t = self.near_dup.threshold;
        if !(0.0..=1.0).contains(&t) || self.near_dup.num_perm == 0 {
            return Err(Error::config(
                "split.near_dup",
                "threshold must be in [0,1] and num_perm > 0",
            ));
        }
        Ok(())
    }
}

/// The text compared for near duplicates.
fn dedup_text(r: &Record, which: DedupText) -> String {
    match which {
        DedupText::Question => r.question.clone(),
        DedupText::QuestionAnswer => format!(
            "{}\n{}\n{}",
            r.question,
            r.context.as_deref().unwrap_or(""),
            r.answer
        ),
    }
}

/// Assigns every record a split. Returns one [`Split`] per record (same order) and the report.
pub fn split(
    records: &[Record],
    cfg: &SplitConfig,
    seed: u64,
) -> Result<(Vec<Split>, SplitReport)> {
    cfg.validate()?;
    let n = records.len();
    let mut report = SplitReport::default();

    // 1. Groups: near duplicates + document/focus keys, by union-find.
    let pairs = if cfg.near_dup.enabled {
        let texts: Vec<String> = records
            .iter()
            .map(|r| dedup_text(r, cfg.near_dup.text))
            .collect();
        near_duplicate_pairs(&texts, &cfg.near_dup)
    } else {
        Vec::new()
    };
    report.near_dup_pairs = pairs.len();
    report.lsh_bands_rows =
        crate::near_dup::bands_for(cfg.near_dup.threshold, cfg.near_dup.num_perm);
    let mut uf = UnionFind::new(n);
    for &(i, j) in &pairs {
        uf.union(i, j);
    }
    let key_groups = group_keys(records, cfg.group_by);
    if cfg.group_by.is_some() {
        let mut first: HashMap<&str, usize> = HashMap::new();
        for (i, k) in key_groups.iter().enumerate() {
            if let Some(k) = k {
                let f = *first.entry(k.as_str()).or_insert(i);
                uf.union(f, i);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..n {
        groups.entry(uf.find(i)).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = groups.into_values().collect();
    groups.sort_by_key(|g| g[0]);
    report.groups = groups.len();
    report.largest_group = groups.iter().map(Vec::len).max().unwrap_or(0);

    // 2. Fixed splits win for the whole group.
    let mut assign: Vec<Option<Split>> = vec![None; n];
    let mut free: Vec<&Vec<usize>> = Vec::new();
    for g in &groups {
        let fixed = g
            .iter()
            .filter_map(|&i| records[i].fixed_split.as_deref().and_then(Split::parse))
            .max();
        match fixed {
            Some(s) => g.iter().for_each(|&i| assign[i] = Some(s)),
            None => free.push(g),
        }
    }

    // 3. Shuffle the free groups (seeded), then assign.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    free.shuffle(&mut rng);
    let key = |g: &Vec<usize>, by: StratifyBy| majority(g.iter().map(|&i| records[i].key(by)));
    if let Some(per) = cfg.holdout_per_specialty {
        let mut taken: HashMap<String, usize> = HashMap::new();
        let mut rest = Vec::new();
        for g in free {
            let k = key(g, StratifyBy::Specialty);
            let t = taken.entry(k).or_default();
            if *t < per {
                *t += g.len();
                g.iter().for_each(|&i| assign[i] = Some(Split::Test));
            } else {
                rest.push(g);
            }
        }
        let targets = match &cfg.progressive {
            Some(p) => {
                let init = p.initial_fraction;
                vec![
                    (Split::Train, init * (1.0 - p.eval_fraction)),
                    (Split::Validation, init * p.eval_fraction),
                    (Split::Pool, 1.0 - init),
                ]
            }
            None => {
                let tv = cfg.ratios[0] + cfg.ratios[1];
                let t = if tv > 0.0 { cfg.ratios[0] / tv } else { 1.0 };
                vec![(Split::Train, t), (Split::Validation, 1.0 - t)]
            }
        };
        fill(&rest, &targets, cfg.stratify_by, records, &mut assign);
    } else {
        let targets = vec![
            (Split::Train, cfg.ratios[0]),
            (Split::Validation, cfg.ratios[1]),
            (Split::Test, cfg.ratios[2]),
        ];
        fill(&free, &targets, cfg.stratify_by, records, &mut assign);
    }
    let assign: Vec<Split> = assign
        .into_iter()
        .map(|s| s.unwrap_or(Split::Train))
        .collect();

    // 4. Leakage check, and what a record-level random split would have leaked.
    for s in &assign {
        *report.counts.entry(*s).or_default() += 1;
    }
    report.near_dup_pairs_crossing = crossing_pairs(&pairs, &assign);
    report.groups_crossing = crossing_groups(&groups, &assign);
    let random = random_split(n, cfg.ratios, seed);
    report.random_split_near_dup_pairs_crossing = crossing_pairs(&pairs, &random);
    report.random_split_groups_crossing = crossing_groups(&groups, &random);
    Ok((assign, report))
}

fn group_keys(records: &[Record], by: Option<GroupBy>) -> Vec<Option<String>> {
    records
        .iter()
        .map(|r| match by {
            Some(GroupBy::Document) => r.document_id.clone(),
            Some(GroupBy::Focus) => r.focus.as_ref().map(|f| f.to_lowercase()),
            None => None,
        })
        .collect()
}

/// Most frequent key (ties: smallest key).
fn majority<'a>(keys: impl Iterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for k in keys {
        *counts.entry(k).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(k, _)| k.to_string())
        .unwrap_or_default()
}

/// Assigns groups (already shuffled) to the splits in `targets` (split, fraction): each group
/// goes to the split furthest below its target share. With stratification this runs per stratum.
fn fill(
    groups: &[&Vec<usize>],
    targets: &[(Split, f64)],
    by: Option<StratifyBy>,
    records: &[Record],
    assign: &mut [Option<Split>],
) {
    let mut strata: BTreeMap<String, Vec<&Vec<usize>>> = BTreeMap::new();
    for g in groups {
        let k = by
            .map(|b| majority(g.iter().map(|&i| records[i].key(b))))
            .unwrap_or_default();
        strata.entry(k).or_default().push(g);
    }
    for members in strata.values() {
        let total: usize = members.iter().map(|g| g.len()).sum();
        let mut have = vec![0usize; targets.len()];
        for g in members {
            // deficit = target count − current count; pick the largest (ties: earlier split).
            let best = (0..targets.len())
                .filter(|&t| targets[t].1 > 0.0)
                .max_by(|&a, &b| {
                    let da = targets[a].1 * total as f64 - have[a] as f64;
                    let db = targets[b].1 * total as f64 - have[b] as f64;
                    da.total_cmp(&db).then(b.cmp(&a))
                })
                .unwrap_or(0);
            have[best] += g.len();
            g.iter().for_each(|&i| assign[i] = Some(targets[best].0));
        }
    }
}

/// A record-level shuffle split with the same fractions (the naive baseline).
fn random_split(n: usize, ratios: [f64; 3], seed: u64) -> Vec<Split> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x00C0_FFEE));
    let n_train = (ratios[0] * n as f64).round() as usize;
    let n_val = (ratios[1] * n as f64).round() as usize;
    let mut out = vec![Split::Test; n];
    for (pos, &i) in idx.iter().enumerate() {
        out[i] = if pos < n_train {
            Split::Train
        } else if pos < n_train + n_val {
            Split::Validation
        } else {
            Split::Test
        };
    }
    out
}

fn crossing_pairs(pairs: &[(usize, usize)], assign: &[Split]) -> usize {
    pairs
        .iter()
        .filter(|&&(i, j)| assign[i] != assign[j])
        .count()
}

fn crossing_groups(groups: &[Vec<usize>], assign: &[Split]) -> usize {
    groups
        .iter()
        .filter(|g| g.iter().any(|&i| assign[i] != assign[g[0]]))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: usize, q: &str, doc: &str, spec: &str) -> Record {
        Record {
            id: format!("t:{i}"),
            question: q.into(),
            answer: format!("answer number {i} with some words"),
            document_id: Some(doc.into()),
            specialty: Some(spec.into()),
            label: Some(if matches!(i % 3, 0) { "yes" } else { "no" }.into()),
            source: "t".into(),
            ..Default::default()
        }
    }

    fn corpus() -> Vec<Record> {
        (0..200)
            .map(|i| {
                rec(
                    i,
                    &format!("Question {i} about topic {} of the body", i % 40),
                    &format!("doc{}", i / 4),
                    ["a", "b"][i % 2],
                )
            })
            .collect()
    }

    #[test]
    fn groups_never_cross_and_ratios_hold() {
        let recs = corpus();
        let cfg = SplitConfig {
            group_by: Some(GroupBy::Document),
            ..Default::default()
        };
        let (assign, rep) = split(&recs, &cfg, 7).unwrap();
        assert_eq!(rep.groups_crossing, 0);
        assert_eq!(rep.near_dup_pairs_crossing, 0);
        assert!(
            rep.random_split_groups_crossing > 0,
            "the naive split leaks: {rep:?}"
        );
        let train = assign.iter().filter(|s| **s == Split::Train).count();
        assert!((150..=170).contains(&train), "{train}");
        for d in 0..50 {
            let s: Vec<Split> = (0..4).map(|k| assign[d * 4 + k]).collect();
            assert!(s.iter().all(|x| *x == s[0]), "doc{d} split across {s:?}");
        }
        // Deterministic for a seed, different for another.
        assert_eq!(split(&recs, &cfg, 7).unwrap().0, assign);
        assert_ne!(split(&recs, &cfg, 8).unwrap().0, assign);
    }

    #[test]
    fn near_duplicates_stay_together() {
        let mut recs = corpus();
        recs[10].question = recs[150].question.clone();
        recs[10].answer = recs[150].answer.clone();
        let (assign, rep) = split(&recs, &SplitConfig::default(), 1).unwrap();
        assert!(rep.near_dup_pairs >= 1);
        assert_eq!(assign[10], assign[150]);
        assert_eq!(rep.near_dup_pairs_crossing, 0);
    }

    #[test]
    fn fixed_test_ids_and_stratification() {
        let mut recs = corpus();
        recs[0].fixed_split = Some("test".into());
        let cfg = SplitConfig {
            stratify_by: Some(StratifyBy::Label),
            ..Default::default()
        };
        let (assign, _) = split(&recs, &cfg, 3).unwrap();
        assert_eq!(assign[0], Split::Test);
        let yes_test = (0..200)
            .filter(|&i| assign[i] == Split::Test && matches!(i % 3, 0))
            .count();
        let yes_all = (0..200).filter(|&i| matches!(i % 3, 0)).count();
        let frac = yes_test as f64 / yes_all as f64;
        assert!((0.07..=0.14).contains(&frac), "{frac}");
    }

    #[test]
    fn holdout_and_progressive_pool() {
        let recs = corpus();
        let cfg = SplitConfig {
            holdout_per_specialty: Some(10),
            progressive: Some(ProgressiveConfig {
                initial_fraction: 0.25,
                eval_fraction: 0.2,
            }),
            ..Default::default()
        };
        let (assign, rep) = split(&recs, &cfg, 5).unwrap();
        for spec in ["a", "b"] {
            let n = (0..200)
                .filter(|&i| assign[i] == Split::Test && recs[i].specialty.as_deref() == Some(spec))
                .count();
            assert_eq!(n, 10, "holdout of {spec}");
        }
        assert_eq!(rep.counts[&Split::Pool], 135);
        assert_eq!(
            rep.counts[&Split::Train] + rep.counts[&Split::Validation],
            45
        );
        let bad = SplitConfig {
            progressive: cfg.progressive.clone(),
            ..Default::default()
        };
        assert!(split(&recs, &bad, 5).is_err());
    }
}
