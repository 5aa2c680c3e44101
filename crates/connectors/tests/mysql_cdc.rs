//! MySQL / MariaDB CDC against the private MariaDB of `scripts/services.sh` (row binlog, full
//! metadata). Skips loudly without `STRATA_TEST_MYSQL_URL` unless `CI` is set (then it fails).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use serde_json::{Value as Json, json};
use strata_connectors::ConnectorError;
use strata_connectors::mysql_cdc::{
    ChangeEvent, MysqlCdcConfig, MysqlCdcSource, Op, SnapshotMode, checks, to_batch,
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
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    writer.await.unwrap();
    // Apply every event to a model of the table.
    let mut model: BTreeMap<u64, Json> = BTreeMap::new();
    let mut seen_insert: BTreeMap<u64, usize> = BTreeMap::new();
    let mut idle_since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    while idle_since.elapsed() < Duration::from_millis(1500) {
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
    assert!(
        seen_insert.values().all(|n| *n == 1),
        "an id was inserted twice: overlap"
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

/// End to end into Kafka: JSON values on `<prefix>.<db>.<table>`, keys = primary key,
/// a tombstone after the delete, the position saved after the acknowledgements.
#[tokio::test]
async fn into_kafka_with_keys_and_tombstones() {
    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    use strata_connectors::kafka::{KafkaConfig, KafkaSink};
    use strata_connectors::mysql_cdc::sink::run_to_kafka;

    let Some(url) = url() else { return };
    let brokers = match std::env::var("STRATA_TEST_KAFKA") {
        Ok(b) => b,
        Err(_) if std::env::var("CI").is_ok() => panic!("CI is set but STRATA_TEST_KAFKA is not"),
        Err(_) => {
            eprintln!("SKIPPED into_kafka_with_keys_and_tombstones: STRATA_TEST_KAFKA is unset");
            return;
        }
    };
    let mut c = root(&url).await;
    let db = fresh_db(&mut c, "cdc_kafka").await;
    c.query_drop(format!(
        "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(10))"
    ))
    .await
    .unwrap();
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (1, 'a')"))
        .await
        .unwrap();
    let prefix = unique("cdc");
    let topic = format!("{prefix}.{db}.t");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], dir.path().join("s.json"));
    config.server_id = server_id();
    config.topic_prefix = prefix.clone();
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    c.query_drop(format!("UPDATE `{db}`.t SET v = 'b' WHERE id = 1"))
        .await
        .unwrap();
    c.query_drop(format!("DELETE FROM `{db}`.t WHERE id = 1"))
        .await
        .unwrap();
    let sink = KafkaSink::open(&KafkaConfig::new(&brokers), None).unwrap();
    let stats = run_to_kafka(&mut src, &sink, &prefix, Some(Duration::from_millis(1500)))
        .await
        .unwrap();
    assert_eq!((stats.events, stats.records), (3, 4));
    assert!(src.state_file().load().unwrap().unwrap().snapshot_done);

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut got: Vec<(Option<String>, Option<Json>)> = Vec::new();
    while let Ok(m) = tokio::time::timeout(Duration::from_secs(6), consumer.recv()).await {
        let m = m.unwrap();
        got.push((
            m.key().map(|k| String::from_utf8_lossy(k).to_string()),
            m.payload().map(|p| serde_json::from_slice(p).unwrap()),
        ));
        if got.len() == 4 {
            break;
        }
    }
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got.iter().all(|(k, _)| k.as_deref() == Some("{\"id\":1}")));
    let ops: Vec<&str> = got[..3]
        .iter()
        .map(|(_, v)| v.as_ref().unwrap()["op"].as_str().unwrap())
        .collect();
    assert_eq!(ops, vec!["r", "u", "d"]);
    assert_eq!(got[1].1.as_ref().unwrap()["after"]["v"], json!("b"));
    assert!(got[3].1.is_none(), "the delete is followed by a tombstone");
    drop(src);
    c.query_drop(format!("DROP DATABASE `{db}`")).await.unwrap();
}
