//! PostgreSQL full load (and incremental load by a watermark) into Arrow batches — the DMS
//! "Full Load" without access to the log.
//!
//! Why: a table's rows must reach bronze as they were at ONE instant, quickly, with their types.
//! How: an exported snapshot shared by N reader sessions ([`snapshot`]), each reading chunks with
//! `COPY (SELECT …) TO STDOUT (FORMAT binary)` decoded by our own binary COPY decoder straight
//! into Arrow builders ([`copy`]), with types taken from the catalog ([`types`]).
//!
//! Invariants: every part of one load comes from the same snapshot; a chunk read again (retry)
//! yields the same parts; the schema of a table depends only on its catalog entry and the config.
//!
//! How it fails: every error names the host, table, column or file concerned and says what to do
//! — unreachable server, authentication, unknown database, missing table / column, missing
//! privilege, a value Arrow cannot hold. Transient errors on a chunk are retried inside the
//! snapshot; anything else stops the load, and nothing of an incremental state is written.
//!
//! ```no_run
//! # async fn demo() -> strata_connectors::Result<()> {
//! use strata_connectors::postgres::{PgConnection, PgLoader, PgSourceConfig, PgTableConfig};
//!
//! let config = PgSourceConfig::new(
//!     PgConnection::from_url("postgres://loader@db.internal:5432/crm"),
//!     vec![PgTableConfig::new("public", "customers")],
//! );
//! let report = PgLoader::new(config)?
//!     .run(
//!         |part| async move {
//!             println!("{} rows for {}", part.rows, part.object_stem());
//!             Ok(())
//!         },
//!         &|p| eprintln!("{} rows, {:.0} rows/s", p.rows, p.rows_per_sec),
//!     )
//!     .await?;
//! println!("snapshot {}: {} rows", report.snapshot.time, report.rows);
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod config;
pub mod copy;
pub mod incremental;
pub mod snapshot;
pub mod tls;
pub mod types;

pub use config::{
    IncrementalConfig, PgConnection, PgSourceConfig, PgTableConfig, UnconstrainedNumeric,
};
pub use copy::CopyDecoder;
pub use incremental::{WatermarkEntry, WatermarkState};
pub use snapshot::{
    BoxError, ChunkRange, LoadReport, LoadedPart, PgLoader, Progress, SnapshotInfo, TablePlan,
    TableReport, bronze_source_name,
};
pub use types::{PgColumn, PgKind};
