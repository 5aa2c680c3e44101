//! `strata serve webhooks --config <yaml>`: the webhook receiver (axum) in front of Kafka, on
//! the one driver: the receiver submits each accepted request's record to a
//! [`strata_runtime::sources::WebhookSource`], the driver hands batches of them to a
//! [`RepliedRecordsSink`], which answers each request once Kafka acknowledged its record.
//! Runs until SIGTERM / Ctrl-C, then stops accepting, finishes the requests in flight (each
//! still answered only after Kafka's acknowledgement), ends the driver and flushes the producer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strata_runtime::lineage::{
    Dataset, JobRun, LineageEmitter, LineageHooks, dataset_at, kafka_dataset,
};

use strata_connectors::ConnectorError;
use strata_connectors::kafka::{KafkaLayers, ProducerSlot};
use strata_connectors::webhook::{WebhookConfig, WebhookServer};
use strata_runtime::sinks::RepliedRecordsSink;
use strata_runtime::sources::webhook_source;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, HookSet, Passthrough};

use crate::Failure;

/// `strata serve …`.
#[derive(Debug, clap::Subcommand)]
pub enum ServeCommand {
    /// Receive webhooks (`POST /webhooks/{source}`) into Kafka; `/health`, `/ready`, `/metrics`.
    Webhooks(Args),
    /// The analytics API over silver and gold: `POST /query` (read-only, bounded SQL),
    /// `GET /metrics/{name}` (the semantic layer), `/datasets`, `/openapi.json`, a cache.
    Analytics(super::analytics::Args),
}

/// Flags of `serve webhooks`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The receiver config (YAML; see docs/api-sources.md).
    #[arg(long, env = "STRATA_WEBHOOK_CONFIG", hide_env_values = true)]
    pub config: PathBuf,
    /// Address to listen on (overrides `listen`).
    #[arg(long, env = "STRATA_WEBHOOK_LISTEN", hide_env_values = true)]
    pub listen: Option<String>,
    /// Kafka bootstrap servers (overrides `kafka.brokers` and any `bootstrap.servers`).
    #[arg(long, env = "STRATA_KAFKA_BROKERS", hide_env_values = true)]
    pub brokers: Option<String>,
    /// Kafka properties over the config's `kafka.properties`.
    #[command(flatten)]
    pub kafka: super::stream::KafkaProfileArgs,
    /// OpenLineage events of the receiver's run (START, then COMPLETE or FAIL when it stops):
    /// an NDJSON file, or an HTTP endpoint.
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
}

fn failure(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::ApiConfig { .. } => Failure::config(e),
        _ => Failure::runtime(e),
    }
}

/// Runs a serve command.
pub async fn run(command: &ServeCommand) -> Result<(), Failure> {
    let args = match command {
        ServeCommand::Webhooks(args) => args,
        ServeCommand::Analytics(args) => return super::analytics::run(args).await,
    };
    let mut config = WebhookConfig::from_file(&args.config).map_err(failure)?;
    if let Some(l) = &args.listen {
        config.listen = l.clone();
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
    let kafka = WebhookServer::kafka_config(&config).map_err(failure)?;
    let producer = Arc::new(ProducerSlot::open(&kafka).map_err(failure)?);
    let ack_timeout = config.ack_timeout();
    let (source, inbox, replies) =
        webhook_source(producer.clone(), ack_timeout, config.max_in_flight());
    let sink = RepliedRecordsSink::new(producer, replies, ack_timeout);
    let (stored, not_stored) = sink.counts();
    let server =
        WebhookServer::bind_with(&config, &args.config.display().to_string(), Arc::new(inbox))
            .await
            .map_err(failure)?;
    let addr = server.local_addr().map_err(failure)?;
    let topic = |name: &str| kafka_dataset(&config.kafka.brokers, name);
    let lineage_inputs: Vec<Dataset> = config
        .sources
        .keys()
        .map(|s| dataset_at(&format!("http://{addr}"), format!("/webhooks/{s}")))
        .collect();
    let mut lineage_outputs: Vec<Dataset> =
        config.sources.values().map(|s| topic(&s.topic)).collect();
    lineage_outputs.push(topic(&config.dead_letter_topic));
    let emitter = Arc::new(LineageEmitter::for_target(args.lineage.as_deref()));
    let lineage = LineageHooks::new(
        emitter.clone(),
        JobRun::new("webhooks".to_string(), "STREAMING", "JOB"),
        lineage_inputs,
        lineage_outputs,
    );
    // Every batch is answered as soon as Kafka acknowledged it; the commit stores nothing.
    let options = DriverOptions {
        commit: CommitPolicy::every(Duration::ZERO, 1),
        channel_depth: 2,
        stop_when_idle: None,
        crash_after_commits: None,
    };
    // The delivery driver's series (records, batches, commits) join the receiver's own on its
    // `/metrics`: one scrape sees the whole process.
    let driver_metrics = Arc::new(strata_runtime::metrics::StrataMetrics::default());
    let hooks = Arc::new(HookSet(vec![
        Arc::new(lineage),
        Arc::new(driver_metrics.driver_hooks("webhooks")),
    ]));
    server.also_serve_metrics(Arc::new(move || driver_metrics.render()));
    let (driver_ended, driver_stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = tokio::spawn(async move {
        // Ends when the receiver dropped its inbox (after the requests in flight), or fails.
        let report = Driver::new(source, Passthrough::new("serve webhooks"), sink, options)
            .with_hooks(hooks)
            .run(std::future::pending())
            .await;
        let _ = driver_ended.send(());
        report
    });
    // The one line scripts wait for before sending.
    println!("listening on http://{addr}");
    tracing::info!(%addr, sources = config.sources.len(), "webhook receiver ready");
    // SIGTERM, or the driver failing (the receiver could only answer 503 from then on).
    let shutdown = async move {
        tokio::select! {
            () = super::stream::shutdown_signal() => {}
            _ = driver_stopped => tracing::warn!("the delivery driver stopped: shutting down"),
        }
    };
    let served = server.serve(shutdown).await;
    let report = driver
        .await
        .map_err(|e| Failure::runtime(anyhow::anyhow!("the delivery driver task failed: {e}")))?;
    emitter.close(Duration::from_secs(5)).await;
    let totals = served.map_err(failure)?;
    let report = report?;
    tracing::info!(
        %addr,
        requests = totals.requests,
        events = totals.events,
        dead_letters = totals.dead_letters,
        rejected = totals.rejected,
        unavailable = totals.unavailable,
        acknowledged = stored.load(std::sync::atomic::Ordering::Relaxed),
        not_acknowledged = not_stored.load(std::sync::atomic::Ordering::Relaxed),
        batches = report.commits,
        "stopped: producer flushed; every acknowledged event is in Kafka"
    );
    Ok(())
}
