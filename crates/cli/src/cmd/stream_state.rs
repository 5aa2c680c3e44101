//! The streaming driver's durable state: the pipeline checkpoint (dedup keys) together with the
//! input positions it corresponds to, one file per committed micro-batch.
//!
//! The consumer group's committed offsets say where the output is complete (after the produce
//! was acknowledged, or inside the transaction in exactly-once mode). The state file is written
//! *before* those offsets are committed, so on restart exactly one of the last few files matches
//! the committed offsets: the state to restore. A crash between the two writes leaves the newer
//! file unmatched and the older one matching — the batch is replayed from consistent state.

use std::path::{Path, PathBuf};

use strata_connectors::kafka::Positions;

use crate::Failure;

const MAGIC: &[u8; 8] = b"STRATASS";
/// Files kept: the newest few are enough to find the one matching the committed offsets.
const KEEP: usize = 4;

/// Pipeline state at input positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// Next offset per partition.
    pub positions: Positions,
    /// `Pipeline::checkpoint` bytes.
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
        let mut at = 4;
        let mut positions = Positions::new();
        for _ in 0..n {
            let p = i32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?);
            let o = i64::from_le_bytes(rest.get(at + 4..at + 12)?.try_into().ok()?);
            positions.insert(p, o);
            at += 12;
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

impl StateStore {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> Result<Self, Failure> {
        std::fs::create_dir_all(dir).map_err(|e| {
            Failure::runtime(anyhow::anyhow!("state folder {}: {e}", dir.display()))
        })?;
        let next_seq = Self::files(dir)?.last().map(|(s, _)| s + 1).unwrap_or(0);
        Ok(StateStore {
            dir: dir.to_path_buf(),
            next_seq,
        })
    }

    fn files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Failure> {
        let mut files = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Failure::runtime(anyhow::anyhow!("state folder {}: {e}", dir.display()))
        })?;
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
    pub fn matching(&self, committed: &Positions) -> Result<(Option<StreamState>, bool), Failure> {
        let files = Self::files(&self.dir)?;
        let any = !files.is_empty();
        for (_, path) in files.iter().rev() {
            let bytes = std::fs::read(path).map_err(|e| {
                Failure::runtime(anyhow::anyhow!("reading {}: {e}", path.display()))
            })?;
            let state = StreamState::decode(&bytes).ok_or_else(|| {
                Failure::runtime(anyhow::anyhow!(
                    "{} is not a Strata stream state",
                    path.display()
                ))
            })?;
            if &state.positions == committed {
                return Ok((Some(state), any));
            }
        }
        Ok((None, any))
    }

    /// Durably writes `state` as the newest file (temp + fsync + rename) and prunes old ones.
    pub fn save(&mut self, state: &StreamState) -> Result<(), Failure> {
        use std::io::Write;
        let path = self.dir.join(format!("{:012}.state", self.next_seq));
        let temp = self.dir.join(format!(".{:012}.state.tmp", self.next_seq));
        let io = |e: std::io::Error| {
            Failure::runtime(anyhow::anyhow!("writing {}: {e}", path.display()))
        };
        let mut f = std::fs::File::create(&temp).map_err(io)?;
        f.write_all(&state.encode()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&temp, &path).map_err(io)?;
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
                positions: Positions::from([(0, i * 10), (1, i * 20)]),
                pipeline: vec![i as u8; 3],
            };
            store.save(&state).expect("save");
        }
        let store = StateStore::open(dir.path()).expect("reopen");
        let (found, any) = store
            .matching(&Positions::from([(0, 40), (1, 80)]))
            .expect("match");
        assert!(any);
        assert_eq!(found.map(|s| s.pipeline), Some(vec![4, 4, 4]));
        // Pruned: only the newest KEEP remain, so an old position no longer matches.
        let (old, _) = store
            .matching(&Positions::from([(0, 0), (1, 0)]))
            .expect("match");
        assert!(old.is_none());
        assert_eq!(store.next_seq, 6);
    }
}
