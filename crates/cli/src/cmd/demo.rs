//! `strata demo`: the whole batch path on generated data, with no servers and no arguments.
//!
//! For each source of the platform — IoT events, Pipefy webhooks, X API posts, MySQL CDC
//! events (NDJSON bronze) and a PostgreSQL full load of CRM customers (Parquet bronze) — it
//! writes realistic records (with their faults) into a fresh local bronze, runs the source's
//! pipeline into silver Iceberg tables with `strata batch`, then runs the shipped gold models
//! (`models/`, write-audit-publish into gold tables) and prints a report queried from them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_core::PipelineSpec;
use strata_core::sample::{
    IotFaults, iot_events, mysql_order_changes, pipefy_events, postgres_customers, x_posts,
};
use strata_layers::bronze::{BronzeDate, BronzeWriter, LoadMarker, PutOutcome};
use strata_layers::gold::incremental::{EPOCH, FAR_FUTURE};
use strata_layers::gold::{GOLD, ModelGraph, RunOptions, column_lineage, run_observed};
use strata_layers::lake::Lake;
use strata_layers::silver::{SilverCatalog, session, sql};
use strata_runtime::lineage::{
    EventType, JobRun, LineageEmitter, ModelLineage, dataset_at, dataset_for_location,
};

use crate::Failure;

/// Flags of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder for the demo lake (a new `run-<time>` lake is made inside it).
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// IoT events to generate (the other sources get a tenth to a fifth of that).
    #[arg(long, default_value_t = 200_000)]
    pub events: usize,
}

struct Source {
    name: &'static str,
    specs: &'static [&'static str],
    records: Records,
}

/// What a source delivers to bronze: raw lines (NDJSON) or typed rows (Parquet full load).
enum Records {
    Lines(Vec<String>),
    /// Successive full loads of a table, each landed and processed in turn.
    Loads(Vec<arrow::array::RecordBatch>),
}

const START_MS: i64 = 1_763_646_312_000;

/// The shipped gold models (`models/`), run by the demo into gold tables.
const MODELS: [(&str, &str); 8] = [
    (
        "agg_device_hourly.sql",
        include_str!("../../../../models/agg_device_hourly.sql"),
    ),
    (
        "agg_device_hourly.yaml",
        include_str!("../../../../models/agg_device_hourly.yaml"),
    ),
    (
        "agg_posts_daily.sql",
        include_str!("../../../../models/agg_posts_daily.sql"),
    ),
    (
        "agg_revenue_by_segment.sql",
        include_str!("../../../../models/agg_revenue_by_segment.sql"),
    ),
    (
        "dim_customer.sql",
        include_str!("../../../../models/dim_customer.sql"),
    ),
    (
        "fact_card_phase_durations.sql",
        include_str!("../../../../models/fact_card_phase_durations.sql"),
    ),
    (
        "fact_orders.sql",
        include_str!("../../../../models/fact_orders.sql"),
    ),
    (
        "fact_orders.yaml",
        include_str!("../../../../models/fact_orders.yaml"),
    ),
];

/// The report: queries over the gold tables the models wrote (and two silver views).
const REPORT: [(&str, &str); 6] = [
    (
        "IoT: readings per site and hour (gold.agg_device_hourly, first 8)",
        "SELECT site, hour, sum(readings) AS readings, round(avg(avg_temp_c), 2) AS avg_temp_c, \
         round(max(max_temp_f), 1) AS max_temp_f FROM gold.agg_device_hourly \
         GROUP BY 1, 2 ORDER BY 2, 1 LIMIT 8",
    ),
    (
        "Pipefy: time cards spend in each phase (gold.fact_card_phase_durations)",
        "SELECT phase, count(*) AS moves, round(avg(minutes), 1) AS avg_minutes, \
         sum(CASE WHEN left_at IS NULL THEN 1 ELSE 0 END) AS cards_there_now \
         FROM gold.fact_card_phase_durations GROUP BY 1 ORDER BY 2 DESC",
    ),
    (
        "Orders (MySQL CDC): current status of live orders (gold.fact_orders)",
        "SELECT status, count(*) AS orders, sum(amount) AS total_amount FROM gold.fact_orders \
         GROUP BY 1 ORDER BY 2 DESC",
    ),
    (
        "Orders × customers (PostgreSQL full load): live revenue per segment (gold.agg_revenue_by_segment)",
        "SELECT segment, orders, revenue FROM gold.agg_revenue_by_segment ORDER BY 3 DESC",
    ),
    (
        "Orders (MySQL CDC, historical silver): how long orders stay in each status",
        "SELECT status, count(*) AS versions, \
         round(avg(date_part('epoch', valid_to) - date_part('epoch', valid_from)) / 60, 1) AS avg_minutes \
         FROM orders_history WHERE op <> 'd' AND valid_to IS NOT NULL GROUP BY 1 ORDER BY 2 DESC",
    ),
    (
        "X: posts and likes per author (gold.agg_posts_daily)",
        "SELECT author_id, sum(posts) AS posts, sum(likes) AS likes FROM gold.agg_posts_daily \
         GROUP BY 1 ORDER BY 3 DESC",
    ),
];

/// Runs the demo.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let started = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Failure::runtime)?;
    let lake_dir = args.out.join(format!("run-{}", now.as_millis()));
    let lake_url = lake_dir.to_string_lossy().to_string();
    let writer = BronzeWriter::new(Lake::open(&lake_url).map_err(Failure::runtime)?);
    let date = BronzeDate::from_epoch_micros(START_MS * 1000);
    let n = args.events.max(10);
    let iot_faults = IotFaults {
        malformed: 0.005,
        invalid: 0.005,
        duplicates: 0.01,
    };
    let sources = [
        Source {
            name: "iot",
            specs: &[include_str!("../../../../pipelines/iot.yaml")],
            records: Records::Lines(iot_events(n, 7, iot_faults, START_MS)),
        },
        Source {
            name: "pipefy",
            specs: &[
                include_str!("../../../../pipelines/pipefy.yaml"),
                include_str!("../../../../pipelines/card_phases.yaml"),
            ],
            records: Records::Lines(pipefy_events(n / 10, 8, START_MS)),
        },
        Source {
            name: "x",
            specs: &[include_str!("../../../../pipelines/x_posts.yaml")],
            records: Records::Lines(x_posts(n / 10, 9, START_MS)),
        },
        Source {
            name: "mysql.shop.orders",
            specs: &[
                include_str!("../../../../pipelines/mysql_orders_cdc.yaml"),
                include_str!("../../../../pipelines/orders.yaml"),
            ],
            records: Records::Lines(mysql_order_changes(n / 5, 10, START_MS)),
        },
        Source {
            name: "postgres.crm.customers",
            specs: &[include_str!("../../../../pipelines/pg_customers.yaml")],
            records: Records::Loads(customer_loads()?),
        },
    ];
    // Every job's OpenLineage events, in the lake: the catalog's graph from each source
    // through bronze, silver and gold (and, with the serve config, to the metrics).
    let lineage_file = lake_dir.join("lineage").join("events.ndjson");
    std::fs::create_dir_all(lake_dir.join("lineage")).map_err(Failure::runtime)?;
    let lineage_target = lineage_file.to_string_lossy().to_string();
    let emitter = Arc::new(LineageEmitter::for_target(Some(&lineage_target)));
    println!("strata demo: lake at {}\n", lake_dir.display());
    for source in &sources {
        // The demo generates what each system would send; its landing in bronze is the
        // ingestion job the real connector runs.
        let ingest = JobRun::new(format!("ingest.{}", source.name), "BATCH", "INGESTION");
        let system = [dataset_at("demo://generator", source.name)];
        let bronze = [dataset_for_location(&format!(
            "{}/bronze/source={}",
            lake_url.trim_end_matches('/'),
            source.name
        ))];
        emitter.emit(ingest.event(EventType::Start, &system, &bronze, None));
        let rounds = match &source.records {
            Records::Lines(lines) => {
                for (i, chunk) in lines.chunks(50_000).enumerate() {
                    let first = i * 50_000 + 1;
                    let name = format!("demo-{first:012}-{:012}", first + chunk.len() - 1);
                    writer
                        .put_ndjson(source.name, date, &name, chunk)
                        .await
                        .map_err(Failure::runtime)?;
                }
                println!("bronze: {} records of `{}`", lines.len(), source.name);
                1
            }
            Records::Loads(loads) => loads.len(),
        };
        for round in 0..rounds {
            if let Records::Loads(loads) = &source.records {
                land_full_load(&writer, source.name, date, round, &loads[round]).await?;
            }
            for text in source.specs {
                let spec = PipelineSpec::from_yaml(text)?;
                let batch = super::batch::Args {
                    lake: lake_url.clone(),
                    catalog: None,
                    memory_mb: 1024,
                    source: source.name.to_string(),
                    pipeline: PathBuf::from(format!("<built-in {}>", spec.name)),
                    from: None,
                    to: None,
                    batch_rows: 8192,
                    full_refresh: false,
                    commit_files: None,
                    commit_rows: 1_000_000,
                    commit_mb: 512,
                    commit_seconds: 60,
                    crash_after_commits: None,
                    lineage: Some(lineage_target.clone()),
                    metrics: Default::default(),
                };
                super::batch::run_with_spec(&batch, spec).await?;
            }
        }
        emitter.emit(ingest.event(EventType::Complete, &system, &bronze, None));
        println!();
    }
    let catalog = SilverCatalog::open_local(&lake_dir.join("catalog"))
        .await
        .map_err(Failure::runtime)?;
    let models_dir = lake_dir.join("models");
    std::fs::create_dir_all(&models_dir).map_err(Failure::runtime)?;
    for (name, text) in MODELS {
        std::fs::write(models_dir.join(name), text).map_err(Failure::runtime)?;
    }
    let graph = ModelGraph::load(&models_dir).map_err(Failure::config)?;
    let selected = graph.select(&[]).map_err(Failure::config)?;
    let mut columns = std::collections::BTreeMap::new();
    let ctx = session(&catalog).await.map_err(Failure::runtime)?;
    for m in graph.models() {
        if let Ok(c) = column_lineage(&ctx, &m.sql_for_interval(EPOCH, FAR_FUTURE)).await {
            columns.insert(m.name.clone(), c);
        }
    }
    let gold = catalog.in_namespace(GOLD).await.map_err(Failure::runtime)?;
    let observer = ModelLineage::new(emitter.clone(), catalog.clone(), gold, columns);
    let report = run_observed(
        &catalog,
        &graph,
        &selected,
        RunOptions::default(),
        &observer,
    )
    .await
    .map_err(Failure::runtime)?;
    emitter.close(Duration::from_secs(5)).await;
    for m in &report.models {
        let audits = m.audits.iter().filter(|a| a.passed()).count();
        println!(
            "gold: model {} → {:?}, {} rows, {audits}/{} audits passed",
            m.name,
            m.status,
            m.rows,
            m.audits.len()
        );
    }
    if !report.succeeded() {
        return Err(Failure::runtime(anyhow::anyhow!(
            "the demo's gold models did not all publish"
        )));
    }
    println!();
    for (title, query) in REPORT {
        let batches = sql(&catalog, query).await.map_err(Failure::runtime)?;
        println!(
            "gold — {title}\n{}\n",
            arrow::util::pretty::pretty_format_batches(&batches).map_err(Failure::runtime)?
        );
    }
    println!(
        "demo done in {:.1} s. Query it yourself:\n  strata sql --lake {} \"SELECT count(*) FROM iot_events\"",
        started.elapsed().as_secs_f64(),
        lake_dir.display()
    );
    println!(
        "Its lineage, from each source to the API's metrics:\n  strata catalog lineage metric.iot_readings --upstream --lake {} --lineage {} --models {} --serve-config deploy/analytics/serve.yaml",
        lake_dir.display(),
        lineage_file.display(),
        models_dir.display()
    );
    Ok(())
}

/// Two full loads of the CRM's customers a day apart: in the second, every 40th customer was
/// deleted at the source, so the `customers` snapshot (`full_load: replace`) loses them.
fn customer_loads() -> Result<Vec<arrow::array::RecordBatch>, Failure> {
    let first = postgres_customers(2_000, 11, START_MS)?;
    let kept: arrow::array::BooleanArray =
        (0..first.num_rows()).map(|i| Some(i % 40 != 7)).collect();
    let second = arrow::compute::filter_record_batch(&first, &kept).map_err(Failure::runtime)?;
    Ok(vec![first, second])
}

/// Lands full load number `round` as `strata ingest postgres` does: a Parquet part named after
/// the load's snapshot, then the marker saying the load is complete.
async fn land_full_load(
    writer: &BronzeWriter,
    source: &str,
    date: BronzeDate,
    round: usize,
    rows: &arrow::array::RecordBatch,
) -> Result<(), Failure> {
    let at_ms = START_MS + round as i64 * 86_400_000;
    let snapshot = strata_core::sample::iso_millis(at_ms);
    let load = format!("full-{}", snapshot.replace(['-', ':', '.'], ""));
    let outcome = writer
        .put_parquet(
            source,
            date,
            &format!("{load}-c00000-all-p00000"),
            std::slice::from_ref(rows),
            &[("strata.snapshot_time", snapshot.as_str())],
        )
        .await
        .map_err(Failure::runtime)?;
    let (PutOutcome::Created { path, .. } | PutOutcome::AlreadyPresent { path }) = outcome;
    let marker = LoadMarker {
        load,
        snapshot_time: snapshot,
        objects: vec![path],
        rows: rows.num_rows() as u64,
    };
    writer
        .put_load_marker(source, &marker)
        .await
        .map_err(Failure::runtime)?;
    println!(
        "bronze: {} rows of `{source}` (full load {}, Parquet)",
        rows.num_rows(),
        round + 1
    );
    Ok(())
}
