//! The Kafka driver: change events as JSON to `<prefix>.<db>.<table>`, keyed by the primary
//! key, a tombstone after each delete (so log compaction can drop the key); the position is
//! saved only after [`KafkaSink::send_all`] returned, i.e. after the broker acknowledged every
//! record of the batch. [`run_to_kafka_resumed`] with what [`super::resume::scan`] found in Kafka
//! skips the events an earlier run delivered but could not record (exactly-once across a crash);
//! [`run_to_kafka`] alone is at-least-once across a crash. [`run_to_kafka_until`] also stops
//! between batches when a shutdown future (SIGTERM) resolves. A run logs its progress every
//! [`PROGRESS_EVERY`] and, however it stops, one line with what it delivered and the position
//! saved.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::MysqlCdcSource;
use super::debezium::{ChangeEvent, Op};
use super::position::Position;
use super::resume::Delivered;
use crate::error::Result;
use crate::kafka::{KafkaSink, OutRecord};

/// The topic of an event.
pub fn topic_of(e: &ChangeEvent, prefix: &str) -> String {
    format!("{prefix}.{}.{}", e.source.db, e.source.table)
}

fn tombstone(topic: String, key: Option<Vec<u8>>) -> OutRecord {
    OutRecord {
        topic,
        key,
        value: None,
        headers: Vec::new(),
    }
}

/// The records of some events.
pub fn to_records(events: &[ChangeEvent], prefix: &str) -> Vec<OutRecord> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        push_records(e, topic_of(e, prefix), &mut out);
    }
    out
}

fn push_records(e: &ChangeEvent, topic: String, out: &mut Vec<OutRecord>) {
    let key = e.key().map(|k| k.to_string().into_bytes());
    out.push(OutRecord {
        topic: topic.clone(),
        key: key.clone(),
        value: Some(e.to_json().to_string().into_bytes()),
        headers: Vec::new(),
    });
    if e.op == Op::Delete {
        out.push(tombstone(topic, key));
    }
}

/// The records of the events not yet in Kafka (a missing tombstone is sent alone), and how
/// many events were skipped.
pub fn records_to_send(
    events: &[ChangeEvent],
    prefix: &str,
    delivered: &mut Delivered,
) -> (Vec<OutRecord>, u64) {
    let mut out = Vec::with_capacity(events.len());
    let mut skipped = 0;
    for e in events {
        let topic = topic_of(e, prefix);
        match delivered.take(&topic, e) {
            None => push_records(e, topic, &mut out),
            Some(found) => {
                skipped += 1;
                if found.tombstone_missing {
                    out.push(tombstone(
                        topic,
                        e.key().map(|k| k.to_string().into_bytes()),
                    ));
                }
            }
        }
    }
    (out, skipped)
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Change events delivered.
    pub events: u64,
    /// Kafka records (events + tombstones).
    pub records: u64,
    /// State saves.
    pub commits: u64,
    /// Events skipped because an earlier run had already delivered them (crash between the
    /// acknowledgement and the state save).
    pub skipped: u64,
    /// The position saved last by this run (`None`: nothing saved; the state file is as it
    /// was).
    pub position: Option<Position>,
}

/// How often a run logs its rate and position.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The source has nothing more to read (`initial_only`).
    Finished,
    /// No event for `stop_when_idle`.
    Idle,
    /// The shutdown future resolved (SIGTERM / Ctrl-C).
    Shutdown,
}

impl StopReason {
    fn label(self) -> &'static str {
        match self {
            StopReason::Finished => "finished",
            StopReason::Idle => "idle",
            StopReason::Shutdown => "shutdown",
        }
    }
}

/// `file:pos`, with the GTID state (or the transaction's GTID) when known.
pub fn describe(p: &Position) -> String {
    match (&p.gtid_set, &p.gtid) {
        (Some(set), _) => format!("{}:{} (GTID {set})", p.file, p.pos),
        (None, Some(gtid)) => format!("{}:{} (GTID {gtid})", p.file, p.pos),
        (None, None) => format!("{}:{}", p.file, p.pos),
    }
}

/// A timer check of the loop: `Some(events/s since the last line)` once per `every`.
#[derive(Debug)]
struct Progress {
    every: Duration,
    last: Instant,
    events_at_last: u64,
}

impl Progress {
    fn new(every: Duration, now: Instant) -> Self {
        Progress {
            every,
            last: now,
            events_at_last: 0,
        }
    }

    fn due(&mut self, now: Instant, events: u64) -> Option<f64> {
        let elapsed = now.saturating_duration_since(self.last);
        if elapsed < self.every {
            return None;
        }
        let rate = events.saturating_sub(self.events_at_last) as f64 / elapsed.as_secs_f64();
        self.last = now;
        self.events_at_last = events;
        Some(rate)
    }
}

/// Where the run is: the position saved last, else where the source started.
fn position_text(source: &MysqlCdcSource, stats: &RunStats) -> String {
    match stats.position.as_ref().or(source.start_position()) {
        Some(p) => describe(p),
        None => "(none)".into(),
    }
}

/// Runs the source into Kafka until it finishes, or — with `stop_when_idle` — until no event
/// arrived for that long. Without a resume check: a crash between an acknowledgement and the
/// state save re-sends those events on restart (see [`run_to_kafka_resumed`]).
pub async fn run_to_kafka(
    source: &mut MysqlCdcSource,
    sink: &KafkaSink,
    prefix: &str,
    stop_when_idle: Option<Duration>,
) -> Result<RunStats> {
    run_to_kafka_resumed(source, sink, prefix, stop_when_idle, Delivered::none()).await
}

/// [`run_to_kafka`], skipping the events `delivered` holds (from [`super::resume::scan`] of the
/// same source, before its first batch): exactly-once across a crash.
pub async fn run_to_kafka_resumed(
    source: &mut MysqlCdcSource,
    sink: &KafkaSink,
    prefix: &str,
    stop_when_idle: Option<Duration>,
    delivered: Delivered,
) -> Result<RunStats> {
    let forever = std::future::pending::<()>();
    run_to_kafka_until(source, sink, prefix, stop_when_idle, delivered, forever).await
}

/// [`run_to_kafka_resumed`] that also stops when `shutdown` resolves — checked between
/// batches, after the last one was acknowledged and its position saved, so nothing delivered
/// is left unrecorded. Every stop (finished, idle, shutdown, error) logs one INFO line with the
/// counts, the events skipped as already in Kafka, the position saved and the state file.
pub async fn run_to_kafka_until(
    source: &mut MysqlCdcSource,
    sink: &KafkaSink,
    prefix: &str,
    stop_when_idle: Option<Duration>,
    delivered: Delivered,
    shutdown: impl Future<Output = ()>,
) -> Result<RunStats> {
    let found = delivered.len();
    let mut stats = RunStats::default();
    let result = drive(
        source,
        sink,
        prefix,
        stop_when_idle,
        delivered,
        shutdown,
        &mut stats,
    )
    .await;
    let stopped = match &result {
        Ok(reason) => reason.label(),
        Err(_) => "error",
    };
    tracing::info!(
        stopped,
        events = stats.events,
        records = stats.records,
        commits = stats.commits,
        position = %position_text(source, &stats),
        state_file = %source.state_file().path().display(),
        "cdc stopped: {} events delivered; resume: {} of the {found} events found already in \
         Kafka were skipped; {}",
        stats.events,
        stats.skipped,
        if stats.position.is_some() {
            "the position is saved in the state file"
        } else {
            "no new position saved (the state file is unchanged)"
        },
    );
    result.map(|_| stats)
}

async fn drive(
    source: &mut MysqlCdcSource,
    sink: &KafkaSink,
    prefix: &str,
    stop_when_idle: Option<Duration>,
    mut delivered: Delivered,
    shutdown: impl Future<Output = ()>,
    stats: &mut RunStats,
) -> Result<StopReason> {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_event = Instant::now();
    let mut progress = Progress::new(PROGRESS_EVERY, Instant::now());
    let wait = Duration::from_millis(500);
    while let Some(batch) = source.next_batch(wait).await? {
        if !batch.events.is_empty() {
            let (records, skipped) = if delivered.is_empty() {
                (to_records(&batch.events, prefix), 0)
            } else {
                records_to_send(&batch.events, prefix, &mut delivered)
            };
            if !records.is_empty() {
                sink.send_all(&records).await?;
            }
            stats.events += batch.events.len() as u64 - skipped;
            stats.skipped += skipped;
            stats.records += records.len() as u64;
            last_event = Instant::now();
        }
        if let Some(state) = batch.state {
            source.commit(&state)?;
            stats.commits += 1;
            stats.position = Some(state.position);
        }
        if let Some(rate) = progress.due(Instant::now(), stats.events) {
            tracing::info!(
                events = stats.events,
                events_per_sec = rate.round() as u64,
                position = %position_text(source, stats),
                "cdc streaming"
            );
        }
        if shutdown.as_mut().now_or_never().is_some() {
            return Ok(StopReason::Shutdown);
        }
        if let Some(idle) = stop_when_idle
            && batch.events.is_empty()
            && last_event.elapsed() >= idle
        {
            return Ok(StopReason::Idle);
        }
    }
    Ok(StopReason::Finished)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Map, json};

    use super::*;
    use crate::mysql_cdc::debezium::Source;

    fn event(op: Op, pos: u64) -> ChangeEvent {
        let mut row = Map::new();
        row.insert("id".into(), json!(7));
        row.insert("v".into(), json!("x"));
        ChangeEvent {
            op,
            before: (op == Op::Delete).then(|| row.clone()),
            after: (op != Op::Delete).then(|| row.clone()),
            source: Source {
                name: "s".into(),
                ts_ms: 0,
                snapshot: "false",
                db: "shop".into(),
                table: "orders".into(),
                server_id: 1,
                gtid: None,
                file: "binlog.000001".into(),
                pos,
                row: 0,
            },
            key_columns: Arc::new(vec!["id".into()]),
            ts_ms: 0,
        }
    }

    #[test]
    fn progress_is_due_once_per_interval_with_the_rate_since_the_last_line() {
        let t0 = Instant::now();
        let mut p = Progress::new(Duration::from_secs(5), t0);
        assert_eq!(p.due(t0 + Duration::from_secs(4), 400), None);
        assert_eq!(p.due(t0 + Duration::from_secs(5), 500), Some(100.0));
        assert_eq!(
            p.due(t0 + Duration::from_secs(6), 900),
            None,
            "not again yet"
        );
        assert_eq!(p.due(t0 + Duration::from_secs(10), 1500), Some(200.0));
    }

    #[test]
    fn positions_show_file_pos_and_the_gtid_state() {
        let mut p = Position::at("binlog.000003", 4521);
        assert_eq!(describe(&p), "binlog.000003:4521");
        p.gtid = Some("0-1-42".into());
        assert_eq!(describe(&p), "binlog.000003:4521 (GTID 0-1-42)");
        p.gtid_set = Some("0-1-42,1-2-7".into());
        assert_eq!(describe(&p), "binlog.000003:4521 (GTID 0-1-42,1-2-7)");
    }

    #[test]
    fn deletes_are_followed_by_a_tombstone_with_the_same_key() {
        let e = |op: Op| event(op, 4);
        let records = to_records(&[e(Op::Create), e(Op::Delete)], "cdc");
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r.topic == "cdc.shop.orders"));
        assert!(
            records
                .iter()
                .all(|r| r.key.as_deref() == Some(&b"{\"id\":7}"[..]))
        );
        assert!(records[1].value.is_some() && records[2].value.is_none());
    }

    #[test]
    fn events_already_in_kafka_are_skipped_and_a_missing_tombstone_is_sent_alone() {
        let events = [
            event(Op::Create, 100),
            event(Op::Delete, 200),
            event(Op::Create, 300),
        ];
        let mut delivered = Delivered::none();
        delivered.remember("cdc.shop.orders", "binlog.000001", 100, 0, false);
        delivered.remember("cdc.shop.orders", "binlog.000001", 200, 0, true);
        delivered.remember("other.shop.orders", "binlog.000001", 300, 0, false);
        let (records, skipped) = records_to_send(&events, "cdc", &mut delivered);
        assert_eq!(skipped, 2);
        assert_eq!(records.len(), 2, "{records:?}");
        assert!(records[0].value.is_none(), "the delete's tombstone alone");
        let sent: serde_json::Value =
            serde_json::from_slice(records[1].value.as_deref().unwrap()).unwrap();
        assert_eq!(
            sent["source"]["pos"],
            json!(300),
            "another topic's event does not count"
        );
        assert_eq!(delivered.len(), 1);
        assert!(
            records_to_send(&events, "cdc", &mut delivered).1 == 0,
            "skipped once only"
        );
    }
}
