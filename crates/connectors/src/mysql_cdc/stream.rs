//! The live binlog reader: connects as a replica and feeds the dump's events to the shared
//! decoder ([`super::assemble`]), which hands out **only committed transactions**, each with the
//! position after its commit (XID or `COMMIT` query event; a standalone DDL is its own
//! transaction) — a transaction of more than `max_transaction_events` change events in parts of
//! that size, each with a position inside it that a new reader resumes from. Columns are typed from `information_schema` (names from the TABLE_MAP when the
//! server writes full row metadata). A compressed transaction (TRANSACTION_PAYLOAD, MySQL
//! 8.0.20+) is expanded by the driver; this reader expands it too and checks that exactly its
//! events follow ([`super::payload`]), so a payload the driver could not open is an error.
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

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::binlog::events::OptionalMetadataField;
use mysql_async::binlog::events::TableMapEvent;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts};

pub use super::assemble::Transaction;
use super::assemble::{Assembler, Mapped, Step};
use super::checks::{connect, query_error};
use super::gtid::GtidSet;
use super::payload::{Checked, PayloadCheck};
use super::position::Position;
use super::schema::{Column, Schemas, load_table};
use crate::error::{ConnectorError, Result};

/// Reads the binlog from a position.
pub struct BinlogReader {
    stream: BinlogStream,
    meta: Conn,
    schemas: Schemas,
    full_metadata: bool,
    asm: Assembler,
    /// The inner events of the TRANSACTION_PAYLOAD being read, as the driver must yield them
    /// next (it expands payloads itself, and yields nothing for one it cannot open).
    payload: PayloadCheck,
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
            .field("file", &self.asm.file())
            .field("start", &self.start)
            .finish()
    }
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
        part_events: usize,
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
        let asm = Assembler::new(position, tables, name, Some(this_server))?
            .with_part_events(part_events);
        Ok(BinlogReader {
            stream,
            meta,
            schemas,
            full_metadata,
            asm,
            payload: PayloadCheck::default(),
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
        let file = self.asm.file().to_string();
        match self.payload.next(event, &file) {
            Err((position, problem)) => {
                return Err(ConnectorError::MysqlDecode {
                    table: String::new(),
                    column: String::new(),
                    position,
                    problem,
                    hint: "a compressed transaction could not be read whole; its events would \
                           be lost: report it with the server version",
                });
            }
            Ok(Checked::Payload { start, end }) => {
                self.asm.enter_payload(start, end);
                return Ok(None);
            }
            Ok(Checked::Inner { .. }) | Ok(Checked::Outside) => {}
        }
        let asm = &mut self.asm;
        let step = super::decode_guard::no_panic("a binlog event", || asm.handle(event))
            .map_err(|problem| ConnectorError::MysqlDecode {
                table: String::new(),
                column: String::new(),
                position: format!("{}:{}", self.asm.file(), header.log_pos()),
                problem,
                hint: "report it with the server version",
            })
            .and_then(|r| r);
        if !self.payload.inside() {
            self.asm.leave_payload();
        }
        self.rows_decoded = self.asm.rows_decoded;
        match step? {
            Step::Pending => Ok(None),
            Step::Done(t) => Ok(Some(t)),
            Step::Map { table_id, key } => {
                let Some(tme) = self.asm.table_map(table_id).cloned() else {
                    return Ok(None);
                };
                let mapped = self.map_table(&tme, key).await?;
                self.asm.mapped(table_id, mapped);
                Ok(None)
            }
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
        self.asm.partial_events()
    }

    /// The table schemas as this reader last (re)loaded them.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
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
                        position: self.asm.file().to_string(),
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
                        position: self.asm.file().to_string(),
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
