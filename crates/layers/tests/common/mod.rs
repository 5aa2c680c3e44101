//! Helpers shared by the layers' integration tests.

use strata_core::lineage::{file_batch, file_input_schema};
use strata_core::sample::{IotFaults, iot_events};
use strata_core::{BuildContext, Pipeline, PipelineSpec};

/// `n` generated IoT events (seed `seed`) through the shipped `pipelines/iot.yaml`: its output
/// schema and rows.
pub fn iot_output(
    n: usize,
    seed: u64,
) -> (arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot.yaml"
    ))
    .expect("iot.yaml");
    let spec = PipelineSpec::from_yaml(&text).expect("spec");
    let mut p =
        Pipeline::build(&spec, file_input_schema(), &BuildContext::default()).expect("build");
    let lines = iot_events(n, seed, IotFaults::default(), 1_763_646_312_000);
    let out = p
        .process(&file_batch(&lines, "iot", "bronze/x", 1, 0).expect("batch"))
        .expect("process");
    (p.output_schema(), out.rows)
}
