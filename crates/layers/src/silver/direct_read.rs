//! Reading a table snapshot with DataFusion's own Parquet reader when its data files alone are
//! its rows (no delete files): parallel, with row-group and page pruning — and it reads every
//! column as written. iceberg-rust's scan treats a column named `_file` as Iceberg's reserved
//! metadata column (the data file's path), which would hide Strata's `_file` lineage column.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use futures::TryStreamExt;
use iceberg::table::Table;

use crate::error::{LayersError, Result};

fn iceberg(context: &str) -> impl Fn(iceberg::Error) -> LayersError + '_ {
    move |e| LayersError::Iceberg {
        context: context.to_string(),
        message: e.to_string(),
    }
}

fn query(context: &str) -> impl Fn(datafusion::error::DataFusionError) -> LayersError + '_ {
    move |e| LayersError::Query {
        query: context.to_string(),
        message: e.to_string(),
    }
}

/// The data files of `table` at `snapshot_id` (default: current) when they alone are its rows
/// (no delete files, Parquet, local `file://` paths); `None` otherwise.
pub async fn direct_files(table: &Table, snapshot_id: Option<i64>) -> Result<Option<Vec<String>>> {
    let Some(snapshot) = snapshot_id.or(table.metadata().current_snapshot_id()) else {
        return Ok(Some(Vec::new()));
    };
    let context = format!("planning a read of {}", table.identifier());
    let tasks: Vec<iceberg::scan::FileScanTask> = table
        .scan()
        .snapshot_id(snapshot)
        .build()
        .map_err(iceberg(&context))?
        .plan_files()
        .await
        .map_err(iceberg(&context))?
        .try_collect()
        .await
        .map_err(iceberg(&context))?;
    let mut files = Vec::with_capacity(tasks.len());
    for t in tasks {
        let direct = t.deletes.is_empty()
            && t.data_file_format == iceberg::spec::DataFileFormat::Parquet
            && t.data_file_path.starts_with("file://");
        if !direct {
            return Ok(None);
        }
        if !files.contains(&t.data_file_path) {
            files.push(t.data_file_path);
        }
    }
    Ok(Some(files))
}

/// The table as DataFusion's listing table over `files`, in the schema of `snapshot_id`
/// (default: the current schema; columns added later read as nulls from older files).
pub fn listing_table(
    table: &Table,
    snapshot_id: Option<i64>,
    files: &[String],
) -> Result<Arc<dyn TableProvider>> {
    let context = format!("reading {}", table.identifier());
    let metadata = table.metadata();
    let schema = match snapshot_id.and_then(|id| metadata.snapshot_by_id(id)) {
        Some(snapshot) => snapshot.schema(metadata).map_err(iceberg(&context))?,
        None => metadata.current_schema().clone(),
    };
    let schema =
        Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).map_err(iceberg(&context))?);
    if files.is_empty() {
        return Ok(Arc::new(
            datafusion::datasource::MemTable::try_new(schema, vec![vec![]])
                .map_err(query(&context))?,
        ));
    }
    let urls = files
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(query(&context))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_collect_stat(true);
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(
        ListingTable::try_new(config).map_err(query(&context))?,
    ))
}
