//! # strata-layers
//!
//! Writers for the lake layers. Today: [`parquet_file::ParquetFileWriter`], the local Parquet
//! sink used by `strata transform` for good rows and for quarantine (zstd, create-only).

pub mod error;
pub mod parquet_file;

pub use error::{LayersError, Result};
