//! Table maintenance (`strata maintain`): what keeps a silver table healthy under a week of
//! one-second commits.
//!
//! 1. **Compact**: small data files of a partition are rewritten into files of the target size,
//!    files of an older partition spec into the current one, and all manifests into one per
//!    partition spec, in one `replace` snapshot through the
//!    same row-level commit as keyed tables ([`super::overwrite::commit_rewrite`]). Commit cost
//!    follows the manifest list, which an append grows by one manifest each time.
//! 2. **Expire snapshots**: all but the newest `keep_snapshots` and those younger than the
//!    grace period; never the current one or one a branch or tag names. What the expired
//!    snapshots covered (bronze files) moves to a coverage archive first, so a re-run never
//!    commits an input again.
//! 3. **Delete unreferenced files** older than the grace period: data files, manifests and
//!    manifest lists only expired snapshots used, old metadata files, and orphans such as
//!    failed or lost-race writes and `--full-refresh` leftovers.
//! 4. **Prune pipeline checkpoints** (`catalog/state/<table>/`) no retained snapshot names.
//!
//! Running writers are safe: every maintenance commit is a compare-and-swap that carries the
//! current snapshot's `strata.*` properties (positions, state chain, writer epoch) forward, so
//! a writer that loses the race reloads and finds its positions where it left them; files are
//! deleted only when no retained snapshot references them and they are older than the grace
//! period, which outlasts any writer's uncommitted files.

use std::collections::{HashMap, HashSet};

use futures::TryStreamExt;
use futures::future::try_join_all;
use iceberg::spec::{ManifestEntryRef, Operation, TableMetadataBuilder};
use iceberg::table::Table;
use object_store::ObjectStoreExt;

use super::append::{
    COMMIT_ATTEMPTS, COVERED_ARCHIVE_KEY, COVERED_KEY, SilverAppend, WriteOptions,
};
use super::catalog::{SilverCatalog, iceberg_err};
use super::commit::commit_metadata;
use super::overwrite::{LiveFiles, RewritePlan, commit_rewrite, read_data_files};
use crate::error::{LayersError, Result};
use crate::lake::Lake;

/// What `maintain` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaintainOptions {
    /// Newest snapshots kept (at least 1: the current one).
    pub keep_snapshots: usize,
    /// Snapshots younger than this are kept, and files younger than this are never deleted
    /// (milliseconds). It must outlast a writer's longest commit interval.
    pub grace_ms: i64,
    /// Compact small files and merge manifests.
    pub compact: bool,
    /// A data file smaller than this is small.
    pub small_file_bytes: u64,
    /// Size compacted files aim at.
    pub target_file_bytes: usize,
    /// Report what would be done, change nothing.
    pub dry_run: bool,
}

impl Default for MaintainOptions {
    fn default() -> Self {
        MaintainOptions {
            keep_snapshots: 10,
            grace_ms: 24 * 3600 * 1000,
            compact: true,
            small_file_bytes: 32 << 20,
            target_file_bytes: 128 << 20,
            dry_run: false,
        }
    }
}

/// What `maintain` did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintainReport {
    /// The table.
    pub table: String,
    /// Small data files compacted, and the files they became.
    pub compacted: (usize, usize),
    /// Manifests before and after.
    pub manifests: (usize, usize),
    /// Snapshots expired, and kept.
    pub snapshots: (usize, usize),
    /// Unreferenced files deleted (or, in a dry run, that would be), and their bytes.
    pub files_deleted: (usize, u64),
    /// Pipeline checkpoints deleted.
    pub checkpoints_deleted: usize,
}

/// Maintains `table` of `catalog`, whose files live below `lake` (see the module docs).
pub async fn maintain(
    catalog: &SilverCatalog,
    lake: &Lake,
    table: &str,
    options: &MaintainOptions,
) -> Result<MaintainReport> {
    let mut report = MaintainReport {
        table: table.to_string(),
        ..MaintainReport::default()
    };
    if options.compact {
        match compact(catalog, table, options, &mut report).await {
            // Compaction yields to writers: a table that kept changing under it is compacted
            // by a later run, and expiry and cleanup still happen now.
            Err(LayersError::CommitConflict { attempts, .. }) => {
                tracing::warn!(
                    table,
                    attempts,
                    "compaction skipped: writers committed first every time; a later run compacts"
                );
                report.compacted = (0, 0);
            }
            other => other?,
        }
    }
    expire(catalog, table, options, &mut report).await?;
    let current = catalog.load(table).await?;
    sweep_files(lake, &current, options, &mut report).await?;
    prune_checkpoints(lake, &current, options, &mut report).await?;
    Ok(report)
}

/// The current snapshot's `strata.*` summary properties but its coverage: what a writer reads
/// back from the newest snapshot (positions, state chain, epoch) must survive a maintenance
/// commit.
fn carried_properties(table: &Table) -> HashMap<String, String> {
    let mut props: HashMap<String, String> = table
        .metadata()
        .current_snapshot()
        .map(|s| {
            s.summary()
                .additional_properties
                .iter()
                .filter(|(k, _)| k.starts_with("strata.") && k.as_str() != COVERED_KEY)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    props.insert("strata.maintenance".into(), "compact".into());
    props
}

async fn compact(
    catalog: &SilverCatalog,
    name: &str,
    options: &MaintainOptions,
    report: &mut MaintainReport,
) -> Result<()> {
    for _ in 0..COMMIT_ATTEMPTS {
        let table = catalog.load(name).await?;
        if table.metadata().current_snapshot().is_none() {
            return Ok(());
        }
        let live = LiveFiles::read(&table).await?;
        if live.has_delete_files() {
            return Ok(());
        }
        // Small files grouped by partition (spec and value); a group of one stays.
        // Files of an older partition spec are rewritten into the current one whatever
        // their size (partition evolution completes here).
        let current_spec = table.metadata().default_partition_spec_id();
        let mut groups: HashMap<String, Vec<ManifestEntryRef>> = HashMap::new();
        let mut respec: Vec<ManifestEntryRef> = Vec::new();
        for (spec_id, e) in live.data_files_with_spec() {
            if spec_id != current_spec {
                respec.push(e.clone());
            } else if e.file_size_in_bytes() < options.small_file_bytes {
                let key = format!("{spec_id}:{:?}", e.data_file().partition());
                groups.entry(key).or_default().push(e.clone());
            }
        }
        let chosen: Vec<ManifestEntryRef> = groups
            .into_values()
            .filter(|g| g.len() > 1)
            .flatten()
            .chain(respec)
            .collect();
        let merge_manifests = live.manifest_count() > 1;
        if chosen.is_empty() && !merge_manifests {
            report.manifests = (live.manifest_count(), live.manifest_count());
            return Ok(());
        }
        if options.dry_run {
            report.compacted = (chosen.len(), 0);
            report.manifests = (live.manifest_count(), live.manifest_count());
            return Ok(());
        }
        let write = WriteOptions {
            target_file_bytes: options.target_file_bytes,
            ..WriteOptions::default()
        };
        let mut writer = SilverAppend::start(&table, &write).await?;
        for batch in read_data_files(&table, &chosen).await? {
            writer.write(&batch).await?;
        }
        let added = writer.into_files().await?;
        let written: Vec<String> = added.iter().map(|f| f.file_path().to_string()).collect();
        let remove: HashSet<String> = chosen.iter().map(|e| e.file_path().to_string()).collect();
        let plan = RewritePlan {
            stage_on: None,
            operation: Operation::Replace,
            merge_manifests: true,
        };
        let props = carried_properties(&table);
        match commit_rewrite(catalog, &table, &live, &remove, added, props, plan).await? {
            Some((done, rewrite)) => {
                let after = LiveFiles::read(&done).await?.manifest_count();
                report.compacted = (rewrite.removed_files, rewrite.added_files);
                report.manifests = (live.manifest_count(), after);
                return Ok(());
            }
            None => {
                for path in written {
                    let _ = table.file_io().delete(&path).await;
                }
            }
        }
    }
    Err(LayersError::CommitConflict {
        table: name.to_string(),
        attempts: COMMIT_ATTEMPTS,
    })
}

/// Snapshots a branch or tag names.
fn ref_snapshots(table: &Table) -> HashSet<i64> {
    super::publish::refs(table)
        .into_iter()
        .map(|(_, id)| id)
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

async fn expire(
    catalog: &SilverCatalog,
    name: &str,
    options: &MaintainOptions,
    report: &mut MaintainReport,
) -> Result<()> {
    let keep_newest = options.keep_snapshots.max(1);
    for _ in 0..COMMIT_ATTEMPTS {
        let table = catalog.load(name).await?;
        let metadata = table.metadata();
        let mut snapshots: Vec<_> = metadata.snapshots().collect();
        snapshots.sort_by_key(|s| std::cmp::Reverse(s.timestamp_ms()));
        let young = now_ms() - options.grace_ms;
        let mut keep: HashSet<i64> = ref_snapshots(&table);
        keep.extend(metadata.current_snapshot_id());
        keep.extend(snapshots.iter().take(keep_newest).map(|s| s.snapshot_id()));
        keep.extend(
            snapshots
                .iter()
                .filter(|s| s.timestamp_ms() > young)
                .map(|s| s.snapshot_id()),
        );
        let expired: Vec<i64> = snapshots
            .iter()
            .map(|s| s.snapshot_id())
            .filter(|id| !keep.contains(id))
            .collect();
        report.snapshots = (expired.len(), snapshots.len() - expired.len());
        if expired.is_empty() || options.dry_run {
            return Ok(());
        }
        // What the expired snapshots covered joins the archive before they go.
        let mut covered: Vec<String> = match metadata.properties().get(COVERED_ARCHIVE_KEY) {
            Some(path) => super::append::read_archive(&table, path).await?,
            None => Vec::new(),
        };
        for id in &expired {
            let Some(s) = metadata.snapshot_by_id(*id) else {
                continue;
            };
            if let Some(list) = s.summary().additional_properties.get(COVERED_KEY) {
                let items: Vec<String> =
                    serde_json::from_str(list).map_err(|e| LayersError::Iceberg {
                        context: format!("archiving the coverage of {name}"),
                        message: format!("snapshot {id}: `{COVERED_KEY}` is not a JSON list: {e}"),
                    })?;
                covered.extend(items);
            }
        }
        covered.sort();
        covered.dedup();
        let mut builder = TableMetadataBuilder::new_from_metadata(
            metadata.clone(),
            table.metadata_location().map(str::to_string),
        )
        .remove_snapshots(&expired);
        if !covered.is_empty() {
            let path = format!(
                "{}/metadata/strata-covered-{}.json",
                metadata.location(),
                unique_suffix()
            );
            let bytes =
                serde_json::to_vec(&covered).map_err(|e| LayersError::Internal(e.to_string()))?;
            table
                .file_io()
                .new_output(&path)
                .map_err(iceberg_err(format!(
                    "writing the coverage archive of {name}"
                )))?
                .write(bytes.into())
                .await
                .map_err(iceberg_err(format!(
                    "writing the coverage archive of {name}"
                )))?;
            builder = builder
                .set_properties(HashMap::from([(COVERED_ARCHIVE_KEY.to_string(), path)]))
                .map_err(iceberg_err(format!("expiring snapshots of {name}")))?;
        }
        let new_metadata = builder
            .build()
            .map_err(iceberg_err(format!("expiring snapshots of {name}")))?
            .metadata;
        if commit_metadata(catalog.pointer(), &table, new_metadata).await? {
            return Ok(());
        }
    }
    Err(LayersError::CommitConflict {
        table: name.to_string(),
        attempts: COMMIT_ATTEMPTS,
    })
}

/// Every file the table's current metadata still references: metadata files, coverage
/// archive, and for each retained snapshot its manifest list, manifests and live files.
async fn referenced_files(table: &Table) -> Result<HashSet<String>> {
    let name = table.identifier().to_string();
    let metadata = table.metadata();
    let mut refs: HashSet<String> = HashSet::new();
    refs.extend(table.metadata_location().map(str::to_string));
    refs.extend(
        metadata
            .metadata_log()
            .iter()
            .map(|m| m.metadata_file.clone()),
    );
    refs.extend(metadata.properties().get(COVERED_ARCHIVE_KEY).cloned());
    let mut manifests = HashMap::new();
    for snapshot in metadata.snapshots() {
        refs.insert(snapshot.manifest_list().to_string());
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .map_err(iceberg_err(format!("reading manifest lists of {name}")))?;
        for m in list.entries() {
            manifests
                .entry(m.manifest_path.clone())
                .or_insert_with(|| m.clone());
        }
    }
    let io = table.file_io();
    let loaded = try_join_all(manifests.values().map(|m| m.load_manifest(io)))
        .await
        .map_err(iceberg_err(format!("reading manifests of {name}")))?;
    for manifest in loaded {
        for e in manifest.entries() {
            if e.is_alive() {
                refs.insert(e.file_path().to_string());
            }
        }
    }
    refs.extend(manifests.into_keys());
    Ok(refs)
}

/// The table's folder below the lake root (`catalog/warehouse/<namespace>/<table>`).
fn table_folder(table: &Table) -> Result<(String, String)> {
    let location = table
        .metadata()
        .location()
        .trim_end_matches('/')
        .to_string();
    let Some((_, rest)) = location.split_once("/catalog/warehouse/") else {
        return Err(LayersError::Internal(format!(
            "{}: location {location} is not below the lake's catalog/warehouse",
            table.identifier()
        )));
    };
    Ok((location.clone(), format!("catalog/warehouse/{rest}")))
}

async fn sweep_files(
    lake: &Lake,
    table: &Table,
    options: &MaintainOptions,
    report: &mut MaintainReport,
) -> Result<()> {
    let refs = referenced_files(table).await?;
    let (location, folder) = table_folder(table)?;
    for (relative, meta) in old_objects(lake, &folder, options.grace_ms).await? {
        let Some(below) = relative.strip_prefix(&folder) else {
            continue;
        };
        let path = format!("{location}{below}");
        if refs.contains(&path) {
            continue;
        }
        report.files_deleted.0 += 1;
        report.files_deleted.1 += meta.size;
        if !options.dry_run {
            delete(lake, &meta).await?;
        }
    }
    Ok(())
}

/// Objects below `folder` of the lake older than the grace period, with their lake paths.
async fn old_objects(
    lake: &Lake,
    folder: &str,
    grace_ms: i64,
) -> Result<Vec<(String, object_store::ObjectMeta)>> {
    let cutoff = now_ms() - grace_ms;
    let listed: Vec<object_store::ObjectMeta> = lake
        .store()
        .list(Some(&lake.path(folder.split('/'))))
        .try_collect()
        .await
        .map_err(|e| LayersError::Iceberg {
            context: format!("listing {folder} of the lake"),
            message: e.to_string(),
        })?;
    Ok(listed
        .into_iter()
        .filter(|m| m.last_modified.timestamp_millis() <= cutoff)
        .map(|m| (lake.relative(&m.location), m))
        .collect())
}

async fn delete(lake: &Lake, meta: &object_store::ObjectMeta) -> Result<()> {
    lake.store()
        .delete(&meta.location)
        .await
        .map_err(|e| LayersError::Iceberg {
            context: format!("deleting {} of the lake", lake.relative(&meta.location)),
            message: e.to_string(),
        })
}

/// Lake paths of pipeline checkpoints the retained snapshots name: any summary value that is
/// such a path, or a JSON list of them.
fn named_checkpoints(table: &Table) -> HashSet<String> {
    let mut named = HashSet::new();
    for s in table.metadata().snapshots() {
        for value in s.summary().additional_properties.values() {
            if value.starts_with("catalog/state/") {
                named.insert(value.clone());
            } else if value.starts_with('[')
                && let Ok(list) = serde_json::from_str::<Vec<String>>(value)
            {
                named.extend(list.into_iter().filter(|p| p.starts_with("catalog/state/")));
            }
        }
    }
    named
}

async fn prune_checkpoints(
    lake: &Lake,
    table: &Table,
    options: &MaintainOptions,
    report: &mut MaintainReport,
) -> Result<()> {
    let named = named_checkpoints(table);
    let folder = format!("catalog/state/{}", table.identifier().name());
    for (relative, meta) in old_objects(lake, &folder, options.grace_ms).await? {
        if named.contains(&relative) {
            continue;
        }
        report.checkpoints_deleted += 1;
        if !options.dry_run {
            delete(lake, &meta).await?;
        }
    }
    Ok(())
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos}-{}", std::process::id())
}
