//! The bronze copy of a Kafka topic (`strata stream bronze`): its file names and its envelope,
//! both ways.
//!
//! Each record is one NDJSON line `{"partition","offset","timestamp","key","headers","value"}`
//! where `value` is the record's own JSON text, byte for byte (a value that is not a one-line
//! JSON document is kept as `value_text`, non-UTF-8 bytes as `value_hex`, a tombstone as
//! `"value": null`). Files are named after the partition and offset range they hold
//! (`kafka-p0003-<first>-<last>.ndjson.zst`).
//!
//! Reading such a file back for a pipeline ([`unwrap_values`]) hands the pipeline the record's
//! value exactly as the streaming driver would have seen it on the topic, so the same pipeline
//! gives the same rows over the topic and over its bronze copy.

use std::sync::Arc;

use arrow::array::{Array, AsArray, BinaryArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type, TimestampMicrosecondType};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{Result, RuntimeError};

/// The bronze file name of a partition's offset range.
pub fn file_stem(partition: i32, first: i64, last: i64) -> String {
    format!("kafka-p{partition:04}-{first:020}-{last:020}")
}

/// `(partition, last offset)` of a name written by [`file_stem`].
pub fn parse_stem(name: &str) -> Option<(i32, i64)> {
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
pub fn envelope(batch: &RecordBatch, i: usize) -> Vec<u8> {
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

/// True for a file name [`file_stem`] wrote.
pub fn is_kafka_copy(name: &str) -> bool {
    parse_stem(name.rsplit('/').next().unwrap_or(name)).is_some()
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(default)]
    value_text: Option<String>,
    #[serde(default)]
    value_hex: Option<String>,
}

/// The record value an envelope line holds: `Some(bytes)`, `None` for a tombstone; an
/// envelope that cannot be read is handed on as it is (the pipeline quarantines it with its
/// reason, so nothing disappears).
fn value_of(line: &[u8]) -> Option<Vec<u8>> {
    let Ok(e) = serde_json::from_slice::<Envelope<'_>>(line) else {
        return Some(line.to_vec());
    };
    if let Some(v) = e.value {
        return Some(v.get().as_bytes().to_vec());
    }
    if let Some(t) = e.value_text {
        return Some(t.into_bytes());
    }
    if let Some(h) = e.value_hex {
        return Some(hex::decode(h.as_bytes()).unwrap_or_else(|_| line.to_vec()));
    }
    None
}

/// Replaces each `_raw` envelope line of a bronze batch by the record value it holds.
pub fn unwrap_values(batch: &RecordBatch) -> Result<RecordBatch> {
    let Ok(index) = batch.schema().index_of(strata_core::lineage::RAW) else {
        return Ok(batch.clone());
    };
    let raw = batch.column(index).as_binary::<i32>();
    let values: BinaryArray = raw.iter().map(|line| line.and_then(value_of)).collect();
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(values);
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| RuntimeError::Stage {
        stage: "source",
        message: format!("unwrapping Kafka envelopes: {e}"),
    })
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
        assert!(is_kafka_copy(&format!(
            "bronze/source=x/date=2026-01-01/{b}.ndjson.zst"
        )));
    }

    #[test]
    fn envelopes_give_back_the_value_byte_for_byte() {
        let lines: Vec<&[u8]> = vec![
            br#"{"partition":0,"offset":1,"timestamp":null,"key":null,"headers":null,"value":{"b": 1,  "a":[1, 2]}}"#,
            br#"{"partition":0,"offset":2,"timestamp":null,"key":null,"headers":null,"value_text":"not json"}"#,
            br#"{"partition":0,"offset":3,"timestamp":null,"key":null,"headers":null,"value_hex":"ff00"}"#,
            br#"{"partition":0,"offset":4,"timestamp":null,"key":null,"headers":null,"value":null}"#,
            b"garbage",
        ];
        let batch = strata_core::lineage::file_batch(&lines, "s", "f", 1, 0).unwrap();
        let out = unwrap_values(&batch).unwrap();
        let raw = out.column(0).as_binary::<i32>();
        assert_eq!(raw.value(0), br#"{"b": 1,  "a":[1, 2]}"#);
        assert_eq!(raw.value(1), b"not json");
        assert_eq!(raw.value(2), [0xff, 0x00]);
        assert!(raw.is_null(3), "a tombstone has no value");
        assert_eq!(raw.value(4), b"garbage");
    }
}
