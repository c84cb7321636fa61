//! Benchmark suites: which files each one reads, and how its records become scoring [`Item`]s
//! (prompt messages, the choice labels and the text scored for each choice, or a free-text
//! reference).
//!
//! Prompts come from [`medtune_data::prompt::build_prompt`], so a model is asked exactly the way
//! it was trained: MCQ with the options listed and a letter answer, PubMedQA and Q-Pain with the
//! JSON decision answer, MedQuAD with free text.

use crate::error::{Error, Result};
use crate::qpain::{self, Variant};
use medtune_data::prompt::{build_prompt, AnswerFormat, PromptConfig};
use medtune_data::readers::{read_source, Format, SourceConfig};
use medtune_data::template::Message;
use medtune_data::Record;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Suite {
    /// PubMedQA (PQA-L), the official 500 test ids; yes/no/maybe.
    Pubmedqa,
    /// MedMCQA dev set; 4 options, subject as specialty.
    Medmcqa,
    /// MedQA-USMLE 4-option test set.
    Medqa,
    /// The six medical MMLU subjects (test CSVs).
    MmluMedical,
    /// Q-Pain vignettes across race × gender substitutions; yes/no plus dose class.
    Qpain,
    /// MedQuAD held-out split of a prepared dataset; free-text answers.
    Medquad,
}

impl Suite {
    /// Every suite, in report order.
    pub const ALL: [Suite; 6] = [
        Suite::Pubmedqa,
        Suite::Medmcqa,
        Suite::Medqa,
        Suite::MmluMedical,
        Suite::Qpain,
        Suite::Medquad,
    ];

    /// The CLI name (`pubmedqa`, `mmlu-medical`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Suite::Pubmedqa => "pubmedqa",
            Suite::Medmcqa => "medmcqa",
            Suite::Medqa => "medqa",
            Suite::MmluMedical => "mmlu-medical",
            Suite::Qpain => "qpain",
            Suite::Medquad => "medquad",
        }
    }

    /// Parses a CLI name.
    pub fn parse(s: &str) -> Result<Suite> {
        Suite::ALL
            .into_iter()
            .find(|x| x.name() == s.trim())
            .ok_or_else(|| Error::Setting {
                field: "suite".into(),
                message: format!(
                    "unknown suite `{s}` (known: {})",
                    Suite::ALL.map(Suite::name).join(", ")
                ),
            })
    }

    /// Whether items are lettered multiple choice (MedMCQA, MedQA, MMLU).
    pub fn is_mcq(self) -> bool {
        matches!(self, Suite::Medmcqa | Suite::Medqa | Suite::MmluMedical)
    }

    /// Whether items have a fixed set of choices (scored by likelihood or extraction).
    pub fn is_choice(self) -> bool {
        self != Suite::Medquad
    }
}

impl std::fmt::Display for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What continuation a multiple-choice option is scored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceTarget {
    /// The option letter (the trained `mcq_letter` answer format).
    #[default]
    Letter,
    /// The option text.
    Text,
}

/// Where the suites read their data.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The raw data directory (`pubmedqa/`, `medmcqa/`, `medqa_usmle/`, `mmlu_medical/`, `q_pain/`).
    pub data_dir: PathBuf,
    /// A prepared dataset (`medtune data prepare` output) whose held-out split MedQuAD uses.
    pub dataset_dir: Option<PathBuf>,
    /// The held-out split file stem in `dataset_dir` (`test` or `validation`).
    pub heldout_split: String,
}

/// How an item is scored.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    /// One of `labels`; `continuations[i]` is the answer text of label `i`.
    Choice {
        /// Class labels (`A`..`D`, `yes`/`no`/`maybe`, `no`/`yes/low`/`yes/high`).
        labels: Vec<String>,
        /// Text the model would write for each label.
        continuations: Vec<String>,
        /// Index of the gold label.
        gold: usize,
    },
    /// An open answer compared with the reference text.
    FreeText,
}

/// One question ready for scoring.
#[derive(Debug, Clone)]
pub struct Item {
    /// Item id, unique within the suite (Q-Pain variants append `#race/gender`).
    pub id: String,
    /// The suite.
    pub suite: Suite,
    /// Subject, specialty or category used for per-specialty figures (`all` when absent).
    pub group: String,
    /// The chat messages up to the user turn.
    pub messages: Vec<Message>,
    /// The reference answer text (MCQ: the option text; PubMedQA/Q-Pain: the JSON answer).
    pub reference: String,
    /// The question text (for the safety validator and examples).
    pub question: String,
    /// How it is scored.
    pub kind: ItemKind,
    /// The Q-Pain demographic substitution, if any.
    pub variant: Option<Variant>,
}

impl Item {
    /// The gold label, or the reference for free text.
    pub fn gold_label(&self) -> &str {
        match &self.kind {
            ItemKind::Choice { labels, gold, .. } => labels[*gold].as_str(),
            ItemKind::FreeText => self.reference.as_str(),
        }
    }
}

/// The items of one suite plus what was left out, and why.
#[derive(Debug, Clone, Default)]
pub struct SuiteItems {
    /// Items to score, in a fixed order.
    pub items: Vec<Item>,
    /// Records skipped on purpose: `(id, reason)` (e.g. an empty reference).
    pub skipped: Vec<(String, String)>,
    /// Malformed input rows the reader reported (`file:line: message`).
    pub problems: Vec<String>,
}

fn read(suite: Suite, format: Format, path: &Path) -> Result<(Vec<Record>, Vec<String>)> {
    let src = SourceConfig {
        format,
        path: path.to_path_buf(),
        name: Some(suite.name().to_string()),
        columns: BTreeMap::new(),
        has_header: None,
        test_ids: None,
    };
    let out = read_source(&src, Path::new("."), false).map_err(|e| Error::data(suite.name(), e))?;
    let problems = out
        .problems
        .iter()
        .map(|p| format!("{}:{}: {}", p.path, p.line, p.message))
        .collect();
    Ok((out.records, problems))
}

/// `limit` records spread evenly over `records` (all when `limit` is `None` or larger), so a
/// limited run still covers every subject file.
pub fn spread<T: Clone>(records: &[T], limit: Option<usize>) -> Vec<T> {
    match limit {
        Some(n) if n < records.len() => (0..n)
            .map(|i| records[i * records.len() / n].clone())
            .collect(),
        _ => records.to_vec(),
    }
}

fn raw_records(suite: Suite, src: &Sources) -> Result<(Vec<Record>, Vec<String>)> {
    let d = &src.data_dir;
    match suite {
        Suite::Pubmedqa => {
            let (recs, problems) =
                read(suite, Format::Pubmedqa, &d.join("pubmedqa/ori_pqal.json"))?;
            let test: Vec<Record> = recs
                .into_iter()
                .filter(|r| r.fixed_split.as_deref() == Some("test"))
                .collect();
            if test.is_empty() {
                return Err(Error::Input {
                    suite: suite.name().into(),
                    message: format!(
                        "no official test ids found: {} must sit beside ori_pqal.json",
                        d.join("pubmedqa/test_ground_truth.json").display()
                    ),
                });
            }
            Ok((test, problems))
        }
        Suite::Medmcqa => read(suite, Format::Medmcqa, &d.join("medmcqa/dev.json")),
        Suite::Medqa => read(
            suite,
            Format::Medqa,
            &d.join("medqa_usmle/US_4_options_phrases_no_exclude_test.jsonl"),
        ),
        Suite::MmluMedical => read(suite, Format::Mmlu, &d.join("mmlu_medical")),
        Suite::Qpain => read(suite, Format::Qpain, &d.join("q_pain")),
        Suite::Medquad => {
            let dir = src.dataset_dir.as_ref().ok_or_else(|| Error::Input {
                suite: suite.name().into(),
                message: "needs a prepared dataset (--dataset-dir) whose held-out split is scored"
                    .into(),
            })?;
            let path = dir.join(format!("{}.jsonl", src.heldout_split));
            let recs =
                medtune_data::io::read_jsonl(&path).map_err(|e| Error::data(suite.name(), e))?;
            // Only open questions: MCQ and decision records of a mixed dataset have their suites.
            Ok((
                recs.into_iter()
                    .filter(|r| r.options.is_empty() && !r.is_synthetic())
                    .collect(),
                Vec::new(),
            ))
        }
    }
}

/// Loads up to `limit` items of `suite` (spread evenly over the source; for Q-Pain the limit
/// counts vignettes before the race × gender expansion).
pub fn load_suite(
    suite: Suite,
    src: &Sources,
    limit: Option<usize>,
    target: ChoiceTarget,
) -> Result<SuiteItems> {
    let (records, problems) = raw_records(suite, src)?;
    let records = spread(&records, limit);
    let mut out = SuiteItems {
        problems,
        ..Default::default()
    };
    for r in records {
        let made = match suite {
            Suite::Qpain => qpain::expand(&r)
                .into_iter()
                .map(|(rec, v)| decision_item(suite, &rec, v))
                .collect::<Result<Vec<_>>>(),
            Suite::Pubmedqa => decision_item(suite, &r, None).map(|i| vec![i]),
            Suite::Medquad => free_text_item(suite, &r).map(|i| vec![i]),
            _ => mcq_item(suite, &r, target).map(|i| vec![i]),
        };
        match made {
            Ok(items) => out.items.extend(items),
            Err(Error::Item { id, message }) => out.skipped.push((id, message)),
            Err(e) => return Err(e),
        }
    }
    if out.items.is_empty() {
        return Err(Error::Input {
            suite: suite.name().into(),
            message: format!(
                "no usable items ({} skipped{})",
                out.skipped.len(),
                out.skipped
                    .first()
                    .map(|(id, m)| format!(", first: {id}: {m}"))
                    .unwrap_or_default()
            ),
        });
    }
    Ok(out)
}

fn group_of(r: &Record) -> String {
    r.specialty
        .clone()
        .or_else(|| r.category.clone())
        .or_else(|| r.qtype.clone())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "all".into())
}

fn prompt(r: &Record, format: AnswerFormat) -> Result<medtune_data::prompt::Prompt> {
    let cfg = PromptConfig {
        answer_format: format,
        system_prompt: None,
    };
    build_prompt(r, &cfg).map_err(|e| Error::item(&r.id, e.to_string()))
}

fn mcq_item(suite: Suite, r: &Record, target: ChoiceTarget) -> Result<Item> {
    if r.options.len() < 2 {
        return Err(Error::item(&r.id, "fewer than two options"));
    }
    if let Some(i) = r.options.iter().position(|o| o.trim().is_empty()) {
        return Err(Error::item(
            &r.id,
            format!("option {} is empty", Record::option_letter(i)),
        ));
    }
    let letters: Vec<String> = (0..r.options.len())
        .map(|i| Record::option_letter(i).to_string())
        .collect();
    let label = r
        .label
        .as_deref()
        .ok_or_else(|| Error::item(&r.id, "missing field `label` (gold letter)"))?;
    let gold = letters
        .iter()
        .position(|l| l == label.trim())
        .ok_or_else(|| {
            Error::item(
                &r.id,
                format!("label `{label}` is not one of {}", letters.join("/")),
            )
        })?;
    let p = prompt(r, AnswerFormat::McqLetter)?;
    let continuations = match target {
        ChoiceTarget::Letter => letters.clone(),
        ChoiceTarget::Text => r.options.clone(),
    };
    Ok(Item {
        id: r.id.clone(),
        suite,
        group: group_of(r),
        messages: p.messages,
        reference: r.options[gold].clone(),
        question: r.question.clone(),
        kind: ItemKind::Choice {
            labels: letters,
            continuations,
            gold,
        },
        variant: None,
    })
}

/// The labels of decision items: PubMedQA's three words, or Q-Pain's decision plus dose class.
pub fn decision_labels(dosing: bool) -> Vec<String> {
    if dosing {
        vec!["no".into(), "yes/low".into(), "yes/high".into()]
    } else {
        vec!["yes".into(), "no".into(), "maybe".into()]
    }
}

fn decision_item(suite: Suite, r: &Record, variant: Option<Variant>) -> Result<Item> {
    let dosing = suite == Suite::Qpain;
    let labels = decision_labels(dosing);
    let mut continuations = Vec::with_capacity(labels.len());
    for l in &labels {
        // Each continuation is exactly what build_prompt writes for a record with that answer.
        let (answer, dose) = match l.split_once('/') {
            Some((a, d)) => (a, Some(d.to_string())),
            None => (l.as_str(), None),
        };
        let alt = Record {
            label: Some(answer.into()),
            answer: answer.into(),
            dose,
            ..r.clone()
        };
        continuations.push(prompt(&alt, AnswerFormat::YesNoJson)?.answer);
    }
    let decision = r
        .label
        .as_deref()
        .ok_or_else(|| Error::item(&r.id, "missing field `label` (yes/no)"))?;
    let gold_label = match (dosing, decision) {
        (true, "yes") => {
            let dose = r.dose.as_deref().ok_or_else(|| {
                Error::item(&r.id, "a yes answer without a dose class (`Dosage` column)")
            })?;
            format!("yes/{dose}")
        }
        _ => decision.to_string(),
    };
    let gold = labels
        .iter()
        .position(|l| *l == gold_label)
        .ok_or_else(|| {
            Error::item(
                &r.id,
                format!("label `{gold_label}` is not one of {}", labels.join(", ")),
            )
        })?;
    let p = prompt(r, AnswerFormat::YesNoJson)?;
    Ok(Item {
        id: match &variant {
            Some(v) => format!("{}#{}", r.id, v.key()),
            None => r.id.clone(),
        },
        suite,
        group: group_of(r),
        messages: p.messages,
        reference: p.answer,
        question: r.question.clone(),
        kind: ItemKind::Choice {
            labels,
            continuations,
            gold,
        },
        variant,
    })
}

fn free_text_item(suite: Suite, r: &Record) -> Result<Item> {
    if r.question.trim().is_empty() {
        return Err(Error::item(&r.id, "empty question"));
    }
    if r.answer.trim().is_empty() {
        return Err(Error::item(&r.id, "empty reference answer"));
    }
    let p = prompt(r, AnswerFormat::FreeText)?;
    Ok(Item {
        id: r.id.clone(),
        suite,
        group: group_of(r),
        messages: p.messages,
        reference: r.answer.clone(),
        question: r.question.clone(),
        kind: ItemKind::FreeText,
        variant: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_round_trip() {
        for s in Suite::ALL {
            assert_eq!(Suite::parse(s.name()).unwrap(), s);
        }
        assert!(Suite::parse("mmlu").is_err());
    }

    #[test]
    fn spread_covers_the_whole_range() {
        let v: Vec<usize> = (0..10).collect();
        assert_eq!(spread(&v, Some(3)), vec![0, 3, 6]);
        assert_eq!(spread(&v, Some(20)).len(), 10);
        assert_eq!(spread(&v, None).len(), 10);
    }

    fn mcq(label: Option<&str>) -> Record {
        Record {
            id: "m:1".into(),
            question: "Which?".into(),
            answer: "b".into(),
            options: vec!["a".into(), "b".into(), "c".into()],
            label: label.map(str::to_owned),
            source: "m".into(),
            ..Default::default()
        }
    }

    #[test]
    fn mcq_items_check_their_label() {
        let it = mcq_item(Suite::Medqa, &mcq(Some("B")), ChoiceTarget::Letter).unwrap();
        assert_eq!(it.gold_label(), "B");
        assert_eq!(it.reference, "b");
        let err = mcq_item(Suite::Medqa, &mcq(Some("E")), ChoiceTarget::Letter).unwrap_err();
        assert!(err.to_string().contains("label `E`"), "{err}");
        let err = mcq_item(Suite::Medqa, &mcq(None), ChoiceTarget::Letter).unwrap_err();
        assert!(err.to_string().contains("missing field `label`"), "{err}");
    }

    #[test]
    fn decision_continuations_match_the_training_answer() {
        let r = Record {
            id: "p:1".into(),
            question: "Does it?".into(),
            answer: "maybe".into(),
            label: Some("maybe".into()),
            source: "p".into(),
            ..Default::default()
        };
        let it = decision_item(Suite::Pubmedqa, &r, None).unwrap();
        let ItemKind::Choice {
            continuations,
            gold,
            ..
        } = &it.kind
        else {
            panic!("not a choice item")
        };
        assert_eq!(continuations[*gold], it.reference);
        assert_eq!(continuations[0], r#"{"answer": "yes"}"#);
    }

    #[test]
    fn empty_references_are_skipped_with_a_reason() {
        let r = Record {
            id: "q:1".into(),
            question: "What is X?".into(),
            answer: "  ".into(),
            source: "q".into(),
            ..Default::default()
        };
        let err = free_text_item(Suite::Medquad, &r).unwrap_err();
        assert!(err.to_string().contains("empty reference"), "{err}");
    }
}
