//! One atomic append of pipeline output to a silver table, recording what it covers.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::spec::DataFileFormat;
use iceberg::table::Table;
use iceberg::transaction::{ApplyTransactionAction, Transaction};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::file_writer::location_generator::{
    DefaultFileNameGenerator, DefaultLocationGenerator,
};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::partitioning::PartitioningWriter;
use iceberg::writer::partitioning::fanout_writer::FanoutWriter;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::catalog::{SilverCatalog, iceberg_err};
use crate::error::{LayersError, Result};

/// Snapshot-summary key listing what a commit covers (a JSON array of strings).
pub const COVERED_KEY: &str = "strata.covered";

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReport {
    /// Rows appended (0 when skipped).
    pub rows: u64,
    /// Data files written.
    pub data_files: usize,
    /// True when everything was already covered by earlier commits.
    pub skipped: bool,
    /// The new snapshot, if one was committed.
    pub snapshot_id: Option<i64>,
}

/// A summary property of the table's current snapshot, if any.
pub fn current_summary_property(table: &Table, key: &str) -> Option<String> {
    table
        .metadata()
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get(key).cloned())
}

/// Everything earlier commits of `table` cover, read from their snapshot summaries.
pub fn committed_coverage(table: &Table) -> Result<BTreeSet<String>> {
    let mut covered = BTreeSet::new();
    for snapshot in table.metadata().snapshots() {
        if let Some(list) = snapshot.summary().additional_properties.get(COVERED_KEY) {
            let items: Vec<String> =
                serde_json::from_str(list).map_err(|e| LayersError::Iceberg {
                    context: format!(
                        "reading snapshot {} of {}",
                        snapshot.snapshot_id(),
                        table.identifier()
                    ),
                    message: format!("`{COVERED_KEY}` is not a JSON list of strings: {e}"),
                })?;
            covered.extend(items);
        }
    }
    Ok(covered)
}

/// Appends `batches` to `table` in one commit that records `covered` (bronze files or source
/// positions). If every item of `covered` is already committed, nothing is written; if only some
/// are, that is an error (the caller must not mix new and old inputs in one chunk).
pub async fn append(
    catalog: &SilverCatalog,
    table: &Table,
    batches: &[RecordBatch],
    covered: &[String],
    extra: &[(String, String)],
) -> Result<AppendReport> {
    let name = table.identifier().to_string();
    let already = committed_coverage(table)?;
    let done: Vec<&String> = covered.iter().filter(|c| already.contains(*c)).collect();
    if !covered.is_empty() && done.len() == covered.len() {
        return Ok(AppendReport {
            rows: 0,
            data_files: 0,
            skipped: true,
            snapshot_id: None,
        });
    }
    if !done.is_empty() {
        return Err(LayersError::Iceberg {
            context: format!("appending to {name}"),
            message: format!(
                "{} of {} inputs are already committed (first: {}); split the chunk",
                done.len(),
                covered.len(),
                done[0]
            ),
        });
    }
    let schema = table.metadata().current_schema().clone();
    let arrow_schema: SchemaRef = Arc::new(
        schema_to_arrow_schema(&schema).map_err(iceberg_err(format!("schema of {name}")))?,
    );
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let location = DefaultLocationGenerator::new(table.metadata())
        .map_err(iceberg_err(format!("locations of {name}")))?;
    // iceberg-rust's generator numbers files from 0 per writer: the prefix must be unique per
    // append, or a second append would write over the first one's files before its commit fails.
    let file_names = DefaultFileNameGenerator::new(unique_prefix(), None, DataFileFormat::Parquet);
    let rolling = RollingFileWriterBuilder::new_with_default_file_size(
        ParquetWriterBuilder::new(props, schema.clone()),
        table.file_io().clone(),
        location,
        file_names,
    );
    let builder = DataFileWriterBuilder::new(rolling);
    let spec = table.metadata().default_partition_spec().clone();
    let mut rows = 0u64;
    let data_files = if spec.is_unpartitioned() {
        let mut writer = builder
            .build(None)
            .await
            .map_err(iceberg_err(format!("writing {name}")))?;
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            let batch = conform(batch, &arrow_schema, &name)?;
            rows += batch.num_rows() as u64;
            writer
                .write(batch)
                .await
                .map_err(iceberg_err(format!("writing {name}")))?;
        }
        writer
            .close()
            .await
            .map_err(iceberg_err(format!("closing files of {name}")))?
    } else {
        let mut writer = FanoutWriter::new(builder);
        let splitter =
            RecordBatchPartitionSplitter::try_new_with_computed_values(schema.clone(), spec)
                .map_err(iceberg_err(format!("partitioning {name}")))?;
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            let batch = conform(batch, &arrow_schema, &name)?;
            rows += batch.num_rows() as u64;
            for (key, part) in splitter
                .split(&batch)
                .map_err(iceberg_err(format!("partitioning a batch for {name}")))?
            {
                writer
                    .write(key, part)
                    .await
                    .map_err(iceberg_err(format!("writing {name}")))?;
            }
        }
        writer
            .close()
            .await
            .map_err(iceberg_err(format!("closing files of {name}")))?
    };
    let n_files = data_files.len();
    let mut summary: HashMap<String, String> = extra.iter().cloned().collect();
    summary.insert(
        COVERED_KEY.to_string(),
        serde_json::to_string(covered).map_err(|e| LayersError::Internal(e.to_string()))?,
    );
    let tx = Transaction::new(table);
    let tx = tx
        .fast_append()
        .add_data_files(data_files)
        .set_snapshot_properties(summary)
        .apply(tx)
        .map_err(iceberg_err(format!("preparing the commit to {name}")))?;
    let committed = tx
        .commit(catalog.catalog())
        .await
        .map_err(iceberg_err(format!("committing to {name}")))?;
    Ok(AppendReport {
        rows,
        data_files: n_files,
        skipped: false,
        snapshot_id: committed.metadata().current_snapshot_id(),
    })
}

/// `strata-<nanos since epoch>-<pid>-<n>`: unique per append across processes and restarts.
fn unique_prefix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("strata-{nanos}-{}-{n}", std::process::id())
}

/// Casts a pipeline batch to the table's Arrow schema (with Iceberg field ids), column by name.
fn conform(batch: &RecordBatch, target: &SchemaRef, table: &str) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(target.fields().len());
    for field in target.fields() {
        let column = batch
            .column_by_name(field.name())
            .ok_or_else(|| LayersError::Iceberg {
                context: format!("appending to {table}"),
                message: format!("the batch has no column `{}`", field.name()),
            })?;
        let column = if column.data_type() == field.data_type() {
            column.clone()
        } else {
            arrow::compute::cast(column, field.data_type()).map_err(|e| LayersError::Iceberg {
                context: format!("appending to {table}"),
                message: format!("column `{}`: {e}", field.name()),
            })?
        };
        columns.push(column);
    }
    RecordBatch::try_new(target.clone(), columns).map_err(|e| LayersError::Iceberg {
        context: format!("appending to {table}"),
        message: e.to_string(),
    })
}
