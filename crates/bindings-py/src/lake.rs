//! `strata.Lake`: the lake from Python — list and read silver and gold tables (a snapshot, a
//! filter pushed into the Iceberg scan, chosen columns) as Arrow streams, read bronze files with
//! the lineage the batch driver gives them, and run `batch`, `models run` and `maintain` exactly
//! as the `strata` command does.

use std::sync::{Arc, LazyLock};

use arrow::array::{RecordBatch, RecordBatchReader};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use iceberg_datafusion::IcebergStaticTableProvider;
use pyo3::prelude::*;
use strata_layers::bronze::{BronzeDate, BronzeFileReader, BronzeReader};
use strata_layers::lake::Lake;
use strata_layers::silver::{CatalogConfig, SilverCatalog, direct_files, listing_table};

use crate::arrow_io::{to_reader, to_table};
use crate::cli::run_command;
use crate::errors;

/// The runtime every lake call runs on (object store and catalog I/O).
static RUNTIME: LazyLock<std::io::Result<tokio::runtime::Runtime>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("strata-lake")
        .enable_all()
        .build()
});

fn block_on<F: std::future::Future>(future: F) -> PyResult<F::Output> {
    match RUNTIME.as_ref() {
        Ok(rt) => Ok(rt.block_on(future)),
        Err(e) => Err(errors::lake(format!("cannot start the I/O runtime: {e}"))),
    }
}

/// A snapshot as Python sees it: id, commit time (ms since the epoch), summary properties.
type SnapshotInfo = (i64, i64, std::collections::HashMap<String, String>);

/// A lake: a folder, `file:///…` or `s3://bucket/prefix`, and its catalog database.
#[pyclass(name = "Lake", module = "strata", frozen)]
pub(crate) struct PyLake {
    uri: String,
    catalog: Option<String>,
}

/// `silver.x`, `gold.x` or `x` (silver).
fn split_name(table: &str) -> (&str, &str) {
    match table.split_once('.') {
        Some((ns, name)) => (ns, name),
        None => ("silver", table),
    }
}

impl PyLake {
    async fn catalog(&self, namespace: &str) -> Result<SilverCatalog, String> {
        let config = CatalogConfig::for_lake(&self.uri, self.catalog.as_deref())
            .map_err(|e| e.to_string())?;
        let catalog = SilverCatalog::open(&config)
            .await
            .map_err(|e| e.to_string())?;
        if namespace == "silver" {
            Ok(catalog)
        } else {
            catalog
                .in_namespace(namespace)
                .await
                .map_err(|e| e.to_string())
        }
    }

    fn lake_flags(&self) -> Vec<String> {
        let mut flags = vec!["--lake".to_string(), self.uri.clone()];
        if let Some(c) = &self.catalog {
            flags.extend(["--catalog".to_string(), c.clone()]);
        }
        flags
    }

    async fn scan(
        &self,
        table: &str,
        filter: Option<&str>,
        columns: Option<&[String]>,
        snapshot_id: Option<i64>,
    ) -> Result<SendableRecordBatchStream, String> {
        let (namespace, name) = split_name(table);
        let catalog = self.catalog(namespace).await?;
        let loaded = catalog.load(name).await.map_err(|e| e.to_string())?;
        if let Some(id) = snapshot_id
            && loaded.metadata().snapshot_by_id(id).is_none()
        {
            return Err(format!("{table}: no snapshot {id}"));
        }
        // The direct Parquet path where it applies: faster, and it reads the `_file` lineage
        // column, which iceberg-rust's scan shadows with the reserved metadata column.
        let provider: Arc<dyn TableProvider> = match direct_files(&loaded, snapshot_id)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(files) => {
                listing_table(&loaded, snapshot_id, &files).map_err(|e| e.to_string())?
            }
            None => Arc::new(
                match snapshot_id {
                    Some(id) => {
                        IcebergStaticTableProvider::try_new_from_table_snapshot(loaded, id).await
                    }
                    None => IcebergStaticTableProvider::try_new_from_table(loaded).await,
                }
                .map_err(|e| format!("{table}: {e}"))?,
            ),
        };
        let ctx = SessionContext::new();
        let mut df = ctx
            .read_table(provider)
            .map_err(|e| format!("{table}: {e}"))?;
        if let Some(filter) = filter {
            let predicate = df
                .parse_sql_expr(filter)
                .map_err(|e| format!("filter `{filter}`: {e}"))?;
            df = df
                .filter(predicate)
                .map_err(|e| format!("filter `{filter}`: {e}"))?;
        }
        if let Some(columns) = columns {
            let names: Vec<&str> = columns.iter().map(String::as_str).collect();
            df = df
                .select_columns(&names)
                .map_err(|e| format!("columns {columns:?}: {e}"))?;
        }
        df.execute_stream()
            .await
            .map_err(|e| format!("{table}: {e}"))
    }
}

/// A DataFusion stream pulled batch by batch on the lake runtime.
struct StreamReader {
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
}

impl Iterator for StreamReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rt = RUNTIME.as_ref().ok()?;
        rt.block_on(self.stream.next())
            .map(|r| r.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for StreamReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Bronze files read one after the other, with `_file` / `_line` lineage.
struct BronzeStream {
    reader: BronzeReader,
    files: std::vec::IntoIter<strata_layers::bronze::BronzeFile>,
    current: Option<BronzeFileReader>,
    schema: SchemaRef,
    batch_rows: usize,
    ingested_at_micros: i64,
}

impl BronzeStream {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>, String> {
        loop {
            if let Some(current) = &mut self.current {
                if let Some(batch) = current.next_batch().await.map_err(|e| e.to_string())? {
                    return Ok(Some(batch));
                }
                self.current = None;
            }
            let Some(file) = self.files.next() else {
                return Ok(None);
            };
            self.current = Some(
                self.reader
                    .open(&file, self.batch_rows, 64 << 20, self.ingested_at_micros)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
    }
}

impl Iterator for BronzeStream {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rt = RUNTIME.as_ref().ok()?;
        rt.block_on(self.next_batch())
            .map_err(|message| ArrowError::ExternalError(message.into()))
            .transpose()
    }
}

impl RecordBatchReader for BronzeStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

fn date(text: Option<&str>) -> PyResult<Option<BronzeDate>> {
    text.map(BronzeDate::parse)
        .transpose()
        .map_err(|e| errors::raise(errors::Kind::Config, e.to_string()))
}

#[pymethods]
impl PyLake {
    /// `Lake(uri, catalog=None)`: the catalog defaults to `<lake>/catalog/catalog.db` for a local
    /// lake (an S3 lake needs one: `postgres://…` or `sqlite:…`).
    #[new]
    #[pyo3(signature = (uri, catalog = None))]
    fn new(uri: std::path::PathBuf, catalog: Option<String>) -> Self {
        PyLake {
            uri: uri.to_string_lossy().into_owned(),
            catalog,
        }
    }

    /// The lake root.
    #[getter]
    fn uri(&self) -> String {
        self.uri.clone()
    }

    /// The tables of the silver and gold layers, as `layer.name`, sorted.
    fn tables(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| {
            block_on(async {
                let mut out = Vec::new();
                for layer in ["silver", "gold"] {
                    let catalog = self.catalog(layer).await?;
                    for name in catalog.table_names().await.map_err(|e| e.to_string())? {
                        out.push(format!("{layer}.{name}"));
                    }
                }
                Ok::<_, String>(out)
            })
        })?
        .map_err(errors::lake)
    }

    /// Reads `table` (`silver.x`, `gold.x`, or `x` for silver) as a pyarrow RecordBatchReader:
    /// its current snapshot or `snapshot_id`, rows where the SQL predicate `filter` holds
    /// (pushed into the scan: partitions and files that cannot match are skipped), `columns`
    /// only.
    #[pyo3(signature = (table, *, filter = None, columns = None, snapshot_id = None))]
    fn read<'py>(
        &self,
        py: Python<'py>,
        table: &str,
        filter: Option<&str>,
        columns: Option<Vec<String>>,
        snapshot_id: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let stream = py
            .detach(|| block_on(self.scan(table, filter, columns.as_deref(), snapshot_id)))?
            .map_err(errors::lake)?;
        let reader = StreamReader {
            schema: stream.schema(),
            stream,
        };
        to_reader(py, Box::new(reader))
    }

    /// The snapshots of `table`, oldest first: `(snapshot_id, committed_at_ms, summary)`.
    fn snapshots(&self, py: Python<'_>, table: &str) -> PyResult<Vec<SnapshotInfo>> {
        let (namespace, name) = split_name(table);
        py.detach(|| {
            block_on(async {
                let catalog = self.catalog(namespace).await?;
                let loaded = catalog.load(name).await.map_err(|e| e.to_string())?;
                let mut snapshots: Vec<_> = loaded
                    .metadata()
                    .snapshots()
                    .map(|s| {
                        (
                            s.snapshot_id(),
                            s.timestamp_ms(),
                            s.summary().additional_properties.clone(),
                        )
                    })
                    .collect();
                snapshots.sort_by_key(|s| s.1);
                Ok::<_, String>(snapshots)
            })
        })?
        .map_err(errors::lake)
    }

    /// Bronze files of `source` (paths below the lake root, the `_file` the batch driver
    /// records), oldest first, optionally within dates `YYYY-MM-DD`.
    #[pyo3(signature = (source, *, from_date = None, to_date = None))]
    fn bronze_files(
        &self,
        py: Python<'_>,
        source: &str,
        from_date: Option<&str>,
        to_date: Option<&str>,
    ) -> PyResult<Vec<String>> {
        let (from, to) = (date(from_date)?, date(to_date)?);
        py.detach(|| {
            block_on(async {
                let lake = Lake::open(&self.uri).map_err(|e| e.to_string())?;
                let files = BronzeReader::new(lake)
                    .list(source, from, to)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(files.into_iter().map(|f| f.relative).collect())
            })
        })?
        .map_err(errors::lake)
    }

    /// Reads bronze files of `source` (all, or the `files` named as `bronze_files` lists them)
    /// as raw records with the lineage the batch driver gives them (`_raw`, `_source`,
    /// `_ingested_at`, `_file`, `_line`): a pyarrow RecordBatchReader.
    #[pyo3(signature = (source, *, files = None, batch_rows = 8192))]
    fn read_bronze<'py>(
        &self,
        py: Python<'py>,
        source: &str,
        files: Option<Vec<String>>,
        batch_rows: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let stream = py
            .detach(|| {
                block_on(async {
                    let lake = Lake::open(&self.uri).map_err(|e| e.to_string())?;
                    let reader = BronzeReader::new(lake);
                    let mut listed = reader
                        .list(source, None, None)
                        .await
                        .map_err(|e| e.to_string())?;
                    if let Some(wanted) = &files {
                        for name in wanted {
                            if !listed.iter().any(|f| &f.relative == name) {
                                return Err(format!(
                                    "no bronze file `{name}` in source `{source}`"
                                ));
                            }
                        }
                        listed.retain(|f| wanted.contains(&f.relative));
                    }
                    let schema = match listed.first() {
                        Some(f) => reader.input_schema(f).await.map_err(|e| e.to_string())?,
                        None => strata_core::lineage::file_input_schema(),
                    };
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_err(|e| e.to_string())?;
                    Ok(BronzeStream {
                        reader,
                        files: listed.into_iter(),
                        current: None,
                        schema,
                        batch_rows: batch_rows.max(1),
                        ingested_at_micros: i64::try_from(now.as_micros()).unwrap_or(i64::MAX),
                    })
                })
            })?
            .map_err(errors::lake)?;
        to_reader(py, Box::new(stream))
    }

    /// Runs SQL over the lake's tables (`silver` is the default schema; `gold.x` for gold) and
    /// returns a pyarrow Table.
    fn sql<'py>(&self, py: Python<'py>, query: &str) -> PyResult<Bound<'py, PyAny>> {
        let batches = py
            .detach(|| {
                block_on(async {
                    let catalog = self.catalog("silver").await?;
                    strata_layers::silver::sql(&catalog, query)
                        .await
                        .map_err(|e| e.to_string())
                })
            })?
            .map_err(errors::lake)?;
        let schema = batches
            .first()
            .map(|b| b.schema())
            .unwrap_or_else(|| Arc::new(arrow::datatypes::Schema::empty()));
        to_table(py, schema, batches)
    }

    /// `strata batch`: bronze files of `source` → the pipeline → its silver table, exactly once.
    #[pyo3(signature = (source, pipeline, *, from_date = None, to_date = None, full_refresh = false))]
    fn batch(
        &self,
        py: Python<'_>,
        source: &str,
        pipeline: std::path::PathBuf,
        from_date: Option<String>,
        to_date: Option<String>,
        full_refresh: bool,
    ) -> PyResult<()> {
        let mut argv = vec!["batch".to_string()];
        argv.extend(self.lake_flags());
        argv.extend([
            "--source".into(),
            source.into(),
            "--pipeline".into(),
            pipeline.to_string_lossy().into_owned(),
        ]);
        for (flag, value) in [("--from", from_date), ("--to", to_date)] {
            if let Some(v) = value {
                argv.extend([flag.to_string(), v]);
            }
        }
        if full_refresh {
            argv.push("--full-refresh".into());
        }
        run_command(py, argv)
    }

    /// `strata models run`: the gold models of the `models` folder that have a reason to run;
    /// raises `AuditError` when a blocking audit fails (the model is not published).
    #[pyo3(signature = (models, *, select = None, force = false, full_refresh = false))]
    fn models_run(
        &self,
        py: Python<'_>,
        models: std::path::PathBuf,
        select: Option<Vec<String>>,
        force: bool,
        full_refresh: bool,
    ) -> PyResult<()> {
        let mut argv = vec!["models".to_string(), "run".to_string()];
        argv.extend(self.lake_flags());
        argv.extend(["--models".into(), models.to_string_lossy().into_owned()]);
        for s in select.unwrap_or_default() {
            argv.extend(["--select".into(), s]);
        }
        if force {
            argv.push("--force".into());
        }
        if full_refresh {
            argv.push("--full-refresh".into());
        }
        run_command(py, argv)
    }

    /// `strata maintain`: compaction, snapshot expiry and orphan clean-up (all tables, or the
    /// named ones).
    #[pyo3(signature = (tables = None, *, keep_snapshots = None, dry_run = false))]
    fn maintain(
        &self,
        py: Python<'_>,
        tables: Option<Vec<String>>,
        keep_snapshots: Option<usize>,
        dry_run: bool,
    ) -> PyResult<()> {
        let mut argv = vec!["maintain".to_string()];
        argv.extend(self.lake_flags());
        for t in tables.unwrap_or_default() {
            argv.extend(["--table".into(), t]);
        }
        if let Some(k) = keep_snapshots {
            argv.extend(["--keep-snapshots".into(), k.to_string()]);
        }
        if dry_run {
            argv.push("--dry-run".into());
        }
        run_command(py, argv)
    }

    fn __repr__(&self) -> String {
        format!("Lake({:?})", self.uri)
    }
}
