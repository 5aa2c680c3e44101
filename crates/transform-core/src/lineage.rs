//! Lineage columns: how any output or quarantine row is traced back to its raw record.
//!
//! Drivers supply them with the input (the core does no I/O and cannot know offsets or files).
//! Every input column whose name starts with `_` — except the raw payload column — is lineage:
//! steps never see it, and the pipeline re-attaches it to output and quarantine rows by row id.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The raw payload column (bytes as received).
pub const RAW: &str = "_raw";
/// Logical source name, e.g. `iot` or `mysql.shop.orders`.
pub const SOURCE: &str = "_source";
/// When the driver read the record.
pub const INGESTED_AT: &str = "_ingested_at";
/// Bronze / input file path.
pub const FILE: &str = "_file";
/// 1-based line number in `_file`.
pub const LINE: &str = "_line";
/// Kafka topic.
pub const KAFKA_TOPIC: &str = "_kafka_topic";
/// Kafka partition.
pub const KAFKA_PARTITION: &str = "_kafka_partition";
/// Kafka offset.
pub const KAFKA_OFFSET: &str = "_kafka_offset";
/// Kafka record timestamp (create or log-append time).
pub const KAFKA_TIMESTAMP: &str = "_kafka_timestamp";
/// Kafka record key (bytes as received).
pub const KAFKA_KEY: &str = "_kafka_key";
/// Kafka record headers as a JSON object (`{"name": "value"}`, values as UTF-8 text), or null.
pub const KAFKA_HEADERS: &str = "_kafka_headers";

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
}

/// Input schema of records read from files: raw bytes plus source, ingest time, file and line.
pub fn file_input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(RAW, DataType::Binary, true),
        Field::new(SOURCE, DataType::Utf8, false),
        Field::new(INGESTED_AT, ts(), false),
        Field::new(FILE, DataType::Utf8, false),
        Field::new(LINE, DataType::UInt64, false),
    ]))
}

/// Input schema of records consumed from Kafka: raw value plus topic, partition, offset, record
/// timestamp and key.
pub fn kafka_input_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(RAW, DataType::Binary, true),
        Field::new(SOURCE, DataType::Utf8, false),
        Field::new(INGESTED_AT, ts(), false),
        Field::new(KAFKA_TOPIC, DataType::Utf8, false),
        Field::new(KAFKA_PARTITION, DataType::Int32, false),
        Field::new(KAFKA_OFFSET, DataType::Int64, false),
        Field::new(KAFKA_TIMESTAMP, ts(), true),
        Field::new(KAFKA_KEY, DataType::Binary, true),
        Field::new(KAFKA_HEADERS, DataType::Utf8, true),
    ]))
}

/// True for names reserved for lineage / metadata.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with('_')
}

/// Builds a batch of [`file_input_schema`] from raw records of one file.
///
/// `first_line` is the 1-based line number of `records[0]`; `ingested_at_micros` is the
/// driver's clock (injected, so tests are deterministic).
pub fn file_batch<R: AsRef<[u8]>>(
    records: &[R],
    source: &str,
    file: &str,
    first_line: u64,
    ingested_at_micros: i64,
) -> crate::Result<arrow::array::RecordBatch> {
    use arrow::array::{BinaryArray, StringArray, TimestampMicrosecondArray, UInt64Array};
    let n = records.len();
    let columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(BinaryArray::from_iter_values(
            records.iter().map(|r| r.as_ref()),
        )),
        Arc::new(StringArray::from(vec![source; n])),
        Arc::new(TimestampMicrosecondArray::from(vec![ingested_at_micros; n]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec![file; n])),
        Arc::new(UInt64Array::from_iter_values(
            first_line..first_line + n as u64,
        )),
    ];
    Ok(arrow::array::RecordBatch::try_new(
        file_input_schema(),
        columns,
    )?)
}
