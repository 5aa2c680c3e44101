//! `strata batch`: bronze files of one source → pipeline → silver Iceberg table (+ its
//! `<table>_quarantine` table), one commit per bronze file.
//!
//! Exactly once across crashes: each silver commit stores the bronze file it covers and the path
//! of the pipeline state (dedup keys) after that file, in one atomic snapshot. A restarted run
//! restores that state, skips every covered file and continues. The quarantine commit for a file
//! happens first; if the process dies between the two commits, the re-run recomputes the file,
//! finds its quarantine already covered (skipped) and commits the rows. Two writers on the same
//! table: commits are compare-and-swaps on the version whose coverage was checked, so a file is
//! committed once; the writer that loses a rows commit stops with an error saying so.
//!
//! Three stages on two cores, joined by bounded channels: a reader task decodes bronze files,
//! this task runs the pipeline, a writer task encodes Parquet and commits. `--memory-mb` sizes
//! the channels and the Parquet buffers (see [`MemoryPlan`]), so memory does not grow with the
//! size of a bronze file or of the run.

use std::io::IsTerminal;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use indicatif::{ProgressBar, ProgressStyle};
use strata_core::{BuildContext, Pipeline};
use strata_layers::bronze::{BronzeDate, BronzeFile, BronzeReader};
use strata_layers::error::LayersError;
use strata_layers::lake::Lake;
use strata_layers::silver::{
    CatalogConfig, IcebergTable as Table, SilverAppend, SilverCatalog, WriteOptions,
    committed_coverage, current_summary_property,
};
use tokio::sync::mpsc;

use crate::Failure;

/// Snapshot-summary key holding the pipeline checkpoint (a path below the lake root) after the
/// commit.
const STATE_KEY: &str = "strata.state";

/// Flags of `batch`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Lake root: a folder, `file:///…` or `s3://bucket/prefix` (S3 settings from the standard
    /// AWS environment variables). Bronze is read from it; silver tables live in
    /// `<lake>/catalog/warehouse`.
    #[arg(long, env = "STRATA_LAKE", default_value = "lake")]
    pub lake: String,
    /// Catalog database: `sqlite:<file>` or `postgres://user:pass@host:port/db`. Default for a
    /// local lake: `sqlite:<lake>/catalog/catalog.db`; required for an S3 lake.
    #[arg(long, env = "STRATA_CATALOG")]
    pub catalog: Option<String>,
    /// Bronze source to read.
    #[arg(long, env = "STRATA_SOURCE")]
    pub source: String,
    /// Pipeline spec; its name is the silver table's name.
    #[arg(long, env = "STRATA_PIPELINE")]
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
    #[arg(long, env = "STRATA_MEMORY_MB", default_value_t = 1024)]
    pub memory_mb: usize,
    /// Drop the silver tables and rebuild them from bronze.
    #[arg(long)]
    pub full_refresh: bool,
    /// Test hook: abort the process right after this many silver commits (crash tests).
    #[arg(long, env = "STRATA_TEST_CRASH_AFTER_COMMITS", hide = true)]
    pub crash_after_commits: Option<usize>,
}

/// How `--memory-mb` is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Raw bytes per input batch (NDJSON).
    pub batch_bytes: usize,
    /// Batches in flight between reader and pipeline, and between pipeline and writer.
    pub channel_depth: usize,
    /// Parquet buffers of the rows table.
    pub rows: WriteOptions,
    /// Parquet buffers of the quarantine table.
    pub quarantine: WriteOptions,
}

impl MemoryPlan {
    /// Splits `memory_mb`: 1/8 per channel, 3/8 for open rows files, 1/16 for quarantine files;
    /// the rest is the pipeline's working set (a few batches while decoding).
    pub fn new(memory_mb: usize) -> Result<Self, Failure> {
        if memory_mb < 64 {
            return Err(Failure::config(anyhow::anyhow!(
                "--memory-mb {memory_mb} is too small: at least 64 MiB"
            )));
        }
        let total = memory_mb << 20;
        let batch_bytes = (total / 64).clamp(1 << 20, 16 << 20);
        Ok(MemoryPlan {
            batch_bytes,
            channel_depth: (total / 8 / batch_bytes).max(2),
            rows: WriteOptions {
                flush_bytes: total * 3 / 8,
                ..WriteOptions::default()
            },
            quarantine: WriteOptions {
                flush_bytes: total / 16,
                ..WriteOptions::default()
            },
        })
    }
}

/// Runs the batch.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let spec = super::load_spec(&args.pipeline)?;
    run_with_spec(args, spec).await
}

/// Fields equal by name, type and nullability (Parquet files carry varying metadata).
fn same_fields(a: &SchemaRef, b: &SchemaRef) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields().iter().zip(b.fields().iter()).all(|(x, y)| {
            x.name() == y.name()
                && x.data_type() == y.data_type()
                && x.is_nullable() == y.is_nullable()
        })
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
    let reader = BronzeReader::new(lake.clone());
    let config =
        CatalogConfig::for_lake(&args.lake, args.catalog.as_deref()).map_err(Failure::config)?;
    let catalog = SilverCatalog::open(&config)
        .await
        .map_err(Failure::runtime)?;
    let files = reader
        .list(&args.source, from, to)
        .await
        .map_err(Failure::runtime)?;
    // The pipeline's input: raw records for NDJSON bronze, the file's typed columns for Parquet
    // bronze (full loads). A source is one or the other.
    let input_schema = match files.first() {
        Some(first) => {
            let parquet = BronzeReader::is_parquet(first);
            if let Some(other) = files
                .iter()
                .find(|f| BronzeReader::is_parquet(f) != parquet)
            {
                return Err(Failure::runtime(anyhow::anyhow!(
                    "bronze source `{}` mixes Parquet and NDJSON files ({} and {}); a pipeline reads one kind",
                    args.source,
                    first.relative,
                    other.relative
                )));
            }
            reader.input_schema(first).await.map_err(Failure::runtime)?
        }
        None => strata_core::lineage::file_input_schema(),
    };
    let mut pipeline = Pipeline::build(&spec, input_schema.clone(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let table_name = spec.name.clone();
    if !table_name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Failure::config(anyhow::anyhow!(
            "pipeline name `{table_name}` cannot name a silver table (use letters, digits and _)"
        )));
    }
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
    let qtable = catalog
        .ensure_table(&quarantine_name, &pipeline.quarantine_schema(), None)
        .await
        .map_err(Failure::runtime)?;
    if let Some(state_path) = current_summary_property(&table, STATE_KEY) {
        let state = lake.get(&state_path).await.map_err(|e| {
            Failure::runtime(anyhow::anyhow!(
                "reading pipeline state {state_path} named by {table_name}: {e}"
            ))
        })?;
        pipeline.restore(&state)?;
    }
    let covered = committed_coverage(&table).map_err(Failure::runtime)?;
    let todo: Vec<BronzeFile> = files
        .iter()
        .filter(|f| !covered.contains(&f.relative))
        .cloned()
        .collect();
    println!(
        "batch `{table_name}`: {} bronze files of source `{}`, {} already in silver, {} to process",
        files.len(),
        args.source,
        files.len() - todo.len(),
        todo.len()
    );
    let started = Instant::now();
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Failure::runtime)?;

    let (read_tx, mut read_rx) =
        mpsc::channel::<Result<Option<RecordBatch>, LayersError>>(plan.channel_depth);
    let prefetch = tokio::spawn(prefetch(
        reader,
        todo.clone(),
        input_schema,
        args.batch_rows,
        plan.batch_bytes,
        run_id.as_micros() as i64,
        read_tx,
    ));
    let (write_tx, write_rx) = mpsc::channel::<ToWriter>(plan.channel_depth);
    let progress = Progress::new(todo.len());
    let writer = tokio::spawn(
        Writer {
            catalog: catalog.clone(),
            lake,
            table,
            qtable,
            plan,
            rows: None,
            quarantine: None,
            state_prefix: format!("catalog/state/{table_name}/{}", run_id.as_nanos()),
            commits: 0,
            crash_after: args.crash_after_commits,
            progress: progress.clone(),
        }
        .run(write_rx),
    );
    let piped = run_pipeline(&mut pipeline, &todo, &mut read_rx, &write_tx, &progress).await;
    drop(write_tx);
    prefetch.abort();
    // The writer's error is the cause when the pipeline stopped because the writer went away.
    let written = writer
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!("writer task failed: {e}")))?;
    written?;
    piped?;
    progress.finish();
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

/// Reads `files` in order into `tx`: their batches, then `Ok(None)` after each file.
async fn prefetch(
    reader: BronzeReader,
    files: Vec<BronzeFile>,
    input_schema: SchemaRef,
    batch_rows: usize,
    batch_bytes: usize,
    ingested_at: i64,
    tx: mpsc::Sender<Result<Option<RecordBatch>, LayersError>>,
) {
    for file in files {
        if BronzeReader::is_parquet(&file) {
            let schema = match reader.input_schema(&file).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if !same_fields(&schema, &input_schema) {
                let _ = tx
                    .send(Err(LayersError::Iceberg {
                        context: format!("reading {}", file.relative),
                        message: format!(
                            "its columns differ from the first file's: {:?} vs {:?}",
                            schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>(),
                            input_schema
                                .fields()
                                .iter()
                                .map(|f| f.name())
                                .collect::<Vec<_>>()
                        ),
                    }))
                    .await;
                return;
            }
        }
        let mut stream = match reader
            .open(&file, batch_rows, batch_bytes, ingested_at)
            .await
        {
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
}

/// Runs the pipeline over the prefetched batches, file by file, feeding the writer.
async fn run_pipeline(
    pipeline: &mut Pipeline,
    todo: &[BronzeFile],
    rx: &mut mpsc::Receiver<Result<Option<RecordBatch>, LayersError>>,
    tx: &mpsc::Sender<ToWriter>,
    progress: &Progress,
) -> Result<(), Failure> {
    let writer_gone = || Failure::runtime(anyhow::anyhow!("the silver writer stopped"));
    for (index, file) in todo.iter().enumerate() {
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
            for rows in out.rows {
                tx.send(ToWriter::Rows(rows))
                    .await
                    .map_err(|_| writer_gone())?;
            }
            if out.quarantined.num_rows() > 0 {
                tx.send(ToWriter::Quarantine(out.quarantined))
                    .await
                    .map_err(|_| writer_gone())?;
            }
        }
        let m = pipeline.metrics();
        progress.file_done(
            index,
            &file.relative,
            (m.rows_in, m.rows_out, m.quarantined),
        );
        tx.send(ToWriter::FileDone {
            covers: file.relative.clone(),
            state: pipeline.checkpoint()?,
            index,
        })
        .await
        .map_err(|_| writer_gone())?;
    }
    Ok(())
}

/// What the pipeline hands the writer.
enum ToWriter {
    Rows(RecordBatch),
    Quarantine(RecordBatch),
    /// Everything of bronze file `covers` was sent: commit it with the pipeline state after it.
    FileDone {
        covers: String,
        state: Vec<u8>,
        index: usize,
    },
}

/// The writer stage: streams rows and quarantine into Parquet, and commits per bronze file —
/// quarantine first, then the state file, then the rows commit naming both.
struct Writer {
    catalog: SilverCatalog,
    lake: Lake,
    table: Table,
    qtable: Table,
    plan: MemoryPlan,
    rows: Option<SilverAppend>,
    quarantine: Option<SilverAppend>,
    state_prefix: String,
    commits: usize,
    crash_after: Option<usize>,
    progress: Progress,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<ToWriter>) -> Result<(), Failure> {
        while let Some(msg) = rx.recv().await {
            match msg {
                ToWriter::Rows(batch) => {
                    if self.rows.is_none() {
                        self.rows = Some(start(&self.table, &self.plan.rows).await?);
                    }
                    if let Some(w) = self.rows.as_mut() {
                        w.write(&batch).await.map_err(Failure::runtime)?;
                    }
                }
                ToWriter::Quarantine(batch) => {
                    if self.quarantine.is_none() {
                        self.quarantine = Some(start(&self.qtable, &self.plan.quarantine).await?);
                    }
                    if let Some(w) = self.quarantine.as_mut() {
                        w.write(&batch).await.map_err(Failure::runtime)?;
                    }
                }
                ToWriter::FileDone {
                    covers,
                    state,
                    index,
                } => self.commit(covers, state, index).await?,
            }
        }
        Ok(())
    }

    async fn commit(
        &mut self,
        covers: String,
        state: Vec<u8>,
        index: usize,
    ) -> Result<(), Failure> {
        let covered = [covers.clone()];
        let quarantine = match self.quarantine.take() {
            Some(w) => w,
            None => start(&self.qtable, &self.plan.quarantine).await?,
        };
        let q = quarantine
            .commit(&self.catalog, &covered, &[])
            .await
            .map_err(Failure::runtime)?;
        self.qtable = q.table;
        let state_path = format!("{}-{index:06}.ckpt", self.state_prefix);
        self.lake
            .put_new(&state_path, bytes::Bytes::from(state))
            .await
            .map_err(Failure::runtime)?;
        let rows = match self.rows.take() {
            Some(w) => w,
            None => start(&self.table, &self.plan.rows).await?,
        };
        let extra = [(STATE_KEY.to_string(), state_path)];
        let r = rows
            .commit(&self.catalog, &covered, &extra)
            .await
            .map_err(Failure::runtime)?;
        self.table = r.table;
        if r.report.skipped {
            return Err(Failure::runtime(anyhow::anyhow!(
                "another writer committed {covers} to `{}` first; stopping this run (re-run to continue from the table's state)",
                self.table.identifier()
            )));
        }
        self.commits += 1;
        self.progress.committed(&format!(
            "committed {covers}: {} rows in {} data files, {} quarantined",
            r.report.rows, r.report.data_files, q.report.rows
        ));
        if self.crash_after == Some(self.commits) {
            eprintln!("test hook: aborting after {} commits", self.commits);
            std::process::abort();
        }
        Ok(())
    }
}

async fn start(table: &Table, options: &WriteOptions) -> Result<SilverAppend, Failure> {
    SilverAppend::start(table, options)
        .await
        .map_err(Failure::runtime)
}

/// Progress: a bar (files, rows, rate, ETA) on a terminal, plain log lines otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<ProgressBar>,
    total: usize,
    started: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} files · {msg} · ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            total,
            started: Instant::now(),
        }
    }

    fn file_done(
        &self,
        index: usize,
        file: &str,
        (rows_in, rows_out, quarantined): (u64, u64, u64),
    ) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = rows_in as f64 / secs;
        match &self.bar {
            Some(bar) => {
                bar.set_position(index as u64 + 1);
                bar.set_message(format!(
                    "{rows_in} rows in, {rows_out} out, {quarantined} quarantined, {rate:.0} rows/s"
                ));
            }
            None => {
                let eta = secs / (index + 1) as f64 * (self.total - index - 1) as f64;
                println!(
                    "[{}/{}] {file}: total {rows_in} in, {rows_out} out, {quarantined} quarantined ({rate:.0} rows/s, ETA {eta:.0} s)",
                    index + 1,
                    self.total
                );
            }
        }
    }

    fn committed(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("  {line}")),
            None => println!("  {line}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
