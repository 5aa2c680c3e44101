//! Incremental mode: read only the rows whose watermark column grew since the last run.
//!
//! Each run reads `WHERE <column> > <last max>` inside the same exported snapshot as a full load,
//! computes the new maximum in that snapshot, and — only after every part of every table was
//! accepted by the consumer — stores it in a small JSON state file, written to a temporary file,
//! flushed and renamed over the old one (atomic on POSIX file systems). A crash before the rename
//! re-reads the same rows next time (at least once, never a gap).
//!
//! **Eventually consistent, not exact:** deletes are never seen; a row whose transaction commits
//! after our snapshot with a watermark *older* than the stored maximum (a long transaction, a clock
//! going back, a watermark set by the application) is missed; rows whose watermark is NULL are read
//! only by the first (full) run. A periodic full load reconciles.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};

/// The watermark of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkEntry {
    /// The watermark column.
    pub column: String,
    /// The maximum read so far, as PostgreSQL prints it (`max(col)::text`, TimeZone UTC).
    pub last: String,
    /// The snapshot that read it.
    pub snapshot_time: String,
}

/// The state file: one entry per `schema.table`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatermarkState {
    /// Format version (1).
    pub version: u32,
    /// Watermarks by `schema.table`.
    pub tables: BTreeMap<String, WatermarkEntry>,
}

fn state_error(file: &Path, message: String, hint: &'static str) -> ConnectorError {
    ConnectorError::PgState {
        file: file.display().to_string(),
        message,
        hint,
    }
}

impl WatermarkState {
    /// Reads the state; a missing file is an empty state (first run: everything is read).
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(WatermarkState {
                    version: 1,
                    tables: BTreeMap::new(),
                });
            }
            Err(e) => {
                return Err(state_error(
                    path,
                    e.to_string(),
                    "check the file's permissions",
                ));
            }
        };
        let state: WatermarkState = serde_json::from_str(&text).map_err(|e| {
            state_error(
                path,
                e.to_string(),
                "the file is not a Strata watermark state; restore it or delete it to reload everything",
            )
        })?;
        if state.version != 1 {
            return Err(state_error(
                path,
                format!("version {} is not supported", state.version),
                "written by a newer Strata",
            ));
        }
        Ok(state)
    }

    /// Writes the state durably: temporary file, fsync, rename, fsync of the directory.
    pub fn store(&self, path: &Path) -> Result<()> {
        let hint = "check that the directory exists and is writable";
        let mut text =
            serde_json::to_vec_pretty(self).map_err(|e| state_error(path, e.to_string(), hint))?;
        text.push(b'\n');
        crate::state_file::write_atomic(path, &text)
            .map_err(|e| state_error(path, e.to_string(), hint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/state.json");
        assert_eq!(
            WatermarkState::load(&path)
                .expect("missing = empty")
                .tables
                .len(),
            0
        );
        let mut s = WatermarkState {
            version: 1,
            ..WatermarkState::default()
        };
        s.tables.insert(
            "public.orders".into(),
            WatermarkEntry {
                column: "updated_at".into(),
                last: "2026-11-24 10:00:00.123456+00".into(),
                snapshot_time: "2026-11-24T10:00:01Z".into(),
            },
        );
        s.store(&path).expect("store");
        assert_eq!(WatermarkState::load(&path).expect("load"), s);
        std::fs::write(&path, "{not json").expect("corrupt");
        let err = WatermarkState::load(&path).expect_err("corrupt");
        assert!(err.to_string().contains("state.json"), "{err}");
    }
}
