//! Completed database loads in bronze: one marker per full load, written once every part of the
//! load is stored, at `bronze/source=<source>/_loads/<load>.json`.
//!
//! A full load lands as many Parquet parts, and a load cut off half-way leaves some of them
//! behind. Appending rows does not care, but a table that *mirrors* the source (keys missing from
//! the newest load are deleted) must never take a partial load for the whole table. The marker
//! is that promise: it names the load's parts and is written create-only after them, so a reader
//! that finds it can read the load whole.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::names::{validate_name, validate_source};
use super::reader::BronzeReader;
use super::writer::{BronzeWriter, PutOutcome};
use crate::error::{LayersError, Result};

/// The folder of a source's load markers (beside its `date=` folders).
pub const LOADS_FOLDER: &str = "_loads";

/// A complete load: what its marker says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadMarker {
    /// The load's name, ordered by time (`full-20261124T213000123456Z`).
    pub load: String,
    /// The snapshot it read (RFC 3339 UTC).
    pub snapshot_time: String,
    /// Its parts, as paths below the lake root, sorted.
    pub objects: Vec<String>,
    /// Rows in all its parts.
    pub rows: u64,
}

impl BronzeWriter {
    /// Writes the marker of a complete load of `source` (create-only; the same marker again is
    /// a recognised retry) and returns its path below the lake root.
    pub async fn put_load_marker(&self, source: &str, marker: &LoadMarker) -> Result<String> {
        validate_source(source)?;
        let name = format!("{}.json", marker.load);
        validate_name(&name)?;
        let mut marker = marker.clone();
        marker.objects.sort();
        let bytes = serde_json::to_vec_pretty(&marker)
            .map_err(|e| LayersError::Internal(format!("load marker of {source}: {e}")))?;
        let source_part = format!("source={source}");
        let path = self
            .lake()
            .path(["bronze", source_part.as_str(), LOADS_FOLDER, name.as_str()]);
        match self.put_create(&path, Bytes::from(bytes)).await? {
            PutOutcome::Created { path, .. } | PutOutcome::AlreadyPresent { path } => Ok(path),
        }
    }
}

impl BronzeReader {
    /// The complete loads of `source`, oldest first, each with its marker's path below the lake
    /// root. A marker that is not valid JSON of this shape is an error naming it.
    pub async fn loads(&self, source: &str) -> Result<Vec<(String, LoadMarker)>> {
        use futures::TryStreamExt;
        validate_source(source)?;
        let source_part = format!("source={source}");
        let prefix = self
            .lake()
            .path(["bronze", source_part.as_str(), LOADS_FOLDER]);
        let store = self.lake().store();
        let mut objects: Vec<_> =
            store
                .list(Some(&prefix))
                .try_collect()
                .await
                .map_err(|source| LayersError::Store {
                    path: self.lake().relative(&prefix),
                    source,
                })?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        let mut loads = Vec::with_capacity(objects.len());
        for o in objects {
            let shown = self.lake().relative(&o.location);
            let bytes = self.lake().get(&shown).await?;
            let marker: LoadMarker =
                serde_json::from_slice(&bytes).map_err(|e| LayersError::BronzeName {
                    kind: "load marker",
                    value: shown.clone(),
                    problem: format!("is not a load marker written by strata: {e}"),
                })?;
            loads.push((shown, marker));
        }
        Ok(loads)
    }
}
