//! `strata stream`: Kafka JSON topic → pipeline → Kafka Avro topic (Confluent wire format, schema
//! in a Schema Registry), quarantined records to a dead-letter topic.
//!
//! Per micro-batch (bounded by rows, bytes and time): run the pipeline, produce the Avro rows and
//! the dead letters, wait for every acknowledgement, save the driver state (pipeline checkpoint +
//! input positions, see `stream_state.rs`), then commit the input offsets — so nothing is lost,
//! and after a crash the batch is replayed from consistent state (at least once on the output).
//! With `--exactly-once` the produce and the offsets go into one Kafka transaction (a fenced
//! transactional id per instance), so the output topic holds every record exactly once for
//! `read_committed` consumers. SIGTERM / Ctrl-C finish the current batch, commit and exit 0.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use strata_connectors::avro::AvroEncoder;
use strata_connectors::kafka::{Assignment, KafkaConfig, KafkaSink, KafkaSource, OutRecord};
use strata_connectors::registry::{RegistryClient, RegistryConfig, SubjectNameStrategy};
use strata_core::lineage::kafka_input_schema;
use strata_core::{BuildContext, Pipeline};

use super::stream_state::{StateStore, StreamState};
use crate::Failure;

/// Kafka connection and partition flags shared by the streaming commands.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Bootstrap servers.
    #[arg(long, env = "STRATA_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
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
    /// librdkafka property passed through (`-X security.protocol=SASL_SSL`), repeatable; a value
    /// may be `${env:NAME}` (`-X 'sasl.password=${env:KAFKA_PASSWORD}'`). Settings exactly-once
    /// depends on (`enable.auto.commit`, `isolation.level`, `acks`, `enable.idempotence`) are
    /// refused when contradicted.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
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
    /// The connection config.
    pub fn config(&self) -> Result<KafkaConfig, Failure> {
        let mut properties = Vec::with_capacity(self.properties.len());
        for p in &self.properties {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| Failure::config(anyhow::anyhow!("-X {p}: expected KEY=VALUE")))?;
            properties.push((k.to_string(), v.to_string()));
        }
        // `${env:NAME}` values keep secrets off the command line (and out of /proc/*/cmdline);
        // a property that contradicts exactly-once is refused here, before anything runs.
        KafkaConfig::from_profile(&self.brokers, properties).map_err(Failure::config)
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
    #[arg(long, env = "STRATA_PIPELINE")]
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
        default_value = "http://127.0.0.1:8081"
    )]
    pub registry: String,
    /// Schema Registry basic-auth user (Confluent Cloud: API key).
    #[arg(long, env = "STRATA_REGISTRY_USER")]
    pub registry_user: Option<String>,
    /// Schema Registry basic-auth password (Confluent Cloud: API secret).
    #[arg(long, env = "STRATA_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
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
}

impl Args {
    /// The registry to register the output schema in, with basic auth when a user is given.
    fn registry_config(&self) -> RegistryConfig {
        super::registry::registry_config(
            &self.registry,
            self.registry_user.as_deref(),
            self.registry_password.as_deref(),
        )
    }
}

/// Counters of a run.
#[derive(Debug, Default)]
struct Counts {
    batches: u64,
    rows_in: u64,
    rows_out: u64,
    dead_letters: u64,
}

/// Runs the streaming driver until idle (`--stop-when-idle-ms`), SIGTERM or Ctrl-C.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let spec = super::load_spec(&args.pipeline)?;
    let mut pipeline = Pipeline::build(&spec, kafka_input_schema(), &BuildContext::default())
        .map_err(|e| Failure::config(anyhow::anyhow!("{}: {e}", args.pipeline.display())))?;
    let config = args.kafka.config()?;
    let (assignment, instance) = args.kafka.assignment()?;
    let group = args
        .kafka
        .group
        .clone()
        .unwrap_or_else(|| format!("strata-{}", spec.name));
    let dlq_topic = args
        .dlq_topic
        .clone()
        .unwrap_or_else(|| format!("{}.dlq", args.output_topic));
    for topic in [&args.output_topic, &dlq_topic] {
        strata_connectors::kafka::partitions_of(&config, topic).map_err(Failure::runtime)?;
    }
    let key_index = match &args.key_column {
        Some(k) => Some(pipeline.output_schema().index_of(k).map_err(|_| {
            Failure::config(anyhow::anyhow!(
                "--key-column `{k}` is not an output column"
            ))
        })?),
        None => None,
    };

    // Avro schema of the output, registered (with the compatibility check) before anything is
    // produced: data the registry would reject is never written.
    let registry = Arc::new(RegistryClient::new(args.registry_config()).map_err(Failure::config)?);
    let output_schema = pipeline.output_schema();
    let probe = AvroEncoder::for_arrow(output_schema.clone(), &spec.name, Some("strata"), 0)
        .map_err(Failure::config)?;
    let subject = SubjectNameStrategy::TopicName.subject(&args.output_topic, false, &spec.name);
    let schema_id = registry
        .ensure_registered(&subject, &probe.avro_schema().text())
        .await
        .map_err(Failure::runtime)?;
    let encoder = AvroEncoder::new(output_schema, probe.avro_schema().clone(), schema_id);

    let mut source = KafkaSource::open(
        &config,
        &args.kafka.input_topic,
        &group,
        &assignment,
        &BTreeMap::new(),
    )
    .map_err(Failure::runtime)?;
    let mut store = StateStore::open(&args.state_dir.join(&spec.name).join(&instance))?;
    let committed = source.committed().map_err(Failure::runtime)?;
    match store.matching(&committed)? {
        (Some(state), _) => pipeline.restore(&state.pipeline)?,
        (None, false) => {}
        (None, true) if args.reset_state => {
            eprintln!(
                "warning: no saved state matches the committed offsets; starting with empty state (--reset-state)"
            );
        }
        (None, true) if committed.is_empty() => {}
        (None, true) => {
            return Err(Failure::runtime(anyhow::anyhow!(
                "no saved pipeline state in {} matches the committed offsets {committed:?} of group `{group}` (hint: --reset-state starts with empty state; dedup may then let duplicates through once)",
                args.state_dir.display()
            )));
        }
    }
    let sink = KafkaSink::open(
        &config,
        args.exactly_once
            .then(|| format!("{group}-{instance}"))
            .as_deref(),
    )
    .map_err(Failure::runtime)?;
    println!(
        "stream `{}`: {} → {} (Avro, schema id {schema_id}), dead letters → {dlq_topic}, {} mode, partitions {:?}",
        spec.name,
        args.kafka.input_topic,
        args.output_topic,
        if args.exactly_once {
            "exactly-once"
        } else {
            "at-least-once"
        },
        source.partitions()
    );

    let mut stop = Box::pin(shutdown_signal());
    let mut counts = Counts::default();
    let started = Instant::now();
    let mut last_data = Instant::now();
    let mut last_report = Instant::now();
    let mut last_commit = Instant::now();
    let commit_every = Duration::from_millis(args.commit_interval_ms);
    // Output produced (and acknowledged) since the last commit point; in exactly-once mode, a
    // transaction is open.
    let mut open = false;
    let max_wait = Duration::from_millis(args.kafka.max_wait_ms);
    loop {
        let next = tokio::select! {
            _ = &mut stop => break,
            next = source.next_batch(args.kafka.max_rows, args.kafka.max_bytes, max_wait) => next,
        };
        let Some(batch) = next.map_err(Failure::runtime)? else {
            if open && last_commit.elapsed() >= commit_every {
                commit_point(args.exactly_once, &sink, &source, &mut store, &pipeline).await?;
                (open, last_commit) = (false, Instant::now());
            }
            if args
                .kafka
                .stop_when_idle_ms
                .is_some_and(|ms| last_data.elapsed() >= Duration::from_millis(ms))
            {
                break;
            }
            continue;
        };
        last_data = Instant::now();
        let out = pipeline.process(&batch)?;
        let mut records = Vec::new();
        for rows in &out.rows {
            let values = encoder.encode_batch(rows).map_err(Failure::runtime)?;
            let keys = key_index.map(|i| key_bytes(rows.column(i).as_ref()));
            for (i, value) in values.into_iter().enumerate() {
                records.push(OutRecord {
                    topic: args.output_topic.clone(),
                    key: keys.as_ref().and_then(|k| k[i].clone()),
                    value: Some(value),
                    headers: Vec::new(),
                });
            }
        }
        let dead = dead_letters(&out.quarantined, &dlq_topic);
        counts.batches += 1;
        counts.rows_in += batch.num_rows() as u64;
        counts.rows_out += (records.len()) as u64;
        counts.dead_letters += dead.len() as u64;
        records.extend(dead);
        if args.exactly_once && !open {
            sink.begin().map_err(Failure::runtime)?;
        }
        if let Err(e) = sink.send_all(&records).await {
            if args.exactly_once {
                let _ = sink.abort();
            }
            return Err(Failure::runtime(e));
        }
        open = true;
        if last_commit.elapsed() >= commit_every {
            commit_point(args.exactly_once, &sink, &source, &mut store, &pipeline).await?;
            (open, last_commit) = (false, Instant::now());
        }
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            report(&counts, started.elapsed());
        }
    }
    if open {
        commit_point(args.exactly_once, &sink, &source, &mut store, &pipeline).await?;
    }
    sink.flush().map_err(Failure::runtime)?;
    report(&counts, started.elapsed());
    let m = pipeline.metrics();
    println!(
        "stopped: {} rows in, {} out, {} quarantined (dead letters), {} duplicates; positions {:?}",
        m.rows_in,
        m.rows_out,
        m.quarantined,
        m.duplicates(),
        source.positions()
    );
    Ok(())
}

/// Makes everything produced so far durable with the input positions: the state file for the
/// current positions, then the offsets — inside the open transaction (exactly once) or to the
/// group after the acknowledgements (at least once).
async fn commit_point(
    exactly_once: bool,
    sink: &KafkaSink,
    source: &KafkaSource,
    store: &mut StateStore,
    pipeline: &Pipeline,
) -> Result<(), Failure> {
    let positions = source.positions().clone();
    store.save(&StreamState {
        positions: positions.clone(),
        pipeline: pipeline.checkpoint()?,
    })?;
    if exactly_once {
        let offsets = source.offsets_list(&positions).map_err(Failure::runtime)?;
        sink.commit_with_offsets(source.consumer(), &offsets)
            .map_err(Failure::runtime)
    } else {
        commit_with_retry(source, &positions).await
    }
}

/// Commits input offsets, waiting out a broker that is briefly unreachable (a restart): the
/// output is already acknowledged, so giving up here would only cause a replay.
async fn commit_with_retry(
    source: &KafkaSource,
    positions: &strata_connectors::kafka::Positions,
) -> Result<(), Failure> {
    let mut attempt = 0;
    loop {
        match source.commit(positions) {
            Ok(()) => return Ok(()),
            Err(e) if e.is_unreachable() && attempt < 60 => {
                attempt += 1;
                eprintln!("warning: committing offsets: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(Failure::runtime(e)),
        }
    }
}

fn report(c: &Counts, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{} batches: {} records in, {} Avro records out, {} dead letters ({:.0} records/s)",
        c.batches,
        c.rows_in,
        c.rows_out,
        c.dead_letters,
        c.rows_in as f64 / secs
    );
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

/// The key bytes of each row: strings as UTF-8, numbers in decimal, nulls unkeyed.
fn key_bytes(column: &dyn Array) -> Vec<Option<Vec<u8>>> {
    match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(|s| s.as_bytes().to_vec()))
            .collect(),
        _ => match arrow::compute::cast(column, &DataType::Utf8) {
            Ok(s) => s
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(|s| s.as_bytes().to_vec()))
                .collect(),
            Err(_) => vec![None; column.len()],
        },
    }
}

/// Dead-letter records of a quarantine batch: the raw value, with the reason, the step and the
/// source position in headers.
fn dead_letters(quarantined: &RecordBatch, topic: &str) -> Vec<OutRecord> {
    let n = quarantined.num_rows();
    if n == 0 {
        return Vec::new();
    }
    let text = |name: &str| -> Vec<Option<String>> {
        match quarantined
            .column_by_name(name)
            .and_then(|c| arrow::compute::cast(c, &DataType::Utf8).ok())
        {
            Some(c) => c
                .as_string::<i32>()
                .iter()
                .map(|v| v.map(str::to_string))
                .collect(),
            None => vec![None; n],
        }
    };
    let bytes = |name: &str| -> Vec<Option<Vec<u8>>> {
        match quarantined
            .column_by_name(name)
            .and_then(|c| arrow::compute::cast(c, &DataType::Binary).ok())
        {
            Some(c) => c
                .as_binary::<i32>()
                .iter()
                .map(|v| v.map(<[u8]>::to_vec))
                .collect(),
            None => vec![None; n],
        }
    };
    let (raw, keys) = (bytes("_raw"), bytes("_kafka_key"));
    let (step, reason) = (text("_step"), text("_reason"));
    let (src_topic, partition, offset) = (
        text("_kafka_topic"),
        text("_kafka_partition"),
        text("_kafka_offset"),
    );
    (0..n)
        .map(|i| {
            let mut headers = Vec::new();
            for (k, v) in [
                ("strata.step", &step[i]),
                ("strata.reason", &reason[i]),
                ("strata.source.topic", &src_topic[i]),
                ("strata.source.partition", &partition[i]),
                ("strata.source.offset", &offset[i]),
            ] {
                if let Some(v) = v {
                    headers.push((k.to_string(), v.as_bytes().to_vec()));
                }
            }
            OutRecord {
                topic: topic.to_string(),
                key: keys[i].clone(),
                value: raw[i].clone(),
                headers,
            }
        })
        .collect()
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
        assert_eq!(config.password.as_deref(), Some("SR_SECRET"));
    }
}
