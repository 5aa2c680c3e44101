//! The initial snapshot: every row of the captured tables as `op=r`, read inside one
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT`, and the binlog position of exactly that
//! snapshot from `SHOW STATUS LIKE 'binlog_snapshot_%'` (MariaDB: no global read lock). Streaming
//! then starts at that position: a transaction committed before the snapshot is in the rows,
//! one committed after it is in the binlog after the position — no gap, no overlap.

use std::sync::Arc;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use serde_json::Map;

use super::checks::query_error;
use super::debezium::{ChangeEvent, Op, Source};
use super::decode;
use super::position::Position;
use super::schema::Schemas;
use crate::error::{ConnectorError, Result};

/// Opens the snapshot transaction and returns its binlog position.
pub async fn begin(conn: &mut Conn) -> Result<Position> {
    for sql in [
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SET SESSION time_zone = '+00:00'",
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
    ] {
        conn.query_drop(sql)
            .await
            .map_err(|e| query_error("opening the snapshot", e))?;
    }
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(|e| query_error("reading the snapshot's binlog position", e))?;
    let get = |k: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    match (get("binlog_snapshot_file"), get("binlog_snapshot_position")) {
        (Some(file), Some(pos)) if !file.is_empty() => Ok(Position {
            file: file.clone(),
            pos: pos.parse().unwrap_or(4),
            gtid: None,
        }),
        _ => Err(ConnectorError::MysqlQuery {
            operation: "reading the snapshot's binlog position".into(),
            message: "the server has no binlog_snapshot_file / binlog_snapshot_position status \
                      (MariaDB and Percona have it; Oracle MySQL does not)"
                .into(),
            hint: "on MySQL use snapshot_mode: never with a position, or a MariaDB replica".into(),
            retryable: false,
        }),
    }
}

/// Reads every row of the tables as `op=r` events (the snapshot must be open).
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
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| query_error("closing the snapshot", e))?;
    Ok(out)
}

/// `` `name` `` with backticks doubled.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}
