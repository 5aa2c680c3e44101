//! Change events in Debezium's MySQL envelope, as JSON and as Arrow batches.
//!
//! The JSON value of an event is `{before, after, source{version, connector, name, ts_ms,
//! snapshot, db, table, server_id, gtid, file, pos, row}, op, ts_ms}` — the shape of
//! `../shared/samples/debezium_mysql_update.json`. The Kafka key is the JSON object of the
//! primary-key columns (`null` for tables without one).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Builder, Int64Builder, StringBuilder, UInt64Builder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value as Json, json};

use crate::error::{ConnectorError, Result};

/// The operation of a change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Snapshot read.
    Read,
    /// Insert.
    Create,
    /// Update.
    Update,
    /// Delete.
    Delete,
}

impl Op {
    /// Debezium's letter.
    pub fn letter(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

/// Where an event comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Logical server name (config `name`).
    pub name: String,
    /// When the change was committed (binlog event time), epoch ms.
    pub ts_ms: i64,
    /// `"true"`, `"last"` (last snapshot row) or `"false"`.
    pub snapshot: &'static str,
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// Server id of the originating server (0 for snapshot rows).
    pub server_id: u32,
    /// GTID of the transaction.
    pub gtid: Option<String>,
    /// Binlog file.
    pub file: String,
    /// Position of the rows event (the snapshot position for `op=r`).
    pub pos: u64,
    /// Row index within the rows event.
    pub row: u32,
}

/// One change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Operation.
    pub op: Op,
    /// Row before (updates, deletes).
    pub before: Option<Map<String, Json>>,
    /// Row after (reads, inserts, updates).
    pub after: Option<Map<String, Json>>,
    /// Source block.
    pub source: Source,
    /// Primary-key column names.
    pub key_columns: Arc<Vec<String>>,
    /// When the connector produced the event, epoch ms.
    pub ts_ms: i64,
}

impl ChangeEvent {
    /// The row that identifies the key (after, or before for deletes).
    pub fn row(&self) -> Option<&Map<String, Json>> {
        self.after.as_ref().or(self.before.as_ref())
    }

    /// The key: the primary-key columns as a JSON object, `None` without a primary key.
    pub fn key(&self) -> Option<Json> {
        if self.key_columns.is_empty() {
            return None;
        }
        let row = self.row()?;
        let mut key = Map::new();
        for c in self.key_columns.iter() {
            key.insert(c.clone(), row.get(c).cloned().unwrap_or(Json::Null));
        }
        Some(Json::Object(key))
    }

    /// The Debezium envelope.
    pub fn to_json(&self) -> Json {
        let s = &self.source;
        json!({
            "before": self.before.clone().map_or(Json::Null, Json::Object),
            "after": self.after.clone().map_or(Json::Null, Json::Object),
            "source": {
                "version": "strata",
                "connector": "mysql",
                "name": s.name,
                "ts_ms": s.ts_ms,
                "snapshot": s.snapshot,
                "db": s.db,
                "table": s.table,
                "server_id": s.server_id,
                "gtid": s.gtid,
                "file": s.file,
                "pos": s.pos,
                "row": s.row,
            },
            "op": self.op.letter(),
            "ts_ms": self.ts_ms,
        })
    }
}

/// The Arrow schema of [`to_batch`]: envelope fields flattened, rows as JSON text.
pub fn batch_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("op", DataType::Utf8, false),
        Field::new("db", DataType::Utf8, false),
        Field::new("table", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("before", DataType::Utf8, true),
        Field::new("after", DataType::Utf8, true),
        Field::new("source_ts_ms", DataType::Int64, false),
        Field::new("snapshot", DataType::Utf8, false),
        Field::new("gtid", DataType::Utf8, true),
        Field::new("file", DataType::Utf8, false),
        Field::new("pos", DataType::UInt64, false),
        Field::new("row", DataType::Int32, false),
        Field::new("ts_ms", DataType::Int64, false),
    ]))
}

/// Events as one Arrow batch ([`batch_schema`]).
pub fn to_batch(events: &[ChangeEvent]) -> Result<RecordBatch> {
    let n = events.len();
    let mut op = StringBuilder::with_capacity(n, n);
    let mut db = StringBuilder::new();
    let mut table = StringBuilder::new();
    let mut key = StringBuilder::new();
    let mut before = StringBuilder::new();
    let mut after = StringBuilder::new();
    let mut sts = Int64Builder::with_capacity(n);
    let mut snap = StringBuilder::new();
    let mut gtid = StringBuilder::new();
    let mut file = StringBuilder::new();
    let mut pos = UInt64Builder::with_capacity(n);
    let mut row = Int32Builder::with_capacity(n);
    let mut ts = Int64Builder::with_capacity(n);
    for e in events {
        op.append_value(e.op.letter());
        db.append_value(&e.source.db);
        table.append_value(&e.source.table);
        key.append_option(e.key().map(|k| k.to_string()));
        before.append_option(
            e.before
                .as_ref()
                .map(|m| Json::Object(m.clone()).to_string()),
        );
        after.append_option(
            e.after
                .as_ref()
                .map(|m| Json::Object(m.clone()).to_string()),
        );
        sts.append_value(e.source.ts_ms);
        snap.append_value(e.source.snapshot);
        gtid.append_option(e.source.gtid.as_deref());
        file.append_value(&e.source.file);
        pos.append_value(e.source.pos);
        row.append_value(e.source.row as i32);
        ts.append_value(e.ts_ms);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(op.finish()),
        Arc::new(db.finish()),
        Arc::new(table.finish()),
        Arc::new(key.finish()),
        Arc::new(before.finish()),
        Arc::new(after.finish()),
        Arc::new(sts.finish()),
        Arc::new(snap.finish()),
        Arc::new(gtid.finish()),
        Arc::new(file.finish()),
        Arc::new(pos.finish()),
        Arc::new(row.finish()),
        Arc::new(ts.finish()),
    ];
    RecordBatch::try_new(batch_schema(), columns)
        .map_err(|e| ConnectorError::Internal(format!("building the CDC batch: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_the_sample_shape() {
        // The shape of ../shared/samples/debezium_mysql_update.json.
        let sample = json!({
            "before": {}, "after": {},
            "source": {"version": "strata", "connector": "mysql", "name": "shop", "ts_ms": 0,
                "snapshot": "false", "db": "shop", "table": "orders", "server_id": 1,
                "gtid": "0-1-2291", "file": "mysql-bin.000003", "pos": 48211, "row": 0},
            "op": "u", "ts_ms": 0
        });
        let row = |status: &str| {
            let mut m = Map::new();
            m.insert("id".into(), json!(1042));
            m.insert("status".into(), json!(status));
            m
        };
        let e = ChangeEvent {
            op: Op::Update,
            before: Some(row("pending")),
            after: Some(row("paid")),
            source: Source {
                name: "shop".into(),
                ts_ms: 1,
                snapshot: "false",
                db: "shop".into(),
                table: "orders".into(),
                server_id: 1,
                gtid: Some("0-1-2291".into()),
                file: "mysql-bin.000003".into(),
                pos: 48211,
                row: 0,
            },
            key_columns: Arc::new(vec!["id".into()]),
            ts_ms: 2,
        };
        let j = e.to_json();
        let keys = |v: &Json| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&j), keys(&sample));
        assert_eq!(keys(&j["source"]), keys(&sample["source"]));
        assert_eq!(e.key(), Some(json!({"id": 1042})));
        let b = to_batch(&[e]).unwrap();
        assert_eq!(b.num_rows(), 1);
    }
}
