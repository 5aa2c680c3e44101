//! Keyed silver tables on the copy-on-write overwrite commit: upserts, deletes, replays and late
//! events; files pruned by key bounds; the snapshot summary; and writers racing on the same keys
//! with the embedded catalog, a PostgreSQL catalog and an S3 warehouse (moto). No update is
//! lost: the loser of a race merges again on the winner's version.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use strata_core::keyed::{IS_CURRENT, KeyedTable};
use strata_core::spec::{DeleteMode, OutputSpec, TableKind};
use strata_layers::silver::{
    CatalogConfig, CoverageIndex, IcebergTable, LiveFiles, SilverCatalog, SilverMerge, WriteOptions,
};

fn base() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
        Field::new("op", DataType::Utf8, false),
        Field::new("seq", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

fn keyed(kind: TableKind) -> KeyedTable {
    let output = OutputSpec {
        kind,
        key: vec!["id".into()],
        sequence: vec!["seq".into()],
        op: Some("op".into()),
        deletes: DeleteMode::Hard,
        event_time: Some("ts".into()),
        ..OutputSpec::default()
    };
    KeyedTable::from_spec(&output, base()).unwrap().unwrap()
}

/// (id, value, op, seq); the event time is the sequence in seconds.
fn events(rows: &[(i64, &str, &str, i64)]) -> RecordBatch {
    RecordBatch::try_new(
        base(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|e| e.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|e| e.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|e| e.2))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|e| e.3))),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|e| e.3 * 1_000_000))
                    .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

async fn merge(
    catalog: &SilverCatalog,
    table: &IcebergTable,
    kind: TableKind,
    rows: &[(i64, &str, &str, i64)],
    covers: &str,
    index: &mut CoverageIndex,
) -> (IcebergTable, strata_layers::silver::MergeReport, bool) {
    let mut writer = SilverMerge::start(table, keyed(kind), &WriteOptions::default());
    writer.write(&events(rows)).unwrap();
    let (committed, report) = writer
        .commit_indexed(catalog, &[covers.to_string()], &[], index)
        .await
        .expect("merge commit");
    (committed.table, report, committed.report.skipped)
}

/// id → (value, seq) of the table's rows (current rows only, for a historical table).
async fn rows_by_key(catalog: &SilverCatalog, name: &str) -> BTreeMap<i64, Vec<(String, i64)>> {
    let mut out: BTreeMap<i64, Vec<(String, i64)>> = BTreeMap::new();
    for b in catalog.read_table(name).await.expect("read") {
        let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let vs = b.column_by_name("v").unwrap().as_string::<i32>();
        let seqs = b.column_by_name("seq").unwrap().as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.entry(ids.value(i))
                .or_default()
                .push((vs.value(i).to_string(), seqs.value(i)));
        }
    }
    for versions in out.values_mut() {
        versions.sort_by_key(|v| v.1);
    }
    out
}

async fn table(catalog: &SilverCatalog, name: &str, kind: TableKind) -> IcebergTable {
    catalog
        .ensure_table(name, keyed(kind).table_schema(), None)
        .await
        .expect("table")
}

#[tokio::test]
async fn a_snapshot_table_upserts_deletes_and_ignores_replays() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SilverCatalog::open_local(dir.path()).await.unwrap();
    let t = table(&catalog, "orders", TableKind::Snapshot).await;
    let mut index = CoverageIndex::default();
    let first: Vec<(i64, &str, &str, i64)> = (0..100).map(|i| (i, "v1", "c", i)).collect();
    let (t, _, _) = merge(&catalog, &t, TableKind::Snapshot, &first, "a", &mut index).await;
    let (t, report, _) = merge(
        &catalog,
        &t,
        TableKind::Snapshot,
        &[
            (5, "v2", "u", 200),
            (7, "", "d", 201),
            (500, "new", "c", 202),
            (6, "old", "u", 1),
        ],
        "b",
        &mut index,
    )
    .await;
    assert_eq!(report.events, 4);
    assert_eq!(
        (report.rewrite.removed_files, report.rewrite.removed_rows),
        (1, 100)
    );
    assert_eq!(
        report.rewrite.added_rows, 100,
        "100 - 1 deleted + 1 inserted"
    );
    let rows = rows_by_key(&catalog, "orders").await;
    assert_eq!(rows.len(), 100);
    assert_eq!(rows[&5], vec![("v2".to_string(), 200)]);
    assert!(!rows.contains_key(&7), "deleted");
    assert_eq!(rows[&500], vec![("new".to_string(), 202)]);
    assert_eq!(
        rows[&6],
        vec![("v1".to_string(), 6)],
        "an older update changes nothing"
    );

    // The snapshot says what happened, with totals a reader can trust.
    let snapshot = t.metadata().current_snapshot().unwrap();
    let summary = snapshot.summary();
    assert_eq!(summary.operation, iceberg::spec::Operation::Overwrite);
    let prop = |k: &str| {
        summary
            .additional_properties
            .get(k)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(prop("deleted-data-files"), "1");
    assert_eq!(prop("added-records"), "100");
    assert_eq!(prop("total-records"), "100");
    assert_eq!(prop("total-data-files"), "1");

    // Committing the same input again does nothing.
    let (_, _, skipped) = merge(
        &catalog,
        &t,
        TableKind::Snapshot,
        &[(5, "v3", "u", 300)],
        "b",
        &mut index,
    )
    .await;
    assert!(skipped);
    assert_eq!(rows_by_key(&catalog, "orders").await[&5][0].0, "v2");
}

#[tokio::test]
async fn only_files_whose_key_range_holds_a_touched_key_are_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SilverCatalog::open_local(dir.path()).await.unwrap();
    let mut t = table(&catalog, "ranges", TableKind::Snapshot).await;
    let mut index = CoverageIndex::default();
    for chunk in 0..4i64 {
        let rows: Vec<(i64, &str, &str, i64)> = (chunk * 1000..chunk * 1000 + 1000)
            .map(|i| (i, "v", "c", i))
            .collect();
        t = merge(
            &catalog,
            &t,
            TableKind::Snapshot,
            &rows,
            &format!("load-{chunk}"),
            &mut index,
        )
        .await
        .0;
    }
    assert_eq!(LiveFiles::read(&t).await.unwrap().data_files().count(), 4);
    let (t, report, _) = merge(
        &catalog,
        &t,
        TableKind::Snapshot,
        &[(2500, "x", "u", 10_000), (2501, "x", "u", 10_001)],
        "update",
        &mut index,
    )
    .await;
    assert_eq!(report.files_pruned, 3);
    assert_eq!(report.rewrite.removed_files, 1);
    let live = LiveFiles::read(&t).await.unwrap();
    assert_eq!(live.data_files().count(), 4);
    assert_eq!(rows_by_key(&catalog, "ranges").await.len(), 4000);
}

#[tokio::test]
async fn a_historical_table_keeps_every_version_and_places_late_events() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SilverCatalog::open_local(dir.path()).await.unwrap();
    let t = table(&catalog, "orders_history", TableKind::Historical).await;
    let mut index = CoverageIndex::default();
    let (t, _, _) = merge(
        &catalog,
        &t,
        TableKind::Historical,
        &[(1, "a", "c", 10), (1, "c", "u", 30), (2, "x", "c", 11)],
        "one",
        &mut index,
    )
    .await;
    let (_, _, _) = merge(
        &catalog,
        &t,
        TableKind::Historical,
        &[(1, "b", "u", 20), (1, "c", "u", 30), (2, "", "d", 40)],
        "two",
        &mut index,
    )
    .await;
    let rows = rows_by_key(&catalog, "orders_history").await;
    let values = |k: i64| rows[&k].iter().map(|v| v.0.as_str()).collect::<Vec<_>>();
    assert_eq!(
        values(1),
        vec!["a", "b", "c"],
        "the replayed event adds nothing"
    );
    assert_eq!(values(2), vec!["x", ""]);
    let mut current = 0;
    for b in catalog.read_table("orders_history").await.unwrap() {
        let c = b.column_by_name(IS_CURRENT).unwrap().as_boolean();
        current += c.iter().filter(|v| *v == Some(true)).count();
    }
    assert_eq!(current, 1, "key 1 is current; key 2 was deleted");
}

/// Two writers merge interleaved versions of the same keys into a historical table. Every
/// version of every key must be there at the end: an overwrite based on a stale version would
/// drop the other writer's.
async fn race(config: CatalogConfig, name: &str) {
    const ROUNDS: i64 = 6;
    const KEYS: i64 = 20;
    let setup = SilverCatalog::open(&config).await.expect("catalog");
    table(&setup, name, TableKind::Historical).await;
    // Both writers read the same version before either commits: one of them must lose.
    let loaded = Arc::new(tokio::sync::Barrier::new(2));
    let mut tasks = Vec::new();
    for writer in 0..2i64 {
        let config = config.clone();
        let name = name.to_string();
        let loaded = loaded.clone();
        tasks.push(tokio::spawn(async move {
            let catalog = SilverCatalog::open(&config).await.expect("catalog");
            let mut t = catalog.load(&name).await.expect("load");
            loaded.wait().await;
            let mut index = CoverageIndex::default();
            let mut retries = 0;
            for round in 0..ROUNDS {
                let seq = round * 2 + writer;
                let value = format!("w{writer}r{round}");
                let rows: Vec<(i64, &str, &str, i64)> =
                    (0..KEYS).map(|k| (k, value.as_str(), "u", seq)).collect();
                let (next, report, _) = merge(
                    &catalog,
                    &t,
                    TableKind::Historical,
                    &rows,
                    &format!("w{writer}-r{round}"),
                    &mut index,
                )
                .await;
                t = next;
                retries += report.retries;
            }
            retries
        }));
    }
    let mut retries = 0;
    for task in tasks {
        retries += task.await.expect("writer");
    }
    assert!(retries >= 1, "the writers never raced");
    let rows = rows_by_key(&setup, name).await;
    assert_eq!(rows.len() as i64, KEYS);
    for (key, versions) in rows {
        let seqs: Vec<i64> = versions.iter().map(|v| v.1).collect();
        assert_eq!(
            seqs,
            (0..ROUNDS * 2).collect::<Vec<_>>(),
            "key {key}: a lost update"
        );
    }
    let t = setup.load(name).await.unwrap();
    let live = LiveFiles::read(&t).await.unwrap();
    let paths: HashSet<&str> = live.paths();
    assert!(!paths.is_empty());
    assert_eq!(t.metadata().snapshots().count() as i64, ROUNDS * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_lose_no_update_on_the_embedded_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let config = CatalogConfig::for_lake(&dir.path().display().to_string(), None).unwrap();
    race(config, "race").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_lose_no_update_with_a_postgres_catalog() {
    let Ok(url) = std::env::var("STRATA_TEST_PG_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but STRATA_TEST_PG_URL is not: run `scripts/services.sh up`");
        }
        eprintln!("SKIPPED racing_writers_lose_no_update_with_a_postgres_catalog: no PostgreSQL");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = CatalogConfig::for_lake(&dir.path().display().to_string(), Some(&url)).unwrap();
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    race(config, &format!("keyed_race_{unique}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_lose_no_update_on_s3() {
    let Ok(endpoint) = std::env::var("STRATA_TEST_S3_ENDPOINT") else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but STRATA_TEST_S3_ENDPOINT is not: run `scripts/services.sh up`");
        }
        eprintln!("SKIPPED racing_writers_lose_no_update_on_s3: no S3 server");
        return;
    };
    let bucket = std::env::var("STRATA_TEST_S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let dir = tempfile::tempdir().unwrap();
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut config = CatalogConfig::for_lake(
        &format!("s3://{bucket}/keyed-race-{unique}"),
        Some(&format!(
            "sqlite:{}",
            dir.path().join("catalog.db").display()
        )),
    )
    .unwrap();
    config.s3_options = vec![
        ("aws_endpoint".into(), endpoint),
        ("aws_allow_http".into(), "true".into()),
        ("aws_region".into(), "us-east-1".into()),
        ("aws_access_key_id".into(), "test".into()),
        ("aws_secret_access_key".into(), "test".into()),
    ];
    race(config, "race").await;
}
