//! The shipped-pipeline contract: a pipeline from `pipelines/` run on the real output of its own
//! connector must quarantine nothing valid and fill every column the source provides.

use std::path::Path;

use arrow::array::{Array, RecordBatch};
use strata_core::{BuildContext, Pipeline, PipelineSpec};

/// The output rows and the quarantine of `pipelines/<file>` over `records` (raw values, as
/// the connector wrote them), read the way a driver does (file lineage, one batch per 1,000).
pub fn run_shipped(file: &str, records: &[Vec<u8>]) -> (RecordBatch, RecordBatch) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../pipelines")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read the pipeline");
    let spec = PipelineSpec::from_yaml(&text).expect("parse the pipeline");
    let mut pipeline = Pipeline::build(
        &spec,
        strata_core::lineage::file_input_schema(),
        &BuildContext::default(),
    )
    .expect("build the pipeline");
    let (mut rows, mut quarantine) = (Vec::new(), Vec::new());
    for (i, chunk) in records.chunks(1000).enumerate() {
        let batch =
            strata_core::lineage::file_batch(chunk, "contract", file, i as u64 * 1000 + 1, 0)
                .expect("batch");
        let out = pipeline.process(&batch).expect("process");
        rows.extend(out.rows);
        quarantine.push(out.quarantined);
    }
    let out = pipeline.finish().expect("finish");
    rows.extend(out.rows);
    quarantine.push(out.quarantined);
    let rows = arrow::compute::concat_batches(&pipeline.output_schema(), &rows).expect("concat");
    let quarantine =
        arrow::compute::concat_batches(&pipeline.quarantine_schema(), &quarantine).expect("concat");
    (rows, quarantine)
}

/// Panics with every quarantined record and its reason when there is any.
pub fn assert_nothing_quarantined(quarantine: &RecordBatch) {
    if quarantine.num_rows() == 0 {
        return;
    }
    let shown = arrow::util::pretty::pretty_format_batches(std::slice::from_ref(quarantine))
        .map(|t| t.to_string())
        .unwrap_or_default();
    panic!(
        "{} valid records quarantined:\n{shown}",
        quarantine.num_rows()
    );
}

/// The number of nulls in `column` among the rows where `when` (a row predicate) holds.
pub fn nulls_where(rows: &RecordBatch, column: &str, when: impl Fn(usize) -> bool) -> usize {
    let c = rows
        .column_by_name(column)
        .unwrap_or_else(|| panic!("no column `{column}`"));
    (0..rows.num_rows())
        .filter(|&i| when(i) && c.is_null(i))
        .count()
}

/// The string value of `column` in row `i` (null → None).
pub fn text(rows: &RecordBatch, column: &str, i: usize) -> Option<String> {
    let c = rows.column_by_name(column)?;
    let s = arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).ok()?;
    let s = s.as_any().downcast_ref::<arrow::array::StringArray>()?;
    (!s.is_null(i)).then(|| s.value(i).to_string())
}
