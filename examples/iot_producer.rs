//! Stage: IoT devices push JSON straight to Kafka, at a chosen rate, with real-world faults.
//!
//! ```text
//! cargo run -p strata-examples --example iot_producer -- <brokers> <topic> [events] [events/s] [devices]
//! ```
//! Defaults: 100,000 events at 10,000 events/s from 200 devices. Events come from `strata_core::sample::iot_events`
//! (late events, numbers as strings, duplicates — a device retrying — and some malformed lines).
//! The producer is configured as a device gateway should be: idempotence on, `acks=all`, lz4
//! compression, small linger, keyed by device id so a device's events stay in order on one
//! partition. The topic must exist.

use std::time::{Duration, Instant};

use anyhow::Context;
use strata_connectors::kafka::{KafkaConfig, KafkaSink, OutRecord};
use strata_core::sample::{IotFaults, iot_events_of_devices};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "iot.events".into());
    let events: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let rate: f64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000.0);
    let devices: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let config = KafkaConfig::new(&brokers);
    strata_connectors::kafka::partitions_of(&config, &topic)
        .with_context(|| format!("topic {topic}"))?;
    let sink = KafkaSink::open(&config, None)?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let lines = iot_events_of_devices(events, devices, 42, IotFaults::default(), now_ms);
    let started = Instant::now();
    // Send in ticks of 10 ms, each with the events the rate allows by then.
    let per_tick = (rate / 100.0).max(1.0) as usize;
    for (i, chunk) in lines.chunks(per_tick).enumerate() {
        let records: Vec<OutRecord> = chunk
            .iter()
            .map(|line| OutRecord {
                topic: topic.clone(),
                key: serde_json_key(line),
                value: Some(line.as_bytes().to_vec()),
                headers: Vec::new(),
            })
            .collect();
        sink.send_all(&records).await?;
        let due = started + Duration::from_millis(10 * (i as u64 + 1));
        tokio::time::sleep_until(due.into()).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sent {events} events to {topic} in {secs:.1} s ({:.0} events/s)",
        events as f64 / secs
    );
    Ok(())
}

/// The device id of an event, as its key (malformed lines go unkeyed).
fn serde_json_key(line: &str) -> Option<Vec<u8>> {
    let start = line.find("\"device_id\":\"")? + "\"device_id\":\"".len();
    let end = line[start..].find('"')? + start;
    Some(line.as_bytes()[start..end].to_vec())
}
