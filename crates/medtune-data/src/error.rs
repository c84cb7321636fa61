//! The crate's error type: every variant names the file, line or field that was wrong.

use std::path::PathBuf;

/// Errors of the data pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A record in an input file is malformed (fatal in strict mode, otherwise reported and skipped).
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The input file.
        path: PathBuf,
        /// 1-based line number (0 when the whole file is unusable).
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// A column or field mapping names a column the file does not have.
    #[error("{path}: unknown column `{column}` for field `{field}` (available: {available})")]
    UnknownColumn {
        /// The input file.
        path: PathBuf,
        /// The record field being mapped.
        field: String,
        /// The column that was asked for.
        column: String,
        /// The columns the file has, comma separated.
        available: String,
    },
    /// A configuration value is invalid.
    #[error("config field `{field}`: {message}")]
    Config {
        /// Dotted path of the field, e.g. `split.ratios`.
        field: String,
        /// What was wrong.
        message: String,
    },
    /// A chat template failed to compile or render.
    #[error("chat template `{name}`: {message}")]
    Template {
        /// Template name (built-in name or the file it came from).
        name: String,
        /// The renderer's message.
        message: String,
    },
    /// The tokenizer failed or lacks a required token.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A record does not fit the model input (e.g. the answer is not where the template put it).
    #[error("record `{id}`: {message}")]
    Record {
        /// Record id.
        id: String,
        /// What was wrong.
        message: String,
    },
    /// A JSON or TOML document could not be (de)serialised.
    #[error("{path}: {message}")]
    Serde {
        /// The file involved.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A config error for `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}
