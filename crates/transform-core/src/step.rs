//! The runtime side of a step: a small trait, and the shapes steps hand back.
//!
//! A step sees the pipeline's *data* columns plus one internal column, [`ROW_ID`], that numbers
//! the rows of the batch given to [`crate::Pipeline::process`]. Steps never see lineage columns or
//! the raw payload: the pipeline re-attaches both at the end (and for quarantine) by row id, so a
//! row rejected at any step can be traced to its exact input record without carrying raw bytes
//! through every kernel.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::SchemaRef;

use crate::error::{CoreError, Result};

/// Name of the internal row-number column every step must carry through unchanged.
pub const ROW_ID: &str = "__strata_row";

/// Rows a step refuses: their row ids and one reason each.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Values of [`ROW_ID`] of the rejected rows.
    pub row_ids: UInt32Array,
    /// Why, one per row.
    pub reasons: StringArray,
}

/// Pass/fail counts of one expectation rule over one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCount {
    /// Rule name.
    pub rule: String,
    /// Rows where the check was TRUE.
    pub passed: u64,
    /// Rows where it was FALSE or NULL.
    pub failed: u64,
}

/// What a step returns for one input batch.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// The rows that continue.
    pub batch: RecordBatch,
    /// Rows sent to quarantine by this step.
    pub rejected: Option<Rejected>,
    /// Rows dropped on purpose (filter, `drop` rules, duplicates).
    pub dropped: u64,
    /// Expectation counts (only `expect` fills this).
    pub rules: Vec<RuleCount>,
}

impl StepOutput {
    /// All rows continue.
    pub fn pass(batch: RecordBatch) -> Self {
        StepOutput {
            batch,
            rejected: None,
            dropped: 0,
            rules: Vec::new(),
        }
    }
}

/// A built, runnable step.
pub trait Step: Send {
    /// The step's name (unique within the pipeline).
    fn name(&self) -> &str;
    /// The schema of batches this step returns (includes [`ROW_ID`]).
    fn output_schema(&self) -> SchemaRef;
    /// Transforms one batch.
    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput>;
    /// Flushes buffered rows at end of input (for steps that hold rows back).
    fn finish(&mut self) -> Result<Option<RecordBatch>> {
        Ok(None)
    }
    /// Serialises the step's state; `None` for stateless steps.
    fn checkpoint(&self) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Restores state written by [`Step::checkpoint`] of the same step.
    fn restore(&mut self, _state: &[u8]) -> Result<()> {
        Err(CoreError::Checkpoint {
            problem: format!("step `{}` keeps no state", self.name()),
        })
    }
    /// Starts recording what changes, for [`Step::checkpoint_delta`] (called right after a full
    /// checkpoint or a restore that later deltas build on).
    fn start_delta(&mut self) {}
    /// What changed since the last full checkpoint or delta; a step without deltas returns its
    /// whole state, which [`Step::restore_delta`] then applies as a replacement.
    fn checkpoint_delta(&mut self) -> Result<Option<Vec<u8>>> {
        self.checkpoint()
    }
    /// Applies a state written by [`Step::checkpoint_delta`] on top of the current one.
    fn restore_delta(&mut self, state: &[u8]) -> Result<()> {
        self.restore(state)
    }
}

/// The [`ROW_ID`] column of a step's batch.
pub(crate) fn row_ids(batch: &RecordBatch) -> Result<&UInt32Array> {
    batch
        .column_by_name(ROW_ID)
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .ok_or_else(|| CoreError::Internal(format!("batch lost the `{ROW_ID}` column")))
}

/// Splits a batch by a `failed` mask (true = reject): returns the kept rows and the rejection
/// of the others, with a reason computed only for rejected rows (rare, so per-row is fine).
pub(crate) fn split_rejected(
    batch: RecordBatch,
    failed: &BooleanArray,
    mut reason: impl FnMut(usize) -> String,
) -> Result<(RecordBatch, Option<Rejected>)> {
    let n_failed = failed.true_count();
    if n_failed == 0 {
        return Ok((batch, None));
    }
    let ids = row_ids(&batch)?;
    let mut reject_ids = Vec::with_capacity(n_failed);
    let mut reasons = Vec::with_capacity(n_failed);
    for i in 0..failed.len() {
        if failed.is_valid(i) && failed.value(i) {
            reject_ids.push(ids.value(i));
            reasons.push(reason(i));
        }
    }
    let keep = arrow::compute::not(failed)?;
    let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
    Ok((
        kept,
        Some(Rejected {
            row_ids: UInt32Array::from(reject_ids),
            reasons: StringArray::from(reasons),
        }),
    ))
}

/// Renders one value of an array for a quarantine reason (strings quoted, capped in length).
pub(crate) fn render_value(array: &dyn Array, row: usize) -> String {
    if array.is_null(row) {
        return "null".into();
    }
    let options = arrow::util::display::FormatOptions::default();
    let text = match arrow::util::display::ArrayFormatter::try_new(array, &options) {
        Ok(f) => f.value(row).to_string(),
        Err(_) => "<unprintable>".into(),
    };
    let text: String = if text.chars().count() > 80 {
        text.chars().take(80).chain("…".chars()).collect()
    } else {
        text
    };
    if matches!(
        array.data_type(),
        arrow::datatypes::DataType::Utf8
            | arrow::datatypes::DataType::LargeUtf8
            | arrow::datatypes::DataType::Utf8View
    ) {
        format!("{text:?}")
    } else {
        text
    }
}

/// A schema with the [`ROW_ID`] column appended.
pub(crate) fn with_row_id(fields: Vec<arrow::datatypes::FieldRef>) -> SchemaRef {
    let mut fields = fields;
    fields.push(Arc::new(arrow::datatypes::Field::new(
        ROW_ID,
        arrow::datatypes::DataType::UInt32,
        false,
    )));
    Arc::new(arrow::datatypes::Schema::new(fields))
}

/// Location string used in spec errors, e.g. ``steps[2] (cast `fix_types`)``.
pub(crate) fn location(index: usize, type_name: &str, name: &str) -> String {
    if name == type_name {
        format!("steps[{index}] ({type_name})")
    } else {
        format!("steps[{index}] ({type_name} `{name}`)")
    }
}

/// A boolean mask where NULL counts as false (SQL `WHERE` semantics).
pub(crate) fn null_as_false(mask: &BooleanArray) -> BooleanArray {
    if mask.null_count() == 0 {
        mask.clone()
    } else {
        arrow::compute::prep_null_mask_filter(mask)
    }
}
