//! The binlog reader: connects as a replica, decodes rows events of the captured tables into
//! change events and hands them out **only in whole transactions**, each with the position
//! after its commit (XID or `COMMIT` query event; a standalone DDL is its own transaction).
//!
//! MariaDB specifics handled here: `@mariadb_slave_capability=4` so that GTID events (type 162,
//! parsed by hand: `seq_no u64, domain u32, flags u8`) arrive instead of fake `BEGIN` queries;
//! the first fake ROTATE's name carries the 4 checksum bytes; rows events are V1. MySQL's GTID
//! event (33) is read through mysql_common. Column names come from each TABLE_MAP event when
//! `binlog_row_metadata=FULL` (so an `ALTER TABLE … ADD COLUMN` shows in the next event), else
//! from `information_schema` by position.
//!
//! Where the dump starts: by the position's GTID state when asked to and it is known — MariaDB:
//! `SET @slave_connect_state='<gtid list>', @slave_gtid_strict_mode=1` before a dump with an
//! empty file name (the server finds the file itself, and refuses a GTID it does not have
//! instead of silently skipping); MySQL: `COM_BINLOG_DUMP_GTID` with the executed set — else by
//! file/offset. Either way the reader keeps the GTID state up to date (each transaction's GTID
//! added at its commit; a MariaDB GTID_LIST event at the start of a binlog file fills in domains
//! it did not know), so every handed-out [`Position`] can be resumed on another server.
//!
//! An error met after some transactions completed is deferred to the next [`BinlogReader::poll`],
//! so that [`BinlogReader::resume_position`] is always the end of what was handed out: a new
//! reader started there ([`super::reconnect`]) neither skips nor repeats a transaction, and the
//! events of a transaction received only in part die with the old reader.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::binlog::events::OptionalMetadataField;
use mysql_async::binlog::events::{EventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};
use serde_json::Map;

use super::checks::{connect, query_error};
use super::debezium::{ChangeEvent, Op, Source};
use super::decode;
use super::gtid::{Gtid, GtidSet};
use super::position::Position;
use super::schema::{Column, Schemas, load_table};
use crate::error::{ConnectorError, Result};

/// Committed changes with the position after their commit.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Events of the captured tables (may be empty: the position still advances).
    pub events: Vec<ChangeEvent>,
    /// Where the transaction ended.
    pub position: Position,
}

/// A captured table as described by its latest TABLE_MAP event.
#[derive(Debug)]
struct Mapped {
    db: String,
    table: String,
    columns: Vec<Column>,
    key: Arc<Vec<String>>,
}

/// Reads the binlog from a position.
pub struct BinlogReader {
    stream: BinlogStream,
    meta: Conn,
    schemas: Schemas,
    tables: HashSet<(String, String)>,
    mapped: HashMap<u64, Option<Arc<Mapped>>>,
    full_metadata: bool,
    name: String,
    file: String,
    gtid: Option<String>,
    /// GTID of the transaction being read.
    cur_gtid: Option<Gtid>,
    /// GTID state after the last complete transaction (`None`: unknown, not recorded).
    gtids: Option<GtidSet>,
    /// `@@server_id` of the server streamed from.
    this_server: u32,
    in_txn: bool,
    pending: Vec<ChangeEvent>,
    max_events: usize,
    start: Position,
    /// End of the last transaction [`Self::poll`] returned: where a new reader resumes.
    handed_out: Position,
    /// An error met after some transactions were complete: those are returned first, the
    /// error by the next [`Self::poll`].
    broken: Option<ConnectorError>,
    /// Rows events decoded so far (for rates).
    pub rows_decoded: u64,
}

impl std::fmt::Debug for BinlogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogReader")
            .field("file", &self.file)
            .field("gtid", &self.gtid)
            .finish()
    }
}

/// Strips the 4 checksum bytes the fake ROTATE event's name may carry.
fn clean_binlog_name(raw: &[u8]) -> String {
    let looks_like = |b: &[u8]| {
        b.len() > 7 && b[b.len() - 7] == b'.' && b[b.len() - 6..].iter().all(u8::is_ascii_digit)
    };
    if !looks_like(raw) && raw.len() > 4 && looks_like(&raw[..raw.len() - 4]) {
        String::from_utf8_lossy(&raw[..raw.len() - 4]).into_owned()
    } else {
        String::from_utf8_lossy(raw).into_owned()
    }
}

/// A MariaDB GTID_LIST event's body: count (low 28 bits; the top 4 are flags), then per entry
/// domain u32, server u32, seq u64. `None` when malformed or flagged (not a plain state).
fn parse_gtid_list(d: &[u8]) -> Option<GtidSet> {
    let head = u32::from_le_bytes(d.get(0..4)?.try_into().ok()?);
    if head >> 28 != 0 {
        return None;
    }
    let mut set = GtidSet::default();
    for i in 0..(head & 0x0fff_ffff) as usize {
        let e = d.get(4 + i * 16..4 + (i + 1) * 16)?;
        set.add(&Gtid::Maria {
            domain: u32::from_le_bytes(e[0..4].try_into().ok()?),
            server: u32::from_le_bytes(e[4..8].try_into().ok()?),
            seq: u64::from_le_bytes(e[8..16].try_into().ok()?),
        });
    }
    Some(set)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl BinlogReader {
    /// Starts a binlog dump after `position`: by its GTID state when `by_gtid` and the state is
    /// known (`mariadb` says which protocol), else by its file/offset.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        opts: &Opts,
        server_id: u32,
        position: &Position,
        by_gtid: bool,
        mariadb: bool,
        schemas: Schemas,
        tables: &[(String, String)],
        full_metadata: bool,
        name: &str,
        max_events: usize,
    ) -> Result<Self> {
        let mut meta = connect(opts).await?;
        let this_server = super::binlog_status::server_id(&mut meta).await?;
        let mut conn = connect(opts).await?;
        conn.query_drop("SET @mariadb_slave_capability=4")
            .await
            .map_err(|e| query_error("preparing the binlog dump", e))?;
        let gtids = match position.gtid_set.as_deref() {
            Some(text) => Some(GtidSet::parse(text)?),
            None => None,
        };
        // File/offset are only meaningful on the server that wrote them; on the same server they
        // are the same point as the GTID state, and cheaper (MariaDB 10.11 finds a GTID by
        // scanning a binlog file from its start).
        let same_server = position.server_id == Some(this_server);
        let gtid_usable = by_gtid && gtids.is_some();
        if position.server_id.is_some() && !same_server && !gtid_usable {
            return Err(ConnectorError::MysqlQuery {
                operation: "starting the binlog dump".into(),
                message: format!(
                    "the saved position {}:{} is in the binlog of server_id {}, this server is \
                     server_id {this_server}",
                    position.file,
                    position.pos,
                    position.server_id.unwrap_or(0)
                ),
                hint: "binlog files and offsets differ between servers: resume by GTID \
                       (`resume_by: gtid`), or connect to the server that wrote the position"
                    .into(),
                retryable: false,
            });
        }
        let dumped = match &gtids {
            Some(set) if by_gtid && mariadb && !same_server => {
                // Canonical text of a parsed list: digits, dashes and commas only.
                conn.query_drop(format!(
                    "SET @slave_connect_state = '{set}', @slave_gtid_strict_mode = 1"
                ))
                .await
                .map_err(|e| query_error("preparing the binlog dump by GTID", e))?;
                let request = BinlogStreamRequest::new(server_id)
                    .with_filename(b"")
                    .with_pos(4u64);
                conn.get_binlog_stream(request).await
            }
            Some(set) if by_gtid && !same_server => {
                let request = BinlogStreamRequest::new(server_id)
                    .with_gtid()
                    .with_gtid_set(set.mysql_sids()?)
                    .with_filename(b"")
                    .with_pos(4u64);
                conn.get_binlog_stream(request).await
            }
            _ => {
                let request = BinlogStreamRequest::new(server_id)
                    .with_filename(position.file.as_bytes())
                    .with_pos(position.pos);
                conn.get_binlog_stream(request).await
            }
        };
        let stream = dumped.map_err(|e| {
            let user = opts.user().unwrap_or("").to_string();
            match &e {
                mysql_async::Error::Server(s) if s.code == 1227 || s.code == 1045 => {
                    ConnectorError::MysqlPrivilege {
                        privilege: "REPLICATION SLAVE".into(),
                        message: e.to_string(),
                        hint: format!(
                            "GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '{user}'@'%'"
                        ),
                        user,
                    }
                }
                _ => query_error("starting the binlog dump", e),
            }
        })?;
        Ok(BinlogReader {
            stream,
            meta,
            schemas,
            tables: tables.iter().cloned().collect(),
            mapped: HashMap::new(),
            full_metadata,
            name: name.to_string(),
            file: position.file.clone(),
            gtid: position.gtid.clone(),
            cur_gtid: None,
            gtids,
            this_server,
            in_txn: false,
            pending: Vec::new(),
            max_events,
            start: position.clone(),
            handed_out: position.clone(),
            broken: None,
            rows_decoded: 0,
        })
    }

    /// Reads until `wait` has passed, or until whole transactions holding at least
    /// `max_events` events are ready; returns the completed transactions (possibly none).
    /// Transactions completed before an error are returned first; the error comes with the next
    /// call, and [`Self::resume_position`] is then the end of the last one returned.
    pub async fn poll(&mut self, wait: Duration) -> Result<Vec<Transaction>> {
        if let Some(e) = self.broken.take() {
            return Err(e);
        }
        let mut done: Vec<Transaction> = Vec::new();
        let read = self.read_into(wait, &mut done).await;
        if let Some(last) = done.last() {
            self.handed_out = last.position.clone();
        }
        match read {
            Ok(()) => Ok(done),
            Err(e) if done.is_empty() => Err(e),
            Err(e) => {
                self.broken = Some(e);
                Ok(done)
            }
        }
    }

    async fn read_into(&mut self, wait: Duration, done: &mut Vec<Transaction>) -> Result<()> {
        let deadline = Instant::now() + wait;
        let mut ready_events = 0usize;
        loop {
            let now = Instant::now();
            if now >= deadline || ready_events >= self.max_events {
                return Ok(());
            }
            let budget = if done.is_empty() {
                deadline - now
            } else {
                (deadline - now).min(Duration::from_millis(50))
            };
            let event = match tokio::time::timeout(budget, self.stream.next()).await {
                Err(_) if done.is_empty() => continue,
                Err(_) => return Ok(()),
                Ok(None) => {
                    return Err(ConnectorError::MysqlQuery {
                        operation: "binlog stream".into(),
                        message: "the server closed the binlog stream".into(),
                        hint: "the server may have restarted or purged the binlog: restart the \
                               reader"
                            .into(),
                        retryable: true,
                    });
                }
                Ok(Some(Err(e))) => return Err(query_error("reading the binlog stream", e)),
                Ok(Some(Ok(event))) => event,
            };
            if let Some(t) = self.handle(&event).await? {
                ready_events += t.events.len();
                done.push(t);
            }
        }
    }

    async fn handle(
        &mut self,
        event: &mysql_async::binlog::events::Event,
    ) -> Result<Option<Transaction>> {
        let header = event.header();
        let raw_type = header.event_type_raw();
        let log_pos = header.log_pos() as u64;
        match raw_type {
            // MariaDB GTID: seq_no (u64), domain_id (u32), flags (u8).
            162 => {
                let d = event.data();
                if d.len() >= 13 {
                    let seq = u64::from_le_bytes(d[0..8].try_into().unwrap_or([0; 8]));
                    let domain = u32::from_le_bytes(d[8..12].try_into().unwrap_or([0; 4]));
                    let standalone = d[12] & 1 != 0;
                    let gtid = Gtid::Maria {
                        domain,
                        server: header.server_id(),
                        seq,
                    };
                    self.gtid = Some(gtid.to_string());
                    self.cur_gtid = Some(gtid);
                    self.in_txn = !standalone;
                }
                return Ok(None);
            }
            // MariaDB GTID_LIST at the start of a binlog file: the GTID state before its first
            // transaction (fake ones, log_pos 0, are skipped).
            163 => {
                if log_pos != 0
                    && let Some(list) = parse_gtid_list(event.data())
                {
                    match &mut self.gtids {
                        Some(set) => set.merge(&list),
                        None if !self.in_txn => self.gtids = Some(list),
                        None => {}
                    }
                }
                return Ok(None);
            }
            // BINLOG_CHECKPOINT, ANNOTATE_ROWS, START_ENCRYPTION and other MariaDB events that
            // carry no rows.
            160 | 161 | 164 => return Ok(None),
            _ => {}
        }
        let data = match event.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(None),
            Err(e) => {
                return Err(ConnectorError::MysqlDecode {
                    table: String::new(),
                    column: String::new(),
                    position: format!("{}:{log_pos}", self.file),
                    problem: format!("event type {raw_type}: {e}"),
                    hint: "a binlog event could not be parsed; report it with the server version",
                });
            }
        };
        match data {
            EventData::RotateEvent(r) => {
                self.file = clean_binlog_name(r.name_raw());
                Ok(None)
            }
            EventData::GtidEvent(g) => {
                let sid = g.sid();
                let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
                let gtid = Gtid::Mysql {
                    uuid: format!(
                        "{}-{}-{}-{}-{}",
                        &hex[0..8],
                        &hex[8..12],
                        &hex[12..16],
                        &hex[16..20],
                        &hex[20..32]
                    ),
                    gno: g.gno(),
                };
                self.gtid = Some(gtid.to_string());
                self.cur_gtid = Some(gtid);
                Ok(None)
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let sql = sql.trim();
                if sql.eq_ignore_ascii_case("BEGIN") {
                    self.in_txn = true;
                    Ok(None)
                } else if sql.eq_ignore_ascii_case("COMMIT") || !self.in_txn {
                    // A DDL may change a captured table: forget cached column lists.
                    if !sql.eq_ignore_ascii_case("COMMIT") {
                        self.mapped.clear();
                    }
                    Ok(Some(self.commit(log_pos)))
                } else {
                    Ok(None)
                }
            }
            EventData::XidEvent(_) => Ok(Some(self.commit(log_pos))),
            EventData::TableMapEvent(tme) => {
                let id = tme.table_id();
                let key = (
                    tme.database_name().to_string(),
                    tme.table_name().to_string(),
                );
                let mapped = if self.tables.contains(&key) {
                    Some(Arc::new(self.map_table(&tme, key).await?))
                } else {
                    None
                };
                self.mapped.insert(id, mapped);
                Ok(None)
            }
            EventData::RowsEvent(rows) => {
                let id = rows.table_id();
                let Some(Some(mapped)) = self.mapped.get(&id).cloned() else {
                    return Ok(None);
                };
                let op = match raw_type {
                    23 | 30 => Op::Create,
                    24 | 31 => Op::Update,
                    25 | 32 => Op::Delete,
                    _ => return Ok(None),
                };
                let position = format!("{}:{log_pos}", self.file);
                let Some(tme) = self.stream.get_tme(id) else {
                    return Err(ConnectorError::MysqlDecode {
                        table: format!("{}.{}", mapped.db, mapped.table),
                        column: String::new(),
                        position,
                        problem: "rows event without its TABLE_MAP event".into(),
                        hint: "a bug or a truncated binlog: restart from an earlier position",
                    });
                };
                let ts_ms = header.timestamp() as i64 * 1000;
                let event_start = log_pos.saturating_sub(header.event_size() as u64);
                for (i, row) in rows.rows(tme).enumerate() {
                    let (before, after) = row.map_err(|e| ConnectorError::MysqlDecode {
                        table: format!("{}.{}", mapped.db, mapped.table),
                        column: String::new(),
                        position: position.clone(),
                        problem: e.to_string(),
                        hint: "a rows event could not be parsed; report it with the server version",
                    })?;
                    let to_map = |row: Option<mysql_async::binlog::row::BinlogRow>| -> Result<Option<Map<String, serde_json::Value>>> {
                        let Some(mut row) = row else { return Ok(None) };
                        let mut m = Map::new();
                        for idx in 0..row.len() {
                            let Some(value) = row.take(idx) else { continue };
                            let Some(col) = mapped.columns.get(idx) else { continue };
                            let v = decode::from_binlog(col, value).map_err(|problem| {
                                ConnectorError::MysqlDecode {
                                    table: format!("{}.{}", mapped.db, mapped.table),
                                    column: col.name.clone(),
                                    position: position.clone(),
                                    problem,
                                    hint: "change the column's type or report the value",
                                }
                            })?;
                            m.insert(col.name.clone(), v);
                        }
                        Ok(Some(m))
                    };
                    let before = to_map(before)?;
                    let after = to_map(after)?;
                    self.rows_decoded += 1;
                    self.pending.push(ChangeEvent {
                        op,
                        before: if op == Op::Create { None } else { before },
                        after: if op == Op::Delete { None } else { after },
                        source: Source {
                            name: self.name.clone(),
                            ts_ms,
                            snapshot: "false",
                            db: mapped.db.clone(),
                            table: mapped.table.clone(),
                            server_id: header.server_id(),
                            gtid: None,
                            file: self.file.clone(),
                            pos: event_start,
                            row: i as u32,
                        },
                        key_columns: mapped.key.clone(),
                        ts_ms: now_ms(),
                    });
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Where this reader started.
    pub fn start_position(&self) -> &Position {
        &self.start
    }

    /// Where a new reader must start so that nothing this one handed out is read again and
    /// nothing after it is missed: the end of the last transaction [`Self::poll`] returned.
    pub fn resume_position(&self) -> &Position {
        &self.handed_out
    }

    /// Events of a transaction received only in part (discarded if the reader is replaced).
    pub fn partial_events(&self) -> usize {
        self.pending.len()
    }

    /// The table schemas as this reader last (re)loaded them.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    fn commit(&mut self, log_pos: u64) -> Transaction {
        self.in_txn = false;
        let mut events = std::mem::take(&mut self.pending);
        for e in &mut events {
            e.source.gtid = self.gtid.clone();
        }
        if let (Some(set), Some(g)) = (&mut self.gtids, self.cur_gtid.take()) {
            set.add(&g);
        }
        Transaction {
            events,
            position: Position {
                file: self.file.clone(),
                pos: log_pos,
                gtid: self.gtid.clone(),
                gtid_set: self.gtids.as_ref().map(|s| s.to_string()),
                server_id: Some(self.this_server),
            },
        }
    }

    async fn map_table(
        &mut self,
        tme: &TableMapEvent<'_>,
        key: (String, String),
    ) -> Result<Mapped> {
        let mut names: Vec<String> = Vec::new();
        if self.full_metadata {
            for field in tme.iter_optional_meta() {
                if let Ok(OptionalMetadataField::ColumnName(cols)) = field {
                    for n in cols.iter_names().flatten() {
                        names.push(n.name().to_string());
                    }
                }
            }
        }
        let count = tme.columns_count() as usize;
        for attempt in 0..2 {
            let stale = match self.schemas.get(&key) {
                None => true,
                Some(s) => {
                    if names.len() == count {
                        names.iter().any(|n| s.column(n).is_none())
                    } else {
                        s.columns.len() != count
                    }
                }
            };
            if stale && attempt == 0 {
                let schema = load_table(&mut self.meta, &key.0, &key.1).await?;
                self.schemas.insert(key.clone(), schema);
                continue;
            }
            break;
        }
        let schema = self.schemas.get(&key).ok_or_else(|| {
            ConnectorError::Internal(format!("schema of {}.{} not loaded", key.0, key.1))
        })?;
        let columns: Vec<Column> =
            if names.len() == count {
                names
                    .iter()
                    .map(|n| {
                        schema.column(n).cloned().ok_or_else(|| ConnectorError::MysqlDecode {
                        table: format!("{}.{}", key.0, key.1),
                        column: n.clone(),
                        position: self.file.clone(),
                        problem: "the binlog names a column information_schema does not have \
                                  (dropped or renamed since)"
                            .into(),
                        hint: "the column's type is taken from the current schema: re-snapshot \
                               the table",
                    })
                    })
                    .collect::<Result<_>>()?
            } else {
                if schema.columns.len() != count {
                    return Err(ConnectorError::MysqlDecode {
                        table: format!("{}.{}", key.0, key.1),
                        column: String::new(),
                        position: self.file.clone(),
                        problem: format!(
                            "the binlog has {count} columns, information_schema {}",
                            schema.columns.len()
                        ),
                        hint: "set binlog_row_metadata=FULL so column names come with the binlog",
                    });
                }
                schema.columns.clone()
            };
        Ok(Mapped {
            db: key.0.clone(),
            table: key.1.clone(),
            columns,
            key: Arc::new(schema.primary_key.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_rotate_names_lose_their_checksum() {
        assert_eq!(clean_binlog_name(b"binlog.000001"), "binlog.000001");
        assert_eq!(
            clean_binlog_name(b"binlog.000001\x01\xff\x10\x20"),
            "binlog.000001"
        );
    }

    #[test]
    fn gtid_list_events_parse() {
        let mut d = 2u32.to_le_bytes().to_vec();
        for (domain, server, seq) in [(0u32, 1u32, 42u64), (3, 2, 7)] {
            d.extend(domain.to_le_bytes());
            d.extend(server.to_le_bytes());
            d.extend(seq.to_le_bytes());
        }
        d.extend([0xaa, 0xbb, 0xcc, 0xdd]); // checksum
        assert_eq!(parse_gtid_list(&d).unwrap().to_string(), "0-1-42,3-2-7");
        assert!(parse_gtid_list(&d[..20]).is_none(), "truncated");
        let mut flagged = d.clone();
        flagged[3] = 0x10;
        assert!(parse_gtid_list(&flagged).is_none());
    }
}
