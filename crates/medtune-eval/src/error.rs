//! The error type of the benchmark and report code: every variant names the suite, item, file or
//! field that was wrong.

use std::path::PathBuf;

/// Errors of benchmark runs and reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A benchmark file could not be read.
    #[error("suite {suite}: {source}")]
    Data {
        /// The suite being loaded.
        suite: String,
        /// What the reader said.
        #[source]
        source: Box<medtune_data::Error>,
    },
    /// A suite needs an input that was not given or not found.
    #[error("suite {suite}: {message}")]
    Input {
        /// The suite.
        suite: String,
        /// What is missing.
        message: String,
    },
    /// One item cannot be scored (missing field, bad label).
    #[error("item {id}: {message}")]
    Item {
        /// The item id.
        id: String,
        /// What was wrong.
        message: String,
    },
    /// Two targets or runs were scored on different items.
    #[error("{context}: item ids differ between runs ({detail})")]
    MismatchedItems {
        /// Which suite/mode.
        context: String,
        /// The first differing ids.
        detail: String,
    },
    /// The model failed (forward pass, tokenizer, adapter).
    #[error("model `{target}`: {source}")]
    Model {
        /// The target being evaluated.
        target: String,
        /// The model error.
        #[source]
        source: Box<medtune_model::Error>,
    },
    /// A tensor operation of the scorer failed.
    #[error("scoring: {0}")]
    Candle(#[from] Box<candle_core::Error>),
    /// A metric rejected its input.
    #[error("metric: {0}")]
    Metric(#[from] crate::metrics::Error),
    /// A report file could not be written.
    #[error("{path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// A chart could not be drawn.
    #[error("plot: {0}")]
    Plot(#[from] Box<medtune_train::plot::PlotError>),
    /// A setting is out of range.
    #[error("invalid setting `{field}`: {message}")]
    Setting {
        /// The setting.
        field: String,
        /// Why.
        message: String,
    },
}

impl Error {
    /// A model error for `target`.
    pub fn model(target: &str, source: medtune_model::Error) -> Self {
        Error::Model {
            target: target.to_string(),
            source: Box::new(source),
        }
    }

    /// A reader error while loading `suite`.
    pub fn data(suite: &str, source: medtune_data::Error) -> Self {
        Error::Data {
            suite: suite.to_string(),
            source: Box::new(source),
        }
    }

    /// An item error.
    pub fn item(id: &str, message: impl Into<String>) -> Self {
        Error::Item {
            id: id.to_string(),
            message: message.into(),
        }
    }
}

impl From<medtune_train::plot::PlotError> for Error {
    fn from(e: medtune_train::plot::PlotError) -> Self {
        Error::Plot(Box::new(e))
    }
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(Box::new(e))
    }
}

/// Result alias of the benchmark code.
pub type Result<T> = std::result::Result<T, Error>;
