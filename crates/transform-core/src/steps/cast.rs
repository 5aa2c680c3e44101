//! `cast`: safe casts. A value that does not convert sends its row to quarantine with the column,
//! the value and the target type; the rest of the batch continues. Numbers cast to timestamps are
//! read as epoch milliseconds.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::or;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{CoreError, Result};
use crate::safe_cast::{can_cast, safe_cast};
use crate::spec::{CastSpec, EpochUnit};
use crate::step::{Step, StepOutput, render_value, split_rejected};
use crate::types::{parse_column_type, type_name};

/// The built `cast` step.
pub struct Cast {
    name: String,
    targets: Vec<(usize, DataType)>,
    output: SchemaRef,
}

impl Cast {
    /// Resolves columns and checks each cast is possible at all.
    pub fn build(spec: &CastSpec, name: &str, loc: &str, input: &SchemaRef) -> Result<Self> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut targets = Vec::new();
        for (column, text) in &spec.columns {
            let field = format!("columns.{column}");
            let idx = input.index_of(column).map_err(|_| {
                CoreError::spec(loc, &field, format!("unknown column `{column}`"))
                    .with_hint(format!("available: {}", crate::steps::column_list(input)))
            })?;
            let t = parse_column_type(text).map_err(|e| CoreError::spec(loc, &field, e))?;
            let from = input.field(idx).data_type();
            if !can_cast(from, &t.data_type) {
                return Err(CoreError::spec(
                    loc,
                    &field,
                    format!(
                        "cannot cast {} to {}",
                        type_name(from),
                        type_name(&t.data_type)
                    ),
                ));
            }
            if !t.nullable {
                return Err(CoreError::spec(
                    loc,
                    &field,
                    "cast cannot add `not null`; use an `expect` rule",
                ));
            }
            fields[idx] = Field::new(column, t.data_type.clone(), true);
            targets.push((idx, t.data_type));
        }
        Ok(Cast {
            name: name.to_string(),
            targets,
            output: Arc::new(Schema::new(fields)),
        })
    }
}

impl Step for Cast {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        let mut failures: Vec<(usize, BooleanArray)> = Vec::new();
        for (idx, target) in &self.targets {
            let c = safe_cast(batch.column(*idx), target, EpochUnit::Ms)?;
            if let Some(f) = c.failed {
                failures.push((*idx, f));
            }
            columns[*idx] = c.array;
        }
        let casted = RecordBatch::try_new(self.output.clone(), columns)?;
        if failures.is_empty() {
            return Ok(StepOutput::pass(casted));
        }
        let mut any = failures[0].1.clone();
        for (_, f) in &failures[1..] {
            any = or(&any, f)?;
        }
        let (kept, rejected) = split_rejected(casted, &any, |row| {
            let (idx, _) = failures
                .iter()
                .find(|(_, f)| f.value(row))
                .map(|(i, f)| (*i, f))
                .unwrap_or((0, &any));
            let target = self.output.field(idx);
            format!(
                "column `{}`: value {} cannot be cast to {}",
                target.name(),
                render_value(batch.column(idx).as_ref(), row),
                type_name(target.data_type())
            )
        })?;
        Ok(StepOutput {
            batch: kept,
            rejected,
            dropped: 0,
            rules: Vec::new(),
        })
    }
}
