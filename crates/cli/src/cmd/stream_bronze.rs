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

use arrow::array::AsArray;
use arrow::datatypes::{Int32Type, Int64Type};
use strata_connectors::kafka::{KafkaSource, Positions};
use strata_layers::bronze::{BronzeDate, BronzeReader, BronzeWriter};
use strata_layers::lake::Lake;

use strata_runtime::bronze_copy::{envelope, file_stem, parse_stem};

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
