//! `strata ingest http --config <yaml>`: the generic HTTP poller (X API preset included) into
//! Kafka. With a `schedule` it polls until SIGTERM / Ctrl-C; without one, or with `--once`, it
//! runs one cycle and exits — the shape Airflow and cron want. A JSON summary per cycle goes to
//! stdout. Wiring of the runtime's [`HttpPollSource`] and its Kafka records sink (the state
//! file saved after each acknowledged page) into the one driver loop.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_connectors::ConnectorError;
use strata_connectors::http::PollerConfig;
use strata_connectors::kafka::KafkaLayers;
use strata_runtime::sinks::kafka_records::PositionFile;
use strata_runtime::sources::http_poll::{PollerStateFile, state_of};
use strata_runtime::sources::open_http_ingest;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Passthrough, RuntimeError};

use crate::Failure;

/// Flags of `ingest http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The poller config (YAML; see docs/api-sources.md).
    #[arg(long, env = "STRATA_HTTP_CONFIG", hide_env_values = true)]
    pub config: PathBuf,
    /// One cycle, then exit, whatever the config's schedule says.
    #[arg(long)]
    pub once: bool,
    /// Cursor state file (overrides the config's `state_file`).
    #[arg(long, env = "STRATA_HTTP_STATE_FILE", hide_env_values = true)]
    pub state_file: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides `kafka.brokers` and any `bootstrap.servers`).
    #[arg(long, env = "STRATA_KAFKA_BROKERS", hide_env_values = true)]
    pub brokers: Option<String>,
    /// Kafka properties over the config's `kafka.properties`.
    #[command(flatten)]
    pub kafka: super::stream::KafkaProfileArgs,
    /// OpenLineage events of the run (START, then COMPLETE or FAIL when it stops): an NDJSON
    /// file, or an HTTP endpoint.
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
    /// Prometheus metrics (`--metrics-addr` serves `/metrics` while it runs).
    #[command(flatten)]
    pub metrics: super::metrics_args::MetricsArgs,
}

fn failure(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::ApiConfig { .. } => Failure::config(e),
        ConnectorError::Http {
            status: Some(s), ..
        } if (400..500).contains(&s) && s != 429 => Failure::config(e),
        _ => Failure::runtime(e),
    }
}

fn run_failure(e: RuntimeError) -> Failure {
    match e {
        RuntimeError::Connector(e) => failure(*e),
        other => other.into(),
    }
}

/// Runs the poller.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let mut config = PollerConfig::from_file(&args.config).map_err(failure)?;
    if args.once {
        config.schedule = None;
    }
    if let Some(s) = &args.state_file {
        config.state_file = Some(s.clone());
    }
    let (brokers, properties) = args
        .kafka
        .layers(
            KafkaLayers::new(
                Some(config.kafka.brokers.clone()),
                config.kafka.properties.clone(),
            ),
            args.brokers.as_ref(),
        )?
        .into_parts();
    config.kafka.brokers = brokers.unwrap_or_default();
    config.kafka.properties = properties;
    let name = config.name.clone();
    let url = config.request.url.clone().unwrap_or_default();
    let lineage_input =
        strata_runtime::lineage::dataset_at(&url, strata_runtime::lineage::url_path(&url));
    let lineage_output =
        strata_runtime::lineage::kafka_dataset(&config.kafka.brokers, config.kafka.topic.clone());
    // The cursor last moved when its state file was last written (before this run), or now.
    let cursor_moved = std::fs::metadata(config.state_path())
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| std::time::SystemTime::now());
    let state_file = PollerStateFile::new(config.state_path());
    let saved_cursor = state_file
        .load()
        .and_then(|p| state_of(&name, p.as_ref()))
        .unwrap_or_default()
        .cursor;
    let (source, sink) = tokio::task::spawn_blocking(move || open_http_ingest(config))
        .await
        .map_err(Failure::runtime)?
        .map_err(run_failure)?;
    let (log, produced) = (source.log(), sink.produced());
    let options = DriverOptions {
        // Save the state after every acknowledged page: a crash repeats at most a page.
        commit: CommitPolicy::every(Duration::ZERO, 1),
        channel_depth: 2,
        stop_when_idle: None,
        crash_after_commits: None,
    };
    let job = format!("poll.{name}");
    let export = args.metrics.start().await?;
    let emitter = std::sync::Arc::new(strata_runtime::lineage::LineageEmitter::for_target(
        args.lineage.as_deref(),
    ));
    let lineage = strata_runtime::lineage::LineageHooks::new(
        emitter.clone(),
        strata_runtime::lineage::JobRun::new(job.clone(), "BATCH", "JOB"),
        vec![lineage_input],
        vec![lineage_output],
    );
    let clock = std::sync::Arc::new(std::sync::Mutex::new(CursorClock {
        moved: cursor_moved,
        last: saved_cursor,
    }));
    let observe_cursor = {
        let (metrics, log, job, clock) = (
            export.metrics.clone(),
            log.clone(),
            job.clone(),
            clock.clone(),
        );
        move || {
            let cursor = log
                .lock()
                .ok()
                .and_then(|l| l.cycles.last().and_then(|(_, c)| c.cursor.clone()));
            if let Ok(mut c) = clock.lock() {
                metrics.set_cursor_age(&job, c.observe(cursor));
            }
        }
    };
    let cursor_age = {
        let observe = observe_cursor.clone();
        tokio::spawn(async move {
            loop {
                observe();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let hooks = strata_runtime::HookSet(vec![
        std::sync::Arc::new(lineage),
        std::sync::Arc::new(StartLog),
        std::sync::Arc::new(export.metrics.driver_hooks(&job)),
    ]);
    let result = Driver::new(
        source,
        Passthrough::new(format!("http ingest {name}")),
        sink,
        options,
    )
    .with_hooks(std::sync::Arc::new(hooks))
    .run(super::stream::shutdown_signal())
    .await;
    let lineage_stats = emitter.close(Duration::from_secs(5)).await;
    export.metrics.lineage_dropped(lineage_stats.dropped);
    // One last reading after the run, so the textfile and the push hold it.
    cursor_age.abort();
    observe_cursor();
    export.finish(&job).await?;
    // Every stop (SIGTERM, the one cycle done, an error): what was produced and where the
    // next run resumes (the state file holds the last acknowledged page's position).
    let saved = state_file
        .load()
        .and_then(|p| state_of(&name, p.as_ref()))
        .unwrap_or_default();
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    let done: Vec<_> = log
        .cycles
        .iter()
        .filter(|(after, _)| *after <= saved.cycles)
        .map(|(_, r)| r)
        .collect();
    tracing::info!(
        source = %name,
        cycles = done.len(),
        pages = log.totals.pages,
        records = produced.load(Ordering::Relaxed),
        requests = log.totals.requests,
        cursor = ?saved.cursor,
        resume_page = ?saved.in_progress.as_ref().map(|p| p.next_page),
        state_file = %state_file.path().display(),
        "stopped: every produced record is acknowledged by Kafka"
    );
    result.map_err(run_failure)?;
    for r in done {
        println!("{}", serde_json::json!({"source": name, "cycle": r}));
    }
    Ok(())
}

/// When the poller's cursor last moved (for `strata_poller_cursor_age_seconds`).
struct CursorClock {
    moved: std::time::SystemTime,
    last: Option<String>,
}

impl CursorClock {
    /// Notes the newest cursor seen; the seconds since it last changed.
    fn observe(&mut self, cursor: Option<String>) -> f64 {
        if cursor.is_some() && cursor != self.last {
            self.moved = std::time::SystemTime::now();
            self.last = cursor;
        }
        self.moved.elapsed().map_or(0.0, |d| d.as_secs_f64())
    }
}

/// Logs where the poller starts.
struct StartLog;

impl strata_runtime::DriverHooks for StartLog {
    fn on_start(&self, run: &strata_runtime::RunInfo) {
        tracing::info!(source = %run.source, "starting: {}", run.detail);
    }
}
