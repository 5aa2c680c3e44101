//! The row-level commit iceberg-rust 0.10.1 has no action for: an `overwrite` snapshot that
//! removes some live data files and adds others in one step (copy-on-write updates, deletes,
//! compaction).
//!
//! Built on iceberg-rust's public manifest API, the way Iceberg's Java `BaseOverwriteFiles`
//! writes it:
//! * manifests that hold none of the removed files are carried into the new snapshot as they
//!   are (their entries keep their snapshot ids and sequence numbers);
//! * a manifest that holds a removed file is rewritten: its other live files as EXISTING, with
//!   their original sequence numbers, the removed ones as DELETED;
//! * the new files go into one new manifest as ADDED, inheriting the snapshot's sequence number;
//! * the snapshot summary carries the added/deleted counts and the table totals after it.
//!
//! The new metadata is swapped in with the catalog's compare-and-swap against the exact version
//! the files were chosen from ([`super::commit::commit_metadata`]); a lost race is reported, and
//! the caller decides again on the new version (see `merge.rs`).

use std::collections::{HashMap, HashSet};

use futures::future::try_join_all;
use iceberg::spec::{
    DataFile, FormatVersion, MAIN_BRANCH, ManifestContentType, ManifestEntryRef, ManifestFile,
    ManifestListWriter, ManifestStatus, ManifestWriter, ManifestWriterBuilder, Operation, Snapshot,
    SnapshotReference, SnapshotRetention, Summary, TableMetadataBuilder,
};
use iceberg::table::Table;

use super::catalog::{SilverCatalog, iceberg_err};
use super::commit::commit_metadata;
use crate::error::{LayersError, Result};

/// The live files of a table version, with the manifests that list them.
#[derive(Debug, Clone, Default)]
pub struct LiveFiles {
    /// The version's manifests (data and deletes).
    manifests: Vec<ManifestFile>,
    /// The live entries of each manifest, in the same order.
    entries: Vec<Vec<ManifestEntryRef>>,
}

impl LiveFiles {
    /// Reads the manifests of `table`'s current snapshot (empty for a table without one).
    pub async fn read(table: &Table) -> Result<Self> {
        let name = table.identifier().to_string();
        let Some(snapshot) = table.metadata().current_snapshot() else {
            return Ok(LiveFiles::default());
        };
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(iceberg_err(format!("reading the manifest list of {name}")))?;
        let manifests: Vec<ManifestFile> = list.entries().to_vec();
        let io = table.file_io();
        let loaded = try_join_all(manifests.iter().map(|m| m.load_manifest(io)))
            .await
            .map_err(iceberg_err(format!("reading the manifests of {name}")))?;
        let entries = loaded
            .into_iter()
            .map(|m| {
                m.entries()
                    .iter()
                    .filter(|e| e.is_alive())
                    .cloned()
                    .collect()
            })
            .collect();
        Ok(LiveFiles { manifests, entries })
    }

    /// Every live data file.
    pub fn data_files(&self) -> impl Iterator<Item = &ManifestEntryRef> {
        self.manifests
            .iter()
            .zip(&self.entries)
            .filter(|(m, _)| m.content == ManifestContentType::Data)
            .flat_map(|(_, entries)| entries.iter())
    }

    /// True when a live delete file exists (merge-on-read; our copy-on-write commit refuses
    /// to rewrite a table that has them).
    pub fn has_delete_files(&self) -> bool {
        self.manifests
            .iter()
            .zip(&self.entries)
            .any(|(m, e)| m.content == ManifestContentType::Deletes && !e.is_empty())
    }

    /// Paths of the live data files.
    pub fn paths(&self) -> HashSet<&str> {
        self.data_files().map(|e| e.file_path()).collect()
    }

    /// Every live data file with the partition spec id of its manifest.
    pub fn data_files_with_spec(&self) -> impl Iterator<Item = (i32, &ManifestEntryRef)> {
        self.manifests
            .iter()
            .zip(&self.entries)
            .filter(|(m, _)| m.content == ManifestContentType::Data)
            .flat_map(|(m, entries)| entries.iter().map(move |e| (m.partition_spec_id, e)))
    }

    /// Manifests the version lists.
    pub fn manifest_count(&self) -> usize {
        self.manifests.len()
    }

    /// Paths of the manifests.
    pub fn manifest_paths(&self) -> impl Iterator<Item = &str> {
        self.manifests.iter().map(|m| m.manifest_path.as_str())
    }
}

/// Reads whole data files of `table` at its current schema (older files are read with the
/// columns added since as null and promoted types widened, by iceberg-rust's reader).
pub(crate) async fn read_data_files(
    table: &Table,
    files: &[ManifestEntryRef],
) -> Result<Vec<arrow::array::RecordBatch>> {
    use futures::{StreamExt, TryStreamExt};
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let name = table.identifier().to_string();
    let schema = table.metadata().current_schema().clone();
    let field_ids: Vec<i32> = schema.as_struct().fields().iter().map(|f| f.id).collect();
    let tasks: Vec<iceberg::Result<iceberg::scan::FileScanTask>> = files
        .iter()
        .map(|e| {
            Ok(iceberg::scan::FileScanTask::builder()
                .with_file_size_in_bytes(e.file_size_in_bytes())
                .with_start(0)
                .with_length(e.file_size_in_bytes())
                .with_record_count(Some(e.record_count()))
                .with_data_file_path(e.file_path().to_string())
                .with_data_file_format(e.file_format())
                .with_schema(schema.clone())
                .with_project_field_ids(field_ids.clone())
                .with_partition(Some(e.data_file().partition().clone()))
                .with_case_sensitive(true)
                .build())
        })
        .collect();
    table
        .reader_builder()
        .build()
        .read(Box::pin(futures::stream::iter(tasks)))
        .map_err(iceberg_err(format!("reading data files of {name}")))?
        .stream()
        .map(|b| b.map_err(iceberg_err(format!("reading data files of {name}"))))
        .try_collect()
        .await
}

/// What an overwrite commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverwriteReport {
    /// Data files removed.
    pub removed_files: usize,
    /// Rows in the removed files.
    pub removed_rows: u64,
    /// Data files added.
    pub added_files: usize,
    /// Rows in the added files.
    pub added_rows: u64,
}

/// Commits a snapshot of `base` (whose live files are `live`) without the data files at
/// `remove` and with `add`, its summary carrying `properties`. `Ok(None)` when another writer
/// committed first (nothing changed; the written manifests are orphans `maintain` removes).
pub async fn commit_overwrite(
    catalog: &SilverCatalog,
    base: &Table,
    live: &LiveFiles,
    remove: &HashSet<String>,
    add: Vec<DataFile>,
    properties: HashMap<String, String>,
) -> Result<Option<(Table, OverwriteReport)>> {
    let plan = RewritePlan {
        operation: Operation::Overwrite,
        merge_manifests: false,
        stage_on: None,
    };
    commit_rewrite(catalog, base, live, remove, add, properties, plan).await
}

/// How [`commit_rewrite`] records its snapshot.
#[derive(Debug, Clone)]
pub struct RewritePlan {
    /// `overwrite` (rows changed) or `replace` (same rows, other files: compaction).
    pub operation: Operation,
    /// Rewrite every manifest into one per partition spec (bounds the manifest list, which
    /// otherwise grows by one manifest per append).
    pub merge_manifests: bool,
    /// `None`: the snapshot becomes `main` (readers see it at once). `Some(branch)`: it is
    /// staged on that branch, forked from `main`, and `main` does not move; readers see it
    /// only once [`super::publish_staged`] fast-forwards `main` to it (write-audit-publish).
    pub stage_on: Option<String>,
}

/// [`commit_overwrite`] with the snapshot's operation and manifest merging chosen.
pub async fn commit_rewrite(
    catalog: &SilverCatalog,
    base: &Table,
    live: &LiveFiles,
    remove: &HashSet<String>,
    add: Vec<DataFile>,
    properties: HashMap<String, String>,
    plan: RewritePlan,
) -> Result<Option<(Table, OverwriteReport)>> {
    let name = base.identifier().name().to_string();
    let metadata = base.metadata();
    if metadata.format_version() == FormatVersion::V1 {
        return Err(LayersError::Iceberg {
            context: format!("overwriting rows of {name}"),
            message: "the table is Iceberg format v1; row-level commits need v2".into(),
        });
    }
    if live.has_delete_files() {
        return Err(LayersError::Iceberg {
            context: format!("overwriting rows of {name}"),
            message: "the table has delete files (merge-on-read), which this copy-on-write commit does not rewrite".into(),
        });
    }
    let live_paths = live.paths();
    if let Some(gone) = remove.iter().find(|p| !live_paths.contains(p.as_str())) {
        return Err(LayersError::Internal(format!(
            "{name}: asked to remove {gone}, which is not a live file of the version read"
        )));
    }
    let snapshot_id = new_snapshot_id(base);
    let commit_id = unique_commit_id();
    let schema = metadata.current_schema().clone();
    let mut report = OverwriteReport::default();
    let mut manifests: Vec<ManifestFile> = Vec::with_capacity(live.manifests.len() + 1);
    let mut totals = Totals::default();
    // Rewritten manifests, one writer per partition spec when merging, else per manifest.
    let mut writers: Vec<(i32, ManifestWriter)> = Vec::new();
    for (i, (manifest, entries)) in live.manifests.iter().zip(&live.entries).enumerate() {
        let touched = entries.iter().any(|e| remove.contains(e.file_path()));
        if !touched && !plan.merge_manifests {
            for e in entries {
                totals.add(e.data_file());
            }
            manifests.push(manifest.clone());
            continue;
        }
        let spec_id = manifest.partition_spec_id;
        let reuse = plan.merge_manifests && writers.iter().any(|(id, _)| *id == spec_id);
        if !reuse {
            let spec = metadata.partition_spec_by_id(spec_id).ok_or_else(|| {
                LayersError::Internal(format!(
                    "{name}: manifest {} names partition spec {spec_id} the table does not have",
                    manifest.manifest_path
                ))
            })?;
            let path = manifest_path(base, &commit_id, i);
            let output = base
                .file_io()
                .new_output(&path)
                .map_err(iceberg_err(format!("writing a manifest of {name}")))?;
            let writer = ManifestWriterBuilder::new(
                output,
                Some(snapshot_id),
                schema.clone(),
                spec.as_ref().clone(),
            )
            .build_v2_data();
            writers.push((spec_id, writer));
        }
        let Some((_, writer)) = writers.iter_mut().rev().find(|(id, _)| *id == spec_id) else {
            return Err(LayersError::Internal("no manifest writer".into()));
        };
        for e in entries {
            let (seq, file_seq) = sequence_numbers(e, &name)?;
            let file = e.data_file().clone();
            if remove.contains(e.file_path()) {
                report.removed_files += 1;
                report.removed_rows += file.record_count();
                writer.add_delete_file(file, seq, file_seq)
            } else {
                totals.add(&file);
                let added_by = e.snapshot_id().unwrap_or(manifest.added_snapshot_id);
                writer.add_existing_file(file, added_by, seq, file_seq)
            }
            .map_err(iceberg_err(format!("rewriting a manifest of {name}")))?;
        }
        if !plan.merge_manifests
            && let Some((_, writer)) = writers.pop()
        {
            manifests.push(
                writer
                    .write_manifest_file()
                    .await
                    .map_err(iceberg_err(format!("writing a manifest of {name}")))?,
            );
        }
    }
    let mut removed_bytes = 0u64;
    for e in live.data_files() {
        if remove.contains(e.file_path()) {
            removed_bytes += e.data_file().file_size_in_bytes();
        }
    }
    let mut added_bytes = 0u64;
    if !add.is_empty() {
        // Merging: the new files join the merged manifest of the current spec.
        let default_spec = metadata.default_partition_spec_id();
        if !writers.iter().any(|(id, _)| *id == default_spec) {
            let path = manifest_path(base, &commit_id, live.manifests.len());
            let output = base
                .file_io()
                .new_output(&path)
                .map_err(iceberg_err(format!("writing a manifest of {name}")))?;
            let writer = ManifestWriterBuilder::new(
                output,
                Some(snapshot_id),
                schema.clone(),
                metadata.default_partition_spec().as_ref().clone(),
            )
            .build_v2_data();
            writers.push((default_spec, writer));
        }
        let Some((_, writer)) = writers.iter_mut().find(|(id, _)| *id == default_spec) else {
            return Err(LayersError::Internal("no manifest writer".into()));
        };
        for file in add {
            report.added_files += 1;
            report.added_rows += file.record_count();
            added_bytes += file.file_size_in_bytes();
            totals.add(&file);
            // -1: the sequence number is inherited from the snapshot at commit.
            writer
                .add_file(file, -1)
                .map_err(iceberg_err(format!("writing the new manifest of {name}")))?;
        }
    }
    for (_, writer) in writers {
        manifests.push(
            writer
                .write_manifest_file()
                .await
                .map_err(iceberg_err(format!("writing a manifest of {name}")))?,
        );
    }

    let sequence_number = metadata.next_sequence_number();
    let list_path = format!(
        "{}/metadata/snap-{snapshot_id}-0-{commit_id}.avro",
        metadata.location()
    );
    let list_output = base
        .file_io()
        .new_output(&list_path)
        .map_err(iceberg_err(format!("writing the manifest list of {name}")))?;
    let mut list = ManifestListWriter::v2(
        list_output
            .writer()
            .await
            .map_err(iceberg_err(format!("writing the manifest list of {name}")))?,
        snapshot_id,
        metadata.current_snapshot_id(),
        sequence_number,
    );
    list.add_manifests(manifests.into_iter())
        .map_err(iceberg_err(format!("writing the manifest list of {name}")))?;
    list.close()
        .await
        .map_err(iceberg_err(format!("writing the manifest list of {name}")))?;

    let mut summary = properties;
    summary.extend(report.summary(removed_bytes, added_bytes));
    summary.extend(totals.summary());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
        .max(metadata.last_updated_ms() + 1);
    let snapshot = Snapshot::builder()
        .with_manifest_list(list_path)
        .with_snapshot_id(snapshot_id)
        .with_parent_snapshot_id(metadata.current_snapshot_id())
        .with_sequence_number(sequence_number)
        .with_summary(Summary {
            operation: plan.operation,
            additional_properties: summary,
        })
        .with_schema_id(metadata.current_schema_id())
        .with_timestamp_ms(now_ms)
        .build();
    let new_metadata = TableMetadataBuilder::new_from_metadata(
        metadata.clone(),
        base.metadata_location().map(str::to_string),
    )
    .add_snapshot(snapshot)
    .and_then(|b| {
        b.set_ref(
            plan.stage_on.as_deref().unwrap_or(MAIN_BRANCH),
            SnapshotReference::new(snapshot_id, SnapshotRetention::branch(None, None, None)),
        )
    })
    .and_then(|b| b.build())
    .map_err(iceberg_err(format!("building the overwrite of {name}")))?
    .metadata;
    if !commit_metadata(catalog.pointer(), base, new_metadata).await? {
        return Ok(None);
    }
    Ok(Some((catalog.load(&name).await?, report)))
}

impl OverwriteReport {
    fn summary(&self, removed_bytes: u64, added_bytes: u64) -> Vec<(String, String)> {
        [
            ("added-data-files", self.added_files as u64),
            ("added-records", self.added_rows),
            ("added-files-size", added_bytes),
            ("deleted-data-files", self.removed_files as u64),
            ("deleted-records", self.removed_rows),
            ("removed-files-size", removed_bytes),
        ]
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

/// The table totals after a commit, counted from its live files.
#[derive(Debug, Default)]
struct Totals {
    files: u64,
    rows: u64,
    bytes: u64,
}

impl Totals {
    fn add(&mut self, file: &DataFile) {
        self.files += 1;
        self.rows += file.record_count();
        self.bytes += file.file_size_in_bytes();
    }

    fn summary(&self) -> Vec<(String, String)> {
        vec![
            ("total-data-files".into(), self.files.to_string()),
            ("total-records".into(), self.rows.to_string()),
            ("total-files-size".into(), self.bytes.to_string()),
            ("total-delete-files".into(), "0".into()),
            ("total-position-deletes".into(), "0".into()),
            ("total-equality-deletes".into(), "0".into()),
        ]
    }
}

/// The data and file sequence numbers an EXISTING or DELETED entry must keep.
fn sequence_numbers(entry: &ManifestEntryRef, table: &str) -> Result<(i64, Option<i64>)> {
    let seq = entry.sequence_number().ok_or_else(|| {
        LayersError::Internal(format!(
            "{table}: live file {} has no sequence number",
            entry.file_path()
        ))
    })?;
    let file_seq = entry.file_sequence_number.or(Some(seq));
    debug_assert!(entry.status() != ManifestStatus::Deleted);
    Ok((seq, file_seq))
}

fn manifest_path(table: &Table, commit_id: &str, n: usize) -> String {
    format!(
        "{}/metadata/{commit_id}-m{n}.avro",
        table.metadata().location()
    )
}

/// A positive snapshot id no snapshot of `table` has.
fn new_snapshot_id(table: &Table) -> i64 {
    let taken: HashSet<i64> = table
        .metadata()
        .snapshots()
        .map(|s| s.snapshot_id())
        .collect();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
        ^ (u64::from(std::process::id()) << 32);
    loop {
        // splitmix64: spreads the clock and pid over all bits.
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let id = ((z ^ (z >> 31)) >> 1) as i64;
        if id > 0 && !taken.contains(&id) {
            return id;
        }
    }
}

fn unique_commit_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("strata-ow-{nanos}-{}-{n}", std::process::id())
}
