//! Database load parts into bronze, one create-only Parquet object per part, and the load's
//! watermarks into its state file when the load commits (`strata ingest postgres`).
//!
//! Each batch names its object in its schema metadata ([`crate::sources::pg_load`]). A put is
//! create-only: a part written again (a chunk retried inside the load) finds the same bytes and
//! is counted as already present. The objects of a load are visible as they land — bronze is
//! append-only raw data, and a rerun writes a new snapshot beside them — but the watermarks,
//! which decide what the next incremental run reads, are stored only by the commit at the end
//! of a load every part of which was written, together with a marker per full-loaded table
//! ([`LoadMarker`]) naming its parts, so a table that mirrors the source reads a load only whole.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use strata_connectors::postgres::WatermarkState;
use strata_layers::bronze::{BronzeDate, BronzeWriter, LoadMarker, PutOutcome};

use crate::contract::{CommitReport, Committed, Committer, Sink, StateUpdate};
use crate::error::{Result, RuntimeError};
use crate::position::Position;
use crate::sources::pg_load::{PART_DATE, PART_OBJECT, PART_SOURCE, watermarks_of};

/// What the sink wrote, readable while and after the driver runs it.
#[derive(Debug, Default)]
pub struct PartCounts {
    /// Objects created.
    pub created: AtomicU64,
    /// Objects found already present with the same bytes.
    pub present: AtomicU64,
    /// Bytes of the objects created.
    pub bytes: AtomicU64,
    /// Rows written.
    pub rows: AtomicU64,
    /// Whether a commit stored watermarks in the state file.
    pub state_stored: AtomicBool,
    /// The bronze folders written (`bronze/source=…/date=…`).
    pub folders: Mutex<BTreeSet<String>>,
    /// Load markers written by the commit (paths below the lake root).
    pub markers: Mutex<Vec<String>>,
}

/// Load parts → bronze Parquet objects; watermarks → the state file at commit.
pub struct BronzePartsSink {
    writer: BronzeWriter,
    date: Option<BronzeDate>,
    state_file: Option<PathBuf>,
    dry_run: bool,
    counts: Arc<PartCounts>,
    staged_rows: u64,
    /// The parts of each full-loaded table, by bronze source: marked complete at the commit.
    full_loads: BTreeMap<String, LoadMarker>,
}

impl std::fmt::Debug for BronzePartsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BronzePartsSink")
            .field("date", &self.date)
            .field("state_file", &self.state_file)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl BronzePartsSink {
    /// Parts into `writer`'s lake under `date` (default: each part's snapshot date), the
    /// watermarks into `state_file`; a dry run writes neither.
    pub fn new(
        writer: BronzeWriter,
        date: Option<BronzeDate>,
        state_file: Option<PathBuf>,
        dry_run: bool,
    ) -> Self {
        BronzePartsSink {
            writer,
            date,
            state_file,
            dry_run,
            counts: Arc::new(PartCounts::default()),
            staged_rows: 0,
            full_loads: BTreeMap::new(),
        }
    }

    /// The sink's counts (shared with the sink inside the driver).
    pub fn counts(&self) -> Arc<PartCounts> {
        self.counts.clone()
    }
}

fn part_key<'a>(
    metadata: &'a std::collections::HashMap<String, String>,
    key: &str,
) -> Result<&'a str> {
    metadata
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| RuntimeError::Stage {
            stage: "sink",
            message: format!("a load part without `{key}` in its schema metadata"),
        })
}

#[async_trait::async_trait]
impl Sink for BronzePartsSink {
    async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        self.staged_rows += rows.num_rows() as u64;
        self.counts
            .rows
            .fetch_add(rows.num_rows() as u64, Ordering::Relaxed);
        if self.dry_run {
            return Ok(());
        }
        let schema = rows.schema();
        let metadata = schema.metadata();
        let source = part_key(metadata, PART_SOURCE)?;
        let object = part_key(metadata, PART_OBJECT)?;
        let date = match self.date {
            Some(d) => d,
            None => BronzeDate::parse(part_key(metadata, PART_DATE)?)?,
        };
        // The object's key-value metadata: the part's own keys, not the routing ones.
        let mut kv: Vec<(&str, &str)> = metadata
            .iter()
            .filter(|(k, _)| ![PART_SOURCE, PART_OBJECT, PART_DATE].contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        kv.sort_unstable();
        // The table's columns without the routing metadata, so a retried part has the same bytes.
        let plain = RecordBatch::try_new(
            Arc::new(Schema::new(schema.fields().clone())),
            rows.columns().to_vec(),
        )
        .map_err(|e| RuntimeError::Stage {
            stage: "sink",
            message: format!("{object}: {e}"),
        })?;
        let outcome = self
            .writer
            .put_parquet(source, date, object, &[plain], &kv)
            .await?;
        let path = match outcome {
            PutOutcome::Created { bytes, path } => {
                self.counts.created.fetch_add(1, Ordering::Relaxed);
                self.counts.bytes.fetch_add(bytes, Ordering::Relaxed);
                path
            }
            PutOutcome::AlreadyPresent { path } => {
                self.counts.present.fetch_add(1, Ordering::Relaxed);
                path
            }
        };
        if metadata.get("strata.pg.mode").map(String::as_str) == Some("full") {
            // `full-<stamp>-c…-p…`: the load is the part's mode and snapshot stamp.
            let load = object.splitn(3, '-').take(2).collect::<Vec<_>>().join("-");
            let marker = self
                .full_loads
                .entry(source.to_string())
                .or_insert_with(|| LoadMarker {
                    load,
                    snapshot_time: metadata
                        .get("strata.snapshot_time")
                        .cloned()
                        .unwrap_or_default(),
                    objects: Vec::new(),
                    rows: 0,
                });
            if !marker.objects.contains(&path) {
                marker.objects.push(path);
                marker.rows += rows.num_rows() as u64;
            }
        }
        if let Ok(mut folders) = self.counts.folders.lock() {
            folders.insert(format!("bronze/source={source}/date={date}"));
        }
        Ok(())
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        Err(RuntimeError::Stage {
            stage: "sink",
            message: format!(
                "a database load has no quarantine, yet {} records were sent to it",
                rows.num_rows()
            ),
        })
    }
}

#[async_trait::async_trait]
impl Committer for BronzePartsSink {
    async fn committed(&mut self) -> Result<Committed> {
        // Every run reads a new snapshot; the watermarks live in the state file, which the
        // loader reads while planning.
        Ok(Committed::default())
    }

    async fn commit(&mut self, position: &Position, _state: StateUpdate) -> Result<CommitReport> {
        let watermarks = watermarks_of(position);
        if !self.dry_run
            && !watermarks.is_empty()
            && let Some(path) = &self.state_file
        {
            WatermarkState {
                version: 1,
                tables: watermarks,
            }
            .store(path)?;
            self.counts.state_stored.store(true, Ordering::Relaxed);
        }
        // Every part is stored: the full loads are complete.
        for (source, marker) in std::mem::take(&mut self.full_loads) {
            if self.dry_run {
                continue;
            }
            let path = self.writer.put_load_marker(&source, &marker).await?;
            if let Ok(mut markers) = self.counts.markers.lock() {
                markers.push(path);
            }
        }
        let rows = std::mem::take(&mut self.staged_rows);
        Ok(CommitReport {
            rows,
            quarantined: 0,
            covers: position.to_json(),
            units: 0,
            conflicts: 0,
        })
    }
}
