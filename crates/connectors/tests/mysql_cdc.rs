//! MySQL / MariaDB CDC against the private MariaDB of `scripts/services.sh` (row binlog, full
//! metadata). Skips loudly without `STRATA_TEST_MYSQL_URL` unless `CI` is set (then it fails).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use serde_json::{Value as Json, json};
use strata_connectors::ConnectorError;
use strata_connectors::mysql_cdc::{
    ChangeEvent, MysqlCdcConfig, MysqlCdcSource, Op, ResumeBy, SnapshotLocking, SnapshotMethod,
    SnapshotMode, checks, to_batch,
};

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

async fn root(url: &str) -> Conn {
    let mut c = Conn::new(Opts::from_url(url).unwrap()).await.unwrap();
    c.query_drop("SET time_zone = '+00:00'").await.unwrap();
    c
}

/// A replica server id no other test (or earlier run) uses.
fn server_id() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = (std::process::id() % 100_000) * 100 + 1_000_000;
    base + NEXT.fetch_add(1, Ordering::SeqCst)
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

async fn fresh_db(conn: &mut Conn, prefix: &str) -> String {
    let db = unique(prefix);
    conn.query_drop(format!("CREATE DATABASE `{db}`"))
        .await
        .unwrap();
    db
}

/// Reads until `n` events arrived (committing each batch's state), or panics after 30 s.
async fn read_n(src: &mut MysqlCdcSource, n: usize, log: &mut Vec<ChangeEvent>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events arrived",
            log.len()
        );
        let batch = src
            .next_batch(Duration::from_millis(200))
            .await
            .unwrap()
            .expect("source finished early");
        log.extend(batch.events);
        if let Some(s) = batch.state {
            src.commit(&s).unwrap();
        }
    }
    assert_eq!(
        log.len(),
        n,
        "more events than expected: {:?}",
        &log[n.min(log.len())..]
    );
}

fn id_of(e: &ChangeEvent) -> u64 {
    e.row().and_then(|r| r["id"].as_u64()).unwrap()
}

fn summary(events: &[ChangeEvent]) -> Vec<(String, u64)> {
    events
        .iter()
        .map(|e| (e.op.letter().to_string(), id_of(e)))
        .collect()
}

#[tokio::test]
async fn types_transactions_ddl_and_restart_exactly_once() {
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_types").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (
            id INT UNSIGNED PRIMARY KEY,
            u_tiny TINYINT UNSIGNED, u_big BIGINT UNSIGNED, i_small SMALLINT,
            amount DECIMAL(12,2), dt DATETIME, ts TIMESTAMP(3) NULL, d DATE,
            doc JSON, status ENUM('new','paid','void'), tags SET('a','b','c'),
            note VARCHAR(40) NULL
        ) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    let ins = |id: u32| {
        format!(
            "INSERT INTO `{db}`.t (id, u_tiny, u_big, i_small, amount, dt, ts, d, doc, status, \
             tags, note) VALUES ({id}, 255, 18446744073709551615, -3, 1530.90, \
             '2025-11-20 13:55:12', '2025-11-20 13:55:12.120', '2025-11-20', \
             '{{\"a\": [1, 2]}}', 'new', 'a,c', NULL)"
        )
    };
    c.query_drop(ins(1)).await.unwrap();
    c.query_drop(ins(2)).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], &state);
    config.server_id = server_id();
    let mut src = MysqlCdcSource::open(config.clone()).await.unwrap();
    assert!(src.server_info().full_metadata);
    let mut log = Vec::new();
    read_n(&mut src, 2, &mut log).await;
    assert_eq!(summary(&log), vec![("r".into(), 1), ("r".into(), 2)]);
    let snap_row = log[0].after.clone().unwrap();
    assert_eq!(snap_row["u_tiny"], json!(255));
    assert_eq!(snap_row["u_big"], json!(18446744073709551615u64));
    assert_eq!(snap_row["i_small"], json!(-3));
    assert_eq!(snap_row["amount"], json!("1530.90"));
    assert_eq!(snap_row["dt"], json!(1763646912000i64));
    assert_eq!(snap_row["ts"], json!("2025-11-20T13:55:12.12Z"));
    assert_eq!(snap_row["d"], json!(20412));
    assert_eq!(snap_row["doc"], json!("{\"a\": [1, 2]}"));
    assert_eq!(snap_row["status"], json!("new"));
    assert_eq!(snap_row["tags"], json!("a,c"));
    assert_eq!(snap_row["note"], Json::Null);
    assert_eq!(log[1].source.snapshot, "last");

    // Single statements, a multi-statement transaction, a DDL, then more changes.
    c.query_drop(ins(3)).await.unwrap();
    c.query_drop(format!(
        "UPDATE `{db}`.t SET status = 'paid', note = 'x' WHERE id = 1"
    ))
    .await
    .unwrap();
    c.query_drop(format!("DELETE FROM `{db}`.t WHERE id = 2"))
        .await
        .unwrap();
    let mut tx = c.start_transaction(Default::default()).await.unwrap();
    tx.query_drop(ins(4)).await.unwrap();
    tx.query_drop(format!(
        "UPDATE `{db}`.t SET amount = 0.05, tags = '' WHERE id = 4"
    ))
    .await
    .unwrap();
    tx.query_drop(format!("UPDATE `{db}`.t SET u_tiny = 0 WHERE id = 3"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    c.query_drop(format!(
        "ALTER TABLE `{db}`.t ADD COLUMN extra INT NOT NULL DEFAULT 7"
    ))
    .await
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO `{db}`.t (id, extra, dt, ts) VALUES (5, 9, '0000-00-00 00:00:00', NULL)"
    ))
    .await
    .unwrap();
    c.query_drop(format!("UPDATE `{db}`.t SET status = 'void' WHERE id = 1"))
        .await
        .unwrap();
    read_n(&mut src, 10, &mut log).await;
    let tail = &log[2..];
    assert_eq!(
        summary(tail),
        vec![
            ("c".into(), 3),
            ("u".into(), 1),
            ("d".into(), 2),
            ("c".into(), 4),
            ("u".into(), 4),
            ("u".into(), 3),
            ("c".into(), 5),
            ("u".into(), 1),
        ]
    );
    // A snapshot row and the binlog's image of the same row are identical.
    assert_eq!(tail[1].before.as_ref().unwrap(), &snap_row);
    assert_eq!(
        tail[2].before.as_ref().unwrap(),
        log[1].after.as_ref().unwrap()
    );
    let u1 = tail[1].after.as_ref().unwrap();
    assert_eq!(
        (u1["status"].clone(), u1["note"].clone()),
        (json!("paid"), json!("x"))
    );
    assert!(tail[2].after.is_none() && tail[2].op == Op::Delete);
    let u4 = tail[4].after.as_ref().unwrap();
    assert_eq!(
        (u4["amount"].clone(), u4["tags"].clone()),
        (json!("0.05"), json!(""))
    );
    // Same transaction → same GTID, one more than the previous.
    assert_eq!(tail[3].source.gtid, tail[5].source.gtid);
    assert_ne!(tail[2].source.gtid, tail[3].source.gtid);
    assert!(tail[3].source.gtid.as_deref().unwrap().starts_with("0-1-"));
    // After the ALTER: the new column, and zero dates are null.
    assert!(tail[5].after.as_ref().unwrap().get("extra").is_none());
    let c5 = tail[6].after.as_ref().unwrap();
    assert_eq!(c5["extra"], json!(9));
    assert_eq!(c5["dt"], Json::Null);
    assert_eq!(tail[7].after.as_ref().unwrap()["extra"], json!(7));
    // Envelope and Arrow.
    let j = tail[1].to_json();
    assert_eq!(j["op"], json!("u"));
    assert_eq!(j["source"]["db"], json!(db));
    assert_eq!(j["source"]["table"], json!("t"));
    assert_eq!(j["source"]["snapshot"], json!("false"));
    assert!(j["source"]["file"].as_str().unwrap().starts_with("binlog."));
    assert_eq!(tail[1].key(), Some(json!({"id": 1})));
    assert_eq!(to_batch(&log).unwrap().num_rows(), 10);

    // Crash: a batch is read but never committed, and the source is dropped.
    c.query_drop(ins(6)).await.unwrap();
    c.query_drop(format!("UPDATE `{db}`.t SET note = 'y' WHERE id = 6"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let lost = loop {
        let b = src
            .next_batch(Duration::from_millis(200))
            .await
            .unwrap()
            .unwrap();
        if !b.events.is_empty() {
            break b.events;
        }
        assert!(Instant::now() < deadline);
    };
    assert_eq!(summary(&lost)[0], ("c".into(), 6));
    drop(src);
    c.query_drop(format!("DELETE FROM `{db}`.t WHERE id = 6"))
        .await
        .unwrap();
    c.query_drop(ins(7)).await.unwrap();

    // Restart from the state file: the uncommitted changes come again, nothing committed does.
    // Same server id: the server may not have noticed the dropped connection yet (error 4052);
    // the source waits for it.
    let mut src = MysqlCdcSource::open(config.clone()).await.unwrap();
    let mut again = Vec::new();
    read_n(&mut src, 4, &mut again).await;
    assert_eq!(
        summary(&again),
        vec![
            ("c".into(), 6),
            ("u".into(), 6),
            ("d".into(), 6),
            ("c".into(), 7)
        ]
    );
    log.extend(again);
    // Every change exactly once, in order per key.
    let mut per_key: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for e in &log {
        per_key
            .entry(id_of(e))
            .or_default()
            .push(e.op.letter().into());
    }
    assert_eq!(per_key[&1], vec!["r", "u", "u"]);
    assert_eq!(per_key[&6], vec!["c", "u", "d"]);
    // Nothing more: idle.
    let b = src
        .next_batch(Duration::from_millis(500))
        .await
        .unwrap()
        .unwrap();
    assert!(b.events.is_empty(), "{:?}", b.events);
    drop(src);
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_during_writes_has_no_gap_and_no_overlap() {
    let Some(url) = url() else { return };
    snapshot_during_writes(&url, SnapshotLocking::Auto, SnapshotMethod::ServerStatus).await;
}

/// The path Oracle MySQL takes (no `binlog_snapshot_*` status), forced on MariaDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_during_writes_with_global_read_lock() {
    let Some(url) = url() else { return };
    snapshot_during_writes(
        &url,
        SnapshotLocking::GlobalReadLock,
        SnapshotMethod::GlobalReadLock,
    )
    .await;
}

/// The path taken without `RELOAD` on a server without snapshot status, forced on MariaDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_during_writes_with_table_locks() {
    let Some(url) = url() else { return };
    snapshot_during_writes(
        &url,
        SnapshotLocking::TableLocks,
        SnapshotMethod::TableLocks,
    )
    .await;
}

/// A snapshot taken while a writer inserts, updates and deletes: applying every event to a
/// model must rebuild the table exactly, with every row inserted exactly once.
async fn snapshot_during_writes(url: &str, locking: SnapshotLocking, expected: SnapshotMethod) {
    let url = url.to_string();
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_snap").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id BIGINT PRIMARY KEY AUTO_INCREMENT, v INT NOT NULL)"
    ))
    .await
    .unwrap();
    for _ in 0..4 {
        c.query_drop(format!(
            "INSERT INTO `{db}`.t (v) VALUES (1),(2),(3),(4),(5),(6),(7),(8),(9),(10)"
        ))
        .await
        .unwrap();
    }
    let writer_url = url.clone();
    let writer_db = db.clone();
    let writer = tokio::spawn(async move {
        let mut w = root(&writer_url).await;
        for i in 0..300 {
            w.query_drop(format!("INSERT INTO `{writer_db}`.t (v) VALUES ({i})"))
                .await
                .unwrap();
            if i % 3 == 0 {
                w.query_drop(format!(
                    "UPDATE `{writer_db}`.t SET v = v + 1 WHERE id = {}",
                    i / 3 + 1
                ))
                .await
                .unwrap();
            }
            if i % 10 == 0 {
                w.query_drop(format!(
                    "DELETE FROM `{writer_db}`.t WHERE id = {}",
                    i / 10 + 20
                ))
                .await
                .unwrap();
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(30)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], dir.path().join("s.json"));
    config.server_id = server_id();
    config.snapshot_locking = locking;
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    assert_eq!(src.snapshot_method(), Some(expected));
    // Read while the writer runs: with table locks its writes wait until the snapshot is read.
    let mut model: BTreeMap<u64, Json> = BTreeMap::new();
    let mut seen_insert: BTreeMap<u64, usize> = BTreeMap::new();
    let mut snapshot_rows = 0usize;
    let mut idle_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !writer.is_finished() || idle_since.elapsed() < Duration::from_millis(1500) {
        assert!(Instant::now() < deadline);
        let b = src
            .next_batch(Duration::from_millis(300))
            .await
            .unwrap()
            .unwrap();
        if !b.events.is_empty() {
            idle_since = Instant::now();
        }
        for e in &b.events {
            let id = id_of(e);
            match e.op {
                Op::Read | Op::Create => {
                    snapshot_rows += usize::from(e.op == Op::Read);
                    *seen_insert.entry(id).or_default() += 1;
                    model.insert(id, e.after.clone().map(Json::Object).unwrap());
                }
                Op::Update => {
                    assert!(model.contains_key(&id), "update of unseen id {id}: a gap");
                    model.insert(id, e.after.clone().map(Json::Object).unwrap());
                }
                Op::Delete => {
                    assert!(
                        model.remove(&id).is_some(),
                        "delete of unseen id {id}: a gap"
                    );
                }
            }
        }
        if let Some(s) = b.state {
            src.commit(&s).unwrap();
        }
    }
    writer.await.unwrap();
    assert!(
        seen_insert.values().all(|n| *n == 1),
        "an id was inserted twice: overlap"
    );
    eprintln!(
        "{locking:?}: {} rows from the snapshot, {} inserts streamed",
        snapshot_rows,
        seen_insert.len() - snapshot_rows
    );
    assert!(
        seen_insert.len() > snapshot_rows,
        "the snapshot was taken after the writer finished: nothing tested"
    );
    let rows: Vec<(i64, i32)> = c
        .query(format!("SELECT id, v FROM `{db}`.t ORDER BY id"))
        .await
        .unwrap();
    let expected: BTreeMap<u64, Json> = rows
        .into_iter()
        .map(|(id, v)| (id as u64, json!({"id": id, "v": v})))
        .collect();
    assert_eq!(model, expected);
    drop(src);
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

/// A snapshot larger than a batch is streamed: 200 000 + 2 500 rows in two tables with
/// `snapshot_batch_rows: 1000` — every row exactly once, no batch above the limit, the rows read
/// from the server only as batches are taken (the source never holds more than the limit plus
/// the one row read ahead), `last` on the very last row only. Then a snapshot under table locks
/// is abandoned after one batch: its query is killed, so the locks go at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_snapshot_is_streamed_in_bounded_batches() {
    let Some(url) = url() else { return };
    const BIG: u64 = 200_000;
    const SMALL: u64 = 2_500;
    const LIMIT: usize = 1_000;
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_big").await;
    for (t, n) in [("big", BIG), ("small", SMALL)] {
        c.query_drop(format!(
            "CREATE TABLE `{db}`.{t} (id BIGINT PRIMARY KEY, v VARCHAR(20) NOT NULL, n INT)"
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "INSERT INTO `{db}`.{t} SELECT seq, CONCAT('v', seq), seq % 97 FROM `{db}`.seq_1_to_{n}"
        ))
        .await
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let tables = vec![format!("{db}.big"), format!("{db}.small")];
    let mut config = MysqlCdcConfig::new(&url, tables, dir.path().join("s.json"));
    config.server_id = server_id();
    config.snapshot_mode = SnapshotMode::InitialOnly;
    config.snapshot_batch_rows = LIMIT;
    let mut src = MysqlCdcSource::open(config.clone()).await.unwrap();
    assert_eq!(
        src.snapshot_progress().unwrap().rows_read(),
        0,
        "nothing read before asked"
    );

    let first = src
        .next_batch(Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.events.len(), LIMIT);
    assert!(first.state.is_none(), "no state to save mid-snapshot");
    let read = src.snapshot_progress().unwrap().rows_read();
    assert!(
        read <= LIMIT as u64 + 1,
        "{read} rows read from the server for the first batch of {LIMIT}"
    );

    let mut seen: BTreeMap<(String, u64), u32> = BTreeMap::new();
    let mut batches = 0usize;
    let mut total = 0usize;
    let mut lasts = 0usize;
    let mut last_seen = false;
    let mut next_row: BTreeMap<String, u32> = BTreeMap::new();
    let mut batch = first;
    loop {
        batches += 1;
        assert!(
            batch.events.len() <= LIMIT,
            "a batch of {}",
            batch.events.len()
        );
        for e in &batch.events {
            assert_eq!(e.op, Op::Read);
            assert!(!last_seen, "an event after the `last` one");
            match e.source.snapshot {
                "last" => {
                    lasts += 1;
                    last_seen = true;
                }
                s => assert_eq!(s, "true"),
            }
            let row = next_row.entry(e.source.table.clone()).or_default();
            assert_eq!(e.source.row, *row, "rows are numbered per table, in order");
            *row += 1;
            let id = id_of(e);
            assert_eq!(e.row().unwrap()["v"], json!(format!("v{id}")));
            *seen.entry((e.source.table.clone(), id)).or_default() += 1;
            total += 1;
        }
        if let Some(state) = &batch.state {
            assert!(state.snapshot_done);
            src.commit(state).unwrap();
            break;
        }
        batch = src
            .next_batch(Duration::from_millis(100))
            .await
            .unwrap()
            .unwrap();
    }
    assert!(
        src.next_batch(Duration::from_millis(100))
            .await
            .unwrap()
            .is_none()
    );
    let progress = src.snapshot_progress().unwrap();
    assert_eq!(total as u64, BIG + SMALL);
    assert_eq!(progress.rows_read(), BIG + SMALL);
    assert!(seen.values().all(|n| *n == 1), "a row came twice");
    for (t, n) in [("big", BIG), ("small", SMALL)] {
        let ids: Vec<u64> = seen.keys().filter(|(tt, _)| tt == t).map(|k| k.1).collect();
        assert_eq!(ids, (1..=n).collect::<Vec<_>>(), "{t}: every row once");
    }
    assert_eq!(lasts, 1);
    assert!(last_seen);
    assert!(
        batches >= (BIG + SMALL) as usize / LIMIT,
        "{batches} batches"
    );
    assert!(
        progress.rows_held_max() <= LIMIT + 1,
        "the source held {} rows at once",
        progress.rows_held_max()
    );
    eprintln!(
        "{total} rows in {batches} batches, at most {} rows held",
        progress.rows_held_max()
    );
    drop(src);

    // Abandoned after one batch under table locks: the query is killed, the locks released.
    config.state_file = dir.path().join("abandoned.json");
    config.server_id = server_id();
    config.snapshot_locking = SnapshotLocking::TableLocks;
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    assert_eq!(src.snapshot_method(), Some(SnapshotMethod::TableLocks));
    let b = src
        .next_batch(Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.events.len(), LIMIT);
    drop(src);
    tokio::time::timeout(
        Duration::from_secs(10),
        c.query_drop(format!("UPDATE `{db}`.big SET n = 0 WHERE id = 1")),
    )
    .await
    .expect("the abandoned snapshot still holds its table locks")
    .unwrap();
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

/// Without `RELOAD` the global read lock is refused: the snapshot falls back to table locks, and
/// without `LOCK TABLES` either it fails saying what to grant.
#[tokio::test]
async fn global_read_lock_falls_back_to_table_locks_without_reload() {
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_lock").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT)"))
        .await
        .unwrap();
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 1), (2, 2)"))
        .await
        .unwrap();
    let host = url.rsplit('@').next().unwrap().to_string();
    let user = unique("cdc_l");
    c.query_drop(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .await
        .unwrap();
    c.query_drop(format!(
        "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    c.query_drop(format!("GRANT SELECT ON `{db}`.* TO '{user}'@'%'"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = MysqlCdcConfig::new(
        format!("mysql://{user}:pw@{host}"),
        vec![format!("{db}.t")],
        dir.path().join("s.json"),
    );
    config.server_id = server_id();
    config.snapshot_mode = SnapshotMode::InitialOnly;
    config.snapshot_locking = SnapshotLocking::GlobalReadLock;

    // No RELOAD, no LOCK TABLES: refused, naming the grant.
    let e = MysqlCdcSource::open(config.clone()).await.unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("GRANT RELOAD"), "{e}");

    // LOCK TABLES granted: table locks.
    c.query_drop(format!("GRANT LOCK TABLES ON `{db}`.* TO '{user}'@'%'"))
        .await
        .unwrap();
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    assert_eq!(src.snapshot_method(), Some(SnapshotMethod::TableLocks));
    let b = src
        .next_batch(Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary(&b.events), vec![("r".into(), 1), ("r".into(), 2)]);
    // The locks were released: writing works at once.
    tokio::time::timeout(
        Duration::from_secs(5),
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES (3, 3)")),
    )
    .await
    .expect("the table is still locked")
    .unwrap();
    drop(src);
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

/// The binlog dump connection is killed from another session again and again while a writer
/// runs transactions (one of them large, so a kill lands inside it): the source reconnects from
/// the last transaction end it handed out, and every change arrives exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn reconnects_after_the_dump_thread_is_killed_exactly_once() {
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_kill").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT NOT NULL, \
         pad VARCHAR(1000) NOT NULL DEFAULT '')"
    ))
    .await
    .unwrap();
    // A user of its own, so that its dump thread is the one killed (other tests run too).
    let host = url.rsplit('@').next().unwrap().to_string();
    let user = unique("cdc_k");
    c.query_drop(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'pw'"))
        .await
        .unwrap();
    c.query_drop(format!(
        "GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = MysqlCdcConfig::new(
        format!("mysql://{user}:pw@{host}"),
        vec![format!("{db}.t")],
        dir.path().join("s.json"),
    );
    config.server_id = server_id();
    config.snapshot_mode = SnapshotMode::Never;
    config.reconnect_timeout_secs = 30;
    config.max_batch_events = 500;
    // The 20 000-row transaction goes out in parts: kills inside it resume inside it.
    config.max_transaction_events = 700;
    let mut src = MysqlCdcSource::open(config).await.unwrap();

    // Writer: 150 small transactions (3 inserts + 1 update each), then one of 20 000 rows,
    // then 50 more small ones. Expected events, in binlog order:
    let big = 20_000u32;
    let mut expected: Vec<(String, u64)> = Vec::new();
    let small = |k: u32, expected: &mut Vec<(String, u64)>| {
        for i in 0..3 {
            expected.push(("c".into(), (k * 3 + i) as u64));
        }
        expected.push(("u".into(), (k * 3) as u64));
    };
    for k in 0..150 {
        small(k, &mut expected);
    }
    for i in 0..big {
        expected.push(("c".into(), (1_000_000 + i) as u64));
    }
    for k in 150..200 {
        small(k, &mut expected);
    }
    let (writer_url, writer_db) = (url.clone(), db.clone());
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer_writing = writing.clone();
    let writer = tokio::spawn(async move {
        let mut w = root(&writer_url).await;
        let txn = |k: u32| {
            format!(
                "BEGIN; INSERT INTO `{writer_db}`.t (id, v) VALUES ({a}, 0); \
                 INSERT INTO `{writer_db}`.t (id, v) VALUES ({b}, 0); \
                 INSERT INTO `{writer_db}`.t (id, v) VALUES ({c}, 0); \
                 UPDATE `{writer_db}`.t SET v = 1 WHERE id = {a}; COMMIT",
                a = k * 3,
                b = k * 3 + 1,
                c = k * 3 + 2
            )
        };
        for k in 0..150 {
            w.query_drop(txn(k)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // ~20 MB of row events: the stream is slower than the kills, so some land inside.
        w.query_drop(format!(
            "SET SESSION max_recursive_iterations = 1000000; \
             INSERT INTO `{writer_db}`.t (id, v, pad) WITH RECURSIVE s(n) AS \
             (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {}) \
             SELECT 1000000 + n, n, REPEAT('x', 1000) FROM s",
            big - 1
        ))
        .await
        .unwrap();
        for k in 150..200 {
            w.query_drop(txn(k)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        writer_writing.store(false, std::sync::atomic::Ordering::SeqCst);
    });
    // Killer: the user's `Binlog Dump` thread, every 150 ms while the writer runs and a little
    // longer (the stream is then still busy with the large transaction).
    let (killer_url, killer_user) = (url.clone(), user.clone());
    let killer = tokio::spawn(async move {
        let mut k = root(&killer_url).await;
        let mut kills = 0u32;
        let mut until = Instant::now() + Duration::from_secs(3600);
        while Instant::now() < until {
            if writing.load(std::sync::atomic::Ordering::SeqCst) {
                until = Instant::now() + Duration::from_millis(300);
            }
            let ids: Vec<u64> = k
                .query(format!(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '{killer_user}' \
                     AND COMMAND = 'Binlog Dump'"
                ))
                .await
                .unwrap();
            for id in ids {
                // The thread may have ended meanwhile (unknown thread id): fine.
                if k.query_drop(format!("KILL {id}")).await.is_ok() {
                    kills += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        kills
    });

    let mut log: Vec<ChangeEvent> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while log.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "only {} of {} events arrived",
            log.len(),
            expected.len()
        );
        let b = src
            .next_batch(Duration::from_millis(200))
            .await
            .unwrap()
            .unwrap();
        log.extend(b.events);
        if let Some(s) = b.state {
            src.commit(&s).unwrap();
        }
    }
    writer.await.unwrap();
    let kills = killer.await.unwrap();
    // Nothing more arrives: no duplicate after the last expected event.
    let b = src
        .next_batch(Duration::from_millis(800))
        .await
        .unwrap()
        .unwrap();
    log.extend(b.events);
    eprintln!(
        "{kills} dump threads killed, {} reconnects, {} events of partial transactions \
         dropped and re-read, {} events",
        src.reconnects(),
        src.partial_events_dropped(),
        log.len()
    );
    assert!(kills >= 3, "the test killed too few streams: {kills}");
    assert!(src.reconnects() >= 3, "{} reconnects", src.reconnects());
    assert!(
        src.partial_events_dropped() > 0,
        "no kill landed inside a transaction: the re-read of a partial one is untested"
    );
    let got = summary(&log);
    if got != expected {
        let first = got
            .iter()
            .zip(&expected)
            .position(|(g, e)| g != e)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "{} events, {} expected; first difference at {first}: got {:?}, expected {:?}",
            got.len(),
            expected.len(),
            got.get(first),
            expected.get(first)
        );
    }
    drop(src);
    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

/// A TCP proxy to the server that forwards until [`Cutoff::cut`], then drops every connection
/// it holds and every new one at once: the server is gone for the source, and no other test's
/// binlog traffic can reach it (traffic is progress, which rightly restarts the give-up clock).
struct Cutoff {
    addr: std::net::SocketAddr,
    forwarding: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Cutoff {
    async fn start(upstream: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let forwarding = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (on, held) = (forwarding.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !on.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                held.lock().unwrap().push(task.abort_handle());
            }
        });
        Cutoff {
            addr,
            forwarding,
            connections,
        }
    }

    fn cut(&self) {
        self.forwarding
            .store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

/// The server goes away for good: the source retries, then gives up after
/// `reconnect_timeout_secs` with a retryable error carrying the cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_reconnecting_with_a_retryable_error() {
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_giveup").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
        .await
        .unwrap();
    let (credentials, host) = url.rsplit_once('@').unwrap();
    let proxy = Cutoff::start(host.to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = MysqlCdcConfig::new(
        // Over TCP only: mysql_async would otherwise switch a local connection to the server's
        // Unix socket, around the proxy.
        format!("{credentials}@{}?prefer_socket=false", proxy.addr),
        vec![format!("{db}.t")],
        dir.path().join("s.json"),
    );
    config.server_id = server_id();
    config.snapshot_mode = SnapshotMode::Never;
    config.reconnect_timeout_secs = 1;
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    // Streaming works through the proxy first.
    src.next_batch(Duration::from_millis(300)).await.unwrap();
    proxy.cut();
    let started = Instant::now();
    let e = loop {
        match src.next_batch(Duration::from_millis(500)).await {
            Ok(_) => assert!(started.elapsed() < Duration::from_secs(5), "never gave up"),
            Err(e) => break e,
        }
    };
    assert!(e.is_retryable(), "{e}");
    assert!(e.to_string().contains("reconnect"), "{e}");
    assert!(src.reconnects() >= 1);
    drop(src);
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

/// Each string column is decoded by its own character set: the snapshot (converted by the
/// server) and the binlog stream (raw column bytes) give the same text, value by value; before,
/// latin1 bytes were read as UTF-8 and arrived as U+FFFD.
#[tokio::test]
async fn every_charset_streams_the_same_text_as_the_snapshot() {
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_charsets").await;
    let columns = [
        ("l1", "VARCHAR(40) CHARACTER SET latin1"),
        ("u3", "VARCHAR(40) CHARACTER SET utf8mb3"),
        ("u4", "VARCHAR(40) CHARACTER SET utf8mb4"),
        ("u2", "VARCHAR(40) CHARACTER SET ucs2"),
        ("u16", "VARCHAR(40) CHARACTER SET utf16"),
        ("ch", "CHAR(12) CHARACTER SET latin1"),
        ("tx", "TEXT CHARACTER SET latin1"),
        ("vb", "VARBINARY(40)"),
    ];
    let defs: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, {})",
        defs.join(", ")
    ))
    .await
    .unwrap();
    let text = "ção € œ Ÿ";
    let insert = |id: u32| {
        format!(
            "INSERT INTO `{db}`.t VALUES ({id}, {})",
            columns
                .iter()
                .map(|_| format!("'{text}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    c.query_drop("SET NAMES utf8mb4").await.unwrap();
    c.query_drop(insert(1)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], dir.path().join("s.json"));
    config.server_id = server_id();
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    let mut log = Vec::new();
    read_n(&mut src, 1, &mut log).await;
    c.query_drop(insert(2)).await.unwrap();
    read_n(&mut src, 2, &mut log).await;
    assert_eq!(summary(&log), vec![("r".into(), 1), ("c".into(), 2)]);
    let (snap, streamed) = (log[0].row().unwrap(), log[1].row().unwrap());
    for (name, _) in &columns[..7] {
        assert_eq!(snap[*name], text, "snapshot {name}");
        assert_eq!(
            streamed[*name], snap[*name],
            "streamed {name} differs from the snapshot"
        );
    }
    // Binary columns are bytes (base64), never text: the UTF-8 bytes the client sent.
    assert_eq!(streamed["vb"], snap["vb"]);
    use base64::Engine;
    assert_eq!(
        snap["vb"],
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
    );
    drop(src);
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

#[tokio::test]
async fn modes_never_and_initial_only() {
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_modes").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT)"))
        .await
        .unwrap();
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 1)"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], dir.path().join("a.json"));
    config.snapshot_mode = SnapshotMode::InitialOnly;
    config.server_id = server_id();
    let mut src = MysqlCdcSource::open(config.clone()).await.unwrap();
    let b = src
        .next_batch(Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary(&b.events), vec![("r".into(), 1)]);
    src.commit(&b.state.unwrap()).unwrap();
    assert!(
        src.next_batch(Duration::from_millis(100))
            .await
            .unwrap()
            .is_none()
    );

    config.snapshot_mode = SnapshotMode::Never;
    config.state_file = dir.path().join("n.json");
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (2, 2)"))
        .await
        .unwrap();
    let mut log = Vec::new();
    read_n(&mut src, 1, &mut log).await;
    assert_eq!(summary(&log), vec![("c".into(), 2)]);
    drop(src);
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

#[tokio::test]
async fn bad_input_names_what_to_fix() {
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_bad").await;
    c.query_drop(format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let host = url.rsplit('@').next().unwrap().to_string();

    // Unreachable server.
    let cfg = MysqlCdcConfig::new("mysql://root@127.0.0.1:1", vec![format!("{db}.t")], &state);
    let e = MysqlCdcSource::open(cfg).await.unwrap_err();
    assert!(
        matches!(
            e,
            ConnectorError::MysqlConnect {
                retryable: true,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("reachable"), "{e}");

    // Wrong password.
    let user = unique("cdc_u");
    c.query_drop(format!("CREATE USER '{user}'@'%' IDENTIFIED BY 'right-pw'"))
        .await
        .unwrap();
    c.query_drop(format!("GRANT SELECT ON `{db}`.* TO '{user}'@'%'"))
        .await
        .unwrap();
    let cfg = MysqlCdcConfig::new(
        format!("mysql://{user}:wrong@{host}"),
        vec![format!("{db}.t")],
        &state,
    );
    let e = MysqlCdcSource::open(cfg).await.unwrap_err();
    assert!(e.to_string().contains("wrong user or password"), "{e}");
    assert!(
        !e.to_string().contains("wrong@"),
        "the password must not leak: {e}"
    );

    // Missing REPLICATION SLAVE.
    let cfg = MysqlCdcConfig::new(
        format!("mysql://{user}:right-pw@{host}"),
        vec![format!("{db}.t")],
        &state,
    );
    let e = MysqlCdcSource::open(cfg).await.unwrap_err();
    assert!(matches!(e, ConnectorError::MysqlPrivilege { .. }), "{e}");
    assert!(e.to_string().contains("GRANT REPLICATION SLAVE"), "{e}");

    // A table that does not exist.
    let cfg = MysqlCdcConfig::new(&url, vec![format!("{db}.nope")], &state);
    let e = MysqlCdcSource::open(cfg).await.unwrap_err();
    assert!(
        matches!(e, ConnectorError::MysqlTableNotFound { .. }),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("{db}.nope")), "{e}");

    // binlog_format not ROW: the real server's settings with one injected change.
    let mut vars = checks::read_settings(&mut c).await.unwrap();
    assert!(checks::check_settings(&vars).is_ok());
    vars.insert("binlog_format".into(), "MIXED".into());
    let e = checks::check_settings(&vars).unwrap_err().to_string();
    assert!(
        e.contains("binlog_format") && e.contains("binlog_format=ROW"),
        "{e}"
    );

    c.query_drop(format!("DROP USER '{user}'@'%'"))
        .await
        .unwrap();
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

/// Decoding rate of the binlog reader (printed, not asserted: a shared 2-core machine).
#[tokio::test]
async fn decode_rate() {
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_rate").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, n BIGINT UNSIGNED, amount DECIMAL(12,2), \
         dt DATETIME, s VARCHAR(40))"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], dir.path().join("s.json"));
    config.server_id = server_id();
    config.snapshot_mode = SnapshotMode::Never;
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    let rows = 50_000;
    for chunk in 0..(rows / 5_000) {
        let values: Vec<String> = (0..5_000)
            .map(|i| {
                let id = chunk * 5_000 + i;
                format!("({id}, {id}, {id}.25, '2025-01-01 00:00:00', 'row {id}')")
            })
            .collect();
        c.query_drop(format!("INSERT INTO `{db}`.t VALUES {}", values.join(",")))
            .await
            .unwrap();
    }
    let started = Instant::now();
    let mut log = Vec::new();
    read_n(&mut src, rows as usize, &mut log).await;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "decoded {rows} row events in {secs:.2}s: {:.0} events/s (debug build)",
        rows as f64 / secs
    );
    assert_eq!(log.last().map(id_of), Some(rows as u64 - 1));
    drop(src);
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

fn replica_url() -> Option<String> {
    match std::env::var("STRATA_TEST_MYSQL_REPLICA_URL") {
        Ok(u) => Some(u),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("CI is set but STRATA_TEST_MYSQL_REPLICA_URL is not: run scripts/services.sh up")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: STRATA_TEST_MYSQL_REPLICA_URL is unset (source \"$(scripts/services.sh \
                 env)\")"
            );
            None
        }
    }
}

/// Reads batches (saving each batch's state) until `log` holds at least `n` events.
async fn read_at_least(src: &mut MysqlCdcSource, n: usize, log: &mut Vec<ChangeEvent>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events arrived",
            log.len()
        );
        let batch = src
            .next_batch(Duration::from_millis(100))
            .await
            .unwrap()
            .expect("source finished early");
        log.extend(batch.events);
        if let Some(s) = batch.state {
            src.commit(&s).unwrap();
        }
    }
}

/// A crash: one more batch with events is read but its state never saved, then the source is
/// dropped. Its events must come again after the restart (they are not added to the log).
async fn crash(mut src: MysqlCdcSource) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let b = src
            .next_batch(Duration::from_millis(100))
            .await
            .unwrap()
            .unwrap();
        if !b.events.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "no batch to lose");
    }
}

/// Fail-over: the connector streams from the primary while a writer runs, crashes, and is
/// restarted with the same state file against the GTID replica of `scripts/services.sh` (other
/// binlog files and offsets). It resumes by the saved GTID list; the replica then also takes
/// writes of its own in GTID domain 1 while the primary's keep flowing through it, the
/// connector crashes and restarts there once more (a two-domain GTID list), and every change
/// arrives exactly once, in order per domain.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn fails_over_to_a_replica_by_gtid_exactly_once() {
    let Some(url) = url() else { return };
    let Some(replica) = replica_url() else { return };
    let mut c = root(&url).await;
    let mut r = root(&replica).await;
    let db = fresh_db(&mut c, "cdc_failover").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT NOT NULL)"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("s.json");
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], &state);
    config.server_id = server_id();
    config.snapshot_mode = SnapshotMode::Never;
    config.max_batch_events = 50;
    let mut src = MysqlCdcSource::open(config.clone()).await.unwrap();

    // Primary: 400 transactions (insert + update), 5 ms apart; replica: 100 inserts in domain 1.
    let (primary_txns, replica_txns) = (400u32, 100u32);
    let mut expected_primary: Vec<(String, u64)> = Vec::new();
    for k in 0..primary_txns {
        expected_primary.push(("c".into(), k as u64));
        expected_primary.push(("u".into(), k as u64));
    }
    let expected_replica: Vec<(String, u64)> = (0..replica_txns)
        .map(|k| ("c".into(), 100_000 + k as u64))
        .collect();
    let (writer_url, writer_db) = (url.clone(), db.clone());
    let writer = tokio::spawn(async move {
        let mut w = root(&writer_url).await;
        for k in 0..primary_txns {
            w.query_drop(format!(
                "BEGIN; INSERT INTO `{writer_db}`.t VALUES ({k}, 0); \
                 UPDATE `{writer_db}`.t SET v = 1 WHERE id = {k}; COMMIT"
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let mut log: Vec<ChangeEvent> = Vec::new();
    read_at_least(&mut src, 200, &mut log).await;
    crash(src).await;
    let saved = strata_connectors::mysql_cdc::StateFile::new(&state)
        .load()
        .unwrap()
        .unwrap();
    assert!(saved.position.file.starts_with("binlog."), "{saved:?}");
    assert_eq!(saved.position.server_id, Some(1), "{saved:?}");
    let gtids = saved
        .position
        .gtid_set
        .clone()
        .expect("no GTID state saved");
    assert!(gtids.starts_with("0-1-"), "{gtids}");

    // The replica's binlog has other files: by file/position it cannot resume.
    let mut on_replica = config.clone();
    on_replica.url = replica.clone();
    let mut by_pos = on_replica.clone();
    by_pos.resume_by = Some(ResumeBy::Position);
    let mut src = MysqlCdcSource::open(by_pos).await.unwrap();
    let e = src
        .next_batch(Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(!e.is_retryable(), "{e}");
    assert!(e.to_string().contains("server_id 1"), "{e}");
    assert!(e.to_string().contains("resume_by: gtid"), "{e}");
    drop(src);

    // By GTID: once the replica has applied the saved position (it may lag a little).
    let waited: Option<i64> = r
        .query_first(format!("SELECT MASTER_GTID_WAIT('{gtids}', 30)"))
        .await
        .unwrap();
    assert_eq!(waited, Some(0), "the replica did not catch up with {gtids}");
    let mut src = MysqlCdcSource::open(on_replica.clone()).await.unwrap();
    read_at_least(&mut src, log.len() + 100, &mut log).await;
    assert!(
        log.last()
            .unwrap()
            .source
            .file
            .starts_with("replica-binlog."),
        "{:?}",
        log.last().unwrap().source
    );

    // Writes on the replica itself, in a GTID domain of their own.
    let (replica_w_url, replica_db) = (replica.clone(), db.clone());
    let replica_writer = tokio::spawn(async move {
        let mut w = root(&replica_w_url).await;
        w.query_drop("SET SESSION gtid_domain_id = 1")
            .await
            .unwrap();
        for k in 0..replica_txns {
            w.query_drop(format!(
                "INSERT INTO `{replica_db}`.t VALUES ({}, 2)",
                100_000 + k
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.iter().any(|e| id_of(e) >= 100_000) {
        assert!(Instant::now() < deadline, "no replica write arrived");
        read_at_least(&mut src, log.len() + 1, &mut log).await;
    }
    crash(src).await;
    let saved = strata_connectors::mysql_cdc::StateFile::new(&state)
        .load()
        .unwrap()
        .unwrap();
    let gtids = saved.position.gtid_set.clone().unwrap();
    assert!(
        gtids.starts_with("0-1-") && gtids.contains(",1-2-"),
        "a GTID list with both domains: {gtids}"
    );
    assert!(saved.position.file.starts_with("replica-binlog."));
    assert_eq!(saved.position.server_id, Some(2), "{saved:?}");

    let mut src = MysqlCdcSource::open(on_replica).await.unwrap();
    let total = expected_primary.len() + expected_replica.len();
    read_at_least(&mut src, total, &mut log).await;
    writer.await.unwrap();
    replica_writer.await.unwrap();
    let b = src
        .next_batch(Duration::from_millis(800))
        .await
        .unwrap()
        .unwrap();
    log.extend(b.events);
    drop(src);

    let (from_primary, from_replica): (Vec<ChangeEvent>, Vec<ChangeEvent>) =
        log.into_iter().partition(|e| id_of(e) < 100_000);
    for (name, got, expected) in [
        ("primary", summary(&from_primary), expected_primary),
        ("replica", summary(&from_replica), expected_replica),
    ] {
        if got != expected {
            let first = got
                .iter()
                .zip(&expected)
                .position(|(g, e)| g != e)
                .unwrap_or(got.len().min(expected.len()));
            panic!(
                "{name}: {} events, {} expected; first difference at {first}: got {:?}, \
                 expected {:?}",
                got.len(),
                expected.len(),
                got.get(first),
                expected.get(first)
            );
        }
    }
    assert!(
        from_primary
            .iter()
            .all(|e| e.source.gtid.as_deref().unwrap().starts_with("0-1-"))
    );
    assert!(
        from_replica
            .iter()
            .all(|e| e.source.gtid.as_deref().unwrap().starts_with("1-2-"))
    );
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}

/// A fresh database with a `shop.orders`-shaped table of two rows, and a CDC source on it (its
/// state in `dir`).
async fn orders_table(
    c: &mut Conn,
    url: &str,
    prefix: &str,
    dir: &std::path::Path,
) -> (String, MysqlCdcSource) {
    let db = fresh_db(c, prefix).await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.orders (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL, \
         status VARCHAR(16) NOT NULL, amount DECIMAL(12,2) NOT NULL, \
         updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    c.query_drop(format!(
        "INSERT INTO `{db}`.orders (id, customer, status, amount) VALUES \
         (1000, 'Cliente 1', 'pending', 10.50), (1001, 'Cliente 2', 'paid', 99.90)"
    ))
    .await
    .unwrap();
    let mut config = MysqlCdcConfig::new(url, vec![format!("{db}.orders")], dir.join("s"));
    config.server_id = server_id();
    (db, MysqlCdcSource::open(config).await.unwrap())
}

/// The contract between the CDC source and `pipelines/mysql_orders_cdc.yaml`: a `shop.orders`
/// table on MariaDB (snapshot rows, inserts, updates, a delete), each event as the Kafka sink
/// writes it (`ChangeEvent::to_json`), run through the shipped pipeline: nothing quarantined, and
/// every column the events provide is filled.
#[tokio::test]
async fn cdc_events_pass_the_shipped_orders_pipeline() {
    use arrow::array::Array;
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, mut src) = orders_table(&mut c, &url, "cdc_contract", dir.path()).await;
    let mut log = Vec::new();
    read_n(&mut src, 2, &mut log).await;
    for q in [
        format!(
            "INSERT INTO `{db}`.orders (id, customer, status, amount) VALUES (1002, 'Cliente 3', 'pending', 5.00)"
        ),
        format!("UPDATE `{db}`.orders SET status = 'paid' WHERE id = 1000"),
        format!("UPDATE `{db}`.orders SET status = 'shipped', amount = 11.00 WHERE id = 1000"),
        format!("DELETE FROM `{db}`.orders WHERE id = 1001"),
    ] {
        c.query_drop(q).await.unwrap();
    }
    read_n(&mut src, 6, &mut log).await;
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../pipelines/mysql_orders_cdc.yaml"),
    )
    .unwrap();
    let spec = strata_core::PipelineSpec::from_yaml(&text).unwrap();
    let mut pipeline = strata_core::Pipeline::build(
        &spec,
        strata_core::lineage::file_input_schema(),
        &strata_core::BuildContext::default(),
    )
    .unwrap();
    let values: Vec<Vec<u8>> = log
        .iter()
        .map(|e| e.to_json().to_string().into_bytes())
        .collect();
    let batch = strata_core::lineage::file_batch(&values, "mysql", "cdc", 1, 0).unwrap();
    let out = pipeline.process(&batch).unwrap();
    assert_eq!(
        out.quarantined.num_rows(),
        0,
        "{}",
        arrow::util::pretty::pretty_format_batches(std::slice::from_ref(&out.quarantined)).unwrap()
    );
    let rows = arrow::compute::concat_batches(&pipeline.output_schema(), &out.rows).unwrap();
    assert_eq!(rows.num_rows(), 6);
    let op = rows.column_by_name("op").unwrap();
    let op = arrow::compute::cast(op, &arrow::datatypes::DataType::Utf8).unwrap();
    let op = op
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .unwrap();
    for column in [
        "order_id",
        "op",
        "customer",
        "amount",
        "changed_at",
        "binlog_file",
        "binlog_pos",
    ] {
        let col = rows.column_by_name(column).unwrap();
        assert_eq!(col.null_count(), 0, "{column}: {rows:?}");
    }
    // `status` is the row after the change (none for a delete); `previous_status` the row
    // before (none for a snapshot read or an insert).
    let status = rows.column_by_name("status").unwrap();
    let previous = rows.column_by_name("previous_status").unwrap();
    for i in 0..rows.num_rows() {
        assert_eq!(status.is_null(i), op.value(i) == "d", "status of row {i}");
        assert_eq!(
            previous.is_null(i),
            op.value(i) == "r" || op.value(i) == "c",
            "previous_status of row {i}"
        );
    }
}

/// Connector → pipeline → keyed table: the change events of a MariaDB `orders` table, run
/// through `pipelines/orders.yaml` (a snapshot and, in `output.also`, a history) and merged in two chunks,
/// give the table MariaDB ends with (snapshot) and one version per change (historical, even
/// with the newest chunk merged first).
#[tokio::test]
async fn cdc_events_build_the_orders_snapshot_and_history() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use strata_core::keyed::{IS_CURRENT, KeyedTable};
    let Some(url) = url() else { return };
    let mut c = root(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let (db, mut src) = orders_table(&mut c, &url, "cdc_keyed", dir.path()).await;
    let mut log = Vec::new();
    read_n(&mut src, 2, &mut log).await;
    for q in [
        format!(
            "INSERT INTO `{db}`.orders (id, customer, status, amount) VALUES \
             (1002, 'Cliente 3', 'pending', 5.00), (1003, 'Cliente 4', 'pending', 7.00)"
        ),
        format!("UPDATE `{db}`.orders SET status = 'paid' WHERE id IN (1000, 1002)"),
        format!("UPDATE `{db}`.orders SET status = 'shipped', amount = 11.00 WHERE id = 1000"),
        format!("DELETE FROM `{db}`.orders WHERE id = 1001"),
    ] {
        c.query_drop(q).await.unwrap();
    }
    read_n(&mut src, 8, &mut log).await;
    let expected: Vec<(i64, String, String)> = c
        .query(format!(
            "SELECT id, status, CAST(amount AS CHAR) FROM `{db}`.orders ORDER BY id"
        ))
        .await
        .unwrap();
    let values: Vec<Vec<u8>> = log
        .iter()
        .map(|e| e.to_json().to_string().into_bytes())
        .collect();
    let pipelines = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let mut tables = Vec::new();
    let text = std::fs::read_to_string(pipelines.join("orders.yaml")).unwrap();
    let spec = strata_core::PipelineSpec::from_yaml(&text).unwrap();
    // The snapshot, and the historical table the same pipeline keeps in `output.also`.
    let outputs = std::iter::once(("orders".to_string(), spec.output.clone()))
        .chain(spec.output.also_outputs());
    for (name, output) in outputs {
        let mut pipeline = strata_core::Pipeline::build(
            &spec,
            strata_core::lineage::file_input_schema(),
            &strata_core::BuildContext::default(),
        )
        .unwrap();
        let keyed = KeyedTable::from_spec(&output, pipeline.output_schema())
            .unwrap()
            .unwrap();
        let batch = strata_core::lineage::file_batch(&values, "mysql", "cdc", 1, 0).unwrap();
        let out = pipeline.process(&batch).unwrap();
        assert_eq!(out.quarantined.num_rows(), 0, "{name}");
        let rows = arrow::compute::concat_batches(&pipeline.output_schema(), &out.rows).unwrap();
        assert_eq!(rows.num_rows(), 8, "{name}: one row per change event");
        // The history is built from the newest half first, then the oldest: its order comes
        // from the binlog position, not from arrival. The snapshot, whose hard deletes forget
        // the key, gets them in binlog order (as `strata cdc mysql` delivers them).
        let newest = rows.slice(4, 4);
        let oldest = rows.slice(0, 4);
        let (now, later) = if name == "orders" {
            (oldest, newest)
        } else {
            (newest, oldest)
        };
        let first = keyed.merge(&now).unwrap();
        let base = arrow::array::RecordBatch::try_new(
            keyed.base_schema().clone(),
            first.columns()[..keyed.base_schema().fields().len()].to_vec(),
        )
        .unwrap();
        let both = arrow::compute::concat_batches(keyed.base_schema(), &[base, later]).unwrap();
        tables.push(keyed.merge(&both).unwrap());
    }
    let summary = |b: &arrow::array::RecordBatch, only_current: bool| {
        let ids = b
            .column_by_name("order_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let status = b.column_by_name("status").unwrap().as_string::<i32>();
        let amount = arrow::compute::cast(
            b.column_by_name("amount").unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let amount = amount.as_string::<i32>();
        let current = b.column_by_name(IS_CURRENT).map(|c| c.as_boolean().clone());
        (0..b.num_rows())
            .filter(|&i| !only_current || current.as_ref().is_some_and(|c| c.value(i)))
            .map(|i| {
                (
                    ids.value(i),
                    status.value(i).to_string(),
                    amount.value(i).to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        summary(&tables[0], false),
        expected,
        "snapshot = MariaDB's table"
    );
    assert_eq!(
        summary(&tables[1], true),
        expected,
        "current versions = MariaDB's table"
    );
    assert_eq!(tables[1].num_rows(), 8, "one version per change");
    let history = summary(&tables[1], false);
    let of_1000: Vec<&str> = history
        .iter()
        .filter(|r| r.0 == 1000)
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(of_1000, vec!["pending", "paid", "shipped"]);
    assert_eq!(
        tables[1].column_by_name("valid_to").unwrap().null_count(),
        3
    );
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}
