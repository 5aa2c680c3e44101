//! The contract between the IoT producer (`examples/iot_producer.rs`, which sends
//! `sample::iot_events_of_devices`) and `pipelines/iot.yaml`, on the traffic real fleets send:
//! valid readings with null temperatures are kept (a missing reading is valid data), and a
//! gateway re-delivering hours later is deduplicated.

mod common;

use arrow::array::{Array, AsArray};
use arrow::datatypes::Float64Type;
use strata_core::sample::{IotFaults, iot_events_of_devices};

const START_MS: i64 = 1_763_646_312_000;

#[test]
fn null_temperatures_are_kept_and_redeliveries_hours_later_are_dropped() {
    let clean = IotFaults {
        malformed: 0.0,
        invalid: 0.0,
        duplicates: 0.0,
    };
    // ~2 hours of a 200-device fleet (one event each 10 ms → 720,000 would be 2 h; 20,000 events
    // spread over 2 h by shifting each event's time).
    let mut lines = iot_events_of_devices(20_000, 200, 5, clean, START_MS);
    let mut nulls = 0;
    for (i, line) in lines.iter_mut().enumerate() {
        let mut v: serde_json::Value = serde_json::from_str(line).expect("generated JSON");
        let ts = START_MS + i as i64 * 360; // 20,000 events over 2 hours
        v["ts"] = serde_json::json!(strata_core::sample::iso_millis(ts));
        if i % 97 == 0 {
            v["temperature"] = serde_json::Value::Null;
            nulls += 1;
        }
        *line = v.to_string();
    }
    // The gateway comes back from an outage and re-sends the first 300 events, 2 h later.
    let redelivered: Vec<String> = lines[..300].to_vec();
    lines.extend(redelivered);

    let mut pipeline = common::build(&common::iot_spec());
    let mut rows = Vec::new();
    let mut quarantined = 0;
    for (k, chunk) in lines.chunks(4096).enumerate() {
        let out = pipeline
            .process(&common::input(chunk, (k * 4096) as u64 + 1))
            .expect("process");
        quarantined += out.quarantined.num_rows();
        rows.extend(out.rows);
    }
    let out = pipeline.finish().expect("finish");
    quarantined += out.quarantined.num_rows();
    rows.extend(out.rows);
    assert_eq!(quarantined, 0, "valid readings quarantined");
    let total: usize = rows.iter().map(|b| b.num_rows()).sum();
    assert_eq!(
        total, 20_000,
        "every reading once, every re-delivered copy dropped"
    );
    let null_temps: usize = rows
        .iter()
        .map(|b| {
            b.column_by_name("temperature")
                .expect("temperature")
                .as_primitive::<Float64Type>()
                .null_count()
        })
        .sum();
    assert_eq!(null_temps, nulls, "null readings are kept as null");
    for b in &rows {
        for (field, column) in b.schema().fields().iter().zip(b.columns()) {
            if field.name() == "temperature" || field.name() == "temp_f" {
                continue;
            }
            assert_eq!(column.null_count(), 0, "column `{}`", field.name());
        }
    }
}
