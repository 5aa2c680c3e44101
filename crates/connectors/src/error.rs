//! The one error type of `strata-connectors`: every variant says which file / position, and
//! whether retrying can help.

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// What can go wrong reading or writing an external system.
#[derive(Debug, Error)]
pub enum ConnectorError {
    /// The file cannot be opened or read.
    #[error("cannot read `{file}`: {source} (hint: {hint})")]
    Io {
        /// Path.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
        /// What to check.
        hint: &'static str,
    },

    /// A compressed file is corrupt or truncated; records up to `line` were delivered.
    #[error("`{file}` is corrupt or truncated after line {line} ({compression}): {message}")]
    Corrupt {
        /// Path.
        file: String,
        /// Last good line.
        line: u64,
        /// `gzip` or `zstd`.
        compression: &'static str,
        /// The decoder's message.
        message: String,
    },

    /// Building a batch for the core failed.
    #[error("building a batch for `{file}` at line {line}: {source}")]
    Batch {
        /// Path.
        file: String,
        /// First line of the batch.
        line: u64,
        /// The core's error.
        #[source]
        source: Box<strata_core::CoreError>,
    },
}

impl ConnectorError {
    /// True when retrying the same operation may succeed (transient I/O).
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectorError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}
