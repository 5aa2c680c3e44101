//! Column-level lineage of a model: for each output column, the input table columns it is
//! computed from, read off DataFusion's logical plan (not from the SQL text), so CTEs, aliases,
//! joins, aggregates and window functions are followed the way the engine resolves them.
//!
//! Kept for OpenLineage's `columnLineage` facet and printed by `strata models plan`.

use std::collections::BTreeSet;

use datafusion::logical_expr::{Expr, JoinType, LogicalPlan};
use datafusion::prelude::SessionContext;

use crate::error::{LayersError, Result};

/// Where one output column comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnLineage {
    /// The output column.
    pub column: String,
    /// Input columns as `<schema>.<table>.<column>` (`silver.orders.amount`), sorted.
    pub sources: Vec<String>,
}

/// The lineage of each output column of `sql`, planned in `ctx` (whose catalog must hold the
/// tables it reads).
pub async fn column_lineage(ctx: &SessionContext, sql: &str) -> Result<Vec<ColumnLineage>> {
    let plan = ctx
        .state()
        .create_logical_plan(sql)
        .await
        .map_err(|e| LayersError::Query {
            query: sql.to_string(),
            message: e.to_string(),
        })?;
    let sources = of_plan(&plan);
    Ok(plan
        .schema()
        .fields()
        .iter()
        .zip(sources)
        .map(|(f, s)| ColumnLineage {
            column: f.name().clone(),
            sources: s.into_iter().collect(),
        })
        .collect())
}

type Sources = Vec<BTreeSet<String>>;

/// One set of input columns per output field of `plan`.
fn of_plan(plan: &LogicalPlan) -> Sources {
    match plan {
        LogicalPlan::TableScan(scan) => {
            let table = scan.table_name.to_string();
            let table = table.strip_prefix("lake.").unwrap_or(&table).to_string();
            let table = if table.contains('.') {
                table
            } else {
                format!("silver.{table}")
            };
            scan.projected_schema
                .fields()
                .iter()
                .map(|f| BTreeSet::from([format!("{table}.{}", f.name())]))
                .collect()
        }
        LogicalPlan::Projection(p) => {
            let input = of_plan(&p.input);
            p.expr
                .iter()
                .map(|e| of_expr(e, &p.input, &input))
                .collect()
        }
        LogicalPlan::Aggregate(a) => {
            let input = of_plan(&a.input);
            let mut out: Sources = a
                .group_expr
                .iter()
                .chain(&a.aggr_expr)
                .map(|e| of_expr(e, &a.input, &input))
                .collect();
            // Grouping sets add an internal grouping id: it comes from no column.
            out.resize(a.schema.fields().len(), BTreeSet::new());
            out
        }
        LogicalPlan::Window(w) => {
            let mut out = of_plan(&w.input);
            let input = out.clone();
            out.extend(w.window_expr.iter().map(|e| of_expr(e, &w.input, &input)));
            out
        }
        LogicalPlan::Join(j) => {
            let (left, right) = (of_plan(&j.left), of_plan(&j.right));
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti => left,
                JoinType::RightSemi | JoinType::RightAnti => right,
                JoinType::LeftMark => {
                    let mut out = left;
                    out.push(BTreeSet::new());
                    out
                }
                JoinType::RightMark => {
                    let mut out = right;
                    out.push(BTreeSet::new());
                    out
                }
                _ => left.into_iter().chain(right).collect(),
            }
        }
        LogicalPlan::Union(u) => {
            let mut out: Sources = vec![BTreeSet::new(); u.schema.fields().len()];
            for input in &u.inputs {
                for (acc, s) in out.iter_mut().zip(of_plan(input)) {
                    acc.extend(s);
                }
            }
            out
        }
        other => {
            let inputs = other.inputs();
            let width = other.schema().fields().len();
            match inputs.as_slice() {
                // Filter, Sort, Limit, SubqueryAlias, Distinct, Repartition: same columns.
                [input] if input.schema().fields().len() == width => of_plan(input),
                // Anything else: by name in its inputs.
                _ => {
                    let per_input: Vec<(&LogicalPlan, Sources)> =
                        inputs.iter().map(|i| (*i, of_plan(i))).collect();
                    other
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| {
                            per_input
                                .iter()
                                .filter_map(|(i, s)| {
                                    i.schema()
                                        .fields()
                                        .iter()
                                        .position(|g| g.name() == f.name())
                                        .and_then(|at| s.get(at).cloned())
                                })
                                .flatten()
                                .collect()
                        })
                        .collect()
                }
            }
        }
    }
}

/// The input columns an expression over `input` (whose lineage is `sources`) reads.
fn of_expr(expr: &Expr, input: &LogicalPlan, sources: &Sources) -> BTreeSet<String> {
    expr.column_refs()
        .into_iter()
        .filter_map(|c| input.schema().index_of_column(c).ok())
        .filter_map(|i| sources.get(i))
        .flatten()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_columns_lead_back_through_ctes_joins_aggregates_and_windows() {
        let ctx = SessionContext::new();
        for ddl in [
            "CREATE TABLE orders (order_id INT, customer VARCHAR, amount DOUBLE, at TIMESTAMP)",
            "CREATE TABLE customers (name VARCHAR, segment VARCHAR)",
        ] {
            ctx.sql(ddl).await.unwrap().collect().await.unwrap();
        }
        let lineage = column_lineage(
            &ctx,
            "WITH o AS (SELECT order_id, customer, amount * 2 AS doubled FROM orders WHERE amount > 0)
             SELECT coalesce(c.segment, o.customer) AS who, sum(o.doubled) AS revenue,
                    count(*) AS n, row_number() OVER (ORDER BY sum(o.doubled)) AS rank
             FROM o LEFT JOIN customers c ON o.customer = c.name
             GROUP BY 1",
        )
        .await
        .unwrap();
        let by: Vec<(&str, Vec<&str>)> = lineage
            .iter()
            .map(|l| {
                (
                    l.column.as_str(),
                    l.sources.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            by,
            vec![
                (
                    "who",
                    vec!["silver.customers.segment", "silver.orders.customer"]
                ),
                ("revenue", vec!["silver.orders.amount"]),
                ("n", vec![]),
                ("rank", vec!["silver.orders.amount"]),
            ]
        );
    }
}
