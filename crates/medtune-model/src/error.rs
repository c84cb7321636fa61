//! The crate's error type: every variant names the file and the tensor or field at fault.

use std::path::PathBuf;

/// Errors from loading, running and sampling a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying IO error.
        source: std::io::Error,
    },
    /// A JSON file (config, tokenizer config, shard index) is malformed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        source: serde_json::Error,
    },
    /// A config field is missing, has the wrong type or an unsupported value.
    #[error("{path}: field `{field}`: {message}")]
    Config {
        /// The config file (or GGUF file for GGUF metadata).
        path: PathBuf,
        /// The field, e.g. `model_type` or `rope_scaling.rope_type`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A weight file is truncated or not in the expected format.
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor the architecture needs is absent.
    #[error("{path}: missing tensor `{tensor}`")]
    MissingTensor {
        /// The weight file (or folder, for sharded weights).
        path: PathBuf,
        /// The HF tensor name.
        tensor: String,
    },
    /// A tensor has a shape other than the one the config implies.
    #[error("{path}: tensor `{tensor}` has shape {actual:?}, expected {expected:?}")]
    WrongShape {
        /// The weight file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape found in the file.
        actual: Vec<usize>,
    },
    /// A tensor could not be read or converted.
    #[error("{path}: tensor `{tensor}`: {source}")]
    Tensor {
        /// The weight file.
        path: PathBuf,
        /// The tensor name.
        tensor: String,
        /// candle's error.
        source: candle_core::Error,
    },
    /// The tokenizer file could not be loaded, or text could not be (de)tokenized.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer file (or model path).
        path: PathBuf,
        /// The tokenizer's message.
        message: String,
    },
    /// The chat template failed to parse or render.
    #[error("chat template: {0}")]
    Template(String),
    /// An input to the model is invalid (token id out of range, shapes disagree...).
    #[error("invalid input `{field}`: {message}")]
    Input {
        /// The argument or tensor name, e.g. `input_ids`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A trainable tensor received no gradient: an op without a backward pass cut the graph
    /// between it and the loss.
    #[error("no gradient reached `{tensor}`: an op without a backward pass cut the graph between it and the loss")]
    NoGradient {
        /// The PEFT key (or the activation) that got no gradient.
        tensor: String,
    },
    /// A tensor operation failed inside the model.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::Config`].
    pub(crate) fn config(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Input`].
    pub(crate) fn input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
