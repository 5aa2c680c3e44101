//! Where metrics, progress and lineage attach to a run: the driver calls these at each stage
//! boundary, from its own tasks, so a hook must be quick (count, send to a channel) and never
//! fail the run.

use std::time::Duration;

use crate::contract::CommitReport;
use crate::driver::RunReport;

/// What a run is about, given to [`DriverHooks::on_start`].
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The source's name.
    pub source: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// Whether the committer already held output (a resumed run).
    pub resumed: bool,
    /// [`crate::Source::describe`] after the seek.
    pub detail: String,
    /// [`crate::Source::units_left`] after the seek.
    pub units_left: Option<usize>,
}

/// One processed input batch.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    /// Input records.
    pub rows_in: u64,
    /// Output rows.
    pub rows_out: u64,
    /// Quarantined records.
    pub quarantined: u64,
    /// Time in the pipeline.
    pub elapsed: Duration,
    /// The oldest and newest input record times (Kafka timestamps, microseconds since the
    /// epoch) when the source carries them: for latency and lag metrics.
    pub input_times: Option<(i64, i64)>,
    /// What each step did with this batch (rows in, out, dropped, quarantined, rule results).
    pub steps: Vec<strata_core::StepMetrics>,
}

/// Callbacks of a run. Every method has an empty default.
pub trait DriverHooks: Send + Sync {
    /// Before the first batch, after the committed state was restored.
    fn on_start(&self, _info: &RunInfo) {}
    /// After each input batch went through the pipeline.
    fn on_batch(&self, _stats: &BatchStats) {}
    /// After each commit (from the sink's task).
    fn on_commit(&self, _report: &CommitReport, _elapsed: Duration) {}
    /// The source's lag in records, about once a second (from the reader's task).
    fn on_source_lag(&self, _lag: &crate::contract::SourceLag) {}
    /// At the end of the run, with its report or the error it stopped with.
    fn on_end(&self, _outcome: Result<&RunReport, &crate::error::RuntimeError>) {}
}

/// Hooks that do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl DriverHooks for NoHooks {}

/// Several hooks, called in order.
pub struct HookSet(pub Vec<std::sync::Arc<dyn DriverHooks>>);

impl DriverHooks for HookSet {
    fn on_start(&self, info: &RunInfo) {
        self.0.iter().for_each(|h| h.on_start(info));
    }
    fn on_batch(&self, stats: &BatchStats) {
        self.0.iter().for_each(|h| h.on_batch(stats));
    }
    fn on_commit(&self, report: &CommitReport, elapsed: Duration) {
        self.0.iter().for_each(|h| h.on_commit(report, elapsed));
    }
    fn on_end(&self, outcome: Result<&RunReport, &crate::error::RuntimeError>) {
        self.0.iter().for_each(|h| h.on_end(outcome));
    }
}
