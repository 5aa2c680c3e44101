//! Archived binlog files (a folder of `binlog.000001`, `binlog.000002`, … as a backup or
//! `mysqlbinlog --read-from-remote-server --raw` left them) read through the same decoder and
//! Debezium mapping as the live reader ([`super::assemble`]): a backfill after the server
//! purged its binlogs, and a way to check the decoder on bytes real MySQL servers wrote.
//!
//! Files are read in binlog order (by their numeric suffix), each from its magic header and
//! format description to its end. Columns are typed from each TABLE_MAP's full row metadata
//! ([`super::table_map`]); where a table has none (`binlog_row_metadata=MINIMAL`), from the DDL
//! seen in the files so far or declared by the user ([`super::ddl`]), by position. A compressed
//! transaction (TRANSACTION_PAYLOAD) is opened and its events read in place.
//!
//! Resume: a position (file + offset after a commit) is continued by re-reading its file from
//! the start — the TABLE_MAPs and GTID state are rebuilt — and handing out only transactions
//! that end after it. Files before the position's file are not opened.
//!
//! How it fails: a file that is not a binlog, an event cut short before the end of a file that
//! another file follows, or a table with no known columns is a [`ConnectorError`] naming the
//! file and offset. The last file may end inside a transaction (it was copied while being
//! written): that transaction is not handed out, and a later run with more files continues it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mysql_async::binlog::events::{Event, QueryEvent};
use mysql_common::binlog::EventStreamReader;
use mysql_common::binlog::consts::BinlogVersion;

use super::assemble::{Assembler, Mapped, Step, Transaction};
use super::ddl::DdlSchemas;
use super::decode_guard::{Framed, frame, no_panic};
use super::payload;
use super::position::Position;
use super::resume::compare;
use super::table_map;
use crate::error::{ConnectorError, Result};

/// The 4 bytes every binlog file starts with.
const MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];

fn files_error(file: &str, message: String, hint: &'static str) -> ConnectorError {
    ConnectorError::MysqlState {
        file: file.to_string(),
        message,
        hint,
    }
}

/// The binlog files of `source` (a folder, or one file) in binlog order: every regular file
/// that starts with the binlog magic (index files, checksums and the like are skipped).
pub fn list(source: &Path) -> Result<Vec<PathBuf>> {
    let shown = source.display().to_string();
    let meta = std::fs::metadata(source).map_err(|e| {
        files_error(
            &shown,
            format!("cannot read the binlog files at `{shown}`: {e}"),
            "pass a folder of binlog files (or one file) to --binlog-files",
        )
    })?;
    let mut files = Vec::new();
    if meta.is_file() {
        files.push(source.to_path_buf());
    } else {
        let entries = std::fs::read_dir(source).map_err(|e| {
            files_error(
                &shown,
                format!("cannot list `{shown}`: {e}"),
                "check permissions",
            )
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() && starts_with_magic(&path) {
                files.push(path);
            }
        }
    }
    files.sort_by(|a, b| compare(&name_of(a), 0, &name_of(b), 0));
    Ok(files)
}

fn starts_with_magic(path: &Path) -> bool {
    let mut head = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && head == MAGIC
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// One open file.
struct OpenFile {
    name: String,
    input: BufReader<File>,
    reader: EventStreamReader,
    /// Byte offset of the next event.
    offset: u64,
    /// More files follow this one.
    more_follow: bool,
}

/// Reads archived binlog files into whole transactions.
pub struct BinlogFileReader {
    files: VecDeque<PathBuf>,
    current: Option<OpenFile>,
    /// Inner events of the compressed transaction being read.
    inner: VecDeque<Event>,
    asm: Assembler,
    ddl: DdlSchemas,
    /// Transactions ending at or before this position were handed out by an earlier run.
    skip_through: Option<Position>,
    max_events: usize,
    handed_out: Position,
    start: Position,
    /// An error met after some transactions of a call were complete: those are returned
    /// first, the error by the next call.
    broken: Option<ConnectorError>,
    /// The last file ended inside a transaction (its events were not handed out).
    pub partial_at_end: usize,
}

impl std::fmt::Debug for BinlogFileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinlogFileReader")
            .field("files_left", &self.files.len())
            .field("file", &self.asm.file())
            .finish()
    }
}

impl BinlogFileReader {
    /// Reads `files` (in order; see [`list`]) after `position` (`None`: from the first file's
    /// start), capturing `tables`; `ddl` are the declared schemas.
    pub fn new(
        files: Vec<PathBuf>,
        position: Option<&Position>,
        tables: &[(String, String)],
        ddl: DdlSchemas,
        name: &str,
        max_events: usize,
    ) -> Result<Self> {
        let first = files.first().map(|p| name_of(p)).unwrap_or_default();
        let start = position.cloned().unwrap_or_else(|| Position::at(first, 4));
        let files: VecDeque<PathBuf> = match position {
            Some(p) => files
                .into_iter()
                .filter(|f| compare(&name_of(f), 0, &p.file, 0) != std::cmp::Ordering::Less)
                .collect(),
            None => files.into(),
        };
        let asm = Assembler::new(&start, tables, name, start.server_id)?.reading_whole_files();
        Ok(BinlogFileReader {
            files,
            current: None,
            inner: VecDeque::new(),
            asm,
            ddl,
            skip_through: position.cloned(),
            max_events,
            handed_out: start.clone(),
            start,
            broken: None,
            partial_at_end: 0,
        })
    }

    /// Hands a transaction of more than `events` change events out in parts of that size
    /// (unset: whole).
    pub fn with_part_events(mut self, events: usize) -> Self {
        self.asm = self.asm.with_part_events(events);
        self
    }

    /// Where this reader started.
    pub fn start_position(&self) -> &Position {
        &self.start
    }

    /// The end of the last transaction handed out.
    pub fn resume_position(&self) -> &Position {
        &self.handed_out
    }

    /// Rows decoded so far.
    pub fn rows_decoded(&self) -> u64 {
        self.asm.rows_decoded
    }

    /// The next whole transactions (together at least `max_events` events, or fewer at the end
    /// of the files); `None` when every file has been read.
    pub fn next_transactions(&mut self) -> Result<Option<Vec<Transaction>>> {
        if let Some(e) = self.broken.take() {
            return Err(e);
        }
        let mut done: Vec<Transaction> = Vec::new();
        match self.read_into(&mut done) {
            Ok(()) => {}
            Err(e) if done.is_empty() => return Err(e),
            Err(e) => self.broken = Some(e),
        }
        if done.is_empty() && self.current.is_none() && self.files.is_empty() {
            return Ok(None);
        }
        Ok(Some(done))
    }

    fn read_into(&mut self, done: &mut Vec<Transaction>) -> Result<()> {
        let mut events = 0usize;
        while events < self.max_events {
            let Some(event) = self.next_event()? else {
                break;
            };
            let Some(t) = self.handle(&event)? else {
                continue;
            };
            if self
                .skip_through
                .as_ref()
                .is_some_and(|p| !t.position.order(p).is_gt())
            {
                continue;
            }
            self.skip_through = None;
            events += t.events.len();
            self.handed_out = t.position.clone();
            done.push(t);
        }
        Ok(())
    }

    fn handle(&mut self, event: &Event) -> Result<Option<Transaction>> {
        let file = self.asm.file().to_string();
        if event.header().event_type_raw() == 2
            && let Ok(q) = event.read_event::<QueryEvent<'_>>()
        {
            let sql = q.query();
            let trimmed = sql.trim();
            if !trimmed.eq_ignore_ascii_case("BEGIN") && !trimmed.eq_ignore_ascii_case("COMMIT") {
                self.ddl.apply(&q.schema(), trimmed);
            }
        }
        let asm = &mut self.asm;
        let step =
            no_panic(&format!("{file}: an event"), || asm.handle(event)).map_err(|problem| {
                ConnectorError::MysqlDecode {
                    table: String::new(),
                    column: String::new(),
                    position: file.clone(),
                    problem,
                    hint: "the file is damaged",
                }
            })??;
        match step {
            Step::Pending => Ok(None),
            Step::Done(t) => Ok(Some(t)),
            Step::Map { table_id, key } => {
                let offset = self.current.as_ref().map_or(0, |c| c.offset);
                let position = format!("{file}:{offset}");
                let Some(tme) = self.asm.table_map(table_id) else {
                    return Ok(None);
                };
                let table = format!("{}.{}", key.0, key.1);
                let decode_error =
                    |problem: String, hint: &'static str| ConnectorError::MysqlDecode {
                        table: table.clone(),
                        column: String::new(),
                        position: position.clone(),
                        problem,
                        hint,
                    };
                let count = tme.columns_count() as usize;
                let from_metadata = table_map::columns(tme).map_err(|p| {
                    decode_error(p, "the TABLE_MAP event's metadata could not be read")
                })?;
                let mapped = match (from_metadata, self.ddl.get(&key)) {
                    (Some((columns, mut pk)), ddl) => {
                        if pk.is_empty()
                            && let Some(schema) = ddl
                        {
                            pk = schema.primary_key.clone();
                        }
                        Mapped {
                            db: key.0.clone(),
                            table: key.1.clone(),
                            columns,
                            key: Arc::new(pk),
                        }
                    }
                    (None, Some(schema)) if schema.columns.len() == count => {
                        let mut columns = schema.columns.clone();
                        table_map::overlay(tme, &mut columns).map_err(|p| {
                            decode_error(p, "the TABLE_MAP event's metadata could not be read")
                        })?;
                        Mapped {
                            db: key.0.clone(),
                            table: key.1.clone(),
                            columns,
                            key: Arc::new(schema.primary_key.clone()),
                        }
                    }
                    (None, Some(schema)) => {
                        return Err(decode_error(
                            format!(
                                "the binlog has {count} columns, the table's DDL {}",
                                schema.columns.len()
                            ),
                            "the declared or logged DDL is not the one the rows were written \
                             with: declare the schema as of these files (--schema-ddl)",
                        ));
                    }
                    (None, None) => {
                        let why = match self.ddl.forgotten_by(&key) {
                            Some(stmt) => format!(
                                "the binlog has no column metadata (binlog_row_metadata=MINIMAL) \
                                 and the statement `{stmt}` changed the table in a way that is \
                                 not followed"
                            ),
                            None => "the binlog has no column metadata \
                                     (binlog_row_metadata=MINIMAL) and no CREATE TABLE for it \
                                     was read or declared"
                                .to_string(),
                        };
                        return Err(decode_error(
                            why,
                            "declare the table's CREATE TABLE (as of these files) in a schema \
                             file: --schema-ddl <file.sql> (`mysqldump --no-data` output)",
                        ));
                    }
                };
                self.asm.mapped(table_id, mapped);
                Ok(None)
            }
        }
    }

    /// The next event: inner events of a payload first, then the files in order.
    fn next_event(&mut self) -> Result<Option<Event>> {
        loop {
            // A payload's events (its last one too) are handled inside it; it is left when the
            // next event comes from the file.
            if let Some(e) = self.inner.pop_front() {
                return Ok(Some(e));
            }
            self.asm.leave_payload();
            if self.current.is_none() {
                let Some(path) = self.files.pop_front() else {
                    return Ok(None);
                };
                self.current = Some(self.open(&path)?);
            }
            let Some(current) = self.current.as_mut() else {
                continue;
            };
            let at = current.offset;
            let framed = frame(&mut current.input).map_err(|e| {
                files_error(
                    &current.name,
                    format!("cannot read `{}` at offset {at}: {e}", current.name),
                    "check the file system",
                )
            })?;
            let bytes = match framed {
                Framed::Event(bytes) => bytes,
                Framed::End => {
                    self.end_of_file(None)?;
                    continue;
                }
                Framed::Cut => {
                    self.end_of_file(Some(at))?;
                    continue;
                }
                Framed::Bad(problem) => {
                    return Err(ConnectorError::MysqlDecode {
                        table: String::new(),
                        column: String::new(),
                        position: format!("{}:{at}", current.name),
                        problem,
                        hint: "the file is damaged, or not a binlog file",
                    });
                }
            };
            let position = format!("{}:{at}", current.name);
            let reader = &mut current.reader;
            let parsed = no_panic(&position, || reader.read(&bytes[..]))
                .and_then(|r| r.map_err(|e| format!("the event does not parse: {e}")));
            let event = match parsed {
                Ok(Some(event)) => event,
                Ok(None) => continue,
                Err(problem) => {
                    return Err(ConnectorError::MysqlDecode {
                        table: String::new(),
                        column: String::new(),
                        position,
                        problem,
                        hint: "the file is damaged, or not a binlog file",
                    });
                }
            };
            let size = bytes.len() as u64;
            current.offset = current.offset.saturating_add(size);
            if event.header().event_type_raw() == 40 {
                let inner = payload::inner_events(&mut current.reader, &event).map_err(|p| {
                    ConnectorError::MysqlDecode {
                        table: String::new(),
                        column: String::new(),
                        position: position.clone(),
                        problem: p,
                        hint: "a compressed transaction could not be read",
                    }
                })?;
                self.asm.enter_payload(at, at.saturating_add(size));
                self.inner = inner.into();
                continue;
            }
            return Ok(Some(event));
        }
    }

    /// The current file ended (`cut_at`: inside an event starting there).
    fn end_of_file(&mut self, cut_at: Option<u64>) -> Result<()> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        let partial = self.asm.in_transaction() || cut_at.is_some();
        if partial && current.more_follow {
            return Err(files_error(
                &current.name,
                match cut_at {
                    Some(at) => format!(
                        "`{}` ends inside an event at offset {at}, and more files follow",
                        current.name
                    ),
                    None => format!(
                        "`{}` ends inside a transaction, and more files follow",
                        current.name
                    ),
                },
                "the file was copied while being written, or is damaged: copy it again from \
                 the server's binlog folder",
            ));
        }
        if partial {
            self.partial_at_end = self.asm.partial_events();
            tracing::warn!(
                file = %current.name,
                events = self.partial_at_end,
                "the last binlog file ends inside a transaction: its events are not handed out \
                 (a run with more files continues it)"
            );
        }
        Ok(())
    }

    fn open(&mut self, path: &Path) -> Result<OpenFile> {
        let name = name_of(path);
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|e| {
            files_error(
                &shown,
                format!("cannot open `{shown}`: {e}"),
                "check the path",
            )
        })?;
        let mut input = BufReader::new(file);
        let mut head = [0u8; 4];
        if input.read_exact(&mut head).is_err() || head != MAGIC {
            return Err(files_error(
                &shown,
                format!("`{shown}` is not a binlog file (no `\\xfebin` header)"),
                "--binlog-files takes the server's binlog files as they are on disk",
            ));
        }
        if input.fill_buf().map(|b| b.is_empty()).unwrap_or(true) {
            tracing::warn!(file = %shown, "an empty binlog file");
        }
        self.asm.set_file(&name);
        Ok(OpenFile {
            name,
            input,
            reader: EventStreamReader::new(BinlogVersion::Version4),
            offset: 4,
            more_follow: !self.files.is_empty(),
        })
    }
}
