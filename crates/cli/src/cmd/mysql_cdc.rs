//! `strata cdc mysql --config <yaml>`: MySQL / MariaDB binlog CDC → Kafka JSON topics
//! `<topic_prefix>.<db>.<table>` (Debezium envelope, keyed by primary key, tombstones after
//! deletes), the position saved in the config's `state_file` after every acknowledged batch.
//! Before streaming, the output topics are read back so that events a killed run delivered but
//! could not record are not sent again (exactly-once across a crash; `mysql_cdc::resume`).
//! Runs until SIGTERM / Ctrl-C (stopping between batches, the last one acknowledged and its
//! position saved), `--stop-when-idle-ms`, or the end of an `initial_only` snapshot; every stop
//! logs what was delivered and the position reached.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use strata_runtime::lineage::{
    Dataset, JobRun, LineageEmitter, LineageHooks, dataset_at, dataset_for_location, kafka_dataset,
};

use clap::{Args as ClapArgs, Subcommand};
use strata_connectors::ConnectorError;
use strata_connectors::kafka::KafkaLayers;
use strata_connectors::mysql_cdc::MysqlCdcConfig;
use strata_runtime::sinks::kafka_records::PositionFile;
use strata_runtime::sources::mysql_cdc::{CdcStateFile, describe};
use strata_runtime::sources::open_mysql_cdc;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Passthrough, RuntimeError};

use super::stream_log::StreamLog;
use crate::Failure;

/// `strata cdc …`.
#[derive(Debug, Subcommand)]
pub enum CdcCommand {
    /// MySQL / MariaDB binlog → Kafka (Debezium-compatible JSON).
    Mysql(Args),
}

/// Flags of `strata cdc mysql`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The source config (YAML: url, tables, state_file, kafka_brokers, topic_prefix, …).
    #[arg(long, env = "STRATA_CDC_CONFIG", hide_env_values = true)]
    pub config: PathBuf,
    /// Stop after this many milliseconds without a change (default: run forever).
    #[arg(long, env = "STRATA_CDC_STOP_WHEN_IDLE_MS", hide_env_values = true)]
    pub stop_when_idle_ms: Option<u64>,
    /// Kafka bootstrap servers (overrides `kafka_brokers` and any `bootstrap.servers`).
    #[arg(long, env = "STRATA_KAFKA_BROKERS", hide_env_values = true)]
    pub brokers: Option<String>,
    /// Read archived binlog files (a folder of them, one file, or `s3://bucket/prefix/` with
    /// the `AWS_*` environment) instead of a server, to their end: a backfill after the server
    /// purged its binlogs (overrides `binlog_files`).
    #[arg(long, value_name = "DIR|FILE|s3://BUCKET/PREFIX")]
    pub binlog_files: Option<PathBuf>,
    /// `CREATE TABLE` statements for tables whose binlog has no column names and whose DDL is
    /// not in the files (`mysqldump --no-data` output; overrides `schema_ddl`).
    #[arg(long, value_name = "FILE.sql")]
    pub schema_ddl: Option<PathBuf>,
    /// Kafka properties over the config's `kafka_properties`.
    #[command(flatten)]
    pub kafka: super::stream::KafkaProfileArgs,
    /// OpenLineage events of the run (START, then COMPLETE or FAIL when it stops): an NDJSON
    /// file, or an HTTP endpoint.
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
    /// Prometheus metrics (`--metrics-addr` serves `/metrics` while it runs).
    #[command(flatten)]
    pub metrics: super::metrics_args::MetricsArgs,
}

fn failure(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::MysqlConfig { .. }
        | ConnectorError::MysqlSetting { .. }
        | ConnectorError::MysqlPrivilege { .. }
        | ConnectorError::MysqlTableNotFound { .. } => Failure::config(e),
        _ => Failure::runtime(e),
    }
}

fn run_failure(e: RuntimeError) -> Failure {
    match e {
        RuntimeError::Connector(e) => failure(*e),
        other => other.into(),
    }
}

/// Runs the command.
pub async fn run(cmd: &CdcCommand) -> Result<(), Failure> {
    let CdcCommand::Mysql(args) = cmd;
    run_mysql(args).await
}

/// Runs `cdc mysql` (also reachable as `ingest mysql-cdc`).
pub async fn run_mysql(args: &Args) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        Failure::config(anyhow::anyhow!(
            "cannot read `{}`: {e}",
            args.config.display()
        ))
    })?;
    let mut config = MysqlCdcConfig::parse_yaml(&text).map_err(failure)?;
    if let Some(files) = &args.binlog_files {
        config.binlog_files = Some(files.clone());
    }
    if let Some(ddl) = &args.schema_ddl {
        config.schema_ddl = Some(ddl.clone());
    }
    config.validate().map_err(failure)?;
    let (brokers, properties) = args
        .kafka
        .layers(
            KafkaLayers::new(
                config.kafka_brokers.clone(),
                config.kafka_properties.clone(),
            ),
            args.brokers.as_ref(),
        )?
        .into_parts();
    config.kafka_brokers = brokers;
    config.kafka_properties = properties;
    let prefix = config.topic_prefix.clone();
    // A server's tables are `mysql://host:port` + `db.table`; archived binlog files are named
    // by their folder (`file` + `<path>/db.table`).
    let lineage_inputs: Vec<Dataset> = config
        .tables
        .iter()
        .map(|t| match &config.binlog_files {
            Some(files) => {
                let folder = dataset_for_location(&files.display().to_string());
                Dataset {
                    name: format!("{}/{t}", folder.name.trim_end_matches('/')),
                    ..folder
                }
            }
            None => dataset_at(&config.url, t.clone()),
        })
        .collect();
    let brokers = config.kafka_brokers.clone().unwrap_or_default();
    let lineage_outputs: Vec<Dataset> = config
        .tables
        .iter()
        .map(|t| kafka_dataset(&brokers, format!("{prefix}.{t}")))
        .collect();
    let ingest = open_mysql_cdc(config, None).await.map_err(run_failure)?;
    for w in &ingest.warnings {
        eprintln!("warning: {w}");
    }
    let (found, read_back, partitions) = ingest.resumed;
    if found > 0 {
        eprintln!(
            "resume: {found} events after the saved position are already in Kafka (read back \
             {read_back} records from {partitions} partitions); they will be skipped"
        );
    }
    let (counts, produced) = (ingest.source.counts(), ingest.sink.produced());
    let state_file = CdcStateFile(ingest.state_file);
    let options = DriverOptions {
        // Save the position after every acknowledged batch: a crash repeats at most a batch,
        // and the read-back skips even that.
        commit: CommitPolicy::every(Duration::ZERO, 1),
        channel_depth: 2,
        stop_when_idle: args.stop_when_idle_ms.map(Duration::from_millis),
        crash_after_commits: None,
    };
    let log = StreamLog::new("cdc mysql".into(), format!("{prefix}.<db>.<table>"));
    let started = std::time::Instant::now();
    let job = format!("cdc.{prefix}");
    let export = args.metrics.start().await?;
    let emitter = Arc::new(LineageEmitter::for_target(args.lineage.as_deref()));
    let lineage = LineageHooks::new(
        emitter.clone(),
        JobRun::new(job.clone(), "STREAMING", "JOB"),
        lineage_inputs,
        lineage_outputs,
    );
    // CDC lag from the binlog events' own times, refreshed every second while it runs.
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    };
    let lag_updater = {
        let (metrics, counts, job) = (export.metrics.clone(), counts.clone(), job.clone());
        tokio::spawn(async move {
            loop {
                if let Some(lag) = counts.lag_seconds(now_ms()) {
                    metrics.set_source_lag(&job, lag);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let hooks = strata_runtime::HookSet(vec![
        Arc::new(log.without_commit_lines()),
        Arc::new(lineage),
        Arc::new(export.metrics.driver_hooks(&job)),
    ]);
    let result = Driver::new(
        ingest.source,
        Passthrough::new("cdc mysql".to_string()),
        ingest.sink,
        options,
    )
    .with_hooks(Arc::new(hooks))
    .run(super::stream::shutdown_signal())
    .await;
    let lineage_stats = emitter.close(Duration::from_secs(5)).await;
    export.metrics.lineage_dropped(lineage_stats.dropped);
    lag_updater.abort();
    if let Some(lag) = counts.lag_seconds(now_ms()) {
        export.metrics.set_source_lag(&job, lag);
    }
    export.finish(&job).await?;
    // Every stop (SIGTERM, idle, the end of an `initial_only` snapshot, an error): what was
    // delivered and where the next run resumes.
    let (events, skipped) = (
        counts.events.load(Ordering::Relaxed),
        counts.skipped.load(Ordering::Relaxed),
    );
    let saved = state_file.load().ok().flatten();
    tracing::info!(
        stopped = match &result {
            Ok(r) => format!("{:?}", r.stopped),
            Err(_) => "error".into(),
        },
        events,
        records = produced.load(Ordering::Relaxed),
        position = %describe(saved.as_ref()),
        state_file = %state_file.path().display(),
        "cdc stopped: {events} events delivered; resume: {skipped} of the {found} events found \
         already in Kafka were skipped; every delivered event is acknowledged by Kafka and the \
         state file holds the position after it",
    );
    let report = result.map_err(run_failure)?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "cdc mysql: {events} events ({} records with tombstones) in {secs:.1}s ({:.0} events/s), \
         {skipped} already in Kafka skipped, {} positions saved to {}",
        produced.load(Ordering::Relaxed),
        events as f64 / secs,
        report.commits,
        state_file.path().display()
    );
    Ok(())
}
