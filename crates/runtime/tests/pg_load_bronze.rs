//! `PgLoadSource` → `BronzePartsSink` on the driver, against the PostgreSQL of
//! `scripts/services.sh up` (`STRATA_TEST_PG_URL`): a full + incremental load lands every row
//! once as Parquet objects carrying the snapshot metadata; the watermark is stored only by the
//! commit after every part was written, so a load whose sink fails leaves it where it was and
//! the next run reads the new rows. Without the server the test says so and passes; with `CI`
//! set it fails.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use strata_connectors::postgres::{
    IncrementalConfig, PgConnection, PgLoader, PgSourceConfig, PgTableConfig, WatermarkState,
};
use strata_layers::bronze::BronzeWriter;
use strata_layers::lake::Lake;
use strata_runtime::sinks::BronzePartsSink;
use strata_runtime::sources::PgLoadSource;
use strata_runtime::{
    CommitPolicy, CommitReport, Committed, Committer, Driver, DriverOptions, Passthrough, Position,
    Result, RuntimeError, Sink, StateUpdate,
};
use tokio_postgres::NoTls;

mod common;
use common::{server, unique};

/// Fails its first write after a pause (long enough for the loader to finish reading).
struct FailingSink(BronzePartsSink);

#[async_trait::async_trait]
impl Sink for FailingSink {
    async fn write(&mut self, _rows: &RecordBatch) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(800)).await;
        Err(RuntimeError::Stage {
            stage: "sink",
            message: "test: the object store refused the put".into(),
        })
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        self.0.write_quarantine(rows).await
    }
}

#[async_trait::async_trait]
impl Committer for FailingSink {
    async fn committed(&mut self) -> Result<Committed> {
        self.0.committed().await
    }

    async fn commit(&mut self, position: &Position, state: StateUpdate) -> Result<CommitReport> {
        self.0.commit(position, state).await
    }
}

fn options() -> DriverOptions {
    DriverOptions {
        commit: CommitPolicy::at_end(),
        channel_depth: 2,
        stop_when_idle: None,
        crash_after_commits: None,
    }
}

async fn load<K: Sink + Committer>(
    config: &PgSourceConfig,
    sink: K,
) -> Result<strata_runtime::RunReport> {
    let loader = PgLoader::new(config.clone())?;
    let source = PgLoadSource::new(loader, Arc::new(|_| {}));
    Driver::new(source, Passthrough::new("pg load"), sink, options())
        .run(std::future::pending())
        .await
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every id in the lake's Parquet objects, and checks each object's metadata.
fn ids_in(lake: &Path) -> Vec<i64> {
    let mut ids = Vec::new();
    for f in parquet_files(lake) {
        let file = std::fs::File::open(&f).expect("open");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet");
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned()
            .unwrap_or_default();
        assert!(
            kv.iter().any(|e| e.key == "strata.snapshot_time"),
            "{}: no snapshot time in {kv:?}",
            f.display()
        );
        assert!(
            !kv.iter().any(|e| e.key.starts_with("strata.bronze.")),
            "{}: routing keys leaked into the object: {kv:?}",
            f.display()
        );
        for batch in builder.build().expect("reader") {
            let batch = batch.expect("batch");
            ids.extend(batch.column(0).as_primitive::<Int64Type>().values().iter());
        }
    }
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_parts_land_once_and_the_watermark_moves_only_after_every_part_is_written() {
    let Some(url) = server("STRATA_TEST_PG_URL") else {
        return;
    };
    let schema = unique("rt_load");
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.orders (id int8 PRIMARY KEY, amount int4 NOT NULL, updated_at timestamptz NOT NULL);
             INSERT INTO {schema}.orders SELECT g, g % 97, timestamptz '2026-11-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, 5000) g;"
        ))
        .await
        .expect("fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let state_path = dir.path().join("watermarks.json");
    let mut table = PgTableConfig::new(&schema, "orders");
    table.chunks = Some(3);
    table.incremental = Some(IncrementalConfig {
        column: "updated_at".into(),
    });
    let mut config = PgSourceConfig::new(PgConnection::from_url(&url), vec![table]);
    config.parallelism = 2;
    config.part_rows = 1_000;
    config.state_file = Some(state_path.clone());
    let qualified = format!("{schema}.orders");
    let sink_into = |lake: &Path| {
        let lake = Lake::open(lake.to_str().expect("utf-8 path")).expect("lake");
        BronzePartsSink::new(
            BronzeWriter::new(lake),
            None,
            Some(state_path.clone()),
            false,
        )
    };

    // 1. The first run reads everything.
    let lake_a = dir.path().join("lake-a");
    let sink = sink_into(&lake_a);
    let counts = sink.counts();
    let report = load(&config, sink).await.expect("first load");
    assert_eq!(report.commits, 1, "a load is one unit");
    assert_eq!(ids_in(&lake_a), (1..=5000).collect::<Vec<i64>>());
    assert!(counts.created.load(std::sync::atomic::Ordering::Relaxed) >= 5);
    let first = WatermarkState::load(&state_path).expect("state");
    assert_eq!(first.tables[&qualified].last, "2026-11-01 01:23:20+00");

    // 2. New rows; a run whose sink fails stores no watermark.
    client
        .batch_execute(&format!(
            "INSERT INTO {schema}.orders SELECT g, 1, timestamptz '2026-11-02 00:00:00+00' + g * interval '1 second' FROM generate_series(5001, 5200) g;"
        ))
        .await
        .expect("new rows");
    let lake_b = dir.path().join("lake-b");
    let failed = load(&config, FailingSink(sink_into(&lake_b))).await;
    let err = failed.expect_err("the sink failed");
    assert!(err.to_string().contains("refused the put"), "{err}");
    assert_eq!(
        WatermarkState::load(&state_path).expect("state"),
        first,
        "a load that was not written must not move the watermark"
    );

    // 3. The next run reads exactly the new rows and moves it.
    let lake_c = dir.path().join("lake-c");
    load(&config, sink_into(&lake_c)).await.expect("third load");
    assert_eq!(ids_in(&lake_c), (5001..=5200).collect::<Vec<i64>>());
    let third = WatermarkState::load(&state_path).expect("state");
    assert_eq!(third.tables[&qualified].last, "2026-11-02 01:26:40+00");
    let _ = client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
}
