//! # MySQL / MariaDB CDC: the binlog read as a replica
//!
//! Why it exists: to turn every committed row change of selected tables into a
//! Debezium-compatible change event (JSON for Kafka, Arrow for in-process use) without a
//! Debezium / Kafka Connect deployment.
//!
//! Flow: [`MysqlCdcSource::open`] validates the config, connects, checks privileges and binlog
//! settings ([`checks`]), loads the tables' schemas ([`schema`]) and reads the state file
//! ([`position`]). [`MysqlCdcSource::next_batch`] then yields, in order: the initial snapshot
//! (`op=r`, [`snapshot`]; streamed from the server in batches of at most `snapshot_batch_rows`,
//! so its memory is bounded whatever the table size) unless the mode or the state says
//! otherwise, then committed transactions from the binlog ([`stream`]), each batch with the
//! state to save **after** the batch was delivered ([`MysqlCdcSource::commit`]). [`sink`] is the Kafka driver; [`resume`]
//! makes it exactly-once across a crash between the broker's acknowledgement and the save.
//!
//! Invariants: a batch never ends inside a transaction; the saved position is always the end
//! of a transaction whose events were all delivered, so a restart re-reads from there — no loss,
//! no duplicate (at-least-once becomes exactly-once per event as long as the consumer of a
//! batch finishes before [`MysqlCdcSource::commit`]). An interrupted snapshot is redone.
//!
//! Resume: by the saved GTID state where the server has GTIDs (`resume_by`, [`gtid`]), so that
//! the same state file continues on a replica after a fail-over; else by binlog file/offset.
//!
//! How it fails: config, privilege and server-setting problems at `open` with the fix in the
//! message; a lost binlog connection is re-established from the last transaction end handed
//! out ([`reconnect`]), and only after `reconnect_timeout_secs` becomes a retryable
//! [`ConnectorError::MysqlQuery`]; a value with no faithful mapping is a
//! [`ConnectorError::MysqlDecode`] naming table, column and position.

pub mod assemble;
pub mod binlog_files;
pub mod binlog_objects;
pub mod binlog_status;
pub mod charset;
pub mod checks;
pub mod config;
pub mod ddl;
pub mod debezium;
pub mod decode;
pub mod decode_guard;
pub mod gtid;
pub mod json_binary;
pub mod payload;
pub mod position;
pub mod reconnect;
pub mod resume;
pub mod schema;
pub mod sink;
pub mod snapshot;
pub mod snapshot_lock;
pub mod stream;
pub mod table_map;

use std::time::Duration;

use mysql_async::Opts;

pub use checks::ServerInfo;
pub use config::{MysqlCdcConfig, ResumeBy, SnapshotLocking, SnapshotMode};
pub use debezium::{ChangeEvent, Op, to_batch};
pub use gtid::{Gtid, GtidSet};
pub use position::{CdcState, Position, StateFile, TxnPart};
pub use snapshot_lock::SnapshotMethod;
pub use stream::BinlogReader;

use crate::error::{ConnectorError, Result};

/// Events to deliver, and the state to save once they are delivered.
#[derive(Debug, Clone)]
pub struct CdcBatch {
    /// Change events in commit order.
    pub events: Vec<ChangeEvent>,
    /// State to save after delivery (`None`: nothing new to save, e.g. mid-snapshot).
    pub state: Option<CdcState>,
}

enum Phase {
    Snapshot {
        reader: Box<snapshot::SnapshotReader>,
        position: Position,
    },
    Stream(Box<BinlogReader>),
    StartStream(Position),
    Files(Box<binlog_files::BinlogFileReader>),
    Done,
}

/// Completes `position` with its server and the GTID state at its file/offset where they are
/// missing. A `fresh` position (the snapshot's, or the binlog's current end) belongs to the
/// connected server. MariaDB answers `BINLOG_GTID_POS()` for its own binlog (also for a state
/// file written before GTID states were recorded); failing that (the file is another server's),
/// the position's last GTID stands for its domain. When resuming by GTID and the state stays
/// unknown, the stream starts by file/offset (logged).
async fn with_gtid_state(
    conn: &mut mysql_async::Conn,
    info: &ServerInfo,
    position: &mut Position,
    by_gtid: bool,
    fresh: bool,
) -> Result<()> {
    let this_server = binlog_status::server_id(conn).await?;
    if fresh {
        position.server_id = Some(this_server);
    }
    let ours = position.server_id.is_none_or(|s| s == this_server);
    if position.gtid_set.is_none() && info.mariadb {
        if ours {
            position.gtid_set =
                binlog_status::mariadb_gtid_at(conn, &position.file, position.pos).await?;
        }
        if position.gtid_set.is_none()
            && let Some(last) = &position.gtid
            && let Ok(set) = GtidSet::parse(last)
        {
            position.gtid_set = Some(set.to_string());
        }
    }
    if by_gtid && position.gtid_set.is_none() {
        tracing::warn!(
            file = %position.file,
            pos = position.pos,
            "the GTID state of the start position is unknown: resuming by file/position"
        );
    }
    Ok(())
}

/// The CDC source.
pub struct MysqlCdcSource {
    config: MysqlCdcConfig,
    opts: Opts,
    info: ServerInfo,
    /// Streams (re)start by the position's GTID state when it is known.
    by_gtid: bool,
    state_file: StateFile,
    schemas: schema::Schemas,
    phase: Phase,
    /// Set from a lost connection until a stream works again.
    backoff: Option<reconnect::Backoff>,
    /// When the current binlog connection started streaming.
    stream_since: Option<std::time::Instant>,
    reconnects: u64,
    partial_dropped: u64,
    rows_decoded_before: u64,
    snapshot_method: Option<SnapshotMethod>,
    /// Counters of this run's snapshot (kept after it ended).
    snapshot_progress: Option<std::sync::Arc<snapshot::SnapshotProgress>>,
}

impl std::fmt::Debug for MysqlCdcSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlCdcSource")
            .field("tables", &self.config.tables)
            .field("state_file", &self.state_file.path())
            .finish()
    }
}

impl MysqlCdcSource {
    /// Checks everything and decides where to start (snapshot, saved position, or the current
    /// end of the binlog). With `binlog_files`, reads those files instead ([`Self::open_files`]).
    pub async fn open(config: MysqlCdcConfig) -> Result<Self> {
        if let Some(url) = config.binlog_files.as_ref().and_then(|p| p.to_str())
            && binlog_objects::parse_url(url).is_some()
        {
            let url = url.to_string();
            let saved = StateFile::new(&config.state_file).load()?;
            let from = saved.as_ref().map(|s| s.position.file.as_str());
            let staging = binlog_objects::staging_dir(&config.state_file);
            let folder = binlog_objects::stage(&url, from, &staging).await?;
            tracing::info!(url = %url, staging = %folder.display(), "binlog objects staged");
            let mut config = config;
            config.binlog_files = Some(folder);
            return Self::open_files(config);
        }
        if config.binlog_files.is_some() {
            return Self::open_files(config);
        }
        let (mut conn, info) = checks::connect_and_check(&config).await?;
        let by_gtid = match config.resume_by {
            Some(ResumeBy::Position) => false,
            Some(ResumeBy::Gtid) if !info.gtid => {
                return Err(ConnectorError::MysqlSetting {
                    variable: "gtid_mode".into(),
                    actual: "OFF".into(),
                    expected: "ON (for resume_by: gtid)".into(),
                    hint: "set `gtid_mode=ON` and `enforce_gtid_consistency=ON` in the server's \
                           config, or use `resume_by: position`"
                        .into(),
                });
            }
            Some(ResumeBy::Gtid) => true,
            None => info.gtid,
        };
        let opts = checks::opts(&config)?;
        let tables = config.table_pairs();
        let mut schemas = schema::Schemas::new();
        for (db, table) in &tables {
            let s = schema::load_table(&mut conn, db, table).await?;
            schemas.insert((db.clone(), table.clone()), s);
        }
        let state_file = StateFile::new(&config.state_file);
        let saved = state_file.load()?;
        let mut snapshot_method = None;
        let mut snapshot_progress = None;
        let phase = match (saved, config.snapshot_mode) {
            (Some(s), SnapshotMode::InitialOnly) if s.snapshot_done => Phase::Done,
            (saved, mode)
                if saved.as_ref().is_some_and(|s| s.snapshot_done)
                    || mode == SnapshotMode::Never =>
            {
                let (mut position, fresh) = match saved {
                    Some(s) if s.snapshot_done => (s.position, false),
                    _ => (binlog_status::current(&mut conn).await?, true),
                };
                with_gtid_state(&mut conn, &info, &mut position, by_gtid, fresh).await?;
                let _ = conn.disconnect().await;
                Phase::StartStream(position)
            }
            _ => {
                let mut snap = snapshot::begin(&mut conn, config.snapshot_locking, &tables).await?;
                // Still inside the snapshot (these statements touch no table, so they also
                // work under table locks); the connection then belongs to the reader.
                let completed =
                    with_gtid_state(&mut conn, &info, &mut snap.position, by_gtid, true).await;
                if let Err(e) = completed {
                    let _ = snapshot::end(&mut conn, &snap).await;
                    return Err(e);
                }
                snapshot_method = Some(snap.method);
                let position = snap.position.clone();
                let reader = snapshot::SnapshotReader::start(
                    conn,
                    opts.clone(),
                    snap,
                    &schemas,
                    &tables,
                    &config.name,
                    config.snapshot_batch_rows,
                )?;
                snapshot_progress = Some(reader.progress_handle());
                Phase::Snapshot {
                    reader: Box::new(reader),
                    position,
                }
            }
        };
        Ok(MysqlCdcSource {
            config,
            opts,
            info,
            by_gtid,
            state_file,
            schemas,
            phase,
            backoff: None,
            stream_since: None,
            reconnects: 0,
            partial_dropped: 0,
            rows_decoded_before: 0,
            snapshot_method,
            snapshot_progress,
        })
    }

    /// Reads the archived binlog files of `config.binlog_files` (no server): after the state
    /// file's position, or from the first file; columns typed from the files' metadata and DDL
    /// and `config.schema_ddl` ([`binlog_files`]).
    pub fn open_files(config: MysqlCdcConfig) -> Result<Self> {
        let source = config
            .binlog_files
            .clone()
            .ok_or_else(|| ConnectorError::MysqlConfig {
                problems: vec!["binlog_files: not set".into()],
            })?;
        let files = binlog_files::list(&source)?;
        if files.is_empty() {
            return Err(ConnectorError::MysqlConfig {
                problems: vec![format!(
                    "binlog_files: `{}` holds no binlog file (none starts with the binlog magic \
                     bytes)",
                    source.display()
                )],
            });
        }
        let ddl = match &config.schema_ddl {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| ConnectorError::MysqlConfig {
                        problems: vec![format!(
                            "schema_ddl: cannot read `{}`: {e}",
                            path.display()
                        )],
                    })?;
                ddl::DdlSchemas::declared(&text, "").map_err(|e| ConnectorError::MysqlConfig {
                    problems: vec![format!("schema_ddl: `{}`: {e}", path.display())],
                })?
            }
            None => ddl::DdlSchemas::default(),
        };
        let state_file = StateFile::new(&config.state_file);
        let saved = state_file.load()?.map(|s| s.position);
        let reader = binlog_files::BinlogFileReader::new(
            files,
            saved.as_ref(),
            &config.table_pairs(),
            ddl,
            &config.name,
            config.max_batch_events,
        )?
        .with_part_events(config.max_transaction_events);
        Ok(MysqlCdcSource {
            opts: Opts::default(),
            info: ServerInfo::default(),
            by_gtid: false,
            state_file,
            schemas: schema::Schemas::new(),
            phase: Phase::Files(Box::new(reader)),
            backoff: None,
            stream_since: None,
            reconnects: 0,
            partial_dropped: 0,
            rows_decoded_before: 0,
            snapshot_method: None,
            snapshot_progress: None,
            config,
        })
    }

    /// What the start-up checks found (warnings to log).
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
    }

    /// How this run's snapshot got its binlog position (`None`: no snapshot was taken).
    pub fn snapshot_method(&self) -> Option<SnapshotMethod> {
        self.snapshot_method
    }

    /// The state file.
    pub fn state_file(&self) -> &StateFile {
        &self.state_file
    }

    /// The captured tables as `(db, table)`.
    pub fn tables(&self) -> Vec<(String, String)> {
        self.config.table_pairs()
    }

    /// Where the events this source hands out next come from: the snapshot's position, or the
    /// binlog position streaming (re)starts at; `None` when there is nothing more to read.
    /// Events at or after it may already have been delivered by a run that crashed before
    /// saving its state ([`resume`]).
    pub fn start_position(&self) -> Option<&Position> {
        match &self.phase {
            Phase::Snapshot { position, .. } | Phase::StartStream(position) => Some(position),
            Phase::Stream(reader) => Some(reader.start_position()),
            Phase::Files(reader) => Some(reader.start_position()),
            Phase::Done => None,
        }
    }

    /// The next batch: snapshot rows first, then committed transactions, waiting up to `wait`
    /// for binlog events. `None` when the source is finished (`initial_only`).
    pub async fn next_batch(&mut self, wait: Duration) -> Result<Option<CdcBatch>> {
        loop {
            match &mut self.phase {
                Phase::Done => return Ok(None),
                Phase::Files(reader) => {
                    let Some(txns) = reader.next_transactions()? else {
                        self.rows_decoded_before = reader.rows_decoded();
                        self.phase = Phase::Done;
                        return Ok(None);
                    };
                    let state = txns.last().map(|t| CdcState {
                        position: t.position.clone(),
                        snapshot_done: true,
                    });
                    let events = txns.into_iter().flat_map(|t| t.events).collect();
                    return Ok(Some(CdcBatch { events, state }));
                }
                Phase::Snapshot { reader, position } => {
                    let batch = reader.next().await?;
                    let state = batch.done.then(|| CdcState {
                        position: position.clone(),
                        snapshot_done: true,
                    });
                    if batch.done {
                        self.phase = if self.config.snapshot_mode == SnapshotMode::InitialOnly {
                            Phase::Done
                        } else {
                            Phase::StartStream(position.clone())
                        };
                    }
                    return Ok(Some(CdcBatch {
                        events: batch.events,
                        state,
                    }));
                }
                Phase::StartStream(position) => {
                    if let Some(backoff) = &mut self.backoff {
                        tokio::time::sleep(backoff.next_delay()?).await;
                    }
                    match BinlogReader::start(
                        &self.opts,
                        self.config.server_id,
                        position,
                        self.by_gtid,
                        self.info.mariadb,
                        self.schemas.clone(),
                        &self.config.table_pairs(),
                        self.info.full_metadata,
                        &self.config.name,
                        self.config.max_batch_events,
                        self.config.max_transaction_events,
                    )
                    .await
                    {
                        Ok(reader) => {
                            self.phase = Phase::Stream(Box::new(reader));
                            self.stream_since = Some(std::time::Instant::now());
                        }
                        Err(e) => self.lost(e)?,
                    }
                }
                Phase::Stream(reader) => {
                    let txns = match reader.poll(wait).await {
                        Ok(t) => t,
                        Err(e) => {
                            // Resume after the last transaction handed out; a transaction
                            // received in part is dropped with the reader and read again.
                            let from = reader.resume_position().clone();
                            let partial = reader.partial_events();
                            self.schemas = reader.schemas().clone();
                            self.rows_decoded_before += reader.rows_decoded;
                            self.phase = Phase::StartStream(from.clone());
                            self.lost(e)?;
                            self.reconnects += 1;
                            self.partial_dropped += partial as u64;
                            tracing::warn!(
                                file = %from.file,
                                pos = from.pos,
                                partial_events_dropped = partial,
                                "binlog connection lost; reconnecting"
                            );
                            continue;
                        }
                    };
                    let up_for = self.stream_since.map(|t| t.elapsed()).unwrap_or_default();
                    if reconnect::works_again(!txns.is_empty(), up_for) {
                        self.backoff = None;
                    }
                    let state = txns.last().map(|t| CdcState {
                        position: t.position.clone(),
                        snapshot_done: true,
                    });
                    let events = txns.into_iter().flat_map(|t| t.events).collect();
                    return Ok(Some(CdcBatch { events, state }));
                }
            }
        }
    }

    /// Decides after a failed binlog connection: `Ok` to retry (backoff started or continued),
    /// or the error to return (not a connection problem, reconnecting disabled).
    fn lost(&mut self, e: ConnectorError) -> Result<()> {
        if !reconnect::worth_retrying(&e) || self.config.reconnect_timeout_secs == 0 {
            return Err(e);
        }
        match &mut self.backoff {
            Some(b) => b.failed(&e),
            None => {
                let limit = Duration::from_secs(self.config.reconnect_timeout_secs);
                self.backoff = Some(reconnect::Backoff::new(limit, &e));
            }
        }
        Ok(())
    }

    /// Events of partially received transactions dropped at reconnects (read again whole).
    pub fn partial_events_dropped(&self) -> u64 {
        self.partial_dropped
    }

    /// Times the binlog connection was lost and a new one started (at the last transaction
    /// end handed out).
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Saves the state of a delivered batch (atomically).
    pub fn commit(&self, state: &CdcState) -> Result<()> {
        self.state_file.save(state)
    }

    /// Counters of this run's snapshot: rows read from the server, and the most rows the
    /// source held at once (`None`: no snapshot was taken).
    pub fn snapshot_progress(&self) -> Option<&snapshot::SnapshotProgress> {
        self.snapshot_progress.as_deref()
    }

    /// Rows events decoded from the binlog so far (across reconnects).
    pub fn rows_decoded(&self) -> u64 {
        self.rows_decoded_before
            + match &self.phase {
                Phase::Stream(r) => r.rows_decoded,
                Phase::Files(r) => r.rows_decoded(),
                _ => 0,
            }
    }
}
