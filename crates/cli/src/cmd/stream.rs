//! `strata stream`: Kafka JSON topic → pipeline → Kafka Avro topic (Confluent wire format, schema
//! in a Schema Registry), quarantined records to a dead-letter topic.
//!
//! Wiring of the runtime's [`KafkaTopicSource`] and [`KafkaAvroSink`] into its one driver loop:
//! every micro-batch is produced and acknowledged; at each commit point the pipeline state is
//! saved with the input positions, then the offsets are committed (to the group, or with
//! `--exactly-once` inside one Kafka transaction per commit, with a fenced transactional id per
//! instance). The protocol is documented on the sink. SIGTERM / Ctrl-C finish the current batch,
//! commit and exit 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_connectors::kafka::{
    Assignment, KafkaConfig, KafkaLayers, KafkaPropertiesFile, is_secret_property,
};
use strata_connectors::registry::{RegistryClient, RegistryConfig};
use strata_connectors::secret::Secret;
use strata_core::{BuildContext, Pipeline};
use strata_runtime::lineage::{EpochLineageHooks, JobRun, LineageEmitter};
use strata_runtime::sinks::{AvroOutput, InputGroup, KafkaAvroSink, register_output_schema};
use strata_runtime::sources::{KafkaBatching, KafkaTopicSource};
use strata_runtime::{CommitPolicy, Driver, DriverOptions, HookSet, Source};

use super::stream_log::StreamLog;
use crate::Failure;

/// The brokers of the streaming commands when neither `--brokers` nor the properties give any.
pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

/// Where librdkafka properties come from, for every command that talks to Kafka: a properties
/// file, then `-X` flags over it (parsing and layering live in
/// [`strata_connectors::kafka::KafkaLayers`]). `Debug` hides secret-looking values.
#[derive(Clone, clap::Args)]
pub struct KafkaProfileArgs {
    /// librdkafka properties file: `key=value` lines, `#` comments, values may be
    /// `${env:NAME}` — keeps credentials off the command line. `-X` flags override it; its
    /// `bootstrap.servers` sets the brokers unless `--brokers` is given.
    #[arg(
        long,
        env = "STRATA_KAFKA_CONFIG",
        hide_env_values = true,
        value_name = "FILE"
    )]
    pub kafka_config: Option<PathBuf>,
    /// librdkafka property passed through (`-X security.protocol=SASL_SSL`), repeatable, over
    /// `--kafka-config`; a value may be `${env:NAME}` (`-X 'sasl.password=${env:KAFKA_PASSWORD}'`).
    /// Settings exactly-once depends on (`enable.auto.commit`, `isolation.level`, `acks`,
    /// `enable.idempotence`) are refused when contradicted.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

impl std::fmt::Debug for KafkaProfileArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let properties: Vec<String> = self
            .properties
            .iter()
            .map(|p| match p.split_once('=') {
                Some((k, _)) if is_secret_property(k) => format!("{k}=***"),
                Some(_) => p.clone(),
                None => "***".into(),
            })
            .collect();
        f.debug_struct("KafkaProfileArgs")
            .field("kafka_config", &self.kafka_config)
            .field("properties", &properties)
            .finish()
    }
}

impl KafkaProfileArgs {
    /// `base` (the command's own config, if any) with the properties file and the `-X` flags
    /// over it, then `brokers` (`--brokers`) over all. Values stay raw (`${env:NAME}`).
    pub fn layers(
        &self,
        base: KafkaLayers,
        brokers: Option<&String>,
    ) -> Result<KafkaLayers, Failure> {
        let mut layers = base;
        if let Some(path) = &self.kafka_config {
            let file = KafkaPropertiesFile::load(path).map_err(Failure::config)?;
            layers = layers.with_file(&file);
        }
        let mut properties = Vec::with_capacity(self.properties.len());
        for (i, p) in self.properties.iter().enumerate() {
            // The text is not repeated: without `=` it may be a stray secret.
            let (k, v) = p.split_once('=').ok_or_else(|| {
                Failure::config(anyhow::anyhow!(
                    "-X number {}: expected KEY=VALUE (no `=` found)",
                    i + 1
                ))
            })?;
            properties.push((k.trim().to_string(), v.to_string()));
        }
        Ok(layers
            .with_properties(properties)
            .with_brokers(brokers.cloned()))
    }
}

/// Kafka connection and partition flags shared by the streaming commands.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Bootstrap servers [default: 127.0.0.1:9092, or `bootstrap.servers` of --kafka-config / -X].
    #[arg(long, env = "STRATA_KAFKA_BROKERS", hide_env_values = true)]
    pub brokers: Option<String>,
    /// Properties file and `-X` flags.
    #[command(flatten)]
    pub profile: KafkaProfileArgs,
    /// Input topic (JSON values).
    #[arg(long)]
    pub input_topic: String,
    /// Consumer group (offsets are committed to it in every mode). Default: `strata-<pipeline>`.
    #[arg(long)]
    pub group: Option<String>,
    /// Read exactly these partitions (comma-separated), without group coordination.
    #[arg(long, conflicts_with = "instance")]
    pub partitions: Option<String>,
    /// Instance i of N (`i/N`): partitions p with p % N == i, without group coordination.
    #[arg(long)]
    pub instance: Option<String>,
    /// Micro-batch bound: records.
    #[arg(long, default_value_t = 10_000)]
    pub max_rows: usize,
    /// Micro-batch bound: milliseconds after its first record.
    #[arg(long, default_value_t = 200)]
    pub max_wait_ms: u64,
    /// Micro-batch bound: bytes of values.
    #[arg(long, default_value_t = 16 << 20)]
    pub max_bytes: usize,
    /// Stop (committing everything) after this long without new records (one-shot runs).
    #[arg(long)]
    pub stop_when_idle_ms: Option<u64>,
}

impl KafkaArgs {
    /// The OpenLineage dataset of `topic` on these brokers.
    pub fn topic_dataset(&self, topic: &str) -> strata_runtime::lineage::Dataset {
        strata_runtime::lineage::kafka_dataset(self.brokers.as_deref().unwrap_or_default(), topic)
    }

    /// The micro-batch bounds.
    pub fn batching(&self) -> KafkaBatching {
        KafkaBatching {
            max_rows: self.max_rows,
            max_bytes: self.max_bytes,
            max_wait: Duration::from_millis(self.max_wait_ms),
        }
    }

    /// The connection config: `--kafka-config`, then `-X`, then `--brokers`.
    pub fn config(&self) -> Result<KafkaConfig, Failure> {
        // `--kafka-config` and `${env:NAME}` values keep secrets off the command line (and out
        // of /proc/*/cmdline); a property that contradicts exactly-once is refused here, before
        // anything runs.
        self.profile
            .layers(KafkaLayers::default(), self.brokers.as_ref())?
            .config(DEFAULT_BROKERS)
            .map_err(Failure::config)
    }

    /// The partition assignment and a name for this instance (state folder, transactional id).
    pub fn assignment(&self) -> Result<(Assignment, String), Failure> {
        if let Some(list) = &self.partitions {
            let parts = list
                .split(',')
                .map(|p| p.trim().parse::<i32>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Failure::config(anyhow::anyhow!("--partitions {list}: {e}")))?;
            let name = format!(
                "p{}",
                parts
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            );
            return Ok((Assignment::Partitions(parts), name));
        }
        if let Some(spec) = &self.instance {
            let parsed = spec
                .split_once('/')
                .and_then(|(i, n)| Some((i.parse::<u32>().ok()?, n.parse::<u32>().ok()?)));
            let Some((index, count)) = parsed.filter(|(i, n)| i < n) else {
                return Err(Failure::config(anyhow::anyhow!(
                    "--instance {spec}: expected i/N with 0 <= i < N"
                )));
            };
            return Ok((
                Assignment::Instance { index, count },
                format!("i{index}of{count}"),
            ));
        }
        Ok((Assignment::Group, "group".to_string()))
    }

    /// Like [`KafkaArgs::assignment`], but without `--partitions` / `--instance` every partition
    /// of the input topic is assigned explicitly: for drivers whose positions live in their
    /// output (silver table, bronze files), where a group rebalance must never move a partition.
    pub fn explicit_assignment(
        &self,
        config: &KafkaConfig,
    ) -> Result<(Assignment, String), Failure> {
        let (assignment, instance) = self.assignment()?;
        let assignment = match assignment {
            Assignment::Group => Assignment::Partitions(
                strata_connectors::kafka::partitions_of(config, &self.input_topic)
                    .map_err(Failure::runtime)?,
            ),
            explicit => explicit,
        };
        Ok((assignment, instance))
    }
}

/// Flags of `stream` (JSON → Avro).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Pipeline spec.
    #[arg(long, env = "STRATA_PIPELINE", hide_env_values = true)]
    pub pipeline: PathBuf,
    /// Output topic (Avro).
    #[arg(long)]
    pub output_topic: String,
    /// Dead-letter topic for quarantined records. Default: `<output-topic>.dlq`.
    #[arg(long)]
    pub dlq_topic: Option<String>,
    /// Output column whose value keys the output records (partitioning).
    #[arg(long)]
    pub key_column: Option<String>,
    /// Schema Registry URL (Confluent REST API; `strata registry serve` is one).
    #[arg(
        long,
        env = "STRATA_REGISTRY_URL",
        hide_env_values = true,
        default_value = "http://127.0.0.1:8081"
    )]
    pub registry: String,
    /// Schema Registry basic-auth user (Confluent Cloud: API key).
    #[arg(long, env = "STRATA_REGISTRY_USER", hide_env_values = true)]
    pub registry_user: Option<String>,
    /// Schema Registry basic-auth password (Confluent Cloud: API secret).
    #[arg(
        long,
        env = "STRATA_REGISTRY_PASSWORD",
        hide_env_values = true,
        value_parser = super::registry::secret
    )]
    pub registry_password: Option<Secret>,
    /// Schema Registry bearer token, sent instead of basic auth.
    #[arg(
        long,
        env = "STRATA_REGISTRY_TOKEN",
        hide_env_values = true,
        value_parser = super::registry::secret,
        conflicts_with = "registry_user"
    )]
    pub registry_token: Option<Secret>,
    /// Produce and commit offsets in Kafka transactions (exactly once for read_committed readers).
    #[arg(long)]
    pub exactly_once: bool,
    /// Folder of the driver state (one subfolder per pipeline instance).
    #[arg(long, default_value = "state")]
    pub state_dir: PathBuf,
    /// Commit point interval (milliseconds): the state file and the input offsets (or the
    /// transaction) are committed this often; output is produced and acknowledged per batch.
    #[arg(long, default_value_t = 1_000)]
    pub commit_interval_ms: u64,
    /// Start with empty pipeline state when no saved state matches the committed offsets.
    #[arg(long)]
    pub reset_state: bool,
    /// OpenLineage events: the job's run, and one run per commit point (its parent the job's).
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
    /// Prometheus metrics (`--metrics-addr` serves `/metrics` while it runs).
    #[command(flatten)]
    pub metrics: super::metrics_args::MetricsArgs,
}

impl Args {
    /// The registry to register the output schema in, with basic auth when a user is given,
    /// else the bearer token when one is.
    fn registry_config(&self) -> RegistryConfig {
        super::registry::registry_config(
            &self.registry,
            self.registry_user.as_deref(),
            self.registry_password.as_ref(),
            self.registry_token.as_ref(),
        )
    }
}

/// Runs the streaming driver until idle (`--stop-when-idle-ms`), SIGTERM or Ctrl-C.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let spec = super::load_spec(&args.pipeline)?;
    let config = args.kafka.config()?;
    let (assignment, instance) = args.kafka.assignment()?;
    let group = args
        .kafka
        .group
        .clone()
        .unwrap_or_else(|| format!("strata-{}", spec.name));
    let dead_letter_topic = args
        .dlq_topic
        .clone()
        .unwrap_or_else(|| format!("{}.dlq", args.output_topic));
    for topic in [&args.output_topic, &dead_letter_topic] {
        strata_connectors::kafka::partitions_of(&config, topic).map_err(Failure::runtime)?;
    }
    let mut source = KafkaTopicSource::new(
        config.clone(),
        &args.kafka.input_topic,
        group.clone(),
        assignment.clone(),
        args.kafka.batching(),
    );
    let pipeline = Pipeline::build(&spec, source.schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let key_column = match &args.key_column {
        Some(k) => Some(pipeline.output_schema().index_of(k).map_err(|_| {
            Failure::config(anyhow::anyhow!(
                "--key-column `{k}` is not an output column"
            ))
        })?),
        None => None,
    };
    let registry = RegistryClient::new(args.registry_config()).map_err(Failure::config)?;
    let encoder = register_output_schema(&registry, &args.output_topic, &pipeline).await?;
    let schema_id = encoder.schema_id();
    let input = InputGroup {
        config: config.clone(),
        topic: args.kafka.input_topic.clone(),
        group: group.clone(),
        assignment,
        shared: source.share_group(),
    };
    let output = AvroOutput {
        topic: args.output_topic.clone(),
        dead_letter_topic: dead_letter_topic.clone(),
        key_column,
        transactional_id: args.exactly_once.then(|| format!("{group}-{instance}")),
        state_dir: args.state_dir.join(&spec.name).join(&instance),
        reset_state: args.reset_state,
    };
    let sink = KafkaAvroSink::open(&config, encoder, output, input)?;
    let label = format!(
        "stream `{}` (Avro, schema id {schema_id}, dead letters → {dead_letter_topic}, {} mode, instance {instance})",
        spec.name,
        if args.exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        },
    );
    let options = DriverOptions {
        commit: CommitPolicy::every(Duration::from_millis(args.commit_interval_ms), u64::MAX),
        channel_depth: 4,
        stop_when_idle: args.kafka.stop_when_idle_ms.map(Duration::from_millis),
        crash_after_commits: None,
    };
    let log = Arc::new(StreamLog::new(label, args.output_topic.clone()));
    let job = format!("stream.{}", spec.name);
    let export = args.metrics.start().await?;
    let emitter = Arc::new(LineageEmitter::for_target(args.lineage.as_deref()));
    let lineage = EpochLineageHooks::new(
        emitter.clone(),
        JobRun::new(job.clone(), "STREAMING", "JOB"),
        vec![args.kafka.topic_dataset(&args.kafka.input_topic)],
        vec![
            args.kafka.topic_dataset(&args.output_topic),
            args.kafka.topic_dataset(&dead_letter_topic),
        ],
    );
    let hooks = HookSet(vec![
        log,
        Arc::new(lineage),
        Arc::new(export.metrics.driver_hooks(&job)),
    ]);
    let outcome = Driver::new(source, pipeline, sink, options)
        .with_hooks(Arc::new(hooks))
        .run(shutdown_signal())
        .await;
    let lineage_stats = emitter.close(Duration::from_secs(5)).await;
    export.metrics.lineage_dropped(lineage_stats.dropped);
    export.finish(&job).await?;
    let report = outcome?;
    let m = &report.metrics;
    println!(
        "stopped: {} commits, {} rows in, {} out, {} quarantined (dead letters), {} duplicates; positions {}",
        report.commits,
        m.rows_in,
        m.rows_out,
        m.quarantined,
        m.duplicates(),
        report
            .position
            .as_ref()
            .map(|p| p.to_json())
            .unwrap_or_else(|| "(none)".into())
    );
    Ok(())
}

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {},
            _ = tokio::signal::ctrl_c() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn the_registry_credentials_reach_the_registry_client() {
        let cli = Cli::try_parse_from([
            "stream-avro",
            "--input-topic",
            "iot.events",
            "--output-topic",
            "iot.events.avro",
            "--pipeline",
            "pipelines/iot.yaml",
            "--registry",
            "https://psrc-xxxx.confluent.cloud",
            "--registry-user",
            "SR_KEY",
            "--registry-password",
            "SR_SECRET",
        ])
        .expect("the flags of docs/streaming.md parse");
        let config = cli.args.registry_config();
        assert_eq!(config.url, "https://psrc-xxxx.confluent.cloud");
        assert_eq!(config.username.as_deref(), Some("SR_KEY"));
        assert_eq!(
            config.password.as_ref().map(|p| p.expose()),
            Some("SR_SECRET")
        );
    }
}
