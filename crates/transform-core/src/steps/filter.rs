//! `filter`: keep rows where an SQL predicate is TRUE; the others (FALSE or NULL) are dropped on
//! purpose and counted as dropped, never quarantined.

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::SessionContext;

use crate::error::{CoreError, Result};
use crate::expr::SqlExpr;
use crate::spec::FilterSpec;
use crate::step::{Step, StepOutput};

/// The built `filter` step.
pub struct Filter {
    name: String,
    predicate: SqlExpr,
    output: SchemaRef,
}

impl Filter {
    /// Compiles the predicate; it must be boolean.
    pub fn build(
        spec: &FilterSpec,
        name: &str,
        loc: &str,
        input: &SchemaRef,
        ctx: &SessionContext,
    ) -> Result<Self> {
        let predicate = SqlExpr::compile(ctx, &spec.predicate, input)
            .map_err(|e| CoreError::spec(loc, "where", e))?;
        if predicate.data_type != DataType::Boolean {
            return Err(CoreError::spec(
                loc,
                "where",
                format!("`{}` is not a boolean expression", spec.predicate),
            ));
        }
        Ok(Filter {
            name: name.to_string(),
            predicate,
            output: input.clone(),
        })
    }
}

impl Step for Filter {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<StepOutput> {
        let mask = self
            .predicate
            .evaluate(&batch)
            .map_err(|message| CoreError::StepFailed {
                step: self.name.clone(),
                message,
                hint: None,
            })?;
        let mask = crate::step::null_as_false(mask.as_boolean());
        let kept = arrow::compute::filter_record_batch(&batch, &mask)?;
        let dropped = (batch.num_rows() - kept.num_rows()) as u64;
        Ok(StepOutput {
            batch: kept,
            rejected: None,
            dropped,
            rules: Vec::new(),
        })
    }
}
