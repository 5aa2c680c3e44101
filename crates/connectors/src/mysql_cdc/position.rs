//! Binlog positions and the local state file.
//!
//! A [`Position`] is the end of a committed transaction: `file` + `pos` (the byte offset after
//! its XID / COMMIT event) plus the GTID of that transaction where the server has one. The
//! reader resumes by file/pos: it is exact on both MySQL and MariaDB and needs no GTID-set
//! arithmetic; the GTID is recorded so that an operator can map the position onto another
//! server after a fail-over.
//!
//! The state lives in a small JSON file written atomically (temp file in the same directory,
//! `fsync`, `rename`): a crash leaves either the old or the new position, never a torn one. A
//! local file (not a Kafka compacted topic) because the position must be saved only after the
//! Kafka sink acknowledged every event before it, and because a file can be read back without
//! any broker — restore is a `read`, not a topic replay that can be compacted or deleted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, Result};

/// Where a transaction ended in the binlog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Binlog file name.
    pub file: String,
    /// Byte offset after the transaction's last event.
    pub pos: u64,
    /// GTID of the transaction (`domain-server-seq` on MariaDB), when known.
    #[serde(default)]
    pub gtid: Option<String>,
}

/// What the state file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdcState {
    /// Resume position.
    pub position: Position,
    /// True once the initial snapshot was delivered completely.
    pub snapshot_done: bool,
}

/// The state file.
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// A state file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StateFile { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, message: String, hint: &'static str) -> ConnectorError {
        ConnectorError::MysqlState {
            file: self.path.display().to_string(),
            message,
            hint,
        }
    }

    /// The saved state, or `None` when there is none yet.
    pub fn load(&self) -> Result<Option<CdcState>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                self.err(
                    format!("not a CDC state: {e}"),
                    "restore it from a backup, or delete it to start over with a snapshot",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err(e.to_string(), "check the path and its permissions")),
        }
    }

    /// Writes the state atomically: temp file, fsync, rename, fsync of the directory.
    pub fn save(&self, state: &CdcState) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| ConnectorError::Internal(format!("serialising the CDC state: {e}")))?;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let hint = "check that the state file's directory exists and is writable";
        std::fs::create_dir_all(&dir).map_err(|e| self.err(e.to_string(), hint))?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "state".into());
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| self.err(e.to_string(), hint))?;
            f.write_all(&bytes)
                .and_then(|_| f.sync_all())
                .map_err(|e| self.err(e.to_string(), hint))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| self.err(e.to_string(), hint))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::new(dir.path().join("s.json"));
        assert_eq!(f.load().unwrap(), None);
        let s = CdcState {
            position: Position {
                file: "binlog.000001".into(),
                pos: 42,
                gtid: Some("0-1-7".into()),
            },
            snapshot_done: true,
        };
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap(), Some(s));
        std::fs::write(f.path(), b"{").unwrap();
        assert!(
            f.load()
                .unwrap_err()
                .to_string()
                .contains("not a CDC state")
        );
    }
}
