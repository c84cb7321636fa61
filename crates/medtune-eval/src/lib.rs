//! Evaluation: reference-matching metrics, medical benchmarks, comparison reports and plots.
//!
//! - [`metrics`]: text and classification metrics matching their reference implementations.
//! - [`suite`]: the benchmarks ([`Suite`]: PubMedQA, MedMCQA, MedQA, MMLU medical, Q-Pain,
//!   MedQuAD held-out) and how their records become scoring items.
//! - [`likelihood`]: option log-likelihood with the prompt prefilled once per item;
//!   [`extract`]: answer extraction from generated text (letters, option text, JSON).
//! - [`run`]: [`run_suites`] scores the base model and each [`EvalTarget`] adapter on identical
//!   items, reporting progress to an [`Observer`]; [`qpain`] adds race × gender substitutions.
//! - [`compare`]: [`Comparison`] with bootstrap intervals, paired differences to the base,
//!   per-specialty figures, confusion matrices, Q-Pain gaps and [`analysis`] (verbosity,
//!   refusals, format failures, safety flags); [`recommend`] picks weak specialties;
//!   [`change`] tabulates per-specialty before/after changes with paired intervals.
//! - [`report`]: [`write_report`] writes the CSVs, `report.md`, the charts ([`plots`]) and
//!   `training_recommendations.json`.
//!
//! ```no_run
//! use medtune_eval::{run_suites, write_report, EvalSpec, EvalTarget, NoProgress, Sources, Suite};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut lm = medtune_model::load("models/smollm2-135m-instruct".as_ref(), &Default::default())?;
//! let sources = Sources {
//!     data_dir: "../shared/data".into(),
//!     dataset_dir: None,
//!     heldout_split: "test".into(),
//! };
//! let mut spec = EvalSpec::new(vec![Suite::Pubmedqa, Suite::MmluMedical], sources);
//! spec.limit = Some(50);
//! let targets = [EvalTarget::base(), EvalTarget::adapter("runs/pubmedqa/adapter".into())];
//! let cmp = run_suites(&spec, &mut lm, &targets, &mut NoProgress)?;
//! write_report(&cmp, "eval_out".as_ref())?;
//! # Ok(()) }
//! ```

pub mod analysis;
pub mod change;
pub mod compare;
mod error;
pub mod extract;
pub mod freetext;
pub mod likelihood;
pub mod metrics;
pub mod plots;
pub mod qpain;
pub mod recommend;
pub mod report;
pub mod run;
pub mod suite;

pub use compare::Comparison;
pub use error::{Error, Result};
pub use report::write_report;
pub use run::{run_suites, EvalSpec, EvalTarget, Mode, Modes, NoProgress, Observer, Prediction};
pub use suite::{ChoiceTarget, Sources, Suite};
