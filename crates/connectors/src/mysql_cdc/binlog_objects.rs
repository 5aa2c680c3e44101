//! Archived binlog files on S3 (`binlog_files: s3://bucket/prefix/`): a backfill from binlog
//! backups kept in object storage, read by the same file reader ([`super::binlog_files`]).
//!
//! The objects under the prefix whose names come at or after the saved position's file (in
//! binlog order) are copied, streamed chunk by chunk, into a staging folder beside the state file
//! (`<state_file>.binlogs/`), then read as a local folder: the reader needs to seek back to the
//! start of a file, and a local copy makes a rerun cheap (an object already staged with the same
//! size is not fetched again). Memory holds one chunk at a time; disk holds the objects after the
//! saved position. Objects that are not binlog files (an index, checksums) are staged but skipped
//! by the reader, which checks the magic bytes.
//!
//! The store is configured as the lake's is: the `AWS_*` environment variables (`AWS_ENDPOINT`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ALLOW_HTTP`, …).
//!
//! How it fails: a URL without a bucket, an unreachable store or a failed listing or copy is a
//! [`ConnectorError::MysqlState`] naming the URL (or object) and what to check; a prefix with no
//! object is refused by the caller like an empty folder.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::resume::compare;
use crate::error::{ConnectorError, Result};

/// Suffix of an object being copied (renamed to its own name once complete).
const PARTIAL_SUFFIX: &str = ".staging";

fn error(what: &str, message: String, hint: &'static str) -> ConnectorError {
    ConnectorError::MysqlState {
        file: what.to_string(),
        message,
        hint,
    }
}

/// `(bucket, prefix)` of an `s3://bucket/prefix` URL; `None` for any other text.
pub fn parse_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    Some((bucket.to_string(), prefix.trim_end_matches('/').to_string()))
}

/// The staging folder of a state file: `<state_file>.binlogs`.
pub fn staging_dir(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(".binlogs");
    PathBuf::from(name)
}

/// Copies the objects of `url` named at or after `from_file` (all when `None`) into `staging`,
/// and returns `staging` (a folder the file reader lists).
pub async fn stage(url: &str, from_file: Option<&str>, staging: &Path) -> Result<PathBuf> {
    let Some((bucket, prefix)) = parse_url(url).filter(|(b, _)| !b.is_empty()) else {
        return Err(error(
            url,
            "not an s3://bucket/prefix URL".into(),
            "write binlog_files as s3://bucket/folder/ or a local path",
        ));
    };
    let store = AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .with_virtual_hosted_style_request(false)
        .build()
        .map_err(|e| {
            error(
                url,
                format!("cannot configure the S3 store: {e}"),
                "set AWS_REGION, AWS_ENDPOINT and the credentials in the environment",
            )
        })?;
    let listed_at = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.as_str()));
    let mut listing = store.list(listed_at.as_ref());
    let mut objects = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta.map_err(|e| {
            error(
                url,
                format!("cannot list the binlog objects: {e}"),
                "check the bucket, the prefix, the endpoint and the credentials",
            )
        })?;
        let Some(name) = meta.location.filename().map(str::to_string) else {
            continue;
        };
        let wanted = from_file.is_none_or(|from| compare(&name, 0, from, 0).is_ge());
        if wanted {
            objects.push((name, meta.location, meta.size));
        }
    }
    std::fs::create_dir_all(staging).map_err(|e| {
        error(
            &staging.display().to_string(),
            format!("cannot create the staging folder: {e}"),
            "the staging folder sits beside the state file: check that folder is writable",
        )
    })?;
    forget_staged_before(staging, from_file);
    for (name, location, size) in objects {
        let target = staging.join(&name);
        if std::fs::metadata(&target).is_ok_and(|m| m.len() == size) {
            continue;
        }
        copy(&store, &location, &target).await.map_err(|message| {
            error(
                &format!("s3://{bucket}/{location}"),
                message,
                "check the store and the staging folder's free space, then run again",
            )
        })?;
    }
    Ok(staging.to_path_buf())
}

/// Removes copies an interrupted run left half-written, and staged files named before
/// `from_file`: everything before the saved position was read, so the staging folder holds no
/// more than what is still to read.
fn forget_staged_before(staging: &Path, from_file: Option<&str>) {
    let Ok(entries) = std::fs::read_dir(staging) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let read_already = from_file.is_some_and(|from| compare(&name, 0, from, 0).is_lt());
        if read_already || name.ends_with(PARTIAL_SUFFIX) {
            // A file that cannot be removed is only disk space, not a wrong read: the reader
            // skips files before the position.
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Streams one object into `target` (through a temporary name, synced, then renamed).
async fn copy(
    store: &dyn ObjectStore,
    location: &ObjectPath,
    target: &Path,
) -> std::result::Result<(), String> {
    // Appended, not `with_extension`: binlog names end in their sequence number.
    let mut partial = target.as_os_str().to_owned();
    partial.push(PARTIAL_SUFFIX);
    let partial = PathBuf::from(partial);
    let mut file = std::fs::File::create(&partial).map_err(|e| e.to_string())?;
    let mut chunks = store
        .get(location)
        .await
        .map_err(|e| e.to_string())?
        .into_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        file.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    file.sync_all().map_err(|e| e.to_string())?;
    std::fs::rename(&partial, target).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_staging_folders() {
        assert_eq!(
            parse_url("s3://backups/mysql/binlogs/"),
            Some(("backups".into(), "mysql/binlogs".into()))
        );
        assert_eq!(
            parse_url("s3://backups"),
            Some(("backups".into(), "".into()))
        );
        assert_eq!(parse_url("/var/lib/mysql"), None);
        assert_eq!(
            staging_dir(Path::new("state/cdc.json")),
            PathBuf::from("state/cdc.json.binlogs")
        );
    }
}
