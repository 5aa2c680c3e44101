//! `pipelines/iot.yaml` end to end on hand-written events: every fault lands where it should.

mod common;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use common::*;

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const GOOD: &str = r#"{"device_id":"dev-00042","ts":"2026-11-20T13:45:12.123Z","seq":18231,"temperature":21.5,"humidity":48.2,"battery":87,"location":{"lat":-23.5505,"lon":-46.6333,"site":"SP-01"},"tags":["line-3","cold-room"],"owner_email":"ops@example.com"}"#;

#[test]
fn the_sample_event_comes_out_typed_flattened_derived_and_masked() {
    let mut p = build(&iot_spec());
    let c = run_chunks(&mut p, &lines(&[GOOD]), &[]);
    assert_eq!(c.num_rows(), 1, "{}", c.quarantine_text());
    let b: &RecordBatch = &c.rows[0];
    let col = |n: &str| {
        b.column_by_name(n)
            .unwrap_or_else(|| panic!("no column {n}"))
            .clone()
    };
    assert_eq!(
        col("temperature").as_primitive::<Float64Type>().value(0),
        21.5
    );
    assert!((col("temp_f").as_primitive::<Float64Type>().value(0) - 70.7).abs() < 1e-9);
    assert_eq!(col("location_site").as_string::<i32>().value(0), "SP-01");
    assert_eq!(col("seq").as_primitive::<Int64Type>().value(0), 18231);
    // sha256("ops@example.com")
    assert_eq!(
        col("owner_email").as_string::<i32>().value(0),
        sha256_hex("ops@example.com")
    );
    assert_eq!(
        b.column_by_name("_line")
            .unwrap()
            .as_primitive::<arrow::datatypes::UInt64Type>()
            .value(0),
        1
    );
    let printed = c.rows_text();
    assert!(printed.contains("2026-11-20"), "{printed}");
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[test]
fn each_fault_is_quarantined_alone_with_its_reason() {
    let bad_json = r#"{"device_id":"dev-1","ts":"#;
    let text_temp = GOOD.replace("21.5", "\"n/a\"");
    let hot = GOOD.replace("21.5", "500.0");
    let no_id = GOOD.replace("\"dev-00042\"", "null");
    let bad_ts = GOOD.replace("2026-11-20T13:45:12.123Z", "yesterday");
    let wrong_shape = GOOD.replace(
        "{\"lat\":-23.5505,\"lon\":-46.6333,\"site\":\"SP-01\"}",
        "\"somewhere\"",
    );
    let bad_id = GOOD.replace("dev-00042", "sensor-9");
    let string_temp = GOOD.replace("21.5", "\"21.5\"").replace("18231", "18232");
    let epoch_ts = GOOD
        .replace("\"2026-11-20T13:45:12.123Z\"", "1763646312123")
        .replace("18231", "18233");
    let input = vec![
        GOOD.to_string(),
        bad_json.to_string(),
        text_temp,
        hot,
        no_id,
        bad_ts,
        wrong_shape,
        GOOD.to_string(), // duplicate of line 1
        bad_id,
        string_temp,
        epoch_ts,
        "[1,2]".to_string(),
    ];
    let mut p = build(&iot_spec());
    let c = run_chunks(&mut p, &input, &[]);
    let q = c.quarantine_text();
    assert_eq!(
        c.num_rows(),
        3,
        "rows:\n{}\nquarantine:\n{q}",
        c.rows_text()
    );
    assert_eq!(c.num_quarantined(), 8, "{q}");
    for expected in [
        "not valid JSON",
        "column `temperature`: value \"n/a\" cannot be cast to float64",
        "expectation `temperature_range` failed",
        "required field `device_id` is missing or null",
        "field `ts`: \"yesterday\" is not a valid timestamp(us)",
        "does not fit the declared schema",
        "expectation `device_id_format` failed",
        "JSON value is not an object",
    ] {
        assert!(q.contains(expected), "missing `{expected}` in\n{q}");
    }
    let m = p.metrics();
    assert_eq!(m.rows_in, 12);
    assert_eq!(m.rows_out, 3);
    assert_eq!(m.quarantined, 8);
    assert_eq!(m.duplicates(), 1);
    let expect = m.steps.iter().find(|s| s.kind == "expect").unwrap();
    let range = expect
        .rules
        .iter()
        .find(|r| r.rule == "temperature_range")
        .unwrap();
    assert_eq!(range.failed, 1);
    // Quarantine keeps the raw bytes and lineage of the exact line.
    let qb = &c.quarantine[0];
    let lines_col = qb
        .column_by_name("_line")
        .unwrap()
        .as_primitive::<arrow::datatypes::UInt64Type>();
    assert_eq!(lines_col.values().to_vec(), vec![2, 3, 4, 5, 6, 7, 9, 12]);
    assert_eq!(
        qb.column_by_name("_raw")
            .unwrap()
            .as_binary::<i32>()
            .value(0),
        bad_json.as_bytes()
    );
}
