//! Data pipeline of medtune: readers for medical QA sets, cleaning with a report, leakage-aware
//! splits, augmentation, chat-template rendering and tokenization with completion-only labels.
//!
//! Main types:
//! - [`Record`]: the one record type every reader produces ([`readers::read_source`]).
//! - [`clean::clean`] → [`clean::CleaningReport`]; [`split::split`] (MinHash/LSH near duplicates,
//!   groups never split); [`augment::augment_train`] (Q-Pain-style vignettes, oversampling).
//! - [`pipeline::prepare`]: the whole `medtune data prepare` run from a [`DataConfig`].
//! - [`template::ChatTemplate`], [`prompt::build_prompt`], [`tokenize::ExampleTokenizer`] and
//!   [`pack::Batch`]: what the trainer consumes (tensor-free vectors).
//!
//! ```
//! use medtune_data::template::{ChatTemplate, Message};
//! use medtune_data::prompt::{build_prompt, AnswerFormat, PromptConfig};
//! use medtune_data::Record;
//!
//! let r = Record { id: "x:1".into(), question: "Is aspirin an NSAID?".into(), answer: "yes".into(),
//!                  label: Some("yes".into()), source: "x".into(), ..Default::default() };
//! let cfg = PromptConfig { answer_format: AnswerFormat::YesNoJson, system_prompt: None };
//! let p = build_prompt(&r, &cfg).unwrap();
//! assert_eq!(p.answer, r#"{"answer": "yes"}"#);
//! let t = ChatTemplate::builtin("chatml").unwrap();
//! let text = t.render(&p.messages, true).unwrap();
//! assert!(text.ends_with("<|im_start|>assistant\n"));
//! ```

pub mod augment;
pub mod clean;
pub mod config;
mod error;
pub mod io;
pub mod near_dup;
pub mod pack;
pub mod pipeline;
pub mod prompt;
pub mod readers;
mod record;
pub mod resample;
pub mod split;
pub mod stats;
pub mod template;
pub mod tokenize;

pub use config::DataConfig;
pub use error::{Error, Result};
pub use record::{Provenance, Record, StratifyBy};
