//! Small JSON state files (cursors of API sources) written atomically: a temp file in the same
//! directory, `fsync`, `rename`, then `fsync` of the directory. A crash leaves the old or the new
//! state, never a torn one. Kept local on purpose: a source saves its state only after Kafka
//! acknowledged what the state covers, and reading it back needs no broker.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ConnectorError, Result};

fn state_error(path: &Path, message: impl ToString, hint: &'static str) -> ConnectorError {
    ConnectorError::StateFile {
        file: path.display().to_string(),
        message: message.to_string(),
        hint,
    }
}

/// Reads the state, `None` when the file does not exist yet (a first run).
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_error(path, e, "check the file's permissions")),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        state_error(
            path,
            format!("not a valid state file: {e}"),
            "it is written atomically, so this is not a crash: restore it from a backup, or \
             delete it to start again from the configured initial cursor",
        )
    })
}

/// Replaces the state atomically and durably.
pub fn write<T: Serialize>(path: &Path, state: &T) -> Result<()> {
    let hint = "check that the state directory exists and is writable";
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| state_error(path, e, hint))?;
    write_atomic(path, &bytes).map_err(|e| state_error(path, e, hint))
}

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content: the parent
/// directory is created, the bytes go to a temp file beside it (fsynced), which is renamed over
/// `path`, and the directory is fsynced so the rename itself is durable. Every state file of the
/// crate (API cursors, CDC positions, PostgreSQL watermarks) is written through here; callers
/// map the I/O error to their own variant.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename is durable only once the directory is synced: a failure here is reported,
    // since the caller is about to act on a state that a power loss would undo.
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reports_a_missing_file_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/cursor.json");
        assert_eq!(read::<Vec<u32>>(&path).expect("read"), None);
        write(&path, &vec![1u32, 2]).expect("write");
        write(&path, &vec![3u32]).expect("overwrite");
        assert_eq!(read::<Vec<u32>>(&path).expect("read"), Some(vec![3]));
        let leftovers = std::fs::read_dir(path.parent().expect("dir"))
            .expect("ls")
            .count();
        assert_eq!(leftovers, 1, "no temp file left behind");
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cursor.json");
        std::fs::write(&path, b"{not json").expect("write");
        let err = read::<Vec<u32>>(&path).expect_err("corrupt");
        assert!(err.to_string().contains("cursor.json"), "{err}");
    }
}
