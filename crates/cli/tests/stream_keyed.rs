//! `strata stream silver` into keyed tables and beside `strata maintain`, against the real
//! broker (tansu, started by `scripts/services.sh up`):
//! * CDC events of `orders` streamed into the snapshot and historical tables, the writer
//!   SIGKILLed several times, give the same tables as `strata batch` over the same events;
//! * a stream committing every 200 ms while `strata maintain` compacts, expires and deletes
//!   again and again: every event is in silver once, and every file the table lists exists.
//!
//! Outside CI, without the broker, the tests say so loudly and pass; with `CI` set they fail.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
mod support;

use support::{broker, create_topics, unique};

fn pipeline(name: &str) -> String {
    format!("{}/../../pipelines/{name}.yaml", env!("CARGO_MANIFEST_DIR"))
}

fn strata(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.current_dir(dir);
    c
}

async fn finish(mut c: Command) -> String {
    let out = tokio::task::spawn_blocking(move || c.output().expect("run"))
        .await
        .expect("join");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Produces `lines` keyed by `key(line)`.
async fn produce(brokers: &str, topic: &str, lines: &[String], key: impl Fn(&str) -> String) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .expect("producer");
    let mut pending = Vec::new();
    for line in lines {
        let k = key(line);
        let record = FutureRecord::to(topic)
            .payload(line.as_str())
            .key(k.as_str());
        pending.push(producer.send_result(record).expect("queue"));
    }
    for p in pending {
        p.await.expect("delivered").expect("acked");
    }
}

fn silver_cmd(dir: &Path, brokers: &str, topic: &str, pipeline: &str, extra: &[&str]) -> Command {
    let mut c = strata(dir);
    c.args([
        "stream",
        "silver",
        "--brokers",
        brokers,
        "--input-topic",
        topic,
        "--group",
        &format!("{topic}-{}", pipeline.rsplit('/').next().unwrap_or("p")),
        "--pipeline",
        pipeline,
        "--lake",
        "lake",
        "--max-rows",
        "1000",
        "--max-wait-ms",
        "100",
    ]);
    c.args(extra);
    c
}

async fn read(dir: &Path, lake: &str, table: &str) -> Vec<RecordBatch> {
    let catalog = strata_layers::silver::SilverCatalog::open_local(&dir.join(lake).join("catalog"))
        .await
        .expect("catalog");
    catalog.read_table(table).await.expect("read")
}

/// (order_id, binlog_pos, status, valid_to, is_current) of every row, sorted.
async fn order_rows(
    dir: &Path,
    lake: &str,
    table: &str,
) -> Vec<(i64, i64, String, Option<i64>, Option<bool>)> {
    let mut out = Vec::new();
    for b in read(dir, lake, table).await {
        let id = b
            .column_by_name("order_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let pos = b
            .column_by_name("binlog_pos")
            .unwrap()
            .as_primitive::<Int64Type>();
        let status = b.column_by_name("status").unwrap().as_string::<i32>();
        let valid_to = b
            .column_by_name("valid_to")
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).unwrap());
        let current = b
            .column_by_name("is_current")
            .map(|c| c.as_boolean().clone());
        for i in 0..b.num_rows() {
            let to = valid_to.as_ref().and_then(|v| {
                let v = v.as_primitive::<Int64Type>();
                v.is_valid(i).then(|| v.value(i))
            });
            out.push((
                id.value(i),
                pos.value(i),
                status.value(i).to_string(),
                to,
                current.as_ref().map(|c| c.value(i)),
            ));
        }
    }
    out.sort();
    out
}

fn order_key(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
    let id = v["after"]["id"]
        .as_i64()
        .or(v["before"]["id"].as_i64())
        .unwrap_or_default();
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_cdc_events_build_the_same_keyed_tables_as_batch_across_kill_9() {
    let Some(brokers) = broker("streamed_cdc_events_build_the_same_keyed_tables_as_batch") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let lines = strata_core::sample::mysql_order_changes(8_000, 23, 1_763_646_312_000);
    std::fs::write(d.join("changes.ndjson"), lines.join("\n") + "\n").expect("write");
    let topic = unique("orders-cdc");
    create_topics(&brokers, &[(&topic, 2)]).await;
    // Debezium keys change events by primary key: one order's changes stay in order.
    produce(&brokers, &topic, &lines, order_key).await;
    finish({
        let mut c = strata(d);
        c.args([
            "bronze",
            "put",
            "--lake",
            "reference",
            "--source",
            "mysql.shop.orders",
            "--date",
            "2025-11-20",
            "--input",
            "changes.ndjson",
            "--lines-per-file",
            "1000",
        ]);
        c
    })
    .await;
    // One pass writes both tables: `orders` and its `also` table `orders_history`.
    {
        let p = pipeline("orders");
        finish({
            let mut c = strata(d);
            c.args([
                "batch",
                "--lake",
                "reference",
                "--source",
                "mysql.shop.orders",
                "--pipeline",
                &p,
            ]);
            c
        })
        .await;
        for after_ms in [700u64, 1300, 2100] {
            let mut child = silver_cmd(d, &brokers, &topic, &p, &["--commit-interval-ms", "200"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn");
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            child.kill().expect("SIGKILL");
            let _ = child.wait();
        }
        finish(silver_cmd(
            d,
            &brokers,
            &topic,
            &p,
            &["--commit-interval-ms", "200", "--stop-when-idle-ms", "4000"],
        ))
        .await;
        for name in ["orders", "orders_history"] {
            let streamed = order_rows(d, "lake", name).await;
            let batched = order_rows(d, "reference", name).await;
            assert!(!batched.is_empty(), "{name}");
            assert_eq!(streamed.len(), batched.len(), "{name}");
            assert_eq!(
                streamed, batched,
                "{name}: stream = batch, every change once"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_beside_a_streaming_writer_deletes_nothing_it_needs() {
    let Some(brokers) = broker("maintain_beside_a_streaming_writer") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let lines = strata_core::sample::iot_events(
        30_000,
        31,
        strata_core::sample::IotFaults::default(),
        1_763_646_312_000,
    );
    let topic = unique("iot-maintain");
    create_topics(&brokers, &[(&topic, 2)]).await;
    let iot = pipeline("iot");
    let mut writer = silver_cmd(
        d,
        &brokers,
        &topic,
        &iot,
        &["--commit-interval-ms", "200", "--stop-when-idle-ms", "6000"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    // Events arrive in waves while the writer commits every 200 ms.
    let producing = {
        let brokers = brokers.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            for wave in lines.chunks(3_000) {
                produce(&brokers, &topic, wave, |_| String::new()).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };
    let mut runs = 0;
    let mut expired = 0;
    while writer.try_wait().expect("wait").is_none() {
        if d.join("lake/catalog/catalog.db").exists() {
            let out = finish({
                let mut c = strata(d);
                c.args([
                    "maintain",
                    "--lake",
                    "lake",
                    "--keep-snapshots",
                    "2",
                    "--grace-seconds",
                    "3",
                    "--small-file-mb",
                    "64",
                ]);
                c
            })
            .await;
            runs += 1;
            expired += out
                .lines()
                .filter_map(|l| {
                    l.split("expire ")
                        .nth(1)?
                        .split(' ')
                        .next()?
                        .parse::<usize>()
                        .ok()
                })
                .sum::<usize>();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    producing.await.expect("producer");
    let status = writer.wait().expect("writer");
    assert!(status.success(), "the writer failed beside maintenance");
    assert!(
        runs >= 5 && expired > 0,
        "maintenance ran {runs} times, expired {expired}"
    );
    // Every valid event once: the same rows as the batch transform of the same lines.
    let rows: usize = read(d, "lake", "iot_events")
        .await
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let mut keys = BTreeMap::new();
    for b in read(d, "lake", "iot_events").await {
        let ids = b.column_by_name("device_id").unwrap().as_string::<i32>();
        let seqs = b.column_by_name("seq").unwrap().as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            *keys
                .entry((ids.value(i).to_string(), seqs.value(i)))
                .or_insert(0) += 1;
        }
    }
    assert!(keys.values().all(|n| *n == 1), "no event twice");
    assert_eq!(keys.len(), rows);
    assert!(rows > 25_000, "{rows} rows");
    let catalog = strata_layers::silver::SilverCatalog::open_local(&d.join("lake/catalog"))
        .await
        .unwrap();
    let table = catalog.load("iot_events").await.unwrap();
    let live = strata_layers::silver::LiveFiles::read(&table)
        .await
        .unwrap();
    for path in live.paths() {
        assert!(
            Path::new(path.trim_start_matches("file://")).exists(),
            "{path} is gone"
        );
    }
}
