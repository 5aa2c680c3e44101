//! [`DriverHooks`] that count one pipeline run into [`StrataMetrics`]: records read, written and
//! quarantined, batch and commit durations, freshness, event age and source lag while it runs;
//! the outcome, wall time, and quarantine and expectation counts per step when it ends.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Labels, StrataMetrics, pipeline};
use crate::contract::CommitReport;
use crate::driver::RunReport;
use crate::error::RuntimeError;
use crate::hooks::{BatchStats, DriverHooks, RunInfo};

/// Counts one pipeline's runs.
#[derive(Debug)]
pub struct DriverMetrics {
    metrics: Arc<StrataMetrics>,
    labels: Labels,
    started: std::sync::Mutex<Option<Instant>>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl DriverMetrics {
    /// Hooks counting into `metrics` under the label `pipeline=name`.
    pub fn new(metrics: Arc<StrataMetrics>, name: &str) -> Self {
        let labels = pipeline(name);
        // Series exist from the start, so a dashboard shows 0 rather than nothing.
        drop(metrics.records_read.get_or_create(&labels));
        drop(metrics.records_written.get_or_create(&labels));
        drop(metrics.records_quarantined.get_or_create(&labels));
        drop(metrics.commits.get_or_create(&labels));
        DriverMetrics {
            metrics,
            labels,
            started: std::sync::Mutex::new(None),
        }
    }

    fn with(&self, key: &str, value: &str) -> Labels {
        let mut labels = self.labels.clone();
        labels.push((key.to_string(), value.to_string()));
        labels
    }
}

impl DriverHooks for DriverMetrics {
    fn on_start(&self, _info: &RunInfo) {
        if let Ok(mut s) = self.started.lock() {
            *s = Some(Instant::now());
        }
    }

    fn on_batch(&self, stats: &BatchStats) {
        let m = &self.metrics;
        m.records_read
            .get_or_create(&self.labels)
            .inc_by(stats.rows_in);
        m.records_written
            .get_or_create(&self.labels)
            .inc_by(stats.rows_out);
        m.records_quarantined
            .get_or_create(&self.labels)
            .inc_by(stats.quarantined);
        m.batches.get_or_create(&self.labels).inc();
        m.batch_seconds
            .get_or_create(&self.labels)
            .observe(stats.elapsed.as_secs_f64());
        if let Some((oldest, newest)) = stats.input_times {
            let now = unix_now();
            // Microseconds to seconds; a record from the future counts as age 0.
            let age = |t: i64| (now - t as f64 / 1e6).max(0.0);
            m.event_age_seconds
                .get_or_create(&self.labels)
                .observe(age(oldest));
            m.source_lag_seconds
                .get_or_create(&self.labels)
                .set(age(newest));
        }
    }

    fn on_commit(&self, report: &CommitReport, elapsed: Duration) {
        let m = &self.metrics;
        m.commits.get_or_create(&self.labels).inc();
        m.commit_conflicts
            .get_or_create(&self.labels)
            .inc_by(report.conflicts);
        m.commit_seconds
            .get_or_create(&self.labels)
            .observe(elapsed.as_secs_f64());
        m.last_commit.get_or_create(&self.labels).set(unix_now());
    }

    fn on_end(&self, outcome: Result<&RunReport, &RuntimeError>) {
        let m = &self.metrics;
        let outcome_label = if outcome.is_ok() {
            "success"
        } else {
            "failure"
        };
        m.runs
            .get_or_create(&self.with("outcome", outcome_label))
            .inc();
        m.last_run_success
            .get_or_create(&self.labels)
            .set(if outcome.is_ok() { 1.0 } else { 0.0 });
        if let Some(started) = self.started.lock().ok().and_then(|s| *s) {
            m.run_seconds
                .get_or_create(&self.labels)
                .set(started.elapsed().as_secs_f64());
        }
        let Ok(report) = outcome else { return };
        for step in &report.metrics.steps {
            let labels = self.with("step", &step.step);
            m.step_in.get_or_create(&labels).inc_by(step.rows_in);
            m.step_out.get_or_create(&labels).inc_by(step.rows_out);
            m.step_dropped.get_or_create(&labels).inc_by(step.dropped);
            if step.quarantined > 0 {
                m.step_quarantined
                    .get_or_create(&self.with("step", &step.step))
                    .inc_by(step.quarantined);
            }
            for rule in &step.rules {
                let mut labels = self.with("step", &step.step);
                labels.push(("rule".to_string(), rule.rule.clone()));
                m.expectation_failed
                    .get_or_create(&labels)
                    .inc_by(rule.failed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_counted_under_its_pipeline_label() {
        let metrics = Arc::new(StrataMetrics::default());
        let hooks = metrics.driver_hooks("stream.iot");
        hooks.on_start(&RunInfo {
            source: "kafka".into(),
            pipeline: "iot".into(),
            resumed: false,
            detail: String::new(),
            units_left: None,
        });
        let now_micros = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros()),
        )
        .unwrap_or(i64::MAX);
        hooks.on_batch(&BatchStats {
            rows_in: 10,
            rows_out: 8,
            quarantined: 2,
            elapsed: Duration::from_millis(3),
            input_times: Some((now_micros - 5_000_000, now_micros - 1_000_000)),
        });
        hooks.on_commit(
            &CommitReport {
                rows: 8,
                quarantined: 2,
                covers: String::new(),
                units: 0,
                conflicts: 2,
            },
            Duration::from_millis(20),
        );
        hooks.on_end(Err(&RuntimeError::Stage {
            stage: "sink",
            message: "broker gone".into(),
        }));
        let text = metrics.render();
        for line in [
            r#"strata_pipeline_records_read_total{pipeline="stream.iot"} 10"#,
            r#"strata_pipeline_records_written_total{pipeline="stream.iot"} 8"#,
            r#"strata_pipeline_records_quarantined_total{pipeline="stream.iot"} 2"#,
            r#"strata_pipeline_commits_total{pipeline="stream.iot"} 1"#,
            r#"strata_pipeline_commit_conflicts_total{pipeline="stream.iot"} 2"#,
            r#"strata_pipeline_commit_duration_seconds_count{pipeline="stream.iot"} 1"#,
            r#"strata_pipeline_event_age_seconds_count{pipeline="stream.iot"} 1"#,
            r#"strata_pipeline_runs_total{pipeline="stream.iot",outcome="failure"} 1"#,
            r#"strata_pipeline_last_run_success{pipeline="stream.iot"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        // A finished run: per-step counts.
        hooks.on_end(Ok(&RunReport {
            stopped: crate::driver::StopReason::EndOfInput,
            commits: 1,
            position: None,
            uncommitted_rows: 0,
            metrics: strata_core::PipelineMetrics {
                steps: vec![strata_core::StepMetrics {
                    step: "dedup".into(),
                    kind: "dedup".into(),
                    rows_in: 10,
                    rows_out: 7,
                    dropped: 3,
                    ..Default::default()
                }],
                ..Default::default()
            },
        }));
        let text = metrics.render();
        for line in [
            r#"strata_pipeline_step_records_in_total{pipeline="stream.iot",step="dedup"} 10"#,
            r#"strata_pipeline_step_records_out_total{pipeline="stream.iot",step="dedup"} 7"#,
            r#"strata_pipeline_step_records_dropped_total{pipeline="stream.iot",step="dedup"} 3"#,
            r#"strata_pipeline_runs_total{pipeline="stream.iot",outcome="success"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        let lag = text
            .lines()
            .find(|l| l.starts_with("strata_source_lag_seconds{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(-1.0);
        assert!((0.9..30.0).contains(&lag), "lag {lag}\n{text}");
    }
}
