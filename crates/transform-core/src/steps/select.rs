//! `select`: keep the listed columns, in the listed order.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::{CoreError, Result};
use crate::spec::SelectSpec;
use crate::step::{ROW_ID, Step, StepOutput, with_row_id};

/// The built `select` step.
pub struct Select {
    name: String,
    indices: Vec<usize>,
    output: SchemaRef,
}

impl Select {
    /// Resolves the column names against `input`.
    pub fn build(spec: &SelectSpec, name: &str, loc: &str, input: &SchemaRef) -> Result<Self> {
        let mut indices = Vec::with_capacity(spec.columns.len() + 1);
        let mut fields = Vec::with_capacity(spec.columns.len());
        for (i, column) in spec.columns.iter().enumerate() {
            let idx = input.index_of(column).map_err(|_| {
                CoreError::spec(
                    loc,
                    format!("columns[{i}]"),
                    format!("unknown column `{column}`"),
                )
                .with_hint(format!("available: {}", crate::steps::column_list(input)))
            })?;
            if indices.contains(&idx) {
                return Err(CoreError::spec(
                    loc,
                    format!("columns[{i}]"),
                    format!("`{column}` is listed twice"),
                ));
            }
            indices.push(idx);
            fields.push(input.fields()[idx].clone());
        }
        indices.push(input.index_of(ROW_ID)?);
        Ok(Select {
            name: name.to_string(),
            indices,
            output: with_row_id(fields),
        })
    }
}

impl Step for Select {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let projected = batch.project(&self.indices)?;
        Ok(StepOutput::pass(RecordBatch::try_new(
            self.output.clone(),
            projected.columns().to_vec(),
        )?))
    }
}
