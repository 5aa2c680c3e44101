//! The live view at the seam (the Druid role), end to end against the real broker: IoT events
//! produced in waves (with copies of earlier events and invalid ones) are streamed into silver
//! by `strata stream silver` committing every 700 ms, while `strata serve analytics` answers a
//! live metric over the same table many times a second. Every answer says which snapshot it
//! read and the Kafka positions it reaches; each must equal the truth computed from the
//! produced events up to those positions: no event counted twice, none missed, whether a
//! commit landed before, during or after the query.
//!
//! The same holds for a real-time rollup (`pipelines/iot_rollup.yaml`, a `window_aggregate`
//! step): its windows are emitted by the watermark, carry no Kafka position, and are still
//! exact at every seam because the view restarts from each commit's own pipeline state.
//!
//! Outside CI, without the broker, the test says so loudly and passes; with `CI` set it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
mod support;

use support::{broker, create_topics, free_port, unique};

const PIPELINES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines");

/// One produced event: where it landed, its event time, and its dedup key when the pipeline
/// keeps it.
#[derive(Debug, Clone)]
struct Produced {
    partition: i32,
    offset: i64,
    ts: i64,
    key: Option<(String, i64)>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// An IoT event; `valid` false gives a device id `iot.yaml` quarantines.
fn event(device: usize, seq: i64, valid: bool, ts: i64) -> (String, String) {
    let device_id = if valid {
        format!("dev-{device:03}")
    } else {
        format!("bad-{device:03}")
    };
    let line = serde_json::json!({
        "device_id": device_id,
        "ts": ts,
        "seq": seq,
        "temperature": "21.5",
        "humidity": 40.0,
        "battery": 90,
        "location": {"lat": 1.0, "lon": 2.0, "site": "s1"},
        "tags": ["a"],
        "owner_email": "x@example.com",
    })
    .to_string();
    (device_id, line)
}

/// Produces one wave at event time `ts`: new events, copies of earlier ones (same key, so the
/// same partition, and the same event time) and a few invalid ones.
async fn wave(
    producer: &FutureProducer,
    topic: &str,
    wave: i64,
    ts: i64,
    earlier: &mut Vec<(usize, i64, i64)>,
) -> Vec<Produced> {
    let mut pending = Vec::new();
    for device in 0..40usize {
        for k in 0..5i64 {
            pending.push((device, wave * 5 + k, true, ts));
        }
    }
    for (i, (device, seq, at)) in earlier.iter().enumerate() {
        if i % 17 == 0 {
            pending.push((*device, *seq, true, *at));
        }
    }
    for device in 0..3usize {
        pending.push((device, wave, false, ts));
    }
    let mut sent = Vec::new();
    for (device, seq, valid, at) in pending {
        let (device_id, line) = event(device, seq, valid, at);
        let key = format!("dev-{device:03}");
        let record = FutureRecord::to(topic).payload(&line).key(&key);
        let delivery = producer.send_result(record).expect("queue");
        sent.push((delivery, device_id, device, seq, at));
        if valid && at == ts {
            earlier.push((device, seq, at));
        }
    }
    let mut out = Vec::new();
    for (delivery, device_id, _, seq, at) in sent {
        let delivered = delivery.await.expect("delivered").expect("acked");
        out.push(Produced {
            partition: delivered.partition,
            offset: delivered.offset,
            ts: at,
            key: Some((device_id, seq)),
        });
    }
    out
}

/// What one answer said.
#[derive(Debug, Clone)]
struct Seen {
    value: u64,
    snapshot: Option<i64>,
    committed: BTreeMap<i32, i64>,
    upto: BTreeMap<i32, i64>,
    live_rows: u64,
}

fn positions(v: &serde_json::Value) -> BTreeMap<i32, i64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(p, o)| (p.parse().expect("partition"), o.as_i64().expect("offset")))
                .collect()
        })
        .unwrap_or_default()
}

/// A live table, the metric over it, and its one measure.
struct Scenario {
    pipeline: &'static str,
    table: &'static str,
    partitions: i32,
    measure: &'static str,
    /// Event time of wave `w`.
    ts: fn(i64) -> i64,
}

async fn ask(client: &reqwest::Client, base: &str, s: &Scenario) -> Option<Seen> {
    let r = client
        .get(format!("{base}/metrics/live"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let body: serde_json::Value = r.json().await.expect("JSON answer");
    let live = &body["live"][format!("silver.{}", s.table)];
    if live.is_null() {
        return None;
    }
    Some(Seen {
        value: body["rows"][0]["value"].as_u64().unwrap_or(0),
        snapshot: live["snapshot_id"].as_i64(),
        committed: positions(&live["committed"]),
        upto: positions(&live["upto"]),
        live_rows: live["rows"].as_u64().unwrap_or(0),
    })
}

/// The events below `upto`, in offset order per partition, first occurrence of each key only.
fn kept<'a>(produced: &'a [Produced], upto: &BTreeMap<i32, i64>) -> Vec<&'a Produced> {
    let mut in_prefix: Vec<&Produced> = produced
        .iter()
        .filter(|p| upto.get(&p.partition).is_some_and(|u| p.offset < *u))
        .collect();
    in_prefix.sort_by_key(|p| (p.partition, p.offset));
    let mut keys = BTreeSet::new();
    in_prefix
        .into_iter()
        .filter(|p| p.key.as_ref().is_some_and(|k| keys.insert(k.clone())))
        .collect()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &Path, args: &[&str]) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .current_dir(dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("strata"),
    )
}

/// Streams 24 waves into silver while asking the live metric; returns every event produced and
/// every answer (the last ones after the view reached the end of the topic).
async fn run(brokers: &str, s: &Scenario) -> (Vec<Produced>, Vec<Seen>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = unique(&format!("live-{}", s.table));
    create_topics(brokers, &[(&topic, s.partitions)]).await;
    let port = free_port();
    let pipeline = format!("{PIPELINES}/{}", s.pipeline);
    let config = format!(
        r#"listen: 127.0.0.1:{port}
lake: lake
auth: {{open: true}}
live:
  - table: silver.{table}
    pipeline: {pipeline}
    topic: {topic}
    brokers: {brokers}
    refresh_ms: 100
metrics:
  live:
    table: silver.{table}
    measures:
      value: {measure}
"#,
        table = s.table,
        measure = s.measure,
    );
    std::fs::write(dir.path().join("serve.yaml"), config).expect("serve.yaml");
    let _stream = spawn(
        dir.path(),
        &[
            "stream",
            "silver",
            "--brokers",
            brokers,
            "--input-topic",
            &topic,
            "--pipeline",
            &pipeline,
            "--lake",
            "lake",
            "--commit-interval-ms",
            "700",
            "--max-rows",
            "300",
            "--max-wait-ms",
            "50",
        ],
    );
    let _api = spawn(
        dir.path(),
        &["serve", "analytics", "--config", "serve.yaml"],
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    // The view answers once stream silver has created the table and the view loaded it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while ask(&client, &base, s).await.is_none() {
        assert!(Instant::now() < deadline, "the live metric never answered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let producing = async {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let mut produced = Vec::new();
        let mut earlier = Vec::new();
        for w in 0..24 {
            produced.extend(wave(&producer, &topic, w, (s.ts)(w), &mut earlier).await);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let end: BTreeMap<i32, i64> = produced.iter().fold(BTreeMap::new(), |mut m, p| {
            let e = m.entry(p.partition).or_insert(0);
            *e = (*e).max(p.offset + 1);
            m
        });
        // Ask until the view has read everything, then a few seconds more while the last
        // commits land.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let last = ask(&client, &base, s).await;
            if last.as_ref().is_some_and(|a| a.upto == end) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the view never reached the end of the topic {end:?}: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.store(true, Ordering::Relaxed);
        produced
    };
    let asking = async {
        while !stop.load(Ordering::Relaxed) {
            if let Some(a) = ask(&client, &base, s).await {
                seen.push(a);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    };
    let (produced, ()) = tokio::join!(producing, asking);
    (produced, seen)
}

/// Every answer equals `truth` at its positions; commits landed while asking, and answers
/// joined committed and live rows.
fn check(seen: &[Seen], truth: impl Fn(&BTreeMap<i32, i64>) -> u64, total: u64) {
    let wrong: Vec<(u64, u64, &Seen)> = seen
        .iter()
        .map(|a| (a.value, truth(&a.upto), a))
        .filter(|(got, want, _)| got != want)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} answers differ from the truth at their positions, e.g. {:?}",
        wrong.len(),
        seen.len(),
        &wrong[..wrong.len().min(3)]
    );
    let last = seen.last().expect("answers");
    assert_eq!(last.value, total, "the last answer holds every event");
    let snapshots: BTreeSet<Option<i64>> = seen.iter().map(|a| a.snapshot).collect();
    let seams = seen
        .iter()
        .filter(|a| a.live_rows > 0 && !a.committed.is_empty())
        .count();
    eprintln!(
        "{} answers over {} snapshots, {seams} joining committed and live rows; last value {total}",
        seen.len(),
        snapshots.len()
    );
    assert!(
        snapshots.len() >= 3,
        "commits landed while asking: {snapshots:?}"
    );
    assert!(
        seams >= 5,
        "answers joined committed and live rows: {seams}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_readings_equal_the_truth_at_every_seam() {
    let Some(brokers) = broker("live_readings_equal_the_truth_at_every_seam") else {
        return;
    };
    let scenario = Scenario {
        pipeline: "iot.yaml",
        table: "iot_events",
        partitions: 2,
        measure: "{agg: count}",
        ts: |_| now_ms(),
    };
    let (produced, seen) = run(&brokers, &scenario).await;
    // iot.yaml quarantines the `bad-` devices and keeps the first copy of each reading.
    let truth = |upto: &BTreeMap<i32, i64>| {
        kept(&produced, upto)
            .iter()
            .filter(|p| p.key.as_ref().is_some_and(|k| k.0.starts_with("dev-")))
            .count() as u64
    };
    let end: BTreeMap<i32, i64> = seen.last().map(|a| a.upto.clone()).unwrap_or_default();
    check(&seen, truth, truth(&end));
}

/// Minute windows closed by the watermark; a wave every 20 s of event time, 3 s past it so a
/// watermark never falls on a window's closing instant.
fn rollup_ts(wave: i64) -> i64 {
    static START: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| (now_ms() / 60_000 - 20) * 60_000);
    start + wave * 20_000 + 3_000
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_rollup_equals_the_truth_at_every_seam() {
    let Some(brokers) = broker("a_live_rollup_equals_the_truth_at_every_seam") else {
        return;
    };
    let scenario = Scenario {
        pipeline: "iot_rollup.yaml",
        table: "iot_rollup",
        // One partition: the watermark then follows one order of events, so the truth is one.
        partitions: 1,
        measure: "{agg: sum, column: readings}",
        ts: rollup_ts,
    };
    let (produced, seen) = run(&brokers, &scenario).await;
    // iot_rollup.yaml keeps every device, drops copies, and emits a minute window once the
    // watermark (the newest event time) reaches its end plus 2 minutes of lateness.
    let truth = |upto: &BTreeMap<i32, i64>| {
        let kept = kept(&produced, upto);
        let Some(watermark) = kept.iter().map(|p| p.ts).max() else {
            return 0;
        };
        kept.iter()
            .filter(|p| p.ts.div_euclid(60_000) * 60_000 + 60_000 + 120_000 <= watermark)
            .count() as u64
    };
    let end: BTreeMap<i32, i64> = seen.last().map(|a| a.upto.clone()).unwrap_or_default();
    assert!(truth(&end) > 0, "windows closed during the run");
    check(&seen, truth, truth(&end));
}
