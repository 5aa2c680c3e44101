//! `strata cdc mysql --config <yaml>`: MySQL / MariaDB binlog CDC → Kafka JSON topics
//! `<topic_prefix>.<db>.<table>` (Debezium envelope, keyed by primary key, tombstones after
//! deletes), the position saved in the config's `state_file` after every acknowledged batch.
//! Before streaming, the output topics are read back so that events a killed run delivered but
//! could not record are not sent again (exactly-once across a crash; `mysql_cdc::resume`).
//! Runs until SIGTERM / Ctrl-C (stopping between batches, the last one acknowledged and its
//! position saved), `--stop-when-idle-ms`, or the end of an `initial_only` snapshot; every stop
//! logs what was delivered and the position reached.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Subcommand};
use strata_connectors::ConnectorError;
use strata_connectors::kafka::{KafkaConfig, KafkaSink};
use strata_connectors::mysql_cdc::{MysqlCdcConfig, MysqlCdcSource, resume, sink};

use crate::Failure;

/// `strata cdc …`.
#[derive(Debug, Subcommand)]
pub enum CdcCommand {
    /// MySQL / MariaDB binlog → Kafka (Debezium-compatible JSON).
    Mysql(Args),
}

/// Flags of `strata cdc mysql`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The source config (YAML: url, tables, state_file, kafka_brokers, topic_prefix, …).
    #[arg(long, env = "STRATA_CDC_CONFIG")]
    pub config: PathBuf,
    /// Stop after this many milliseconds without a change (default: run forever).
    #[arg(long, env = "STRATA_CDC_STOP_WHEN_IDLE_MS")]
    pub stop_when_idle_ms: Option<u64>,
    /// Kafka bootstrap servers (overrides `kafka_brokers`).
    #[arg(long, env = "STRATA_KAFKA_BROKERS")]
    pub brokers: Option<String>,
}

fn failure(e: ConnectorError) -> Failure {
    match e {
        ConnectorError::MysqlConfig { .. }
        | ConnectorError::MysqlSetting { .. }
        | ConnectorError::MysqlPrivilege { .. }
        | ConnectorError::MysqlTableNotFound { .. } => Failure::config(e),
        _ => Failure::runtime(e),
    }
}

/// Runs the command.
pub async fn run(cmd: &CdcCommand) -> Result<(), Failure> {
    let CdcCommand::Mysql(args) = cmd;
    run_mysql(args).await
}

/// Runs `cdc mysql` (also reachable as `ingest mysql-cdc`).
pub async fn run_mysql(args: &Args) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.config).map_err(|e| {
        Failure::config(anyhow::anyhow!(
            "cannot read `{}`: {e}",
            args.config.display()
        ))
    })?;
    let config = MysqlCdcConfig::from_yaml(&text).map_err(failure)?;
    let brokers = args
        .brokers
        .clone()
        .or_else(|| config.kafka_brokers.clone())
        .ok_or_else(|| {
            Failure::config(anyhow::anyhow!(
                "no Kafka brokers: set `kafka_brokers` in the config or pass --brokers"
            ))
        })?;
    let prefix = config.topic_prefix.clone();
    let kafka = KafkaConfig::from_profile(&brokers, config.kafka_properties.clone())
        .map_err(Failure::config)?;
    let mut source = MysqlCdcSource::open(config).await.map_err(failure)?;
    for w in &source.server_info().warnings {
        eprintln!("warning: {w}");
    }
    let sink = KafkaSink::open(&kafka, None).map_err(failure)?;
    let delivered = resume::scan(&kafka, &source, &prefix)
        .await
        .map_err(failure)?;
    if !delivered.is_empty() {
        eprintln!(
            "resume: {} events after the saved position are already in Kafka (read back {} \
             records from {} partitions); they will be skipped",
            delivered.len(),
            delivered.records_read,
            delivered.partitions
        );
    }
    let started = std::time::Instant::now();
    // Listening from here on (a spawned task polls at once): a SIGTERM during the run stops it
    // between batches instead of killing it.
    let signal = tokio::spawn(super::stream::shutdown_signal());
    let shutdown = async move {
        let _ = signal.await;
    };
    let stats = sink::run_to_kafka_until(
        &mut source,
        &sink,
        &prefix,
        args.stop_when_idle_ms.map(Duration::from_millis),
        delivered,
        shutdown,
    )
    .await
    .map_err(failure)?;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "cdc mysql: {} events ({} records with tombstones) in {:.1}s ({:.0} events/s), {} already in Kafka skipped, {} positions saved to {}",
        stats.events,
        stats.records,
        secs,
        stats.events as f64 / secs,
        stats.skipped,
        stats.commits,
        source.state_file().path().display()
    );
    Ok(())
}
