//! [`DriverHooks`] that count one pipeline run into [`StrataMetrics`]: records read, written and
//! quarantined, batch and commit durations, freshness, event age, source lag, and each step's
//! rows in / out / dropped / quarantined and expectation failures while it runs; the outcome and
//! wall time when it ends.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use strata_core::StepMetrics;

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
    /// Per step, what the batches already counted: the run's totals at the end add only the
    /// rest (rows a final flush produced), so nothing is counted twice.
    counted: std::sync::Mutex<HashMap<String, StepMetrics>>,
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
            counted: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Counts `step`'s rows beyond what was already counted for it.
    fn count_step(&self, step: &StepMetrics, counted: &mut HashMap<String, StepMetrics>) {
        let m = &self.metrics;
        let seen = counted
            .entry(step.step.clone())
            .or_insert_with(|| StepMetrics {
                step: step.step.clone(),
                ..Default::default()
            });
        let labels = self.with("step", &step.step);
        let more = |total: u64, seen: &mut u64| {
            let d = total.saturating_sub(*seen);
            *seen = (*seen).max(total);
            d
        };
        m.step_in
            .get_or_create(&labels)
            .inc_by(more(step.rows_in, &mut seen.rows_in));
        m.step_out
            .get_or_create(&labels)
            .inc_by(more(step.rows_out, &mut seen.rows_out));
        m.step_dropped
            .get_or_create(&labels)
            .inc_by(more(step.dropped, &mut seen.dropped));
        let quarantined = more(step.quarantined, &mut seen.quarantined);
        if quarantined > 0 {
            m.step_quarantined
                .get_or_create(&labels)
                .inc_by(quarantined);
        }
        for rule in &step.rules {
            let at = match seen.rules.iter().position(|r| r.rule == rule.rule) {
                Some(i) => i,
                None => {
                    seen.rules.push(strata_core::RuleMetrics {
                        rule: rule.rule.clone(),
                        ..Default::default()
                    });
                    seen.rules.len() - 1
                }
            };
            let mut rule_labels = labels.clone();
            rule_labels.push(("rule".to_string(), rule.rule.clone()));
            m.expectation_failed
                .get_or_create(&rule_labels)
                .inc_by(more(rule.failed, &mut seen.rules[at].failed));
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
        {
            // Batches add to the counted totals; `count_step` adds the batch's own counts.
            let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
            for step in &stats.steps {
                let so_far = counted.get(&step.step).cloned().unwrap_or_default();
                let mut total = step.clone();
                total.rows_in = total.rows_in.saturating_add(so_far.rows_in);
                total.rows_out = total.rows_out.saturating_add(so_far.rows_out);
                total.dropped = total.dropped.saturating_add(so_far.dropped);
                total.quarantined = total.quarantined.saturating_add(so_far.quarantined);
                for rule in &mut total.rules {
                    let before = so_far
                        .rules
                        .iter()
                        .find(|r| r.rule == rule.rule)
                        .map_or(0, |r| r.failed);
                    rule.failed = rule.failed.saturating_add(before);
                }
                self.count_step(&total, &mut counted);
            }
        }
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

    fn on_source_lag(&self, lag: &crate::contract::SourceLag) {
        for (partition, records) in &lag.partitions {
            let mut labels = self.with("topic", &lag.topic);
            labels.push(("partition".to_string(), partition.to_string()));
            self.metrics
                .source_lag_records
                .get_or_create(&labels)
                .set(*records);
        }
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
        let mut counted = self.counted.lock().unwrap_or_else(|p| p.into_inner());
        for step in &report.metrics.steps {
            self.count_step(step, &mut counted);
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
            steps: vec![
                strata_core::StepMetrics {
                    step: "dedup".into(),
                    kind: "dedup".into(),
                    rows_in: 10,
                    rows_out: 7,
                    dropped: 3,
                    ..Default::default()
                },
                strata_core::StepMetrics {
                    step: "checks".into(),
                    kind: "expect".into(),
                    rows_in: 10,
                    rows_out: 10,
                    rules: vec![strata_core::RuleMetrics {
                        rule: "in_range".into(),
                        passed: 9,
                        failed: 1,
                    }],
                    ..Default::default()
                },
            ],
        });
        hooks.on_source_lag(&crate::contract::SourceLag {
            topic: "iot.events".into(),
            partitions: vec![(0, 7), (1, 0)],
        });
        // Steps are counted while the run goes on, not only when it ends.
        let text = metrics.render();
        for line in [
            r#"strata_pipeline_step_records_in_total{pipeline="stream.iot",step="dedup"} 10"#,
            r#"strata_pipeline_step_records_dropped_total{pipeline="stream.iot",step="dedup"} 3"#,
            r#"strata_pipeline_expectation_failed_records_total{pipeline="stream.iot",step="checks",rule="in_range"} 1"#,
            r#"strata_source_lag_records{pipeline="stream.iot",topic="iot.events",partition="0"} 7"#,
            r#"strata_source_lag_records{pipeline="stream.iot",topic="iot.events",partition="1"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
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
                // The run's totals: the batch above plus 2 rows a final flush added.
                steps: vec![strata_core::StepMetrics {
                    step: "dedup".into(),
                    kind: "dedup".into(),
                    rows_in: 12,
                    rows_out: 9,
                    dropped: 3,
                    ..Default::default()
                }],
                ..Default::default()
            },
        }));
        let text = metrics.render();
        for line in [
            r#"strata_pipeline_step_records_in_total{pipeline="stream.iot",step="dedup"} 12"#,
            r#"strata_pipeline_step_records_out_total{pipeline="stream.iot",step="dedup"} 9"#,
            r#"strata_pipeline_step_records_dropped_total{pipeline="stream.iot",step="dedup"} 3"#,
            r#"strata_pipeline_expectation_failed_records_total{pipeline="stream.iot",step="checks",rule="in_range"} 1"#,
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
