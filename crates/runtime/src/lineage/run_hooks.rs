//! [`DriverHooks`] that emit the OpenLineage events of one pipeline run: START when the run
//! begins, COMPLETE with output statistics and data-quality results, or FAIL with the error.
//!
//! Data quality: the input dataset gets `dataQualityMetrics` (rows read) and
//! `dataQualityAssertions`, one per expectation rule (passed / failed counts in the
//! description) and one per step that quarantined rows (the quarantine count by reason).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_core::PipelineMetrics;

use super::event::{Assertion, Dataset, EventType, JobRun};
use super::transport::LineageEmitter;
use crate::contract::CommitReport;
use crate::driver::RunReport;
use crate::error::RuntimeError;
use crate::hooks::{DriverHooks, RunInfo};

/// Emits a run's START and COMPLETE / FAIL events.
#[derive(Debug)]
pub struct LineageHooks {
    emitter: Arc<LineageEmitter>,
    run: JobRun,
    inputs: Vec<Dataset>,
    outputs: Vec<Dataset>,
    /// Rows made visible by the run's commits.
    rows: AtomicU64,
}

impl LineageHooks {
    /// Hooks for `run`, reading `inputs` and writing `outputs` (their schema facets set).
    pub fn new(
        emitter: Arc<LineageEmitter>,
        run: JobRun,
        inputs: Vec<Dataset>,
        outputs: Vec<Dataset>,
    ) -> Self {
        LineageHooks {
            emitter,
            run,
            inputs,
            outputs,
            rows: AtomicU64::new(0),
        }
    }
}

/// The assertions a run's metrics make: each expectation rule, and each quarantining step.
pub fn quality_assertions(metrics: &PipelineMetrics) -> Vec<Assertion> {
    let mut found = Vec::new();
    for step in &metrics.steps {
        for rule in &step.rules {
            found.push(Assertion {
                kind: "expectation".to_string(),
                name: format!(
                    "{}.{}: {} passed, {} failed",
                    step.step, rule.rule, rule.passed, rule.failed
                ),
                success: rule.failed == 0,
                column: None,
                severity: "warn".to_string(),
            });
        }
        if step.quarantined > 0 || step.kind == "quarantine" {
            found.push(Assertion {
                kind: "quarantine".to_string(),
                name: format!(
                    "{} ({}): {} of {} rows quarantined",
                    step.step, step.kind, step.quarantined, step.rows_in
                ),
                success: step.quarantined == 0,
                column: None,
                severity: "warn".to_string(),
            });
        }
    }
    found
}

impl DriverHooks for LineageHooks {
    fn on_start(&self, _info: &RunInfo) {
        self.emitter.emit(
            self.run
                .event(EventType::Start, &self.inputs, &self.outputs, None),
        );
    }

    fn on_commit(&self, report: &CommitReport, _elapsed: Duration) {
        self.rows.fetch_add(report.rows, Ordering::Relaxed);
    }

    fn on_end(&self, outcome: Result<&RunReport, &RuntimeError>) {
        let rows = self.rows.load(Ordering::Relaxed);
        match outcome {
            Ok(report) => {
                let m = &report.metrics;
                let inputs: Vec<Dataset> = self
                    .inputs
                    .iter()
                    .cloned()
                    .map(|d| {
                        d.with_input_quality(m.rows_in, &[])
                            .with_input_assertions(&quality_assertions(m))
                    })
                    .collect();
                let outputs: Vec<Dataset> = self
                    .outputs
                    .iter()
                    .cloned()
                    .map(|d| d.with_output_statistics(rows, None, None))
                    .collect();
                self.emitter
                    .emit(self.run.event(EventType::Complete, &inputs, &outputs, None));
            }
            Err(e) => {
                self.emitter.emit(self.run.event(
                    EventType::Fail,
                    &self.inputs,
                    &self.outputs,
                    Some(&e.to_string()),
                ));
            }
        }
    }
}

/// Emits a streaming job's events: the long-running job is one run (START when it starts,
/// COMPLETE or FAIL when it stops), and each commit epoch is a run of its own, with the job's
/// run as its `parent`: START at the epoch's first batch, COMPLETE at its commit with the rows
/// it made visible.
#[derive(Debug)]
pub struct EpochLineageHooks {
    emitter: Arc<LineageEmitter>,
    job: JobRun,
    inputs: Vec<Dataset>,
    outputs: Vec<Dataset>,
    epoch: Mutex<Option<JobRun>>,
}

impl EpochLineageHooks {
    /// Hooks for the streaming `job`, reading `inputs` and writing `outputs`.
    pub fn new(
        emitter: Arc<LineageEmitter>,
        job: JobRun,
        inputs: Vec<Dataset>,
        outputs: Vec<Dataset>,
    ) -> Self {
        EpochLineageHooks {
            emitter,
            job,
            inputs,
            outputs,
            epoch: Mutex::default(),
        }
    }

    fn new_epoch(&self) -> JobRun {
        let mut epoch = JobRun::new(format!("{}.epoch", self.job.name), "STREAMING", "JOB");
        epoch.namespace = self.job.namespace.clone();
        epoch.parent = Some((
            self.job.namespace.clone(),
            self.job.name.clone(),
            self.job.run_id.clone(),
        ));
        self.emitter
            .emit(epoch.event(EventType::Start, &self.inputs, &self.outputs, None));
        epoch
    }
}

impl DriverHooks for EpochLineageHooks {
    fn on_start(&self, _info: &RunInfo) {
        self.emitter.emit(
            self.job
                .event(EventType::Start, &self.inputs, &self.outputs, None),
        );
    }

    fn on_batch(&self, stats: &crate::hooks::BatchStats) {
        if stats.rows_in == 0 {
            return;
        }
        if let Ok(mut epoch) = self.epoch.lock()
            && epoch.is_none()
        {
            *epoch = Some(self.new_epoch());
        }
    }

    fn on_commit(&self, report: &CommitReport, _elapsed: Duration) {
        let open = self.epoch.lock().ok().and_then(|mut e| e.take());
        let epoch = open.unwrap_or_else(|| self.new_epoch());
        let outputs: Vec<Dataset> = self
            .outputs
            .iter()
            .cloned()
            .map(|d| d.with_output_statistics(report.rows, None, None))
            .collect();
        self.emitter
            .emit(epoch.event(EventType::Complete, &self.inputs, &outputs, None));
    }

    fn on_end(&self, outcome: Result<&RunReport, &RuntimeError>) {
        let open = self.epoch.lock().ok().and_then(|mut e| e.take());
        let error = outcome.err().map(|e| e.to_string());
        if let Some(epoch) = open {
            // Read but not committed when the job stopped: that epoch did not complete.
            let message = error
                .clone()
                .unwrap_or_else(|| "stopped before this epoch's commit".to_string());
            self.emitter.emit(epoch.event(
                EventType::Fail,
                &self.inputs,
                &self.outputs,
                Some(&message),
            ));
        }
        let kind = if error.is_some() {
            EventType::Fail
        } else {
            EventType::Complete
        };
        self.emitter.emit(
            self.job
                .event(kind, &self.inputs, &self.outputs, error.as_deref()),
        );
    }
}
