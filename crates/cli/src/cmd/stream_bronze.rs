//! `strata stream bronze`: Kafka topic → bronze, raw and complete, nothing lost or doubled.
//!
//! Each record becomes one NDJSON line: `{"partition","offset","timestamp","key","headers",
//! "value"}` where `value` is the record's own JSON text, byte for byte (a value that is not a
//! one-line JSON document is kept as `value_text`, non-UTF-8 bytes as `value_hex`, a tombstone as
//! `"value": null`). Files are cut per partition by record count or age and named after the
//! partition and offset range they hold (`kafka-p0003-<first>-<last>.ndjson.zst`), written
//! create-only. Wiring of the runtime's [`KafkaTopicSource`], a [`Passthrough`] and the
//! [`BronzeCopySink`] (whose file names are the committed positions) into the one driver loop.
//! Group offsets are committed after each commit, for monitoring.

use std::sync::Arc;
use std::time::Duration;

use strata_layers::lake::Lake;
use strata_runtime::sinks::BronzeCopySink;
use strata_runtime::sources::KafkaTopicSource;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Passthrough};

use super::stream::{KafkaArgs, shutdown_signal};
use super::stream_log::StreamLog;
use crate::Failure;

/// Flags of `stream bronze`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Lake root (folder, file:// or s3://).
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// Bronze source name. Default: the topic.
    #[arg(long)]
    pub source: Option<String>,
    /// Cut the files (one per partition) once this many records are staged.
    #[arg(long, default_value_t = 100_000)]
    pub file_records: usize,
    /// Cut the files at least this often while records flow (milliseconds).
    #[arg(long, default_value_t = 60_000)]
    pub file_age_ms: u64,
    /// Cut the files once the staged records hold this many bytes (in memory, all partitions
    /// together): the memory bound whatever the record sizes (100,000 records of 1 MiB would
    /// otherwise be staged whole).
    #[arg(long, default_value_t = 256 << 20)]
    pub file_bytes: u64,
    /// OpenLineage events: the job's run, and one run per commit point (its parent the job's).
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
    /// Prometheus metrics (`--metrics-addr` serves `/metrics` while it runs).
    #[command(flatten)]
    pub metrics: super::metrics_args::MetricsArgs,
}

/// Runs until idle (`--stop-when-idle-ms`), SIGTERM or Ctrl-C; staged records are written first.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let source_name = args
        .source
        .clone()
        .unwrap_or_else(|| args.kafka.input_topic.clone());
    let config = args.kafka.config()?;
    // The bronze files are the positions: read every partition explicitly (no group
    // rebalancing could hand a partition to another copier mid-file).
    let (assignment, instance) = args.kafka.explicit_assignment(&config)?;
    let group = args
        .kafka
        .group
        .clone()
        .unwrap_or_else(|| format!("strata-bronze-{source_name}"));
    let source = KafkaTopicSource::new(
        config,
        &args.kafka.input_topic,
        group,
        assignment,
        args.kafka.batching(),
    )
    .with_source_name(source_name.clone());
    let options = DriverOptions {
        // A commit writes one file per partition: the policy is the file size and age bound.
        commit: CommitPolicy::every(
            Duration::from_millis(args.file_age_ms),
            args.file_records as u64,
        )
        .with_max_bytes(args.file_bytes),
        channel_depth: 4,
        stop_when_idle: args.kafka.stop_when_idle_ms.map(Duration::from_millis),
        crash_after_commits: None,
    };
    let log = Arc::new(StreamLog::new(
        format!("stream bronze (instance {instance})"),
        format!("bronze/source={source_name}"),
    ));
    let job = format!("bronze.{source_name}");
    let export = args.metrics.start().await?;
    let emitter = Arc::new(strata_runtime::lineage::LineageEmitter::for_target(
        args.lineage.as_deref(),
    ));
    let bronze = format!(
        "{}/bronze/source={source_name}",
        args.lake.trim_end_matches('/')
    );
    let lineage = strata_runtime::lineage::EpochLineageHooks::new(
        emitter.clone(),
        strata_runtime::lineage::JobRun::new(job.clone(), "STREAMING", "JOB"),
        vec![args.kafka.topic_dataset(&args.kafka.input_topic)],
        vec![strata_runtime::lineage::dataset_for_location(&bronze)],
    );
    let hooks = strata_runtime::HookSet(vec![
        log,
        Arc::new(lineage),
        Arc::new(export.metrics.driver_hooks(&job)),
    ]);
    let outcome = Driver::new(
        source,
        Passthrough::new(format!("bronze copy of {}", args.kafka.input_topic)),
        BronzeCopySink::new(lake, &source_name),
        options,
    )
    .with_hooks(Arc::new(hooks))
    .run(shutdown_signal())
    .await;
    let lineage_stats = emitter.close(Duration::from_secs(5)).await;
    export.metrics.lineage_dropped(lineage_stats.dropped);
    export.finish(&job).await?;
    let report = outcome?;
    println!(
        "stopped: {} commits, {} records copied; positions {}",
        report.commits,
        report.metrics.rows_in,
        report
            .position
            .as_ref()
            .map(|p| p.to_json())
            .unwrap_or_else(|| "(none)".into())
    );
    Ok(())
}
