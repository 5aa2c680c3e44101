//! The webhook receiver's delivery on the one driver, against the tansu of
//! `scripts/services.sh`: 300 concurrent requests waiting in the inbox share one batch, each is
//! answered "stored" only with its record in Kafka (key, value and headers as submitted); a
//! record the broker refuses (larger than `message.max.bytes`) is answered with the reason while
//! the requests batched with it are stored; once the inbox is dropped the driver ends. Skips
//! loudly without the broker unless `CI` is set (then it fails).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use strata_connectors::kafka::{KafkaConfig, OutRecord, ProducerSlot};
use strata_connectors::webhook::Deliver;
use strata_runtime::sinks::RepliedRecordsSink;
use strata_runtime::sources::webhook_source;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Passthrough, StopReason};

mod common;
use common::{server, unique};

/// Every record of partition 0: key → (value, headers).
async fn read_all(
    brokers: &str,
    topic: &str,
) -> BTreeMap<String, (Vec<u8>, Vec<(String, String)>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut got = BTreeMap::new();
    while let Ok(m) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await {
        let m = m.expect("record");
        let key = String::from_utf8_lossy(m.key().expect("key")).to_string();
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                        (h.key.to_string(), value.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let previous = got.insert(
            key.clone(),
            (m.payload().unwrap_or_default().to_vec(), headers),
        );
        assert!(previous.is_none(), "{key} stored twice");
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_answered_with_its_own_record_outcome() {
    let Some(brokers) = server("STRATA_TEST_KAFKA") else {
        return;
    };
    let topic = unique("webhook_driver");
    common::create_topics(&brokers, &[&topic]).await;
    let kafka = KafkaConfig::from_profile(&brokers, Vec::new()).expect("profile");
    let producer = Arc::new(ProducerSlot::open(&kafka).expect("producer"));
    let ack_timeout = Duration::from_secs(10);
    let (source, inbox, replies) = webhook_source(producer.clone(), ack_timeout, 4096);
    let sink = RepliedRecordsSink::new(producer, replies, ack_timeout);
    let options = DriverOptions {
        commit: CommitPolicy::every(Duration::ZERO, 1),
        channel_depth: 2,
        stop_when_idle: None,
        crash_after_commits: None,
    };
    let inbox = Arc::new(inbox);
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..300u32 {
        let inbox = inbox.clone();
        let topic = topic.clone();
        requests.spawn(async move {
            // Request 150 is larger than the broker takes.
            let value = if i == 150 {
                vec![b'x'; 2 * 1024 * 1024]
            } else {
                format!("{{\"event\":{i}}}").into_bytes()
            };
            let record = OutRecord {
                topic,
                key: Some(format!("card-{i:03}").into_bytes()),
                value: Some(value),
                headers: vec![
                    ("strata.source".into(), b"pipefy".to_vec()),
                    (
                        "strata.idempotency_key".into(),
                        format!("k{i}").into_bytes(),
                    ),
                ],
            };
            (i, inbox.deliver(record).await)
        });
    }
    // Every request is waiting in the inbox before the driver starts, so the refused record
    // shares its batch with the others (a batch takes all that is waiting, up to 1,024).
    while inbox.waiting() < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let driver = tokio::spawn(
        Driver::new(source, Passthrough::new("webhooks"), sink, options)
            .run(std::future::pending()),
    );

    let mut answers = BTreeMap::new();
    while let Some(joined) = requests.join_next().await {
        let (i, answer) = joined.expect("request task");
        answers.insert(i, answer);
    }
    drop(inbox);
    let report = driver.await.expect("driver task").expect("driver run");
    assert_eq!(
        report.stopped,
        StopReason::EndOfInput,
        "ends when the inbox is gone"
    );
    assert_eq!(report.commits, 1, "the waiting requests share one batch");

    let refused = answers[&150].as_ref().expect_err("too large");
    assert!(refused.contains(&topic), "{refused}");
    let stored: Vec<u32> = answers
        .iter()
        .filter(|(_, a)| a.is_ok())
        .map(|(i, _)| *i)
        .collect();
    let others_refused: Vec<_> = answers
        .iter()
        .filter(|(i, a)| **i != 150 && a.is_err())
        .take(3)
        .collect();
    assert_eq!(
        stored.len(),
        299,
        "refused besides request 150: {others_refused:?}"
    );

    let got = read_all(&brokers, &topic).await;
    assert_eq!(got.len(), 299);
    for i in stored {
        let (value, headers) = &got[&format!("card-{i:03}")];
        assert_eq!(value, format!("{{\"event\":{i}}}").as_bytes());
        assert_eq!(
            headers,
            &vec![
                ("strata.source".to_string(), "pipefy".to_string()),
                ("strata.idempotency_key".to_string(), format!("k{i}")),
            ]
        );
    }
    assert!(!got.contains_key("card-150"));
}
