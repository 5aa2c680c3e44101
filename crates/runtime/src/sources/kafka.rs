//! A Kafka topic (JSON or any bytes in `_raw`), read with explicit positions: the committer's
//! position is where reading starts; the group's offsets are committed after each commit for
//! monitoring only.

use std::time::Duration;

use arrow::datatypes::SchemaRef;
use strata_connectors::kafka::{Assignment, KafkaConfig, KafkaSource, Positions};

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
        }
    }

    fn consumer(&mut self) -> Result<&mut KafkaSource> {
        if self.consumer.is_none() {
            self.consumer = Some(KafkaSource::open(
                &self.config,
                &self.topic,
                &self.group,
                &self.assignment,
                &Positions::new(),
            )?);
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
        self.consumer = Some(KafkaSource::open(
            &self.config,
            &self.topic,
            &self.group,
            &self.assignment,
            &start,
        )?);
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

    async fn acknowledge(&mut self, committed: &Position) -> Result<()> {
        if let (Some(offsets), Some(consumer)) = (committed.kafka_offsets(), &self.consumer) {
            // Advisory: lets monitoring see the lag; the output's positions are what counts.
            consumer.commit(offsets)?;
        }
        Ok(())
    }
}
