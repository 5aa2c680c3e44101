//! The one error type of `strata-layers`.

use thiserror::Error;

/// Result alias of this crate.
pub type Result<T, E = LayersError> = std::result::Result<T, E>;

/// What can go wrong writing a layer.
#[derive(Debug, Error)]
pub enum LayersError {
    /// The target exists; layers never overwrite data.
    #[error(
        "`{path}` already exists; Strata never overwrites output (hint: choose another output folder or remove it)"
    )]
    AlreadyExists {
        /// Path.
        path: String,
    },

    /// Filesystem error.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// Path.
        path: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },

    /// Parquet encoding error.
    #[error("writing Parquet `{path}`: {source}")]
    Parquet {
        /// Path.
        path: String,
        /// Encoder error.
        #[source]
        source: parquet::errors::ParquetError,
    },
}
