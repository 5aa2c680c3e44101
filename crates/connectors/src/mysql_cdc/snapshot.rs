//! The initial snapshot: every row of the captured tables as `op=r`, read at one consistent
//! instant whose binlog position [`super::snapshot_lock`] provides (the server's snapshot
//! status, a brief global read lock, or table locks held during the read). Streaming then
//! starts at that position: a transaction committed before the snapshot is in the rows, one
//! committed after it is in the binlog after the position — no gap, no overlap.
//!
//! How it fails: a query error ends the snapshot with [`ConnectorError::MysqlQuery`] (the
//! connection is dropped, which releases any lock); a value without a faithful mapping with
//! [`ConnectorError::MysqlDecode`] naming table and column.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use serde_json::Map;

use super::checks::query_error;
use super::config::SnapshotLocking;
use super::debezium::{ChangeEvent, Op, Source};
use super::decode;
use super::position::Position;
use super::schema::Schemas;
use super::snapshot_lock::{self, SnapshotMethod};
use crate::error::{ConnectorError, Result};

/// An open snapshot: its position and how it was obtained.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The binlog position of the snapshot.
    pub position: Position,
    /// How it was tied to the position (and what [`end`] must release).
    pub method: SnapshotMethod,
}

/// Opens the snapshot (see [`super::snapshot_lock`]) and returns its position.
pub async fn begin(
    conn: &mut Conn,
    locking: SnapshotLocking,
    tables: &[(String, String)],
) -> Result<Snapshot> {
    let (position, method) = snapshot_lock::open(conn, locking, tables).await?;
    Ok(Snapshot { position, method })
}

/// Ends the snapshot (commit, or release the table locks).
pub async fn end(conn: &mut Conn, snapshot: &Snapshot) -> Result<()> {
    snapshot_lock::close(conn, snapshot.method).await
}

/// Reads every row of the tables as `op=r` events (the snapshot must be open; [`end`] it after).
pub async fn read_tables(
    conn: &mut Conn,
    schemas: &Schemas,
    tables: &[(String, String)],
    position: &Position,
    name: &str,
) -> Result<Vec<ChangeEvent>> {
    let mut out = Vec::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for (db, table) in tables {
        let schema = schemas.get(&(db.clone(), table.clone())).ok_or_else(|| {
            ConnectorError::Internal(format!("schema of {db}.{table} not loaded"))
        })?;
        let key = Arc::new(schema.primary_key.clone());
        let order = if schema.primary_key.is_empty() {
            String::new()
        } else {
            let cols: Vec<String> = schema.primary_key.iter().map(|c| quote(c)).collect();
            format!(" ORDER BY {}", cols.join(", "))
        };
        let cols: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
        let sql = format!(
            "SELECT {} FROM {}.{}{order}",
            cols.join(", "),
            quote(db),
            quote(table)
        );
        let rows: Vec<Row> = conn
            .query(sql)
            .await
            .map_err(|e| query_error(&format!("snapshot of {db}.{table}"), e))?;
        for (i, mut row) in rows.into_iter().enumerate() {
            let mut m = Map::new();
            for (idx, col) in schema.columns.iter().enumerate() {
                let value: Value = row.take(idx).unwrap_or(Value::NULL);
                let v = decode::from_text(col, &value).map_err(|problem| {
                    ConnectorError::MysqlDecode {
                        table: format!("{db}.{table}"),
                        column: col.name.clone(),
                        position: "snapshot".into(),
                        problem,
                        hint: "change the column's type or report the value",
                    }
                })?;
                m.insert(col.name.clone(), v);
            }
            out.push(ChangeEvent {
                op: Op::Read,
                before: None,
                after: Some(m),
                source: Source {
                    name: name.to_string(),
                    ts_ms: now,
                    snapshot: "true",
                    db: db.clone(),
                    table: table.clone(),
                    server_id: 0,
                    gtid: None,
                    file: position.file.clone(),
                    pos: position.pos,
                    row: i as u32,
                },
                key_columns: key.clone(),
                ts_ms: now,
            });
        }
    }
    if let Some(last) = out.last_mut() {
        last.source.snapshot = "last";
    }
    Ok(out)
}

/// `` `name` `` with backticks doubled.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
