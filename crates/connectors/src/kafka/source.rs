//! The consumer side: micro-batches of raw records with their lineage
//! (`strata_core::lineage::kafka_input_schema`), bounded by rows, bytes and time, and the
//! positions (next offset per partition) they advance to. Offsets are never committed
//! automatically: the driver commits them once the batch's output is durable.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray, TimestampMicrosecondBuilder,
};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::config::{KafkaConfig, partitions_of};
use crate::error::{ConnectorError, Result};

/// Next offset to read, per partition.
pub type Positions = BTreeMap<i32, i64>;

/// Which partitions this consumer reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// Subscribe as a member of the consumer group (the broker assigns partitions and the
    /// group's committed offsets are the start).
    Group,
    /// Exactly these partitions, no group coordination.
    Partitions(Vec<i32>),
    /// Instance `index` of `count`: the partitions `p` with `p % count == index`.
    Instance {
        /// 0-based.
        index: u32,
        /// How many instances share the topic.
        count: u32,
    },
}

/// A Kafka topic as a source of pipeline batches.
pub struct KafkaSource {
    consumer: Arc<StreamConsumer>,
    config: KafkaConfig,
    topic: String,
    source: String,
    partitions: Vec<i32>,
    positions: Positions,
    last_warning: Option<Instant>,
}

/// Errors librdkafka recovers from by itself (the consumer keeps its position); shared by every
/// reader of topics in this crate.
pub(crate) fn is_transient(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::BrokerTransportFailure
                | C::AllBrokersDown
                | C::OperationTimedOut
                | C::NetworkException
                | C::RequestTimedOut
                | C::NotCoordinator
                | C::CoordinatorNotAvailable
                | C::CoordinatorLoadInProgress
                | C::LeaderNotAvailable
                | C::NotLeaderForPartition
                | C::Resolve
        )
    )
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topic", &self.topic)
            .field("positions", &self.positions)
            .finish()
    }
}

impl KafkaSource {
    /// Connects and assigns partitions. `group` names the consumer group offsets are committed
    /// to (in every mode). With explicit partitions, reading starts at `start` where given, else
    /// at the group's committed offset, else at the beginning.
    pub fn open(
        config: &KafkaConfig,
        topic: &str,
        group: &str,
        assignment: &Assignment,
        start: &Positions,
    ) -> Result<Self> {
        let all = partitions_of(config, topic)?;
        config.check()?;
        let mut client = config.client_config_for(
            super::config::Role::Consumer,
            &[
                ("auto.offset.reset", "earliest"),
                ("session.timeout.ms", "6000"),
                // `fetch.wait.max.ms` stays at librdkafka's 500 ms: `-X fetch.wait.max.ms=10`
                // cuts the p50 on tansu from 160 to 22 ms, but tansu then answers a consumer
                // that is far behind with empty fetches for good (docs/streaming.md).
            ],
        );
        client.set("group.id", group);
        let consumer: StreamConsumer = client.create().map_err(|e| config.kafka_error(topic, e))?;
        let partitions = assigned(config, topic, assignment, &all)?;
        let mut positions = Positions::new();
        if *assignment == Assignment::Group {
            consumer
                .subscribe(&[topic])
                .map_err(|e| config.kafka_error(topic, e))?;
            positions.extend(start.iter().map(|(p, o)| (*p, *o)));
        } else {
            let committed = committed(&consumer, config, topic, &partitions)?;
            let mut tpl = TopicPartitionList::new();
            for p in &partitions {
                let offset = start.get(p).or_else(|| committed.get(p)).copied();
                let at = match offset {
                    Some(o) => Offset::Offset(o),
                    None => Offset::Beginning,
                };
                tpl.add_partition_offset(topic, *p, at)
                    .map_err(|e| config.kafka_error(topic, e))?;
                if let Some(o) = offset {
                    positions.insert(*p, o);
                }
            }
            consumer
                .assign(&tpl)
                .map_err(|e| config.kafka_error(topic, e))?;
        }
        Ok(KafkaSource {
            consumer: Arc::new(consumer),
            config: config.clone(),
            topic: topic.to_string(),
            source: topic.to_string(),
            partitions,
            positions,
            last_warning: None,
        })
    }

    /// Names the records' `_source` (default: the topic).
    pub fn with_source_name(mut self, name: impl Into<String>) -> Self {
        self.source = name.into();
        self
    }

    /// The partitions this source reads (in group mode: all of the topic's).
    pub fn partitions(&self) -> &[i32] {
        &self.partitions
    }

    /// Next offset per partition after everything returned so far.
    pub fn positions(&self) -> &Positions {
        &self.positions
    }

    /// Records behind the end of each partition, from the end the consumer's last fetch
    /// reported (librdkafka's cached watermarks: no request to the broker). A partition whose
    /// end is not known yet is left out; a broker that under-reports the end (tansu, see
    /// SERVERS.md) shows less lag, never a negative one.
    pub fn lag(&self) -> Positions {
        let Ok(topic) = std::ffi::CString::new(self.topic.as_str()) else {
            return Positions::new();
        };
        let client = self.consumer.client();
        self.partitions
            .iter()
            .filter_map(|p| {
                let (mut low, mut high) = (-1i64, -1i64);
                // SAFETY: the client handle lives as long as `self.consumer`, which this
                // borrow keeps alive; `topic` is a NUL-terminated string that outlives the
                // call; `low` and `high` are valid for writes. The call only reads
                // librdkafka's cached watermarks (no request, no callback).
                let code = unsafe {
                    rdkafka::bindings::rd_kafka_get_watermark_offsets(
                        client.native_ptr(),
                        topic.as_ptr(),
                        *p,
                        &mut low,
                        &mut high,
                    )
                };
                (code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                    && high >= 0)
                    .then(|| {
                        let at = self.positions.get(p).copied().unwrap_or(low.max(0));
                        (*p, high.saturating_sub(at).max(0))
                    })
            })
            .collect()
    }

    /// The group's committed offsets for this source's partitions.
    pub fn committed(&self) -> Result<Positions> {
        committed(&self.consumer, &self.config, &self.topic, &self.partitions)
    }

    /// The underlying consumer (transactions need its group metadata).
    pub fn consumer(&self) -> &StreamConsumer {
        &self.consumer
    }

    /// Commits `positions` to the consumer group (synchronously).
    pub fn commit(&self, positions: &Positions) -> Result<()> {
        self.group_handle().commit(positions)
    }

    /// `positions` as a librdkafka partition list.
    pub fn offsets_list(&self, positions: &Positions) -> Result<TopicPartitionList> {
        self.group_handle().offsets_list(positions)
    }

    /// A handle on this source's consumer group membership, for a committer on another task
    /// (offsets committed to the group, or sent into a producer's transaction).
    pub fn group_handle(&self) -> GroupHandle {
        GroupHandle {
            consumer: self.consumer.clone(),
            config: self.config.clone(),
            topic: self.topic.clone(),
        }
    }

    /// The next micro-batch: up to `max_rows` records or `max_bytes` of values, returned once
    /// full or when `max_wait` has passed since the first record arrived; `None` when nothing
    /// arrived within `max_wait`.
    pub async fn next_batch(
        &mut self,
        max_rows: usize,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<Option<RecordBatch>> {
        let mut raw = BinaryBuilder::new();
        let mut keys = BinaryBuilder::new();
        let mut partitions = Int32Builder::new();
        let mut offsets = Int64Builder::new();
        let mut stamps = TimestampMicrosecondBuilder::new();
        let mut headers = StringBuilder::new();
        let (mut rows, mut bytes) = (0usize, 0usize);
        let mut deadline = Instant::now() + max_wait;
        while rows < max_rows.max(1) && bytes < max_bytes {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let message = match tokio::time::timeout(left, self.consumer.recv()).await {
                Err(_) => break,
                // A broker restart or a network blip: librdkafka reconnects by itself and
                // fetching resumes at the same position, so wait instead of failing the run.
                Ok(Err(e)) if is_transient(&e) => {
                    if self
                        .last_warning
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
                    {
                        eprintln!("warning: kafka `{}`: {e}; retrying", self.config.brokers);
                        self.last_warning = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Ok(Err(e)) => return Err(self.config.kafka_error(&self.topic, e)),
                Ok(Ok(m)) => m,
            };
            if rows == 0 {
                // The wait bounds latency from the first record, not idle time before it.
                deadline = Instant::now() + max_wait;
            }
            match message.payload() {
                Some(v) => {
                    bytes += v.len();
                    raw.append_value(v);
                }
                None => raw.append_null(),
            }
            match message.key() {
                Some(k) => keys.append_value(k),
                None => keys.append_null(),
            }
            partitions.append_value(message.partition());
            offsets.append_value(message.offset());
            stamps.append_option(message.timestamp().to_millis().and_then(micros_of_millis));
            match message.headers() {
                Some(h) if h.count() > 0 => {
                    let map: serde_json::Map<String, serde_json::Value> = h
                        .iter()
                        .map(|h| {
                            let v = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
                            (
                                h.key.to_string(),
                                v.map_or(serde_json::Value::Null, serde_json::Value::String),
                            )
                        })
                        .collect();
                    headers.append_value(serde_json::Value::Object(map).to_string());
                }
                _ => headers.append_null(),
            }
            self.positions
                .insert(message.partition(), message.offset() + 1);
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(raw.finish()),
            Arc::new(StringArray::from(vec![self.source.as_str(); rows])),
            Arc::new(TimestampMicrosecondArray::from(vec![now; rows]).with_timezone("UTC")),
            Arc::new(StringArray::from(vec![self.topic.as_str(); rows])),
            Arc::new(partitions.finish()),
            Arc::new(offsets.finish()),
            Arc::new(stamps.finish().with_timezone("UTC")),
            Arc::new(keys.finish()),
            Arc::new(headers.finish()),
        ];
        RecordBatch::try_new(strata_core::lineage::kafka_input_schema(), columns)
            .map(Some)
            .map_err(|e| ConnectorError::Internal(format!("building a Kafka batch: {e}")))
    }
}

/// The consumer of a [`KafkaSource`], shared with whoever commits its positions.
#[derive(Clone)]
pub struct GroupHandle {
    consumer: Arc<StreamConsumer>,
    config: KafkaConfig,
    topic: String,
}

impl std::fmt::Debug for GroupHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupHandle")
            .field("topic", &self.topic)
            .finish()
    }
}

impl GroupHandle {
    /// The consumer (a transaction needs its group metadata).
    pub fn consumer(&self) -> &StreamConsumer {
        &self.consumer
    }

    /// Commits `positions` to the consumer group (synchronously).
    pub fn commit(&self, positions: &Positions) -> Result<()> {
        let tpl = self.offsets_list(positions)?;
        if tpl.count() == 0 {
            return Ok(());
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| self.config.kafka_error(&self.topic, e))
    }

    /// `positions` as a librdkafka partition list.
    pub fn offsets_list(&self, positions: &Positions) -> Result<TopicPartitionList> {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in positions {
            tpl.add_partition_offset(&self.topic, *p, Offset::Offset(*o))
                .map_err(|e| self.config.kafka_error(&self.topic, e))?;
        }
        Ok(tpl)
    }
}

/// The partitions an assignment reads (in group mode: all of the topic's).
fn assigned(
    config: &KafkaConfig,
    topic: &str,
    assignment: &Assignment,
    all: &[i32],
) -> Result<Vec<i32>> {
    Ok(match assignment {
        Assignment::Group => all.to_vec(),
        Assignment::Partitions(p) => {
            if let Some(bad) = p.iter().find(|p| !all.contains(p)) {
                return Err(ConnectorError::Kafka {
                    brokers: config.brokers.clone(),
                    topic: topic.to_string(),
                    message: format!("partition {bad} does not exist (the topic has {all:?})"),
                    hint: "pass partitions the topic has",
                });
            }
            p.clone()
        }
        Assignment::Instance { index, count } => {
            if *count == 0 || index >= count {
                return Err(ConnectorError::Kafka {
                    brokers: config.brokers.clone(),
                    topic: topic.to_string(),
                    message: format!("instance {index}/{count} is not valid"),
                    hint: "use --instance i/N with 0 <= i < N",
                });
            }
            all.iter()
                .copied()
                .filter(|p| (*p as u32) % count == *index)
                .collect()
        }
    })
}

/// The offsets `group` has committed for the partitions `assignment` reads, read without
/// joining the group (before a source opens).
pub fn group_offsets(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    assignment: &Assignment,
) -> Result<Positions> {
    let all = partitions_of(config, topic)?;
    let partitions = assigned(config, topic, assignment, &all)?;
    let mut client = config.client_config_for(super::config::Role::Consumer, &[]);
    client.set("group.id", group);
    let consumer: StreamConsumer = client.create().map_err(|e| config.kafka_error(topic, e))?;
    committed(&consumer, config, topic, &partitions)
}

fn committed(
    consumer: &StreamConsumer,
    config: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
) -> Result<Positions> {
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        tpl.add_partition(topic, *p);
    }
    let got = consumer
        .committed_offsets(tpl, config.metadata_timeout)
        .map_err(|e| config.kafka_error(topic, e))?;
    Ok(got
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect())
}

/// A Kafka timestamp (ms) as microseconds. A producer sets CreateTime to anything; one past
/// what microseconds hold is no time at all, not a wrapped (or, in debug builds, panicking)
/// product.
fn micros_of_millis(ms: i64) -> Option<i64> {
    ms.checked_mul(1000)
}

#[cfg(test)]
mod timestamp_tests {
    use super::micros_of_millis;

    #[test]
    fn an_out_of_range_kafka_timestamp_is_none_not_a_wrap() {
        assert_eq!(
            micros_of_millis(1_700_000_000_123),
            Some(1_700_000_000_123_000)
        );
        assert_eq!(micros_of_millis(i64::MAX / 999), None);
        assert_eq!(micros_of_millis(i64::MIN), None);
    }
}
