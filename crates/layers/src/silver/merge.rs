//! Keyed silver tables (`snapshot`, `historical`): a chunk of change events is merged into the
//! rows of the keys it touches and committed copy-on-write, in one overwrite snapshot that also
//! records what the chunk covers (so a re-run commits nothing twice).
//!
//! At commit, against the exact table version the commit will be based on:
//! 1. the live data files that may hold a touched key are found from the key column's bounds
//!    in the manifests (files written by a merge are sorted by key, so their ranges are narrow);
//! 2. those files are read, and [`KeyedTable::merge`] turns their rows plus the events into the
//!    keys' new rows (untouched rows of those files pass through unchanged);
//! 3. the result is written to new files, and [`commit_overwrite`] swaps them for the old ones.
//!
//! A `snapshot` table with `full_load: replace` takes each commit as a whole full load: every
//! live file is read, and the rows of keys the load lacks are left out of the merge (deleted).
//!
//! If another writer commits first, the new files are deleted and all three steps are redone on
//! the new version: an update that landed meanwhile is merged, never overwritten.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use iceberg::spec::{Datum, ManifestEntryRef};
use iceberg::table::Table;
use strata_core::keyed::KeyedTable;

use super::append::{
    AppendReport, COMMIT_ATTEMPTS, COVERED_KEY, Committed, Coverage, CoverageIndex, SilverAppend,
    WriteOptions, conform,
};
use super::catalog::SilverCatalog;
use super::overwrite::{LiveFiles, OverwriteReport, commit_overwrite, read_data_files};
use crate::error::{LayersError, Result};

/// A chunk of change events for a keyed table, merged and committed by
/// [`SilverMerge::commit_indexed`].
pub struct SilverMerge {
    table: Table,
    name: String,
    keyed: KeyedTable,
    options: WriteOptions,
    events: Vec<RecordBatch>,
    rows: u64,
}

impl std::fmt::Debug for SilverMerge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SilverMerge")
            .field("table", &self.name)
            .field("kind", &self.keyed.kind())
            .field("events", &self.rows)
            .finish()
    }
}

/// What a merge commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    /// Change events applied.
    pub events: u64,
    /// Files rewritten and rows in and out.
    pub rewrite: OverwriteReport,
    /// Live data files the key bounds ruled out (not read).
    pub files_pruned: usize,
    /// Merges redone because another writer committed first.
    pub retries: usize,
}

impl SilverMerge {
    /// Starts a chunk for `table` (as loaded: the merge reads and commits onto its version, or a
    /// newer one after a lost race).
    pub fn start(table: &Table, keyed: KeyedTable, options: &WriteOptions) -> Self {
        SilverMerge {
            name: table.identifier().to_string(),
            table: table.clone(),
            keyed,
            options: *options,
            events: Vec::new(),
            rows: 0,
        }
    }

    /// Change events buffered so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Buffers a batch of change events (the pipeline's output rows).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = conform(batch, self.keyed.base_schema(), &self.name)?;
        self.rows += batch.num_rows() as u64;
        self.events.push(batch);
        Ok(())
    }

    /// Merges and commits the chunk in one overwrite snapshot recording `covered` and `extra`
    /// (nothing is written when an earlier commit covers it; see [`CoverageIndex::state`]).
    pub async fn commit_indexed(
        self,
        catalog: &SilverCatalog,
        covered: &[String],
        extra: &[(String, String)],
        index: &mut CoverageIndex,
    ) -> Result<(Committed, MergeReport)> {
        index.load(&self.table).await?;
        let mut summary: HashMap<String, String> = extra.iter().cloned().collect();
        summary.insert(
            COVERED_KEY.to_string(),
            serde_json::to_string(covered).map_err(|e| LayersError::Internal(e.to_string()))?,
        );
        self.commit_checked(catalog, summary, |base| index.state(base, covered))
            .await
    }

    /// Merges and commits after `check` accepted the exact version the merge reads (see
    /// `SilverAppend::commit_checked`).
    pub async fn commit_checked(
        self,
        catalog: &SilverCatalog,
        summary: HashMap<String, String>,
        mut check: impl FnMut(&Table) -> Result<Coverage>,
    ) -> Result<(Committed, MergeReport)> {
        let events = concat_batches(self.keyed.base_schema(), &self.events).map_err(|e| {
            LayersError::Internal(format!("{}: joining change events: {e}", self.name))
        })?;
        let mut base = self.table.clone();
        for attempt in 0..COMMIT_ATTEMPTS {
            if attempt > 0 {
                base = catalog.load(base.identifier().name()).await?;
            }
            if check(&base)? == Coverage::Done {
                let report = AppendReport {
                    rows: 0,
                    data_files: 0,
                    skipped: true,
                    snapshot_id: None,
                    lost_race: attempt > 0,
                    conflicts: attempt as u64,
                };
                let committed = Committed {
                    report,
                    table: base,
                };
                return Ok((committed, MergeReport::default()));
            }
            let live = LiveFiles::read(&base).await?;
            // A replacing full load touches every key: those it lacks are deleted.
            let replace = self.keyed.replaces_missing_keys();
            let (candidates, pruned) = if replace {
                (live.data_files().cloned().collect(), 0)
            } else {
                candidates(&base, &self.keyed, &live, &events)?
            };
            // Each copy of the rows is dropped as soon as the next exists: the table's rows
            // can be most of the memory a merge needs.
            let input = {
                let mut parts = read_rows(&base, &self.keyed, &candidates).await?;
                if replace {
                    parts = parts
                        .iter()
                        .map(|rows| self.keyed.rows_in_load(rows, &events))
                        .collect::<strata_core::Result<Vec<_>>>()
                        .map_err(|e| LayersError::Iceberg {
                            context: format!("replacing {} with a full load", self.name),
                            message: e.to_string(),
                        })?;
                }
                parts.push(events.clone());
                concat_batches(self.keyed.base_schema(), &parts).map_err(|e| {
                    LayersError::Internal(format!("{}: joining rows to merge: {e}", self.name))
                })?
            };
            let merged = self.keyed.merge(&input).map_err(|e| LayersError::Iceberg {
                context: format!("merging change events into {}", self.name),
                message: e.to_string(),
            })?;
            drop(input);
            let mut writer = SilverAppend::start(&base, &self.options).await?;
            writer.write(&merged).await?;
            let files = writer.into_files().await?;
            let written: Vec<String> = files.iter().map(|f| f.file_path().to_string()).collect();
            let remove: HashSet<String> = candidates
                .iter()
                .map(|e| e.file_path().to_string())
                .collect();
            match commit_overwrite(catalog, &base, &live, &remove, files, summary.clone()).await? {
                Some((table, rewrite)) => {
                    let report = AppendReport {
                        rows: self.rows,
                        data_files: rewrite.added_files,
                        skipped: false,
                        snapshot_id: table.metadata().current_snapshot_id(),
                        lost_race: false,
                        conflicts: attempt as u64,
                    };
                    let merge = MergeReport {
                        events: self.rows,
                        rewrite,
                        files_pruned: pruned,
                        retries: attempt,
                    };
                    return Ok((Committed { report, table }, merge));
                }
                None => {
                    // Lost the race: these files are nobody's; redo the merge on the new version.
                    for path in written {
                        let _ = base.file_io().delete(&path).await;
                    }
                }
            }
        }
        Err(LayersError::CommitConflict {
            table: self.name,
            attempts: COMMIT_ATTEMPTS,
        })
    }
}

/// The live data files whose key range may hold a key of `events`, and how many were ruled
/// out. Bounds are used for the first key column when it is an integer or a string; otherwise
/// (or for a null key, or a file without bounds) a file is a candidate.
fn candidates(
    table: &Table,
    keyed: &KeyedTable,
    live: &LiveFiles,
    events: &RecordBatch,
) -> Result<(Vec<ManifestEntryRef>, usize)> {
    let all: Vec<ManifestEntryRef> = live.data_files().cloned().collect();
    let key = keyed.key_names()[0].to_string();
    let Some(field) = table.metadata().current_schema().field_by_name(&key) else {
        return Ok((all, 0));
    };
    let Some(mut touched) = key_datums(events, &key)? else {
        return Ok((all, 0));
    };
    touched.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let may_hold = |entry: &ManifestEntryRef| {
        let file = entry.data_file();
        let (Some(lower), Some(upper)) = (
            file.lower_bounds().get(&field.id),
            file.upper_bounds().get(&field.id),
        ) else {
            return true;
        };
        // The first touched key not below the file's lower bound must not be above its upper.
        let first =
            touched.partition_point(|k| k.partial_cmp(lower) == Some(std::cmp::Ordering::Less));
        match touched.get(first) {
            Some(k) => k.partial_cmp(upper) != Some(std::cmp::Ordering::Greater),
            None => false,
        }
    };
    let n = all.len();
    let kept: Vec<ManifestEntryRef> = all.into_iter().filter(|e| may_hold(e)).collect();
    let pruned = n - kept.len();
    Ok((kept, pruned))
}

/// The distinct values of `key` in `events` as Iceberg datums, or `None` when they cannot
/// prune (a type without bounds support here, or a null key).
fn key_datums(events: &RecordBatch, key: &str) -> Result<Option<Vec<Datum>>> {
    let Some(column) = events.column_by_name(key) else {
        return Ok(None);
    };
    if column.null_count() > 0 {
        return Ok(None);
    }
    let datums: Vec<Datum> = match column.data_type() {
        DataType::Int64 => {
            let values: HashSet<i64> = column
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .copied()
                .collect();
            values.into_iter().map(Datum::long).collect()
        }
        DataType::Int32 => {
            let values: HashSet<i32> = column
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .copied()
                .collect();
            values.into_iter().map(Datum::int).collect()
        }
        DataType::Utf8 => {
            let values: HashSet<&str> = column.as_string::<i32>().iter().flatten().collect();
            values.into_iter().map(Datum::string).collect()
        }
        DataType::LargeUtf8 => {
            let values: HashSet<&str> = column.as_string::<i64>().iter().flatten().collect();
            values.into_iter().map(Datum::string).collect()
        }
        _ => return Ok(None),
    };
    Ok(Some(datums))
}

/// Reads the rows of `files` (whole files, at the table's current schema) as merge input.
async fn read_rows(
    table: &Table,
    keyed: &KeyedTable,
    files: &[ManifestEntryRef],
) -> Result<Vec<RecordBatch>> {
    let name = table.identifier().to_string();
    read_data_files(table, files)
        .await?
        .iter()
        .map(|b| conform(b, keyed.base_schema(), &name))
        .collect()
}
