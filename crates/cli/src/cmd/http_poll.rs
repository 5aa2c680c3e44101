//! `strata ingest http --config <yaml>`: the generic HTTP poller (X API preset included) into
//! Kafka. With a `schedule` it polls until SIGTERM / Ctrl-C (stopping between requests: the
//! cursor of the last acknowledged page is saved); without one, or with `--once`, it runs one
//! cycle and exits — the shape Airflow and cron want. A JSON summary per cycle goes to stdout.

use std::path::PathBuf;

use strata_connectors::ConnectorError;
use strata_connectors::http::{HttpPoller, PollerConfig};

use crate::Failure;

/// Flags of `ingest http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The poller config (YAML; see docs/api-sources.md).
    #[arg(long, env = "STRATA_HTTP_CONFIG")]
    pub config: PathBuf,
    /// One cycle, then exit, whatever the config's schedule says.
    #[arg(long)]
    pub once: bool,
    /// Cursor state file (overrides the config's `state_file`).
    #[arg(long, env = "STRATA_HTTP_STATE_FILE")]
    pub state_file: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides `kafka.brokers`).
    #[arg(long, env = "STRATA_KAFKA_BROKERS")]
    pub brokers: Option<String>,
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

/// Runs the poller.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let mut config = PollerConfig::from_file(&args.config).map_err(failure)?;
    if args.once {
        config.schedule = None;
    }
    if let Some(s) = &args.state_file {
        config.state_file = Some(s.clone());
    }
    if let Some(b) = &args.brokers {
        config.kafka.brokers = b.clone();
    }
    let name = config.name.clone();
    // Boxed: the error is large and the closure's result crosses a thread.
    let mut poller = tokio::task::spawn_blocking(move || HttpPoller::new(config).map_err(Box::new))
        .await
        .map_err(Failure::runtime)?
        .map_err(|e| failure(*e))?;
    tracing::info!(source = %name, cursor = ?poller.state().cursor, "starting");
    let result = poller.run(super::stream::shutdown_signal()).await;
    // Every stop (SIGTERM, the one cycle done, an error): what was produced and where the
    // next run resumes (the state file holds the last acknowledged page's position).
    let totals = poller.totals();
    let state = poller.state();
    tracing::info!(
        source = %name,
        cycles = result.as_ref().map_or(0, Vec::len),
        pages = totals.pages,
        records = totals.records,
        requests = totals.requests,
        cursor = ?state.cursor,
        resume_page = ?state.in_progress.as_ref().map(|p| p.next_page),
        state_file = %poller.state_path().display(),
        "stopped: every produced record is acknowledged by Kafka"
    );
    let reports = result.map_err(failure)?;
    for r in &reports {
        println!("{}", serde_json::json!({"source": name, "cycle": r}));
    }
    Ok(())
}
