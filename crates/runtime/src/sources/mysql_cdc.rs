//! MySQL / MariaDB binlog CDC as a source: the initial snapshot, then committed transactions,
//! each batch as Debezium-shaped records routed to `<prefix>.<db>.<table>` (see
//! [`routed_records_schema`]: the topic, the primary key as the key, the event as the value, a
//! tombstone with a null value after each delete). A batch ends where a commit may happen — the
//! end of the snapshot, the end of a transaction — and carries that [`Position::Binlog`], so the
//! driver's commit after the broker acknowledged it is the connector's state save.
//!
//! Exactly once across a crash: [`open_mysql_cdc`] reads the output topics back from the saved
//! position first ([`resume::scan`]), and the source skips the events found there (an earlier
//! run delivered them but died before it could save the position).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use strata_connectors::kafka::{KafkaConfig, KafkaSink, OutRecord};
use strata_connectors::mysql_cdc::position::Position as BinlogPosition;
use strata_connectors::mysql_cdc::resume::{self, Delivered};
use strata_connectors::mysql_cdc::sink::records_to_send;
use strata_connectors::mysql_cdc::{CdcState, MysqlCdcConfig, MysqlCdcSource, StateFile};

use crate::contract::{Polled, Source};
use crate::error::{Result, RuntimeError};
use crate::position::Position;
use crate::sinks::kafka_records::{
    KafkaRecordsSink, PositionFile, routed_columns, routed_records_schema,
};

/// How long one poll of the binlog waits for a transaction before the source reports idle.
const POLL_WAIT: Duration = Duration::from_millis(500);

/// What a CDC run delivered, readable while and after the driver runs it.
#[derive(Debug, Default)]
pub struct CdcCounts {
    /// Change events handed to the sink.
    pub events: AtomicU64,
    /// Events skipped as already in Kafka.
    pub skipped: AtomicU64,
    /// Binlog time (ms since the epoch) of the newest event read; 0 before the first. Snapshot
    /// rows carry the snapshot's time.
    pub newest_event_ms: AtomicI64,
    /// True while the reader is at the binlog's end (its last poll found nothing new).
    pub caught_up: AtomicBool,
}

impl CdcCounts {
    /// How far the reader is behind the binlog: 0 when caught up, else the age of the newest
    /// event read (`None` before the first event).
    pub fn lag_seconds(&self, now_ms: i64) -> Option<f64> {
        if self.caught_up.load(Ordering::Relaxed) {
            return Some(0.0);
        }
        let newest = self.newest_event_ms.load(Ordering::Relaxed);
        // Milliseconds to seconds; an event from the future counts as no lag.
        (newest > 0).then(|| (now_ms.saturating_sub(newest)).max(0) as f64 / 1e3)
    }
}

/// The binlog reader's batches as routed Kafka records.
pub struct MysqlCdcRecordsSource {
    cdc: MysqlCdcSource,
    prefix: String,
    delivered: Delivered,
    counts: Arc<CdcCounts>,
    schema: SchemaRef,
}

impl MysqlCdcRecordsSource {
    /// A source over an opened CDC reader; `delivered` are the events an earlier run already
    /// put in the topics (from [`resume::scan`]; [`Delivered::none`] for at-least-once).
    pub fn new(cdc: MysqlCdcSource, prefix: impl Into<String>, delivered: Delivered) -> Self {
        MysqlCdcRecordsSource {
            cdc,
            prefix: prefix.into(),
            delivered,
            counts: Arc::new(CdcCounts::default()),
            schema: routed_records_schema(),
        }
    }

    /// The run's counts (shared with the source inside the driver).
    pub fn counts(&self) -> Arc<CdcCounts> {
        self.counts.clone()
    }

    fn batch(&self, records: &[OutRecord]) -> Result<RecordBatch> {
        RecordBatch::try_new(self.schema.clone(), routed_columns(records)).map_err(|e| {
            RuntimeError::Stage {
                stage: "source",
                message: format!("a binlog batch's records: {e}"),
            }
        })
    }
}

/// The runtime position of a binlog coordinate.
pub fn position_of(p: &BinlogPosition) -> Position {
    Position::Binlog {
        file: p.file.clone(),
        pos: p.pos,
        gtid_set: p.gtid_set.clone(),
        gtid: p.gtid.clone(),
        server_id: p.server_id,
        part: p.part.clone(),
    }
}

/// The binlog coordinate a position is; another kind is a protocol error naming `source`.
pub fn binlog_of(source: &str, position: &Position) -> Result<BinlogPosition> {
    match position {
        Position::Binlog {
            file,
            pos,
            gtid_set,
            gtid,
            server_id,
            part,
        } => Ok(BinlogPosition {
            file: file.clone(),
            pos: *pos,
            gtid: gtid.clone(),
            gtid_set: gtid_set.clone(),
            server_id: *server_id,
            part: part.clone(),
        }),
        other => Err(RuntimeError::Protocol {
            table: source.to_string(),
            problem: format!("the committed position is not a binlog coordinate: {other:?}"),
            hint: "the state file belongs to another kind of source; point state_file elsewhere",
        }),
    }
}

/// `file:pos`, with the GTID state (or the transaction's GTID) when known.
pub fn describe(position: Option<&Position>) -> String {
    match position {
        Some(Position::Binlog {
            file,
            pos,
            gtid_set,
            gtid,
            part,
            ..
        }) => {
            let at = match (gtid_set, gtid) {
                (Some(set), _) => format!("{file}:{pos} (GTID {set})"),
                (None, Some(g)) => format!("{file}:{pos} (GTID {g})"),
                (None, None) => format!("{file}:{pos}"),
            };
            match part {
                Some(p) => format!(
                    "{at}, {} events into the transaction that starts there (handed out in parts)",
                    p.events
                ),
                None => at,
            }
        }
        Some(other) => format!("{other:?}"),
        None => "(none)".into(),
    }
}

#[async_trait::async_trait]
impl Source for MysqlCdcRecordsSource {
    fn name(&self) -> String {
        format!("mysql cdc of {}", self.tables())
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self) -> String {
        let start = self.cdc.start_position().map(position_of);
        let phase = match self.cdc.snapshot_method() {
            Some(method) => format!("an initial snapshot ({method:?}), then the binlog"),
            None => format!("the binlog from {}", describe(start.as_ref())),
        };
        format!("{}: {phase}", self.name())
    }

    async fn seek(&mut self, committed: Option<&Position>) -> Result<()> {
        // The reader was opened at the position its state file holds (the one the sink's
        // position file reads): only check that the committed position is a binlog one.
        if let Some(p) = committed {
            binlog_of(&self.name(), p)?;
        }
        Ok(())
    }

    async fn next(&mut self) -> Result<Polled> {
        let Some(batch) = self.cdc.next_batch(POLL_WAIT).await? else {
            return Ok(Polled::End);
        };
        let position = batch.state.as_ref().map(|s| position_of(&s.position));
        self.counts
            .caught_up
            .store(batch.events.is_empty(), Ordering::Relaxed);
        if let Some(newest) = batch.events.iter().map(|e| e.source.ts_ms).max() {
            self.counts
                .newest_event_ms
                .fetch_max(newest, Ordering::Relaxed);
        }
        if batch.events.is_empty() {
            return Ok(match position {
                Some(p) => Polled::Reached(p),
                None => Polled::Idle,
            });
        }
        let (records, skipped) = records_to_send(&batch.events, &self.prefix, &mut self.delivered);
        let events = batch.events.len() as u64;
        self.counts
            .events
            .fetch_add(events.saturating_sub(skipped), Ordering::Relaxed);
        self.counts.skipped.fetch_add(skipped, Ordering::Relaxed);
        if records.is_empty() {
            return Ok(match position {
                Some(p) => Polled::Reached(p),
                None => Polled::Idle,
            });
        }
        Ok(Polled::Batch {
            batch: self.batch(&records)?,
            position,
        })
    }
}

impl MysqlCdcRecordsSource {
    fn tables(&self) -> String {
        let tables: Vec<String> = self
            .cdc
            .tables()
            .iter()
            .map(|(db, t)| format!("{db}.{t}"))
            .collect();
        tables.join(", ")
    }
}

/// The connector's state file (`{position, snapshot_done}`, the format it always had) as a
/// position file. Every position the source hands out lies after the snapshot, so a save
/// marks the snapshot done.
#[derive(Debug, Clone)]
pub struct CdcStateFile(pub StateFile);

impl PositionFile for CdcStateFile {
    fn path(&self) -> &Path {
        self.0.path()
    }

    fn load(&self) -> Result<Option<Position>> {
        Ok(self.0.load()?.map(|s| position_of(&s.position)))
    }

    fn save(&self, position: &Position) -> Result<()> {
        let position = binlog_of(&self.0.path().display().to_string(), position)?;
        Ok(self.0.save(&CdcState {
            position,
            snapshot_done: true,
        })?)
    }
}

/// A CDC ingestion ready for the driver.
pub struct CdcIngest {
    /// The source.
    pub source: MysqlCdcRecordsSource,
    /// The Kafka sink, saving the position in the connector's state file.
    pub sink: KafkaRecordsSink,
    /// What the server check warned about (for the operator).
    pub warnings: Vec<String>,
    /// Events found already in Kafka after the saved position (skipped), with the records and
    /// partitions read back to find them: `(events, records, partitions)`.
    pub resumed: (usize, u64, usize),
    /// The state file.
    pub state_file: StateFile,
}

/// Opens a CDC ingestion: checks the server, connects the producer (user properties first, the
/// correctness settings forced) and reads the output topics back from the saved position.
/// `brokers` overrides the config's `kafka_brokers`.
pub async fn open_mysql_cdc(config: MysqlCdcConfig, brokers: Option<String>) -> Result<CdcIngest> {
    let brokers = brokers
        .or_else(|| config.kafka_brokers.clone())
        .ok_or_else(|| {
            RuntimeError::config(
                "kafka_brokers",
                "no Kafka brokers",
                "set `kafka_brokers` in the config or pass --brokers",
            )
        })?;
    let prefix = config.topic_prefix.clone();
    let state_file = StateFile::new(config.state_file.clone());
    let kafka = KafkaConfig::from_profile(&brokers, config.kafka_properties.clone())?;
    let cdc = MysqlCdcSource::open(config).await?;
    let warnings = cdc.server_info().warnings.clone();
    let producer = KafkaSink::open(&kafka, None)?;
    let delivered = resume::scan(&kafka, &cdc, &prefix).await?;
    let resumed = (
        delivered.len(),
        delivered.records_read,
        delivered.partitions,
    );
    let sink = KafkaRecordsSink::new(
        producer,
        format!("{prefix}.<db>.<table>"),
        Vec::new(),
        CdcStateFile(state_file.clone()),
    );
    Ok(CdcIngest {
        source: MysqlCdcRecordsSource::new(cdc, prefix, delivered),
        sink,
        warnings,
        resumed,
        state_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_keeps_the_connector_format_and_round_trips_as_a_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cdc.json");
        // A state file as the connector always wrote it (before it ran on the driver).
        std::fs::write(
            &path,
            r#"{"position":{"file":"mysql-bin.000002","pos":4521,"gtid":"0-1-42","gtid_set":"0-1-42,1-2-7","server_id":1},"snapshot_done":true}"#,
        )
        .expect("write");
        let file = CdcStateFile(StateFile::new(&path));
        let position = file.load().expect("load").expect("saved");
        assert_eq!(
            describe(Some(&position)),
            "mysql-bin.000002:4521 (GTID 0-1-42,1-2-7)"
        );
        file.save(&position).expect("save");
        let again = StateFile::new(&path).load().expect("load").expect("saved");
        assert_eq!(again.position, binlog_of("t", &position).expect("binlog"));
        assert_eq!(again.position.server_id, Some(1));
        assert_eq!(again.position.gtid.as_deref(), Some("0-1-42"));
        assert!(again.snapshot_done);
        let err = file
            .save(&Position::files(["a".to_string()]))
            .expect_err("not a binlog position");
        assert!(err.to_string().contains("cdc.json"), "{err}");
    }
}
