//! How the initial snapshot is tied to one binlog position: with the server's snapshot status,
//! a brief global read lock, or table locks.
//!
//! Why it exists: the rows read by the snapshot and the binlog position streaming starts from
//! must describe the same instant — a transaction committed before it must be in the rows and
//! not after the position, one committed after it the other way round (no gap, no overlap).
//! Three ways to get that, chosen by [`SnapshotLocking`]:
//! - **Server snapshot status** (MariaDB, Percona; no lock): `START TRANSACTION WITH CONSISTENT
//!   SNAPSHOT`, then `binlog_snapshot_file/position` is the position of exactly that snapshot.
//! - **Global read lock** (Oracle MySQL, Debezium's `minimal` locking): `FLUSH TABLES WITH READ
//!   LOCK` blocks commits, `START TRANSACTION WITH CONSISTENT SNAPSHOT` (which, unlike table
//!   locks, does not release it), `SHOW BINARY LOG STATUS` / `SHOW MASTER STATUS`, `UNLOCK
//!   TABLES`; the rows are then read in the transaction. Writers wait only for those few
//!   statements. Needs `RELOAD`.
//! - **Table locks** (when `RELOAD` is not granted, e.g. managed servers): `LOCK TABLES … READ` on
//!   the captured tables, the position, then the rows are read **while the locks are held** —
//!   starting a transaction would release them, and without a lock commits between the
//!   snapshot and the position would be lost. Writers to those tables wait for the whole read,
//!   which — the snapshot being streamed batch by batch ([`super::snapshot`]) — lasts until all
//!   but the last batch were taken.
//!   Needs `LOCK TABLES` and `SELECT`.
//!
//! How it fails: a lock not obtained within [`LOCK_WAIT_SECS`] (a long statement holds the
//! tables) → retryable [`ConnectorError::MysqlQuery`]; `snapshot_locking: none` on a server
//! without snapshot status, or no privilege for any lock → non-retryable, saying what to grant or
//! set. Every lock taken is released before an error is returned.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::binlog_status;
use super::checks::query_error;
use super::config::SnapshotLocking;
use super::position::Position;
use super::snapshot::quote;
use crate::error::{ConnectorError, Result};

/// Longest wait for a lock (the session's `lock_wait_timeout`) while opening the snapshot.
pub const LOCK_WAIT_SECS: u32 = 10;

/// How a snapshot got its position (what [`open`] did).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMethod {
    /// `binlog_snapshot_*` status inside the snapshot transaction; no lock.
    ServerStatus,
    /// A global read lock while the transaction started and the position was read.
    GlobalReadLock,
    /// `LOCK TABLES … READ`, held until [`close`]; the rows are read outside a transaction.
    TableLocks,
}

/// Opens the snapshot (transaction or table locks) and returns its position. Call
/// [`close`] after reading the rows.
pub async fn open(
    conn: &mut Conn,
    locking: SnapshotLocking,
    tables: &[(String, String)],
) -> Result<(Position, SnapshotMethod)> {
    for sql in [
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ".to_string(),
        "SET SESSION time_zone = '+00:00'".to_string(),
        format!("SET SESSION lock_wait_timeout = {LOCK_WAIT_SECS}"),
    ] {
        run(conn, &sql, "opening the snapshot").await?;
    }
    if matches!(locking, SnapshotLocking::Auto | SnapshotLocking::None) {
        start_transaction(conn).await?;
        if let Some(position) = binlog_status::snapshot_status(conn).await? {
            return Ok((position, SnapshotMethod::ServerStatus));
        }
        run(conn, "ROLLBACK", "opening the snapshot").await?;
        if locking == SnapshotLocking::None {
            return Err(ConnectorError::MysqlQuery {
                operation: "reading the snapshot's binlog position".into(),
                message: "the server has no binlog_snapshot_file / binlog_snapshot_position \
                          status (MariaDB and Percona have it; Oracle MySQL does not), and \
                          snapshot_locking is `none`"
                    .into(),
                hint: "set snapshot_locking: auto (a brief global read lock; needs RELOAD, or \
                       LOCK TABLES for table locks)"
                    .into(),
                retryable: false,
            });
        }
    }
    if locking != SnapshotLocking::TableLocks {
        match global_read_lock(conn).await? {
            Some(position) => return Ok((position, SnapshotMethod::GlobalReadLock)),
            None => tracing::warn!(
                "FLUSH TABLES WITH READ LOCK is not permitted (no RELOAD privilege): snapshot \
                 with LOCK TABLES … READ, held while the tables are read"
            ),
        }
    }
    let position = table_locks(conn, tables).await?;
    Ok((position, SnapshotMethod::TableLocks))
}

/// Ends the snapshot: commits its transaction, or releases its table locks.
pub async fn close(conn: &mut Conn, method: SnapshotMethod) -> Result<()> {
    let sql = match method {
        SnapshotMethod::TableLocks => "UNLOCK TABLES",
        SnapshotMethod::ServerStatus | SnapshotMethod::GlobalReadLock => "COMMIT",
    };
    run(conn, sql, "closing the snapshot").await
}

/// The position under a global read lock; `None` when the lock is not permitted.
async fn global_read_lock(conn: &mut Conn) -> Result<Option<Position>> {
    match conn.query_drop("FLUSH TABLES WITH READ LOCK").await {
        Ok(()) => {}
        Err(e) if denied(&e) => return Ok(None),
        Err(e) => return Err(lock_error("taking the global read lock", e)),
    }
    let locked = async {
        start_transaction(conn).await?;
        binlog_status::show(conn).await
    }
    .await;
    // Released whatever happened: writers must not stay blocked by a failed snapshot.
    let unlocked = run(conn, "UNLOCK TABLES", "releasing the global read lock").await;
    let position = locked?;
    unlocked?;
    Ok(Some(position))
}

/// The position under `LOCK TABLES … READ` of the captured tables (kept until [`close`]).
async fn table_locks(conn: &mut Conn, tables: &[(String, String)]) -> Result<Position> {
    let list: Vec<String> = tables
        .iter()
        .map(|(db, t)| format!("{}.{} READ", quote(db), quote(t)))
        .collect();
    let sql = format!("LOCK TABLES {}", list.join(", "));
    match conn.query_drop(sql).await {
        Ok(()) => {}
        Err(e) if denied(&e) => {
            return Err(ConnectorError::MysqlQuery {
                operation: "opening the snapshot".into(),
                message: format!(
                    "neither FLUSH TABLES WITH READ LOCK nor LOCK TABLES is permitted, and a \
                     consistent position needs one of them on this server: {e}"
                ),
                hint: "GRANT RELOAD ON *.* to the CDC user (or LOCK TABLES on the captured \
                       tables' databases)"
                    .into(),
                retryable: false,
            });
        }
        Err(e) => return Err(lock_error("taking table read locks", e)),
    }
    match binlog_status::show(conn).await {
        Ok(p) => Ok(p),
        Err(e) => {
            let _ = conn.query_drop("UNLOCK TABLES").await;
            Err(e)
        }
    }
}

async fn start_transaction(conn: &mut Conn) -> Result<()> {
    run(
        conn,
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        "opening the snapshot",
    )
    .await
}

async fn run(conn: &mut Conn, sql: &str, operation: &str) -> Result<()> {
    conn.query_drop(sql)
        .await
        .map_err(|e| lock_error(operation, e))
}

/// [`query_error`], with a lock wait timeout (1205) made retryable and explained.
fn lock_error(operation: &str, e: mysql_async::Error) -> ConnectorError {
    let timeout = matches!(&e, mysql_async::Error::Server(s) if s.code == 1205);
    let mut err = query_error(operation, e);
    if timeout
        && let ConnectorError::MysqlQuery {
            hint, retryable, ..
        } = &mut err
    {
        *hint = format!(
            "a lock was not obtained within {LOCK_WAIT_SECS}s: a long-running statement or \
             transaction holds the tables; retry when it has finished"
        );
        *retryable = true;
    }
    err
}

/// True for "access denied" answers (the privilege is missing).
fn denied(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1227 | 1045 | 1044 | 1142))
}
