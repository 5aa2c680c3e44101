//! Exactly-once into Kafka across a crash: events already in Kafka are not sent again.
//!
//! Why it exists: the state file is saved only after the broker acknowledged a whole batch
//! ([`super::sink`]). A crash (SIGKILL, power loss, OOM) between the acknowledgement and the save
//! leaves events in Kafka that the restarted connector reads again from the older saved position;
//! sent blindly they would be duplicates. Kafka itself is the truth for what was delivered, so at
//! start-up the Kafka driver reads it back ([`scan`]) and skips what is already there.
//!
//! How: for every existing output topic `<prefix>.<db>.<table>` of the configured tables and each
//! of its partitions, the tail is read in growing windows until the window starts with a change
//! event older than the position the source will start from
//! ([`MysqlCdcSource::start_position`]). Every event at or after it is remembered by
//! (topic, binlog file, pos, row) — unique per row change — and [`Delivered::take`] removes it
//! when the source hands it out again. A set rather than one greatest position: a batch goes to
//! several partitions concurrently, so after a crash one partition may hold a later event while
//! another lacks an earlier one; each partition only holds a prefix of what was sent to it.
//! A delete whose tombstone did not make it is marked, and only the tombstone is sent again.
//!
//! Invariants: within a partition the connector's events are in binlog order (file by numeric
//! suffix, then pos, then row), so the first event older than the start position ends the scan.
//! The broker's reported end (ListOffsets) only says where to start looking: reading goes on
//! until the fetch reports the end of the partition (tansu's ListOffsets end lags behind).
//! That end (`PartitionEOF`, which librdkafka also hands to the client's error callback) is
//! how each read ends, so the read-back consumer logs it at DEBUG, not as an error.
//!
//! How it fails: an unreachable broker or a partition that never reports its end within
//! [`READ_TIMEOUT`] → retryable [`ConnectorError::Kafka`]; a record in an output topic that is
//! not a change event → [`ConnectorError::Kafka`] naming topic, partition and offset.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value as Json;

use super::MysqlCdcSource;
use super::debezium::ChangeEvent;
use super::position::Position;
use crate::error::{ConnectorError, Result};
use crate::kafka::{KafkaConfig, is_transient};

/// Longest wait for the next record or the end of a partition while reading back.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Records read from the reported end backwards in the first window (×4 per further window).
const FIRST_WINDOW: i64 = 256;

/// The largest window read back (records of one partition held in memory at once). A state
/// file further behind its topic than this is refused rather than read into memory whole.
pub const MAX_WINDOW: i64 = 1 << 20;

/// The window after `back`, or `None` once [`MAX_WINDOW`] has been read without reaching an
/// event older than the saved position.
fn next_window(back: i64) -> Option<i64> {
    (back < MAX_WINDOW).then(|| back.saturating_mul(4).min(MAX_WINDOW))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventId {
    topic: String,
    file: String,
    pos: u64,
    row: u32,
}

/// What an earlier run already delivered at or after the source's start position.
#[derive(Debug, Default)]
pub struct Delivered {
    events: HashMap<EventId, bool>,
    /// Output partitions read back.
    pub partitions: usize,
    /// Records read back (events and tombstones, including windows read twice).
    pub records_read: u64,
}

/// An event found in Kafka by [`Delivered::take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyDelivered {
    /// A delete whose tombstone is not in Kafka: send the tombstone only.
    pub tombstone_missing: bool,
}

impl Delivered {
    /// Nothing delivered (no resume check: at-least-once across crashes).
    pub fn none() -> Self {
        Delivered::default()
    }

    /// Events found in Kafka and not yet taken.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when no found event is left to skip.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Records that the event at `file`/`pos`/`row` is in `topic`.
    pub(crate) fn remember(
        &mut self,
        topic: &str,
        file: &str,
        pos: u64,
        row: u32,
        tombstone_missing: bool,
    ) {
        let id = EventId {
            topic: topic.to_string(),
            file: file.to_string(),
            pos,
            row,
        };
        self.events.insert(id, tombstone_missing);
    }

    /// `Some` (once) when `event`, going to `topic`, is already in Kafka.
    pub fn take(&mut self, topic: &str, event: &ChangeEvent) -> Option<AlreadyDelivered> {
        if self.events.is_empty() {
            return None;
        }
        let id = EventId {
            topic: topic.to_string(),
            file: event.source.file.clone(),
            pos: event.source.pos,
            row: event.source.row,
        };
        self.events
            .remove(&id)
            .map(|tombstone_missing| AlreadyDelivered { tombstone_missing })
    }
}

/// Orders binlog coordinates: the file by its numeric suffix (`binlog.000010` after
/// `binlog.000009`, whatever the padding), then the offset.
pub fn compare(a_file: &str, a_pos: u64, b_file: &str, b_pos: u64) -> Ordering {
    let num = |f: &str| f.rsplit_once('.').and_then(|(_, n)| n.parse::<u64>().ok());
    let files = match (num(a_file), num(b_file)) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => a_file.cmp(b_file),
    };
    files.then(a_pos.cmp(&b_pos))
}

/// True for the end of a partition, however librdkafka reports it (a fetch result, or a
/// global error event with the `PartitionEOF` code).
fn is_partition_eof(e: &KafkaError) -> bool {
    matches!(e, KafkaError::PartitionEOF(_))
        || e.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
}

/// The read-back consumer's context: the end of a partition is expected (it ends every read,
/// and an empty topic ends at once), so it is not logged as an error; anything else is logged
/// as librdkafka's default context does.
struct ReadBackContext;

impl ClientContext for ReadBackContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if is_partition_eof(&error) {
            tracing::debug!("reading back: end of partition ({reason})");
        } else {
            DefaultClientContext.error(error, reason);
        }
    }
}

impl ConsumerContext for ReadBackContext {}

/// One record read back.
struct Rec {
    offset: i64,
    key: Option<Vec<u8>>,
    /// (file, pos, row, op) of a change event; `None` for a tombstone.
    event: Option<(String, u64, u32, String)>,
}

/// Reads back the output topics of `source` and returns the events that are already there at
/// or after its start position. Topics that do not exist yet are skipped.
pub async fn scan(kafka: &KafkaConfig, source: &MysqlCdcSource, prefix: &str) -> Result<Delivered> {
    let Some(floor) = source.start_position().cloned() else {
        return Ok(Delivered::none());
    };
    let wanted: HashSet<String> = source
        .tables()
        .iter()
        .map(|(db, table)| format!("{prefix}.{db}.{table}"))
        .collect();
    let mut client = kafka.client_config_for(
        crate::kafka::Role::Consumer,
        &[("auto.offset.reset", "earliest")],
    );
    client
        .set("group.id", "strata-cdc-resume")
        .set("enable.partition.eof", "true");
    let consumer: StreamConsumer<ReadBackContext> = client
        .create_with_context(ReadBackContext)
        .map_err(|e| kafka.kafka_error("", e))?;
    let metadata = consumer
        .fetch_metadata(None, kafka.metadata_timeout)
        .map_err(|e| kafka.kafka_error("", e))?;
    let mut targets: Vec<(String, i32)> = Vec::new();
    for t in metadata.topics() {
        if wanted.contains(t.name()) {
            targets.extend(
                t.partitions()
                    .iter()
                    .map(|p| (t.name().to_string(), p.id())),
            );
        }
    }
    targets.sort();
    let mut delivered = Delivered::none();
    for (topic, partition) in targets {
        delivered.partitions += 1;
        let (low, reported_end) = consumer
            .fetch_watermarks(&topic, partition, kafka.metadata_timeout)
            .map_err(|e| kafka.kafka_error(&topic, e))?;
        let mut back = FIRST_WINDOW;
        loop {
            let start = reported_end.saturating_sub(back).max(low);
            let recs = read_to_end(&consumer, kafka, &topic, partition, start).await?;
            delivered.records_read += recs.len() as u64;
            let first_event = recs.iter().find_map(|r| r.event.as_ref());
            let reached_older = first_event.is_some_and(|(f, p, r, _)| floor.covers(f, *p, *r));
            if reached_older || start <= low {
                collect(&mut delivered, &topic, &recs, &floor);
                break;
            }
            back = next_window(back).ok_or_else(|| ConnectorError::Kafka {
                brokers: kafka.brokers.clone(),
                topic: topic.clone(),
                message: format!(
                    "partition {partition} holds more than {MAX_WINDOW} records after the saved \
                     position {}:{}, so reading them back to skip what was delivered would not \
                     fit in memory",
                    floor.file, floor.pos
                ),
                hint: "the state file is far behind its topic (restored from an old backup?): \
                       restore a newer state file, or start from a new topic_prefix",
            })?;
        }
    }
    Ok(delivered)
}

/// Remembers the events of `recs` that `floor` does not cover (at or after its boundary, or
/// after the last event of its part).
fn collect(delivered: &mut Delivered, topic: &str, recs: &[Rec], floor: &Position) {
    for (i, r) in recs.iter().enumerate() {
        let Some((file, pos, row, op)) = &r.event else {
            continue;
        };
        if floor.covers(file, *pos, *row) {
            continue;
        }
        let tombstone_missing = op == "d"
            && !recs
                .get(i + 1)
                .is_some_and(|n| n.event.is_none() && n.key == r.key);
        delivered.remember(topic, file, *pos, *row, tombstone_missing);
    }
}

/// Every record of one partition from `start` to the end reported by the fetch.
async fn read_to_end(
    consumer: &StreamConsumer<ReadBackContext>,
    kafka: &KafkaConfig,
    topic: &str,
    partition: i32,
    start: i64,
) -> Result<Vec<Rec>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(start))
        .map_err(|e| kafka.kafka_error(topic, e))?;
    consumer
        .assign(&tpl)
        .map_err(|e| kafka.kafka_error(topic, e))?;
    let mut out = Vec::new();
    loop {
        let message = match tokio::time::timeout(READ_TIMEOUT, consumer.recv()).await {
            Err(_) => {
                return Err(ConnectorError::Kafka {
                    brokers: kafka.brokers.clone(),
                    topic: topic.to_string(),
                    message: format!(
                        "reading back partition {partition} from offset {start} to check what \
                         was already delivered: no record and no end of partition within {}s",
                        READ_TIMEOUT.as_secs()
                    ),
                    hint: "is the broker reachable at the configured address?",
                });
            }
            Ok(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
            Ok(Err(e)) if is_partition_eof(&e) => continue,
            Ok(Err(e)) if is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Ok(Err(e)) => return Err(kafka.kafka_error(topic, e)),
            Ok(Ok(m)) => m,
        };
        if message.topic() != topic || message.partition() != partition || message.offset() < start
        {
            continue;
        }
        let event = match message.payload() {
            None => None,
            Some(v) => Some(parse(v).ok_or_else(|| ConnectorError::Kafka {
                brokers: kafka.brokers.clone(),
                topic: topic.to_string(),
                message: format!(
                    "the record at partition {partition}, offset {} is not a CDC change event \
                     (no source.file / pos / row), so what was already delivered cannot be told",
                    message.offset()
                ),
                hint: "an output topic must hold only this connector's events: give the \
                       connector a topic_prefix of its own",
            })?),
        };
        out.push(Rec {
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            event,
        });
    }
    out.sort_by_key(|r| r.offset);
    Ok(out)
}

/// (file, pos, row, op) of a change event's JSON.
fn parse(value: &[u8]) -> Option<(String, u64, u32, String)> {
    let v: Json = serde_json::from_slice(value).ok()?;
    let s = v.get("source")?;
    Some((
        s.get("file")?.as_str()?.to_string(),
        s.get("pos")?.as_u64()?,
        u32::try_from(s.get("row")?.as_u64()?).ok()?,
        v.get("op")?.as_str()?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_files_compare_by_numeric_suffix() {
        assert!(compare("binlog.000009", 900, "binlog.000010", 4).is_lt());
        assert!(compare("binlog.10", 4, "binlog.000009", 900).is_gt());
        assert!(compare("binlog.000010", 5, "binlog.000010", 5).is_eq());
        assert!(compare("binlog.000010", 4, "binlog.000010", 5).is_lt());
    }

    fn rec(offset: i64, key: &str, event: Option<(&str, u64, u32, &str)>) -> Rec {
        Rec {
            offset,
            key: Some(key.as_bytes().to_vec()),
            event: event.map(|(f, p, r, o)| (f.to_string(), p, r, o.to_string())),
        }
    }

    #[test]
    fn collects_events_from_the_floor_and_marks_missing_tombstones() {
        let floor = Position::at("binlog.000002", 1000);
        let recs = vec![
            rec(0, "a", Some(("binlog.000001", 5000, 0, "c"))),
            rec(1, "a", Some(("binlog.000002", 900, 0, "u"))),
            rec(2, "b", Some(("binlog.000002", 1100, 0, "d"))),
            rec(3, "b", None),
            rec(4, "c", Some(("binlog.000002", 1200, 1, "u"))),
            rec(5, "d", Some(("binlog.000002", 1300, 0, "d"))),
        ];
        let mut d = Delivered::none();
        collect(&mut d, "t", &recs, &floor);
        assert_eq!(d.len(), 3);
        let ids: HashMap<(u64, u32), bool> = d
            .events
            .iter()
            .map(|(id, missing)| ((id.pos, id.row), *missing))
            .collect();
        assert_eq!(ids.get(&(1100, 0)), Some(&false), "its tombstone follows");
        assert_eq!(ids.get(&(1200, 1)), Some(&false));
        assert_eq!(
            ids.get(&(1300, 0)),
            Some(&true),
            "the crash came before its tombstone"
        );
        assert!(
            !ids.contains_key(&(900, 0)),
            "older than the start position"
        );
    }

    #[test]
    fn inside_a_transaction_handed_out_in_part_only_later_events_are_collected() {
        let floor = Position {
            part: Some(crate::mysql_cdc::TxnPart {
                events: 2,
                file: "binlog.000002".into(),
                pos: 1100,
                row: 1,
            }),
            ..Position::at("binlog.000002", 1000)
        };
        let recs = vec![
            rec(0, "a", Some(("binlog.000002", 1100, 0, "c"))),
            rec(1, "b", Some(("binlog.000002", 1100, 1, "c"))),
            rec(2, "c", Some(("binlog.000002", 1100, 2, "c"))),
            rec(3, "d", Some(("binlog.000002", 1400, 0, "c"))),
        ];
        let mut d = Delivered::none();
        collect(&mut d, "t", &recs, &floor);
        let mut ids: Vec<(u64, u32)> = d.events.keys().map(|id| (id.pos, id.row)).collect();
        ids.sort();
        assert_eq!(ids, vec![(1100, 2), (1400, 0)]);
    }

    #[test]
    fn the_end_of_a_partition_is_not_an_error() {
        assert!(is_partition_eof(&KafkaError::PartitionEOF(3)));
        // What librdkafka's error callback receives for an empty partition.
        assert!(is_partition_eof(&KafkaError::Global(
            RDKafkaErrorCode::PartitionEOF
        )));
        assert!(!is_partition_eof(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_partition_eof(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::UnknownTopicOrPartition
        )));
    }

    #[test]
    fn parses_only_change_events() {
        let v = br#"{"op":"u","source":{"file":"binlog.000003","pos":48211,"row":2}}"#;
        assert_eq!(
            parse(v),
            Some(("binlog.000003".into(), 48211, 2, "u".into()))
        );
        assert_eq!(parse(b"{\"hello\":1}"), None);
        assert_eq!(parse(b"not json"), None);
    }
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn read_back_windows_grow_to_a_cap_and_stop() {
        let mut windows = vec![FIRST_WINDOW];
        while let Some(next) = next_window(*windows.last().expect("one")) {
            windows.push(next);
        }
        assert_eq!(windows.first(), Some(&256));
        assert_eq!(windows.last(), Some(&MAX_WINDOW));
        assert!(windows.len() < 10, "{windows:?}");
    }
}
