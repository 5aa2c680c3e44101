//! Binlog events → whole transactions of change events: the one decoder behind the live reader
//! ([`super::stream`]) and the archived-file reader ([`super::binlog_files`]), so that both give
//! the same Debezium events for the same bytes.
//!
//! It tracks what a rows event needs to be read: the TABLE_MAP events (its own map, so that the
//! ones inside a compressed TRANSACTION_PAYLOAD count too), the GTID of the transaction being
//! read and the GTID state after the last one, and the rows of the transaction so far. A
//! transaction is handed out whole at its commit (XID, or a `COMMIT` query; a standalone DDL is
//! its own transaction), with the [`Position`] after it.
//!
//! TRANSACTION_PAYLOAD (MySQL 8.0.20+, `binlog_transaction_compression=ON`): its inner events have
//! no position of their own, so while they are read ([`Assembler::enter_payload`]) a commit is
//! positioned at the end of the payload event, every row gets the payload's start as its
//! `source.pos`, and row numbers run on across the payload's rows events — `(file, pos, row)`
//! stays unique, which the exactly-once read-back relies on.
//!
//! Large transactions: once a transaction's pending events reach the part size
//! ([`Assembler::with_part_events`]) at the end of a rows event (so a part may exceed it by the
//! rows of one rows event, at most `binlog_row_event_max_size` bytes), they are handed out as a [`Transaction`] whose position is
//! the transaction's start plus a [`TxnPart`] (events handed out so far, and the last one's
//! `file`/`pos`/`row`), so a 10M-row UPDATE never sits in memory whole. An assembler started at
//! such a position skips that many events of the transaction that starts there — it knows where
//! each transaction starts (the end of the one before it), so this holds for a live dump that
//! starts right there and for archived files read from their first event — and checks that the
//! last one it skipped is the one the position names (when it is the same binlog file).
//!
//! How it fails: an event that cannot be parsed, or a rows event whose table cannot be typed,
//! is a [`ConnectorError::MysqlDecode`] naming the table, column and `file:pos` — never skipped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mysql_async::binlog::events::{Event, EventData, TableMapEvent};
use serde_json::Map;

use super::debezium::{ChangeEvent, Op, Source};
use super::decode;
use super::gtid::{Gtid, GtidSet};
use super::position::{Position, TxnPart};
use super::schema::Column;
use crate::error::{ConnectorError, Result};

/// A captured table as its latest TABLE_MAP event describes it.
#[derive(Debug)]
pub struct Mapped {
    /// Database.
    pub db: String,
    /// Table.
    pub table: String,
    /// Columns, in the TABLE_MAP's order.
    pub columns: Vec<Column>,
    /// Primary-key column names.
    pub key: Arc<Vec<String>>,
}

/// Committed changes with the position after their commit.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Events of the captured tables (may be empty: the position still advances).
    pub events: Vec<ChangeEvent>,
    /// Where the transaction ended.
    pub position: Position,
}

/// What the assembler asks its reader after an event: type a newly mapped table.
#[derive(Debug)]
pub enum Step {
    /// Nothing to hand out yet.
    Pending,
    /// A transaction ended.
    Done(Transaction),
    /// A TABLE_MAP of a captured table: the reader types its columns ([`Assembler::mapped`]).
    Map {
        /// The table id the rows events will use.
        table_id: u64,
        /// `(db, table)`.
        key: (String, String),
    },
}

/// Inside a TRANSACTION_PAYLOAD.
#[derive(Debug, Clone, Copy)]
struct Payload {
    start: u64,
    end: u64,
    next_row: u32,
}

/// The decoding state of one binlog reader.
#[derive(Debug)]
pub struct Assembler {
    tables: HashSet<(String, String)>,
    mapped: HashMap<u64, Option<Arc<Mapped>>>,
    tmes: HashMap<u64, TableMapEvent<'static>>,
    name: String,
    file: String,
    gtid: Option<String>,
    cur_gtid: Option<Gtid>,
    gtids: Option<GtidSet>,
    server_id: Option<u32>,
    in_txn: bool,
    pending: Vec<ChangeEvent>,
    payload: Option<Payload>,
    /// Reading whole files from their start: a PREVIOUS_GTIDS event is the GTID state there.
    from_file_start: bool,
    /// Pending events of one transaction that are handed out as a part.
    part_events: usize,
    /// Where the transaction being read starts: the end of the one before it.
    txn_start: Position,
    /// Events of the transaction being read handed out in parts (or skipped as such).
    handed_in_txn: u64,
    /// The part the start position is inside (and where its transaction starts), until that
    /// transaction is reached.
    resume_part: Option<(Position, TxnPart)>,
    /// Events still to skip of the transaction being read (handed out by an earlier run).
    skip: u64,
    /// What the last skipped event must be (checked when the skipping ends).
    skip_to: Option<TxnPart>,
    /// Rows decoded so far (for rates).
    pub rows_decoded: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Strips the 4 checksum bytes the fake ROTATE event's name may carry.
pub fn clean_binlog_name(raw: &[u8]) -> String {
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
pub fn parse_gtid_list(d: &[u8]) -> Option<GtidSet> {
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

/// `uuid` bytes as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
fn uuid_text(sid: [u8; 16]) -> String {
    let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Assembler {
    /// Starts at `position` (its file, GTID and GTID state), capturing `tables`; `server_id`
    /// is the server whose binlog the positions point into (`None`: unknown, archived files).
    pub fn new(
        position: &Position,
        tables: &[(String, String)],
        name: &str,
        server_id: Option<u32>,
    ) -> Result<Self> {
        let gtids = match position.gtid_set.as_deref() {
            Some(text) => Some(GtidSet::parse(text)?),
            None => None,
        };
        Ok(Assembler {
            tables: tables.iter().cloned().collect(),
            mapped: HashMap::new(),
            tmes: HashMap::new(),
            name: name.to_string(),
            file: position.file.clone(),
            gtid: position.gtid.clone(),
            cur_gtid: None,
            gtids,
            server_id,
            in_txn: false,
            pending: Vec::new(),
            payload: None,
            from_file_start: false,
            part_events: usize::MAX,
            txn_start: position.boundary(),
            handed_in_txn: 0,
            resume_part: position.part.clone().map(|p| (position.boundary(), p)),
            skip: 0,
            skip_to: None,
            rows_decoded: 0,
        }
        .armed())
    }

    /// Hands a transaction out in parts of `events` change events (at least 1).
    pub fn with_part_events(mut self, events: usize) -> Self {
        self.part_events = events.max(1);
        self
    }

    /// Starts skipping when the transaction about to be read is the one the start position is
    /// inside.
    fn armed(mut self) -> Self {
        self.arm();
        self
    }

    fn arm(&mut self) {
        let starts_here = |(at, _): &(Position, TxnPart)| {
            at.file == self.txn_start.file && at.pos == self.txn_start.pos
        };
        if let Some((at, part)) = self.resume_part.take_if(|r| starts_here(r)) {
            self.skip = part.events;
            self.handed_in_txn = 0;
            // The last skipped event can be checked by file/pos/row only in the binlog that
            // wrote them: after a fail-over by GTID the same transaction sits elsewhere in
            // the replica's files (which may well have the same names), and the count alone
            // says where to continue.
            self.skip_to = (at.server_id == self.server_id).then_some(part);
        }
    }

    /// Files are read from their first event (archived files): a file's PREVIOUS_GTIDS event
    /// then gives the GTID state when the start position carries none (a live dump may start
    /// inside a file, where that event's state would miss the transactions before the start),
    /// and positions name the file read, not ROTATE events.
    pub fn reading_whole_files(mut self) -> Self {
        self.from_file_start = true;
        // The first transaction read starts at the first file's start, not at the start
        // position: skipping waits for the transaction that starts there.
        if let Some(part) = self.skip_to.take() {
            self.resume_part = Some((self.txn_start.clone(), part));
            self.skip = 0;
        }
        self.txn_start = Position {
            pos: 4,
            gtid: None,
            ..self.txn_start.clone()
        };
        self.arm();
        self
    }

    /// The binlog file being read.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Sets the binlog file being read (an archived file is named by its path, not a ROTATE).
    pub fn set_file(&mut self, file: &str) {
        self.file = file.to_string();
    }

    /// Events of the transaction received so far.
    pub fn partial_events(&self) -> usize {
        self.pending.len()
    }

    /// True between a transaction's first event and its commit.
    pub fn in_transaction(&self) -> bool {
        self.in_txn
    }

    /// The TABLE_MAP event of `table_id`, as last seen.
    pub fn table_map(&self, table_id: u64) -> Option<&TableMapEvent<'static>> {
        self.tmes.get(&table_id)
    }

    /// The inner events of the TRANSACTION_PAYLOAD event spanning `start..end` follow.
    pub fn enter_payload(&mut self, start: u64, end: u64) {
        self.payload = Some(Payload {
            start,
            end,
            next_row: 0,
        });
    }

    /// The payload's inner events are over.
    pub fn leave_payload(&mut self) {
        self.payload = None;
    }

    /// Records the typed columns of a captured table mapped as `table_id`.
    pub fn mapped(&mut self, table_id: u64, mapped: Mapped) {
        self.mapped.insert(table_id, Some(Arc::new(mapped)));
    }

    fn decode_error(
        &self,
        table: &str,
        column: &str,
        position: String,
        problem: String,
    ) -> ConnectorError {
        ConnectorError::MysqlDecode {
            table: table.to_string(),
            column: column.to_string(),
            position,
            problem,
            hint: "a binlog event could not be read; report it with the server version",
        }
    }

    /// Reads one event.
    pub fn handle(&mut self, event: &Event) -> Result<Step> {
        let header = event.header();
        let raw_type = header.event_type_raw();
        let log_pos = match self.payload {
            Some(p) => p.end,
            None => header.log_pos() as u64,
        };
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
                return Ok(Step::Pending);
            }
            // MariaDB GTID_LIST at the start of a binlog file: the GTID state before its first
            // transaction (fake ones, log_pos 0, are skipped).
            163 => {
                if header.log_pos() != 0
                    && let Some(list) = parse_gtid_list(event.data())
                {
                    match &mut self.gtids {
                        Some(set) => set.merge(&list),
                        None if !self.in_txn => self.gtids = Some(list),
                        None => {}
                    }
                }
                return Ok(Step::Pending);
            }
            // BINLOG_CHECKPOINT, ANNOTATE_ROWS, START_ENCRYPTION and other MariaDB events that
            // carry no rows.
            160 | 161 | 164 => return Ok(Step::Pending),
            _ => {}
        }
        if let Err(problem) = super::decode_guard::check_counts(raw_type, event.data()) {
            return Err(self.decode_error("", "", format!("{}:{log_pos}", self.file), problem));
        }
        let data = match event.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(Step::Pending),
            Err(e) => {
                return Err(self.decode_error(
                    "",
                    "",
                    format!("{}:{log_pos}", self.file),
                    format!("event type {raw_type}: {e}"),
                ));
            }
        };
        match data {
            EventData::RotateEvent(r) => {
                // Archived files are named by their path (a relay log names its source's
                // files in ROTATE events, and resuming looks for the file by name).
                if !self.from_file_start {
                    self.file = clean_binlog_name(r.name_raw());
                }
                Ok(Step::Pending)
            }
            EventData::GtidEvent(g) => {
                let gtid = Gtid::Mysql {
                    uuid: uuid_text(g.sid()),
                    tag: g.tag().map(|t| t.to_string().to_ascii_lowercase()),
                    gno: g.gno(),
                };
                self.gtid = Some(gtid.to_string());
                self.cur_gtid = Some(gtid);
                Ok(Step::Pending)
            }
            EventData::PreviousGtidsEvent(p) => {
                // The GTID state before this file's first transaction (MySQL): known from here
                // on when the start position did not carry one.
                if self.from_file_start && self.gtids.is_none() && !self.in_txn {
                    let mut set = GtidSet::default();
                    for sid in p.sids() {
                        let uuid = uuid_text(sid.uuid());
                        let tag = sid.tag().map(|t| t.to_string().to_ascii_lowercase());
                        for iv in sid.intervals() {
                            // Half-open on the wire.
                            if iv.end() > iv.start() && iv.start() >= 1 {
                                set.add_range(&uuid, tag.as_deref(), iv.start(), iv.end() - 1);
                            }
                        }
                    }
                    self.gtids = Some(set);
                }
                Ok(Step::Pending)
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let sql = sql.trim();
                if sql.eq_ignore_ascii_case("BEGIN") {
                    self.in_txn = true;
                    Ok(Step::Pending)
                } else if sql.eq_ignore_ascii_case("COMMIT") || !self.in_txn {
                    // A DDL may change a captured table: forget cached column lists.
                    if !sql.eq_ignore_ascii_case("COMMIT") {
                        self.mapped.clear();
                    }
                    Ok(Step::Done(self.commit(log_pos)?))
                } else {
                    Ok(Step::Pending)
                }
            }
            EventData::XidEvent(_) => Ok(Step::Done(self.commit(log_pos)?)),
            EventData::TableMapEvent(tme) => {
                let id = tme.table_id();
                let key = (
                    tme.database_name().to_string(),
                    tme.table_name().to_string(),
                );
                self.tmes.insert(id, tme.into_owned());
                if self.tables.contains(&key) {
                    // Typed by the reader (information_schema, or the files' DDL).
                    self.mapped.remove(&id);
                    Ok(Step::Map { table_id: id, key })
                } else {
                    self.mapped.insert(id, None);
                    Ok(Step::Pending)
                }
            }
            EventData::RowsEvent(rows) => {
                let id = rows.table_id();
                let Some(Some(mapped)) = self.mapped.get(&id).cloned() else {
                    return Ok(Step::Pending);
                };
                let op = match raw_type {
                    23 | 30 => Op::Create,
                    24 | 31 | 39 => Op::Update,
                    25 | 32 => Op::Delete,
                    _ => return Ok(Step::Pending),
                };
                let table = format!("{}.{}", mapped.db, mapped.table);
                let position = format!("{}:{log_pos}", self.file);
                let Some(tme) = self.tmes.get(&id) else {
                    return Err(ConnectorError::MysqlDecode {
                        table,
                        column: String::new(),
                        position,
                        problem: "rows event without its TABLE_MAP event".into(),
                        hint: "a bug or a truncated binlog: restart from an earlier position",
                    });
                };
                // The rows event's own column count drives mysql_common's per-row loop: one
                // that disagrees with its TABLE_MAP (a damaged event) would run it for up to
                // 2^64 columns (found by the `mysql_binlog` fuzz target: minutes, gigabytes).
                if rows.num_columns() != tme.columns_count() {
                    return Err(ConnectorError::MysqlDecode {
                        table,
                        column: String::new(),
                        position,
                        problem: format!(
                            "the rows event has {} columns, its TABLE_MAP {}",
                            rows.num_columns(),
                            tme.columns_count()
                        ),
                        hint: "a damaged binlog event",
                    });
                }
                let ts_ms = header.timestamp() as i64 * 1000;
                let event_start = match self.payload {
                    Some(p) => p.start,
                    None => log_pos.saturating_sub(header.event_size() as u64),
                };
                // A row holds only the columns its image's bitmap names (all of them with
                // `binlog_row_image=FULL`): value i is the i-th named column.
                let all: Vec<usize> = (0..mapped.columns.len()).collect();
                let before_columns: Vec<usize> = rows
                    .columns_before_image()
                    .map_or_else(|| all.clone(), |bits| bits.iter_ones().collect());
                let after_columns: Vec<usize> = rows
                    .columns_after_image()
                    .map_or_else(|| all.clone(), |bits| bits.iter_ones().collect());
                let mut decoded = Vec::new();
                // Every real row takes at least one byte (its null bitmap); a damaged event
                // whose column bitmap is empty makes mysql_common's iterator yield empty rows
                // forever without consuming anything (found by the `mysql_binlog` fuzz target).
                let most_rows = rows.rows_data().len();
                for row in rows.rows(tme) {
                    if decoded.len() > most_rows {
                        return Err(ConnectorError::MysqlDecode {
                            table,
                            column: String::new(),
                            position,
                            problem: format!(
                                "the rows event yields more rows than its {most_rows} bytes hold"
                            ),
                            hint: "a damaged binlog event",
                        });
                    }
                    let (before, after) = row.map_err(|e| ConnectorError::MysqlDecode {
                        table: table.clone(),
                        column: String::new(),
                        position: position.clone(),
                        problem: e.to_string(),
                        hint: "a rows event could not be parsed; report it with the server version",
                    })?;
                    let to_map =
                        |row: Option<mysql_async::binlog::row::BinlogRow>,
                         columns: &[usize]|
                         -> Result<Option<Map<String, serde_json::Value>>> {
                            let Some(mut row) = row else { return Ok(None) };
                            let mut m = Map::new();
                            for idx in 0..row.len() {
                                let Some(value) = row.take(idx) else { continue };
                                let Some(col) =
                                    columns.get(idx).and_then(|c| mapped.columns.get(*c))
                                else {
                                    return Err(ConnectorError::MysqlDecode {
                                        table: table.clone(),
                                        column: String::new(),
                                        position: position.clone(),
                                        problem: format!(
                                            "the row has a value {idx} but the table {} columns",
                                            mapped.columns.len()
                                        ),
                                        hint: "the table's columns do not match the binlog: check the declared schema",
                                    });
                                };
                                if col.name.starts_with(super::ddl::HIDDEN_PREFIX) {
                                    continue;
                                }
                                let v = decode::from_binlog(col, value).map_err(|problem| {
                                    ConnectorError::MysqlDecode {
                                        table: table.clone(),
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
                    decoded.push((
                        to_map(before, &before_columns)?,
                        to_map(after, &after_columns)?,
                    ));
                }
                for (i, (before, after)) in decoded.into_iter().enumerate() {
                    let row = match &mut self.payload {
                        Some(p) => {
                            let r = p.next_row;
                            p.next_row = p.next_row.saturating_add(1);
                            r
                        }
                        None => u32::try_from(i).unwrap_or(u32::MAX),
                    };
                    self.rows_decoded += 1;
                    self.accept(ChangeEvent {
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
                            row,
                        },
                        key_columns: mapped.key.clone(),
                        ts_ms: now_ms(),
                    })?;
                }
                if self.pending.len() >= self.part_events {
                    return Ok(Step::Done(self.part()));
                }
                Ok(Step::Pending)
            }
            _ => Ok(Step::Pending),
        }
    }

    /// Takes an event of the transaction being read: skipped while an earlier run's part is
    /// being read again, else pending.
    fn accept(&mut self, event: ChangeEvent) -> Result<()> {
        if self.skip == 0 {
            self.pending.push(event);
            return Ok(());
        }
        self.skip -= 1;
        self.handed_in_txn = self.handed_in_txn.saturating_add(1);
        if self.skip == 0
            && let Some(want) = self.skip_to.take()
            && want.file == event.source.file
            && (want.pos, want.row) != (event.source.pos, event.source.row)
        {
            return Err(self.resume_mismatch(format!(
                "event {} of the transaction is at {}:{} row {}, the start position names {}:{} \
                 row {}",
                want.events,
                event.source.file,
                event.source.pos,
                event.source.row,
                want.file,
                want.pos,
                want.row
            )));
        }
        Ok(())
    }

    fn resume_mismatch(&self, problem: String) -> ConnectorError {
        ConnectorError::MysqlDecode {
            table: String::new(),
            column: String::new(),
            position: format!("{}:{}", self.txn_start.file, self.txn_start.pos),
            problem: format!("resuming inside a transaction handed out in parts: {problem}"),
            hint: "the binlog is not the one the state file was written against (a restored or \
                   rewritten binlog?): restore the matching state file, or re-snapshot",
        }
    }

    /// The pending events, each with the GTID of the transaction they belong to.
    fn take_pending(&mut self) -> Vec<ChangeEvent> {
        let mut events = std::mem::take(&mut self.pending);
        for e in &mut events {
            e.source.gtid = self.gtid.clone();
        }
        events
    }

    /// Hands out the pending events of an unfinished transaction as a part.
    fn part(&mut self) -> Transaction {
        let events = self.take_pending();
        self.handed_in_txn = self.handed_in_txn.saturating_add(events.len() as u64);
        let part = events.last().map(|last| TxnPart {
            events: self.handed_in_txn,
            file: last.source.file.clone(),
            pos: last.source.pos,
            row: last.source.row,
        });
        Transaction {
            events,
            position: Position {
                // The GTID state before this transaction: it is added at its commit.
                gtid_set: self.gtids.as_ref().map(|s| s.to_string()),
                part,
                ..self.txn_start.clone()
            },
        }
    }

    fn commit(&mut self, log_pos: u64) -> Result<Transaction> {
        if self.skip > 0 {
            let problem = format!(
                "the transaction ended after {} events, the start position says {} were \
                 handed out",
                self.handed_in_txn,
                self.handed_in_txn.saturating_add(self.skip)
            );
            return Err(self.resume_mismatch(problem));
        }
        self.in_txn = false;
        let events = self.take_pending();
        if let (Some(set), Some(g)) = (&mut self.gtids, self.cur_gtid.take()) {
            set.add(&g);
        }
        let position = Position {
            file: self.file.clone(),
            pos: log_pos,
            gtid: self.gtid.clone(),
            gtid_set: self.gtids.as_ref().map(|s| s.to_string()),
            server_id: self.server_id,
            part: None,
        };
        self.handed_in_txn = 0;
        self.txn_start = position.clone();
        self.arm();
        Ok(Transaction { events, position })
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
