//! # strata-connectors
//!
//! Sources and sinks: they read or write external systems and hand the core raw records with
//! their lineage columns (see `strata_core::lineage`). No transformation logic lives here.
//!
//! * [`file::NdjsonReader`] — streams newline-delimited records from local files (plain, gzip
//!   or zstd) in bounded batches, each record tagged with its file and line.

pub mod error;
pub mod file;

pub use error::{ConnectorError, Result};
