//! `strata transform`: NDJSON files → pipeline → Parquet, good rows and quarantine side by side.
//!
//! The local, single-process form of the batch path — the runtime's driver over an
//! [`NdjsonFilesSource`] and a [`ParquetFilesSink`]: files are streamed in bounded batches, so
//! memory does not grow with input size. Output goes to a fresh run folder (never overwriting);
//! the summary prints rows in / out / quarantined / duplicates and every expectation's counts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_connectors::file::ReaderOptions;
use strata_core::{BuildContext, Pipeline, PipelineMetrics};
use strata_runtime::sinks::ParquetFilesSink;
use strata_runtime::sources::NdjsonFilesSource;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Source};

use crate::Failure;

/// Flags of `transform`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline spec (YAML or JSON).
    #[arg(
        long,
        env = "STRATA_PIPELINE",
        hide_env_values = true,
        default_value = "pipelines/iot.yaml"
    )]
    pub pipeline: PathBuf,
    /// NDJSON input files (plain, .gz or .zst).
    #[arg(long = "input", env = "STRATA_INPUT", hide_env_values = true, num_args = 1.., default_value = "samples/iot_events.ndjson")]
    pub inputs: Vec<PathBuf>,
    /// Output folder; each run writes into a new `run-<time>` folder inside it.
    #[arg(
        long,
        env = "STRATA_OUT",
        hide_env_values = true,
        default_value = "out"
    )]
    pub out: PathBuf,
    /// Value of the `_source` lineage column (defaults to the pipeline name).
    #[arg(long, env = "STRATA_SOURCE", hide_env_values = true)]
    pub source: Option<String>,
    /// Records per batch.
    #[arg(
        long,
        env = "STRATA_BATCH_ROWS",
        hide_env_values = true,
        default_value_t = 8192
    )]
    pub batch_rows: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs the transform.
pub async fn run(args: &Args) -> Result<(), Failure> {
    if args.batch_rows == 0 {
        return Err(Failure::config(anyhow::anyhow!(
            "--batch-rows must be at least 1"
        )));
    }
    let spec = super::load_spec(&args.pipeline)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Failure::runtime)?;
    let options = ReaderOptions {
        batch_rows: args.batch_rows,
        source: args.source.clone().unwrap_or_else(|| spec.name.clone()),
        ingested_at_micros: now.as_micros() as i64,
        ..ReaderOptions::default()
    };
    let source = NdjsonFilesSource::new(args.inputs.clone(), options);
    let pipeline = Pipeline::build(&spec, source.schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let run_dir = args
        .out
        .join(&spec.name)
        .join(format!("run-{}", now.as_millis()));
    let rows_path = run_dir.join(format!("{}.parquet", spec.name));
    let quarantine_path = run_dir.join(format!("{}_quarantine.parquet", spec.name));
    let sink = ParquetFilesSink::create(
        &rows_path,
        pipeline.output_schema(),
        &quarantine_path,
        pipeline.quarantine_schema(),
    )?;
    // One unit: the files become visible together when the input ends.
    let options = DriverOptions {
        commit: CommitPolicy {
            max_rows: u64::MAX,
            max_interval: Duration::MAX,
            max_units: 0,
            max_bytes: u64::MAX,
        },
        channel_depth: 4,
        stop_when_idle: None,
        crash_after_commits: None,
    };
    let started = Instant::now();
    let report = Driver::new(source, pipeline, sink, options)
        .run(std::future::pending())
        .await?;
    let elapsed = started.elapsed();
    let m = &report.metrics;
    if args.json {
        let summary = serde_json::json!({
            "pipeline": spec.name,
            "output": rows_path, "quarantine": quarantine_path,
            "seconds": elapsed.as_secs_f64(),
            "metrics": m,
        });
        println!("{summary}");
    } else {
        print_summary(
            &spec.name,
            m,
            &rows_path,
            &quarantine_path,
            elapsed.as_secs_f64(),
        );
    }
    Ok(())
}

fn print_summary(name: &str, m: &PipelineMetrics, rows: &Path, quarantine: &Path, seconds: f64) {
    let rate = if seconds > 0.0 {
        m.rows_in as f64 / seconds
    } else {
        0.0
    };
    println!(
        "pipeline `{name}`: {} rows in, {} out, {} quarantined, {} duplicates, {} dropped by rules/filters",
        m.rows_in,
        m.rows_out,
        m.quarantined,
        m.duplicates(),
        m.dropped - m.duplicates()
    );
    println!("  {seconds:.2} s, {rate:.0} rows/s");
    println!(
        "  {:<20} {:<11} {:>9} {:>9} {:>11} {:>9}",
        "step", "type", "in", "out", "quarantined", "dropped"
    );
    for s in &m.steps {
        println!(
            "  {:<20} {:<11} {:>9} {:>9} {:>11} {:>9}",
            s.step, s.kind, s.rows_in, s.rows_out, s.quarantined, s.dropped
        );
        for r in &s.rules {
            println!(
                "      rule {:<26} passed {:>9}  failed {:>7}",
                r.rule, r.passed, r.failed
            );
        }
    }
    println!("  rows       → {}", rows.display());
    println!("  quarantine → {}", quarantine.display());
}
