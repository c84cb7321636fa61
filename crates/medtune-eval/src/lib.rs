//! Evaluation: reference-matching metrics, medical benchmarks, comparison reports and plots.

pub mod metrics;
