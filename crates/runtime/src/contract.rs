//! The contract every source and sink implements, so one driver loop runs them all.
//!
//! - A [`Source`] says what its batches look like, seeks to a committed [`Position`] and hands
//!   out batches with the position they reach. A position only where a commit may happen (the
//!   end of a file; every Kafka batch), `None` inside a unit that must commit whole.
//! - A [`Sink`] stages the pipeline's rows and quarantine; nothing staged is visible.
//! - A [`Committer`] says what is already committed (position + pipeline state) and commits the
//!   staged output, the position and the state atomically. It is usually the same object as the
//!   sink (a silver table stages data files and commits them with the summary).
//!
//! Batch is the same contract with a source that ends.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::position::Position;

/// What a source hands out next.
#[derive(Debug)]
pub enum Polled {
    /// A batch of input, and the position reached after it when a commit may happen there.
    Batch {
        /// The records (the source's schema).
        batch: RecordBatch,
        /// The position after this batch, or `None` inside a unit that commits whole.
        position: Option<Position>,
    },
    /// A position reached without new data (the end of a file whose batches were handed out).
    Reached(Position),
    /// Nothing new right now (a streaming source); the driver may commit or stop when idle.
    Idle,
    /// The input is exhausted (a batch source).
    End,
}

/// A source of record batches.
#[async_trait::async_trait]
pub trait Source: Send + 'static {
    /// A name for logs, metrics and lineage (`kafka://host/topic`, `bronze/source=iot`).
    fn name(&self) -> String;

    /// The schema of every batch (a pipeline is built against it).
    fn schema(&self) -> SchemaRef;

    /// What is left to read after [`Source::seek`], for humans (`8 bronze files, 5 already
    /// committed, 3 to read`); defaults to the name.
    fn describe(&self) -> String {
        self.name()
    }

    /// Units (files) left to read after [`Source::seek`], when the source knows.
    fn units_left(&self) -> Option<usize> {
        None
    }

    /// Positions the source after `committed` (what the committer already holds); `None`
    /// starts from the beginning.
    async fn seek(&mut self, committed: Option<&Position>) -> Result<()>;

    /// The next batch, idle or end.
    async fn next(&mut self) -> Result<Polled>;

    /// Told after a commit covering `committed` (e.g. to commit Kafka group offsets for
    /// monitoring); the committed output, not this, is what a restart resumes from.
    async fn acknowledge(&mut self, _committed: &Position) -> Result<()> {
        Ok(())
    }

    /// Records not read yet, per partition, when the source knows it cheaply (no request of
    /// its own: a Kafka consumer's last fetch tells it the end of each partition).
    fn lag(&self) -> Option<SourceLag> {
        None
    }
}

/// Records a source has not read yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceLag {
    /// What is read (a topic).
    pub topic: String,
    /// Records behind the end, per partition.
    pub partitions: Vec<(i32, i64)>,
}

/// Stages pipeline output; nothing staged is visible until a commit.
#[async_trait::async_trait]
pub trait Sink: Send + 'static {
    /// Stages good rows (the pipeline's output schema).
    async fn write(&mut self, rows: &RecordBatch) -> Result<()>;

    /// Stages quarantined records (the pipeline's quarantine schema).
    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()>;

    /// Called once after the last commit of a run that ended without error (close files,
    /// flush producers). Not called when the run failed: nothing staged becomes visible.
    async fn close(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What a committer holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The position everything committed covers.
    pub position: Option<Position>,
    /// The pipeline checkpoint at that position (the last full one, when deltas follow it).
    pub state: Option<Vec<u8>>,
    /// Deltas committed after `state`, oldest first (committers that accept deltas).
    pub state_deltas: Vec<Vec<u8>>,
}

/// The pipeline state a commit stores.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateUpdate {
    /// Checkpoint bytes.
    pub bytes: Vec<u8>,
    /// True when `bytes` only holds what changed since the previous commit's state (handed
    /// only to a committer whose [`Committer::accepts_state_deltas`] is true); false for a
    /// whole state, which replaces everything before it.
    pub delta: bool,
}

/// What one commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Rows made visible.
    pub rows: u64,
    /// Quarantined records made visible.
    pub quarantined: u64,
    /// A human description of what the commit covers (files, offsets).
    pub covers: String,
    /// Units of input (files) the commit covers; 0 for a streaming position.
    pub units: usize,
    /// Attempts refused because another writer committed first (retried on the new version).
    pub conflicts: u64,
}

/// Commits staged output with its position and pipeline state, atomically.
#[async_trait::async_trait]
pub trait Committer: Send + 'static {
    /// What is already committed (read once, before the driver seeks the source).
    async fn committed(&mut self) -> Result<Committed>;

    /// Whether this committer keeps a chain of state deltas after a full state (so a commit
    /// costs what changed, not the whole state); the driver then hands it deltas.
    fn accepts_state_deltas(&self) -> bool {
        false
    }

    /// Commits everything staged since the last commit, covering `position`, with the pipeline
    /// checkpoint `state` taken at that position.
    async fn commit(&mut self, position: &Position, state: StateUpdate) -> Result<CommitReport>;
}
