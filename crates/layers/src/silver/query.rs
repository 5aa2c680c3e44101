//! SQL over silver (and later gold) tables with DataFusion, through iceberg-datafusion's
//! catalog provider: tables are addressed as `<table>` (default schema `silver`), filters on
//! the event-time column are pushed into the Iceberg scan, which prunes `day(...)` partitions
//! and files by their statistics.

use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::prelude::{SessionConfig, SessionContext};
use iceberg::Catalog;
use iceberg_datafusion::IcebergCatalogProvider;

use super::catalog::SilverCatalog;
use crate::error::{LayersError, Result};

/// A DataFusion session where the silver catalog is the default (`lake.silver.<table>`).
pub async fn session(catalog: &SilverCatalog) -> Result<SessionContext> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema("lake", "silver")
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    let client: Arc<dyn Catalog> = catalog.shared();
    let provider =
        IcebergCatalogProvider::try_new(client)
            .await
            .map_err(|e| LayersError::Iceberg {
                context: "registering the catalog with DataFusion".into(),
                message: e.to_string(),
            })?;
    ctx.register_catalog("lake", Arc::new(provider));
    Ok(ctx)
}

/// Runs one SQL query and collects the result.
pub async fn sql(catalog: &SilverCatalog, query: &str) -> Result<Vec<RecordBatch>> {
    let ctx = session(catalog).await?;
    let df = ctx.sql(query).await.map_err(|e| LayersError::Query {
        query: query.to_string(),
        message: e.to_string(),
    })?;
    df.collect().await.map_err(|e| LayersError::Query {
        query: query.to_string(),
        message: e.to_string(),
    })
}

/// Runs one SQL query and collects the result, with the tables it read (`silver.orders`,
/// `gold.fact_orders`), for the access log ([`crate::access`]).
pub async fn sql_reading(
    catalog: &SilverCatalog,
    query: &str,
) -> Result<(Vec<RecordBatch>, Vec<String>)> {
    let ctx = session(catalog).await?;
    let df = ctx.sql(query).await.map_err(query_error(query))?;
    let tables = scanned(df.logical_plan()).map_err(query_error(query))?;
    let batches = df.collect().await.map_err(query_error(query))?;
    Ok((batches, tables))
}

/// The tables a query would read, planned but not run (a model's inputs, for the access log).
pub async fn tables_read(catalog: &SilverCatalog, query: &str) -> Result<Vec<String>> {
    let ctx = session(catalog).await?;
    let df = ctx.sql(query).await.map_err(query_error(query))?;
    scanned(df.logical_plan()).map_err(query_error(query))
}

fn query_error(query: &str) -> impl Fn(datafusion::error::DataFusionError) -> LayersError + '_ {
    move |e| LayersError::Query {
        query: query.to_string(),
        message: e.to_string(),
    }
}

/// `layer.table` of every table scan in `plan` (a bare name is a silver table).
fn scanned(plan: &datafusion::logical_expr::LogicalPlan) -> datafusion::error::Result<Vec<String>> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::LogicalPlan;
    let mut tables = std::collections::BTreeSet::new();
    plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let layer = scan.table_name.schema().unwrap_or("silver");
            tables.insert(format!("{layer}.{}", scan.table_name.table()));
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(tables.into_iter().collect())
}
