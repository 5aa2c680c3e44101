//! `strata stream silver`: Kafka JSON topic → pipeline → silver Iceberg table (+ quarantine
//! table), exactly once.
//!
//! The table is the source of truth for positions: every commit stores, in its snapshot summary,
//! the next offset of each partition (`strata.kafka.positions`), the pipeline state written for
//! that point (`strata.state`) and the writer's epoch (`strata.writer.epoch`). On start the
//! driver reads them and seeks there — the consumer group's offsets are committed afterwards for
//! monitoring only. A new writer takes the next epoch with an empty commit; every commit is a
//! compare-and-swap checked against the version it is based on (`SilverAppend::commit_checked`),
//! so a zombie writer's late commit finds a newer epoch and is refused.
//!
//! Rows and quarantine are two tables, so two commits: quarantine first. If the process dies in
//! between, the quarantine table is ahead; the replay from the rows table's positions drops
//! quarantined records below the quarantine table's positions (they carry their partition and
//! offset), so neither table ever holds a record twice.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use strata_connectors::kafka::{KafkaSource, Positions};
use strata_core::lineage::{KAFKA_OFFSET, KAFKA_PARTITION, kafka_input_schema};
use strata_core::{BuildContext, Pipeline};
use strata_layers::error::LayersError;
use strata_layers::lake::Lake;
use strata_layers::silver::{
    CatalogConfig, Coverage, IcebergTable as Table, SilverAppend, SilverCatalog,
    current_summary_property,
};

use super::batch::MemoryPlan;
use super::stream::{KafkaArgs, shutdown_signal};
use crate::Failure;

const POSITIONS_KEY: &str = "strata.kafka.positions";
const STATE_KEY: &str = "strata.state";
const EPOCH_KEY: &str = "strata.writer.epoch";

/// Flags of `stream silver`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Pipeline spec; its name is the silver table's name.
    #[arg(long, env = "STRATA_PIPELINE")]
    pub pipeline: PathBuf,
    /// Lake root (folder, file:// or s3://); tables in `<lake>/catalog/warehouse`.
    #[arg(long, env = "STRATA_LAKE", default_value = "lake")]
    pub lake: String,
    /// Catalog database (`sqlite:<file>` or `postgres://…`).
    #[arg(long, env = "STRATA_CATALOG")]
    pub catalog: Option<String>,
    /// Commit at least this often (milliseconds) while data flows.
    #[arg(long, default_value_t = 5_000)]
    pub commit_interval_ms: u64,
    /// Commit after this many input records, whatever the interval.
    #[arg(long, default_value_t = 500_000)]
    pub commit_rows: u64,
    /// Memory budget in MiB for open Parquet files.
    #[arg(long, env = "STRATA_MEMORY_MB", default_value_t = 1024)]
    pub memory_mb: usize,
}

/// The stream's bookkeeping in one table version.
fn positions_of(table: &Table) -> Result<Positions, Failure> {
    match current_summary_property(table, POSITIONS_KEY) {
        None => Ok(Positions::new()),
        Some(json) => serde_json::from_str::<HashMap<String, i64>>(&json)
            .map_err(|e| {
                Failure::runtime(anyhow::anyhow!(
                    "`{POSITIONS_KEY}` of {} is not valid: {e}",
                    table.identifier()
                ))
            })?
            .into_iter()
            .map(|(p, o)| {
                p.parse::<i32>()
                    .map(|p| (p, o))
                    .map_err(|e| Failure::runtime(anyhow::anyhow!("partition `{p}`: {e}")))
            })
            .collect(),
    }
}

fn epoch_of(table: &Table) -> i64 {
    current_summary_property(table, EPOCH_KEY)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0)
}

fn positions_json(p: &Positions) -> String {
    let map: HashMap<String, i64> = p.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

/// The check every commit of this writer makes on the version it is based on: our epoch is still
/// the newest and nobody else moved the positions.
fn guard(epoch: i64, expected: Positions) -> impl Fn(&Table) -> Result<Coverage, LayersError> {
    move |base: &Table| {
        let current = epoch_of(base);
        if current > epoch {
            return Err(LayersError::Fenced {
                table: base.identifier().to_string(),
                ours: epoch,
                current,
            });
        }
        let now = positions_of(base).map_err(|f| LayersError::Internal(format!("{f:?}")))?;
        if now != expected {
            return Err(LayersError::Fenced {
                table: base.identifier().to_string(),
                ours: epoch,
                current,
            });
        }
        Ok(Coverage::New)
    }
}

/// Keeps the rows whose (partition, offset) is at or beyond `from` (already-committed records are
/// dropped on replay).
fn not_before(batch: &RecordBatch, from: &Positions) -> Result<RecordBatch, Failure> {
    if from.is_empty() || batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let (Some(p), Some(o)) = (
        batch.column_by_name(KAFKA_PARTITION),
        batch.column_by_name(KAFKA_OFFSET),
    ) else {
        return Ok(batch.clone());
    };
    let (p, o) = (p.as_primitive::<Int32Type>(), o.as_primitive::<Int64Type>());
    let keep: BooleanArray = p
        .iter()
        .zip(o.iter())
        .map(|(p, o)| match (p, o) {
            (Some(p), Some(o)) => Some(from.get(&p).is_none_or(|f| o >= *f)),
            _ => Some(true),
        })
        .collect();
    arrow::compute::filter_record_batch(batch, &keep).map_err(Failure::runtime)
}

/// Runs the driver until idle (`--stop-when-idle-ms`), SIGTERM or Ctrl-C.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let spec = super::load_spec(&args.pipeline)?;
    let mut pipeline = Pipeline::build(&spec, kafka_input_schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let plan = MemoryPlan::new(args.memory_mb)?;
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let config =
        CatalogConfig::for_lake(&args.lake, args.catalog.as_deref()).map_err(Failure::config)?;
    let catalog = SilverCatalog::open(&config)
        .await
        .map_err(Failure::runtime)?;
    let name = spec.name.clone();
    let qname = format!("{name}_quarantine");
    let event_time = spec.output.event_time.as_deref();
    let mut table = catalog
        .ensure_table(&name, &pipeline.output_schema(), event_time)
        .await
        .map_err(Failure::runtime)?;
    let mut qtable = catalog
        .ensure_table(&qname, &pipeline.quarantine_schema(), None)
        .await
        .map_err(Failure::runtime)?;

    // Take the next writer epoch with an empty commit: from now on an older writer is fenced.
    let epoch = {
        let mut attempt = 0;
        loop {
            let current = epoch_of(&table);
            let ours = current + 1;
            let mut summary = HashMap::from([(EPOCH_KEY.to_string(), ours.to_string())]);
            summary.insert(
                POSITIONS_KEY.to_string(),
                positions_json(&positions_of(&table)?),
            );
            if let Some(s) = current_summary_property(&table, STATE_KEY) {
                summary.insert(STATE_KEY.to_string(), s);
            }
            let empty = SilverAppend::start(&table, &plan.rows)
                .await
                .map_err(Failure::runtime)?;
            let claim = empty
                .commit_checked(&catalog, summary, |base| {
                    if epoch_of(base) != current {
                        // Someone else took an epoch meanwhile: re-plan with theirs.
                        return Err(LayersError::Fenced {
                            table: base.identifier().to_string(),
                            ours,
                            current: epoch_of(base),
                        });
                    }
                    Ok(Coverage::New)
                })
                .await;
            match claim {
                Ok(c) => {
                    table = c.table;
                    break ours;
                }
                Err(LayersError::Fenced { .. }) if attempt < 8 => {
                    attempt += 1;
                    table = catalog.load(&name).await.map_err(Failure::runtime)?;
                }
                Err(e) => return Err(Failure::runtime(e)),
            }
        }
    };
    let mut rows_at = positions_of(&table)?;
    let mut quarantine_at = positions_of(&qtable)?;
    if let Some(path) = current_summary_property(&table, STATE_KEY) {
        let state = lake.get(&path).await.map_err(|e| {
            Failure::runtime(anyhow::anyhow!(
                "reading pipeline state {path} named by {name}: {e}"
            ))
        })?;
        pipeline.restore(&state)?;
    }
    let kafka = args.kafka.config()?;
    // The table holds the positions, so partitions are assigned explicitly and reading starts
    // exactly there; without --partitions / --instance this writer reads them all.
    let (assignment, instance) = args.kafka.explicit_assignment(&kafka)?;
    let group = args
        .kafka
        .group
        .clone()
        .unwrap_or_else(|| format!("strata-{name}"));
    let mut source = KafkaSource::open(
        &kafka,
        &args.kafka.input_topic,
        &group,
        &assignment,
        &rows_at,
    )
    .map_err(Failure::runtime)?;
    println!(
        "stream silver `{name}`: {} → silver (writer epoch {epoch}, instance {instance}), resuming at {rows_at:?}",
        args.kafka.input_topic
    );

    let mut stop = Box::pin(shutdown_signal());
    let max_wait = Duration::from_millis(args.kafka.max_wait_ms);
    let interval = Duration::from_millis(args.commit_interval_ms);
    let mut last_data = Instant::now();
    let mut seq = 0u64;
    let mut stopping = false;
    let (mut total_in, mut commits) = (0u64, 0u64);
    while !stopping {
        // One commit chunk.
        let mut rows = SilverAppend::start(&table, &plan.rows)
            .await
            .map_err(Failure::runtime)?;
        let mut quarantine = SilverAppend::start(&qtable, &plan.quarantine)
            .await
            .map_err(Failure::runtime)?;
        let chunk_started = Instant::now();
        let mut chunk_rows = 0u64;
        while chunk_started.elapsed() < interval && chunk_rows < args.commit_rows {
            let next = tokio::select! {
                _ = &mut stop => { stopping = true; break }
                next = source.next_batch(args.kafka.max_rows, args.kafka.max_bytes, max_wait) => next,
            };
            let Some(batch) = next.map_err(Failure::runtime)? else {
                if args
                    .kafka
                    .stop_when_idle_ms
                    .is_some_and(|ms| last_data.elapsed() >= Duration::from_millis(ms))
                {
                    stopping = true;
                    break;
                }
                continue;
            };
            last_data = Instant::now();
            chunk_rows += batch.num_rows() as u64;
            let out = pipeline.process(&batch)?;
            for r in &out.rows {
                rows.write(&not_before(r, &rows_at)?)
                    .await
                    .map_err(Failure::runtime)?;
            }
            quarantine
                .write(&not_before(&out.quarantined, &quarantine_at)?)
                .await
                .map_err(Failure::runtime)?;
        }
        let to = source.positions().clone();
        if chunk_rows == 0 || to == rows_at {
            continue;
        }
        total_in += chunk_rows;
        // Quarantine first; positions only move forward.
        let mut q_to = quarantine_at.clone();
        for (p, o) in &to {
            let e = q_to.entry(*p).or_insert(*o);
            *e = (*e).max(*o);
        }
        let q_summary = HashMap::from([
            (POSITIONS_KEY.to_string(), positions_json(&q_to)),
            (EPOCH_KEY.to_string(), epoch.to_string()),
        ]);
        let q = quarantine
            .commit_checked(&catalog, q_summary, guard(epoch, quarantine_at.clone()))
            .await
            .map_err(Failure::runtime)?;
        qtable = q.table;
        quarantine_at = q_to;
        let state_path = format!("catalog/state/{name}/stream-e{epoch:06}-{seq:09}.ckpt");
        seq += 1;
        lake.put_new(&state_path, bytes::Bytes::from(pipeline.checkpoint()?))
            .await
            .map_err(Failure::runtime)?;
        let r_summary = HashMap::from([
            (POSITIONS_KEY.to_string(), positions_json(&to)),
            (EPOCH_KEY.to_string(), epoch.to_string()),
            (STATE_KEY.to_string(), state_path),
        ]);
        let r = rows
            .commit_checked(&catalog, r_summary, guard(epoch, rows_at.clone()))
            .await
            .map_err(Failure::runtime)?;
        table = r.table;
        rows_at = to;
        commits += 1;
        // Advisory: lets monitoring see the lag; the table's positions are what counts.
        let _ = source.commit(&rows_at);
        println!(
            "committed {} rows, {} quarantined; positions {rows_at:?}",
            r.report.rows, q.report.rows
        );
    }
    let m = pipeline.metrics();
    println!(
        "stopped after {commits} commits: {total_in} records in, {} out, {} quarantined, {} duplicates",
        m.rows_out,
        m.quarantined,
        m.duplicates()
    );
    Ok(())
}
