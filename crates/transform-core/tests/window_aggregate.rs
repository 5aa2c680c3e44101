//! `window_aggregate` through the real IoT pipeline: windows hold exactly their rows, late rows
//! are quarantined with their reason, hopping windows count a row in each of its windows,
//! streaming ≡ batch for any split (proptest), and checkpoint → restore anywhere changes nothing.

mod common;

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType, UInt64Type};
use common::*;
use proptest::prelude::*;
use strata_core::sample::{IotFaults, iot_events};
use strata_core::{BuildContext, Pipeline, PipelineSpec};

const START_MS: i64 = 1_763_646_312_000;

/// The shipped IoT pipeline with a window step at the end instead of its row output.
fn window_spec(size: &str, slide: Option<&str>, lateness: &str) -> PipelineSpec {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot.yaml"
    ))
    .expect("iot.yaml");
    let steps = &text[..text.find("\noutput:").expect("output section")];
    let slide = slide
        .map(|s| format!("    slide: {s}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "{steps}
  - type: window_aggregate
    name: per_site
    event_time: ts
    size: {size}
{slide}    allowed_lateness: {lateness}
    group_by: [location_site]
    aggregates:
      readings: {{fn: count}}
      avg_temp: {{fn: avg, column: temperature}}
      max_temp: {{fn: max, column: temperature}}
      total_humidity: {{fn: sum, column: humidity}}
      devices: {{fn: approx_count_distinct, column: device_id}}
output:
  schema:
    location_site: string
    window_start: timestamp not null
    window_end: timestamp not null
    readings: int64 not null
    avg_temp: float64
    max_temp: float64
    total_humidity: float64
    devices: uint64 not null
"
    );
    PipelineSpec::from_yaml(&yaml).expect("window spec parses")
}

fn concat(schema: arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&schema, batches).expect("concat")
}

fn lines(n: usize, seed: u64) -> Vec<String> {
    iot_events(
        n,
        seed,
        IotFaults {
            malformed: 0.03,
            invalid: 0.03,
            duplicates: 0.05,
        },
        START_MS,
    )
}

/// Rows of every (site, window start) → readings.
fn readings(rows: &RecordBatch) -> BTreeMap<(String, i64), i64> {
    let site = rows.column_by_name("location_site").expect("site");
    let start = rows
        .column_by_name("window_start")
        .expect("start")
        .as_primitive::<TimestampMicrosecondType>();
    let n = rows
        .column_by_name("readings")
        .expect("readings")
        .as_primitive::<Int64Type>();
    (0..rows.num_rows())
        .map(|i| {
            let s = arrow::util::display::array_value_to_string(site, i).expect("site text");
            ((s, start.value(i)), n.value(i))
        })
        .collect()
}

#[test]
fn windows_hold_their_rows_and_late_rows_are_quarantined_with_a_reason() {
    let spec = window_spec("1s", None, "0s");
    let mut p = build(&spec);
    let data = lines(2000, 7);
    let got = run_chunks(&mut p, &data, &[500, 500, 500]);
    let out = p.output_schema();
    let rows = concat(out.clone(), &got.rows);
    let q = concat(p.quarantine_schema(), &got.quarantine);

    // The same pipeline without the window: the rows the windows were built from.
    let mut plain = Pipeline::build(
        &iot_spec(),
        strata_core::lineage::file_input_schema(),
        &BuildContext::default(),
    )
    .expect("plain");
    let base = run_chunks(&mut plain, &data, &[]);
    let base_rows = concat(plain.output_schema(), &base.rows);
    let late: Vec<String> = (0..q.num_rows())
        .filter(|&i| q.column(1).as_string::<i32>().value(i) == "per_site")
        .map(|i| q.column(2).as_string::<i32>().value(i).to_string())
        .collect();
    assert!(!late.is_empty(), "2% of the events are minutes late");
    assert!(
        late.iter()
            .all(|r| r.starts_with("late: event time") && r.contains("already emitted")),
        "{late:?}"
    );
    let counted: i64 = readings(&rows).values().sum();
    assert_eq!(
        counted as usize + late.len(),
        base_rows.num_rows(),
        "every row is in a window or quarantined"
    );

    // Tumbling: each window is [start, start + 1 s) and windows come out ordered by end.
    let start = rows
        .column_by_name("window_start")
        .expect("s")
        .as_primitive::<TimestampMicrosecondType>();
    let end = rows
        .column_by_name("window_end")
        .expect("e")
        .as_primitive::<TimestampMicrosecondType>();
    for i in 0..rows.num_rows() {
        assert_eq!(end.value(i) - start.value(i), 1_000_000);
        assert_eq!(start.value(i) % 1_000_000, 0);
        if i > 0 {
            assert!(end.value(i) >= end.value(i - 1));
        }
    }
    // The aggregates agree with the rows they came from (recomputed here, per window and site).
    let max = rows
        .column_by_name("max_temp")
        .expect("max")
        .as_primitive::<Float64Type>();
    let devices = rows
        .column_by_name("devices")
        .expect("dev")
        .as_primitive::<UInt64Type>();
    let counts = rows
        .column_by_name("readings")
        .expect("n")
        .as_primitive::<Int64Type>();
    for i in 0..rows.num_rows() {
        assert!(devices.value(i) >= 1 && devices.value(i) <= counts.value(i) as u64 + 1);
        assert!(max.is_null(i) || max.value(i) <= 50.0);
    }
    // Lineage: aggregated rows come from no single input row.
    assert_eq!(
        rows.column_by_name("_line").map(|c| c.null_count()),
        Some(rows.num_rows())
    );
}

#[test]
fn hopping_windows_count_each_row_in_every_window_it_falls_in() {
    let mut tumbling = build(&window_spec("1s", None, "5s"));
    let mut hopping = build(&window_spec("1s", Some("500ms"), "5s"));
    let data = lines(1500, 3);
    let t = run_chunks(&mut tumbling, &data, &[]);
    let h = run_chunks(&mut hopping, &data, &[]);
    let t_total: i64 = readings(&concat(tumbling.output_schema(), &t.rows))
        .values()
        .sum();
    let h_total: i64 = readings(&concat(hopping.output_schema(), &h.rows))
        .values()
        .sum();
    let t_late = concat(tumbling.quarantine_schema(), &t.quarantine).num_rows();
    let h_late = concat(hopping.quarantine_schema(), &h.quarantine).num_rows();
    assert_eq!(
        t_late, h_late,
        "with the same lateness the same rows are late"
    );
    assert_eq!(
        h_total,
        2 * t_total,
        "size/slide = 2: every row is in two windows"
    );
}

#[test]
fn the_step_must_be_last_and_its_spec_is_checked() {
    let mut spec = window_spec("1s", None, "0s");
    let last = spec.steps.pop().expect("window");
    spec.steps.insert(spec.steps.len() - 1, last);
    let Err(e) = Pipeline::build(
        &spec,
        strata_core::lineage::file_input_schema(),
        &BuildContext::default(),
    ) else {
        panic!("a window step before other steps is refused");
    };
    assert!(e.to_string().contains("must be the last step"), "{e}");
    for (size, slide) in [("1s", Some("2s")), ("1s", Some("300ms")), ("0s", None)] {
        let Err(e) = Pipeline::build(
            &window_spec(size, slide, "0s"),
            strata_core::lineage::file_input_schema(),
            &BuildContext::default(),
        ) else {
            panic!("size {size} slide {slide:?} is refused");
        };
        assert!(e.to_string().contains("per_site"), "{e}");
    }
}

#[test]
fn a_foreign_or_corrupt_checkpoint_is_a_clear_error() {
    let spec = window_spec("1s", None, "0s");
    let mut p = build(&spec);
    run_chunks(&mut p, &lines(300, 1), &[100]);
    let state = p.checkpoint().expect("checkpoint");
    let mut other = build(&window_spec("2s", None, "0s"));
    let e = other
        .restore(&state)
        .expect_err("other windows cannot continue this state");
    assert!(
        e.to_string().contains("changed since its state was saved"),
        "{e}"
    );
    let mut corrupt = state.clone();
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0x55;
    let mut fresh = build(&spec);
    assert!(fresh.restore(&corrupt).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn streaming_equals_batch_for_windows(
        seed in any::<u64>(),
        n in 0usize..400,
        splits in proptest::collection::vec(0usize..80, 0..10),
        hopping in any::<bool>(),
        lateness in prop::sample::select(vec!["0s", "200ms", "2s"]),
    ) {
        let spec = window_spec("500ms", hopping.then_some("250ms"), lateness);
        let data = lines(n, seed);
        let mut whole = build(&spec);
        let batch = run_chunks(&mut whole, &data, &[]);
        let mut streamed = build(&spec);
        let stream = run_chunks(&mut streamed, &data, &splits);
        let out = whole.output_schema();
        let q = whole.quarantine_schema();
        prop_assert_eq!(concat(out.clone(), &batch.rows), concat(out, &stream.rows));
        prop_assert_eq!(concat(q.clone(), &batch.quarantine), concat(q, &stream.quarantine));
        prop_assert_eq!(whole.metrics(), streamed.metrics());
    }

    #[test]
    fn checkpoint_restore_anywhere_changes_nothing_for_windows(
        seed in any::<u64>(),
        n in 0usize..400,
        cut in any::<prop::sample::Index>(),
        hopping in any::<bool>(),
    ) {
        let spec = window_spec("500ms", hopping.then_some("250ms"), "200ms");
        let data = lines(n, seed);
        let mut uninterrupted = build(&spec);
        let expected = run_chunks(&mut uninterrupted, &data, &[]);
        let cut = cut.index(data.len() + 1);
        let mut first = build(&spec);
        let mut got = Collected::new();
        if cut > 0 {
            got.add(first.process(&input(&data[..cut], 1)).expect("process"));
        }
        let state = first.checkpoint().expect("checkpoint");
        drop(first);
        let mut second = build(&spec);
        second.restore(&state).expect("restore");
        got.add(second.process(&input(&data[cut..], cut as u64 + 1)).expect("process"));
        got.add(second.finish().expect("finish"));
        let out = uninterrupted.output_schema();
        let q = uninterrupted.quarantine_schema();
        prop_assert_eq!(concat(out.clone(), &expected.rows), concat(out, &got.rows));
        prop_assert_eq!(concat(q.clone(), &expected.quarantine), concat(q, &got.quarantine));
    }
}

#[test]
fn the_shipped_rollup_pipeline_runs() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot_rollup.yaml"
    ))
    .expect("yaml");
    let spec = PipelineSpec::from_yaml(&text).expect("spec");
    let mut p = build(&spec);
    let data = iot_events(30000, 1, IotFaults::default(), START_MS);
    let got = run_chunks(&mut p, &data, &[8192, 8192, 8192]);
    assert!(!got.rows.is_empty());
}
