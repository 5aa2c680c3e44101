//! `strata stream bronze`: Kafka topic → bronze, raw and complete, nothing lost or doubled.
//!
//! Each record becomes one NDJSON line: `{"partition","offset","timestamp","key","headers",
//! "value"}` where `value` is the record's own JSON text, byte for byte (a value that is not a
//! one-line JSON document is kept as `value_text`, non-UTF-8 bytes as `value_hex`, a tombstone as
//! `"value": null`). Files are cut per partition by record count or age and named after the
//! partition and offset range they hold (`kafka-p0003-<first>-<last>.ndjson.zst`), written
//! create-only. The bronze files themselves say how far the topic was copied: on start the driver
//! lists them and resumes each partition after its highest offset, so a crash after a file was
//! written and before the group offsets were committed re-copies nothing; a crash before the
//! file was written re-reads it from Kafka. Group offsets are committed after each file, for
//! monitoring.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use strata_connectors::kafka::{KafkaSource, Positions};
use strata_layers::bronze::{BronzeDate, BronzeReader, BronzeWriter};
use strata_layers::lake::Lake;

use super::stream::{KafkaArgs, shutdown_signal};
use crate::Failure;

/// Flags of `stream bronze`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Kafka settings.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Lake root (folder, file:// or s3://).
    #[arg(long, env = "STRATA_LAKE", default_value = "lake")]
    pub lake: String,
    /// Bronze source name. Default: the topic.
    #[arg(long)]
    pub source: Option<String>,
    /// Cut a partition's file at this many records.
    #[arg(long, default_value_t = 100_000)]
    pub file_records: usize,
    /// Cut a partition's file when its first record is this old (milliseconds).
    #[arg(long, default_value_t = 60_000)]
    pub file_age_ms: u64,
}

/// One partition's open file.
#[derive(Default)]
struct Pending {
    lines: Vec<Vec<u8>>,
    first: Option<i64>,
    last: i64,
    since: Option<Instant>,
}

/// The bronze file name of a partition's offset range.
fn file_stem(partition: i32, first: i64, last: i64) -> String {
    format!("kafka-p{partition:04}-{first:020}-{last:020}")
}

/// `(partition, last offset)` of a name written by [`file_stem`].
fn parse_stem(name: &str) -> Option<(i32, i64)> {
    let rest = name.strip_prefix("kafka-p")?;
    let stem = rest.split('.').next()?;
    let mut parts = stem.split('-');
    let p = parts.next()?.parse().ok()?;
    let _first: i64 = parts.next()?.parse().ok()?;
    let last = parts.next()?.parse().ok()?;
    Some((p, last))
}

/// Appends `s` as a JSON string.
fn json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly as JSON requires.
    out.extend_from_slice(serde_json::to_string(s).unwrap_or_default().as_bytes());
}

/// The envelope line of record `i` of a Kafka input batch.
fn envelope(batch: &RecordBatch, i: usize) -> Vec<u8> {
    let col = |name: &str| batch.column_by_name(name);
    let mut out = Vec::with_capacity(256);
    let partition = col("_kafka_partition").map(|c| c.as_primitive::<Int32Type>().value(i));
    let offset = col("_kafka_offset").map(|c| c.as_primitive::<Int64Type>().value(i));
    out.extend_from_slice(
        format!(
            "{{\"partition\":{},\"offset\":{}",
            partition.unwrap_or(-1),
            offset.unwrap_or(-1)
        )
        .as_bytes(),
    );
    match col("_kafka_timestamp") {
        Some(c) if c.is_valid(i) => out.extend_from_slice(
            format!(
                ",\"timestamp\":{}",
                c.as_primitive::<TimestampMicrosecondType>().value(i) / 1000
            )
            .as_bytes(),
        ),
        _ => out.extend_from_slice(b",\"timestamp\":null"),
    }
    let bytes_field =
        |out: &mut Vec<u8>, name: &str, column: Option<&arrow::array::ArrayRef>| match column {
            Some(c) if c.is_valid(i) => {
                let v = c.as_binary::<i32>().value(i);
                match std::str::from_utf8(v) {
                    Ok(text) => {
                        out.extend_from_slice(format!(",\"{name}\":").as_bytes());
                        let one_line_json = !v.contains(&b'\n')
                            && serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok();
                        if name == "value" && one_line_json {
                            out.extend_from_slice(v);
                        } else if name == "value" {
                            out.truncate(out.len() - ",\"value\":".len());
                            out.extend_from_slice(b",\"value_text\":");
                            json_string(out, text);
                        } else {
                            json_string(out, text);
                        }
                    }
                    Err(_) => {
                        out.extend_from_slice(format!(",\"{name}_hex\":\"").as_bytes());
                        out.extend_from_slice(hex::encode(v).as_bytes());
                        out.push(b'"');
                    }
                }
            }
            _ => out.extend_from_slice(format!(",\"{name}\":null").as_bytes()),
        };
    bytes_field(&mut out, "key", col("_kafka_key"));
    match col("_kafka_headers") {
        // Already a JSON object, built by the Kafka source.
        Some(c) if c.is_valid(i) => {
            out.extend_from_slice(b",\"headers\":");
            out.extend_from_slice(c.as_string::<i32>().value(i).as_bytes());
        }
        _ => out.extend_from_slice(b",\"headers\":null"),
    }
    bytes_field(&mut out, "value", col("_raw"));
    out.push(b'}');
    out
}

/// Runs until idle (`--stop-when-idle-ms`), SIGTERM or Ctrl-C; open files are written first.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let writer = BronzeWriter::new(lake.clone());
    let reader = BronzeReader::new(lake);
    let source_name = args
        .source
        .clone()
        .unwrap_or_else(|| args.kafka.input_topic.clone());
    // Where each partition's copy ends, from the bronze files themselves.
    let mut start = Positions::new();
    for f in reader
        .list(&source_name, None, None)
        .await
        .map_err(Failure::runtime)?
    {
        let name = f.relative.rsplit('/').next().unwrap_or_default();
        if let Some((p, last)) = parse_stem(name) {
            let e = start.entry(p).or_insert(last + 1);
            *e = (*e).max(last + 1);
        }
    }
    let config = args.kafka.config()?;
    // The bronze files are the positions: read every partition explicitly (no group
    // rebalancing could hand a partition to another copier mid-file).
    let (assignment, instance) = args.kafka.explicit_assignment(&config)?;
    let group = args
        .kafka
        .group
        .clone()
        .unwrap_or_else(|| format!("strata-bronze-{source_name}"));
    let mut kafka = KafkaSource::open(
        &config,
        &args.kafka.input_topic,
        &group,
        &assignment,
        &start,
    )
    .map_err(Failure::runtime)?
    .with_source_name(source_name.clone());
    println!(
        "stream bronze: {} → bronze/source={source_name} (instance {instance}), resuming at {start:?}",
        args.kafka.input_topic
    );
    let mut pending: BTreeMap<i32, Pending> = BTreeMap::new();
    let mut stop = Box::pin(shutdown_signal());
    let max_wait = Duration::from_millis(args.kafka.max_wait_ms);
    let age = Duration::from_millis(args.file_age_ms);
    let mut last_data = Instant::now();
    let (mut files, mut records) = (0u64, 0u64);
    loop {
        let next = tokio::select! {
            _ = &mut stop => None,
            next = kafka.next_batch(args.kafka.max_rows, args.kafka.max_bytes, max_wait) => Some(next),
        };
        let stopping = match next {
            None => true,
            Some(next) => match next.map_err(Failure::runtime)? {
                Some(batch) => {
                    last_data = Instant::now();
                    let parts = batch
                        .column_by_name("_kafka_partition")
                        .map(|c| c.as_primitive::<Int32Type>().clone());
                    let offsets = batch
                        .column_by_name("_kafka_offset")
                        .map(|c| c.as_primitive::<Int64Type>().clone());
                    let (Some(parts), Some(offsets)) = (parts, offsets) else {
                        return Err(Failure::runtime(anyhow::anyhow!(
                            "a Kafka batch without positions"
                        )));
                    };
                    for i in 0..batch.num_rows() {
                        let p = pending.entry(parts.value(i)).or_default();
                        p.first.get_or_insert(offsets.value(i));
                        p.since.get_or_insert_with(Instant::now);
                        p.last = offsets.value(i);
                        p.lines.push(envelope(&batch, i));
                    }
                    records += batch.num_rows() as u64;
                    false
                }
                None => args
                    .kafka
                    .stop_when_idle_ms
                    .is_some_and(|ms| last_data.elapsed() >= Duration::from_millis(ms)),
            },
        };
        // Cut the files that are full or old (all of them when stopping), then commit offsets.
        let mut written = Positions::new();
        for (partition, p) in pending.iter_mut() {
            let due = p.lines.len() >= args.file_records
                || p.since.is_some_and(|s| s.elapsed() >= age)
                || stopping;
            let Some(first) = p.first.filter(|_| due && !p.lines.is_empty()) else {
                continue;
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(Failure::runtime)?;
            let date = BronzeDate::from_epoch_micros(now.as_micros() as i64);
            writer
                .put_ndjson(
                    &source_name,
                    date,
                    &file_stem(*partition, first, p.last),
                    &p.lines,
                )
                .await
                .map_err(Failure::runtime)?;
            files += 1;
            written.insert(*partition, p.last + 1);
            *p = Pending::default();
        }
        if !written.is_empty() {
            let _ = kafka.commit(&written);
        }
        if stopping {
            break;
        }
    }
    println!("stopped: {records} records copied into {files} bronze files");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_by_offset() {
        let a = file_stem(3, 0, 99);
        let b = file_stem(3, 100, 1_000);
        assert!(a < b);
        assert_eq!(parse_stem(&format!("{b}.ndjson.zst")), Some((3, 1_000)));
        assert_eq!(parse_stem("in-000001-000002.ndjson.zst"), None);
    }
}
