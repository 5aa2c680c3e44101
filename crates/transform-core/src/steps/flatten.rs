//! `flatten`: the fields of a struct column become top-level columns `<prefix><sep><field>`,
//! in place of the struct. A null struct gives null fields (the parent's nulls are applied).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, make_array};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};

use crate::error::{CoreError, Result};
use crate::spec::FlattenSpec;
use crate::step::{Step, StepOutput};

/// The built `flatten` step.
pub struct Flatten {
    name: String,
    index: usize,
    output: SchemaRef,
}

impl Flatten {
    /// Checks the column is a struct and the new names are free.
    pub fn build(spec: &FlattenSpec, name: &str, loc: &str, input: &SchemaRef) -> Result<Self> {
        let index = input.index_of(&spec.column).map_err(|_| {
            CoreError::spec(loc, "column", format!("unknown column `{}`", spec.column))
                .with_hint(format!("available: {}", crate::steps::column_list(input)))
        })?;
        let DataType::Struct(children) = input.field(index).data_type() else {
            return Err(CoreError::spec(
                loc,
                "column",
                format!("`{}` is not a struct", spec.column),
            ));
        };
        let prefix = spec.prefix.clone().unwrap_or_else(|| spec.column.clone());
        let mut fields: Vec<FieldRef> = Vec::new();
        for (i, f) in input.fields().iter().enumerate() {
            if i != index {
                fields.push(f.clone());
                continue;
            }
            for child in children {
                let new_name = if prefix.is_empty() {
                    child.name().clone()
                } else {
                    format!("{prefix}{}{}", spec.separator, child.name())
                };
                if input.index_of(&new_name).is_ok() {
                    return Err(CoreError::spec(
                        loc,
                        "column",
                        format!("flattened column `{new_name}` already exists"),
                    ));
                }
                fields.push(Arc::new(Field::new(
                    new_name,
                    child.data_type().clone(),
                    true,
                )));
            }
        }
        Ok(Flatten {
            name: name.to_string(),
            index,
            output: Arc::new(Schema::new(fields)),
        })
    }
}

impl Step for Flatten {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.output.fields().len());
        for (i, col) in batch.columns().iter().enumerate() {
            if i != self.index {
                columns.push(col.clone());
                continue;
            }
            let s = col.as_struct();
            for child in s.columns() {
                let nulls = NullBuffer::union(s.nulls(), child.nulls());
                let data = child.to_data().into_builder().nulls(nulls).build()?;
                columns.push(make_array(data));
            }
        }
        Ok(StepOutput::pass(RecordBatch::try_new(
            self.output.clone(),
            columns,
        )?))
    }
}
