//! Durability of local lake writes: a written file is fsynced, then its directory, then the
//! parent of every directory the write created, before the write is reported done.
//!
//! Why: object_store's `LocalFileSystem` never fsyncs, and iceberg-rust's local storage writes
//! metadata with a plain `fs::write`. Yet the state that depends on those files *is* durable
//! (the PostgreSQL watermark, the catalog's pointer swap, the state a restart resumes from), so
//! after a power loss the lake could point at an empty metadata file, or a watermark could
//! have moved past rows whose bronze object vanished. A rename or a create is only durable
//! once the directory holding the new entry is synced too, hence the directory chain.
//!
//! [`DurableLocalStore`] (an `ObjectStore`) and [`DurableLocalStorage`] (an Iceberg `Storage`)
//! wrap the two local backends with this rule. Every sync is reported to an optional
//! [`SyncObserver`], which is how the crash tests replay a run and drop what was not synced.

use std::fmt;
use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, RwLock};

/// What was made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// A file was created (its bytes are not durable yet).
    Created(PathBuf),
    /// A file's content was fsynced.
    File(PathBuf),
    /// A directory was fsynced: the entries it holds now survive a power loss.
    Dir(PathBuf),
}

/// Receives every [`SyncEvent`] (tests install one; production has none).
pub type SyncObserver = Arc<dyn Fn(&SyncEvent) + Send + Sync>;

static OBSERVER: RwLock<Option<SyncObserver>> = RwLock::new(None);

/// Installs (or with `None`, removes) the process-wide observer of syncs.
pub fn observe(observer: Option<SyncObserver>) {
    if let Ok(mut slot) = OBSERVER.write() {
        *slot = observer;
    }
}

fn notify(event: SyncEvent) {
    if let Ok(slot) = OBSERVER.read()
        && let Some(observer) = slot.as_ref()
    {
        observer(&event);
    }
}

/// Creates `dir` and its missing ancestors; returns the directories it created, outermost
/// first (each needs its parent synced once the write below it is done).
pub fn create_dirs(dir: &FsPath) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    missing.reverse();
    Ok(missing)
}

/// Creates `dir` (and missing ancestors) durably: each new directory's entry is synced in its
/// parent (a lake or warehouse root that vanished on power loss would take everything with it).
pub fn ensure_dir(dir: &FsPath) -> io::Result<()> {
    for created in create_dirs(dir)?.iter().rev() {
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Fsyncs a directory (its entries: files created or renamed into it).
pub fn sync_dir(dir: &FsPath) -> io::Result<()> {
    // The parent of a relative one-part path (`lake`) is the empty path: the working directory.
    let dir = if dir.as_os_str().is_empty() {
        FsPath::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()?;
    notify(SyncEvent::Dir(dir.to_path_buf()));
    Ok(())
}

/// Makes a just-written file durable: its bytes, its directory entry, and the entries of the
/// directories `created` (from [`create_dirs`]) in their parents.
pub fn sync_new_file(file: &FsPath, created: &[PathBuf]) -> io::Result<()> {
    notify(SyncEvent::Created(file.to_path_buf()));
    std::fs::File::open(file)?.sync_all()?;
    notify(SyncEvent::File(file.to_path_buf()));
    if let Some(parent) = file.parent() {
        sync_dir(parent)?;
    }
    // Innermost first: each directory's own entry is synced in its parent.
    for dir in created.iter().rev() {
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Writes a new file durably (dirs created as needed).
pub fn write_new_file(file: &FsPath, bytes: &[u8]) -> io::Result<()> {
    let created = match file.parent() {
        Some(parent) => create_dirs(parent)?,
        None => Vec::new(),
    };
    std::fs::write(file, bytes)?;
    sync_new_file(file, &created)
}

/// Runs blocking file-system work off the async executor.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| io::Error::other(format!("a sync task failed: {e}")))?
}

mod iceberg_local;
mod object_store_local;

pub use iceberg_local::{DurableLocalStorage, DurableLocalStorageFactory};
pub use object_store_local::DurableLocalStore;

impl fmt::Display for SyncEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncEvent::Created(p) => write!(f, "created {}", p.display()),
            SyncEvent::File(p) => write!(f, "fsync {}", p.display()),
            SyncEvent::Dir(p) => write!(f, "fsync dir {}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_one_part_directory_is_created_and_synced_in_the_working_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let here = std::env::current_dir().expect("cwd");
        std::env::set_current_dir(dir.path()).expect("cd");
        let made = ensure_dir(FsPath::new("lake"));
        let file = write_new_file(FsPath::new("top.txt"), b"x");
        std::env::set_current_dir(here).expect("cd back");
        made.expect("ensure_dir of a relative path");
        file.expect("write_new_file of a relative path");
        assert!(dir.path().join("lake").is_dir());
    }
}
