//! Stage: stream — a Kafka JSON topic through a pipeline into an Avro topic, with the library API
//! (the loop `strata stream avro` runs, without its state files and transactions).
//!
//! ```text
//! cargo run -p strata-examples --example stream_to_avro -- <brokers> <in-topic> <out-topic> <registry-url> [pipeline.yaml]
//! ```
//! Stops after 5 s without new records. Quarantined records are only counted here; the CLI sends
//! them to a dead-letter topic.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use strata_connectors::avro::AvroEncoder;
use strata_connectors::kafka::{Assignment, KafkaConfig, KafkaSink, KafkaSource, OutRecord};
use strata_connectors::registry::{RegistryClient, SubjectNameStrategy};
use strata_core::lineage::kafka_input_schema;
use strata_core::{BuildContext, Pipeline, PipelineSpec};

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
    let mut pipeline = Pipeline::build(&spec, kafka_input_schema(), &BuildContext::default())?;

    // Register the output's Avro schema (compatibility-checked) before producing anything.
    let registry = Arc::new(RegistryClient::from_url(&registry_url)?);
    let probe = AvroEncoder::for_arrow(pipeline.output_schema(), &spec.name, Some("strata"), 0)?;
    let subject = SubjectNameStrategy::TopicName.subject(&output, false, &spec.name);
    let id = registry
        .ensure_registered(&subject, &probe.avro_schema().text())
        .await?;
    let encoder = AvroEncoder::new(pipeline.output_schema(), probe.avro_schema().clone(), id);

    let config = KafkaConfig::new(&brokers);
    let partitions = strata_connectors::kafka::partitions_of(&config, &input)?;
    let mut source = KafkaSource::open(
        &config,
        &input,
        "strata-example",
        &Assignment::Partitions(partitions),
        &BTreeMap::new(),
    )?;
    let sink = KafkaSink::open(&config, None)?;
    let (mut produced, mut quarantined) = (0usize, 0usize);
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(5) {
        let Some(batch) = source
            .next_batch(10_000, 16 << 20, Duration::from_millis(200))
            .await?
        else {
            continue;
        };
        last = Instant::now();
        let out = pipeline.process(&batch)?;
        quarantined += out.quarantined.num_rows();
        let mut records = Vec::new();
        for rows in &out.rows {
            for value in encoder.encode_batch(rows)? {
                records.push(OutRecord {
                    topic: output.clone(),
                    value: Some(value),
                    ..OutRecord::default()
                });
            }
        }
        produced += sink.send_all(&records).await?;
        // Only after every record is acknowledged.
        source.commit(&source.positions().clone())?;
    }
    println!("{produced} Avro records to {output} (schema id {id}), {quarantined} quarantined");
    Ok(())
}
