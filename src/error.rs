//! Typed errors for the library. Every variant names what the user must fix:
//! a file and line, a tensor, or a config field. The binary adds context and
//! prints the whole chain.

use std::path::PathBuf;

/// All failures the library reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but holds nothing usable.
    #[error("{path}: the file is empty")]
    EmptyFile { path: PathBuf },
    /// A text file is not valid UTF-8.
    #[error("{path}:{line}: the file is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 { path: PathBuf, line: usize, offset: usize },
    /// One line of a data file could not be parsed.
    #[error("{path}:{line}: {msg}")]
    BadLine { path: PathBuf, line: usize, msg: String },
    /// A configuration value is impossible; `field` names it.
    #[error("invalid config: {field}: {msg}")]
    Config { field: String, msg: String },
    /// A configuration file or `--set` override could not be applied.
    #[error("{source_name}: {msg}")]
    ConfigFile { source_name: String, msg: String },
    /// A name (task, preset, ...) is not one shiftlm knows.
    #[error("unknown {what} '{name}' (known: {known})")]
    Unknown { what: &'static str, name: String, known: String },
    /// A checkpoint lacks a tensor the model needs.
    #[error("{path}: missing tensor '{name}'")]
    MissingTensor { path: PathBuf, name: String },
    /// A checkpoint holds a tensor the model does not have.
    #[error("{path}: unexpected tensor '{name}' (the model has no such parameter)")]
    UnexpectedTensor { path: PathBuf, name: String },
    /// A checkpoint tensor has the wrong shape or dtype.
    #[error("{path}: tensor '{name}' has shape {got:?}, the model expects {expected:?}")]
    TensorShape { path: PathBuf, name: String, expected: Vec<usize>, got: Vec<usize> },
    /// A checkpoint folder is incomplete or malformed.
    #[error("{path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },
    /// Training diverged.
    #[error("non-finite {what} at step {step}")]
    NonFinite { what: &'static str, step: usize },
    /// A tensor operation failed (a bug or an impossible shape).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn config(field: &str, msg: impl Into<String>) -> Self {
        Error::Config { field: field.to_string(), msg: msg.into() }
    }
}
