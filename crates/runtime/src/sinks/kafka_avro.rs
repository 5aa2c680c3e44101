//! A Kafka topic of Avro records (Confluent wire format), quarantined records to a dead-letter
//! topic, with the input positions in the source's consumer group.
//!
//! The commit protocol (one commit = one [`Committer::commit`]):
//! 1. every staged batch is produced and acknowledged by the brokers before the next one is
//!    staged (in exactly-once mode, inside the open transaction);
//! 2. the pipeline state is saved with the positions it belongs to ([`StateStore`]);
//! 3. the positions are committed: into the transaction with the group's metadata, then the
//!    transaction (exactly once for `read_committed` readers), or to the group after the
//!    acknowledgements (at least once).
//!
//! On restart the group's committed offsets are the position, and the state file matching them
//! is the pipeline state: a crash between 2 and 3 replays the batch from consistent state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use strata_connectors::avro::AvroEncoder;
use strata_connectors::kafka::{Assignment, KafkaConfig, KafkaSink, OutRecord, group_offsets};
use strata_connectors::registry::{RegistryClient, SubjectNameStrategy};
use strata_core::Pipeline;

use crate::contract::{CommitReport, Committed, Committer, Sink, StateUpdate};
use crate::dead_letters::dead_letters;
use crate::error::{Result, RuntimeError};
use crate::position::Position;
use crate::sources::SharedGroup;
use crate::state_store::{StateStore, StreamState};

/// Where the input positions are read from before the source connects.
#[derive(Debug, Clone)]
pub struct InputGroup {
    /// The connection.
    pub config: KafkaConfig,
    /// The input topic.
    pub topic: String,
    /// The consumer group holding the positions.
    pub group: String,
    /// The partitions read.
    pub assignment: Assignment,
    /// The source's membership (from [`crate::sources::KafkaTopicSource::share_group`]).
    pub shared: SharedGroup,
}

/// What the sink writes.
#[derive(Debug, Clone)]
pub struct AvroOutput {
    /// The Avro topic.
    pub topic: String,
    /// The dead-letter topic.
    pub dead_letter_topic: String,
    /// The output column whose value keys the records (partitioning), if any.
    pub key_column: Option<usize>,
    /// With a transactional id, exactly once (a fenced producer per instance).
    pub transactional_id: Option<String>,
    /// The folder of the pipeline state files (one per instance).
    pub state_dir: PathBuf,
    /// Start with empty state when no saved state matches the committed offsets.
    pub reset_state: bool,
}

/// Registers the pipeline's output schema for `topic` (TopicNameStrategy, checked for
/// compatibility by the registry) and returns the encoder: data the registry would reject is
/// never produced.
pub async fn register_output_schema(
    registry: &RegistryClient,
    topic: &str,
    pipeline: &Pipeline,
) -> Result<AvroEncoder> {
    let name = &pipeline.spec().name;
    let schema = pipeline.output_schema();
    let probe = AvroEncoder::for_arrow(schema.clone(), name, Some("strata"), 0)?;
    let subject = SubjectNameStrategy::TopicName.subject(topic, false, name);
    let id = registry
        .ensure_registered(&subject, &probe.avro_schema().text())
        .await?;
    Ok(AvroEncoder::new(schema, probe.avro_schema().clone(), id))
}

/// Produces Avro rows and dead letters; commits positions to the group or a transaction.
pub struct KafkaAvroSink {
    producer: KafkaSink,
    encoder: Arc<AvroEncoder>,
    output: AvroOutput,
    input: InputGroup,
    store: StateStore,
    /// Output produced since the last commit (a transaction is open in exactly-once mode).
    open: bool,
    rows: u64,
    quarantined: u64,
}

impl std::fmt::Debug for KafkaAvroSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaAvroSink")
            .field("topic", &self.output.topic)
            .field("exactly_once", &self.exactly_once())
            .finish()
    }
}

impl KafkaAvroSink {
    /// Connects the producer (initialising transactions in exactly-once mode, which fences an
    /// earlier producer of the same id) and opens the state folder.
    pub fn open(
        config: &KafkaConfig,
        encoder: AvroEncoder,
        output: AvroOutput,
        input: InputGroup,
    ) -> Result<Self> {
        let producer = KafkaSink::open(config, output.transactional_id.as_deref())?;
        let store = StateStore::open(&output.state_dir)?;
        Ok(KafkaAvroSink {
            producer,
            encoder: Arc::new(encoder),
            output,
            input,
            store,
            open: false,
            rows: 0,
            quarantined: 0,
        })
    }

    fn exactly_once(&self) -> bool {
        self.output.transactional_id.is_some()
    }

    async fn send(&mut self, records: Vec<OutRecord>) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        self.begin_if_needed()?;
        if let Err(e) = self.producer.send_all(&records).await {
            if self.exactly_once() {
                // Nothing of the transaction becomes visible; the next run replays it.
                let _ = self.producer.abort();
                self.open = false;
            }
            return Err(e.into());
        }
        Ok(())
    }

    fn begin_if_needed(&mut self) -> Result<()> {
        if self.exactly_once() && !self.open {
            self.producer.begin()?;
        }
        self.open = true;
        Ok(())
    }

    /// Commits offsets to the group, waiting out a broker that is briefly unreachable (a
    /// restart): the output is already acknowledged, so giving up would only cause a replay.
    async fn commit_to_group(&self, offsets: &BTreeMap<i32, i64>) -> Result<()> {
        let group = self.input.shared.get()?;
        let mut attempt = 0;
        loop {
            match group.commit(offsets) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_unreachable() && attempt < 60 => {
                    attempt += 1;
                    tracing::warn!(
                        "committing offsets of `{}`: {e}; retrying",
                        self.input.group
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[async_trait::async_trait]
impl Sink for KafkaAvroSink {
    async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        let values = self.encoder.encode_batch(rows)?;
        let keys = self
            .output
            .key_column
            .map(|i| key_bytes(rows.column(i).as_ref()));
        let records: Vec<OutRecord> = values
            .into_iter()
            .enumerate()
            .map(|(i, value)| OutRecord {
                topic: self.output.topic.clone(),
                key: keys.as_ref().and_then(|k| k[i].clone()),
                value: Some(value),
                headers: Vec::new(),
            })
            .collect();
        self.rows += records.len() as u64;
        self.send(records).await
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        let records = dead_letters(rows, &self.output.dead_letter_topic);
        self.quarantined += records.len() as u64;
        self.send(records).await
    }

    async fn close(&mut self) -> Result<()> {
        Ok(self.producer.flush()?)
    }
}

#[async_trait::async_trait]
impl Committer for KafkaAvroSink {
    async fn committed(&mut self) -> Result<Committed> {
        let i = &self.input;
        let offsets = group_offsets(&i.config, &i.topic, &i.group, &i.assignment)?;
        let position = (!offsets.is_empty()).then(|| Position::kafka(offsets.clone()));
        let state = match self.store.matching(&offsets)? {
            (Some(state), _) => Some(state.pipeline),
            (None, false) => None,
            (None, true) if self.output.reset_state => {
                tracing::warn!(
                    "no saved state in {} matches the committed offsets; starting with empty \
                     state (--reset-state)",
                    self.store.dir().display()
                );
                None
            }
            (None, true) if offsets.is_empty() => None,
            (None, true) => {
                return Err(RuntimeError::Protocol {
                    table: self.store.dir().display().to_string(),
                    problem: format!(
                        "no saved pipeline state matches the committed offsets {offsets:?} of \
                         group `{}`",
                        i.group
                    ),
                    hint: "--reset-state starts with empty state (dedup may then let \
                           duplicates through once)",
                });
            }
        };
        Ok(Committed {
            position,
            state,
            state_deltas: Vec::new(),
        })
    }

    async fn commit(&mut self, position: &Position, state: StateUpdate) -> Result<CommitReport> {
        let offsets = position
            .kafka_offsets()
            .cloned()
            .ok_or_else(|| RuntimeError::Protocol {
                table: self.output.topic.clone(),
                problem: format!("a commit position that is not Kafka offsets: {position:?}"),
                hint: "an Avro topic sink reads from a Kafka source",
            })?;
        self.store.save(&StreamState {
            positions: offsets.clone(),
            pipeline: state.bytes,
        })?;
        if self.exactly_once() {
            // The offsets move only inside a committed transaction, with or without output.
            self.begin_if_needed()?;
            let group = self.input.shared.get()?;
            let tpl = group.offsets_list(&offsets)?;
            self.producer.commit_with_offsets(group.consumer(), &tpl)?;
        } else {
            self.commit_to_group(&offsets).await?;
        }
        self.open = false;
        let report = CommitReport {
            rows: self.rows,
            quarantined: self.quarantined,
            covers: format!("{} offsets {offsets:?}", self.input.topic),
            units: 0,
            conflicts: 0,
        };
        (self.rows, self.quarantined) = (0, 0);
        Ok(report)
    }
}

/// The key bytes of each row: strings as UTF-8, numbers in decimal, nulls unkeyed.
fn key_bytes(column: &dyn Array) -> Vec<Option<Vec<u8>>> {
    let text = match column.data_type() {
        DataType::Utf8 => None,
        _ => arrow::compute::cast(column, &DataType::Utf8).ok(),
    };
    let strings = match &text {
        Some(t) => t.as_string::<i32>(),
        None if column.data_type() == &DataType::Utf8 => column.as_string::<i32>(),
        None => return vec![None; column.len()],
    };
    strings
        .iter()
        .map(|v| v.map(|s| s.as_bytes().to_vec()))
        .collect()
}
