//! # strata-layers
//!
//! The lake layers.
//!
//! * [`lake::Lake`] — a lake root URL (local path, `file://`, `s3://`) over `object_store`;
//! * [`bronze`] — append-only raw records (create-only puts, names from source positions,
//!   validated paths) and a streaming reader by source and date range;
//! * [`silver`] — Iceberg tables (SQLite catalog) appended with the inputs each commit covers;
//! * [`parquet_file::ParquetFileWriter`] — the local Parquet sink of `strata transform`.

pub mod access;
pub mod bronze;
pub mod cooling;
pub mod durable;
pub mod error;
pub mod gold;
pub mod lake;
pub mod parquet_file;
pub mod silver;

pub use error::{LayersError, Result};
