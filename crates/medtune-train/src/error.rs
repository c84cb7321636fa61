//! The crate's error type: variants name the parameter, tensor or setting at fault.

/// Errors from optimizers, schedules and the training loop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range or inconsistent.
    #[error("invalid setting `{field}`: {message}")]
    Config {
        /// The setting, e.g. `schedule.warmup.ratio`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A trainable parameter received no gradient.
    #[error("parameter `{name}` has no gradient (is it used in the loss?)")]
    MissingGrad {
        /// The parameter's name.
        name: String,
    },
    /// Gradients do not line up with the parameters they are meant for.
    #[error("gradient for `{name}`: {message}")]
    GradMismatch {
        /// The parameter's name (or index).
        name: String,
        /// What does not match.
        message: String,
    },
    /// Saved optimizer state does not fit this optimizer.
    #[error("optimizer state `{tensor}`: {message}")]
    State {
        /// The state tensor or JSON field.
        tensor: String,
        /// What is wrong with it.
        message: String,
    },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Loading data failed (the data crate's error, as text).
    #[error("data: {0}")]
    Data(String),
    /// The model or adapter failed (the model crate's error, as text).
    #[error("model: {0}")]
    Model(String),
    /// The loss or gradient norm became NaN or infinite.
    #[error("non-finite {what} ({value}) at step {step}; the last good checkpoint is kept")]
    NonFinite {
        /// `loss` or `gradient norm`.
        what: String,
        /// The value seen.
        value: f64,
        /// The optimizer step being computed.
        step: u64,
    },
    /// The label audit found the data unfit for training.
    #[error("label audit failed: {0}")]
    Audit(String),
    /// A checkpoint is missing or inconsistent.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::Config`].
    pub(crate) fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Wraps a data-crate error.
    pub(crate) fn data(e: medtune_data::Error) -> Self {
        Error::Data(e.to_string())
    }

    /// Wraps a model-crate error.
    pub(crate) fn model(e: impl std::fmt::Display) -> Self {
        Error::Model(e.to_string())
    }

    /// Shorthand for [`Error::Io`].
    pub(crate) fn io(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    /// Shorthand for [`Error::State`].
    pub(crate) fn state(tensor: impl Into<String>, message: impl Into<String>) -> Self {
        Error::State {
            tensor: tensor.into(),
            message: message.into(),
        }
    }
}
