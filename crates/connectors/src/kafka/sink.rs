//! The producer side: idempotent, `acks=all`, optionally transactional. [`KafkaSink::send_all`]
//! returns only when the broker acknowledged every record, so a driver commits its input offsets
//! after it and nothing acknowledged upstream is ever lost.

use std::time::Duration;

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

use super::config::KafkaConfig;
use crate::error::{ConnectorError, Result};

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutRecord {
    /// Target topic.
    pub topic: String,
    /// Key bytes (partitioning).
    pub key: Option<Vec<u8>>,
    /// Value bytes; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// An idempotent producer.
pub struct KafkaSink {
    producer: FutureProducer,
    config: KafkaConfig,
    transactional: bool,
    timeout: Duration,
    /// Set when a delivery failed with an error that poisons this producer's idempotence
    /// state (fenced epoch, sequence gap): every later send would fail the same way.
    poisoned: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("brokers", &self.config.brokers)
            .field("transactional", &self.transactional)
            .finish()
    }
}

impl KafkaSink {
    /// Connects a producer; with `transactional_id`, initialises transactions (fencing any
    /// earlier producer with the same id — a zombie's open transaction is aborted).
    pub fn open(config: &KafkaConfig, transactional_id: Option<&str>) -> Result<Self> {
        config.check()?;
        let mut client = config.client_config_for(
            super::config::Role::Producer,
            &[
                ("compression.type", "lz4"),
                ("linger.ms", "5"),
                ("message.timeout.ms", "30000"),
            ],
        );
        if let Some(id) = transactional_id {
            client.set("transactional.id", id);
        }
        let producer: FutureProducer = client.create().map_err(|e| config.kafka_error("", e))?;
        let timeout = Duration::from_secs(30);
        if transactional_id.is_some() {
            producer
                .init_transactions(timeout)
                .map_err(|e| config.kafka_error("", e))?;
        }
        Ok(KafkaSink {
            producer,
            config: config.clone(),
            transactional: transactional_id.is_some(),
            timeout,
            poisoned: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Produces every record and waits for all acknowledgements. Records to one partition keep
    /// their order (idempotent producer). The first failure is returned, naming the topic.
    pub async fn send_all(&self, records: &[OutRecord]) -> Result<usize> {
        let n = records.len();
        for outcome in self.send_each(records).await {
            outcome?;
        }
        Ok(n)
    }

    /// Produces every record and waits for every acknowledgement, returning each record's own
    /// outcome (in order): a receiver answering many senders at once tells each whether its
    /// record is stored.
    pub async fn send_each(&self, records: &[OutRecord]) -> Vec<Result<()>> {
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&r.topic).headers(headers);
            if let Some(k) = &r.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                record = record.payload(v.as_slice());
            }
            // A full local queue is back-pressure, not an error: wait for deliveries and retry.
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(Ok(delivery));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        pending.push(Err(self.config.kafka_error(&r.topic, e)));
                        break;
                    }
                }
            }
        }
        let mut outcomes = Vec::with_capacity(records.len());
        for (queued, r) in pending.into_iter().zip(records) {
            let delivery = match queued {
                Ok(delivery) => delivery,
                Err(e) => {
                    outcomes.push(Err(e));
                    continue;
                }
            };
            outcomes.push(match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => {
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::ProducerFenced
                                | RDKafkaErrorCode::InvalidProducerEpoch
                                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                                | RDKafkaErrorCode::UnknownProducerId
                        )
                    ) {
                        self.poisoned
                            .store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(self.config.kafka_error(&r.topic, e))
                }
                Err(_) => Err(ConnectorError::Internal(
                    "the producer was dropped before delivering".into(),
                )),
            });
        }
        outcomes
    }

    /// Starts a transaction (transactional sinks only).
    pub fn begin(&self) -> Result<()> {
        self.producer
            .begin_transaction()
            .map_err(|e| self.config.kafka_error("", e))
    }

    /// Adds the consumer's `offsets` to the open transaction and commits it: the output and the
    /// input positions become visible together, or not at all.
    pub fn commit_with_offsets(
        &self,
        consumer: &StreamConsumer,
        offsets: &TopicPartitionList,
    ) -> Result<()> {
        let group = consumer
            .group_metadata()
            .ok_or_else(|| ConnectorError::Internal("the consumer has no group metadata".into()))?;
        self.producer
            .send_offsets_to_transaction(offsets, &group, self.timeout)
            .map_err(|e| self.config.kafka_error("", e))?;
        self.producer
            .commit_transaction(self.timeout)
            .map_err(|e| self.config.kafka_error("", e))
    }

    /// Aborts the open transaction (after a failure inside it).
    pub fn abort(&self) -> Result<()> {
        self.producer
            .abort_transaction(self.timeout)
            .map_err(|e| self.config.kafka_error("", e))
    }

    /// True when the cluster answers a metadata request within `timeout` (readiness probes).
    /// Blocking: call it from `spawn_blocking`.
    pub fn reachable(&self, timeout: Duration) -> bool {
        self.producer
            .client()
            .fetch_metadata(None, timeout)
            .is_ok_and(|m| !m.brokers().is_empty())
    }

    /// Why this producer cannot produce any more, if it can't: librdkafka's fatal error, or a
    /// delivery that failed with a fenced epoch / sequence error (seen when a broker restarts
    /// and loses its producer state — librdkafka does not flag those as fatal for a
    /// non-transactional producer, yet every later send fails the same way). A long-running
    /// driver replaces such a producer with a new one.
    pub fn fatal_error(&self) -> Option<String> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return Some(format!("{code:?}: {reason}"));
        }
        self.poisoned
            .load(std::sync::atomic::Ordering::SeqCst)
            .then(|| "the producer's idempotence epoch was fenced".to_string())
    }

    /// Waits until everything queued is delivered (shutdown).
    pub fn flush(&self) -> Result<()> {
        self.producer
            .flush(self.timeout)
            .map_err(|e| self.config.kafka_error("", e))
    }
}
