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
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file exists but holds nothing usable.
    #[error("{path}: the file is empty")]
    EmptyFile {
        /// The empty file.
        path: PathBuf,
    },
    /// A text file is not valid UTF-8.
    #[error("{path}:{line}: the file is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The 1-based line holding the first invalid byte.
        line: usize,
        /// Byte offset of the first invalid byte from the start of the file.
        offset: usize,
    },
    /// One line of a data file could not be parsed.
    #[error("{path}:{line}: {msg}")]
    BadLine {
        /// The data file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        msg: String,
    },
    /// A binary data file (an IDX file, an image) is malformed; `msg` says
    /// where (the entry, for a file of many) and what.
    #[error("{path}: {msg}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. "image 17: label 12 is out of range 0..=9".
        msg: String,
    },
    /// A data set that a Debian package provides is not installed.
    #[error("{path} not found: it comes with Debian's {package} package (apt-get install {package})")]
    MissingPackage {
        /// Where the data was looked for.
        path: PathBuf,
        /// The package that provides it.
        package: &'static str,
    },
    /// A configuration value is impossible; `field` names it.
    #[error("invalid config: {field}: {msg}")]
    Config {
        /// The config field, e.g. "train.optimizer.lr".
        field: String,
        /// Why the value is impossible.
        msg: String,
    },
    /// A configuration file or `--set` override could not be applied.
    #[error("{source_name}: {msg}")]
    ConfigFile {
        /// Where the config came from: a file path or the `--set KEY=VALUE` argument.
        source_name: String,
        /// Why it could not be applied.
        msg: String,
    },
    /// A file the job would write is already there; it is left alone.
    #[error("{path}: already exists; pass --force to replace it (nothing was written)")]
    Exists {
        /// The file that exists.
        path: PathBuf,
    },
    /// A tokenizer could not encode, decode or write itself.
    #[error("tokenizer: {msg}")]
    Tokenizer {
        /// What failed, with the `tokenizers` library's reason.
        msg: String,
    },
    /// A job's setting is impossible; the message names the option (e.g. `--stop`).
    #[error("{msg}")]
    Setting {
        /// What is wrong, naming the option.
        msg: String,
    },
    /// A name (task, preset, ...) is not one shiftlm knows.
    #[error("unknown {what} '{name}' (known: {known})")]
    Unknown {
        /// The kind of name, e.g. "task" or "preset".
        what: &'static str,
        /// The name given.
        name: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A checkpoint lacks a tensor the model needs.
    #[error("{path}: missing tensor '{name}'")]
    MissingTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The name of the missing tensor.
        name: String,
    },
    /// A checkpoint holds a tensor the model does not have.
    #[error("{path}: unexpected tensor '{name}' (the model has no such parameter)")]
    UnexpectedTensor {
        /// The checkpoint file.
        path: PathBuf,
        /// The name of the extra tensor.
        name: String,
    },
    /// A checkpoint tensor has the wrong shape or dtype.
    #[error("{path}: tensor '{name}' has shape {got:?}, the model expects {expected:?}")]
    TensorShape {
        /// The checkpoint file.
        path: PathBuf,
        /// The tensor's name.
        name: String,
        /// The shape the model expects.
        expected: Vec<usize>,
        /// The shape found in the checkpoint.
        got: Vec<usize>,
    },
    /// A checkpoint folder is incomplete or malformed.
    #[error("{path}: {msg}")]
    Checkpoint {
        /// The checkpoint folder or file at fault.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// Training diverged.
    #[error("non-finite {what} at step {step}")]
    NonFinite {
        /// What went non-finite, e.g. "loss" or "gradient".
        what: &'static str,
        /// The training step at which it happened.
        step: usize,
    },
    /// A data-parallel job could not start or communicate.
    #[error("distributed training: {0}")]
    Distributed(String),
    /// A tensor operation failed (a bug or an impossible shape).
    #[error(transparent)]
    Candle(
        /// The tensor library's error.
        #[from]
        candle_core::Error,
    ),
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

    pub(crate) fn bad_file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), msg: msg.into() }
    }

    pub(crate) fn setting(msg: impl Into<String>) -> Self {
        Error::Setting { msg: msg.into() }
    }
}
