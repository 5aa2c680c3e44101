//! `derive`: add or replace columns computed by SQL expressions, in order, so a later expression
//! may use an earlier one. Types come from DataFusion's planner at build time.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion::prelude::SessionContext;

use crate::error::{CoreError, Result};
use crate::expr::SqlExpr;
use crate::spec::DeriveSpec;
use crate::step::{ROW_ID, Step, StepOutput};

/// The built `derive` step.
pub struct Derive {
    name: String,
    /// (column index in the growing schema, expression, schema after this column).
    columns: Vec<(usize, SqlExpr, SchemaRef)>,
    output: SchemaRef,
}

impl Derive {
    /// Compiles each expression against the schema as it stands after the previous ones.
    pub fn build(
        spec: &DeriveSpec,
        name: &str,
        loc: &str,
        input: &SchemaRef,
        ctx: &SessionContext,
    ) -> Result<Self> {
        let mut schema = input.clone();
        let mut columns = Vec::with_capacity(spec.columns.len());
        for (column, sql) in &spec.columns {
            let field = format!("columns.{column}");
            if column.starts_with('_') {
                return Err(CoreError::spec(
                    loc,
                    &field,
                    "names starting with `_` are reserved for lineage columns",
                ));
            }
            let expr =
                SqlExpr::compile(ctx, sql, &schema).map_err(|e| CoreError::spec(loc, &field, e))?;
            let new_field: FieldRef = Arc::new(Field::new(column, expr.data_type.clone(), true));
            let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
            let index = match schema.index_of(column) {
                Ok(i) => {
                    fields[i] = new_field;
                    i
                }
                Err(_) => {
                    // New columns go before the row id so it stays last.
                    let at = schema.index_of(ROW_ID).unwrap_or(fields.len());
                    fields.insert(at, new_field);
                    at
                }
            };
            schema = Arc::new(Schema::new(fields));
            columns.push((index, expr, schema.clone()));
        }
        Ok(Derive {
            name: name.to_string(),
            columns,
            output: schema,
        })
    }
}

impl Step for Derive {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, mut batch: RecordBatch) -> Result<StepOutput> {
        for (index, expr, schema) in &self.columns {
            let value = expr.evaluate(&batch).map_err(|message| CoreError::StepFailed {
                step: self.name.clone(),
                message: format!("`{}`: {message}", expr.sql),
                hint: Some("guard the expression (e.g. with CASE or try_cast) so no row can make it fail".into()),
            })?;
            let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
            if schema.fields().len() > cols.len() {
                cols.insert(*index, value);
            } else {
                cols[*index] = value;
            }
            batch = RecordBatch::try_new(schema.clone(), cols)?;
        }
        Ok(StepOutput::pass(batch))
    }
}
