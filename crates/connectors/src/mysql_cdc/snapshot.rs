//! The initial snapshot: every row of the captured tables as `op=r`, read at one consistent
//! instant whose binlog position [`super::snapshot_lock`] provides (the server's snapshot
//! status, a brief global read lock, or table locks held during the read). Streaming then
//! starts at that position: a transaction committed before the snapshot is in the rows, one
//! committed after it is in the binlog after the position — no gap, no overlap.
//!
//! Bounded memory: the rows are **streamed**, not collected. A [`SnapshotReader`] owns the
//! snapshot connection in a task that runs one `SELECT` per table (text protocol, the result
//! read row by row from the socket) inside the snapshot transaction (or under the table
//! locks), and reads only when asked for the next batch: at most `batch_rows` rows per batch,
//! plus one row read ahead so that the very last row can be marked `source.snapshot = "last"`.
//! The source therefore holds at most `batch_rows + 1` snapshot rows at any time
//! ([`SnapshotProgress::rows_held_max`]); the rest waits in the server (and the socket
//! buffers). The snapshot is closed (COMMIT / UNLOCK TABLES) as soon as the last row was read,
//! before the last batch is handed out. Consequence: the transaction — or, with table locks,
//! the locks — stay open while the batches are delivered, not only while they are read.
//!
//! Row identity: each event's `source.{file, pos}` is the snapshot position and `row` its index
//! within its table (tables are read in primary-key order), the same as when the rows were
//! collected first, so [`super::resume`] identifies a redone snapshot's rows the same way.
//!
//! How it fails: a query error ends the snapshot with [`ConnectorError::MysqlQuery`], a value
//! without a faithful mapping with [`ConnectorError::MysqlDecode`] naming table and column.
//! After an error, or when the reader is dropped before the end, the task kills its
//! connection from a second connection (`KILL <id>`: the server stops sending, rolls the
//! transaction back and releases any lock) instead of draining the rest of the table; the
//! snapshot is redone by the next run (nothing of it was saved as done).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};
use serde_json::Map;
use tokio::sync::mpsc;

use super::checks::{connect, query_error};
use super::config::SnapshotLocking;
use super::debezium::{ChangeEvent, Op, Source};
use super::decode;
use super::position::Position;
use super::schema::{Schemas, TableSchema};
use super::snapshot_lock::{self, SnapshotMethod};
use crate::error::{ConnectorError, Result};

/// `net_write_timeout` of the snapshot session: how long the server waits for us to read on
/// while its send buffer is full. Rows are read only as batches are taken, so a slow consumer
/// (a broker that is down for a while) must not make the server drop the snapshot connection.
pub const NET_WRITE_TIMEOUT_SECS: u32 = 3600;

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

/// A batch of snapshot rows.
#[derive(Debug)]
pub struct SnapshotBatch {
    /// At most `batch_rows` `op=r` events, in table order then primary-key order.
    pub events: Vec<ChangeEvent>,
    /// The snapshot is complete (this batch holds the `last` row, if any) and closed.
    pub done: bool,
}

/// Counters of a streamed snapshot, shared with its task.
#[derive(Debug, Default)]
pub struct SnapshotProgress {
    /// Rows read from the server so far.
    rows_read: AtomicU64,
    /// Rows read and not yet handed out by [`SnapshotReader::next`] (in the batch being filled,
    /// read ahead, or waiting in the channel).
    rows_held: AtomicUsize,
    /// The most rows ever held at once.
    rows_held_max: AtomicUsize,
}

impl SnapshotProgress {
    /// Rows read from the server so far.
    pub fn rows_read(&self) -> u64 {
        self.rows_read.load(Ordering::SeqCst)
    }

    /// The most snapshot rows the source held at once (≤ `batch_rows + 1`).
    pub fn rows_held_max(&self) -> usize {
        self.rows_held_max.load(Ordering::SeqCst)
    }

    fn read_one(&self) {
        self.rows_read.fetch_add(1, Ordering::SeqCst);
        let held = self.rows_held.fetch_add(1, Ordering::SeqCst) + 1;
        self.rows_held_max.fetch_max(held, Ordering::SeqCst);
    }
}

/// Hands out the rows of an open snapshot batch by batch, reading them from the server only
/// as batches are asked for (see the module docs).
#[derive(Debug)]
pub struct SnapshotReader {
    /// One message per batch wanted (capacity 1: never more than one batch asked ahead).
    want: mpsc::Sender<()>,
    batches: mpsc::Receiver<Result<SnapshotBatch>>,
    /// A batch was asked for and not yet received (after a cancelled [`Self::next`], the next
    /// call does not ask again).
    asked: bool,
    progress: Arc<SnapshotProgress>,
}

/// What the reading task needs.
struct Plan {
    schemas: Vec<(String, String, TableSchema)>,
    snapshot: Snapshot,
    name: String,
    batch_rows: usize,
}

impl SnapshotReader {
    /// Starts reading `tables` in the open `snapshot` of `conn` (which the reader takes over and
    /// closes at the end). `opts` is used only to kill the query if the snapshot is abandoned.
    pub fn start(
        conn: Conn,
        opts: Opts,
        snapshot: Snapshot,
        schemas: &Schemas,
        tables: &[(String, String)],
        name: &str,
        batch_rows: usize,
    ) -> Result<Self> {
        let mut plan = Plan {
            schemas: Vec::with_capacity(tables.len()),
            snapshot,
            name: name.to_string(),
            batch_rows: batch_rows.max(1),
        };
        for (db, table) in tables {
            let schema = schemas.get(&(db.clone(), table.clone())).ok_or_else(|| {
                ConnectorError::Internal(format!("schema of {db}.{table} not loaded"))
            })?;
            plan.schemas
                .push((db.clone(), table.clone(), schema.clone()));
        }
        let (want, want_rx) = mpsc::channel(1);
        let (batches_tx, batches) = mpsc::channel(1);
        let progress = Arc::new(SnapshotProgress::default());
        tokio::spawn(run(
            conn,
            opts,
            plan,
            want_rx,
            batches_tx,
            Arc::clone(&progress),
        ));
        Ok(SnapshotReader {
            want,
            batches,
            asked: false,
            progress,
        })
    }

    /// The next batch (cancel-safe: a batch asked for by a cancelled call is returned by the
    /// next one). After an error the snapshot is over: every later call fails too.
    pub async fn next(&mut self) -> Result<SnapshotBatch> {
        if !self.asked {
            // Capacity 1 and at most one request outstanding: never full. Closed: the task
            // ended, which `recv` reports below.
            let _ = self.want.try_send(());
            self.asked = true;
        }
        let received = self.batches.recv().await;
        self.asked = false;
        match received {
            Some(Ok(batch)) => {
                self.progress
                    .rows_held
                    .fetch_sub(batch.events.len(), Ordering::SeqCst);
                Ok(batch)
            }
            Some(Err(e)) => Err(e),
            None => Err(ConnectorError::MysqlQuery {
                operation: "reading the snapshot".into(),
                message: "the snapshot was interrupted by an earlier error".into(),
                hint: "open the source again: the snapshot is redone".into(),
                retryable: true,
            }),
        }
    }

    /// The reader's counters (shared: they outlive the reader).
    pub fn progress_handle(&self) -> Arc<SnapshotProgress> {
        Arc::clone(&self.progress)
    }
}

/// How the reading ended.
enum Ended {
    /// Every row was handed to the channel; the snapshot is closed.
    Done,
    /// The reader was dropped before the end.
    Abandoned,
}

/// The reading task: reads, hands out, closes the snapshot; on error or abandonment kills the
/// query so that the server stops sending and releases the snapshot's transaction or locks.
async fn run(
    mut conn: Conn,
    opts: Opts,
    plan: Plan,
    mut want: mpsc::Receiver<()>,
    out: mpsc::Sender<Result<SnapshotBatch>>,
    progress: Arc<SnapshotProgress>,
) {
    let id = conn.id();
    match read_all(&mut conn, &plan, &mut want, &out, &progress).await {
        Ok(Ended::Done) => {
            let _ = conn.disconnect().await;
        }
        Ok(Ended::Abandoned) => kill(&opts, id, conn).await,
        Err(e) => {
            let _ = out.send(Err(e)).await;
            kill(&opts, id, conn).await;
        }
    }
}

/// Stops connection `id` from another connection, then drops it. Dropping alone would make
/// mysql_async read the rest of the result set (the whole table) before disconnecting.
async fn kill(opts: &Opts, id: u32, conn: Conn) {
    match connect(opts).await {
        Ok(mut killer) => {
            if let Err(e) = killer.query_drop(format!("KILL {id}")).await {
                tracing::warn!(connection = id, "could not stop the snapshot query: {e}");
            }
            let _ = killer.disconnect().await;
        }
        Err(e) => tracing::warn!(connection = id, "could not stop the snapshot query: {e}"),
    }
    drop(conn);
}

/// Reads every table, sending a batch each time one is asked for and full.
async fn read_all(
    conn: &mut Conn,
    plan: &Plan,
    want: &mut mpsc::Receiver<()>,
    out: &mpsc::Sender<Result<SnapshotBatch>>,
    progress: &SnapshotProgress,
) -> Result<Ended> {
    if want.recv().await.is_none() {
        return Ok(Ended::Abandoned);
    }
    conn.query_drop(format!(
        "SET SESSION net_write_timeout = {NET_WRITE_TIMEOUT_SECS}"
    ))
    .await
    .map_err(|e| query_error("preparing the snapshot read", e))?;
    let started = now_ms();
    let position = &plan.snapshot.position;
    let mut batch: Vec<ChangeEvent> = Vec::with_capacity(plan.batch_rows.min(4096));
    // The row read last: handed out once the next one (or the end) is known.
    let mut ahead: Option<ChangeEvent> = None;
    for (db, table, schema) in &plan.schemas {
        let what = format!("snapshot of {db}.{table}");
        let key = Arc::new(schema.primary_key.clone());
        let mut rows = conn
            .query_stream::<Row, _>(select(db, table, schema))
            .await
            .map_err(|e| query_error(&what, e))?;
        let mut i: u32 = 0;
        while let Some(row) = rows.next().await {
            let row = row.map_err(|e| query_error(&what, e))?;
            progress.read_one();
            let event = ChangeEvent {
                op: Op::Read,
                before: None,
                after: Some(decode_row(db, table, schema, row)?),
                source: Source {
                    name: plan.name.clone(),
                    ts_ms: started,
                    snapshot: "true",
                    db: db.clone(),
                    table: table.clone(),
                    server_id: 0,
                    gtid: None,
                    file: position.file.clone(),
                    pos: position.pos,
                    row: i,
                },
                key_columns: key.clone(),
                ts_ms: 0,
            };
            i = i.wrapping_add(1);
            if let Some(prev) = ahead.replace(event) {
                batch.push(prev);
                if batch.len() >= plan.batch_rows {
                    let full = std::mem::take(&mut batch);
                    if !hand_out(full, false, want, out).await? {
                        return Ok(Ended::Abandoned);
                    }
                }
            }
        }
    }
    if let Some(mut last) = ahead.take() {
        last.source.snapshot = "last";
        batch.push(last);
    }
    // Release the transaction or the locks before the last batch is delivered.
    snapshot_lock::close(conn, plan.snapshot.method).await?;
    if !hand_out(batch, true, want, out).await? {
        return Ok(Ended::Abandoned);
    }
    Ok(Ended::Done)
}

/// Sends a batch, and unless it is the last, waits until the next one is asked for. `false`
/// when the reader is gone.
async fn hand_out(
    mut events: Vec<ChangeEvent>,
    done: bool,
    want: &mut mpsc::Receiver<()>,
    out: &mpsc::Sender<Result<SnapshotBatch>>,
) -> Result<bool> {
    let now = now_ms();
    for e in &mut events {
        e.ts_ms = now;
    }
    if out.send(Ok(SnapshotBatch { events, done })).await.is_err() {
        return Ok(false);
    }
    Ok(done || want.recv().await.is_some())
}

/// The `SELECT` of a table's columns, in primary-key order when it has one.
fn select(db: &str, table: &str, schema: &TableSchema) -> String {
    let cols: Vec<String> = schema.columns.iter().map(|c| quote(&c.name)).collect();
    let order = if schema.primary_key.is_empty() {
        String::new()
    } else {
        let key: Vec<String> = schema.primary_key.iter().map(|c| quote(c)).collect();
        format!(" ORDER BY {}", key.join(", "))
    };
    format!(
        "SELECT {} FROM {}.{}{order}",
        cols.join(", "),
        quote(db),
        quote(table)
    )
}

fn decode_row(
    db: &str,
    table: &str,
    schema: &TableSchema,
    mut row: Row,
) -> Result<Map<String, serde_json::Value>> {
    let mut m = Map::new();
    for (idx, col) in schema.columns.iter().enumerate() {
        let value: Value = row.take(idx).unwrap_or(Value::NULL);
        let v = decode::from_text(col, &value).map_err(|problem| ConnectorError::MysqlDecode {
            table: format!("{db}.{table}"),
            column: col.name.clone(),
            position: "snapshot".into(),
            problem,
            hint: "change the column's type or report the value",
        })?;
        m.insert(col.name.clone(), v);
    }
    Ok(m)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `` `name` `` with backticks doubled.
pub fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql_cdc::schema::{Column, Kind};

    fn column(name: &str) -> Column {
        Column {
            name: name.into(),
            kind: Kind::Int,
            data_type: "int".into(),
            unsigned: false,
            fsp: 0,
            labels: Vec::new(),
            charset: None,
        }
    }

    #[test]
    fn selects_in_primary_key_order_with_quoted_names() {
        let mut schema = TableSchema {
            db: "shop".into(),
            table: "or`ders".into(),
            columns: vec![column("id"), column("we`ird")],
            primary_key: vec!["id".into()],
        };
        assert_eq!(
            select("shop", "or`ders", &schema),
            "SELECT `id`, `we``ird` FROM `shop`.`or``ders` ORDER BY `id`"
        );
        schema.primary_key.clear();
        assert_eq!(
            select("shop", "t", &schema),
            "SELECT `id`, `we``ird` FROM `shop`.`t`"
        );
    }
}
