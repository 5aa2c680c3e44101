//! Where the binlog currently ends, asked the three ways servers answer it.
//!
//! Why a module: the question has different spellings per server and version, and the
//! snapshot's consistency depends on asking it at the right moment ([`super::snapshot_lock`]).
//! - `SHOW STATUS LIKE 'binlog_snapshot_%'` (MariaDB, Percona): inside a
//!   `START TRANSACTION WITH CONSISTENT SNAPSHOT` it is the position of exactly that snapshot —
//!   no lock needed; outside a transaction it is the current end. No privilege needed.
//! - `SHOW BINARY LOG STATUS` (MySQL ≥ 8.2; the only form on 8.4, where `SHOW MASTER STATUS` was
//!   removed), falling back to `SHOW MASTER STATUS` (MySQL < 8.2, MariaDB) when the server does
//!   not know the statement (parse error 1064). Needs `REPLICATION CLIENT` (MariaDB:
//!   `BINLOG MONITOR`). Consistent with a snapshot only while commits are blocked by a lock.
//!
//! How it fails: a server without a binlog (empty answer) or a missing privilege →
//! [`ConnectorError::MysqlQuery`] naming the statement and what to grant or set.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use super::checks::query_error;
use super::position::Position;
use crate::error::{ConnectorError, Result};

/// The snapshot's position from MariaDB / Percona's `binlog_snapshot_*` status, or `None` when
/// the server has no such status (Oracle MySQL).
pub async fn snapshot_status(conn: &mut Conn) -> Result<Option<Position>> {
    let rows: Vec<(String, String)> = conn
        .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
        .await
        .map_err(|e| query_error("reading the snapshot's binlog position", e))?;
    let get = |k: &str| {
        rows.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    Ok(
        match (get("binlog_snapshot_file"), get("binlog_snapshot_position")) {
            (Some(file), Some(pos)) if !file.is_empty() => Some(Position::at(
                file.clone(),
                parse_pos("binlog_snapshot_position", pos)?,
            )),
            _ => None,
        },
    )
}

/// The current end of the binlog from `SHOW BINARY LOG STATUS` / `SHOW MASTER STATUS`.
pub async fn show(conn: &mut Conn) -> Result<Position> {
    let rows: Vec<Row> = match conn.query("SHOW BINARY LOG STATUS").await {
        Ok(rows) => rows,
        Err(mysql_async::Error::Server(s)) if s.code == 1064 => conn
            .query("SHOW MASTER STATUS")
            .await
            .map_err(|e| status_error("SHOW MASTER STATUS", e))?,
        Err(e) => return Err(status_error("SHOW BINARY LOG STATUS", e)),
    };
    let Some(row) = rows.into_iter().next() else {
        return Err(ConnectorError::MysqlQuery {
            operation: "reading the binlog position".into(),
            message: "SHOW MASTER STATUS returned no row: the binary log is off".into(),
            hint: "set `log-bin=mysql-bin` in the server's config and restart it".into(),
            retryable: false,
        });
    };
    let text = |name: &str| -> Option<String> {
        let idx = row
            .columns_ref()
            .iter()
            .position(|c| c.name_str().eq_ignore_ascii_case(name))?;
        match row.as_ref(idx)? {
            mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            mysql_async::Value::Int(i) => Some(i.to_string()),
            mysql_async::Value::UInt(u) => Some(u.to_string()),
            _ => None,
        }
    };
    match (text("File"), text("Position")) {
        (Some(file), Some(pos)) if !file.is_empty() => Ok(Position {
            file,
            pos: parse_pos("Position", &pos)?,
            gtid: None,
            // MySQL: the executed GTID set at this position (consistent with it only while
            // commits are blocked, as the position itself); left out when not understood
            // (tagged GTIDs), so the stream resumes by file/offset.
            gtid_set: text("Executed_Gtid_Set")
                .map(|s| s.split_whitespace().collect::<String>())
                .filter(|s| !s.is_empty() && super::gtid::GtidSet::parse(s).is_ok()),
            server_id: None,
            part: None,
        }),
        _ => Err(ConnectorError::MysqlQuery {
            operation: "reading the binlog position".into(),
            message: "the binlog status has no File / Position column".into(),
            hint: "report it with the server's version".into(),
            retryable: false,
        }),
    }
}

/// The current end of the binlog: the status variables where the server has them (no privilege
/// needed), else [`show`].
pub async fn current(conn: &mut Conn) -> Result<Position> {
    match snapshot_status(conn).await? {
        Some(p) => Ok(p),
        None => show(conn).await,
    }
}

/// The connected server's `@@server_id`.
pub async fn server_id(conn: &mut Conn) -> Result<u32> {
    let id: Option<u32> = conn
        .query_first("SELECT @@server_id")
        .await
        .map_err(|e| query_error("reading @@server_id", e))?;
    Ok(id.unwrap_or(0))
}

/// MariaDB: the GTID list (one `domain-server-seq` per domain) at `file`/`pos` of this server's
/// binlog, from `BINLOG_GTID_POS()`; `None` when the server cannot tell (the file is not in its
/// binlog, or the function is unknown: not MariaDB).
pub async fn mariadb_gtid_at(conn: &mut Conn, file: &str, pos: u64) -> Result<Option<String>> {
    let r: std::result::Result<Option<Option<String>>, _> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file, pos))
        .await;
    match r {
        Ok(v) => Ok(v.flatten()),
        Err(mysql_async::Error::Server(s)) if s.code == 1305 || s.code == 1064 => Ok(None),
        Err(e) => Err(query_error(
            "reading the GTID position (BINLOG_GTID_POS)",
            e,
        )),
    }
}

fn parse_pos(what: &str, value: &str) -> Result<u64> {
    value
        .trim()
        .parse()
        .map_err(|_| ConnectorError::MysqlQuery {
            operation: "reading the binlog position".into(),
            message: format!("{what} `{value}` is not a byte offset"),
            hint: "report it with the server's version".into(),
            retryable: false,
        })
}

fn status_error(statement: &str, e: mysql_async::Error) -> ConnectorError {
    let denied = matches!(&e, mysql_async::Error::Server(s) if s.code == 1227 || s.code == 1045);
    let mut err = query_error(&format!("reading the binlog position ({statement})"), e);
    if denied && let ConnectorError::MysqlQuery { hint, .. } = &mut err {
        *hint = "GRANT REPLICATION CLIENT ON *.* to the CDC user (MariaDB: BINLOG MONITOR)".into();
    }
    err
}
