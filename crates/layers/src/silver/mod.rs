//! Silver: Iceberg tables with a declared schema, written with iceberg-rust.
//!
//! * [`SilverCatalog`] — the embedded default catalog: an Iceberg SQL catalog on a SQLite file
//!   beside a local warehouse folder (the JDBC-catalog schema, so pyiceberg's SQL catalog can open
//!   the same file);
//! * [`append`] — one atomic fast-append commit per run chunk, hidden `day(event_time)`
//!   partitioning, and the bronze files (or positions) the chunk covers stored in the snapshot
//!   summary under `strata.covered`: a re-run that covers nothing new commits nothing.
//!
//! Known limit (iceberg-rust 0.10.1): `Transaction::commit` retries a conflicting fast append on
//! the refreshed table without re-running our "already covered?" check, so two *concurrent*
//! writers of the same bronze files could both commit. A single writer per table (the batch
//! driver's model) is exactly-once; a fenced commit path is future work.

mod append;
mod catalog;
mod evolve;
mod query;

pub use append::{AppendReport, COVERED_KEY, append, committed_coverage, current_summary_property};
pub use catalog::{SilverCatalog, silver_arrow_schema};
pub use query::{session, sql};
