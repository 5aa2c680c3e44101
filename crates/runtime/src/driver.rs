//! The one driver loop: source → pipeline → sink/committer, for streaming and batch alike.
//!
//! Three stages on their own tasks, joined by bounded channels (backpressure: a slow sink stops
//! the reader after `channel_depth` batches):
//!
//! ```text
//!  reader task            driver task                 sink task
//!  source.next() ──────►  pipeline.process()  ──────► sink.write / write_quarantine
//!                         commit policy       ──────► committer.commit(position, state)
//!  source.acknowledge() ◄─────────────────────────────  (after each commit)
//! ```
//!
//! Exactly once rests on three rules the loop keeps:
//! 1. before reading, the committed state is restored and the source seeks past the committed
//!    position — a restart resumes from the output, not from memory;
//! 2. a commit happens only where the source reported a position (a *boundary*: the end of a
//!    file, any Kafka batch), with the pipeline checkpoint taken right there, so the staged
//!    output, the position and the state describe the same point;
//! 3. on SIGTERM, idle stop or the end of input, what is staged up to the last boundary is
//!    committed; records read past it (the unfinished part of a file) are not, and are read
//!    again by the next run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use strata_core::{Output, Pipeline, PipelineMetrics};

use crate::transform::Transform;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::contract::{CommitReport, Committer, Polled, Sink, Source, StateUpdate};
use crate::error::{Result, RuntimeError};
use crate::hooks::{BatchStats, DriverHooks, NoHooks, RunInfo};
use crate::position::Position;

/// When staged output is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitPolicy {
    /// Commit once this many input records are staged (at the next boundary).
    pub max_rows: u64,
    /// Commit at least this often while data flows (at the next boundary).
    pub max_interval: Duration,
    /// Commit once this many units (files) are covered; 0: no bound by units.
    pub max_units: usize,
    /// Commit once the input batches staged since the last commit hold this many bytes (their
    /// Arrow memory): what a sink that holds its output until the commit may hold, whatever
    /// the record sizes. `u64::MAX`: no bound by bytes.
    pub max_bytes: u64,
}

impl CommitPolicy {
    /// One commit per input file (batch over bronze).
    pub fn per_file() -> Self {
        CommitPolicy {
            max_rows: u64::MAX,
            max_interval: Duration::MAX,
            max_units: 1,
            max_bytes: u64::MAX,
        }
    }

    /// One commit, at the end of input (a load that is one unit: only its last position
    /// counts).
    pub fn at_end() -> Self {
        CommitPolicy {
            max_rows: u64::MAX,
            max_interval: Duration::MAX,
            max_units: 0,
            max_bytes: u64::MAX,
        }
    }

    /// Commits every `interval` or `rows` input records, whichever comes first (streaming).
    pub fn every(interval: Duration, rows: u64) -> Self {
        CommitPolicy {
            max_rows: rows.max(1),
            max_interval: interval,
            max_units: 0,
            max_bytes: u64::MAX,
        }
    }

    /// Also commits once the staged input holds `bytes` bytes.
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes.max(1);
        self
    }
}

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct DriverOptions {
    /// When to commit.
    pub commit: CommitPolicy,
    /// Batches in flight between stages.
    pub channel_depth: usize,
    /// Stop (committing what is staged) after this long without new records.
    pub stop_when_idle: Option<Duration>,
    /// Test hook: abort the process right after this many commits (crash tests).
    pub crash_after_commits: Option<usize>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            commit: CommitPolicy::every(Duration::from_secs(5), 500_000),
            channel_depth: 4,
            stop_when_idle: None,
            crash_after_commits: None,
        }
    }
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The source ended.
    EndOfInput,
    /// Nothing arrived for `stop_when_idle`.
    Idle,
    /// The shutdown future resolved (SIGTERM, Ctrl-C).
    Shutdown,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Why it stopped.
    pub stopped: StopReason,
    /// Commits made.
    pub commits: u64,
    /// The last committed position.
    pub position: Option<Position>,
    /// Input records processed but not committed (read past the last boundary at a stop).
    pub uncommitted_rows: u64,
    /// The pipeline's counters.
    pub metrics: PipelineMetrics,
}

/// What the driver hands the sink task.
enum ToSink {
    Rows(RecordBatch),
    Quarantine(RecordBatch),
    Commit {
        position: Position,
        state: StateUpdate,
    },
    /// The run ended well: close the sink.
    Close,
}

/// Runs `source` → `pipeline` → `sink` until the input ends, the source is idle for long enough,
/// or `shutdown` resolves.
pub struct Driver<S, K, T = Pipeline> {
    source: S,
    pipeline: T,
    sink: K,
    options: DriverOptions,
    hooks: Arc<dyn DriverHooks>,
}

impl<S: Source, K: Sink + Committer, T: Transform> Driver<S, K, T> {
    /// A driver over these parts (the pipeline built against `source.schema()`; a
    /// [`crate::Passthrough`] for a copy).
    pub fn new(source: S, pipeline: T, sink: K, options: DriverOptions) -> Self {
        Driver {
            source,
            pipeline,
            sink,
            options,
            hooks: Arc::new(NoHooks),
        }
    }

    /// Attaches hooks (metrics, progress, lineage).
    pub fn with_hooks(mut self, hooks: Arc<dyn DriverHooks>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Runs to the end; `shutdown` resolving stops the run at the next batch.
    ///
    /// Everything the run logs is inside a `job` span (pipeline, source); what it logs while
    /// processing a batch is inside a `batch` span, and around a commit inside a `commit` span
    /// (with `--log-format json` each line lists them).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> Result<RunReport> {
        let hooks = self.hooks.clone();
        let job = tracing::info_span!(
            "job",
            pipeline = %self.pipeline.name(),
            source = %self.source.name()
        );
        let outcome = self.run_inner(shutdown).instrument(job.clone()).await;
        job.in_scope(|| hooks.on_end(outcome.as_ref()));
        outcome
    }

    async fn run_inner(self, shutdown: impl std::future::Future<Output = ()>) -> Result<RunReport> {
        let Driver {
            mut source,
            mut pipeline,
            mut sink,
            options,
            hooks,
        } = self;
        let committed = sink.committed().await?;
        let deltas = sink.accepts_state_deltas();
        // Sizes of the state chain: a full state is written again once the deltas after it
        // add up to its size, so commits cost what changed (amortised) and a restore reads at
        // most about twice the state.
        let (mut full_bytes, mut delta_bytes) = (0usize, 0usize);
        if let Some(state) = &committed.state {
            if deltas {
                pipeline.restore_chain(state, &committed.state_deltas)?;
                pipeline.start_deltas();
                full_bytes = state.len().max(1);
                delta_bytes = committed.state_deltas.iter().map(Vec::len).sum();
            } else {
                pipeline.restore(state)?;
            }
        }
        source.seek(committed.position.as_ref()).await?;
        hooks.on_start(&RunInfo {
            source: source.name(),
            pipeline: pipeline.name(),
            resumed: committed.position.is_some(),
            detail: source.describe(),
            units_left: source.units_left(),
        });
        let depth = options.channel_depth.max(1);
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Position>();
        let (read_tx, mut read_rx) = mpsc::channel::<Result<Polled>>(depth);
        // Spawned tasks do not inherit the span they are spawned in: pass the job's on.
        let reader = tokio::spawn(
            read(source, read_tx, ack_rx, hooks.clone()).instrument(tracing::Span::current()),
        );
        let (sink_tx, sink_rx) = mpsc::channel::<ToSink>(depth);
        let mut writer = tokio::spawn(
            write(
                sink,
                sink_rx,
                ack_tx,
                hooks.clone(),
                options.crash_after_commits,
            )
            .instrument(tracing::Span::current()),
        );
        let mut state = LoopState {
            pipeline: &mut pipeline,
            sink: &sink_tx,
            hooks: hooks.as_ref(),
            policy: options.commit,
            pending: None,
            at_boundary: true,
            staged_rows: 0,
            staged_bytes: 0,
            since_commit: Instant::now(),
            commits: 0,
            last_position: committed.position.clone(),
            deltas,
            full_bytes,
            delta_bytes,
        };
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_data = Instant::now();
        // Set when the sink task ended on its own: it failed (a commit refused, a write error),
        // and the run must stop now even if no more output would be sent to it.
        let mut sink_ended: Option<Result<()>> = None;
        let stopped = loop {
            let polled = tokio::select! {
                biased;
                _ = &mut shutdown => break Ok(StopReason::Shutdown),
                ended = &mut writer => {
                    sink_ended = Some(ended.map_err(|e| RuntimeError::Stage {
                        stage: "sink",
                        message: e.to_string(),
                    }).and_then(|r| r));
                    break Err(RuntimeError::Stage {
                        stage: "sink",
                        message: "it stopped before the run ended".into(),
                    });
                }
                polled = read_rx.recv() => polled,
            };
            let step = match polled {
                Some(Ok(p)) => p,
                Some(Err(e)) => break Err(e),
                None => {
                    break Err(RuntimeError::Stage {
                        stage: "source",
                        message: "the reader ended without saying why".into(),
                    });
                }
            };
            let result = match step {
                Polled::Batch { batch, position } => {
                    last_data = Instant::now();
                    let span = tracing::info_span!("batch", rows = batch.num_rows());
                    state.process(&batch, position).instrument(span).await
                }
                Polled::Reached(position) => {
                    state.reached(position);
                    Ok(())
                }
                Polled::Idle => {
                    if options
                        .stop_when_idle
                        .is_some_and(|idle| last_data.elapsed() >= idle)
                    {
                        break Ok(StopReason::Idle);
                    }
                    Ok(())
                }
                Polled::End => match state.pipeline.finish() {
                    Ok(out) => match state.stage(out).await {
                        Ok(()) => break Ok(StopReason::EndOfInput),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                break Err(e);
            }
            if let Err(e) = state.commit_if_due().await {
                break Err(e);
            }
        };
        reader.abort();
        let stopped = match stopped {
            Ok(reason) => {
                // Whatever is staged up to the last boundary is committed on every way out.
                let last = state.commit_now().await;
                last.map(|()| reason)
            }
            Err(e) => Err(e),
        };
        let (commits, last_position) = (state.commits, state.last_position.clone());
        let uncommitted = state.staged_rows;
        if stopped.is_ok() {
            // A failed send means the sink task failed: its error is read below.
            let _ = send_to(state.sink, ToSink::Close).await;
        }
        drop(state);
        drop(sink_tx);
        let written = match sink_ended {
            Some(ended) => ended,
            None => writer.await.map_err(|e| RuntimeError::Stage {
                stage: "sink",
                message: e.to_string(),
            })?,
        };
        // The sink's error is the cause when the driver stopped because the sink went away.
        written?;
        let stopped = stopped?;
        Ok(RunReport {
            stopped,
            commits,
            position: last_position,
            uncommitted_rows: uncommitted,
            metrics: pipeline.metrics(),
        })
    }
}

/// The oldest and newest `_kafka_timestamp` of a batch, when it has that column.
fn input_times(batch: &RecordBatch) -> Option<(i64, i64)> {
    let column = batch.column_by_name(strata_core::lineage::KAFKA_TIMESTAMP)?;
    let times = column.as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>()?;
    Some((arrow::compute::min(times)?, arrow::compute::max(times)?))
}

/// The driver task's bookkeeping between commits.
struct LoopState<'a> {
    pipeline: &'a mut dyn Transform,
    sink: &'a mpsc::Sender<ToSink>,
    hooks: &'a dyn DriverHooks,
    policy: CommitPolicy,
    /// The position staged output covers, merged since the last commit.
    pending: Option<Position>,
    /// True when everything staged ends exactly at `pending` (a commit may happen now).
    at_boundary: bool,
    /// Input records staged since the last commit.
    staged_rows: u64,
    /// Arrow memory of the input batches staged since the last commit.
    staged_bytes: u64,
    since_commit: Instant,
    commits: u64,
    last_position: Option<Position>,
    /// The committer keeps state deltas.
    deltas: bool,
    /// Size of the last full state committed (0: none yet in this chain).
    full_bytes: usize,
    /// Size of the deltas committed after it.
    delta_bytes: usize,
}

impl LoopState<'_> {
    async fn process(&mut self, batch: &RecordBatch, position: Option<Position>) -> Result<()> {
        let started = Instant::now();
        let out = self.pipeline.process(batch)?;
        let stats = BatchStats {
            rows_in: batch.num_rows() as u64,
            rows_out: out.num_rows() as u64,
            quarantined: out.quarantined.num_rows() as u64,
            elapsed: started.elapsed(),
            input_times: input_times(batch),
            steps: out.metrics.steps.clone(),
        };
        self.stage(out).await?;
        self.staged_rows += stats.rows_in;
        self.staged_bytes = self
            .staged_bytes
            .saturating_add(batch.get_array_memory_size() as u64);
        tracing::debug!(
            rows_in = stats.rows_in,
            rows_out = stats.rows_out,
            quarantined = stats.quarantined,
            elapsed_us = u64::try_from(stats.elapsed.as_micros()).unwrap_or(u64::MAX),
            "batch processed"
        );
        self.hooks.on_batch(&stats);
        match position {
            Some(p) => self.reached(p),
            None => self.at_boundary = false,
        }
        Ok(())
    }

    fn reached(&mut self, position: Position) {
        match &mut self.pending {
            Some(p) => p.advance(position),
            None => self.pending = Some(position),
        }
        self.at_boundary = true;
    }

    async fn stage(&mut self, out: Output) -> Result<()> {
        for rows in out.rows {
            if rows.num_rows() > 0 {
                send_to(self.sink, ToSink::Rows(rows)).await?;
            }
        }
        if out.quarantined.num_rows() > 0 {
            send_to(self.sink, ToSink::Quarantine(out.quarantined)).await?;
        }
        Ok(())
    }

    /// Commits when the policy says so and a commit may happen here.
    async fn commit_if_due(&mut self) -> Result<()> {
        let Some(pending) = &self.pending else {
            return Ok(());
        };
        if !self.at_boundary {
            return Ok(());
        }
        let due = self.since_commit.elapsed() >= self.policy.max_interval
            || self.staged_rows >= self.policy.max_rows
            || self.staged_bytes >= self.policy.max_bytes
            || (self.policy.max_units > 0 && pending.units() >= self.policy.max_units);
        if due { self.commit_now().await } else { Ok(()) }
    }

    /// The state to commit: a delta while the deltas since the last full state are smaller
    /// than it, else a new full state.
    fn checkpoint(&mut self) -> Result<StateUpdate> {
        if !self.deltas {
            return Ok(StateUpdate {
                bytes: self.pipeline.checkpoint()?,
                delta: false,
            });
        }
        let full = self.full_bytes == 0 || self.delta_bytes >= self.full_bytes;
        let bytes = self.pipeline.checkpoint_incremental(full)?;
        if full {
            (self.full_bytes, self.delta_bytes) = (bytes.len().max(1), 0);
        } else {
            self.delta_bytes = self.delta_bytes.saturating_add(bytes.len());
        }
        Ok(StateUpdate {
            bytes,
            delta: !full,
        })
    }

    /// Commits what is staged up to the last boundary, if anything.
    async fn commit_now(&mut self) -> Result<()> {
        if !self.at_boundary {
            return Ok(());
        }
        let Some(position) = self.pending.take() else {
            return Ok(());
        };
        let state = self.checkpoint()?;
        send_to(
            self.sink,
            ToSink::Commit {
                position: position.clone(),
                state,
            },
        )
        .await?;
        self.last_position = Some(position);
        self.commits += 1;
        self.staged_rows = 0;
        self.staged_bytes = 0;
        self.since_commit = Instant::now();
        Ok(())
    }
}

/// Hands `msg` to the sink task. Borrows only the channel, never the loop state (which holds
/// the pipeline, not `Sync`), so the driver's future is `Send` and can be spawned.
async fn send_to(sink: &mpsc::Sender<ToSink>, msg: ToSink) -> Result<()> {
    sink.send(msg).await.map_err(|_| RuntimeError::Stage {
        stage: "sink",
        message: "it stopped accepting output".into(),
    })
}

/// How often the reader reports the source's lag to the hooks.
const LAG_EVERY: Duration = Duration::from_secs(1);

/// The reader task: hands out what the source polls, tells it about commits in between, and
/// reports its lag to the hooks about once a second.
async fn read(
    mut source: impl Source,
    tx: mpsc::Sender<Result<Polled>>,
    mut acks: mpsc::UnboundedReceiver<Position>,
    hooks: Arc<dyn DriverHooks>,
) {
    let mut lag_reported: Option<Instant> = None;
    loop {
        while let Ok(committed) = acks.try_recv() {
            if let Err(e) = source.acknowledge(&committed).await {
                tracing::warn!("acknowledging a commit to the source: {e}");
            }
        }
        let polled = source.next().await;
        if lag_reported.is_none_or(|t| t.elapsed() >= LAG_EVERY)
            && let Some(lag) = source.lag()
        {
            hooks.on_source_lag(&lag);
            lag_reported = Some(Instant::now());
        }
        let last = matches!(polled, Ok(Polled::End) | Err(_));
        if tx.send(polled).await.is_err() || last {
            return;
        }
    }
}

/// The sink task: stages output and commits in the order the driver sent them.
async fn write(
    mut sink: impl Sink + Committer,
    mut rx: mpsc::Receiver<ToSink>,
    acks: mpsc::UnboundedSender<Position>,
    hooks: Arc<dyn DriverHooks>,
    crash_after: Option<usize>,
) -> Result<()> {
    let mut commits = 0usize;
    while let Some(msg) = rx.recv().await {
        match msg {
            ToSink::Rows(b) => sink.write(&b).await?,
            ToSink::Quarantine(b) => sink.write_quarantine(&b).await?,
            ToSink::Commit { position, state } => {
                let started = Instant::now();
                let span = tracing::info_span!("commit", number = commits + 1);
                let report: CommitReport = sink
                    .commit(&position, state)
                    .instrument(span.clone())
                    .await?;
                let elapsed = started.elapsed();
                span.in_scope(|| {
                    tracing::debug!(
                        rows = report.rows,
                        quarantined = report.quarantined,
                        covers = %report.covers,
                        conflicts = report.conflicts,
                        elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                        "committed"
                    );
                    hooks.on_commit(&report, elapsed);
                });
                let _ = acks.send(position);
                commits += 1;
                if crash_after == Some(commits) {
                    eprintln!("test hook: aborting after {commits} commits");
                    std::process::abort();
                }
            }
            ToSink::Close => return sink.close().await,
        }
    }
    // The driver went away without closing: it failed, and nothing more becomes visible.
    Ok(())
}
