//! `strata batch`: bronze files of one source → pipeline → silver Iceberg table (+ its
//! `<table>_quarantine` table), one commit per bronze file — wiring of the runtime's
//! [`BronzeSource`] and [`SilverFilesSink`] into its one driver loop (the exactly-once protocol
//! is documented on the sink).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_core::spec::FullLoadMode;
use strata_core::{BuildContext, Pipeline};
use strata_layers::bronze::BronzeDate;
use strata_layers::lake::Lake;
use strata_layers::silver::{CatalogConfig, SilverCatalog};
use strata_runtime::lineage::{
    JobRun, LineageEmitter, LineageHooks, SchemaField, dataset_for_location,
};
use strata_runtime::sinks::{MemoryPlan, SilverFilesSink, SilverTables};
use strata_runtime::sources::BronzeSource;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, HookSet, Source};

use super::progress::FileProgress;
use crate::Failure;

/// Flags of `batch`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Lake root: a folder, `file:///…` or `s3://bucket/prefix` (S3 settings from the standard
    /// AWS environment variables). Bronze is read from it; silver tables live in
    /// `<lake>/catalog/warehouse`.
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// Catalog database: `sqlite:<file>` or `postgres://user:pass@host:port/db`. Default for a
    /// local lake: `sqlite:<lake>/catalog/catalog.db`; required for an S3 lake.
    #[arg(long, env = "STRATA_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,
    /// Bronze source to read.
    #[arg(long, env = "STRATA_SOURCE", hide_env_values = true)]
    pub source: String,
    /// Pipeline spec; its name is the silver table's name.
    #[arg(long, env = "STRATA_PIPELINE", hide_env_values = true)]
    pub pipeline: std::path::PathBuf,
    /// First bronze date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Last bronze date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub to: Option<String>,
    /// Records per batch (at most).
    #[arg(long, default_value_t = 8192)]
    pub batch_rows: usize,
    /// Memory budget in MiB for buffers (channels between stages, open Parquet files); the
    /// dedup state is bounded separately by the pipeline's `max_keys`.
    #[arg(
        long,
        env = "STRATA_MEMORY_MB",
        hide_env_values = true,
        default_value_t = 1024
    )]
    pub memory_mb: usize,
    /// Drop the silver tables and rebuild them from bronze.
    #[arg(long)]
    pub full_refresh: bool,
    /// Most bronze files per silver commit (unset: no bound by count). A commit always covers
    /// whole files and lists every one of them, so a file is still committed exactly once;
    /// `--commit-files 1` commits after each file.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub commit_files: Option<u32>,
    /// Commit once the files read since the last commit hold this many records (at the end of
    /// the file that reaches it): many small bronze files share a commit, a large file is one.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub commit_rows: u64,
    /// Commit once the records read since the last commit take this many MiB in memory.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    pub commit_mb: u64,
    /// Commit at least this often while files are read (seconds).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub commit_seconds: u64,
    /// Test hook: abort the process right after this many silver commits (crash tests).
    #[arg(
        long,
        env = "STRATA_TEST_CRASH_AFTER_COMMITS",
        hide_env_values = true,
        hide = true
    )]
    pub crash_after_commits: Option<usize>,
    /// OpenLineage events of the run: an NDJSON file, or an HTTP endpoint
    /// (`http://host:5000`, posted to `/api/v1/lineage` as Marquez and DataHub accept).
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
    /// Prometheus metrics of the run.
    #[command(flatten)]
    pub metrics: super::metrics_args::MetricsArgs,
}

/// Runs the batch.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let spec = super::load_spec(&args.pipeline)?;
    run_with_spec(args, spec).await
}

/// Runs the batch with an already loaded spec (`args.pipeline` only names it in messages).
pub async fn run_with_spec(args: &Args, spec: strata_core::PipelineSpec) -> Result<(), Failure> {
    let plan = MemoryPlan::new(args.memory_mb)?;
    let date = |d: &Option<String>| {
        d.as_deref()
            .map(BronzeDate::parse)
            .transpose()
            .map_err(Failure::config)
    };
    let (from, to) = (date(&args.from)?, date(&args.to)?);
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let config =
        CatalogConfig::for_lake(&args.lake, args.catalog.as_deref()).map_err(Failure::config)?;
    let catalog = SilverCatalog::open(&config)
        .await
        .map_err(Failure::runtime)?;
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Failure::runtime)?;
    let source = BronzeSource::open(
        lake.clone(),
        &args.source,
        from,
        to,
        args.batch_rows,
        plan.batch_bytes,
        run_id.as_micros() as i64,
    )
    .await?;
    // A table that mirrors the newest full load reads that load whole, in one commit.
    let source = match spec.output.full_load {
        FullLoadMode::Replace => source.whole_loads().await?,
        FullLoadMode::Upsert => source,
    };
    let pipeline = Pipeline::build(&spec, source.schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let output_schema = pipeline.output_schema();
    let tables = SilverTables::open(
        catalog.clone(),
        lake,
        &pipeline,
        args.full_refresh,
        (plan.rows, plan.quarantine),
    )
    .await?;
    let table = tables.name();
    let sink = SilverFilesSink::new(tables, run_id.as_nanos());
    let options = DriverOptions {
        commit: CommitPolicy {
            max_rows: args.commit_rows,
            max_interval: Duration::from_secs(args.commit_seconds),
            max_units: args.commit_files.map_or(0, |n| n as usize),
            max_bytes: args.commit_mb.saturating_mul(1 << 20),
        },
        channel_depth: plan.channel_depth,
        stop_when_idle: None,
        crash_after_commits: args.crash_after_commits,
    };
    let progress = Arc::new(FileProgress::new(&table, &args.source));
    let emitter = Arc::new(LineageEmitter::for_target(args.lineage.as_deref()));
    let bronze = format!(
        "{}/bronze/source={}",
        args.lake.trim_end_matches('/'),
        args.source
    );
    let fields: Vec<SchemaField> = output_schema
        .fields()
        .iter()
        .map(|f| SchemaField {
            name: f.name().clone(),
            data_type: strata_core::types::type_name(f.data_type()),
            description: None,
        })
        .collect();
    let lineage = LineageHooks::new(
        emitter.clone(),
        JobRun::new(format!("batch.{table}"), "BATCH", "JOB"),
        vec![dataset_for_location(&bronze)],
        vec![dataset_for_location(&catalog.table_location(&table)).with_schema(&fields)],
    );
    let job = format!("batch.{table}");
    let export = args.metrics.start().await?;
    let hooks = HookSet(vec![
        progress.clone(),
        Arc::new(lineage),
        Arc::new(export.metrics.driver_hooks(&job)),
    ]);
    let started = Instant::now();
    let outcome = Driver::new(source, pipeline, sink, options)
        .with_hooks(Arc::new(hooks))
        .run(std::future::pending())
        .await;
    // The run's last event (COMPLETE or FAIL) is sent before the command ends, within bounds.
    let lineage_stats = emitter.close(Duration::from_secs(5)).await;
    export.metrics.lineage_dropped(lineage_stats.dropped);
    export.finish(&job).await?;
    let report = outcome?;
    progress.finish();
    let m = &report.metrics;
    println!(
        "done in {:.2} s: {} rows in, {} out, {} quarantined, {} duplicates",
        started.elapsed().as_secs_f64(),
        m.rows_in,
        m.rows_out,
        m.quarantined,
        m.duplicates()
    );
    for s in &m.steps {
        for r in &s.rules {
            println!(
                "  expectation {}.{}: passed {}, failed {}",
                s.step, r.rule, r.passed, r.failed
            );
        }
    }
    Ok(())
}
