//! A Kafka source's lag in records, per partition, against the tansu of `scripts/services.sh`:
//! 40 records are produced one per request (so the broker reports each partition's end
//! exactly; see SERVERS.md), then read in batches of 5. After each batch the lag the source
//! reports is the end minus the position it reached, and it is 0 once everything was read.
//! Skips loudly without the broker unless `CI` is set (then it fails).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use strata_connectors::kafka::{Assignment, KafkaConfig};
use strata_runtime::sources::{KafkaBatching, KafkaTopicSource};
use strata_runtime::{Polled, Source};

mod common;
use common::{server, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_per_partition_is_the_end_minus_the_position() {
    let Some(brokers) = server("STRATA_TEST_KAFKA") else {
        return;
    };
    let topic = unique("lag");
    common::create_topics(&brokers, &[&topic]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let total = 40i64;
    for i in 0..total {
        let value = format!("{{\"n\":{i}}}");
        producer
            .send(
                FutureRecord::<(), _>::to(&topic)
                    .payload(&value)
                    .partition(0),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let kafka = KafkaConfig::from_profile(&brokers, Vec::new()).expect("profile");
    let mut source = KafkaTopicSource::new(
        kafka,
        &topic,
        unique("lag-group"),
        Assignment::Partitions(vec![0]),
        KafkaBatching {
            max_rows: 5,
            max_bytes: 1 << 20,
            max_wait: Duration::from_millis(200),
        },
    );
    assert_eq!(source.lag(), None, "no lag before the consumer connects");
    source.seek(None).await.expect("seek");
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut at = 0i64;
    while at < total {
        assert!(Instant::now() < deadline, "read {at} of {total} records");
        if let Polled::Batch { position, .. } = source.next().await.expect("next") {
            at = position
                .and_then(|p| p.kafka_offsets().and_then(|o| o.get(&0).copied()))
                .expect("a position for partition 0");
            let lag: BTreeMap<i32, i64> = source
                .lag()
                .expect("a Kafka source knows its lag")
                .partitions
                .into_iter()
                .collect();
            if let Some(records) = lag.get(&0) {
                seen.push((at, *records));
            }
        }
    }
    assert!(!seen.is_empty(), "the lag was known after a fetch");
    for (position, records) in &seen {
        assert_eq!(
            *records,
            total - position,
            "lag at position {position}: {seen:?}"
        );
    }
    assert!(
        seen.iter().any(|(_, records)| *records > 0),
        "some lag was seen while reading: {seen:?}"
    );
    assert_eq!(seen.last().map(|s| s.1), Some(0), "no lag at the end");
}
