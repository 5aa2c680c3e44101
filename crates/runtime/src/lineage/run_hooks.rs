//! [`DriverHooks`] that emit the OpenLineage events of one pipeline run: START when the run
//! begins, COMPLETE with output statistics and data-quality results, or FAIL with the error.
//!
//! Data quality: the input dataset gets `dataQualityMetrics` (rows read) and
//! `dataQualityAssertions`, one per expectation rule (passed / failed counts in the
//! description) and one per step that quarantined rows (the quarantine count by reason).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_core::PipelineMetrics;

use super::event::{Assertion, Dataset, EventType, JobRun};
use super::transport::LineageEmitter;
use crate::contract::CommitReport;
use crate::driver::RunReport;
use crate::error::RuntimeError;
use crate::hooks::{DriverHooks, RunInfo};

#[derive(Debug, Default)]
struct Totals {
    rows: u64,
    commits: u64,
}

/// Emits a run's START and COMPLETE / FAIL events.
#[derive(Debug)]
pub struct LineageHooks {
    emitter: Arc<LineageEmitter>,
    run: JobRun,
    inputs: Vec<Dataset>,
    outputs: Vec<Dataset>,
    totals: Mutex<Totals>,
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
            totals: Mutex::default(),
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
        if let Ok(mut t) = self.totals.lock() {
            t.rows += report.rows;
            t.commits += 1;
        }
    }

    fn on_end(&self, outcome: Result<&RunReport, &RuntimeError>) {
        let rows = self.totals.lock().map(|t| t.rows).unwrap_or_default();
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
