//! The Kafka driver: change events as JSON to `<prefix>.<db>.<table>`, keyed by the primary
//! key, a tombstone after each delete (so log compaction can drop the key); the position is
//! saved only after [`KafkaSink::send_all`] returned, i.e. after the broker acknowledged every
//! record of the batch.

use std::time::{Duration, Instant};

use super::MysqlCdcSource;
use super::debezium::{ChangeEvent, Op};
use crate::error::Result;
use crate::kafka::{KafkaSink, OutRecord};

/// The records of some events.
pub fn to_records(events: &[ChangeEvent], prefix: &str) -> Vec<OutRecord> {
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let topic = format!("{prefix}.{}.{}", e.source.db, e.source.table);
        let key = e.key().map(|k| k.to_string().into_bytes());
        out.push(OutRecord {
            topic: topic.clone(),
            key: key.clone(),
            value: Some(e.to_json().to_string().into_bytes()),
            headers: Vec::new(),
        });
        if e.op == Op::Delete {
            out.push(OutRecord {
                topic,
                key,
                value: None,
                headers: Vec::new(),
            });
        }
    }
    out
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
}

/// Runs the source into Kafka until it finishes, or — with `stop_when_idle` — until no event
/// arrived for that long.
pub async fn run_to_kafka(
    source: &mut MysqlCdcSource,
    sink: &KafkaSink,
    prefix: &str,
    stop_when_idle: Option<Duration>,
) -> Result<RunStats> {
    let mut stats = RunStats::default();
    let mut last_event = Instant::now();
    let wait = Duration::from_millis(500);
    while let Some(batch) = source.next_batch(wait).await? {
        if !batch.events.is_empty() {
            let records = to_records(&batch.events, prefix);
            sink.send_all(&records).await?;
            stats.events += batch.events.len() as u64;
            stats.records += records.len() as u64;
            last_event = Instant::now();
        }
        if let Some(state) = &batch.state {
            source.commit(state)?;
            stats.commits += 1;
        }
        if let Some(idle) = stop_when_idle
            && batch.events.is_empty()
            && last_event.elapsed() >= idle
        {
            break;
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Map, json};

    use super::*;
    use crate::mysql_cdc::debezium::Source;

    #[test]
    fn deletes_are_followed_by_a_tombstone_with_the_same_key() {
        let mut row = Map::new();
        row.insert("id".into(), json!(7));
        row.insert("v".into(), json!("x"));
        let e = |op: Op| ChangeEvent {
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
                pos: 4,
                row: 0,
            },
            key_columns: Arc::new(vec!["id".into()]),
            ts_ms: 0,
        };
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
}
