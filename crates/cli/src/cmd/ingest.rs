//! `strata ingest postgres`: a consistent full (or incremental) load of PostgreSQL tables into
//! bronze, one Parquet object per chunk part.
//!
//! Objects land under `bronze/source=postgres.<db>.<table>/date=<load date>/` (schema other than
//! `public`: `postgres.<db>.<schema>.<table>`), named
//! `<mode>-<snapshot stamp>-c<chunk>-<range>-p<part>.parquet`, each carrying the snapshot time in
//! its key-value metadata (`strata.snapshot_time`). Puts are create-only: a chunk retried inside
//! the load re-creates the same bytes under the same name and is recognised ("already present");
//! a new run is a new snapshot and writes beside the old one, never over it. The load date is
//! the snapshot's UTC date unless `--date` says otherwise. Memory is bounded by `part_rows` per
//! reader (a larger chunk becomes several objects). Wiring only: [`PgLoadSource`] →
//! [`Passthrough`] → [`BronzePartsSink`] on the one driver, whose single commit at the end of the
//! load stores the incremental watermarks.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_runtime::lineage::{
    Dataset, JobRun, LineageEmitter, LineageHooks, dataset_at, dataset_for_location, url_path,
};

use indicatif::{ProgressBar, ProgressStyle};
use strata_connectors::ConnectorError;
use strata_connectors::postgres::{PgLoader, PgSourceConfig, Progress, bronze_source_name};
use strata_layers::bronze::{BronzeDate, BronzeWriter};
use strata_layers::lake::Lake;
use strata_runtime::sinks::BronzePartsSink;
use strata_runtime::sources::PgLoadSource;
use strata_runtime::sources::pg_load::ProgressFn;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Passthrough, RuntimeError};

use crate::Failure;

/// Sources `strata ingest` reads.
#[derive(Debug, clap::Subcommand)]
pub enum IngestCommand {
    /// Full (or incremental) load of PostgreSQL tables from one snapshot into Parquet bronze.
    Postgres(PostgresArgs),
    /// MySQL / MariaDB binlog CDC → Kafka, Debezium-compatible JSON (same as `strata cdc mysql`).
    MysqlCdc(super::mysql_cdc::Args),
    /// An HTTP API (X recent search preset, or any JSON API) polled into Kafka with a cursor.
    Http(super::http_poll::Args),
}

/// Flags of `ingest postgres`.
#[derive(Debug, clap::Args)]
pub struct PostgresArgs {
    /// The source config (YAML): connection, tables, parallelism (see docs/sources.md).
    #[arg(long, env = "STRATA_INGEST_CONFIG", hide_env_values = true)]
    pub config: PathBuf,
    /// Lake root (local path, file:// or s3://bucket/prefix).
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// Bronze date partition YYYY-MM-DD (default: the snapshot's UTC date).
    #[arg(long)]
    pub date: Option<String>,
    /// Parallel readers (overrides the config's `parallelism`).
    #[arg(long, env = "STRATA_PG_PARALLELISM", hide_env_values = true)]
    pub parallelism: Option<usize>,
    /// Watermark state file of incremental tables (overrides the config's `state_file`).
    #[arg(long, env = "STRATA_PG_STATE_FILE", hide_env_values = true)]
    pub state_file: Option<PathBuf>,
    /// Read and decode everything, write nothing (no bronze object, no watermark): checks access,
    /// types and read speed.
    #[arg(long)]
    pub dry_run: bool,
    /// OpenLineage events of the load (START, then COMPLETE or FAIL): an NDJSON file, or an
    /// HTTP endpoint.
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
    /// Prometheus metrics of the load (`--pushgateway`, `--metrics-file`).
    #[command(flatten)]
    pub metrics: super::metrics_args::MetricsArgs,
}

/// Runs an ingest command.
pub async fn run(command: &IngestCommand) -> Result<(), Failure> {
    match command {
        IngestCommand::Postgres(args) => postgres(args).await,
        IngestCommand::MysqlCdc(args) => super::mysql_cdc::run_mysql(args).await,
        IngestCommand::Http(args) => super::http_poll::run(args).await,
    }
}

/// Bad config, refused credentials / unknown database, unknown tables / columns and missing
/// privileges are for the user to fix (exit 2); everything else — an unreachable server included
/// — is a runtime failure (exit 1).
fn failure(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::PgConfig { .. }
        | ConnectorError::PgConnect {
            retryable: false, ..
        }
        | ConnectorError::PgTableNotFound { .. }
        | ConnectorError::PgColumn { .. }
        | ConnectorError::PgPermission { .. } => Failure::config(e),
        _ => Failure::runtime(e),
    }
}

fn run_failure(e: RuntimeError) -> Failure {
    match e {
        RuntimeError::Connector(e) => failure(*e),
        other => other.into(),
    }
}

/// The tables a load reads (`postgres://host:port` + `db.schema.table`; no credentials) and the
/// bronze sources it writes.
fn pg_lineage(config: &PgSourceConfig, lake: &str) -> (Vec<Dataset>, Vec<Dataset>) {
    let c = &config.connection;
    let url = c.url.clone().unwrap_or_else(|| {
        format!(
            "postgres://{}:{}",
            c.host.as_deref().unwrap_or("localhost"),
            c.port.unwrap_or(5432)
        )
    });
    let database = c
        .database
        .clone()
        .or_else(|| {
            c.url
                .as_deref()
                .map(|u| url_path(u).trim_start_matches('/').to_string())
                .filter(|d| !d.is_empty())
        })
        .or_else(|| c.user.clone())
        .unwrap_or_else(|| "postgres".to_string());
    let inputs = config
        .tables
        .iter()
        .map(|t| dataset_at(&url, format!("{database}.{}.{}", t.schema, t.name)))
        .collect();
    let outputs = config
        .tables
        .iter()
        .map(|t| {
            dataset_for_location(&format!(
                "{}/bronze/source={}",
                lake.trim_end_matches('/'),
                bronze_source_name(&database, &t.schema, &t.name)
            ))
        })
        .collect();
    (inputs, outputs)
}

/// The load's progress: a spinner line on a terminal, else a plain line every 5 s (and the
/// final one).
fn progress_printer(bar: Option<ProgressBar>) -> ProgressFn {
    let last_line = Mutex::new(Instant::now());
    Arc::new(move |p: &Progress| {
        let line = format!(
            "{} rows · {:.0} rows/s · chunks {}/{}{}",
            p.rows,
            p.rows_per_sec,
            p.chunks_done,
            p.chunks_total,
            if p.retries > 0 {
                format!(" · {} retries", p.retries)
            } else {
                String::new()
            }
        );
        match &bar {
            Some(bar) => bar.set_message(line),
            None => {
                if let Ok(mut last) = last_line.lock()
                    && (last.elapsed() >= Duration::from_secs(5) || p.chunks_done == p.chunks_total)
                {
                    *last = Instant::now();
                    eprintln!("progress: {line}");
                }
            }
        }
    })
}

async fn postgres(args: &PostgresArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        Failure::config(anyhow::anyhow!(
            "cannot read config `{}`: {e}",
            args.config.display()
        ))
    })?;
    let mut config = PgSourceConfig::from_yaml(&text)
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.config.display())))?;
    if let Some(p) = args.parallelism {
        config.parallelism = p;
    }
    if let Some(s) = &args.state_file {
        config.state_file = Some(s.clone());
    }
    let date = args
        .date
        .as_deref()
        .map(BronzeDate::parse)
        .transpose()
        .map_err(Failure::config)?;
    let state_path = config.state_file.clone();
    let (lineage_inputs, lineage_outputs) = pg_lineage(&config, &args.lake);
    let loader = PgLoader::new(config)
        .map_err(failure)?
        .with_dry_run(args.dry_run);
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let sink = BronzePartsSink::new(
        BronzeWriter::new(lake),
        date,
        state_path.clone(),
        args.dry_run,
    );
    let counts = sink.counts();

    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let source = PgLoadSource::new(loader, progress_printer(bar.clone()));
    let loaded = source.report();
    // One unit: the only commit is at the end of the load (the watermarks).
    let options = DriverOptions {
        commit: CommitPolicy::at_end(),
        channel_depth: 2,
        stop_when_idle: None,
        crash_after_commits: None,
    };
    let job = "ingest.postgres";
    let export = args.metrics.start().await?;
    let emitter = Arc::new(LineageEmitter::for_target(args.lineage.as_deref()));
    let lineage = LineageHooks::new(
        emitter.clone(),
        JobRun::new(job, "BATCH", "JOB"),
        lineage_inputs,
        lineage_outputs,
    );
    let hooks = strata_runtime::HookSet(vec![
        Arc::new(lineage),
        Arc::new(export.metrics.driver_hooks(job)),
    ]);
    let result = Driver::new(source, Passthrough::new("ingest postgres"), sink, options)
        .with_hooks(Arc::new(hooks))
        .run(super::stream::shutdown_signal())
        .await;
    let lineage_stats = emitter.close(Duration::from_secs(5)).await;
    export.metrics.lineage_dropped(lineage_stats.dropped);
    export.finish(job).await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let run = result.map_err(run_failure)?;
    let report = loaded.lock().ok().and_then(|mut r| r.take());
    let Some(report) = report else {
        // Stopped (SIGTERM) before the load ended: nothing was committed.
        eprintln!(
            "ingest postgres: stopped ({:?}) before the load ended: {} objects written, no \
             watermark stored; the next run reads everything again from a new snapshot",
            run.stopped,
            counts.created.load(Ordering::Relaxed)
        );
        return Err(Failure::runtime(anyhow::anyhow!(
            "the load was interrupted"
        )));
    };
    println!(
        "snapshot {} (database `{}`, role `{}`)",
        report.snapshot.time, report.snapshot.database, report.snapshot.user
    );
    for t in &report.tables {
        let watermark = match &t.watermark {
            Some((from, to)) => format!(
                ", watermark {} → {to}",
                from.as_deref().unwrap_or("(first run)")
            ),
            None => String::new(),
        };
        println!(
            "  {}: {} rows in {} chunks, {} parts{watermark}",
            t.table, t.rows, t.chunks, t.parts
        );
    }
    if let Ok(folders) = counts.folders.lock() {
        for s in folders.iter() {
            println!("  → {s}/");
        }
    }
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    println!(
        "ingest postgres: {} rows in {:.2} s ({:.0} rows/s), {} objects created ({} bytes), {} already present, {} chunk retries",
        report.rows,
        secs,
        report.rows as f64 / secs,
        counts.created.load(Ordering::Relaxed),
        counts.bytes.load(Ordering::Relaxed),
        counts.present.load(Ordering::Relaxed),
        report.retries
    );
    if args.dry_run {
        println!("dry run: nothing was written (no bronze object, no watermark)");
    }
    if counts.state_stored.load(Ordering::Relaxed)
        && let Some(state) = &state_path
    {
        println!("watermarks stored in {}", state.display());
    }
    Ok(())
}
