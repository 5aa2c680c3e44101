//! Stage: stream — a Kafka JSON topic through a pipeline into an Avro topic, exactly once, with
//! the library: the same source, sink and driver loop `strata stream avro --exactly-once` runs
//! (state files, one transaction per commit, dead letters with their reason in headers).
//!
//! ```text
//! cargo run -p strata-examples --example stream_to_avro -- <brokers> <in-topic> <out-topic> <registry-url> [pipeline.yaml]
//! ```
//! Stops after 5 s without new records; run it again and it resumes where it committed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use strata_connectors::kafka::{Assignment, KafkaConfig, partitions_of};
use strata_connectors::registry::RegistryClient;
use strata_core::{BuildContext, Pipeline, PipelineSpec};
use strata_runtime::sinks::{AvroOutput, InputGroup, KafkaAvroSink, register_output_schema};
use strata_runtime::sources::{KafkaBatching, KafkaTopicSource};
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Source};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let brokers = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let input = args.next().unwrap_or_else(|| "iot.events".into());
    let output = args.next().unwrap_or_else(|| "iot.events.avro".into());
    let registry_url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8081".into());
    let spec_path = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("pipelines/iot.yaml"));
    let text = std::fs::read_to_string(&spec_path)
        .with_context(|| format!("reading {}", spec_path.display()))?;
    let spec = PipelineSpec::from_yaml(&text)?;

    let config = KafkaConfig::new(&brokers);
    let group = format!("example-{}", spec.name);
    let assignment = Assignment::Partitions(partitions_of(&config, &input)?);
    let batching = KafkaBatching {
        max_rows: 10_000,
        max_bytes: 16 << 20,
        max_wait: Duration::from_millis(200),
    };
    let mut source =
        KafkaTopicSource::new(config.clone(), &input, &group, assignment.clone(), batching);
    let pipeline = Pipeline::build(&spec, source.schema(), &BuildContext::default())?;

    // The output's Avro schema is registered (compatibility-checked) before anything is produced.
    let registry = RegistryClient::from_url(&registry_url)?;
    let encoder = register_output_schema(&registry, &output, &pipeline).await?;
    let input_group = InputGroup {
        config: config.clone(),
        topic: input.clone(),
        group: group.clone(),
        assignment,
        shared: source.share_group(),
    };
    let sink_output = AvroOutput {
        topic: output.clone(),
        dead_letter_topic: format!("{output}.dlq"),
        key_column: None,
        transactional_id: Some(format!("{group}-0")),
        state_dir: std::env::temp_dir()
            .join("strata-example-state")
            .join(&spec.name),
        reset_state: false,
    };
    let sink = KafkaAvroSink::open(&config, encoder, sink_output, input_group)?;
    let options = DriverOptions {
        commit: CommitPolicy::every(Duration::from_secs(1), 100_000),
        stop_when_idle: Some(Duration::from_secs(5)),
        ..DriverOptions::default()
    };
    let report = Driver::new(source, pipeline, sink, options)
        .run(std::future::pending::<()>())
        .await?;
    let m = &report.metrics;
    println!(
        "{} Avro records to {output}, {} dead letters to {output}.dlq, in {} transactions",
        m.rows_out, m.quarantined, report.commits
    );
    Ok(())
}
