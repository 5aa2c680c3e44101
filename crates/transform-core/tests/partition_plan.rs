//! A pipeline cut by its [`PartitionPlan`] and run on N workers (the prefix anywhere, a hash
//! repartition on the stateful step's keys, the suffix per partition in input order) gives the
//! same rows and the same quarantine as one process — the rule `strata.spark.transform` runs by.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use arrow::array::{Array, RecordBatch, UInt32Array};
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::util::display::array_value_to_string;
use common::*;
use proptest::prelude::*;
use strata_core::partition_plan::{prefix_input, prefix_quarantine, suffix_input};
use strata_core::sample::{IotFaults, iot_events};
use strata_core::{BuildContext, PartitionPlan, Pipeline, PipelineSpec};

fn sorted_by_line(schema: arrow::datatypes::SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    let all = concat_batches(&schema, batches).expect("concat");
    let line = all.column(all.schema().index_of("_line").expect("_line"));
    let order = sort_to_indices(line, None, None).expect("sort");
    take_record_batch(&all, &order).expect("take")
}

/// The partition of each row: a hash of its key columns' text, modulo `workers`.
fn partition_of(batch: &RecordBatch, keys: &[String], workers: usize) -> Vec<usize> {
    let columns: Vec<_> = keys
        .iter()
        .map(|k| batch.column(batch.schema().index_of(k).expect("key column")))
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            let mut h = DefaultHasher::new();
            for c in &columns {
                array_value_to_string(c, row).expect("text").hash(&mut h);
            }
            (h.finish() % workers as u64) as usize
        })
        .collect()
}

fn select(batch: &RecordBatch, rows: &[u32]) -> RecordBatch {
    take_record_batch(batch, &UInt32Array::from(rows.to_vec())).expect("take")
}

/// Runs `spec` as Spark would: the prefix over `chunks` (any split), then per partition the
/// suffix over that partition's rows in input order.
fn run_partitioned(
    spec: &PipelineSpec,
    lines: &[String],
    chunk: usize,
    workers: usize,
) -> (RecordBatch, RecordBatch) {
    let plan = PartitionPlan::new(spec, strata_core::lineage::file_input_schema()).expect("plan");
    let prefix_spec = plan.prefix.as_ref().expect("the IoT pipeline has a prefix");
    let mut quarantine = Vec::new();
    let carried = prefix_input(&input(&[], 1)).expect("carry").schema();
    let prefix_schema = Pipeline::build(prefix_spec, carried, &BuildContext::default())
        .expect("prefix builds")
        .output_schema();
    let schema = suffix_input(&RecordBatch::new_empty(prefix_schema))
        .expect("rename")
        .schema();
    let mut middle = Vec::new();
    for (i, part) in lines.chunks(chunk.max(1)).enumerate() {
        let batch = prefix_input(&input(part, (i * chunk.max(1)) as u64 + 1)).expect("carry");
        let mut prefix = Pipeline::build(prefix_spec, batch.schema(), &BuildContext::default())
            .expect("prefix builds");
        let out = prefix.process(&batch).expect("prefix");
        quarantine.push(prefix_quarantine(&out.quarantined).expect("drop"));
        for rows in out.rows {
            middle.push(suffix_input(&rows).expect("rename"));
        }
    }
    let mut good = Vec::new();
    let middle = sorted_by_line(schema.clone(), &middle);
    let parts = partition_of(&middle, &plan.keys, workers);
    let mut suffix_schema = None;
    let mut quarantine_schema = None;
    for w in 0..workers {
        let rows: Vec<u32> = (0..parts.len() as u32)
            .filter(|&r| parts[r as usize] == w)
            .collect();
        let mut suffix = Pipeline::build(&plan.suffix, schema.clone(), &BuildContext::default())
            .expect("suffix builds");
        suffix_schema = Some(suffix.output_schema());
        quarantine_schema = Some(suffix.quarantine_schema());
        let out = suffix.process(&select(&middle, &rows)).expect("suffix");
        good.extend(out.rows);
        quarantine.push(out.quarantined);
        let end = suffix.finish().expect("finish");
        good.extend(end.rows);
        quarantine.push(end.quarantined);
    }
    (
        sorted_by_line(suffix_schema.expect("a worker"), &good),
        sorted_by_line(quarantine_schema.expect("a worker"), &quarantine),
    )
}

fn run_whole(spec: &PipelineSpec, lines: &[String]) -> (RecordBatch, RecordBatch) {
    let mut whole = build(spec);
    let c = run_chunks(&mut whole, lines, &[]);
    (
        sorted_by_line(whole.output_schema(), &c.rows),
        sorted_by_line(whole.quarantine_schema(), &c.quarantine),
    )
}

fn lines(n: usize, seed: u64) -> Vec<String> {
    let faults = IotFaults {
        malformed: 0.05,
        invalid: 0.05,
        duplicates: 0.2,
    };
    iot_events(n, seed, faults, 1_763_646_312_000)
}

#[test]
fn the_iot_pipeline_is_cut_before_dedup_and_keeps_its_step_names() {
    let plan =
        PartitionPlan::new(&iot_spec(), strata_core::lineage::file_input_schema()).expect("plan");
    assert_eq!(plan.keys, vec!["device_id", "seq"]);
    assert_eq!(plan.stateful_step.as_deref(), Some("dedup"));
    let prefix = plan.prefix.expect("prefix");
    let names = |s: &PipelineSpec| -> Vec<String> {
        s.steps
            .iter()
            .map(|s| s.given_name().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        names(&prefix),
        ["parse_json", "cast", "flatten", "derive", "expect"]
    );
    assert_eq!(names(&plan.suffix), ["dedup", "mask"]);
    // The prefix declares every column its last step produces, nested types included.
    assert!(prefix.output.schema.contains_key("location_site"));
    assert_eq!(prefix.output.schema["tags"], "list<string>");
}

#[test]
fn two_stateful_steps_are_refused_with_both_names() {
    let mut spec = iot_spec();
    let dedup = spec
        .steps
        .iter()
        .find(|s| s.is_stateful())
        .cloned()
        .expect("dedup");
    spec.steps.push(dedup);
    let err = PartitionPlan::new(&spec, strata_core::lineage::file_input_schema())
        .expect_err("two stateful steps");
    let text = err.to_string();
    assert!(
        text.contains("`dedup`") && text.contains("`dedup_"),
        "{text}"
    );
}

#[test]
fn a_pipeline_without_state_needs_no_partitioning() {
    let mut spec = iot_spec();
    spec.steps.retain(|s| !s.is_stateful());
    let plan = PartitionPlan::new(&spec, strata_core::lineage::file_input_schema()).expect("plan");
    assert!(plan.prefix.is_none() && plan.keys.is_empty());
    assert_eq!(plan.suffix, spec);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn partitioned_equals_one_process(
        seed in any::<u64>(),
        n in 1usize..400,
        chunk in 1usize..120,
        workers in 1usize..5,
    ) {
        let spec = iot_spec();
        let lines = lines(n, seed);
        let (rows, quarantine) = run_whole(&spec, &lines);
        let (p_rows, p_quarantine) = run_partitioned(&spec, &lines, chunk, workers);
        prop_assert_eq!(rows.num_rows() + quarantine.num_rows() <= n, true);
        prop_assert_eq!(&rows, &p_rows);
        prop_assert_eq!(&quarantine, &p_quarantine);
        // The quarantine keeps the original bytes even for rows the suffix rejects.
        let raw = quarantine.column(0);
        prop_assert_eq!(raw.null_count(), 0);
    }
}
