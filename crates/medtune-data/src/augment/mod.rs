//! Augmentation and class balance for the training split.
//!
//! Modes: `original` (read records only), `augmented` (generated vignettes replace the read
//! training records), `hybrid` (both). Balancing oversamples minority classes of the training
//! split by copying records, each copy marked with provenance. Everything here only ever adds to
//! the training split: synthetic records never enter validation or test.

pub mod dose;
pub mod vignette;

use crate::record::{Provenance, StratifyBy};
use crate::{Error, Record, Result};
use dose::DoseRules;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vignette::VignetteConfig;

/// Augmentation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AugmentMode {
    /// Read records only.
    #[default]
    Original,
    /// Synthetic records only in train.
    Augmented,
    /// Read and synthetic records in train.
    Hybrid,
}

/// Augmentation settings (`[augment]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Mode.
    pub mode: AugmentMode,
    /// Vignette generation (needed by `augmented` and `hybrid`).
    pub vignettes: Option<VignetteConfig>,
    /// Targeted oversampling of the training split.
    pub balance: Option<BalanceConfig>,
}

/// Oversampling settings (`[augment.balance]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalanceConfig {
    /// Class key.
    pub by: StratifyBy,
    /// Records per class after balancing (default: the largest class's count). Classes already
    /// at or above it are left as they are.
    #[serde(default)]
    pub target: Option<usize>,
}

/// What augmentation did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AugmentReport {
    /// Mode used.
    pub mode: AugmentMode,
    /// Vignettes generated and kept.
    pub generated: usize,
    /// Generated records rejected by schema or clinical checks (id, reason).
    pub rejected: Vec<(String, String)>,
    /// Read training records removed by `augmented` mode.
    pub originals_removed: usize,
    /// Oversampled copies added, by class.
    pub oversampled: BTreeMap<String, usize>,
    /// Class counts of the training split before and after balancing.
    pub class_counts_before: BTreeMap<String, usize>,
    /// After balancing.
    pub class_counts_after: BTreeMap<String, usize>,
}

/// Applies the mode, vignette generation and balancing to the training records.
pub fn augment_train(
    train: Vec<Record>,
    cfg: &AugmentConfig,
    seed: u64,
    rules: &dyn DoseRules,
) -> Result<(Vec<Record>, AugmentReport)> {
    let mut report = AugmentReport {
        mode: cfg.mode,
        ..Default::default()
    };
    let mut out = match cfg.mode {
        AugmentMode::Original => {
            if cfg.vignettes.is_some() {
                return Err(Error::config(
                    "augment.vignettes",
                    "set augment.mode to `augmented` or `hybrid` to use generated vignettes",
                ));
            }
            train
        }
        AugmentMode::Augmented | AugmentMode::Hybrid => {
            let v = cfg.vignettes.as_ref().ok_or_else(|| {
                Error::config(
                    "augment.vignettes",
                    "modes `augmented` and `hybrid` need [augment.vignettes]",
                )
            })?;
            let (generated, rejected) = vignette::generate(v, seed, rules);
            report.generated = generated.len();
            report.rejected = rejected;
            let mut out = if cfg.mode == AugmentMode::Hybrid {
                train
            } else {
                report.originals_removed = train.len();
                Vec::new()
            };
            out.extend(generated);
            out
        }
    };
    if let Some(b) = &cfg.balance {
        let added = oversample(&out, b, seed);
        report.class_counts_before = class_counts(&out, b.by);
        for r in &added {
            *report
                .oversampled
                .entry(r.key(b.by).to_string())
                .or_default() += 1;
        }
        out.extend(added);
        report.class_counts_after = class_counts(&out, b.by);
    }
    Ok((out, report))
}

fn class_counts(records: &[Record], by: StratifyBy) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in records {
        *m.entry(r.key(by).to_string()).or_default() += 1;
    }
    m
}

/// Copies (with replacement, seeded) of minority-class records up to the target count.
pub fn oversample(records: &[Record], cfg: &BalanceConfig, seed: u64) -> Vec<Record> {
    let mut by_class: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_class.entry(r.key(cfg.by)).or_default().push(r);
    }
    let target = cfg
        .target
        .unwrap_or_else(|| by_class.values().map(Vec::len).max().unwrap_or(0));
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0BA1_A9CE);
    let mut out = Vec::new();
    for (class, members) in &by_class {
        for k in members.len()..target {
            let src = members[rng.random_range(0..members.len())];
            let mut copy = src.clone();
            copy.id = format!("{}#oversample{}", src.id, k - members.len() + 1);
            let mut params = serde_json::Map::new();
            params.insert("class".into(), (*class).into());
            copy.provenance = Some(Provenance {
                generator: "oversample".into(),
                seed,
                derived_from: Some(src.id.clone()),
                params,
            });
            out.push(copy);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dose::BuiltinDoseTable;
    use super::*;

    fn rec(i: usize, label: &str) -> Record {
        Record {
            id: format!("t:{i}"),
            question: format!("q{i}"),
            answer: "a".into(),
            label: Some(label.into()),
            source: "t".into(),
            ..Default::default()
        }
    }

    #[test]
    fn oversampling_balances_with_provenance() {
        let train: Vec<Record> = (0..10)
            .map(|i| rec(i, if i < 8 { "yes" } else { "no" }))
            .collect();
        let cfg = AugmentConfig {
            balance: Some(BalanceConfig {
                by: StratifyBy::Label,
                target: None,
            }),
            ..Default::default()
        };
        let (out, rep) = augment_train(train, &cfg, 1, &BuiltinDoseTable).unwrap();
        assert_eq!(rep.class_counts_after["no"], 8);
        assert_eq!(rep.class_counts_after["yes"], 8);
        assert_eq!(rep.oversampled["no"], 6);
        let copies: Vec<&Record> = out.iter().filter(|r| r.is_synthetic()).collect();
        assert_eq!(copies.len(), 6);
        assert!(copies.iter().all(|c| c.label.as_deref() == Some("no")
            && c.provenance.as_ref().unwrap().derived_from.is_some()));
    }

    #[test]
    fn modes() {
        let train: Vec<Record> = (0..5).map(|i| rec(i, "yes")).collect();
        let v = VignetteConfig {
            count: 7,
            drop_diagnosis_probability: 0.0,
            contexts: Vec::new(),
        };
        let hybrid = AugmentConfig {
            mode: AugmentMode::Hybrid,
            vignettes: Some(v.clone()),
            balance: None,
        };
        assert_eq!(
            augment_train(train.clone(), &hybrid, 2, &BuiltinDoseTable)
                .unwrap()
                .0
                .len(),
            12
        );
        let aug = AugmentConfig {
            mode: AugmentMode::Augmented,
            vignettes: Some(v.clone()),
            balance: None,
        };
        let (out, rep) = augment_train(train.clone(), &aug, 2, &BuiltinDoseTable).unwrap();
        assert_eq!(out.len(), 7);
        assert_eq!(rep.originals_removed, 5);
        let bad = AugmentConfig {
            mode: AugmentMode::Original,
            vignettes: Some(v),
            balance: None,
        };
        assert!(augment_train(train.clone(), &bad, 2, &BuiltinDoseTable).is_err());
        let (same, _) = augment_train(
            train.clone(),
            &AugmentConfig::default(),
            2,
            &BuiltinDoseTable,
        )
        .unwrap();
        assert_eq!(same, train);
    }
}
