//! Evaluation: reference-matching metrics, medical benchmarks, comparison reports and plots.

pub mod analysis;
pub mod compare;
mod error;
pub mod extract;
pub mod freetext;
pub mod likelihood;
pub mod metrics;
pub mod qpain;
pub mod run;
pub mod suite;

pub use compare::Comparison;
pub use error::{Error, Result};
pub use run::{run_suites, EvalSpec, EvalTarget, Mode, Modes, NoProgress, Observer, Prediction};
pub use suite::{ChoiceTarget, Sources, Suite};
