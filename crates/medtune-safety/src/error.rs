//! The crate's error type. Every variant names the table file and, where it applies, the line and field.

use std::path::PathBuf;

/// Errors raised while loading reference tables or building a [`crate::Validator`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CSV record could not be read or did not have the expected columns.
    #[error("{file}: line {line}: {source}")]
    Csv {
        /// Table file name, e.g. `drug_synonyms.csv`.
        file: String,
        /// 1-based line number of the record (the header is line 1).
        line: u64,
        /// The CSV reader's error.
        #[source]
        source: csv::Error,
    },
    /// A field held a value the validator cannot use.
    #[error("{file}: line {line}: field `{field}`: {message}")]
    Field {
        /// Table file name.
        file: String,
        /// 1-based line number of the record.
        line: u64,
        /// Column name.
        field: String,
        /// What was wrong.
        message: String,
    },
    /// A table file could not be read from a directory.
    #[error("cannot read table {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The matcher over names or phrases could not be built.
    #[error("cannot build the {what} matcher: {message}")]
    Matcher {
        /// Which matcher (drug names, red-flag phrases, misuse rules).
        what: &'static str,
        /// The builder's message.
        message: String,
    },
    /// The configuration names something the tables do not have.
    #[error("invalid config: {0}")]
    Config(String),
}

/// Result alias for this crate.
pub type Result<T> = std::result::Result<T, Error>;
