//! Change events as Kafka records: JSON to `<prefix>.<db>.<table>`, keyed by the primary key, a
//! tombstone after each delete (so log compaction can drop the key). [`records_to_send`] with
//! what [`super::resume::scan`] found in Kafka skips the events an earlier run delivered but
//! could not record (exactly-once across a crash). The loop that sends them and saves the
//! position after the acknowledgements is the runtime's driver (`strata_runtime::sources::mysql_cdc`).

use super::debezium::{ChangeEvent, Op};
use super::resume::Delivered;
use crate::kafka::OutRecord;

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
