//! `strata batch`: bronze files of one source → pipeline → silver Iceberg table (+ its
//! `<table>_quarantine` table), one commit per bronze file.
//!
//! Exactly once across crashes: each silver commit stores the bronze file it covers and the path
//! of the pipeline state (dedup keys) after that file, in one atomic snapshot. A restarted run
//! restores that state, skips every covered file and continues. The quarantine commit for a file
//! happens first; if the process dies between the two commits, the re-run recomputes the file,
//! finds its quarantine already covered (skipped) and commits the rows.

use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use strata_core::lineage::file_input_schema;
use strata_core::{BuildContext, Pipeline};
use strata_layers::bronze::{BronzeDate, BronzeReader};
use strata_layers::error::LayersError;
use strata_layers::lake::Lake;
use strata_layers::silver::{SilverCatalog, append, committed_coverage, current_summary_property};

use crate::Failure;

/// Snapshot-summary key holding the pipeline checkpoint path after the commit.
const STATE_KEY: &str = "strata.state";

/// Flags of `batch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lake root folder (bronze is read from it; the silver catalog lives in `<lake>/catalog`).
    #[arg(long, env = "STRATA_LAKE", default_value = "lake")]
    pub lake: PathBuf,
    /// Bronze source to read.
    #[arg(long, env = "STRATA_SOURCE")]
    pub source: String,
    /// Pipeline spec; its name is the silver table's name.
    #[arg(long, env = "STRATA_PIPELINE")]
    pub pipeline: PathBuf,
    /// First bronze date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub from: Option<String>,
    /// Last bronze date (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub to: Option<String>,
    /// Records per batch.
    #[arg(long, default_value_t = 8192)]
    pub batch_rows: usize,
    /// Drop the silver tables and rebuild them from bronze.
    #[arg(long)]
    pub full_refresh: bool,
    /// Test hook: abort the process right after this many silver commits (crash tests).
    #[arg(long, env = "STRATA_TEST_CRASH_AFTER_COMMITS", hide = true)]
    pub crash_after_commits: Option<usize>,
}

/// Runs the batch.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let spec = super::load_spec(&args.pipeline)?;
    run_with_spec(args, spec).await
}

/// Runs the batch with an already loaded spec (`args.pipeline` only names it in messages).
pub async fn run_with_spec(args: &Args, spec: strata_core::PipelineSpec) -> Result<(), Failure> {
    let mut pipeline = Pipeline::build(&spec, file_input_schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let date = |d: &Option<String>| {
        d.as_deref()
            .map(BronzeDate::parse)
            .transpose()
            .map_err(Failure::config)
    };
    let (from, to) = (date(&args.from)?, date(&args.to)?);
    let lake_url = args.lake.to_string_lossy().to_string();
    let reader = BronzeReader::new(Lake::open(&lake_url).map_err(Failure::config)?);
    let catalog_dir = args.lake.join("catalog");
    let catalog = SilverCatalog::open_local(&catalog_dir)
        .await
        .map_err(Failure::runtime)?;
    let table_name = spec.name.clone();
    let quarantine_name = format!("{table_name}_quarantine");
    if args.full_refresh {
        for name in [&table_name, &quarantine_name] {
            if catalog
                .drop_table_if_exists(name)
                .await
                .map_err(Failure::runtime)?
            {
                println!("full refresh: dropped silver table `{name}`");
            }
        }
    }
    let event_time = spec.output.event_time.as_deref();
    let table = catalog
        .ensure_table(&table_name, &pipeline.output_schema(), event_time)
        .await
        .map_err(Failure::runtime)?;
    catalog
        .ensure_table(&quarantine_name, &pipeline.quarantine_schema(), None)
        .await
        .map_err(Failure::runtime)?;
    if let Some(state_path) = current_summary_property(&table, STATE_KEY) {
        let state = std::fs::read(&state_path).map_err(|e| {
            Failure::runtime(anyhow::anyhow!(
                "reading pipeline state {state_path} named by {table_name}: {e}"
            ))
        })?;
        pipeline.restore(&state)?;
    }
    let covered = committed_coverage(&table).map_err(Failure::runtime)?;
    let files = reader
        .list(&args.source, from, to)
        .await
        .map_err(Failure::runtime)?;
    let todo: Vec<_> = files
        .iter()
        .filter(|f| !covered.contains(&f.relative))
        .collect();
    println!(
        "batch `{table_name}`: {} bronze files of source `{}`, {} already in silver, {} to process",
        files.len(),
        args.source,
        files.len() - todo.len(),
        todo.len()
    );
    let started = Instant::now();
    let state_dir = catalog_dir.join("state").join(&table_name);
    std::fs::create_dir_all(&state_dir).map_err(Failure::runtime)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Failure::runtime)?;
    let mut commits = 0usize;
    // Both cores: a task reads and decompresses bronze files ahead (bounded channel, so memory
    // stays at a few batches) while this one runs the pipeline and writes silver.
    let (tx, mut rx) =
        tokio::sync::mpsc::channel::<Result<Option<arrow::array::RecordBatch>, LayersError>>(8);
    let prefetch = {
        let reader = reader.clone();
        let files: Vec<_> = todo.iter().map(|f| (*f).clone()).collect();
        let (batch_rows, ingested_at) = (args.batch_rows, now.as_micros() as i64);
        tokio::spawn(async move {
            for file in files {
                let mut stream = match reader.open(&file, batch_rows, ingested_at).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                loop {
                    let next = stream.next_batch().await;
                    let end = matches!(next, Ok(None) | Err(_));
                    if tx.send(next).await.is_err() || end {
                        break;
                    }
                }
            }
        })
    };
    let mut pending: Option<tokio::task::JoinHandle<Result<String, Failure>>> = None;
    for (i, file) in todo.iter().enumerate() {
        let (mut rows, mut quarantined) = (Vec::new(), Vec::new());
        loop {
            let batch = match rx.recv().await {
                Some(Ok(Some(batch))) => batch,
                Some(Ok(None)) => break,
                Some(Err(e)) => return Err(Failure::runtime(e)),
                None => {
                    return Err(Failure::runtime(anyhow::anyhow!(
                        "the bronze reader stopped early"
                    )));
                }
            };
            let out = pipeline.process(&batch)?;
            rows.extend(out.rows);
            if out.quarantined.num_rows() > 0 {
                quarantined.push(out.quarantined);
            }
        }
        // Commits stay in file order (each one holds the state after its file); committing file
        // i overlaps with running the pipeline over file i + 1.
        let state = pipeline.checkpoint()?;
        if let Some(previous) = pending.take() {
            finish_commit(previous, &mut commits, args.crash_after_commits).await?;
        }
        let job = CommitJob {
            catalog: catalog.clone(),
            table_name: table_name.clone(),
            quarantine_name: quarantine_name.clone(),
            output_schema: pipeline.output_schema(),
            quarantine_schema: pipeline.quarantine_schema(),
            event_time: event_time.map(str::to_string),
            covers: vec![file.relative.clone()],
            rows,
            quarantined,
            state,
            state_path: state_dir.join(format!("{}-{}.ckpt", now.as_nanos(), i)),
        };
        let m = pipeline.metrics();
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        let eta = secs / (i + 1) as f64 * (todo.len() - i - 1) as f64;
        println!(
            "[{}/{}] {}: total {} in, {} out, {} quarantined ({:.0} rows/s, ETA {:.0} s)",
            i + 1,
            todo.len(),
            file.relative,
            m.rows_in,
            m.rows_out,
            m.quarantined,
            m.rows_in as f64 / secs,
            eta
        );
        pending = Some(tokio::spawn(job.run()));
    }
    if let Some(previous) = pending.take() {
        finish_commit(previous, &mut commits, args.crash_after_commits).await?;
    }
    prefetch.abort();
    let m = pipeline.metrics();
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

/// Everything one file's commits need, owned so they can run while the next file is processed.
struct CommitJob {
    catalog: SilverCatalog,
    table_name: String,
    quarantine_name: String,
    output_schema: arrow::datatypes::SchemaRef,
    quarantine_schema: arrow::datatypes::SchemaRef,
    event_time: Option<String>,
    covers: Vec<String>,
    rows: Vec<arrow::array::RecordBatch>,
    quarantined: Vec<arrow::array::RecordBatch>,
    state: Vec<u8>,
    state_path: PathBuf,
}

impl CommitJob {
    /// Quarantine first, then state file, then the rows commit that names both coverage and
    /// state — a death anywhere in between is repaired by the re-run. Returns a progress line.
    async fn run(self) -> Result<String, Failure> {
        let qtable = self
            .catalog
            .ensure_table(&self.quarantine_name, &self.quarantine_schema, None)
            .await
            .map_err(Failure::runtime)?;
        append(&self.catalog, &qtable, &self.quarantined, &self.covers, &[])
            .await
            .map_err(Failure::runtime)?;
        write_new(&self.state_path, &self.state)?;
        let table = self
            .catalog
            .ensure_table(
                &self.table_name,
                &self.output_schema,
                self.event_time.as_deref(),
            )
            .await
            .map_err(Failure::runtime)?;
        let extra = [(STATE_KEY.to_string(), self.state_path.display().to_string())];
        let report = append(&self.catalog, &table, &self.rows, &self.covers, &extra)
            .await
            .map_err(Failure::runtime)?;
        Ok(format!(
            "committed {}: {} rows in {} data files",
            self.covers.join(", "),
            report.rows,
            report.data_files
        ))
    }
}

async fn finish_commit(
    job: tokio::task::JoinHandle<Result<String, Failure>>,
    commits: &mut usize,
    crash_after: Option<usize>,
) -> Result<(), Failure> {
    let line = job
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!("commit task failed: {e}")))??;
    *commits += 1;
    println!("  {line}");
    if crash_after == Some(*commits) {
        eprintln!("test hook: aborting after {commits} commits");
        std::process::abort();
    }
    Ok(())
}

/// Writes a file that must not exist yet and syncs it.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| Failure::runtime(anyhow::anyhow!("writing {}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Failure::runtime(anyhow::anyhow!("writing {}: {e}", path.display())))?;
    Ok(())
}
