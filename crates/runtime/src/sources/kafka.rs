//! A Kafka topic (JSON or any bytes in `_raw`), read with explicit positions: the committer's
//! position is where reading starts. Where the output holds the positions (a silver table,
//! bronze files) the group's offsets are committed after each commit for monitoring only; where
//! the group holds them (an Avro topic), the committer commits them through [`SharedGroup`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use strata_connectors::kafka::{Assignment, GroupHandle, KafkaConfig, KafkaSource, Positions};

use crate::contract::{Polled, Source};
use crate::error::Result;
use crate::position::Position;

/// Micro-batch bounds of a Kafka source.
#[derive(Debug, Clone, Copy)]
pub struct KafkaBatching {
    /// Records per batch at most.
    pub max_rows: usize,
    /// Bytes of values per batch at most.
    pub max_bytes: usize,
    /// How long a batch waits after its first record.
    pub max_wait: Duration,
}

/// Reads one topic; every batch is a commit boundary (the positions after it).
pub struct KafkaTopicSource {
    config: KafkaConfig,
    topic: String,
    group: String,
    assignment: Assignment,
    batching: KafkaBatching,
    consumer: Option<KafkaSource>,
    group_handle: SharedGroup,
    acknowledge_to_group: bool,
    source_name: Option<String>,
}

/// The consumer group membership of a [`KafkaTopicSource`], filled once it connects: a
/// committer on the sink task commits the source's positions through it (to the group, or
/// into a transaction with the group's metadata).
#[derive(Debug, Clone, Default)]
pub struct SharedGroup(Arc<Mutex<Option<GroupHandle>>>);

impl SharedGroup {
    /// The handle, once the source has connected.
    pub fn get(&self) -> Result<GroupHandle> {
        self.0
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or_else(|| crate::RuntimeError::Stage {
                stage: "source",
                message: "the Kafka consumer is not connected yet".into(),
            })
    }

    fn set(&self, handle: GroupHandle) {
        if let Ok(mut g) = self.0.lock() {
            *g = Some(handle);
        }
    }
}

impl std::fmt::Debug for KafkaTopicSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTopicSource")
            .field("brokers", &self.config.brokers)
            .field("topic", &self.topic)
            .field("group", &self.group)
            .finish()
    }
}

impl KafkaTopicSource {
    /// A source over `topic`; the consumer connects at [`Source::seek`].
    pub fn new(
        config: KafkaConfig,
        topic: impl Into<String>,
        group: impl Into<String>,
        assignment: Assignment,
        batching: KafkaBatching,
    ) -> Self {
        KafkaTopicSource {
            config,
            topic: topic.into(),
            group: group.into(),
            assignment,
            batching,
            consumer: None,
            group_handle: SharedGroup::default(),
            acknowledge_to_group: true,
            source_name: None,
        }
    }

    /// The group membership, for a committer that commits this source's positions itself;
    /// the source then no longer commits them to the group after each commit.
    pub fn share_group(&mut self) -> SharedGroup {
        self.acknowledge_to_group = false;
        self.group_handle.clone()
    }

    /// Names the records' `_source` (default: the topic).
    pub fn with_source_name(mut self, name: impl Into<String>) -> Self {
        self.source_name = Some(name.into());
        self
    }

    fn open(&self, start: &Positions) -> Result<KafkaSource> {
        let source = KafkaSource::open(
            &self.config,
            &self.topic,
            &self.group,
            &self.assignment,
            start,
        )?;
        let source = match &self.source_name {
            Some(name) => source.with_source_name(name.clone()),
            None => source,
        };
        self.group_handle.set(source.group_handle());
        Ok(source)
    }

    fn consumer(&mut self) -> Result<&mut KafkaSource> {
        if self.consumer.is_none() {
            self.consumer = Some(self.open(&Positions::new())?);
        }
        self.consumer
            .as_mut()
            .ok_or_else(|| crate::RuntimeError::Stage {
                stage: "source",
                message: "the consumer did not open".into(),
            })
    }
}

#[async_trait::async_trait]
impl Source for KafkaTopicSource {
    fn name(&self) -> String {
        format!("kafka://{}/{}", self.config.brokers, self.topic)
    }

    fn schema(&self) -> SchemaRef {
        strata_core::lineage::kafka_input_schema()
    }

    fn describe(&self) -> String {
        match &self.consumer {
            Some(c) => format!("{}, partitions {:?}", self.name(), c.partitions()),
            None => self.name(),
        }
    }

    async fn seek(&mut self, committed: Option<&Position>) -> Result<()> {
        let start: Positions = match committed {
            None => Positions::new(),
            Some(p) => p
                .kafka_offsets()
                .cloned()
                .ok_or_else(|| crate::RuntimeError::Protocol {
                    table: self.topic.clone(),
                    problem: format!("the output's committed position is not Kafka offsets: {p:?}"),
                    hint: "the output was written by another kind of source; use a new table",
                })?,
        };
        self.consumer = Some(self.open(&start)?);
        Ok(())
    }

    async fn next(&mut self) -> Result<Polled> {
        let b = self.batching;
        let consumer = self.consumer()?;
        match consumer
            .next_batch(b.max_rows, b.max_bytes, b.max_wait)
            .await?
        {
            Some(batch) => Ok(Polled::Batch {
                batch,
                position: Some(Position::kafka(consumer.positions().clone())),
            }),
            None => Ok(Polled::Idle),
        }
    }

    fn lag(&self) -> Option<crate::contract::SourceLag> {
        let consumer = self.consumer.as_ref()?;
        Some(crate::contract::SourceLag {
            topic: self.topic.clone(),
            partitions: consumer.lag().into_iter().collect(),
        })
    }

    async fn acknowledge(&mut self, committed: &Position) -> Result<()> {
        if !self.acknowledge_to_group {
            return Ok(());
        }
        if let (Some(offsets), Some(consumer)) = (committed.kafka_offsets(), &self.consumer) {
            // Advisory: lets monitoring see the lag; the output's positions are what counts.
            consumer.commit(offsets)?;
        }
        Ok(())
    }
}
