//! Silver fed from files (`strata batch`): each commit covers whole bronze files.
//!
//! Exactly once across crashes: a commit stores the files it covers and the path of the
//! pipeline state after them in one atomic snapshot of the rows table. The quarantine and
//! `output.also` commits come first; if the process dies before the rows commit, the re-run
//! recomputes the files, finds them already covered there (skipped) and commits the rows. Two writers on the same
//! table: commits are compare-and-swaps on the version whose coverage was checked, so a file is
//! committed once; the writer that loses a rows commit stops with an error saying so.
//!
//! Commit cost does not grow with the table's age through the coverage check: the sink keeps
//! a [`CoverageIndex`] per table, so each commit reads only the snapshots added since the last.

use arrow::array::RecordBatch;
use strata_layers::silver::{CoverageIndex, SilverAppend};

use super::silver_tables::RowsWriter;

use super::silver_tables::SilverTables;
use crate::contract::{CommitReport, Committed, Committer, Sink, StateUpdate};
use crate::error::{Result, RuntimeError};
use crate::position::Position;

/// Stages into the silver tables; commits per set of whole files.
pub struct SilverFilesSink {
    tables: SilverTables,
    rows: Option<RowsWriter>,
    quarantine: Option<SilverAppend>,
    also: Vec<Option<RowsWriter>>,
    state_prefix: String,
    commits: usize,
    rows_covered: CoverageIndex,
    quarantine_covered: CoverageIndex,
    also_covered: Vec<CoverageIndex>,
}

impl std::fmt::Debug for SilverFilesSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SilverFilesSink")
            .field("table", &self.tables.name())
            .field("commits", &self.commits)
            .finish()
    }
}

impl SilverFilesSink {
    /// A sink over `tables`; `run_id` makes this run's checkpoint names unique.
    pub fn new(tables: SilverTables, run_id: u128) -> Self {
        let state_prefix = format!("catalog/state/{}/{run_id}", tables.name());
        let n = tables.also.len();
        SilverFilesSink {
            also: (0..n).map(|_| None).collect(),
            also_covered: (0..n).map(|_| CoverageIndex::default()).collect(),
            tables,
            rows: None,
            quarantine: None,
            state_prefix,
            commits: 0,
            rows_covered: CoverageIndex::default(),
            quarantine_covered: CoverageIndex::default(),
        }
    }
}

#[async_trait::async_trait]
impl Sink for SilverFilesSink {
    async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        if self.rows.is_none() {
            self.rows = Some(self.tables.start_rows().await?);
        }
        if let Some(w) = self.rows.as_mut() {
            w.write(rows).await?;
        }
        for i in 0..self.also.len() {
            if self.also[i].is_none() {
                self.also[i] = Some(self.tables.start_also(i).await?);
            }
            if let Some(w) = self.also[i].as_mut() {
                w.write(rows).await?;
            }
        }
        Ok(())
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        if self.quarantine.is_none() {
            self.quarantine = Some(self.tables.start_quarantine().await?);
        }
        if let Some(w) = self.quarantine.as_mut() {
            w.write(rows).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Committer for SilverFilesSink {
    async fn committed(&mut self) -> Result<Committed> {
        self.rows_covered.load(&self.tables.rows).await?;
        let covered = self.rows_covered.to_sorted();
        let (state, state_deltas) = self.tables.committed_state().await?;
        Ok(Committed {
            position: (!covered.is_empty()).then(|| Position::files(covered)),
            state,
            state_deltas,
        })
    }

    fn accepts_state_deltas(&self) -> bool {
        true
    }

    async fn commit(&mut self, position: &Position, state: StateUpdate) -> Result<CommitReport> {
        let Position::Files { files } = position else {
            return Err(RuntimeError::Protocol {
                table: self.tables.name(),
                problem: format!("a file-coverage table was handed {position:?}"),
                hint: "feed it from a file source",
            });
        };
        let quarantine = match self.quarantine.take() {
            Some(w) => w,
            None => self.tables.start_quarantine().await?,
        };
        let q = quarantine
            .commit_indexed(
                &self.tables.catalog,
                files,
                &[],
                &mut self.quarantine_covered,
            )
            .await?;
        self.tables.quarantine = q.table;
        for i in 0..self.also.len() {
            let writer = match self.also[i].take() {
                Some(w) => w,
                None => self.tables.start_also(i).await?,
            };
            let a = writer
                .commit_indexed(&self.tables.catalog, files, &[], &mut self.also_covered[i])
                .await?;
            self.tables.also[i].table = a.table;
        }
        let path = format!("{}-{:06}.ckpt", self.state_prefix, self.commits);
        let extra = self.tables.state_summary(path, state).await?;
        let rows = match self.rows.take() {
            Some(w) => w,
            None => self.tables.start_rows().await?,
        };
        let r = rows
            .commit_indexed(&self.tables.catalog, files, &extra, &mut self.rows_covered)
            .await?;
        self.tables.rows = r.table;
        let covers = files.join(", ");
        if r.report.skipped {
            return Err(RuntimeError::Protocol {
                table: self.tables.name(),
                problem: format!("another writer committed {covers} first; this run stops"),
                hint: "re-run to continue from the table's state",
            });
        }
        self.commits += 1;
        Ok(CommitReport {
            rows: r.report.rows,
            quarantined: q.report.rows,
            covers: format!("{covers}: {} data files", r.report.data_files),
            units: files.len(),
            conflicts: r.report.conflicts + q.report.conflicts,
        })
    }
}
