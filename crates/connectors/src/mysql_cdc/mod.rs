//! # MySQL / MariaDB CDC: the binlog read as a replica
//!
//! Why it exists: to turn every committed row change of selected tables into a
//! Debezium-compatible change event (JSON for Kafka, Arrow for in-process use) without a
//! Debezium / Kafka Connect deployment.
//!
//! Flow: [`MysqlCdcSource::open`] validates the config, connects, checks privileges and binlog
//! settings ([`checks`]), loads the tables' schemas ([`schema`]) and reads the state file
//! ([`position`]). [`MysqlCdcSource::next_batch`] then yields, in order: the initial snapshot
//! (`op=r`, [`snapshot`]) unless the mode or the state says otherwise, then committed
//! transactions from the binlog ([`stream`]), each batch with the state to save **after** the
//! batch was delivered ([`MysqlCdcSource::commit`]). [`sink`] is the Kafka driver; [`resume`]
//! makes it exactly-once across a crash between the broker's acknowledgement and the save.
//!
//! Invariants: a batch never ends inside a transaction; the saved position is always the end
//! of a transaction whose events were all delivered, so a restart re-reads from there — no loss,
//! no duplicate (at-least-once becomes exactly-once per event as long as the consumer of a
//! batch finishes before [`MysqlCdcSource::commit`]). An interrupted snapshot is redone.
//!
//! How it fails: config, privilege and server-setting problems at `open` with the fix in the
//! message; lost connections as retryable [`ConnectorError::MysqlQuery`]; a value with no
//! faithful mapping as [`ConnectorError::MysqlDecode`] naming table, column and position.

pub mod checks;
pub mod config;
pub mod debezium;
pub mod decode;
pub mod position;
pub mod resume;
pub mod schema;
pub mod sink;
pub mod snapshot;
pub mod stream;

use std::collections::VecDeque;
use std::time::Duration;

use mysql_async::Opts;

pub use checks::ServerInfo;
pub use config::{MysqlCdcConfig, SnapshotMode};
pub use debezium::{ChangeEvent, Op, to_batch};
pub use position::{CdcState, Position, StateFile};
pub use stream::BinlogReader;

use crate::error::Result;

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
        events: VecDeque<ChangeEvent>,
        position: Position,
    },
    Stream(Box<BinlogReader>),
    StartStream(Position),
    Done,
}

/// The CDC source.
pub struct MysqlCdcSource {
    config: MysqlCdcConfig,
    opts: Opts,
    info: ServerInfo,
    state_file: StateFile,
    schemas: schema::Schemas,
    phase: Phase,
    duplicate_retries: u32,
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
    /// end of the binlog).
    pub async fn open(config: MysqlCdcConfig) -> Result<Self> {
        let (mut conn, info) = checks::connect_and_check(&config).await?;
        let opts = checks::opts(&config)?;
        let tables = config.table_pairs();
        let mut schemas = schema::Schemas::new();
        for (db, table) in &tables {
            let s = schema::load_table(&mut conn, db, table).await?;
            schemas.insert((db.clone(), table.clone()), s);
        }
        let state_file = StateFile::new(&config.state_file);
        let saved = state_file.load()?;
        let phase = match (saved, config.snapshot_mode) {
            (Some(s), SnapshotMode::InitialOnly) if s.snapshot_done => Phase::Done,
            (Some(s), _) if s.snapshot_done => Phase::StartStream(s.position),
            (_, SnapshotMode::Never) => {
                let position = snapshot::begin(&mut conn).await?;
                checks_close(&mut conn).await?;
                Phase::StartStream(position)
            }
            _ => {
                let position = snapshot::begin(&mut conn).await?;
                let events =
                    snapshot::read_tables(&mut conn, &schemas, &tables, &position, &config.name)
                        .await?;
                Phase::Snapshot {
                    events: events.into(),
                    position,
                }
            }
        };
        let _ = conn.disconnect().await;
        Ok(MysqlCdcSource {
            config,
            opts,
            info,
            state_file,
            schemas,
            phase,
            duplicate_retries: 0,
        })
    }

    /// What the start-up checks found (warnings to log).
    pub fn server_info(&self) -> &ServerInfo {
        &self.info
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
            Phase::Done => None,
        }
    }

    /// The next batch: snapshot rows first, then committed transactions, waiting up to `wait`
    /// for binlog events. `None` when the source is finished (`initial_only`).
    pub async fn next_batch(&mut self, wait: Duration) -> Result<Option<CdcBatch>> {
        loop {
            match &mut self.phase {
                Phase::Done => return Ok(None),
                Phase::Snapshot { events, position } => {
                    let n = events.len().min(self.config.max_batch_events);
                    let batch: Vec<ChangeEvent> = events.drain(..n).collect();
                    let state = events.is_empty().then(|| CdcState {
                        position: position.clone(),
                        snapshot_done: true,
                    });
                    if events.is_empty() {
                        self.phase = if self.config.snapshot_mode == SnapshotMode::InitialOnly {
                            Phase::Done
                        } else {
                            Phase::StartStream(position.clone())
                        };
                    }
                    return Ok(Some(CdcBatch {
                        events: batch,
                        state,
                    }));
                }
                Phase::StartStream(position) => {
                    let reader = BinlogReader::start(
                        &self.opts,
                        self.config.server_id,
                        position,
                        self.schemas.clone(),
                        &self.config.table_pairs(),
                        self.info.full_metadata,
                        &self.config.name,
                        self.config.max_batch_events,
                    )
                    .await?;
                    self.phase = Phase::Stream(Box::new(reader));
                }
                Phase::Stream(reader) => {
                    let txns = match reader.poll(wait).await {
                        Ok(t) => t,
                        Err(e)
                            if reader.refused_as_duplicate(&e) && self.duplicate_retries < 40 =>
                        {
                            // The previous run's dump connection is still registered: wait
                            // for the server to drop it, then start again at the same place.
                            self.duplicate_retries += 1;
                            let start = reader.start_position().clone();
                            tokio::time::sleep(Duration::from_millis(250)).await;
                            self.phase = Phase::StartStream(start);
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
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

    /// Saves the state of a delivered batch (atomically).
    pub fn commit(&self, state: &CdcState) -> Result<()> {
        self.state_file.save(state)
    }

    /// Rows events decoded from the binlog so far.
    pub fn rows_decoded(&self) -> u64 {
        match &self.phase {
            Phase::Stream(r) => r.rows_decoded,
            _ => 0,
        }
    }
}

async fn checks_close(conn: &mut mysql_async::Conn) -> Result<()> {
    use mysql_async::prelude::Queryable;
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| checks::query_error("closing the position transaction", e))
}
