//! Two local Parquet files, rows and quarantine side by side (`strata transform`): written as
//! batches arrive, made visible (renamed into place) when the run closes.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use strata_layers::parquet_file::ParquetFileWriter;

use crate::contract::{CommitReport, Committed, Committer, Sink, StateUpdate};
use crate::error::Result;
use crate::position::Position;

/// Rows and quarantine into two Parquet files of a fresh run folder.
pub struct ParquetFilesSink {
    rows: Option<ParquetFileWriter>,
    quarantine: Option<ParquetFileWriter>,
    rows_path: PathBuf,
    quarantine_path: PathBuf,
    written: (u64, u64),
}

impl std::fmt::Debug for ParquetFilesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetFilesSink")
            .field("rows", &self.rows_path)
            .field("quarantine", &self.quarantine_path)
            .finish()
    }
}

impl ParquetFilesSink {
    /// Creates both files (never overwriting).
    pub fn create(
        rows_path: &Path,
        rows_schema: SchemaRef,
        quarantine_path: &Path,
        quarantine_schema: SchemaRef,
    ) -> Result<Self> {
        Ok(ParquetFilesSink {
            rows: Some(ParquetFileWriter::create(rows_path, rows_schema)?),
            quarantine: Some(ParquetFileWriter::create(
                quarantine_path,
                quarantine_schema,
            )?),
            rows_path: rows_path.to_path_buf(),
            quarantine_path: quarantine_path.to_path_buf(),
            written: (0, 0),
        })
    }
}

fn closed() -> crate::RuntimeError {
    crate::RuntimeError::Stage {
        stage: "sink",
        message: "the Parquet files are already closed".into(),
    }
}

#[async_trait::async_trait]
impl Sink for ParquetFilesSink {
    async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        self.rows.as_mut().ok_or_else(closed)?.write(rows)?;
        self.written.0 += rows.num_rows() as u64;
        Ok(())
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        self.quarantine.as_mut().ok_or_else(closed)?.write(rows)?;
        self.written.1 += rows.num_rows() as u64;
        Ok(())
    }

    async fn close(&mut self) -> Result<()> {
        if let Some(w) = self.rows.take() {
            w.close()?;
        }
        if let Some(w) = self.quarantine.take() {
            w.close()?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Committer for ParquetFilesSink {
    async fn committed(&mut self) -> Result<Committed> {
        // Every run writes a new folder: nothing is committed yet.
        Ok(Committed::default())
    }

    async fn commit(&mut self, position: &Position, _state: StateUpdate) -> Result<CommitReport> {
        // The files become visible only when closed; a run is one unit, so the last commit
        // (the end of input) closes them.
        let covers = match position {
            Position::Files { files } => files.join(", "),
            other => other.to_json(),
        };
        let report = CommitReport {
            rows: self.written.0,
            quarantined: self.written.1,
            units: position.units(),
            conflicts: 0,
            covers,
        };
        self.written = (0, 0);
        Ok(report)
    }
}
