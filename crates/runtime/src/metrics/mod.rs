//! Prometheus metrics of a Strata process: one registry, filled by [`DriverMetrics`] hooks (one
//! per pipeline run) and by model runs, exposed by [`export`]: `GET /metrics` for long-running
//! commands, a textfile (node_exporter's textfile collector) or a Pushgateway for batch jobs.
//!
//! Names follow `strata_<component>_<what>_<unit>`: `strata_pipeline_records_read_total`,
//! `strata_pipeline_commit_duration_seconds`, `strata_model_rows_written`. Pipeline series carry
//! a `pipeline` label (`batch.<table>`, `stream.<pipeline>`), model series a `model` label, so
//! one registry serves a process that runs many; neither is `job`, which Prometheus and the
//! Pushgateway set themselves.

mod driver_hooks;
pub mod export;

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use driver_hooks::DriverMetrics;

/// Label pairs of a series.
pub type Labels = Vec<(String, String)>;

/// A gauge holding seconds or a timestamp.
pub type FloatGauge = Gauge<f64, AtomicU64>;

fn seconds_histogram() -> Histogram {
    // 1 ms … ~33 min, doubling.
    Histogram::new(exponential_buckets(0.001, 2.0, 22))
}

/// Every metric a Strata process exports.
#[derive(Debug)]
pub struct StrataMetrics {
    registry: Registry,
    pub(crate) records_read: Family<Labels, Counter>,
    pub(crate) records_written: Family<Labels, Counter>,
    pub(crate) records_quarantined: Family<Labels, Counter>,
    pub(crate) batches: Family<Labels, Counter>,
    pub(crate) batch_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    pub(crate) commits: Family<Labels, Counter>,
    pub(crate) commit_conflicts: Family<Labels, Counter>,
    pub(crate) commit_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    pub(crate) last_commit: Family<Labels, FloatGauge>,
    pub(crate) event_age_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    pub(crate) source_lag_seconds: Family<Labels, FloatGauge>,
    pub(crate) source_lag_records: Family<Labels, Gauge>,
    pub(crate) cursor_age_seconds: Family<Labels, FloatGauge>,
    pub(crate) runs: Family<Labels, Counter>,
    pub(crate) run_seconds: Family<Labels, FloatGauge>,
    pub(crate) last_run_success: Family<Labels, FloatGauge>,
    pub(crate) step_quarantined: Family<Labels, Counter>,
    pub(crate) step_in: Family<Labels, Counter>,
    pub(crate) step_out: Family<Labels, Counter>,
    pub(crate) step_dropped: Family<Labels, Counter>,
    pub(crate) expectation_failed: Family<Labels, Counter>,
    pub(crate) model_runs: Family<Labels, Counter>,
    pub(crate) model_rows: Family<Labels, Gauge>,
    pub(crate) model_seconds: Family<Labels, FloatGauge>,
    pub(crate) audits_failed: Family<Labels, Counter>,
    pub(crate) lineage_dropped: Family<Labels, FloatGauge>,
}

impl Default for StrataMetrics {
    fn default() -> Self {
        let hist = || {
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram as fn() -> Histogram,
            )
        };
        let mut m = StrataMetrics {
            records_read: Family::default(),
            records_written: Family::default(),
            records_quarantined: Family::default(),
            batches: Family::default(),
            batch_seconds: hist(),
            commits: Family::default(),
            commit_conflicts: Family::default(),
            commit_seconds: hist(),
            last_commit: Family::default(),
            event_age_seconds: hist(),
            source_lag_seconds: Family::default(),
            source_lag_records: Family::default(),
            cursor_age_seconds: Family::default(),
            runs: Family::default(),
            run_seconds: Family::default(),
            last_run_success: Family::default(),
            step_quarantined: Family::default(),
            step_in: Family::default(),
            step_out: Family::default(),
            step_dropped: Family::default(),
            expectation_failed: Family::default(),
            model_runs: Family::default(),
            model_rows: Family::default(),
            model_seconds: Family::default(),
            audits_failed: Family::default(),
            lineage_dropped: Family::default(),
            registry: Registry::with_prefix("strata"),
        };
        let r = &mut m.registry;
        r.register(
            "pipeline_records_read",
            "Input records read",
            m.records_read.clone(),
        );
        r.register(
            "pipeline_records_written",
            "Rows the pipeline output (visible after the next commit)",
            m.records_written.clone(),
        );
        r.register(
            "pipeline_records_quarantined",
            "Records quarantined",
            m.records_quarantined.clone(),
        );
        r.register(
            "pipeline_batches",
            "Input batches processed",
            m.batches.clone(),
        );
        r.register(
            "pipeline_batch_duration_seconds",
            "Time one input batch spent in the pipeline",
            m.batch_seconds.clone(),
        );
        r.register("pipeline_commits", "Commits made", m.commits.clone());
        r.register(
            "pipeline_commit_conflicts",
            "Commit attempts refused because another writer committed first (each retried)",
            m.commit_conflicts.clone(),
        );
        r.register(
            "pipeline_commit_duration_seconds",
            "Time one commit took (output, positions and state, atomically)",
            m.commit_seconds.clone(),
        );
        r.register(
            "pipeline_last_commit_timestamp_seconds",
            "Unix time of the last commit: the output's freshness",
            m.last_commit.clone(),
        );
        r.register(
            "pipeline_event_age_seconds",
            "Age of a batch's oldest input record (its Kafka timestamp) when the pipeline finished it",
            m.event_age_seconds.clone(),
        );
        r.register(
            "source_lag_seconds",
            "Age of the newest input record of the last batch: how far the job runs behind its source",
            m.source_lag_seconds.clone(),
        );
        r.register(
            "source_lag_records",
            "Records not read yet, by pipeline, topic and partition (from the consumer's last fetch)",
            m.source_lag_records.clone(),
        );
        r.register(
            "poller_cursor_age_seconds",
            "Time since the API poller's cursor last moved (new records arrived)",
            m.cursor_age_seconds.clone(),
        );
        r.register("pipeline_runs", "Runs ended, by outcome", m.runs.clone());
        r.register(
            "pipeline_run_duration_seconds",
            "Wall time of the job's last run",
            m.run_seconds.clone(),
        );
        r.register(
            "pipeline_last_run_success",
            "1 when the job's last run succeeded, 0 when it failed",
            m.last_run_success.clone(),
        );
        r.register(
            "pipeline_step_quarantined_records",
            "Records quarantined by each step, by pipeline and step (counted per batch)",
            m.step_quarantined.clone(),
        );
        r.register(
            "pipeline_step_records_in",
            "Rows into each step, by pipeline and step (counted per batch)",
            m.step_in.clone(),
        );
        r.register(
            "pipeline_step_records_out",
            "Rows out of each step, by pipeline and step (counted per batch)",
            m.step_out.clone(),
        );
        r.register(
            "pipeline_step_records_dropped",
            "Rows each step dropped on purpose (filters, duplicates), counted per batch",
            m.step_dropped.clone(),
        );
        r.register(
            "pipeline_expectation_failed_records",
            "Rows failing each expectation rule, by pipeline, step and rule (counted per batch)",
            m.expectation_failed.clone(),
        );
        r.register(
            "model_runs",
            "Model runs, by model and status",
            m.model_runs.clone(),
        );
        r.register(
            "model_rows_written",
            "Rows the model's last run wrote (its interval's, for an incremental model)",
            m.model_rows.clone(),
        );
        r.register(
            "model_run_duration_seconds",
            "Wall time of the model's last run",
            m.model_seconds.clone(),
        );
        r.register(
            "model_audits_failed",
            "Audits that failed, by model and audit",
            m.audits_failed.clone(),
        );
        r.register(
            "lineage_events_dropped",
            "OpenLineage events dropped (endpoint down past the buffer and retries)",
            m.lineage_dropped.clone(),
        );
        m
    }
}

/// `[("pipeline", name)]`.
pub(crate) fn pipeline(name: &str) -> Labels {
    vec![("pipeline".to_string(), name.to_string())]
}

/// `[("model", name)]`.
fn model_label(name: &str) -> Labels {
    vec![("model".to_string(), name.to_string())]
}

impl StrataMetrics {
    /// The registry in the OpenMetrics text format (what `GET /metrics` answers).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Hooks that count the runs of `pipeline` into these metrics.
    pub fn driver_hooks(self: &std::sync::Arc<Self>, pipeline: &str) -> DriverMetrics {
        DriverMetrics::new(self.clone(), pipeline)
    }

    /// Records one model's run: its status (`published`, `audit_failed`, `failed`,
    /// `skipped`), its rows when published, its wall time and failed audits.
    pub fn model_run(
        &self,
        model: &str,
        status: &str,
        rows: Option<u64>,
        seconds: f64,
        failed_audits: &[String],
    ) {
        let mut labels = model_label(model);
        labels.push(("status".to_string(), status.to_string()));
        self.model_runs.get_or_create(&labels).inc();
        if let Some(rows) = rows {
            self.model_rows
                .get_or_create(&model_label(model))
                .set(i64::try_from(rows).unwrap_or(i64::MAX));
        }
        self.model_seconds
            .get_or_create(&model_label(model))
            .set(seconds);
        for audit in failed_audits {
            let mut labels = model_label(model);
            labels.push(("audit".to_string(), audit.clone()));
            self.audits_failed.get_or_create(&labels).inc();
        }
    }

    /// Sets `strata_source_lag_seconds` of `pipeline` from a source that knows its own lag
    /// (the binlog reader's event times).
    pub fn set_source_lag(&self, pipeline_name: &str, seconds: f64) {
        self.source_lag_seconds
            .get_or_create(&pipeline(pipeline_name))
            .set(seconds);
    }

    /// Sets `strata_poller_cursor_age_seconds` of `pipeline`.
    pub fn set_cursor_age(&self, pipeline_name: &str, seconds: f64) {
        self.cursor_age_seconds
            .get_or_create(&pipeline(pipeline_name))
            .set(seconds);
    }

    /// Sets the lineage emitter's dropped-event count.
    pub fn lineage_dropped(&self, dropped: u64) {
        // Counts stay far below 2⁵³: exact in an f64.
        self.lineage_dropped
            .get_or_create(&Vec::new())
            .set(dropped as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_runs_render_with_the_strata_prefix_and_labels() {
        let m = StrataMetrics::default();
        m.model_run("fact_orders", "published", Some(42), 0.5, &[]);
        m.model_run(
            "agg_x",
            "audit_failed",
            None,
            0.1,
            &["not_null_id".to_string()],
        );
        let text = m.render();
        assert!(
            text.contains(r#"strata_model_runs_total{model="fact_orders",status="published"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"strata_model_rows_written{model="fact_orders"} 42"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"strata_model_audits_failed_total{model="agg_x",audit="not_null_id"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
