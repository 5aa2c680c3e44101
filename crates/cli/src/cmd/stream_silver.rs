//! `strata stream silver`: Kafka JSON topic → pipeline → silver Iceberg table (+ quarantine
//! table), exactly once — wiring of the runtime's [`KafkaTopicSource`] and [`SilverStreamSink`]
//! (positions, writer epochs and replay filter are documented on the sink) into its one driver
//! loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_core::{BuildContext, Pipeline};
use strata_layers::lake::Lake;
use strata_layers::silver::{CatalogConfig, SilverCatalog};
use strata_runtime::lineage::{EpochLineageHooks, JobRun, LineageEmitter, dataset_for_location};
use strata_runtime::sinks::{MemoryPlan, SilverStreamSink, SilverTables};
use strata_runtime::sources::KafkaTopicSource;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, HookSet, Source};

use super::stream::{KafkaArgs, shutdown_signal};
use super::stream_log::StreamLog;
use crate::Failure;

/// Flags of `stream silver`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Pipeline spec; its name is the silver table's name.
    #[arg(long, env = "STRATA_PIPELINE", hide_env_values = true)]
    pub pipeline: PathBuf,
    /// Lake root (folder, file:// or s3://); tables in `<lake>/catalog/warehouse`.
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// Catalog database (`sqlite:<file>` or `postgres://…`).
    #[arg(long, env = "STRATA_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,
    /// Commit at least this often (milliseconds) while data flows.
    #[arg(long, default_value_t = 5_000)]
    pub commit_interval_ms: u64,
    /// Commit after this many input records, whatever the interval.
    #[arg(long, default_value_t = 500_000)]
    pub commit_rows: u64,
    /// Memory budget in MiB for open Parquet files.
    #[arg(
        long,
        env = "STRATA_MEMORY_MB",
        hide_env_values = true,
        default_value_t = 1024
    )]
    pub memory_mb: usize,
    /// OpenLineage events: the job's run, and one run per commit epoch (its parent the job's).
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
    /// Prometheus metrics (`--metrics-addr` serves `/metrics` while it runs).
    #[command(flatten)]
    pub metrics: super::metrics_args::MetricsArgs,
}

/// Runs the driver until idle (`--stop-when-idle-ms`), SIGTERM or Ctrl-C.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let spec = super::load_spec(&args.pipeline)?;
    if !spec.output.full_load.is_upsert() {
        return Err(Failure::config(anyhow::anyhow!(
            "{}: output.full_load: replace mirrors whole full loads from bronze; a stream has no \
             loads to mirror. Run it with `strata batch`, or drop full_load",
            args.pipeline.display()
        )));
    }
    let kafka = args.kafka.config()?;
    // The table holds the positions, so partitions are assigned explicitly and reading starts
    // exactly there; without --partitions / --instance this writer reads them all.
    let (assignment, instance) = args.kafka.explicit_assignment(&kafka)?;
    let group = args
        .kafka
        .group
        .clone()
        .unwrap_or_else(|| format!("strata-{}", spec.name));
    let source = KafkaTopicSource::new(
        kafka,
        &args.kafka.input_topic,
        group,
        assignment,
        args.kafka.batching(),
    );
    let pipeline = Pipeline::build(&spec, source.schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let plan = MemoryPlan::new(args.memory_mb)?;
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let config =
        CatalogConfig::for_lake(&args.lake, args.catalog.as_deref()).map_err(Failure::config)?;
    let catalog = SilverCatalog::open(&config)
        .await
        .map_err(Failure::runtime)?;
    let output_table = catalog.table_location(&spec.name);
    let tables = SilverTables::open(
        catalog,
        lake,
        &pipeline,
        false,
        (plan.rows, plan.quarantine),
    )
    .await?;
    let options = DriverOptions {
        commit: CommitPolicy::every(
            Duration::from_millis(args.commit_interval_ms),
            args.commit_rows,
        ),
        channel_depth: plan.channel_depth,
        stop_when_idle: args.kafka.stop_when_idle_ms.map(Duration::from_millis),
        crash_after_commits: None,
    };
    let log = Arc::new(StreamLog::new(
        format!("stream silver `{}` (instance {instance})", spec.name),
        "silver".into(),
    ));
    let emitter = Arc::new(LineageEmitter::for_target(args.lineage.as_deref()));
    let topic = args.kafka.topic_dataset(&args.kafka.input_topic);
    let lineage = EpochLineageHooks::new(
        emitter.clone(),
        JobRun::new(format!("stream.{}", spec.name), "STREAMING", "JOB"),
        vec![topic],
        vec![dataset_for_location(&output_table)],
    );
    let job = format!("stream.{}", spec.name);
    let export = args.metrics.start().await?;
    let hooks = HookSet(vec![
        log.clone(),
        Arc::new(lineage),
        Arc::new(export.metrics.driver_hooks(&job)),
    ]);
    let outcome = Driver::new(source, pipeline, SilverStreamSink::new(tables), options)
        .with_hooks(Arc::new(hooks))
        .run(shutdown_signal())
        .await;
    let lineage_stats = emitter.close(Duration::from_secs(5)).await;
    export.metrics.lineage_dropped(lineage_stats.dropped);
    export.finish(&job).await?;
    let report = outcome?;
    let m = &report.metrics;
    println!(
        "stopped: {} commits, {} records in, {} out, {} quarantined, {} duplicates; positions {}",
        report.commits,
        m.rows_in,
        m.rows_out,
        m.quarantined,
        m.duplicates(),
        report
            .position
            .as_ref()
            .map(|p| p.to_json())
            .unwrap_or_else(|| "(none)".into())
    );
    Ok(())
}
