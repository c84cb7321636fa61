//! Medical safety validator: emergency triage, drug recognition, dose and opioid MME checks,
//! interactions and misuse rules, applied to every answer medtune produces.
//!
//! Deterministic rules over reference tables carry the safety-critical load; a small model cannot
//! police itself. The tables (with their sources and licences in `data/SOURCES.md` and
//! `data/README.md`) are embedded; [`TableTexts::from_dir`] loads replacements.
//!
//! Main types:
//! - [`Validator`]: built once from a [`Config`]; `Send + Sync`.
//!   [`Validator::check_question`] triages a question before generation,
//!   [`Validator::check`] checks a candidate answer.
//! - [`SafetyReport`]: `risk_level` (0 none … 3 emergency), [`Warning`]s (each with a
//!   [`Category`], `subcategory`, message, [`Evidence`] span and source row id), the [`Action`]
//!   taken (`pass`, `annotate`, `replace`) and the `final_text` with a disclaimer.
//! - [`PatientContext`]: optional age, pregnancy, conditions, medications, renal/hepatic flags.
//!
//! ```
//! use medtune_safety::{Action, Category, Config, Validator};
//!
//! let v = Validator::new(Config::default())?;
//! let r = v.check("How should I take it?", "Oxycodone 10 mg q6h.", None);
//! assert_eq!(r.mme_per_day, Some(60.0));
//! assert!(r.has(Category::OpioidMme));
//! assert_eq!(r.action, Action::Annotate);
//! # Ok::<(), medtune_safety::Error>(())
//! ```

#![deny(missing_docs)]

mod dose;
mod drugs;
mod error;
mod report;
mod rules;
mod tables;
mod text;
mod validator;

pub use error::{Error, Result};
pub use report::*;
pub use tables::{TableTexts, TABLE_FILES};
pub use validator::{Config, Validator, DEFAULT_DISCLAIMER};
