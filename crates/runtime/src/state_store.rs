//! Pipeline state kept beside a sink whose positions live elsewhere (a Kafka consumer group, a
//! Kafka transaction): the pipeline checkpoint together with the input positions it belongs to,
//! one file per commit.
//!
//! The group's committed offsets say where the output is complete. The state file is written
//! *before* those offsets are committed, so on restart exactly one of the last few files matches
//! the committed offsets: the state to restore. A crash between the two writes leaves the newer
//! file unmatched and the older one matching — the batch is replayed from consistent state.
//! Files go through the one state-file writer (`strata_connectors::state_file::write_atomic`:
//! temp file, fsync, rename, fsync of the folder).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Result, RuntimeError};

const MAGIC: &[u8; 8] = b"STRATASS";
/// Files kept: the newest few are enough to find the one matching the committed offsets.
const KEEP: usize = 4;

/// Next offset per partition.
pub type Offsets = BTreeMap<i32, i64>;

/// Pipeline state at input positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Next offset per partition.
    pub positions: Offsets,
    /// The pipeline checkpoint.
    pub pipeline: Vec<u8>,
}

impl StreamState {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.positions.len() * 12 + self.pipeline.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.positions.len() as u32).to_le_bytes());
        for (p, o) in &self.positions {
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(&o.to_le_bytes());
        }
        out.extend_from_slice(&self.pipeline);
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let rest = bytes.strip_prefix(MAGIC.as_slice())?;
        let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let mut at = 4usize;
        let mut positions = Offsets::new();
        for _ in 0..n {
            let p = i32::from_le_bytes(rest.get(at..at.checked_add(4)?)?.try_into().ok()?);
            let o = i64::from_le_bytes(
                rest.get(at.checked_add(4)?..at.checked_add(12)?)?
                    .try_into()
                    .ok()?,
            );
            positions.insert(p, o);
            at = at.checked_add(12)?;
        }
        Some(StreamState {
            positions,
            pipeline: rest.get(at..)?.to_vec(),
        })
    }
}

/// State files in one folder (one folder per pipeline instance).
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    next_seq: u64,
}

fn state_error(path: &Path, e: impl std::fmt::Display, hint: &'static str) -> RuntimeError {
    RuntimeError::State {
        file: path.display().to_string(),
        problem: e.to_string(),
        hint,
    }
}

impl StateStore {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| state_error(dir, e, "check that the state folder is writable"))?;
        let next_seq = Self::files(dir)?.last().map(|(s, _)| s + 1).unwrap_or(0);
        Ok(StateStore {
            dir: dir.to_path_buf(),
            next_seq,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir)
            .map_err(|e| state_error(dir, e, "check that the state folder is readable"))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".state"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(seq) = seq {
                files.push((seq, path));
            }
        }
        files.sort();
        Ok(files)
    }

    /// The newest state whose positions equal `committed`, if any, and whether any state exists.
    pub fn matching(&self, committed: &Offsets) -> Result<(Option<StreamState>, bool)> {
        let files = Self::files(&self.dir)?;
        let any = !files.is_empty();
        for (_, path) in files.iter().rev() {
            let bytes = std::fs::read(path)
                .map_err(|e| state_error(path, e, "check the file's permissions"))?;
            let state = StreamState::decode(&bytes).ok_or_else(|| {
                state_error(
                    path,
                    "not a Strata stream state",
                    "state files are written atomically: remove files that are not Strata's",
                )
            })?;
            if &state.positions == committed {
                return Ok((Some(state), any));
            }
        }
        Ok((None, any))
    }

    /// Durably writes `state` as the newest file and prunes old ones.
    pub fn save(&mut self, state: &StreamState) -> Result<()> {
        let path = self.dir.join(format!("{:012}.state", self.next_seq));
        strata_connectors::state_file::write_atomic(&path, &state.encode())
            .map_err(|e| state_error(&path, e, "check that the state folder is writable"))?;
        self.next_seq += 1;
        let files = Self::files(&self.dir)?;
        if files.len() > KEEP {
            for (_, old) in &files[..files.len() - KEEP] {
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_matching_the_committed_offsets_is_found_and_old_files_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = StateStore::open(dir.path()).expect("open");
        for i in 0..6i64 {
            let state = StreamState {
                positions: Offsets::from([(0, i * 10), (1, i * 20)]),
                pipeline: vec![i as u8; 3],
            };
            store.save(&state).expect("save");
        }
        let store = StateStore::open(dir.path()).expect("reopen");
        let (found, any) = store
            .matching(&Offsets::from([(0, 40), (1, 80)]))
            .expect("match");
        assert!(any);
        assert_eq!(found.map(|s| s.pipeline), Some(vec![4, 4, 4]));
        // Pruned: only the newest KEEP remain, so an old position no longer matches.
        let (old, _) = store
            .matching(&Offsets::from([(0, 0), (1, 0)]))
            .expect("match");
        assert!(old.is_none());
        assert_eq!(store.next_seq, 6);
    }

    #[test]
    fn a_truncated_or_foreign_state_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = StateStore::open(dir.path()).expect("open");
        store
            .save(&StreamState {
                positions: Offsets::from([(0, 5)]),
                pipeline: vec![1],
            })
            .expect("save");
        let path = dir.path().join("000000000000.state");
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..14]).expect("truncate");
        let err = store.matching(&Offsets::new()).expect_err("truncated");
        assert!(
            err.to_string().contains("not a Strata stream state"),
            "{err}"
        );
        assert!(err.to_string().contains("000000000000.state"), "{err}");
    }
}
