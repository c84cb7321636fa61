//! Progressive training's data step: draw extra training examples of weak specialties from the
//! pool of a prepared dataset, as `training_recommendations.json` suggests.
//!
//! For a specialty with `k` training records and sampling multiplier `m ≥ 1`, `ceil((m − 1)·k)`
//! extra records are requested. A pool record is available for its specialty when it is neither
//! already in the training split (same id) nor in any held-out split (same id, or the same
//! question after lowercasing and collapsing whitespace). The draw is a seeded shuffle of the
//! available records, so the same seed picks the same records; when fewer are available than
//! requested, all of them are taken and the shortfall is reported.

use crate::{Error, Record, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// One specialty to enlarge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    /// Specialty as in [`Record::specialty`].
    pub specialty: String,
    /// Factor on the specialty's share of the training set (≥ 1).
    pub multiplier: f64,
}

/// What was drawn for one specialty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecialtyDraw {
    /// Specialty.
    pub specialty: String,
    /// Multiplier asked for.
    pub multiplier: f64,
    /// Training records of the specialty before the draw.
    pub in_train: usize,
    /// Extra records asked for: `ceil((multiplier − 1) · in_train)`.
    pub requested: usize,
    /// Pool records of the specialty that could be drawn.
    pub available: usize,
    /// Pool records of the specialty left out because they are held out (or already trained on).
    pub excluded: usize,
    /// Records drawn: `min(requested, available)`.
    pub drawn: usize,
}

impl SpecialtyDraw {
    /// Records asked for but not available.
    pub fn shortfall(&self) -> usize {
        self.requested - self.drawn
    }
}

/// The result of [`select_extra`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Selection {
    /// Seed of the draw.
    pub seed: u64,
    /// Per specialty, in request order (deduplicated, largest multiplier kept).
    pub specialties: Vec<SpecialtyDraw>,
    /// The drawn records, grouped by specialty in request order.
    #[serde(skip)]
    pub added: Vec<Record>,
}

fn norm_question(q: &str) -> String {
    q.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Merges requests naming the same specialty (largest multiplier kept, first position kept)
/// and checks every multiplier is finite and at least 1 (errors name `requests[i]`).
pub fn merge_requests(requests: &[Request]) -> Result<Vec<Request>> {
    let mut out: Vec<Request> = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        if !(r.multiplier.is_finite() && r.multiplier >= 1.0) {
            return Err(Error::Config {
                field: format!("requests[{i}].multiplier"),
                message: format!(
                    "{} for `{}` is not a finite number >= 1",
                    r.multiplier, r.specialty
                ),
            });
        }
        if r.specialty.trim().is_empty() {
            return Err(Error::Config {
                field: format!("requests[{i}].specialty"),
                message: "empty specialty".into(),
            });
        }
        match out.iter_mut().find(|o| o.specialty == r.specialty) {
            Some(o) => o.multiplier = o.multiplier.max(r.multiplier),
            None => out.push(r.clone()),
        }
    }
    Ok(out)
}

/// Draws extra records for each request from `pool` (see the module docs). `holdout` holds
/// every split that must never be trained on (test, validation).
pub fn select_extra(
    train: &[Record],
    pool: &[Record],
    holdout: &[Record],
    requests: &[Request],
    seed: u64,
) -> Result<Selection> {
    let requests = merge_requests(requests)?;
    let train_ids: HashSet<&str> = train.iter().map(|r| r.id.as_str()).collect();
    let held_ids: HashSet<&str> = holdout.iter().map(|r| r.id.as_str()).collect();
    let held_questions: HashSet<String> =
        holdout.iter().map(|r| norm_question(&r.question)).collect();
    let mut train_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in train {
        if let Some(s) = r.specialty.as_deref() {
            *train_counts.entry(s).or_default() += 1;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut taken: HashSet<&str> = HashSet::new();
    let mut specialties = Vec::new();
    let mut added = Vec::new();
    for req in &requests {
        let in_train = train_counts
            .get(req.specialty.as_str())
            .copied()
            .unwrap_or(0);
        let requested = ((req.multiplier - 1.0) * in_train as f64 - 1e-9)
            .ceil()
            .max(0.0) as usize;
        let mut excluded = 0;
        let mut candidates: Vec<&Record> = Vec::new();
        for r in pool
            .iter()
            .filter(|r| r.specialty.as_deref() == Some(req.specialty.as_str()))
        {
            let blocked = held_ids.contains(r.id.as_str())
                || train_ids.contains(r.id.as_str())
                || held_questions.contains(&norm_question(&r.question));
            if blocked {
                excluded += 1;
            } else if taken.insert(r.id.as_str()) {
                candidates.push(r);
            }
        }
        let available = candidates.len();
        candidates.shuffle(&mut rng);
        let drawn = requested.min(available);
        added.extend(candidates.into_iter().take(drawn).cloned());
        specialties.push(SpecialtyDraw {
            specialty: req.specialty.clone(),
            multiplier: req.multiplier,
            in_train,
            requested,
            available,
            excluded,
            drawn,
        });
    }
    Ok(Selection {
        seed,
        specialties,
        added,
    })
}

/// The part of `training_recommendations.json` (written by `medtune eval`) read here.
#[derive(Debug, Deserialize)]
struct RecommendationsFile {
    specialties: Vec<RecommendationEntry>,
}

#[derive(Debug, Deserialize)]
struct RecommendationEntry {
    specialty: String,
    sampling_multiplier: f64,
}

/// Reads the requests of a `training_recommendations.json` written by `medtune eval`
/// (`specialties[].specialty` and `specialties[].sampling_multiplier`); errors name the file,
/// and the entry for bad values.
pub fn read_recommendations(path: &Path) -> Result<Vec<Request>> {
    let text = crate::io::read_to_string(path)?;
    let file: RecommendationsFile = serde_json::from_str(&text).map_err(|e| Error::Malformed {
        path: path.to_path_buf(),
        line: e.line(),
        message: e.to_string(),
    })?;
    let requests: Vec<Request> = file
        .specialties
        .into_iter()
        .map(|e| Request {
            specialty: e.specialty,
            multiplier: e.sampling_multiplier,
        })
        .collect();
    merge_requests(&requests).map_err(|e| match e {
        Error::Config { field, message } => Error::Malformed {
            path: path.to_path_buf(),
            line: 0,
            message: format!(
                "{}: {message}",
                field
                    .replace("requests", "specialties")
                    .replace(".multiplier", ".sampling_multiplier")
            ),
        },
        other => other,
    })?;
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, spec: &str, q: &str) -> Record {
        Record {
            id: id.into(),
            question: q.into(),
            answer: "a".into(),
            specialty: Some(spec.into()),
            source: "t".into(),
            ..Default::default()
        }
    }

    fn data() -> (Vec<Record>, Vec<Record>, Vec<Record>) {
        let train: Vec<Record> = (0..4)
            .map(|i| rec(&format!("t{i}"), "cardio", &format!("train q {i}")))
            .chain((0..2).map(|i| rec(&format!("n{i}"), "neuro", &format!("neuro q {i}"))))
            .collect();
        let holdout = vec![
            rec("h0", "cardio", "Held out   QUESTION"),
            rec("h1", "cardio", "held q 1"),
        ];
        let mut pool: Vec<Record> = (0..10)
            .map(|i| rec(&format!("p{i}"), "cardio", &format!("pool q {i}")))
            .collect();
        pool.push(rec("h1", "cardio", "same id as a holdout record"));
        pool.push(rec("px", "cardio", "held out question"));
        pool.push(rec("t0", "cardio", "already trained on"));
        pool.push(rec("pn0", "neuro", "pool neuro 0"));
        pool.push(rec("pd0", "derm", "pool derm 0"));
        (train, pool, holdout)
    }

    #[test]
    fn never_draws_held_out_or_trained_records() {
        let (train, pool, holdout) = data();
        let req = [Request {
            specialty: "cardio".into(),
            multiplier: 10.0,
        }];
        let s = select_extra(&train, &pool, &holdout, &req, 1).unwrap();
        let d = &s.specialties[0];
        assert_eq!(d.in_train, 4);
        assert_eq!(d.requested, 36);
        assert_eq!(d.excluded, 3);
        assert_eq!(d.available, 10);
        assert_eq!(d.drawn, 10);
        assert_eq!(d.shortfall(), 26);
        for r in &s.added {
            assert!(r.id.starts_with('p') && r.id != "px", "{}", r.id);
            assert_eq!(r.specialty.as_deref(), Some("cardio"));
        }
    }

    #[test]
    fn requested_follows_the_multiplier_and_availability() {
        let (train, pool, holdout) = data();
        let req = [
            Request {
                specialty: "cardio".into(),
                multiplier: 1.5,
            },
            Request {
                specialty: "neuro".into(),
                multiplier: 3.0,
            },
            Request {
                specialty: "derm".into(),
                multiplier: 2.0,
            },
        ];
        let s = select_extra(&train, &pool, &holdout, &req, 3).unwrap();
        let by: BTreeMap<&str, &SpecialtyDraw> = s
            .specialties
            .iter()
            .map(|d| (d.specialty.as_str(), d))
            .collect();
        assert_eq!(
            (by["cardio"].requested, by["cardio"].drawn),
            (2, 2),
            "ceil(0.5 * 4)"
        );
        assert_eq!((by["neuro"].requested, by["neuro"].available), (4, 1));
        assert_eq!(by["neuro"].drawn, 1);
        // No training records of derm: nothing to scale, nothing requested.
        assert_eq!((by["derm"].in_train, by["derm"].requested), (0, 0));
        assert_eq!(s.added.len(), 3);
    }

    #[test]
    fn draw_is_seeded() {
        let (train, pool, holdout) = data();
        let req = [Request {
            specialty: "cardio".into(),
            multiplier: 2.0,
        }];
        let ids = |seed| {
            select_extra(&train, &pool, &holdout, &req, seed)
                .unwrap()
                .added
                .iter()
                .map(|r| r.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(5), ids(5));
        assert_eq!(ids(5).len(), 4);
        assert!((0..20).any(|s| ids(s) != ids(5)));
    }

    #[test]
    fn duplicates_merge_and_bad_multipliers_are_named() {
        let m = merge_requests(&[
            Request {
                specialty: "a".into(),
                multiplier: 1.5,
            },
            Request {
                specialty: "a".into(),
                multiplier: 2.5,
            },
        ])
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].multiplier, 2.5);
        let e = merge_requests(&[
            Request {
                specialty: "a".into(),
                multiplier: 1.5,
            },
            Request {
                specialty: "b".into(),
                multiplier: f64::NAN,
            },
        ])
        .unwrap_err();
        assert!(e.to_string().contains("requests[1].multiplier"), "{e}");
        let e = merge_requests(&[Request {
            specialty: "b".into(),
            multiplier: 0.5,
        }])
        .unwrap_err();
        assert!(e.to_string().contains("requests[0]"), "{e}");
    }

    #[test]
    fn reads_recommendation_files_naming_problems() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("training_recommendations.json");
        std::fs::write(
            &p,
            r#"{"target": "x", "rule": "r", "specialties": [
                {"suite": "medquad", "mode": "likelihood", "specialty": "cardio", "metric": "m",
                 "value": 0.1, "ci": [0.0, 0.2], "n": 5, "suite_value": 0.3, "sampling_multiplier": 2.0}
            ]}"#,
        )
        .unwrap();
        let r = read_recommendations(&p).unwrap();
        assert_eq!(
            r,
            vec![Request {
                specialty: "cardio".into(),
                multiplier: 2.0
            }]
        );
        std::fs::write(&p, r#"{"specialties": [{"specialty": "x"}]}"#).unwrap();
        let e = read_recommendations(&p).unwrap_err().to_string();
        assert!(
            e.contains("training_recommendations.json") && e.contains("sampling_multiplier"),
            "{e}"
        );
        std::fs::write(
            &p,
            r#"{"specialties": [{"specialty": "x", "sampling_multiplier": 0.2}]}"#,
        )
        .unwrap();
        let e = read_recommendations(&p).unwrap_err().to_string();
        assert!(e.contains("specialties[0].sampling_multiplier"), "{e}");
        let e = read_recommendations(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
