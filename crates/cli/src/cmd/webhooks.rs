//! `strata serve webhooks --config <yaml>`: the webhook receiver (axum) in front of Kafka.
//! Runs until SIGTERM / Ctrl-C, then stops accepting, finishes the requests in flight (each
//! still answered only after Kafka's acknowledgement) and flushes the producer.

use std::path::PathBuf;

use strata_connectors::ConnectorError;
use strata_connectors::webhook::{WebhookConfig, WebhookServer};

use crate::Failure;

/// `strata serve …`.
#[derive(Debug, clap::Subcommand)]
pub enum ServeCommand {
    /// Receive webhooks (`POST /webhooks/{source}`) into Kafka; `/health`, `/ready`, `/metrics`.
    Webhooks(Args),
}

/// Flags of `serve webhooks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The receiver config (YAML; see docs/api-sources.md).
    #[arg(long, env = "STRATA_WEBHOOK_CONFIG")]
    pub config: PathBuf,
    /// Address to listen on (overrides `listen`).
    #[arg(long, env = "STRATA_WEBHOOK_LISTEN")]
    pub listen: Option<String>,
    /// Kafka bootstrap servers (overrides `kafka.brokers`).
    #[arg(long, env = "STRATA_KAFKA_BROKERS")]
    pub brokers: Option<String>,
}

fn failure(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::ApiConfig { .. } => Failure::config(e),
        _ => Failure::runtime(e),
    }
}

/// Runs a serve command.
pub async fn run(command: &ServeCommand) -> Result<(), Failure> {
    let ServeCommand::Webhooks(args) = command;
    let mut config = WebhookConfig::from_file(&args.config).map_err(failure)?;
    if let Some(l) = &args.listen {
        config.listen = l.clone();
    }
    if let Some(b) = &args.brokers {
        config.kafka.brokers = b.clone();
    }
    let server = WebhookServer::bind(&config, &args.config.display().to_string())
        .await
        .map_err(failure)?;
    let addr = server.local_addr().map_err(failure)?;
    // The one line scripts wait for before sending.
    println!("listening on http://{addr}");
    tracing::info!(%addr, sources = config.sources.len(), "webhook receiver ready");
    let totals = server
        .serve(super::stream::shutdown_signal())
        .await
        .map_err(failure)?;
    tracing::info!(
        %addr,
        requests = totals.requests,
        events = totals.events,
        dead_letters = totals.dead_letters,
        rejected = totals.rejected,
        unavailable = totals.unavailable,
        "stopped: producer flushed; every acknowledged event is in Kafka"
    );
    Ok(())
}
