//! A 2,000,000-row transaction through MySQL CDC against the private MariaDB of
//! `scripts/services.sh`: handed out in bounded parts before its commit is consumed, resumed
//! inside the transaction after the source is dropped mid-way (a crash: nothing more is saved),
//! every row exactly once and in order, and the process's peak memory far below what the
//! transaction would take held whole. Its own test binary, so the peak RSS is this test's alone.
//! Skips loudly without `STRATA_TEST_MYSQL_URL` unless `CI` is set (then it fails).

use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use strata_connectors::mysql_cdc::{MysqlCdcConfig, MysqlCdcSource, SnapshotMode};

const ROWS: u64 = 2_000_000;
const PART: usize = 10_000;
/// Peak RSS allowed for the whole test process. Held whole, the transaction's change events
/// take well over 1 GiB (measured: see the `eprintln!` below and docs/sources.md).
const PEAK_RSS_MB: u64 = 400;

fn url() -> Option<String> {
    match std::env::var("STRATA_TEST_MYSQL_URL") {
        Ok(u) => Some(u),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("CI is set but STRATA_TEST_MYSQL_URL is not: run scripts/services.sh up")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: STRATA_TEST_MYSQL_URL is unset (source \"$(scripts/services.sh env)\")"
            );
            None
        }
    }
}

/// This process's peak resident set (`VmHWM`), in MiB.
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024
}

/// Reads batches until `until` events arrived in all (or the source is idle for 60 s),
/// checking that ids arrive as `next_id, next_id + 1, …` and that no batch is larger than a
/// part plus a poll's worth; saves each batch's state as a delivering driver would.
async fn read_until(src: &mut MysqlCdcSource, next_id: &mut u64, until: u64, largest: &mut usize) {
    let mut idle_since = Instant::now();
    while *next_id < until {
        assert!(
            idle_since.elapsed() < Duration::from_secs(60),
            "stuck at id {next_id}"
        );
        let batch = src
            .next_batch(Duration::from_millis(200))
            .await
            .unwrap()
            .expect("source finished early");
        if !batch.events.is_empty() {
            idle_since = Instant::now();
        }
        *largest = (*largest).max(batch.events.len());
        for e in &batch.events {
            let id = e.row().and_then(|r| r["id"].as_u64()).unwrap();
            assert_eq!(id, *next_id, "rows out of order, repeated or missing");
            *next_id += 1;
        }
        if let Some(s) = batch.state {
            src.commit(&s).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_million_row_transaction_is_handed_out_in_bounded_parts() {
    let Some(url) = url() else { return };
    let mut c = Conn::new(Opts::from_url(&url).unwrap()).await.unwrap();
    let db = format!("cdc_big_{}", std::process::id());
    c.query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
        .await
        .unwrap();
    c.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .unwrap();
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id BIGINT UNSIGNED PRIMARY KEY, v INT NOT NULL, \
         note VARCHAR(40) NOT NULL) ENGINE=InnoDB"
    ))
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], &state);
    config.server_id = 3_000_000 + std::process::id() % 100_000;
    config.snapshot_mode = SnapshotMode::Never;
    config.max_batch_events = PART;
    config.max_transaction_events = PART;
    let mut src = MysqlCdcSource::open(config.clone()).await.unwrap();

    // One transaction of 2M rows (MariaDB's sequence engine).
    let started = Instant::now();
    c.query_drop(format!(
        "INSERT INTO `{db}`.t (id, v, note) SELECT seq, seq % 1000, CONCAT('row ', seq) \
         FROM `{db}`.seq_0_to_{}",
        ROWS - 1
    ))
    .await
    .unwrap();
    eprintln!("2M-row INSERT committed in {:?}", started.elapsed());

    // Read a third of it, then "crash": drop the source without saving anything more.
    let mut next_id = 0u64;
    let mut largest = 0usize;
    read_until(&mut src, &mut next_id, ROWS / 3, &mut largest).await;
    eprintln!("a third read: peak RSS {} MiB", peak_rss_mb());
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(
        saved.contains("\"part\""),
        "the state after a part is a position inside the transaction: {saved}"
    );
    drop(src);

    // A new source from the saved state: the transaction again from its start, the parts
    // already handed out skipped, the rest exactly once.
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    read_until(&mut src, &mut next_id, ROWS, &mut largest).await;
    let tail = src
        .next_batch(Duration::from_millis(800))
        .await
        .unwrap()
        .unwrap();
    assert!(
        tail.events.is_empty(),
        "{} events after the last row",
        tail.events.len()
    );
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(
        !saved.contains("\"part\""),
        "the commit ends the parts: {saved}"
    );

    let peak = peak_rss_mb();
    eprintln!(
        "{ROWS} rows in {:?}; largest batch {largest} events; peak RSS {peak} MiB",
        started.elapsed()
    );
    assert!(largest <= 2 * PART, "a batch of {largest} events");
    assert!(
        peak < PEAK_RSS_MB,
        "peak RSS {peak} MiB: the transaction was held in memory"
    );
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}
