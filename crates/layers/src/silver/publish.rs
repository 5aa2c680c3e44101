//! The publish half of write-audit-publish: a snapshot staged on a branch (see
//! [`super::RewritePlan::stage_on`]) becomes `main` in one compare-and-swap, the way Iceberg's
//! `fast_forward` / `cherrypick` publish a WAP snapshot.
//!
//! The staged snapshot was forked from `main`; it is published only if `main` still points at
//! that parent. Had another writer moved `main` meanwhile, publishing would silently drop the
//! other writer's commit, so that is refused and the caller stages again on the new `main`.

use iceberg::spec::{MAIN_BRANCH, SnapshotReference, SnapshotRetention, TableMetadataBuilder};
use iceberg::table::Table;

use super::catalog::{SilverCatalog, iceberg_err};
use super::commit::commit_metadata;
use crate::error::{LayersError, Result};

/// Every branch and tag of `table` with the snapshot id it names (iceberg-rust 0.10.1 keeps the
/// refs private; its JSON form has them).
pub(crate) fn refs(table: &Table) -> Vec<(String, i64)> {
    let json = serde_json::to_value(table.metadata()).unwrap_or_default();
    json.get("refs")
        .and_then(|r| r.as_object())
        .map(|refs| {
            refs.iter()
                .filter_map(|(name, r)| Some((name.clone(), r.get("snapshot-id")?.as_i64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The snapshot id a branch or tag of `table` points at.
pub fn ref_snapshot_id(table: &Table, reference: &str) -> Option<i64> {
    refs(table)
        .into_iter()
        .find(|(name, _)| name == reference)
        .map(|(_, id)| id)
}

/// Moves `main` of `table` to the snapshot staged on `branch` and drops the branch, in one
/// commit. Returns the table as committed.
pub async fn publish_staged(catalog: &SilverCatalog, table: &Table, branch: &str) -> Result<Table> {
    let name = table.identifier().name().to_string();
    let metadata = table.metadata();
    let staged_id = ref_snapshot_id(table, branch).ok_or_else(|| {
        LayersError::Internal(format!("{name}: no snapshot is staged on branch {branch}"))
    })?;
    let staged = metadata.snapshot_by_id(staged_id).ok_or_else(|| {
        LayersError::Internal(format!(
            "{name}: branch {branch} names unknown snapshot {staged_id}"
        ))
    })?;
    if staged.parent_snapshot_id() != metadata.current_snapshot_id() {
        return Err(LayersError::CommitConflict {
            table: name,
            attempts: 1,
        });
    }
    let new_metadata = TableMetadataBuilder::new_from_metadata(
        metadata.clone(),
        table.metadata_location().map(str::to_string),
    )
    .set_ref(
        MAIN_BRANCH,
        SnapshotReference::new(staged_id, SnapshotRetention::branch(None, None, None)),
    )
    .map(|b| b.remove_ref(branch))
    .and_then(|b| b.build())
    .map_err(iceberg_err(format!(
        "publishing the staged snapshot of {name}"
    )))?
    .metadata;
    if !commit_metadata(catalog.pointer(), table, new_metadata).await? {
        return Err(LayersError::CommitConflict {
            table: name,
            attempts: 1,
        });
    }
    catalog.load(&name).await
}
