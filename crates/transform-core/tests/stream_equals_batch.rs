//! The central contract: for any input and any split into micro-batches, streaming (`process`
//! per chunk, then `finish`) equals batch (one `process`, then `finish`) — rows, quarantine
//! (raw, step, reason, lineage) and dedup included. And a checkpoint/restore anywhere in the
//! stream changes nothing.

mod common;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use common::*;
use proptest::prelude::*;
use strata_core::sample::{IotFaults, iot_events};
use strata_core::{Pipeline, PipelineSpec};

fn concat(schema: arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    concat_batches(&schema, batches).expect("concat")
}

/// The IoT pipeline with dedup bounds small enough that eviction by count and by TTL happen.
fn tight_dedup_spec() -> PipelineSpec {
    let mut spec = iot_spec();
    for step in &mut spec.steps {
        if let strata_core::spec::StepSpec::Dedup(d) = step {
            d.max_keys = Some(7);
            d.ttl = Some("2s".into());
        }
    }
    spec
}

/// Lines: generated events (valid, malformed, wrong-typed, duplicated) plus arbitrary bytes.
fn lines_strategy() -> impl Strategy<Value = Vec<String>> {
    (
        any::<u64>(),
        0usize..300,
        proptest::collection::vec("\\PC{0,20}", 0..5),
    )
        .prop_map(|(seed, n, junk)| {
            let faults = IotFaults {
                malformed: 0.05,
                invalid: 0.05,
                duplicates: 0.15,
            };
            let mut lines = iot_events(n, seed, faults, 1_763_646_312_000);
            for (i, j) in junk.into_iter().enumerate() {
                let at = (seed as usize).wrapping_add(i * 31) % (lines.len() + 1);
                lines.insert(at, j);
            }
            lines
        })
}

fn splits_strategy() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0usize..60, 0..12)
}

fn assert_same(
    spec: &PipelineSpec,
    lines: &[String],
    splits: &[usize],
) -> Result<(), TestCaseError> {
    let mut whole = build(spec);
    let batch = run_chunks(&mut whole, lines, &[]);
    let mut streamed = build(spec);
    let stream = run_chunks(&mut streamed, lines, splits);
    let out = whole.output_schema();
    let q = whole.quarantine_schema();
    prop_assert_eq!(concat(out.clone(), &batch.rows), concat(out, &stream.rows));
    prop_assert_eq!(
        concat(q.clone(), &batch.quarantine),
        concat(q, &stream.quarantine)
    );
    prop_assert_eq!(whole.metrics(), streamed.metrics());
    prop_assert_eq!(
        batch.num_rows() + batch.num_quarantined() + whole.metrics().dropped as usize,
        lines.len(),
        "every line is accounted for: output, quarantine or counted drop"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn streaming_equals_batch_for_the_iot_pipeline(lines in lines_strategy(), splits in splits_strategy()) {
        assert_same(&iot_spec(), &lines, &splits)?;
    }

    #[test]
    fn streaming_equals_batch_with_dedup_eviction(lines in lines_strategy(), splits in splits_strategy()) {
        assert_same(&tight_dedup_spec(), &lines, &splits)?;
    }

    #[test]
    fn checkpoint_restore_anywhere_changes_nothing(lines in lines_strategy(), cut in any::<prop::sample::Index>(), splits in splits_strategy()) {
        for spec in [iot_spec(), tight_dedup_spec()] {
            let mut uninterrupted = build(&spec);
            let expected = run_chunks(&mut uninterrupted, &lines, &splits);

            let cut = cut.index(lines.len() + 1);
            let mut first = build(&spec);
            let mut got = Collected::new();
            if cut > 0 {
                got.add(first.process(&input(&lines[..cut], 1)).expect("process"));
            }
            let state = first.checkpoint().expect("checkpoint");
            drop(first);
            let mut second: Pipeline = build(&spec);
            second.restore(&state).expect("restore");
            got.add(second.process(&input(&lines[cut..], cut as u64 + 1)).expect("process"));
            got.add(second.finish().expect("finish"));

            let out = uninterrupted.output_schema();
            let q = uninterrupted.quarantine_schema();
            prop_assert_eq!(concat(out.clone(), &expected.rows), concat(out, &got.rows));
            prop_assert_eq!(concat(q.clone(), &expected.quarantine), concat(q, &got.quarantine));
        }
    }

    #[test]
    fn a_full_checkpoint_and_its_deltas_restore_exactly_the_state(
        lines in lines_strategy(),
        cuts in proptest::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 1..8),
    ) {
        for spec in [iot_spec(), tight_dedup_spec()] {
            let mut cuts: Vec<(usize, bool)> =
                cuts.iter().map(|(i, full)| (i.index(lines.len() + 1), *full)).collect();
            cuts.sort();
            let mut live = build(&spec);
            let (mut at, mut chain): (usize, Vec<Vec<u8>>) = (0, Vec::new());
            for (i, (cut, full)) in cuts.iter().enumerate() {
                if *cut > at {
                    live.process(&input(&lines[at..*cut], at as u64 + 1)).expect("process");
                    at = *cut;
                }
                // The first checkpoint is full; later ones are deltas unless drawn full.
                let full = i == 0 || *full;
                let bytes = live.checkpoint_incremental(full).expect("checkpoint");
                if full {
                    chain.clear();
                }
                chain.push(bytes);
            }
            let mut restored = build(&spec);
            restored.restore_chain(&chain[0], &chain[1..]).expect("restore chain");
            let rest = &lines[at..];
            let a = live.process(&input(rest, at as u64 + 1)).expect("process");
            let b = restored.process(&input(rest, at as u64 + 1)).expect("process");
            let out = live.output_schema();
            prop_assert_eq!(concat(out.clone(), &a.rows), concat(out, &b.rows));
            prop_assert_eq!(a.metrics, b.metrics);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_parse_json(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..40)) {
        let mut p = build(&iot_spec());
        let batch = strata_core::lineage::file_batch(&records, "fuzz", "f", 1, 0).expect("batch");
        let out = p.process(&batch).expect("bad bytes are quarantined, not errors");
        prop_assert_eq!(out.num_rows() + out.quarantined.num_rows() + out.metrics.dropped as usize, records.len());
    }

    #[test]
    fn json_shaped_garbage_never_panics(records in proptest::collection::vec(json_like(), 0..40)) {
        let mut p = build(&iot_spec());
        let batch = strata_core::lineage::file_batch(&records, "fuzz", "f", 1, 0).expect("batch");
        let out = p.process(&batch).expect("bad records are quarantined, not errors");
        prop_assert_eq!(out.num_rows() + out.quarantined.num_rows() + out.metrics.dropped as usize, records.len());
    }
}

/// Objects with the IoT field names and values of every JSON kind, so structural mismatches
/// (an object where a number belongs, a list where a struct belongs) are exercised.
fn json_like() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>()
            .prop_filter("finite", |v| v.is_finite())
            .prop_map(|v| v.to_string()),
        "[a-z0-9 :.-]{0,12}".prop_map(|s| format!("\"{s}\"")),
        Just("[1,\"x\",{}]".to_string()),
        Just("{\"lat\":\"x\",\"lon\":[1]}".to_string()),
        Just("\"2026-11-20T13:45:12Z\"".to_string()),
    ];
    let keys = prop_oneof![
        Just("device_id"),
        Just("ts"),
        Just("seq"),
        Just("temperature"),
        Just("humidity"),
        Just("battery"),
        Just("location"),
        Just("tags"),
        Just("owner_email"),
        Just("other")
    ];
    proptest::collection::vec((keys, value), 0..10).prop_map(|fields| {
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    })
}
