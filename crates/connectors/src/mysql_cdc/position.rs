//! Binlog positions and the local state file.
//!
//! A [`Position`] is the end of a committed transaction: `file` + `pos` (the byte offset after
//! its XID / COMMIT event), the GTID of that transaction, and — where the server has GTIDs — the
//! GTID state at that point. A transaction larger than a batch is handed out in parts
//! ([`TxnPart`]): the position of a part is the end of the transaction before it plus how many
//! of its change events were handed out, so a restart reads the transaction again from its start
//! and skips those — memory stays bounded by the part size, on every restart too ([`super::gtid`]: MariaDB's GTID list, one entry per domain, or
//! MySQL's executed GTID set). The reader resumes by that GTID state when it is known and the
//! config says `resume_by: gtid` (the default on servers with GTIDs): it names the transactions,
//! not one server's files, so it survives a fail-over to a replica. Otherwise it resumes by
//! file/pos, which is exact on the server that wrote them — and is also used by GTID resume when
//! the position names the connected server (`server_id`): same point, without the server
//! scanning a binlog file for the GTID.
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
    /// GTID state after the transaction (MariaDB GTID list `0-1-42,1-2-7`, MySQL GTID set
    /// `uuid:1-42`), when known: what a resume by GTID starts after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_set: Option<String>,
    /// `@@server_id` of the server whose binlog `file`/`pos` point into, when known: a stream
    /// on another server must not use them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u32>,
    /// Inside a large transaction handed out in parts: the fields above are where that
    /// transaction starts (the end of the one before it), and this says how much of it was
    /// handed out. `None` at a transaction boundary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<TxnPart>,
}

/// How much of a transaction handed out in parts was handed out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnPart {
    /// Change events of the transaction handed out so far, in binlog order (a restart skips
    /// this many before handing out more).
    pub events: u64,
    /// The last of them: its `source.file`, `source.pos` and `source.row` (what the Kafka
    /// read-back compares with, and what a restart checks it skipped to).
    pub file: String,
    /// Its `source.pos`.
    pub pos: u64,
    /// Its `source.row`.
    pub row: u32,
}

impl Position {
    /// A position by file/pos only (GTIDs unknown).
    pub fn at(file: impl Into<String>, pos: u64) -> Self {
        Position {
            file: file.into(),
            pos,
            gtid: None,
            gtid_set: None,
            server_id: None,
            part: None,
        }
    }

    /// The same point without its part: where the transaction it is inside starts.
    pub fn boundary(&self) -> Position {
        Position {
            part: None,
            ..self.clone()
        }
    }

    /// True when the change event at `file`/`pos`/`row` was handed out before this position:
    /// before its transaction boundary, or (inside a transaction handed out in part) at or
    /// before the last event of that part.
    pub fn covers(&self, file: &str, pos: u64, row: u32) -> bool {
        match &self.part {
            None => super::resume::compare(file, pos, &self.file, self.pos).is_lt(),
            Some(p) => super::resume::compare(file, pos, &p.file, p.pos)
                .then(row.cmp(&p.row))
                .is_le(),
        }
    }

    /// Orders positions of one binlog: by file/offset, then a boundary before the parts of the
    /// transaction that starts there, parts by how much they handed out.
    pub fn order(&self, other: &Position) -> std::cmp::Ordering {
        let parts = |p: &Position| p.part.as_ref().map_or(0, |t| t.events.saturating_add(1));
        super::resume::compare(&self.file, self.pos, &other.file, other.pos)
            .then(parts(self).cmp(&parts(other)))
    }
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
        let hint = "check that the state file's directory exists and is writable";
        crate::state_file::write_atomic(&self.path, &bytes)
            .map_err(|e| self.err(e.to_string(), hint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(events: u64, pos: u64, row: u32) -> Position {
        Position {
            part: Some(TxnPart {
                events,
                file: "binlog.000002".into(),
                pos,
                row,
            }),
            ..Position::at("binlog.000002", 1000)
        }
    }

    #[test]
    fn a_part_covers_its_events_and_orders_between_its_boundaries() {
        let boundary = Position::at("binlog.000002", 1000);
        let p = part(5, 1200, 4);
        assert!(boundary.covers("binlog.000002", 900, 7));
        assert!(!boundary.covers("binlog.000002", 1200, 0));
        assert!(p.covers("binlog.000002", 1200, 4));
        assert!(p.covers("binlog.000002", 1100, 9));
        assert!(!p.covers("binlog.000002", 1200, 5));
        assert!(!p.covers("binlog.000002", 1300, 0));
        let end = Position::at("binlog.000002", 1500);
        assert!(boundary.order(&p).is_lt());
        assert!(p.order(&part(10, 1300, 1)).is_lt());
        assert!(p.order(&end).is_lt());
        assert_eq!(p.boundary(), boundary);
    }

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
                gtid_set: Some("0-1-7,1-2-3".into()),
                server_id: Some(1),
                part: Some(TxnPart {
                    events: 20_000,
                    file: "binlog.000001".into(),
                    pos: 900,
                    row: 3,
                }),
            },
            snapshot_done: true,
        };
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap(), Some(s));
        // A state file written before `gtid_set` existed still loads.
        std::fs::write(
            f.path(),
            br#"{"position":{"file":"b.000001","pos":4,"gtid":null},"snapshot_done":true}"#,
        )
        .unwrap();
        assert_eq!(
            f.load().unwrap().unwrap().position,
            Position::at("b.000001", 4)
        );
        std::fs::write(f.path(), b"{").unwrap();
        assert!(
            !serde_json::to_string(&Position::at("b.000001", 4))
                .unwrap()
                .contains("part"),
            "a boundary writes no part"
        );
        assert!(
            f.load()
                .unwrap_err()
                .to_string()
                .contains("not a CDC state")
        );
    }
}
