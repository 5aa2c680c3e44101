//! The lake's access log: when Strata's own readers (`strata sql`, `strata decrypt`, models,
//! the analytics API, bronze readers) last read a dataset or a bronze partition, so cooling
//! ([`crate::cooling`]) can keep what is in use warm.
//!
//! Only S3 lakes keep it (a local lake has no storage classes). It stays cheap by recording
//! days, not reads: a read puts one empty, create-only object
//! `_access/<key>/<YYYY-MM-DD>` the first time a process reads `key` that day (remembered in
//! memory after that, and an existing object is left alone). A day of reads of a table is one
//! small PUT per process; the last read is the newest name in one short listing. Recording is
//! best effort: a failure is logged and never fails the read.

use std::collections::HashSet;
use std::sync::Mutex;

use futures::TryStreamExt;
use object_store::{ObjectStore, PutMode, PutOptions};

use crate::bronze::BronzeDate;
use crate::lake::Lake;

/// The folder of the access log below the lake root.
pub const ACCESS_FOLDER: &str = "_access";

static RECORDED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The access-log key of a table (`silver.iot_events`) or a bronze partition
/// (`bronze.iot/date=2025-11-20`): plain names only.
fn valid(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-=".contains(c))
        })
}

/// Records that `key` was read today (once per process and day). Only S3 lakes keep the log:
/// storage classes, and so cooling, exist there alone.
pub async fn record_read(lake: &Lake, key: &str) {
    if !valid(key) || !lake.url().starts_with("s3://") {
        return;
    }
    let today = BronzeDate::from_epoch_micros(now_micros()).to_string();
    let memo = format!("{}|{key}|{today}", lake.url());
    {
        let mut recorded = RECORDED.lock().unwrap_or_else(|p| p.into_inner());
        if !recorded.get_or_insert_with(HashSet::new).insert(memo) {
            return;
        }
    }
    let path = lake.path(
        std::iter::once(ACCESS_FOLDER)
            .chain(key.split('/'))
            .chain(std::iter::once(today.as_str())),
    );
    let opts = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    match lake.store().put_opts(&path, Vec::new().into(), opts).await {
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
        Err(e) => tracing::warn!(key, error = %e, "access log: could not record a read"),
    }
}

/// The last day `key` was read, if it ever was.
pub async fn last_read(lake: &Lake, key: &str) -> crate::error::Result<Option<BronzeDate>> {
    if !valid(key) {
        return Ok(None);
    }
    let prefix = lake.path(std::iter::once(ACCESS_FOLDER).chain(key.split('/')));
    let objects: Vec<object_store::ObjectMeta> = lake
        .store()
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|source| crate::error::LayersError::Store {
            path: lake.relative(&prefix),
            source,
        })?;
    Ok(objects
        .iter()
        .filter(|o| {
            o.location
                .prefix_match(&prefix)
                .is_some_and(|mut p| p.next().is_some())
        })
        .filter_map(|o| {
            o.location
                .filename()
                .and_then(|f| BronzeDate::parse(f).ok())
        })
        .max())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
