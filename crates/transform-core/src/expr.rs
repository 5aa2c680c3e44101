//! SQL expressions (`filter`, `derive`, `expect`) compiled once by DataFusion and evaluated per
//! batch as vectorised physical expressions.
//!
//! Compilation happens at build time against the step's input schema, so an unknown column or a
//! type error is a spec error before any data flows. Evaluation needs no async runtime and does
//! no I/O: a physical expression is a pure function of a `RecordBatch`.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::DFSchema;
use datafusion::optimizer::simplify_expressions::{ExprSimplifier, SimplifyContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

/// A compiled SQL expression.
#[derive(Debug, Clone)]
pub(crate) struct SqlExpr {
    /// The text as written in the spec.
    pub sql: String,
    expr: Arc<dyn PhysicalExpr>,
    /// Result type over the schema it was compiled for.
    pub data_type: DataType,
}

impl SqlExpr {
    /// Parses, type-checks and plans `sql` over `schema`.
    pub fn compile(ctx: &SessionContext, sql: &str, schema: &SchemaRef) -> Result<Self, String> {
        let df_schema = DFSchema::try_from(schema.as_ref().clone()).map_err(|e| e.to_string())?;
        let logical = ctx
            .parse_sql_expr(sql, &df_schema)
            .map_err(|e| clean(e.to_string()))?;
        // DataFusion's own planner simplifies before execution; some functions (coalesce, nvl)
        // only exist in simplified form at run time, so do the same here.
        let simplifier = ExprSimplifier::new(
            SimplifyContext::default().with_schema(Arc::new(df_schema.clone())),
        );
        let logical = simplifier
            .coerce(logical, &df_schema)
            .and_then(|e| simplifier.simplify(e))
            .map_err(|e| clean(e.to_string()))?;
        let expr = ctx
            .create_physical_expr(logical, &df_schema)
            .map_err(|e| clean(e.to_string()))?;
        let data_type = expr.data_type(schema).map_err(|e| clean(e.to_string()))?;
        Ok(SqlExpr {
            sql: sql.to_string(),
            expr,
            data_type,
        })
    }

    /// Evaluates over a batch, always returning an array of `batch.num_rows()` values.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, String> {
        self.expr
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| clean(e.to_string()))
    }
}

/// DataFusion messages carry a backtrace hint and nested prefixes; keep the useful sentence.
fn clean(msg: String) -> String {
    msg.lines().next().unwrap_or_default().to_string()
}

/// The one DataFusion session used to compile a pipeline's expressions (functions registry).
pub(crate) fn session() -> SessionContext {
    SessionContext::new()
}
