//! `cdc_unwrap`: a Debezium change event (`before`, `after`, `op`, `source`, `ts_ms`, as
//! `strata cdc mysql` and Debezium write them) becomes a flat row: the row image's fields as
//! columns (`after`, or `before` for a delete), `op`, the source fields as `source_<field>`
//! columns (binlog `file` + `pos` + `row`, a PostgreSQL `lsn`, `gtid`…: what a keyed table
//! orders by), and `source_ts`, the change's time (`source.ts_ms`, else `ts_ms`).
//!
//! The image is chosen row by row, never merged field by field: an update that sets a column to
//! null keeps the null. An event without the image its op needs (a delete without `before`, any
//! other op without `after`), or with an unknown op, goes to quarantine with the reason.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use arrow::buffer::NullBuffer;
use arrow::compute::{cast, kernels::zip::zip};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};

use crate::error::{CoreError, Result};
use crate::spec::CdcUnwrapSpec;
use crate::step::{Step, StepOutput, split_rejected};

/// Name of the change-time column `cdc_unwrap` adds.
pub const SOURCE_TS: &str = "source_ts";

/// The built `cdc_unwrap` step.
pub struct CdcUnwrap {
    name: String,
    before: usize,
    after: usize,
    op: usize,
    source: Option<usize>,
    ts_ms: Option<usize>,
    output: SchemaRef,
}

fn struct_fields(input: &SchemaRef, index: usize) -> Option<&arrow::datatypes::Fields> {
    match input.field(index).data_type() {
        DataType::Struct(f) => Some(f),
        _ => None,
    }
}

impl CdcUnwrap {
    /// Checks the envelope's columns and that the new names are free.
    pub fn build(spec: &CdcUnwrapSpec, name: &str, loc: &str, input: &SchemaRef) -> Result<Self> {
        let find = |field: &str, column: &str| {
            input.index_of(column).map_err(|_| {
                CoreError::spec(loc, field, format!("unknown column `{column}`"))
                    .with_hint(format!("available: {}", crate::steps::column_list(input)))
            })
        };
        let before = find("before", &spec.before)?;
        let after = find("after", &spec.after)?;
        let op = find("op", &spec.op)?;
        let source = input.index_of(&spec.source).ok();
        let ts_ms = input.index_of("ts_ms").ok();
        let (Some(b), Some(a)) = (struct_fields(input, before), struct_fields(input, after)) else {
            return Err(CoreError::spec(
                loc,
                "before",
                "`before` and `after` must be structs (the row images)",
            ));
        };
        if b.len() != a.len() || b.iter().zip(a.iter()).any(|(x, y)| x.name() != y.name()) {
            return Err(CoreError::spec(
                loc,
                "before",
                "`before` and `after` must declare the same fields in the same order",
            ));
        }
        let consumed = [Some(before), Some(after), source];
        let mut fields: Vec<FieldRef> = Vec::new();
        for (i, f) in input.fields().iter().enumerate() {
            if !consumed.contains(&Some(i)) {
                fields.push(f.clone());
            }
        }
        for f in a.iter() {
            fields.push(Arc::new(Field::new(f.name(), f.data_type().clone(), true)));
        }
        if let Some(s) = source.and_then(|s| struct_fields(input, s)) {
            for f in s.iter() {
                fields.push(Arc::new(Field::new(
                    format!("source_{}", f.name()),
                    f.data_type().clone(),
                    true,
                )));
            }
        }
        fields.push(Arc::new(Field::new(SOURCE_TS, ts_type(), true)));
        let mut seen = std::collections::HashSet::new();
        for f in &fields {
            if !seen.insert(f.name().clone()) {
                return Err(CoreError::spec(
                    loc,
                    "after",
                    format!("column `{}` would appear twice; rename it first", f.name()),
                ));
            }
        }
        Ok(CdcUnwrap {
            name: name.to_string(),
            before,
            after,
            op,
            source,
            ts_ms,
            output: Arc::new(Schema::new(fields)),
        })
    }
}

impl Step for CdcUnwrap {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let op = cast(batch.column(self.op), &DataType::Utf8)?;
        let op: &StringArray = op.as_string::<i32>();
        let before = batch.column(self.before).as_struct().clone();
        let after = batch.column(self.after).as_struct().clone();
        let is_delete = BooleanArray::from_iter(
            (0..op.len()).map(|i| Some(op.is_valid(i) && op.value(i) == "d")),
        );
        let problem = |i: usize| -> Option<String> {
            if op.is_null(i) {
                return Some("change event without `op`".into());
            }
            match op.value(i) {
                "d" if before.is_null(i) => Some("delete (op d) without a `before` image".into()),
                "c" | "u" | "r" if after.is_null(i) => {
                    Some(format!("op {} without an `after` image", op.value(i)))
                }
                "c" | "u" | "r" | "d" => None,
                other => Some(format!("unknown op `{other}` (c, u, r, d)")),
            }
        };
        let failed = BooleanArray::from_iter((0..op.len()).map(|i| Some(problem(i).is_some())));
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output.fields().len());
        let consumed = [Some(self.before), Some(self.after), self.source];
        for (i, c) in batch.columns().iter().enumerate() {
            if !consumed.contains(&Some(i)) {
                columns.push(c.clone());
            }
        }
        for (b, a) in before.columns().iter().zip(after.columns()) {
            // A struct's own nulls apply to its fields.
            let b = with_parent_nulls(b, before.nulls())?;
            let a = with_parent_nulls(a, after.nulls())?;
            columns.push(zip(&is_delete, &b, &a)?);
        }
        let mut source_ts: Option<ArrayRef> = None;
        if let Some(s) = self.source {
            let s = batch.column(s).as_struct();
            for (f, c) in s.fields().iter().zip(s.columns()) {
                let c = with_parent_nulls(c, s.nulls())?;
                if f.name() == "ts_ms" {
                    source_ts = Some(c.clone());
                }
                columns.push(c);
            }
        }
        let millis = match (source_ts, self.ts_ms) {
            (Some(ts), _) => Some(ts),
            (None, Some(i)) => Some(batch.column(i).clone()),
            (None, None) => None,
        };
        columns.push(match millis {
            Some(m) => {
                let m = cast(&m, &DataType::Int64)?;
                // Milliseconds to microseconds; a value too large for that is null, not a panic.
                let micros: arrow::array::Int64Array = m
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .iter()
                    .map(|v| v.and_then(|v| v.checked_mul(1000)))
                    .collect();
                cast(&micros, &ts_type())?
            }
            None => arrow::array::new_null_array(&ts_type(), batch.num_rows()),
        });
        let out = RecordBatch::try_new(self.output.clone(), columns)?;
        let (kept, rejected) = split_rejected(out, &failed, |i| problem(i).unwrap_or_default())?;
        Ok(StepOutput {
            rejected,
            ..StepOutput::pass(kept)
        })
    }
}

/// `source_ts`: microseconds, UTC (the default `timestamp` of a spec).
fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn with_parent_nulls(child: &ArrayRef, parent: Option<&NullBuffer>) -> Result<ArrayRef> {
    let nulls = NullBuffer::union(parent, child.nulls());
    let data = child.to_data().into_builder().nulls(nulls).build()?;
    Ok(arrow::array::make_array(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::{file_batch, file_input_schema};
    use crate::{BuildContext, Pipeline, PipelineSpec};

    const SPEC: &str = r#"
name: unwrap
steps:
  - type: parse_json
    schema:
      op: string
      ts_ms: int64
      before: "struct<id int64, status string, big decimal(20,0)>"
      after: "struct<id int64, status string, big decimal(20,0)>"
      source: "struct<file string, pos int64, row int64, ts_ms int64>"
  - type: cdc_unwrap
output:
  schema:
    op: string
    ts_ms: int64
    id: int64
    status: string
    big: decimal(20,0)
    source_file: string
    source_pos: int64
    source_row: int64
    source_ts_ms: int64
    source_ts: timestamp
"#;

    #[test]
    fn images_ops_sources_and_bad_events() {
        let spec = PipelineSpec::from_yaml(SPEC).unwrap();
        let mut p = Pipeline::build(&spec, file_input_schema(), &BuildContext::default()).unwrap();
        let lines: Vec<&[u8]> = vec![
            br#"{"op":"u","ts_ms":5,"before":{"id":1,"status":"a"},"after":{"id":1,"status":null,"big":18446744073709551615},"source":{"file":"b.000001","pos":10,"row":0,"ts_ms":4000}}"#,
            br#"{"op":"d","ts_ms":6,"before":{"id":2,"status":"gone"},"after":null,"source":{"file":"b.000001","pos":20,"row":1,"ts_ms":5000}}"#,
            br#"{"op":"d","ts_ms":7,"before":null,"after":null,"source":{"file":"b.000001","pos":30,"row":0}}"#,
            br#"{"op":"x","ts_ms":8,"before":null,"after":{"id":3},"source":{"file":"b.000001","pos":40,"row":0}}"#,
        ];
        let out = p
            .process(&file_batch(&lines, "s", "f", 1, 0).unwrap())
            .unwrap();
        let rows = &out.rows[0];
        assert_eq!(rows.num_rows(), 2);
        let status = rows.column_by_name("status").unwrap().as_string::<i32>();
        assert!(status.is_null(0), "an update to null keeps the null");
        assert_eq!(status.value(1), "gone", "a delete carries its before image");
        let big = rows.column_by_name("big").unwrap();
        assert_eq!(
            arrow::util::display::array_value_to_string(big, 0).unwrap(),
            "18446744073709551615",
            "BIGINT UNSIGNED fits decimal(20,0) unwrapped"
        );
        let ts = cast(rows.column_by_name("source_ts").unwrap(), &DataType::Int64).unwrap();
        assert_eq!(
            ts.as_primitive::<arrow::datatypes::Int64Type>().value(0),
            4_000_000
        );
        let reasons = out
            .quarantined
            .column_by_name("_reason")
            .unwrap()
            .as_string::<i32>();
        let reasons: Vec<&str> = reasons.iter().flatten().collect();
        assert_eq!(reasons.len(), 2);
        assert!(
            reasons[0].contains("delete (op d) without a `before` image"),
            "{reasons:?}"
        );
        assert!(reasons[1].contains("unknown op `x`"), "{reasons:?}");
    }
}
