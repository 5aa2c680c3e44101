//! Silver: Iceberg tables with a declared schema, written with iceberg-rust.
//!
//! * [`SilverCatalog`] — the embedded default catalog: an Iceberg SQL catalog on a SQLite file
//!   beside a local warehouse folder (the JDBC-catalog schema, so pyiceberg's SQL catalog can open
//!   the same file);
//! * [`append`] — one atomic fast-append commit per run chunk, hidden `day(event_time)`
//!   partitioning, and the bronze files (or positions) the chunk covers stored in the snapshot
//!   summary under `strata.covered`: a re-run that covers nothing new commits nothing.
//!
//! * [`SilverMerge`] — keyed tables (`snapshot`, `historical`): change events merged into the
//!   rows of the keys they touch, committed copy-on-write by [`commit_overwrite`] (a row-level
//!   commit of our own; iceberg-rust 0.10.1 has none);
//! * [`SilverAppend`] — the streaming form: batches go to Parquet as they come, memory bounded
//!   by [`WriteOptions`].
//!
//! Concurrent writers: every commit is a compare-and-swap against the version whose coverage was
//! checked (`commit.rs`); the loser reloads, sees the inputs covered and drops its files, or
//! commits onto the new version — never the same input twice.

mod append;
mod catalog;
mod commit;
mod direct_read;
mod evolve;
mod maintain;
mod merge;
mod object_storage;
mod overwrite;
mod partitioning;
mod publish;
mod query;

pub use append::{
    AppendReport, COVERED_ARCHIVE_KEY, COVERED_KEY, Committed, Coverage, CoverageIndex,
    SilverAppend, WriteOptions, append, committed_coverage, current_summary_property,
};
pub use catalog::{
    CATALOG_NAME, CatalogConfig, SilverCatalog, check_silver_schema, silver_arrow_schema,
};
pub use direct_read::{direct_files, listing_table};
pub use iceberg::table::Table as IcebergTable;
pub use maintain::{MaintainOptions, MaintainReport, maintain};
pub use merge::{MergeReport, SilverMerge};
pub use object_storage::{ObjectStorage, ObjectStorageFactory, S3_OPTION_PREFIX};
pub(crate) use overwrite::read_data_files;
pub use overwrite::{LiveFiles, OverwriteReport, RewritePlan, commit_overwrite, commit_rewrite};
pub use publish::{publish_staged, ref_snapshot_id};
pub use query::{session, sql, sql_reading, tables_read};
