//! Two writers committing to one silver table at once, through two independent catalog handles
//! (own connection pools, like two processes): on the embedded SQLite catalog with a local
//! warehouse, with an S3 warehouse on a real S3-compatible server (moto), and with the catalog
//! in a real PostgreSQL (both started by `scripts/services.sh up`).
//!
//! Both writers load the table, check coverage and write their data files before either commits,
//! so every round is a real race at the compare-and-swap: for the same bronze file exactly one
//! wins and the other reports the lost race (its files are never referenced); for different files
//! the loser re-checks on the new version and commits on top. Outside CI, without the S3 server,
//! the server tests say so loudly and pass; with `CI` set they fail.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use strata_layers::silver::{CatalogConfig, SilverAppend, SilverCatalog, WriteOptions};

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("cover", DataType::Utf8, false),
        Field::new("writer", DataType::Utf8, false),
    ]))
}

fn rows(cover: &str, writer: &str, n: i64) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..n)),
            Arc::new(StringArray::from(vec![cover; n as usize])),
            Arc::new(StringArray::from(vec![writer; n as usize])),
        ],
    )
    .expect("batch")
}

/// Stages an append of `cover` on `base` (files written, nothing committed yet).
async fn staged(base: &iceberg::table::Table, cover: &str, writer: &str) -> SilverAppend {
    let mut w = SilverAppend::start(base, &WriteOptions::default())
        .await
        .expect("start");
    w.write(&rows(cover, writer, 100)).await.expect("write");
    w
}

async fn race(config: CatalogConfig, table: &str) {
    let a = SilverCatalog::open(&config).await.expect("catalog a");
    let b = SilverCatalog::open(&config).await.expect("catalog b");
    a.ensure_table(table, &schema(), None)
        .await
        .expect("create");
    let mut winners: BTreeMap<String, String> = BTreeMap::new();
    for round in 0..4 {
        // Same file from both writers.
        let cover = format!("bronze/same-{round}");
        let (base_a, base_b) = (
            a.load(table).await.expect("load"),
            b.load(table).await.expect("load"),
        );
        let (wa, wb) = (
            staged(&base_a, &cover, "a").await,
            staged(&base_b, &cover, "b").await,
        );
        let covered = [cover.clone()];
        let (ra, rb) = tokio::join!(wa.commit(&a, &covered, &[]), wb.commit(&b, &covered, &[]));
        let (ra, rb) = (ra.expect("commit a").report, rb.expect("commit b").report);
        assert_eq!(
            [ra.skipped, rb.skipped].iter().filter(|s| !**s).count(),
            1,
            "exactly one writer commits {cover}: {ra:?} {rb:?}"
        );
        let loser = if ra.skipped { &ra } else { &rb };
        assert!(loser.lost_race, "the loser knows it lost: {loser:?}");
        winners.insert(cover, if ra.skipped { "b" } else { "a" }.to_string());

        // Different files: the loser retries on the new version and both land.
        let (base_a, base_b) = (
            a.load(table).await.expect("load"),
            b.load(table).await.expect("load"),
        );
        let (ca, cb) = (format!("bronze/a-{round}"), format!("bronze/b-{round}"));
        let (wa, wb) = (
            staged(&base_a, &ca, "a").await,
            staged(&base_b, &cb, "b").await,
        );
        let (ra, rb) = tokio::join!(
            wa.commit(&a, std::slice::from_ref(&ca), &[]),
            wb.commit(&b, std::slice::from_ref(&cb), &[])
        );
        let (ra, rb) = (ra.expect("commit a").report, rb.expect("commit b").report);
        assert!(!ra.skipped && !rb.skipped);
        // Both staged on the same version: the second to commit was refused once, and says so.
        assert!(ra.conflicts + rb.conflicts >= 1, "{ra:?} {rb:?}");
        winners.insert(ca, "a".into());
        winners.insert(cb, "b".into());
    }
    // Every file exactly once, written by its winner only.
    let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for batch in a.read_table(table).await.expect("read") {
        let covers = batch.column(1).as_string::<i32>();
        let writers = batch.column(2).as_string::<i32>();
        for i in 0..batch.num_rows() {
            let e = seen
                .entry(covers.value(i).to_string())
                .or_insert((0, writers.value(i).to_string()));
            e.0 += 1;
            assert_eq!(e.1, writers.value(i), "one writer per file");
        }
    }
    assert_eq!(seen.len(), winners.len());
    for (cover, writer) in &winners {
        assert_eq!(seen.get(cover), Some(&(100, writer.clone())), "{cover}");
    }
}

#[tokio::test]
async fn concurrent_writers_commit_each_file_once_locally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = CatalogConfig::for_lake(&dir.path().display().to_string(), None).expect("config");
    race(config, "race").await;
}

#[tokio::test]
async fn concurrent_writers_commit_each_file_once_on_s3() {
    let Ok(endpoint) = std::env::var("STRATA_TEST_S3_ENDPOINT") else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but STRATA_TEST_S3_ENDPOINT is not: run `scripts/services.sh up`");
        }
        eprintln!("SKIPPED concurrent_writers_commit_each_file_once_on_s3: no S3 server");
        return;
    };
    let bucket = std::env::var("STRATA_TEST_S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut config = CatalogConfig::for_lake(
        &format!("s3://{bucket}/silver-race-{unique}"),
        Some(&format!(
            "sqlite:{}",
            dir.path().join("catalog.db").display()
        )),
    )
    .expect("config");
    config.s3_options = vec![
        ("aws_endpoint".into(), endpoint),
        ("aws_allow_http".into(), "true".into()),
        ("aws_region".into(), "us-east-1".into()),
        ("aws_access_key_id".into(), "test".into()),
        ("aws_secret_access_key".into(), "test".into()),
    ];
    assert!(config.warehouse.starts_with("s3://"), "{config:?}");
    race(config, "race").await;
}

#[tokio::test]
async fn concurrent_writers_commit_each_file_once_with_a_postgres_catalog() {
    let Ok(url) = std::env::var("STRATA_TEST_PG_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but STRATA_TEST_PG_URL is not: run `scripts/services.sh up`");
        }
        eprintln!(
            "SKIPPED concurrent_writers_commit_each_file_once_with_a_postgres_catalog: no PostgreSQL"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let config =
        CatalogConfig::for_lake(&dir.path().display().to_string(), Some(&url)).expect("config");
    // The catalog database outlives the test: a fresh table name per run.
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    race(config, &format!("race_{unique}")).await;
}

#[tokio::test]
async fn an_unreachable_catalog_database_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = CatalogConfig::for_lake(
        &dir.path().display().to_string(),
        Some("postgres://strata:secret@127.0.0.1:9/nowhere"),
    )
    .expect("config");
    let e = SilverCatalog::open(&config).await.expect_err("unreachable");
    let text = e.to_string();
    assert!(
        text.contains("127.0.0.1:9") && text.contains("hint"),
        "{text}"
    );
    assert!(!text.contains("secret"), "the password is redacted: {text}");
}
