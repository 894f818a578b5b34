//! One error type for the whole crate; bad input maps to exit code 2.

use std::fmt;

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure genolm reports, each rendered as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad user input: malformed file, unknown base, impossible config. Exit code 2.
    #[error("{0}")]
    Input(String),
    /// An I/O failure on a named path. Exit code 2 (missing or unreadable input).
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tensor library failure. Exit code 1.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// An internal failure that is not the user's fault. Exit code 1.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Build an input error from anything printable.
    pub fn input(msg: impl fmt::Display) -> Self {
        Error::Input(msg.to_string())
    }

    /// Build an input error located at `file:line`.
    pub fn at(file: impl fmt::Display, line: u64, msg: impl fmt::Display) -> Self {
        Error::Input(format!("{file}:{line}: {msg}"))
    }

    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    /// Process exit code for this error: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) | Error::Io { .. } => 2,
            Error::Candle(_) | Error::Internal(_) => 1,
        }
    }
}

/// Flatten a message to a single line (errors are always one line).
pub fn one_line(msg: &str) -> String {
    msg.split_whitespace().collect::<Vec<_>>().join(" ")
}
