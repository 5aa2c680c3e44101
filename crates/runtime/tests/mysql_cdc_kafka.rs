//! MariaDB binlog CDC through the one driver into a real Kafka (tansu), against the private
//! servers of `scripts/services.sh`: JSON values on `<prefix>.<db>.<table>`, keys = primary key,
//! a tombstone after each delete, the position saved in the connector's state file after the
//! acknowledgements — and a run whose state file fell behind what Kafka holds skips what is
//! already there. Skips loudly without the servers unless `CI` is set (then it fails).

use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value as Json, json};
use strata_connectors::mysql_cdc::{MysqlCdcConfig, StateFile};
use strata_runtime::sources::mysql_cdc::CdcIngest;
use strata_runtime::sources::open_mysql_cdc;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Passthrough, StopReason};

mod common;
use common::{server, unique};

async fn open(config: &MysqlCdcConfig, brokers: &str) -> CdcIngest {
    open_mysql_cdc(config.clone(), Some(brokers.to_string()))
        .await
        .expect("open")
}

/// One run of the driver until 1.5 s without a change: (events, records produced, skipped,
/// events found in Kafka at the start).
async fn run(ingest: CdcIngest) -> (u64, u64, u64, usize) {
    let found = ingest.resumed.0;
    let (counts, produced) = (ingest.source.counts(), ingest.sink.produced());
    let options = DriverOptions {
        commit: CommitPolicy::every(Duration::ZERO, 1),
        channel_depth: 2,
        stop_when_idle: Some(Duration::from_millis(1500)),
        crash_after_commits: None,
    };
    let report = Driver::new(ingest.source, Passthrough::new("cdc"), ingest.sink, options)
        .run(std::future::pending())
        .await
        .expect("run");
    assert_eq!(report.stopped, StopReason::Idle);
    (
        counts.events.load(Ordering::Relaxed),
        produced.load(Ordering::Relaxed),
        counts.skipped.load(Ordering::Relaxed),
        found,
    )
}

/// Every record of partition 0 of `topic` (key, JSON value or `None` for a tombstone).
async fn read_all(brokers: &str, topic: &str) -> Vec<(Option<String>, Option<Json>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    // Reads until 6 s pass without a record: a record sent twice would show up.
    while let Ok(m) = tokio::time::timeout(Duration::from_secs(6), consumer.recv()).await {
        let m = m.expect("record");
        got.push((
            m.key().map(|k| String::from_utf8_lossy(k).to_string()),
            m.payload()
                .map(|p| serde_json::from_slice(p).expect("JSON value")),
        ));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binlog_changes_reach_kafka_once_with_keys_and_tombstones() {
    let (Some(url), Some(brokers)) = (server("STRATA_TEST_MYSQL_URL"), server("STRATA_TEST_KAFKA"))
    else {
        return;
    };
    let mut c = Conn::new(Opts::from_url(&url).expect("url"))
        .await
        .expect("connect");
    let db = unique("cdc_driver");
    for sql in [
        format!("CREATE DATABASE `{db}`"),
        format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(10))"),
        format!("INSERT INTO `{db}`.t VALUES (1, 'a')"),
    ] {
        c.query_drop(sql).await.expect("setup");
    }
    let prefix = unique("cdc");
    let topic = format!("{prefix}.{db}.t");
    common::create_topics(&brokers, &[&topic]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("s.json");
    let mut config = MysqlCdcConfig::new(&url, vec![format!("{db}.t")], &state);
    config.server_id = 1_900_000 + std::process::id() % 100_000;
    config.topic_prefix = prefix.clone();

    // The snapshot (1 row), then an update and a delete from the binlog.
    let ingest = open(&config, &brokers).await;
    c.query_drop(format!("UPDATE `{db}`.t SET v = 'b' WHERE id = 1"))
        .await
        .expect("update");
    c.query_drop(format!("DELETE FROM `{db}`.t WHERE id = 1"))
        .await
        .expect("delete");
    let (events, records, skipped, _) = run(ingest).await;
    assert_eq!(
        (events, records, skipped),
        (3, 4, 0),
        "r, u, d + a tombstone"
    );
    let after_first = StateFile::new(&state).load().expect("load").expect("saved");
    assert!(after_first.snapshot_done);

    // A new change, then the state file rolled back to before it: the next run finds the
    // change in Kafka and does not send it again.
    c.query_drop(format!("INSERT INTO `{db}`.t VALUES (2, 'c')"))
        .await
        .expect("insert");
    assert_eq!(run(open(&config, &brokers).await).await.0, 1);
    StateFile::new(&state)
        .save(&after_first)
        .expect("roll back");
    let (events, records, skipped, found) = run(open(&config, &brokers).await).await;
    assert_eq!(
        (events, records, skipped, found),
        (0, 0, 1, 1),
        "found in Kafka and skipped"
    );

    let got = read_all(&brokers, &topic).await;
    assert_eq!(got.len(), 5, "{got:?}");
    let ops: Vec<Option<&str>> = got
        .iter()
        .map(|(_, v)| v.as_ref().and_then(|v| v["op"].as_str()))
        .collect();
    assert_eq!(ops, vec![Some("r"), Some("u"), Some("d"), None, Some("c")]);
    assert!(
        got[..4]
            .iter()
            .all(|(k, _)| k.as_deref() == Some("{\"id\":1}"))
    );
    assert_eq!(got[1].1.as_ref().expect("update")["after"]["v"], json!("b"));
    assert_eq!(got[4].0.as_deref(), Some("{\"id\":2}"));
    c.query_drop(format!("DROP DATABASE `{db}`"))
        .await
        .expect("drop");
}
