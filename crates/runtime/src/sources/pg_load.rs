//! A PostgreSQL full (or incremental) load as a source: the tables read from one exported
//! snapshot by parallel readers ([`PgLoader`]), each chunk part handed out as one batch.
//!
//! Tables have different schemas, so every batch carries its own (the table's columns) and, in
//! its schema metadata, where it belongs in bronze: [`PART_SOURCE`], [`PART_OBJECT`],
//! [`PART_DATE`] and the part's own keys (`strata.snapshot_time`, `strata.pg.*`), which the
//! bronze sink ([`crate::sinks::BronzePartsSink`]) writes into the object's key-value metadata.
//! [`Source::schema`] is therefore empty; a load runs with [`crate::Passthrough`].
//!
//! A load is one unit: parts carry no position, and only the end of the load reports one — a
//! [`Position::Snapshot`] with the watermark of every incremental table — so the driver commits
//! once, after every part is written, and only then are the watermarks stored. A load stopped
//! earlier (SIGTERM, a failed write) stores nothing, and the next run reads the same rows again
//! from a new snapshot (at least once into bronze, never a gap).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};
use strata_connectors::postgres::{LoadReport, LoadedPart, PgLoader, Progress};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::contract::{Polled, Source};
use crate::error::{Result, RuntimeError};
use crate::position::Position;

/// Schema-metadata key of a part batch: the bronze source (`postgres.<db>.<table>`).
pub const PART_SOURCE: &str = "strata.bronze.source";
/// Schema-metadata key of a part batch: the object name without extension, unique to the
/// snapshot, chunk and part (a retried chunk gives the same names).
pub const PART_OBJECT: &str = "strata.bronze.object";
/// Schema-metadata key of a part batch: the snapshot's UTC date (`YYYY-MM-DD`).
pub const PART_DATE: &str = "strata.bronze.date";

/// Called with the load's progress about four times a second.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// The load's report, filled when the load ends (for the command's summary).
pub type SharedReport = Arc<Mutex<Option<LoadReport>>>;

/// The parts of one load, in the order the readers finish them.
pub struct PgLoadSource {
    loader: Option<PgLoader>,
    progress: ProgressFn,
    parts: Option<mpsc::Receiver<LoadedPart>>,
    load: Option<JoinHandle<strata_connectors::Result<LoadReport>>>,
    report: SharedReport,
    ended: bool,
    name: String,
}

impl std::fmt::Debug for PgLoadSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLoadSource")
            .field("name", &self.name)
            .finish()
    }
}

impl PgLoadSource {
    /// A source over `loader` (its state writes are turned off: the committer stores the
    /// watermarks once the parts are durable).
    pub fn new(loader: PgLoader, progress: ProgressFn) -> Self {
        let endpoint = loader.endpoint();
        let name = format!(
            "postgres://{}/{}?tables={}",
            endpoint.host,
            endpoint.database,
            loader
                .config()
                .tables
                .iter()
                .map(|t| t.qualified())
                .collect::<Vec<_>>()
                .join(",")
        );
        PgLoadSource {
            loader: Some(loader.with_state_writes(false)),
            progress,
            parts: None,
            load: None,
            report: Arc::new(Mutex::new(None)),
            ended: false,
            name,
        }
    }

    /// The load's report once it ended (shared with the source inside the driver).
    pub fn report(&self) -> SharedReport {
        self.report.clone()
    }

    /// The part as one batch whose schema metadata says where it goes.
    fn batch_of(part: &LoadedPart) -> Result<RecordBatch> {
        let mut metadata: std::collections::HashMap<String, String> =
            part.metadata().into_iter().collect();
        metadata.insert(PART_SOURCE.into(), part.source_name());
        metadata.insert(PART_OBJECT.into(), part.object_stem());
        metadata.insert(PART_DATE.into(), part.snapshot.date.clone());
        let schema = Arc::new(Schema::new_with_metadata(
            part.table.arrow_schema.fields().clone(),
            metadata,
        ));
        let stage = |e: arrow::error::ArrowError| RuntimeError::Stage {
            stage: "source",
            message: format!(
                "`{}` chunk {} part {}: {e}",
                part.table.qualified(),
                part.chunk_label,
                part.part
            ),
        };
        let rows = concat_batches(&part.table.arrow_schema, &part.batches).map_err(stage)?;
        rows.with_schema(schema).map_err(stage)
    }

    /// The position the whole load reached: its snapshot and every watermark after it.
    fn position_of(report: &LoadReport) -> Position {
        Position::Snapshot {
            time: report.snapshot.time.clone(),
            watermarks: report
                .new_state
                .as_ref()
                .map(|s| s.tables.clone())
                .unwrap_or_default(),
        }
    }
}

#[async_trait::async_trait]
impl Source for PgLoadSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn schema(&self) -> SchemaRef {
        // Every part carries its table's schema.
        Arc::new(Schema::empty())
    }

    async fn seek(&mut self, _committed: Option<&Position>) -> Result<()> {
        // Every run is a new snapshot; the incremental watermarks come from the state file the
        // committer writes, which the loader reads when it plans the tables.
        let Some(loader) = self.loader.take() else {
            return Ok(());
        };
        let (tx, rx) = mpsc::channel::<LoadedPart>(1);
        let progress = self.progress.clone();
        self.load = Some(tokio::spawn(async move {
            let on_part = |part: LoadedPart| {
                let tx = tx.clone();
                async move {
                    // Awaited one at a time: a slow sink slows the readers down.
                    tx.send(part)
                        .await
                        .map_err(|_| "the driver stopped taking parts".into())
                }
            };
            loader.run(on_part, &*progress).await
        }));
        self.parts = Some(rx);
        Ok(())
    }

    async fn next(&mut self) -> Result<Polled> {
        if self.ended {
            return Ok(Polled::End);
        }
        let Some(parts) = self.parts.as_mut() else {
            return Err(RuntimeError::Stage {
                stage: "source",
                message: "the load was not started (seek first)".into(),
            });
        };
        if let Some(part) = parts.recv().await {
            return Ok(Polled::Batch {
                batch: Self::batch_of(&part)?,
                position: None,
            });
        }
        // Every part was handed out: the load's own result says whether it is complete.
        let Some(load) = self.load.take() else {
            return Ok(Polled::End);
        };
        let report = load.await.map_err(|e| RuntimeError::Stage {
            stage: "source",
            message: format!("the PostgreSQL load task failed: {e}"),
        })??;
        self.ended = true;
        let position = Self::position_of(&report);
        if let Ok(mut shared) = self.report.lock() {
            *shared = Some(report);
        }
        Ok(Polled::Reached(position))
    }
}

/// The watermarks of a position written by [`PgLoadSource`] (empty for any other kind).
pub fn watermarks_of(
    position: &Position,
) -> BTreeMap<String, strata_connectors::postgres::WatermarkEntry> {
    match position {
        Position::Snapshot { watermarks, .. } => watermarks.clone(),
        _ => BTreeMap::new(),
    }
}
