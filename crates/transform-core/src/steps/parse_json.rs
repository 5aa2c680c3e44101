//! `parse_json`: raw JSON records → typed columns of a declared schema.
//!
//! One bad record never costs the batch. The path is vectorised in three passes:
//! 1. validate each record as one JSON object (serde_json, no allocation) — invalid ones are
//!    rejected with the parser's message;
//! 2. decode the valid ones in one go with arrow-json into a *lenient* schema (every scalar leaf
//!    a string), so wrong-typed values cannot fail the decode; only a structural mismatch (an
//!    object where a number belongs) can, and then the batch is bisected to isolate it;
//! 3. cast each column to its declared type with [`crate::safe_cast`], and reject rows whose
//!    null mask grew, naming the field and the value.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, UInt32Array};
use arrow::compute::{is_null, or, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;

use crate::error::{CoreError, Result};
use crate::safe_cast::{lenient_type, safe_cast};
use crate::spec::{EpochUnit, ParseJsonSpec};
use crate::step::{ROW_ID, Rejected, Step, StepOutput, render_value, with_row_id};
use crate::types::{schema_from_map, type_name};

/// The built `parse_json` step.
pub struct ParseJson {
    name: String,
    raw_index: usize,
    target: SchemaRef,
    lenient: SchemaRef,
    epoch: EpochUnit,
    output: SchemaRef,
    buffer: Vec<u8>,
}

impl ParseJson {
    /// Builds the step over `input` (which must hold the raw column).
    pub fn build(spec: &ParseJsonSpec, name: &str, loc: &str, input: &SchemaRef) -> Result<Self> {
        let column = spec.column.as_deref().unwrap_or("_raw");
        let raw_index = input.index_of(column).map_err(|_| {
            CoreError::spec(loc, "column", format!("input has no column `{column}`"))
        })?;
        match input.field(raw_index).data_type() {
            DataType::Binary
            | DataType::LargeBinary
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::BinaryView
            | DataType::Utf8View => {}
            other => {
                return Err(CoreError::spec(
                    loc,
                    "column",
                    format!(
                        "`{column}` is {}, expected raw bytes or a string",
                        type_name(other)
                    ),
                ));
            }
        }
        if spec.schema.is_empty() {
            return Err(CoreError::spec(loc, "schema", "declares no fields"));
        }
        let target = schema_from_map(&spec.schema)
            .map_err(|(field, e)| CoreError::spec(loc, format!("schema.{field}"), e))?;
        for f in target.fields() {
            if f.name().starts_with('_') {
                return Err(CoreError::spec(
                    loc,
                    format!("schema.{}", f.name()),
                    "names starting with `_` are reserved for lineage columns",
                ));
            }
        }
        let lenient = Schema::new(
            target
                .fields()
                .iter()
                .map(|f| Field::new(f.name(), lenient_type(f.data_type()), true))
                .collect::<Vec<_>>(),
        );
        let output = with_row_id(target.fields().iter().cloned().collect());
        Ok(ParseJson {
            name: name.to_string(),
            raw_index,
            target: Arc::new(target),
            lenient: Arc::new(lenient),
            epoch: spec.epoch_unit,
            output,
            buffer: Vec::new(),
        })
    }

    /// Decodes the records at `rows` (all valid JSON objects). A structural mismatch fails the
    /// arrow-json decode as a whole, so the rows are bisected until the culprits are alone.
    fn decode(
        &mut self,
        raw: &dyn RawColumn,
        rows: &[u32],
        bad: &mut Vec<(u32, String)>,
    ) -> Result<Vec<(RecordBatch, Vec<u32>)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        match self.try_decode(raw, rows) {
            Ok(batch) => Ok(vec![(batch, rows.to_vec())]),
            Err(e) if rows.len() == 1 => {
                bad.push((rows[0], format!("does not fit the declared schema: {e}")));
                Ok(Vec::new())
            }
            Err(_) => {
                let (left, right) = rows.split_at(rows.len() / 2);
                let mut out = self.decode(raw, left, bad)?;
                out.extend(self.decode(raw, right, bad)?);
                Ok(out)
            }
        }
    }

    fn try_decode(
        &mut self,
        raw: &dyn RawColumn,
        rows: &[u32],
    ) -> std::result::Result<RecordBatch, String> {
        self.buffer.clear();
        for &r in rows {
            self.buffer.extend_from_slice(raw.bytes(r as usize));
            self.buffer.push(b'\n');
        }
        let mut decoder = ReaderBuilder::new(self.lenient.clone())
            .with_batch_size(rows.len())
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| e.to_string())?;
        let consumed = decoder.decode(&self.buffer).map_err(|e| e.to_string())?;
        if consumed != self.buffer.len() || decoder.len() != rows.len() {
            return Err(format!(
                "decoded {} of {} records",
                decoder.len(),
                rows.len()
            ));
        }
        match decoder.flush().map_err(|e| e.to_string())? {
            Some(b) => Ok(b),
            None => Err("decoder returned no rows".into()),
        }
    }

    /// Lenient batch → typed batch; rows with a failed conversion or a missing required field are
    /// rejected with a reason naming the field.
    fn convert(
        &self,
        lenient: RecordBatch,
        row_ids: UInt32Array,
        rejected: &mut Vec<(u32, String)>,
    ) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.target.fields().len() + 1);
        let mut failures: Vec<(usize, BooleanArray, bool)> = Vec::new();
        for (i, field) in self.target.fields().iter().enumerate() {
            let source = lenient.column(i);
            let casted = safe_cast(source, field.data_type(), self.epoch)?;
            if let Some(f) = casted.failed {
                failures.push((i, f, false));
            }
            if !field.is_nullable() && casted.array.null_count() > 0 {
                failures.push((i, is_null(&casted.array)?, true));
            }
            columns.push(casted.array);
        }
        columns.push(Arc::new(row_ids));
        let batch = RecordBatch::try_new(
            with_row_id(
                self.target
                    .fields()
                    .iter()
                    .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
                    .collect(),
            ),
            columns,
        )?;
        if failures.is_empty() {
            return Ok(RecordBatch::try_new(
                self.output.clone(),
                batch.columns().to_vec(),
            )?);
        }
        let mut any = failures[0].1.clone();
        for (_, f, _) in &failures[1..] {
            any = or(&any, f)?;
        }
        let ids = batch
            .column(batch.num_columns() - 1)
            .as_primitive::<arrow::datatypes::UInt32Type>();
        for row in 0..any.len() {
            if !any.value(row) {
                continue;
            }
            let reason = failures
                .iter()
                .find(|(_, f, _)| f.value(row))
                .map(|(col, _, missing)| {
                    let field = self.target.field(*col);
                    if *missing {
                        format!("required field `{}` is missing or null", field.name())
                    } else {
                        format!(
                            "field `{}`: {} is not a valid {}",
                            field.name(),
                            render_value(lenient.column(*col).as_ref(), row),
                            type_name(field.data_type())
                        )
                    }
                })
                .unwrap_or_default();
            rejected.push((ids.value(row), reason));
        }
        let keep = arrow::compute::not(&any)?;
        let kept = arrow::compute::filter_record_batch(&batch, &keep)?;
        Ok(RecordBatch::try_new(
            self.output.clone(),
            kept.columns().to_vec(),
        )?)
    }
}

/// Uniform byte access over the raw column types we accept.
trait RawColumn {
    fn bytes(&self, row: usize) -> &[u8];
}

struct Raw<'a>(&'a dyn Array);

impl RawColumn for Raw<'_> {
    fn bytes(&self, row: usize) -> &[u8] {
        match self.0.data_type() {
            DataType::Binary => self.0.as_binary::<i32>().value(row),
            DataType::LargeBinary => self.0.as_binary::<i64>().value(row),
            DataType::Utf8 => self.0.as_string::<i32>().value(row).as_bytes(),
            DataType::LargeUtf8 => self.0.as_string::<i64>().value(row).as_bytes(),
            DataType::BinaryView => self.0.as_binary_view().value(row),
            DataType::Utf8View => self.0.as_string_view().value(row).as_bytes(),
            _ => &[],
        }
    }
}

/// Checks that `bytes` is exactly one JSON object; returns why not.
pub(crate) fn validate_object(bytes: &[u8]) -> std::result::Result<(), String> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err("empty record".into()),
        Some(b'{') => {}
        Some(_) => {
            // Still say whether it is JSON at all: "not an object" vs "not JSON".
            return match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => Err("JSON value is not an object".into()),
                Err(e) => Err(format!("not valid JSON: {e}")),
            };
        }
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(|_| ())
        .map_err(|e| format!("not valid JSON: {e}"))
}

impl Step for ParseJson {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let raw_array = batch.column(self.raw_index).clone();
        let raw = Raw(raw_array.as_ref());
        let ids = crate::step::row_ids(&batch)?.clone();
        let mut bad: Vec<(u32, String)> = Vec::new();
        let mut good: Vec<u32> = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            if raw_array.is_null(row) {
                bad.push((row as u32, "record is null".into()));
                continue;
            }
            match validate_object(raw.bytes(row)) {
                Ok(()) => good.push(row as u32),
                Err(e) => bad.push((row as u32, e)),
            }
        }
        let decoded = self.decode(&raw, &good, &mut bad)?;
        // `bad` holds positions in this batch; map them to row ids.
        let mut rejected: Vec<(u32, String)> = bad
            .into_iter()
            .map(|(pos, r)| (ids.value(pos as usize), r))
            .collect();
        let mut parts = Vec::with_capacity(decoded.len());
        for (lenient, positions) in decoded {
            let part_ids = take(&ids, &UInt32Array::from(positions), None)?;
            let part_ids = part_ids
                .as_primitive::<arrow::datatypes::UInt32Type>()
                .clone();
            parts.push(self.convert(lenient, part_ids, &mut rejected)?);
        }
        let out = match parts.len() {
            0 => RecordBatch::new_empty(self.output.clone()),
            1 => parts
                .pop()
                .unwrap_or_else(|| RecordBatch::new_empty(self.output.clone())),
            _ => arrow::compute::concat_batches(&self.output, &parts)?,
        };
        // Bisection may reorder nothing, but keep row order explicit for the stream ≡ batch contract.
        let out = sort_by_row_id(out)?;
        let rejected = if rejected.is_empty() {
            None
        } else {
            let (ids, reasons): (Vec<u32>, Vec<String>) = rejected.into_iter().unzip();
            Some(Rejected {
                row_ids: UInt32Array::from(ids),
                reasons: StringArray::from(reasons),
            })
        };
        Ok(StepOutput {
            batch: out,
            rejected,
            dropped: 0,
            rules: Vec::new(),
        })
    }
}

fn sort_by_row_id(batch: RecordBatch) -> Result<RecordBatch> {
    let ids = batch
        .column_by_name(ROW_ID)
        .ok_or_else(|| CoreError::Internal("parse_json output lost row ids".into()))?;
    let sorted = ids
        .as_primitive::<arrow::datatypes::UInt32Type>()
        .values()
        .windows(2)
        .all(|w| w[0] <= w[1]);
    if sorted {
        return Ok(batch);
    }
    let idx = arrow::compute::sort_to_indices(ids, None, None)?;
    Ok(arrow::compute::take_record_batch(&batch, &idx)?)
}
