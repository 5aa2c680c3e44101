//! Dead letters: quarantined records as Kafka records for a dead-letter topic. The value is the
//! raw input, byte for byte, with its key; the reason, the step and the source position travel
//! in headers, so a consumer of the dead-letter topic can fix and replay without parsing an
//! envelope.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::DataType;
use strata_connectors::kafka::OutRecord;

/// Header keys of a dead letter.
pub mod headers {
    /// The step that quarantined the record.
    pub const STEP: &str = "strata.step";
    /// Why.
    pub const REASON: &str = "strata.reason";
    /// The topic it was read from.
    pub const SOURCE_TOPIC: &str = "strata.source.topic";
    /// Its partition.
    pub const SOURCE_PARTITION: &str = "strata.source.partition";
    /// Its offset.
    pub const SOURCE_OFFSET: &str = "strata.source.offset";
}

fn text(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let n = batch.num_rows();
    match batch
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
}

fn bytes(batch: &RecordBatch, name: &str) -> Vec<Option<Vec<u8>>> {
    let n = batch.num_rows();
    match batch
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
}

/// The dead-letter records of a quarantine batch (the pipeline's quarantine schema), for `topic`.
pub fn dead_letters(quarantined: &RecordBatch, topic: &str) -> Vec<OutRecord> {
    if quarantined.num_rows() == 0 {
        return Vec::new();
    }
    let (raw, keys) = (bytes(quarantined, "_raw"), bytes(quarantined, "_kafka_key"));
    let columns = [
        (headers::STEP, text(quarantined, "_step")),
        (headers::REASON, text(quarantined, "_reason")),
        (headers::SOURCE_TOPIC, text(quarantined, "_kafka_topic")),
        (
            headers::SOURCE_PARTITION,
            text(quarantined, "_kafka_partition"),
        ),
        (headers::SOURCE_OFFSET, text(quarantined, "_kafka_offset")),
    ];
    raw.into_iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (value, key))| OutRecord {
            topic: topic.to_string(),
            key,
            value,
            headers: columns
                .iter()
                .filter_map(|(k, values)| {
                    values[i]
                        .as_ref()
                        .map(|v| (k.to_string(), v.as_bytes().to_vec()))
                })
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BinaryArray, Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn a_dead_letter_keeps_the_raw_bytes_and_says_why_and_where() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("_raw", DataType::Binary, true),
            Field::new("_step", DataType::Utf8, true),
            Field::new("_reason", DataType::Utf8, true),
            Field::new("_kafka_topic", DataType::Utf8, true),
            Field::new("_kafka_partition", DataType::Int32, true),
            Field::new("_kafka_offset", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(BinaryArray::from(vec![Some(&b"{oops\xff"[..])])),
                Arc::new(StringArray::from(vec![Some("parse")])),
                Arc::new(StringArray::from(vec![Some("malformed JSON")])),
                Arc::new(StringArray::from(vec![Some("iot.events")])),
                Arc::new(Int32Array::from(vec![Some(3)])),
                Arc::new(Int64Array::from(vec![Some(42)])),
            ],
        )
        .expect("batch");
        let out = dead_letters(&batch, "iot.dlq");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "iot.dlq");
        assert_eq!(out[0].value.as_deref(), Some(&b"{oops\xff"[..]));
        assert_eq!(out[0].key, None);
        let h: Vec<(&str, &[u8])> = out[0]
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            h,
            vec![
                (headers::STEP, &b"parse"[..]),
                (headers::REASON, b"malformed JSON"),
                (headers::SOURCE_TOPIC, b"iot.events"),
                (headers::SOURCE_PARTITION, b"3"),
                (headers::SOURCE_OFFSET, b"42"),
            ]
        );
    }
}
