//! Raw records to a Kafka topic (an ingestion: an API's pages, webhook events), with the
//! source's position saved in a file once the broker has acknowledged them.
//!
//! Rows carry `key` and `value` (binary, nullable) and become one record each, with the sink's
//! fixed headers; a row's `topic` (text, when the batch has that column: CDC routes each table
//! to its own topic) overrides the sink's topic, and a null `value` is a tombstone. [`Sink::write`] waits for every acknowledgement (idempotent producer,
//! `acks=all`), so when the driver commits, the position it saves covers only acknowledged
//! records: a crash repeats at most what was acknowledged after the last save, never loses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use strata_connectors::kafka::{KafkaSink, OutRecord};

use crate::contract::{CommitReport, Committed, Committer, Sink, StateUpdate};
use crate::error::{Result, RuntimeError};
use crate::position::Position;

/// Where a records sink keeps the position it has committed (a state file in the source's own
/// format, so existing state files stay valid).
pub trait PositionFile: Send + 'static {
    /// The file, for logs.
    fn path(&self) -> &std::path::Path;
    /// The saved position, if any.
    fn load(&self) -> Result<Option<Position>>;
    /// Saves `position` durably (atomic replace, fsynced).
    fn save(&self, position: &Position) -> Result<()>;
}

/// The schema a [`KafkaRecordsSink`] takes: `key` and `value`, binary and nullable.
pub fn records_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
    ]))
}

/// [`records_schema`] with a `topic` per record first (text, not null).
pub fn routed_records_schema() -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new("topic", DataType::Utf8, false))];
    fields.extend(records_schema().fields().iter().cloned());
    Arc::new(Schema::new(fields))
}

/// The columns of [`routed_records_schema`] for `records` (the inverse of what the sink reads).
pub fn routed_columns(records: &[OutRecord]) -> Vec<ArrayRef> {
    let topics: StringArray = records.iter().map(|r| Some(r.topic.as_str())).collect();
    let keys: BinaryArray = records.iter().map(|r| r.key.as_deref()).collect();
    let values: BinaryArray = records.iter().map(|r| r.value.as_deref()).collect();
    vec![Arc::new(topics), Arc::new(keys), Arc::new(values)]
}

/// Produces rows as Kafka records and commits the position to a [`PositionFile`].
pub struct KafkaRecordsSink {
    producer: KafkaSink,
    topic: String,
    headers: Vec<(String, Vec<u8>)>,
    positions: Box<dyn PositionFile>,
    produced: Arc<AtomicU64>,
    since_commit: u64,
}

impl KafkaRecordsSink {
    /// A sink producing to `topic` with `headers` on every record.
    pub fn new(
        producer: KafkaSink,
        topic: impl Into<String>,
        headers: Vec<(String, Vec<u8>)>,
        positions: impl PositionFile,
    ) -> Self {
        KafkaRecordsSink {
            producer,
            topic: topic.into(),
            headers,
            positions: Box::new(positions),
            produced: Arc::new(AtomicU64::new(0)),
            since_commit: 0,
        }
    }

    /// Records acknowledged by the broker so far (shared: readable after the driver took the
    /// sink).
    pub fn produced(&self) -> Arc<AtomicU64> {
        self.produced.clone()
    }

    fn records(&self, rows: &RecordBatch) -> Result<Vec<OutRecord>> {
        records_of(rows, &self.topic, &self.headers)
    }
}

/// Record headers as one text value: a JSON list of `[name, value]` pairs, in order (values
/// are text: every header Strata writes is).
pub fn encode_headers(headers: &[(String, Vec<u8>)]) -> String {
    let pairs: Vec<(&str, std::borrow::Cow<'_, str>)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v)))
        .collect();
    // Pairs of strings always serialise.
    serde_json::to_string(&pairs).unwrap_or_default()
}

fn decode_headers(text: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let pairs: Vec<(String, String)> =
        serde_json::from_str(text).map_err(|e| RuntimeError::Stage {
            stage: "sink",
            message: format!("a record's `headers` are not a JSON list of pairs: {e}"),
        })?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect())
}

/// The Kafka records of a batch: `key` and `value` (binary), an optional `topic` per row
/// (else `topic`), and `headers` on every record followed by the row's own `headers` column
/// (text, [`encode_headers`]) when the batch has one.
pub(crate) fn records_of(
    rows: &RecordBatch,
    topic: &str,
    headers: &[(String, Vec<u8>)],
) -> Result<Vec<OutRecord>> {
    let column = |name: &str| {
        rows.column_by_name(name)
            .and_then(|c| c.as_binary_opt::<i32>())
            .ok_or_else(|| RuntimeError::Stage {
                stage: "sink",
                message: format!("a records batch without a binary `{name}` column"),
            })
    };
    let (keys, values) = (column("key")?, column("value")?);
    let text = |name: &str| {
        rows.column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())
    };
    let (topics, own_headers) = (text("topic"), text("headers"));
    (0..rows.num_rows())
        .map(|i| {
            let mut all = headers.to_vec();
            if let Some(h) = own_headers
                && h.is_valid(i)
            {
                all.extend(decode_headers(h.value(i))?);
            }
            Ok(OutRecord {
                topic: match topics {
                    Some(t) if t.is_valid(i) => t.value(i).to_string(),
                    _ => topic.to_string(),
                },
                key: keys.is_valid(i).then(|| keys.value(i).to_vec()),
                value: values.is_valid(i).then(|| values.value(i).to_vec()),
                headers: all,
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl Sink for KafkaRecordsSink {
    async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        let records = self.records(rows)?;
        let sent = self.producer.send_all(&records).await? as u64;
        self.produced.fetch_add(sent, Ordering::Relaxed);
        self.since_commit = self.since_commit.saturating_add(sent);
        Ok(())
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        Err(RuntimeError::Stage {
            stage: "sink",
            message: format!(
                "{} quarantined rows reached a raw records sink, which has no quarantine",
                rows.num_rows()
            ),
        })
    }

    async fn close(&mut self) -> Result<()> {
        Ok(self.producer.flush()?)
    }
}

#[async_trait::async_trait]
impl Committer for KafkaRecordsSink {
    async fn committed(&mut self) -> Result<Committed> {
        Ok(Committed {
            position: self.positions.load()?,
            state: None,
            state_deltas: Vec::new(),
        })
    }

    async fn commit(&mut self, position: &Position, _state: StateUpdate) -> Result<CommitReport> {
        // Every record written so far is acknowledged (write waits): the position may move.
        self.positions.save(position)?;
        let rows = std::mem::take(&mut self.since_commit);
        Ok(CommitReport {
            rows,
            quarantined: 0,
            covers: format!("{} up to {}", self.topic, self.positions.path().display()),
            units: 0,
            conflicts: 0,
        })
    }
}
