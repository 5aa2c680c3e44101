//! `rename`: new names for existing columns; data untouched (zero-copy).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::error::{CoreError, Result};
use crate::spec::RenameSpec;
use crate::step::{ROW_ID, Step, StepOutput};

/// The built `rename` step.
pub struct Rename {
    name: String,
    output: SchemaRef,
}

impl Rename {
    /// Checks every old name exists and no new name collides.
    pub fn build(spec: &RenameSpec, name: &str, loc: &str, input: &SchemaRef) -> Result<Self> {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for (old, new) in &spec.columns {
            let idx = input.index_of(old).map_err(|_| {
                CoreError::spec(
                    loc,
                    format!("columns.{old}"),
                    format!("unknown column `{old}`"),
                )
                .with_hint(format!("available: {}", crate::steps::column_list(input)))
            })?;
            if old == ROW_ID || new.starts_with('_') {
                return Err(CoreError::spec(
                    loc,
                    format!("columns.{old}"),
                    "names starting with `_` are reserved for lineage columns",
                ));
            }
            fields[idx] = fields[idx].clone().with_name(new);
        }
        let mut seen = std::collections::HashSet::new();
        for f in &fields {
            if !seen.insert(f.name().clone()) {
                return Err(CoreError::spec(
                    loc,
                    "columns",
                    format!("renaming would create two columns named `{}`", f.name()),
                ));
            }
        }
        Ok(Rename {
            name: name.to_string(),
            output: Arc::new(Schema::new(fields)),
        })
    }
}

impl Step for Rename {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        Ok(StepOutput::pass(RecordBatch::try_new(
            self.output.clone(),
            batch.columns().to_vec(),
        )?))
    }
}
