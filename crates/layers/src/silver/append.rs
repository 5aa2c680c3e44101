//! Appends of pipeline output to a silver table: streamed into Parquet data files, made visible
//! by one atomic commit that records what it covers, fenced against concurrent writers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use iceberg::arrow::{RecordBatchPartitionSplitter, schema_to_arrow_schema};
use iceberg::spec::{DataFile, DataFileFormat};
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
use super::commit::{PinnedCatalog, is_conflict};
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
    /// True when another writer committed the same inputs first (this append was dropped).
    pub lost_race: bool,
    /// Commit attempts refused because another writer committed first (each was retried on
    /// the new table version).
    pub conflicts: u64,
}

impl AppendReport {
    fn skipped() -> Self {
        AppendReport {
            rows: 0,
            data_files: 0,
            skipped: true,
            snapshot_id: None,
            lost_race: false,
            conflicts: 0,
        }
    }
}

/// A summary property of the table's current snapshot, if any.
pub fn current_summary_property(table: &Table, key: &str) -> Option<String> {
    table
        .metadata()
        .current_snapshot()
        .and_then(|s| s.summary().additional_properties.get(key).cloned())
}

/// Everything earlier commits of `table` cover, read from their snapshot summaries (and the
/// archive of expired snapshots' coverage `strata maintain` keeps).
pub async fn committed_coverage(table: &Table) -> Result<BTreeSet<String>> {
    let mut index = CoverageIndex::default();
    index.load(table).await?;
    Ok(index.covered.into_iter().collect())
}

/// Table property naming the file that holds what expired snapshots covered (a JSON list of
/// strings in the table's metadata folder), so expiring snapshots never un-covers an input.
pub const COVERED_ARCHIVE_KEY: &str = "strata.covered-archive";

/// What the commits of one table cover, kept up to date by reading only the snapshots added
/// since the last look: a writer that commits often onto an old table checks its inputs
/// against this set instead of parsing every snapshot's coverage list again (which made the
/// commit cost grow with the table's age).
#[derive(Debug, Default, Clone)]
pub struct CoverageIndex {
    covered: HashSet<String>,
    /// Snapshots already read.
    seen: HashSet<i64>,
    /// The coverage archive read (see [`COVERED_ARCHIVE_KEY`]).
    archive: Option<String>,
}

impl CoverageIndex {
    /// Reads the coverage archive of `table` if it changed, then its unread snapshots.
    pub async fn load(&mut self, table: &Table) -> Result<()> {
        if let Some(path) = table.metadata().properties().get(COVERED_ARCHIVE_KEY)
            && self.archive.as_ref() != Some(path)
        {
            let items = read_archive(table, path).await?;
            self.covered.extend(items);
            self.archive = Some(path.clone());
        }
        self.refresh(table)
    }

    /// Reads the coverage of the snapshots of `table` not read before. An archive newer than
    /// the one [`CoverageIndex::load`] read is an error (maintenance expired snapshots
    /// meanwhile): the caller loads again.
    pub fn refresh(&mut self, table: &Table) -> Result<()> {
        if let Some(path) = table.metadata().properties().get(COVERED_ARCHIVE_KEY)
            && self.archive.as_ref() != Some(path)
        {
            return Err(LayersError::Iceberg {
                context: format!("checking what {} covers", table.identifier()),
                message: format!(
                    "maintenance archived expired snapshots' coverage in {path} meanwhile; run again"
                ),
            });
        }
        for snapshot in table.metadata().snapshots() {
            if !self.seen.insert(snapshot.snapshot_id()) {
                continue;
            }
            let Some(list) = snapshot.summary().additional_properties.get(COVERED_KEY) else {
                continue;
            };
            let items: Vec<String> =
                serde_json::from_str(list).map_err(|e| LayersError::Iceberg {
                    context: format!(
                        "reading snapshot {} of {}",
                        snapshot.snapshot_id(),
                        table.identifier()
                    ),
                    message: format!("`{COVERED_KEY}` is not a JSON list of strings: {e}"),
                })?;
            self.covered.extend(items);
        }
        Ok(())
    }

    /// True when an earlier commit covers `item`.
    pub fn contains(&self, item: &str) -> bool {
        self.covered.contains(item)
    }

    /// Everything covered, sorted.
    pub fn to_sorted(&self) -> BTreeSet<String> {
        self.covered.iter().cloned().collect()
    }

    /// Snapshots read so far (each read once).
    pub fn snapshots_read(&self) -> usize {
        self.seen.len()
    }

    /// The coverage archive read last, if any.
    pub fn archive(&self) -> Option<&str> {
        self.archive.as_deref()
    }

    /// Whether `covered` is already committed to `table` (reading only its new snapshots).
    pub fn state(&mut self, table: &Table, covered: &[String]) -> Result<Coverage> {
        self.refresh(table)?;
        let done: Vec<&String> = covered.iter().filter(|c| self.contains(c)).collect();
        if !covered.is_empty() && done.len() == covered.len() {
            return Ok(Coverage::Done);
        }
        if let Some(first) = done.first() {
            return Err(LayersError::Iceberg {
                context: format!("appending to {}", table.identifier()),
                message: format!(
                    "{} of {} inputs are already committed (first: {first}); split the chunk",
                    done.len(),
                    covered.len(),
                ),
            });
        }
        Ok(Coverage::New)
    }
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
    let mut index = CoverageIndex::default();
    index.load(table).await?;
    if index.state(table, covered)? == Coverage::Done {
        return Ok(AppendReport::skipped());
    }
    let mut writer = SilverAppend::start(table, &WriteOptions::default()).await?;
    for batch in batches {
        writer.write(batch).await?;
    }
    Ok(writer.commit(catalog, covered, extra).await?.report)
}

/// The outcome of [`SilverAppend::commit`]: what it did, and the table version after it (the
/// base for the next append, so it does not start from a stale version).
#[derive(Debug, Clone)]
pub struct Committed {
    /// What the commit did.
    pub report: AppendReport,
    /// The table as of this commit (or as found, when skipped).
    pub table: Table,
}

/// How data files are cut while appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// Target size of a data file (bytes written to Parquet, after compression).
    pub target_file_bytes: usize,
    /// Memory the open Parquet writers may hold: once the Arrow bytes written since the last
    /// flush reach this, the open files are closed (each keeps at most one row group in memory
    /// per open partition). Bounds memory independently of the input size, at the price of
    /// smaller files when it is low.
    pub flush_bytes: usize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            target_file_bytes: 128 << 20,
            flush_bytes: 512 << 20,
        }
    }
}

type FileWriterBuilder =
    DataFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

enum OpenWriter {
    Plain(Box<<FileWriterBuilder as IcebergWriterBuilder>::R>),
    Partitioned(
        Box<(
            FanoutWriter<FileWriterBuilder>,
            RecordBatchPartitionSplitter,
        )>,
    ),
}

/// A streaming append to one silver table: batches are written to Parquet data files as they
/// come (memory bounded by [`WriteOptions::flush_bytes`]), and [`SilverAppend::commit`] makes
/// them visible in one atomic snapshot.
pub struct SilverAppend {
    table: Table,
    name: String,
    arrow_schema: SchemaRef,
    options: WriteOptions,
    writer: Option<OpenWriter>,
    files: Vec<DataFile>,
    rows: u64,
    buffered: usize,
}

impl std::fmt::Debug for SilverAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SilverAppend")
            .field("table", &self.name)
            .field("rows", &self.rows)
            .field("files", &self.files.len())
            .finish()
    }
}

impl SilverAppend {
    /// Starts an append to `table` (as loaded: its schema and partition spec are used).
    pub async fn start(table: &Table, options: &WriteOptions) -> Result<Self> {
        let name = table.identifier().to_string();
        let arrow_schema: SchemaRef = Arc::new(
            schema_to_arrow_schema(table.metadata().current_schema())
                .map_err(iceberg_err(format!("schema of {name}")))?,
        );
        Ok(SilverAppend {
            table: table.clone(),
            name,
            arrow_schema,
            options: *options,
            writer: None,
            files: Vec::new(),
            rows: 0,
            buffered: 0,
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Closes the files written and hands them over uncommitted (for a commit of another
    /// kind, such as an overwrite).
    pub(crate) async fn into_files(mut self) -> Result<Vec<DataFile>> {
        self.flush().await?;
        Ok(self.files)
    }
}

/// Opens data-file writers for `table`. A free function: a `&SilverAppend` held across an
/// await would make the append future require `Sync`, which Parquet's writers are not.
async fn open_writer(table: &Table, options: WriteOptions) -> Result<OpenWriter> {
    {
        let name = &table.identifier().to_string();
        let schema = table.metadata().current_schema().clone();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let location = DefaultLocationGenerator::new(table.metadata())
            .map_err(iceberg_err(format!("locations of {name}")))?;
        // iceberg-rust's generator numbers files from 0 per writer: the prefix must be unique
        // per writer, or a second one would write over the first one's files.
        let file_names =
            DefaultFileNameGenerator::new(unique_prefix(), None, DataFileFormat::Parquet);
        let rolling = RollingFileWriterBuilder::new(
            ParquetWriterBuilder::new(props, schema.clone()),
            options.target_file_bytes,
            table.file_io().clone(),
            location,
            file_names,
        );
        let builder = DataFileWriterBuilder::new(rolling);
        let spec = table.metadata().default_partition_spec().clone();
        if spec.is_unpartitioned() {
            let writer = builder
                .build(None)
                .await
                .map_err(iceberg_err(format!("writing {name}")))?;
            return Ok(OpenWriter::Plain(Box::new(writer)));
        }
        let splitter = RecordBatchPartitionSplitter::try_new_with_computed_values(schema, spec)
            .map_err(iceberg_err(format!("partitioning {name}")))?;
        Ok(OpenWriter::Partitioned(Box::new((
            FanoutWriter::new(builder),
            splitter,
        ))))
    }
}

impl SilverAppend {
    /// Writes one batch of pipeline output (columns matched by name, cast to the table's types).
    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, &self.arrow_schema, &self.name)?;
        if self.writer.is_none() {
            self.writer = Some(open_writer(&self.table, self.options).await?);
        }
        let name = &self.name;
        match self.writer.as_mut() {
            Some(OpenWriter::Plain(writer)) => writer
                .write(batch.clone())
                .await
                .map_err(iceberg_err(format!("writing {name}")))?,
            Some(OpenWriter::Partitioned(parts)) => {
                let (writer, splitter) = parts.as_mut();
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
            None => return Err(LayersError::Internal("no open writer".into())),
        }
        self.rows += batch.num_rows() as u64;
        self.buffered += batch.get_array_memory_size();
        if self.buffered >= self.options.flush_bytes {
            self.flush().await?;
        }
        Ok(())
    }

    /// Closes the open data files (they stay invisible until the commit).
    async fn flush(&mut self) -> Result<()> {
        let name = &self.name;
        let closed = match self.writer.take() {
            Some(OpenWriter::Plain(mut writer)) => writer.close().await,
            Some(OpenWriter::Partitioned(parts)) => parts.0.close().await,
            None => Ok(Vec::new()),
        };
        self.files
            .extend(closed.map_err(iceberg_err(format!("closing files of {name}")))?);
        self.buffered = 0;
        Ok(())
    }

    /// Commits everything written in one snapshot whose summary records `covered` and `extra`.
    /// Another writer committing first is answered by reloading the table and checking coverage
    /// again: if it now covers `covered`, this append is dropped (reported as skipped; its files
    /// are unreferenced), otherwise it is committed onto the new version.
    pub async fn commit(
        self,
        catalog: &SilverCatalog,
        covered: &[String],
        extra: &[(String, String)],
    ) -> Result<Committed> {
        self.commit_indexed(catalog, covered, extra, &mut CoverageIndex::default())
            .await
    }

    /// [`Self::commit`], checking coverage with `index` (kept by a writer across its commits,
    /// so each commit reads only the snapshots added since the last one).
    pub async fn commit_indexed(
        self,
        catalog: &SilverCatalog,
        covered: &[String],
        extra: &[(String, String)],
        index: &mut CoverageIndex,
    ) -> Result<Committed> {
        index.load(&self.table).await?;
        let mut summary: HashMap<String, String> = extra.iter().cloned().collect();
        summary.insert(
            COVERED_KEY.to_string(),
            serde_json::to_string(covered).map_err(|e| LayersError::Internal(e.to_string()))?,
        );
        self.commit_checked(catalog, summary, |base| index.state(base, covered))
            .await
    }

    /// Commits everything written in one snapshot with `summary`, after `check` accepted the
    /// exact table version the commit is based on: [`Coverage::Done`] drops the append,
    /// [`Coverage::New`] commits it, an error stops. After losing a race the table is reloaded
    /// and checked again, so the check always holds for the version that is committed onto
    /// (streaming drivers check their committed offsets and writer epoch this way).
    pub async fn commit_checked(
        mut self,
        catalog: &SilverCatalog,
        summary: HashMap<String, String>,
        mut check: impl FnMut(&Table) -> Result<Coverage>,
    ) -> Result<Committed> {
        self.flush().await?;
        let name = self.name.clone();
        let n_files = self.files.len();
        let mut base = self.table.clone();
        for attempt in 0..COMMIT_ATTEMPTS {
            if attempt > 0 {
                base = catalog.load(base.identifier().name()).await?;
            }
            if check(&base)? == Coverage::Done {
                return Ok(Committed {
                    report: AppendReport {
                        lost_race: attempt > 0,
                        conflicts: attempt as u64,
                        ..AppendReport::skipped()
                    },
                    table: base,
                });
            }
            let tx = Transaction::new(&base);
            // iceberg-rust's duplicate check loads every manifest of the table on every append
            // (to refuse a data file path that is already live): a cost that grows with the
            // table's age — 0.02 s per commit at the first commit, 0.5 s at the thousandth.
            // Our data file names are unique per append (`unique_prefix`), and what must not
            // be committed twice is an *input*, which `check` decides from the coverage index.
            let tx = tx
                .fast_append()
                .with_check_duplicate(false)
                .add_data_files(self.files.clone())
                .set_snapshot_properties(summary.clone())
                .apply(tx)
                .map_err(iceberg_err(format!("preparing the commit to {name}")))?;
            let pinned = PinnedCatalog {
                inner: catalog.catalog(),
                pointer: catalog.pointer(),
                base: base.clone(),
            };
            match tx.commit(&pinned).await {
                Ok(committed) => {
                    return Ok(Committed {
                        report: AppendReport {
                            rows: self.rows,
                            data_files: n_files,
                            skipped: false,
                            snapshot_id: committed.metadata().current_snapshot_id(),
                            lost_race: false,
                            conflicts: attempt as u64,
                        },
                        table: committed,
                    });
                }
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(iceberg_err(format!("committing to {name}"))(e)),
            }
        }
        Err(LayersError::CommitConflict {
            table: name,
            attempts: COMMIT_ATTEMPTS,
        })
    }
}

/// How many times a commit is retried after another writer committed first.
pub(crate) const COMMIT_ATTEMPTS: usize = 8;

/// What a commit check decided about a table version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Not committed yet: commit.
    New,
    /// Already committed: drop this append.
    Done,
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
pub(crate) fn conform(batch: &RecordBatch, target: &SchemaRef, table: &str) -> Result<RecordBatch> {
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

/// The items of a coverage archive file.
pub(crate) async fn read_archive(table: &Table, path: &str) -> Result<Vec<String>> {
    let name = table.identifier().to_string();
    let bytes = table
        .file_io()
        .new_input(path)
        .map_err(iceberg_err(format!(
            "opening the coverage archive of {name}"
        )))?
        .read()
        .await
        .map_err(iceberg_err(format!(
            "reading the coverage archive {path} of {name}"
        )))?;
    serde_json::from_slice(&bytes).map_err(|e| LayersError::Iceberg {
        context: format!("reading the coverage archive {path} of {name}"),
        message: format!("not a JSON list of strings: {e}"),
    })
}
