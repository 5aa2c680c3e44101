//! The full load: one exported snapshot, many readers, chunks retried inside the snapshot.
//!
//! 1. A coordinator session runs `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY` and, as the
//!    transaction's first statement, `SELECT pg_export_snapshot()` with `statement_timestamp()`
//!    (recorded as the snapshot time: the snapshot is taken at the start of that statement).
//!    Still inside that transaction it resolves every table in the catalog, checks the `SELECT`
//!    privilege with a `LIMIT 0` probe (which also takes the `ACCESS SHARE` lock that keeps
//!    `ALTER TABLE` / `VACUUM FULL` away until the load ends) and plans the chunks. It stays open
//!    until every reader is done, so that a retried chunk can import the snapshot again.
//! 2. `parallelism` readers each `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION
//!    SNAPSHOT '…'` and take chunks from a shared queue; every reader sees exactly the
//!    coordinator's data, whatever is committed meanwhile.
//! 3. A chunk is `COPY (SELECT … WHERE <range>) TO STDOUT (FORMAT binary)`: a range of a single
//!    integer primary key (`BETWEEN lo AND hi`, ordered by the key), or a range of heap pages
//!    (`ctid >= '(a,0)' AND ctid < '(b,0)'`) for tables without one (or with a composite /
//!    non-integer key). Readers run with `synchronize_seqscans = off` and no parallel query, so a
//!    chunk read twice in the same snapshot yields the same rows in the same order.
//! 4. A chunk is emitted as parts of at most `part_rows` rows. A chunk that fails with a
//!    transient error (lost connection, server shutdown) is read again from its start on a new
//!    connection importing the same snapshot, after an exponential backoff, at most `max_retries`
//!    times; its parts are emitted again with the same numbers and the same content, so a
//!    create-only sink recognises them. Non-transient errors (privileges, bad values) stop the
//!    load at once.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_postgres::Client;

use super::client::Endpoint;
use super::config::{PgSourceConfig, PgTableConfig};
use super::copy::CopyDecoder;
use super::incremental::{WatermarkEntry, WatermarkState};
use super::types::{
    CATALOG_QUERY, CatalogRow, PgColumn, column_from_catalog, quote_ident, quote_literal, schema_of,
};
use crate::error::{ConnectorError, Result};

/// An error from a part consumer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The snapshot every reader shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The exported snapshot id (valid only while the load runs).
    pub id: String,
    /// When it was taken, RFC 3339 UTC with microseconds (`2026-11-24T21:30:00.123456Z`).
    pub time: String,
    /// Its UTC date (`YYYY-MM-DD`), the default bronze date.
    pub date: String,
    /// A compact form for object names (`20261124T213000123456Z`).
    pub stamp: String,
    /// The database read.
    pub database: String,
    /// The role that read it.
    pub user: String,
}

/// Which rows of a table a chunk holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkRange {
    /// The whole table.
    All,
    /// `key BETWEEN lo AND hi` of a single integer primary key.
    Key {
        /// Lowest key.
        lo: i64,
        /// Highest key.
        hi: i64,
    },
    /// Heap pages `[from, to)` (`to` open for the last chunk).
    Pages {
        /// First page.
        from: u64,
        /// First page after the chunk, `None` for the last chunk.
        to: Option<u64>,
    },
}

/// How a table is read: columns, filter, ordering, chunks.
#[derive(Debug, Clone)]
pub struct TablePlan {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// The columns read, in order.
    pub columns: Vec<PgColumn>,
    /// Their Arrow schema.
    pub arrow_schema: SchemaRef,
    /// The single integer primary key used for ranges, if any.
    pub key: Option<String>,
    /// Conditions every chunk has (the `where` of the config, the incremental bound).
    pub conditions: Vec<String>,
    /// The chunks.
    pub chunks: Vec<ChunkRange>,
    /// `full` or `incremental`.
    pub mode: &'static str,
    /// Incremental: (column, previous max, new max).
    pub watermark: Option<(String, Option<String>, String)>,
}

impl TablePlan {
    /// `schema.table`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// A chunk's label: `k<lo>_<hi>`, `pg<from>_<to|end>` or `all`.
    pub fn chunk_label(range: &ChunkRange) -> String {
        match range {
            ChunkRange::All => "all".into(),
            ChunkRange::Key { lo, hi } => format!("k{lo}_{hi}"),
            ChunkRange::Pages { from, to } => match to {
                Some(to) => format!("pg{from}_{to}"),
                None => format!("pg{from}_end"),
            },
        }
    }

    /// The `COPY` statement of a chunk.
    pub fn copy_sql(&self, range: &ChunkRange) -> String {
        let select: Vec<String> = self.columns.iter().map(PgColumn::select_expr).collect();
        let mut conds = self.conditions.clone();
        match range {
            ChunkRange::All => {}
            ChunkRange::Key { lo, hi } => {
                if let Some(k) = &self.key {
                    conds.push(format!("{} BETWEEN {lo} AND {hi}", quote_ident(k)));
                }
            }
            ChunkRange::Pages { from, to } => {
                conds.push(format!("ctid >= '({from},0)'::tid"));
                if let Some(to) = to {
                    conds.push(format!("ctid < '({to},0)'::tid"));
                }
            }
        }
        let mut sql = format!(
            "COPY (SELECT {} FROM {}.{}",
            select.join(", "),
            quote_ident(&self.schema),
            quote_ident(&self.name)
        );
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        if let Some(k) = &self.key {
            sql.push_str(" ORDER BY ");
            sql.push_str(&quote_ident(k));
        }
        sql.push_str(") TO STDOUT (FORMAT binary)");
        sql
    }
}

/// Rows of one chunk, at most `part_rows` of them: the unit a sink writes (one bronze object).
#[derive(Debug, Clone)]
pub struct LoadedPart {
    /// The table's plan (schema, columns, mode).
    pub table: Arc<TablePlan>,
    /// The snapshot.
    pub snapshot: Arc<SnapshotInfo>,
    /// Chunk number within the table.
    pub chunk: usize,
    /// Chunk label (`k1_1000`, `pg0_128`, `all`).
    pub chunk_label: String,
    /// Part number within the chunk (from 0).
    pub part: u32,
    /// Attempt that produced it (0 = first).
    pub attempt: u32,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Their count.
    pub rows: usize,
}

impl LoadedPart {
    /// A name unique to this snapshot, table chunk and part, and the same for a retried chunk:
    /// `full-20261124T213000123456Z-c00003-k2001_3000-p00000`.
    pub fn object_stem(&self) -> String {
        format!(
            "{}-{}-c{:05}-{}-p{:05}",
            self.table.mode, self.snapshot.stamp, self.chunk, self.chunk_label, self.part
        )
    }

    /// The bronze source: `postgres.<db>.<table>` for `public`, else `postgres.<db>.<schema>.<table>`
    /// (characters other than letters, digits, `_` and `-` become `_`).
    pub fn source_name(&self) -> String {
        bronze_source_name(
            &self.snapshot.database,
            &self.table.schema,
            &self.table.name,
        )
    }

    /// Key-value metadata for the object: snapshot time, table, chunk, mode, watermarks.
    pub fn metadata(&self) -> Vec<(String, String)> {
        let mut m = vec![
            (
                "strata.snapshot_time".to_string(),
                self.snapshot.time.clone(),
            ),
            ("strata.source.kind".into(), "postgres".into()),
            ("strata.pg.database".into(), self.snapshot.database.clone()),
            ("strata.pg.table".into(), self.table.qualified()),
            ("strata.pg.chunk".into(), self.chunk_label.clone()),
            ("strata.pg.part".into(), self.part.to_string()),
            ("strata.pg.mode".into(), self.table.mode.to_string()),
        ];
        if let Some((column, from, to)) = &self.table.watermark {
            m.push(("strata.pg.watermark_column".into(), column.clone()));
            m.push((
                "strata.pg.watermark_from".into(),
                from.clone().unwrap_or_default(),
            ));
            m.push(("strata.pg.watermark_to".into(), to.clone()));
        }
        m
    }
}

/// Progress of a running load.
#[derive(Debug, Clone)]
pub struct Progress {
    /// Rows decoded so far (rows of failed attempts are taken back).
    pub rows: u64,
    /// Time since the readers started.
    pub elapsed: Duration,
    /// Rows per second so far.
    pub rows_per_sec: f64,
    /// Chunks finished.
    pub chunks_done: usize,
    /// Chunks planned.
    pub chunks_total: usize,
    /// Chunk attempts retried so far.
    pub retries: u32,
}

/// What one table's load produced.
#[derive(Debug, Clone)]
pub struct TableReport {
    /// `schema.table`.
    pub table: String,
    /// Rows read.
    pub rows: u64,
    /// Chunks planned.
    pub chunks: usize,
    /// Distinct parts emitted.
    pub parts: usize,
    /// Incremental: (previous max, new max).
    pub watermark: Option<(Option<String>, String)>,
}

/// What a load produced.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// Per table, in config order.
    pub tables: Vec<TableReport>,
    /// Rows in all tables.
    pub rows: u64,
    /// Wall time of the reading.
    pub elapsed: Duration,
    /// Chunk attempts retried.
    pub retries: u32,
    /// The state file written (incremental tables).
    pub state_file: Option<PathBuf>,
    /// The watermark state after this load, when incremental tables moved (stored in
    /// `state_file` unless [`PgLoader::with_state_writes`] turned that off); `None` for a dry run.
    pub new_state: Option<WatermarkState>,
}

/// Reads the configured tables from one consistent snapshot.
#[derive(Debug, Clone)]
pub struct PgLoader {
    config: Arc<PgSourceConfig>,
    endpoint: Arc<Endpoint>,
    dry_run: bool,
    write_state: bool,
}

struct Shared {
    queue: Mutex<VecDeque<(usize, usize)>>,
    rows: AtomicU64,
    chunks_done: AtomicUsize,
    retries: AtomicU32,
}

type Message = Result<LoadedPart>;

impl PgLoader {
    /// Validates the config and resolves the connection settings (no connection yet).
    pub fn new(config: PgSourceConfig) -> Result<Self> {
        config.validate()?;
        let endpoint = Endpoint::new(&config.connection)?;
        Ok(PgLoader {
            config: Arc::new(config),
            endpoint: Arc::new(endpoint),
            dry_run: false,
            write_state: true,
        })
    }

    /// Whether the load stores the new watermarks in the state file itself (the default), or
    /// only reports them in [`LoadReport::new_state`] for a committer that stores them once the
    /// parts are durable (a driver, whose sink writes after `on_part` returned).
    pub fn with_state_writes(mut self, write_state: bool) -> Self {
        self.write_state = write_state;
        self
    }

    /// A dry run reads and decodes everything but stores no incremental watermark, so the next
    /// real run reads the same rows (for checking access, types and speed).
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// The config.
    pub fn config(&self) -> &PgSourceConfig {
        &self.config
    }

    /// The resolved server, database and role.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Runs the load: every part goes to `on_part` (awaited one at a time, so a slow sink slows
    /// the readers down instead of filling memory); `progress` is called about 4 times a second
    /// and once at the end. The incremental state is written only after every part was accepted.
    pub async fn run<F, Fut>(
        &self,
        mut on_part: F,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<LoadReport>
    where
        F: FnMut(LoadedPart) -> Fut,
        Fut: Future<Output = std::result::Result<(), BoxError>>,
    {
        let config = &self.config;
        let coordinator = self
            .endpoint
            .connect(&format!("{}-coordinator", self.endpoint.application_prefix))
            .await?;
        let snapshot = Arc::new(self.export_snapshot(&coordinator).await?);
        let state_path = config.state_file.clone();
        let has_incremental = config.tables.iter().any(|t| t.incremental.is_some());
        let mut state = match (&state_path, has_incremental) {
            (Some(p), true) => Some(WatermarkState::load(p)?),
            _ => None,
        };
        let mut plans = Vec::with_capacity(config.tables.len());
        for t in &config.tables {
            let last = match (&state, &t.incremental) {
                (Some(s), Some(inc)) => match s.tables.get(&t.qualified()) {
                    Some(entry) if entry.column == inc.column => Some(entry.last.clone()),
                    Some(entry) => {
                        return Err(ConnectorError::PgState {
                            file: state_path
                                .as_ref()
                                .map(|p| p.display().to_string())
                                .unwrap_or_default(),
                            message: format!(
                                "`{}` was read by watermark `{}`, the config now says `{}`",
                                t.qualified(),
                                entry.column,
                                inc.column
                            ),
                            hint: "remove the table's entry from the state file to read it all again",
                        });
                    }
                    None => None,
                },
                _ => None,
            };
            plans.push(Arc::new(self.plan_table(&coordinator, t, last).await?));
        }

        let shared = Arc::new(Shared {
            queue: Mutex::new(
                plans
                    .iter()
                    .enumerate()
                    .flat_map(|(t, p)| (0..p.chunks.len()).map(move |c| (t, c)))
                    .collect(),
            ),
            rows: AtomicU64::new(0),
            chunks_done: AtomicUsize::new(0),
            retries: AtomicU32::new(0),
        });
        let chunks_total: usize = plans.iter().map(|p| p.chunks.len()).sum();
        let readers = config.parallelism.min(chunks_total.max(1));
        let (tx, mut rx) = mpsc::channel::<Message>(readers);
        let plans_shared: Arc<Vec<Arc<TablePlan>>> = Arc::new(plans.clone());
        let start = Instant::now();
        let mut workers = JoinSet::new();
        if chunks_total > 0 {
            for w in 0..readers {
                let worker = Worker {
                    id: w,
                    endpoint: self.endpoint.clone(),
                    config: self.config.clone(),
                    snapshot: snapshot.clone(),
                    plans: plans_shared.clone(),
                    shared: shared.clone(),
                    tx: tx.clone(),
                };
                workers.spawn(worker.run());
            }
        }
        drop(tx);

        let report_progress = |shared: &Shared| {
            let rows = shared.rows.load(Ordering::Relaxed);
            let elapsed = start.elapsed();
            progress(&Progress {
                rows,
                elapsed,
                rows_per_sec: rows as f64 / elapsed.as_secs_f64().max(1e-6),
                chunks_done: shared.chunks_done.load(Ordering::Relaxed),
                chunks_total,
                retries: shared.retries.load(Ordering::Relaxed),
            });
        };
        // Distinct parts by (table, chunk, part): a retried chunk re-emits the same parts.
        let mut parts: BTreeMap<(usize, usize, u32), usize> = BTreeMap::new();
        let index_of: BTreeMap<String, usize> = plans
            .iter()
            .enumerate()
            .map(|(i, p)| (p.qualified(), i))
            .collect();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    Some(Ok(part)) => {
                        let t = index_of.get(&part.table.qualified()).copied().unwrap_or(0);
                        let key = (t, part.chunk, part.part);
                        let (table, chunk, number, rows) =
                            (part.table.qualified(), part.chunk_label.clone(), part.part, part.rows);
                        on_part(part).await.map_err(|e| ConnectorError::Sink {
                            table,
                            chunk,
                            part: number,
                            message: e.to_string(),
                        })?;
                        parts.insert(key, rows);
                    }
                    Some(Err(e)) => return Err(e),
                    None => break,
                },
                _ = tick.tick() => report_progress(&shared),
            }
        }
        while let Some(joined) = workers.join_next().await {
            joined.map_err(|e| ConnectorError::Internal(format!("a reader task failed: {e}")))?;
        }
        report_progress(&shared);
        let elapsed = start.elapsed();
        let done = shared.chunks_done.load(Ordering::Relaxed);
        if done != chunks_total {
            return Err(ConnectorError::Internal(format!(
                "{done} of {chunks_total} chunks finished without an error"
            )));
        }

        let mut tables = Vec::with_capacity(plans.len());
        for (i, p) in plans.iter().enumerate() {
            let rows: usize = parts.range((i, 0, 0)..(i + 1, 0, 0)).map(|(_, r)| r).sum();
            let count = parts.range((i, 0, 0)..(i + 1, 0, 0)).count();
            tables.push(TableReport {
                table: p.qualified(),
                rows: rows as u64,
                chunks: p.chunks.len(),
                parts: count,
                watermark: p
                    .watermark
                    .as_ref()
                    .map(|(_, from, to)| (from.clone(), to.clone())),
            });
        }
        let (mut state_file, mut new_state) = (None, None);
        if let (Some(state), Some(path)) = (state.as_mut(), &state_path) {
            let mut changed = false;
            for p in &plans {
                if let Some((column, from, to)) = &p.watermark
                    && from.as_deref() != Some(to.as_str())
                {
                    state.tables.insert(
                        p.qualified(),
                        WatermarkEntry {
                            column: column.clone(),
                            last: to.clone(),
                            snapshot_time: snapshot.time.clone(),
                        },
                    );
                    changed = true;
                }
            }
            if changed && !self.dry_run {
                if self.write_state {
                    state.store(path)?;
                    state_file = Some(path.clone());
                }
                new_state = Some(state.clone());
            }
        }
        // The exported snapshot may go now.
        let _ = coordinator.batch_execute("COMMIT").await;
        Ok(LoadReport {
            snapshot: (*snapshot).clone(),
            rows: tables.iter().map(|t| t.rows).sum(),
            tables,
            elapsed,
            retries: shared.retries.load(Ordering::Relaxed),
            state_file,
            new_state,
        })
    }

    async fn export_snapshot(&self, client: &Client) -> Result<SnapshotInfo> {
        let err = |e: tokio_postgres::Error| ConnectorError::PgSnapshot {
            message: super::client::error_text(&e),
            hint: "pg_export_snapshot needs PostgreSQL ≥ 9.2 and a primary or a hot standby".into(),
        };
        client
            .batch_execute(SESSION_SETUP)
            .await
            .map_err(|e| self.endpoint.connect_error(&e))?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(err)?;
        let row = client
            .query_one(
                "SELECT pg_export_snapshot(), \
                 to_char(s, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
                 to_char(s, 'YYYY-MM-DD'), \
                 to_char(s, 'YYYYMMDD\"T\"HH24MISSUS\"Z\"'), \
                 current_database()::text, current_user::text \
                 FROM (SELECT statement_timestamp() AT TIME ZONE 'UTC' AS s) AS t",
                &[],
            )
            .await
            .map_err(err)?;
        Ok(SnapshotInfo {
            id: row.get(0),
            time: row.get(1),
            date: row.get(2),
            stamp: row.get(3),
            database: row.get(4),
            user: row.get(5),
        })
    }

    /// Resolves a table in the catalog, checks the privilege and plans its chunks — all inside
    /// the coordinator's snapshot.
    async fn plan_table(
        &self,
        client: &Client,
        t: &PgTableConfig,
        last_watermark: Option<String>,
    ) -> Result<TablePlan> {
        let qualified = t.qualified();
        let q = |e: tokio_postgres::Error| self.endpoint.query_error(&e, &qualified, "planning");
        let rel = client
            .query_opt(
                "SELECT c.oid, c.relkind::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&t.schema, &t.name],
            )
            .await
            .map_err(q)?;
        let Some(rel) = rel else {
            return Err(ConnectorError::PgTableNotFound {
                database: self.endpoint.database.clone(),
                table: qualified.clone(),
                hint: "check `schema` and `name` in the config (names are case-sensitive, as in pg_class)"
                    .into(),
            });
        };
        let oid: u32 = rel.get(0);
        let relkind: String = rel.get(1);
        if !matches!(relkind.as_str(), "r" | "p" | "v" | "m" | "f") {
            return Err(ConnectorError::PgColumn {
                table: qualified.clone(),
                column: String::new(),
                problem: format!("is a relation of kind `{relkind}`, not a table or view"),
                hint: "list tables, partitioned tables, views, materialized views or foreign tables",
            });
        }
        let catalog: Vec<CatalogRow> = client
            .query(CATALOG_QUERY, &[&oid])
            .await
            .map_err(q)?
            .iter()
            .map(|r| CatalogRow {
                name: r.get(0),
                not_null: r.get(1),
                typmod: r.get(2),
                type_name: r.get(3),
                builtin: r.get(4),
                elem_name: r.get(5),
                elem_builtin: r.get(6),
                declared: r.get(7),
            })
            .collect();
        let find = |name: &str, what: &str| -> Result<&CatalogRow> {
            catalog
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| ConnectorError::PgColumn {
                    table: qualified.clone(),
                    column: name.to_string(),
                    problem: format!("(in `{what}`) does not exist"),
                    hint: "column names are case-sensitive, as in the catalog",
                })
        };
        for c in &t.text_columns {
            find(c, "text_columns")?;
        }
        let selected: Vec<&CatalogRow> = match &t.columns {
            Some(names) => names
                .iter()
                .map(|n| find(n, "columns"))
                .collect::<Result<Vec<_>>>()?,
            None => catalog.iter().collect(),
        };
        if selected.is_empty() {
            return Err(ConnectorError::PgColumn {
                table: qualified.clone(),
                column: String::new(),
                problem: "has no columns".into(),
                hint: "a table without columns cannot be loaded",
            });
        }
        let columns: Vec<PgColumn> = selected
            .iter()
            .map(|r| {
                column_from_catalog(r, t.text_columns.contains(&r.name), t.numeric_unconstrained)
            })
            .collect();
        let table_sql = format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name));

        let mut conditions = Vec::new();
        if let Some(f) = &t.filter {
            conditions.push(format!("({f})"));
        }
        // The privilege probe (and the ACCESS SHARE lock held until the load ends).
        let select: Vec<String> = columns.iter().map(PgColumn::select_expr).collect();
        let probe = format!(
            "SELECT {} FROM {table_sql}{} LIMIT 0",
            select.join(", "),
            if conditions.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conditions.join(" AND "))
            }
        );
        client.batch_execute(&probe).await.map_err(q)?;

        let mut watermark = None;
        if let Some(inc) = &t.incremental {
            let col = find(&inc.column, "incremental.column")?;
            let wm = quote_ident(&inc.column);
            if let Some(last) = &last_watermark {
                conditions.push(format!("{wm} > {}::{}", quote_literal(last), col.declared));
            }
            let sql = format!(
                "SELECT max({wm})::text FROM {table_sql}{}",
                if conditions.is_empty() {
                    String::new()
                } else {
                    format!(" WHERE {}", conditions.join(" AND "))
                }
            );
            let max: Option<String> = client.query_one(sql.as_str(), &[]).await.map_err(q)?.get(0);
            match max {
                Some(new) => watermark = Some((inc.column.clone(), last_watermark.clone(), new)),
                None => {
                    // Nothing newer: no chunk to read, the watermark stays.
                    let watermark = last_watermark
                        .clone()
                        .map(|last| (inc.column.clone(), last_watermark.clone(), last));
                    return Ok(TablePlan {
                        schema: t.schema.clone(),
                        name: t.name.clone(),
                        arrow_schema: schema_of(&columns),
                        columns,
                        key: None,
                        conditions,
                        chunks: Vec::new(),
                        mode: "incremental",
                        watermark,
                    });
                }
            }
        }

        // Chunking: a single integer primary key gives key ranges, else heap pages.
        let pk: Vec<(String, String)> = client
            .query(
                "SELECT a.attname::text, t.typname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 JOIN pg_type t ON t.oid = a.atttypid \
                 WHERE i.indrelid = $1 AND i.indisprimary",
                &[&oid],
            )
            .await
            .map_err(q)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let n = self.config.chunks_of(t);
        let where_sql = |conds: &[String]| {
            if conds.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", conds.join(" AND "))
            }
        };
        let (key, chunks) = match pk.as_slice() {
            [(name, ty)] if matches!(ty.as_str(), "int2" | "int4" | "int8") => {
                let k = quote_ident(name);
                let row = client
                    .query_one(
                        format!(
                            "SELECT min({k})::int8, max({k})::int8 FROM {table_sql}{}",
                            where_sql(&conditions)
                        )
                        .as_str(),
                        &[],
                    )
                    .await
                    .map_err(q)?;
                let (lo, hi): (Option<i64>, Option<i64>) = (row.get(0), row.get(1));
                let chunks = match (lo, hi) {
                    (Some(lo), Some(hi)) => key_ranges(lo, hi, n),
                    _ => vec![ChunkRange::All],
                };
                (Some(name.clone()), chunks)
            }
            _ if matches!(relkind.as_str(), "r" | "m") => {
                let pages: i64 = client
                    .query_one(
                        "SELECT (pg_relation_size($1::oid::regclass) / \
                         current_setting('block_size')::int8)::int8",
                        &[&oid],
                    )
                    .await
                    .map_err(q)?
                    .get(0);
                (None, page_ranges(pages.max(0) as u64, n))
            }
            _ => (None, vec![ChunkRange::All]),
        };
        Ok(TablePlan {
            schema: t.schema.clone(),
            name: t.name.clone(),
            arrow_schema: schema_of(&columns),
            columns,
            key,
            conditions,
            chunks,
            mode: if watermark.is_some() {
                "incremental"
            } else {
                "full"
            },
            watermark,
        })
    }
}

/// Session settings of every connection: stable text forms; a deterministic row order for a
/// chunk read twice (no synchronized scans, no parallel query); and, as pg_dump does, no
/// statement / idle-in-transaction timeout — the coordinator sits idle in its transaction for
/// the whole load and must not be ended while readers may still need its snapshot.
const SESSION_SETUP: &str = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; \
     SET extra_float_digits = 3; SET synchronize_seqscans = off; \
     SET max_parallel_workers_per_gather = 0; SET statement_timeout = 0; \
     SET idle_in_transaction_session_timeout = 0";

/// `[lo, hi]` split into at most `n` contiguous inclusive ranges.
pub fn key_ranges(lo: i64, hi: i64, n: usize) -> Vec<ChunkRange> {
    let span = hi as i128 - lo as i128 + 1;
    let n = (n.max(1) as i128).min(span.max(1));
    let step = (span + n - 1) / n;
    let mut out = Vec::new();
    let mut a = lo as i128;
    while a <= hi as i128 {
        let b = (a + step - 1).min(hi as i128);
        out.push(ChunkRange::Key {
            lo: a as i64,
            hi: b as i64,
        });
        a = b + 1;
    }
    out
}

/// `pages` heap pages split into at most `n` ranges; the last one is open-ended.
pub fn page_ranges(pages: u64, n: usize) -> Vec<ChunkRange> {
    if pages == 0 || n <= 1 {
        return vec![ChunkRange::All];
    }
    let n = (n as u64).min(pages);
    let step = pages.div_ceil(n);
    let mut out = Vec::new();
    let mut a = 0;
    while a < pages {
        let b = a + step;
        out.push(ChunkRange::Pages {
            from: a,
            to: if b >= pages { None } else { Some(b) },
        });
        a = b;
    }
    out
}

struct Worker {
    id: usize,
    endpoint: Arc<Endpoint>,
    config: Arc<PgSourceConfig>,
    snapshot: Arc<SnapshotInfo>,
    plans: Arc<Vec<Arc<TablePlan>>>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Message>,
}

enum ChunkEnd {
    Done,
    /// The consumer went away: stop quietly.
    Closed,
}

impl Worker {
    async fn run(self) {
        let mut client: Option<Client> = None;
        loop {
            let next = match self.shared.queue.lock() {
                Ok(mut q) => q.pop_front(),
                Err(_) => None,
            };
            let Some((t, c)) = next else { return };
            let plan = self.plans[t].clone();
            let mut attempt = 0u32;
            loop {
                let result = match client.take() {
                    Some(cl) => Ok(cl),
                    None => self.open().await,
                };
                let outcome = match result {
                    Ok(cl) => {
                        let r = self.read_chunk(&cl, &plan, c, attempt).await;
                        if r.is_ok() {
                            client = Some(cl);
                        }
                        r
                    }
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(ChunkEnd::Done) => {
                        self.shared.chunks_done.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Ok(ChunkEnd::Closed) => return,
                    Err(e) if e.is_retryable() && attempt < self.config.max_retries => {
                        attempt += 1;
                        self.shared.retries.fetch_add(1, Ordering::Relaxed);
                        let backoff = self
                            .config
                            .retry_backoff_ms
                            .saturating_mul(1 << (attempt - 1).min(10));
                        tokio::time::sleep(Duration::from_millis(backoff)).await;
                    }
                    Err(e) => {
                        let _ = self.tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        }
    }

    /// A new session inside the exported snapshot.
    async fn open(&self) -> Result<Client> {
        let client = self
            .endpoint
            .connect(&format!(
                "{}-reader-{}",
                self.endpoint.application_prefix, self.id
            ))
            .await?;
        client
            .batch_execute(SESSION_SETUP)
            .await
            .map_err(|e| self.endpoint.connect_error(&e))?;
        let import = format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(&self.snapshot.id)
        );
        client.batch_execute(&import).await.map_err(|e| {
            if e.is_closed() || super::client::retryable_code(e.code().map(|c| c.code())) {
                self.endpoint.connect_error(&e)
            } else {
                ConnectorError::PgSnapshot {
                    message: super::client::error_text(&e),
                    hint: format!(
                        "snapshot `{}` is gone: the coordinator session ended; run the load again",
                        self.snapshot.id
                    ),
                }
            }
        })?;
        Ok(client)
    }

    async fn read_chunk(
        &self,
        client: &Client,
        plan: &Arc<TablePlan>,
        chunk: usize,
        attempt: u32,
    ) -> Result<ChunkEnd> {
        let range = &plan.chunks[chunk];
        let label = TablePlan::chunk_label(range);
        let qualified = plan.qualified();
        let part_rows = self.config.part_rows.max(1);
        let batch_rows = self.config.batch_rows.min(part_rows).max(1);
        let mut decoder = CopyDecoder::new(&qualified, &plan.columns, batch_rows)?;
        let mut counted = 0u64;
        let result: Result<ChunkEnd> = async {
            let stream = client
                .copy_out(plan.copy_sql(range).as_str())
                .await
                .map_err(|e| self.endpoint.query_error(&e, &qualified, &label))?;
            futures::pin_mut!(stream);
            let mut part = 0u32;
            let mut batches: Vec<RecordBatch> = Vec::new();
            let mut rows = 0usize;
            let mut finished = false;
            while !finished {
                let ready = match stream.next().await {
                    Some(bytes) => {
                        let bytes =
                            bytes.map_err(|e| self.endpoint.query_error(&e, &qualified, &label))?;
                        decoder.push(&bytes)?;
                        decoder.take_ready()
                    }
                    None => {
                        finished = true;
                        let d = std::mem::replace(
                            &mut decoder,
                            CopyDecoder::new(&qualified, &plan.columns, batch_rows)?,
                        );
                        d.finish()?.into_iter().collect()
                    }
                };
                for b in ready {
                    rows += b.num_rows();
                    counted += b.num_rows() as u64;
                    self.shared
                        .rows
                        .fetch_add(b.num_rows() as u64, Ordering::Relaxed);
                    batches.push(b);
                    if rows >= part_rows {
                        if !self
                            .emit(plan, chunk, &label, part, attempt, &mut batches, &mut rows)
                            .await
                        {
                            return Ok(ChunkEnd::Closed);
                        }
                        part += 1;
                    }
                }
            }
            if rows > 0
                && !self
                    .emit(plan, chunk, &label, part, attempt, &mut batches, &mut rows)
                    .await
            {
                return Ok(ChunkEnd::Closed);
            }
            Ok(ChunkEnd::Done)
        }
        .await;
        if result.is_err() {
            self.shared.rows.fetch_sub(counted, Ordering::Relaxed);
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn emit(
        &self,
        plan: &Arc<TablePlan>,
        chunk: usize,
        label: &str,
        part: u32,
        attempt: u32,
        batches: &mut Vec<RecordBatch>,
        rows: &mut usize,
    ) -> bool {
        let out = LoadedPart {
            table: plan.clone(),
            snapshot: self.snapshot.clone(),
            chunk,
            chunk_label: label.to_string(),
            part,
            attempt,
            batches: std::mem::take(batches),
            rows: std::mem::take(rows),
        };
        self.tx.send(Ok(out)).await.is_ok()
    }
}

/// The bronze source of a PostgreSQL table: `postgres.<db>.<table>` for `public`, else
/// `postgres.<db>.<schema>.<table>` (characters other than letters, digits, `_` and `-` become
/// `_`).
pub fn bronze_source_name(database: &str, schema: &str, table: &str) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    if schema == "public" {
        format!("postgres.{}.{}", safe(database), safe(table))
    } else {
        format!(
            "postgres.{}.{}.{}",
            safe(database),
            safe(schema),
            safe(table)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_cover_exactly() {
        let r = key_ranges(1, 10, 3);
        assert_eq!(
            r,
            vec![
                ChunkRange::Key { lo: 1, hi: 4 },
                ChunkRange::Key { lo: 5, hi: 8 },
                ChunkRange::Key { lo: 9, hi: 10 }
            ]
        );
        assert_eq!(key_ranges(5, 5, 4), vec![ChunkRange::Key { lo: 5, hi: 5 }]);
        let extreme = key_ranges(i64::MIN, i64::MAX, 2);
        assert_eq!(extreme.len(), 2);
        assert_eq!(
            extreme[1],
            ChunkRange::Key {
                lo: 0,
                hi: i64::MAX
            }
        );
    }

    #[test]
    fn page_ranges_end_open() {
        assert_eq!(page_ranges(0, 3), vec![ChunkRange::All]);
        assert_eq!(
            page_ranges(10, 3),
            vec![
                ChunkRange::Pages {
                    from: 0,
                    to: Some(4)
                },
                ChunkRange::Pages {
                    from: 4,
                    to: Some(8)
                },
                ChunkRange::Pages { from: 8, to: None }
            ]
        );
        assert_eq!(page_ranges(2, 8).len(), 2);
    }
}
