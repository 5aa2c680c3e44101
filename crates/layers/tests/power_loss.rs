//! Power loss on the local lake: a replay of every fsync a run made, then a simulated crash
//! that drops every file whose bytes or directory entries were not synced.
//!
//! A kill -9 test cannot show this: the page cache survives a killed process. Instead the run
//! records each sync ([`strata_layers::durable::observe`]); the model says a file survives when
//! its content was fsynced, then its directory, and the directories above it in theirs. At each
//! crash point (after each commit and each put returned) the invariants are:
//! - everything the catalog's current metadata references (metadata JSON, manifest list,
//!   manifests, data files) was durable before that commit returned;
//! - every file was durable before the metadata version that first references it;
//! - every put bronze object / state object was durable when the put returned;
//!
//! and after dropping the unsynced files at the end, the table still loads and reads every
//! committed row.

mod common;
use common::iot_output;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use strata_layers::durable::{self, SyncEvent};
use strata_layers::lake::Lake;
use strata_layers::silver::{SilverCatalog, append};

/// One entry of the replayed log: a sync, or the moment an operation returned.
#[derive(Debug, Clone)]
enum Step {
    Sync(SyncEvent),
    Returned(String),
}

struct Log(Arc<Mutex<Vec<Step>>>);

impl Log {
    fn install(root: &Path) -> Self {
        let steps = Arc::new(Mutex::new(Vec::new()));
        let sink = steps.clone();
        let root = root.to_path_buf();
        durable::observe(Some(Arc::new(move |e: &SyncEvent| {
            let path = match e {
                SyncEvent::Created(p) | SyncEvent::File(p) | SyncEvent::Dir(p) => p,
            };
            if path.starts_with(&root) {
                sink.lock().expect("log").push(Step::Sync(e.clone()));
            }
        })));
        Log(steps)
    }

    fn returned(&self, what: &str) {
        self.0
            .lock()
            .expect("log")
            .push(Step::Returned(what.to_string()));
    }

    fn steps(&self) -> Vec<Step> {
        self.0.lock().expect("log").clone()
    }
}

/// The step index at which each file became durable, per the model in the module docs.
fn durable_at(steps: &[Step], root: &Path) -> HashMap<PathBuf, usize> {
    let dir_syncs: Vec<(usize, &PathBuf)> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::Sync(SyncEvent::Dir(d)) => Some((i, d)),
            _ => None,
        })
        .collect();
    let first_dir_sync = |dir: &Path, from: usize| {
        dir_syncs
            .iter()
            .find(|(i, d)| *i >= from && d.as_path() == dir)
            .map(|(i, _)| *i)
    };
    let mut out = HashMap::new();
    for (j, s) in steps.iter().enumerate() {
        let Step::Sync(SyncEvent::File(f)) = s else {
            continue;
        };
        if out.contains_key(f) {
            continue;
        }
        let Some(parent) = f.parent() else { continue };
        let Some(mut at) = first_dir_sync(parent, j) else {
            continue;
        };
        // Every directory between the root and the file must be an entry synced in its parent.
        let mut ok = true;
        let mut d = parent;
        while d != root && d.starts_with(root) {
            let Some(up) = d.parent() else { break };
            match first_dir_sync(up, 0) {
                Some(i) => at = at.max(i),
                None => {
                    ok = false;
                    break;
                }
            }
            d = up;
        }
        if ok {
            out.insert(f.clone(), at);
        }
    }
    out
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn local(location: &str) -> PathBuf {
    PathBuf::from(location.strip_prefix("file://").unwrap_or(location))
}

#[tokio::test]
async fn every_acknowledged_write_survives_a_power_loss() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(dir.path()).expect("canonical");
    let log = Log::install(&root);

    // Bronze-style puts and a state object, in directories that do not exist yet.
    let lake = Lake::open(root.join("lake").to_str().expect("utf-8")).expect("lake");
    let mut puts = Vec::new();
    for (i, rel) in [
        "bronze/iot/readings/date=2026-11-20/part-0.ndjson",
        "bronze/iot/readings/date=2026-11-21/part-0.ndjson",
        "_strata/state/iot/00000001.state",
    ]
    .iter()
    .enumerate()
    {
        lake.put_new(rel, bytes::Bytes::from(format!("object {i}")))
            .await
            .expect("put");
        log.returned(rel);
        puts.push(root.join("lake").join(rel));
    }

    // Three silver commits, each in new partition directories.
    let catalog = SilverCatalog::open_local(&root.join("silver"))
        .await
        .expect("catalog");
    let mut rows = 0usize;
    let mut table = None;
    for round in 0..3u64 {
        let (schema, batches) = iot_output(2_000, round + 1);
        let t = catalog
            .ensure_table("iot_events", &schema, Some("ts"))
            .await
            .expect("table");
        let report = append(
            &catalog,
            &t,
            &batches,
            &[format!("bronze/{round}.ndjson")],
            &[],
        )
        .await
        .expect("append");
        rows += report.rows as usize;
        log.returned(&format!("commit {round}"));
        table = Some(catalog.load("iot_events").await.expect("load"));
    }
    let table = table.expect("table");
    let steps = log.steps();
    durable::observe(None);
    let durable = durable_at(&steps, &root);
    let returned = |what: &str| {
        steps
            .iter()
            .position(|s| matches!(s, Step::Returned(w) if w == what))
            .expect("returned")
    };

    // Crash points after each put: the object was durable when the put returned.
    for (rel, path) in [
        "bronze/iot/readings/date=2026-11-20/part-0.ndjson",
        "bronze/iot/readings/date=2026-11-21/part-0.ndjson",
        "_strata/state/iot/00000001.state",
    ]
    .iter()
    .zip(&puts)
    {
        let at = durable.get(path).copied();
        assert!(
            at.is_some_and(|a| a < returned(rel)),
            "{rel} was not durable when its put returned ({at:?})"
        );
    }

    // Crash points after each commit: what that version references was durable, and each file
    // before the metadata version that first references it.
    let io = table.file_io();
    let metadata = table.metadata();
    let mut snapshots: Vec<_> = metadata.snapshots().collect();
    snapshots.sort_by_key(|s| s.sequence_number());
    let metadata_log: Vec<String> = metadata
        .metadata_log()
        .iter()
        .map(|m| m.metadata_file.clone())
        .chain(table.metadata_location().map(str::to_string))
        .collect();
    assert!(metadata_log.len() >= 4, "{metadata_log:?}");
    for (round, snapshot) in snapshots.iter().enumerate() {
        // The metadata version written by this commit is the one whose current snapshot it is.
        let version = metadata_log
            .iter()
            .find(|m| {
                let text = std::fs::read_to_string(local(m)).expect("metadata");
                let json: serde_json::Value = serde_json::from_str(&text).expect("json");
                json["current-snapshot-id"].as_i64() == Some(snapshot.snapshot_id())
            })
            .expect("the commit's metadata version");
        let version_at = durable
            .get(&local(version))
            .copied()
            .unwrap_or_else(|| panic!("metadata {version} never became durable"));
        assert!(
            version_at < returned(&format!("commit {round}")),
            "commit {round} returned before its metadata was durable"
        );
        let list = table
            .manifest_list_reader(snapshot)
            .load()
            .await
            .expect("manifest list");
        let mut referenced = vec![local(snapshot.manifest_list())];
        for manifest in list.entries() {
            if manifest.added_snapshot_id != snapshot.snapshot_id() {
                continue;
            }
            referenced.push(local(&manifest.manifest_path));
            let m = manifest.load_manifest(io).await.expect("manifest");
            for entry in m.entries() {
                referenced.push(local(entry.data_file().file_path()));
            }
        }
        assert!(referenced.len() >= 3, "{referenced:?}");
        for f in referenced {
            let at = durable.get(&f).copied();
            assert!(
                at.is_some_and(|a| a < version_at),
                "{} was not durable before {version} referenced it ({at:?})",
                f.display()
            );
        }
    }

    // The crash itself: every file not durable is gone; the table still reads every row.
    let mut dropped = 0;
    for f in files_below(&root.join("silver/warehouse")) {
        if !durable.contains_key(&f) {
            std::fs::remove_file(&f).expect("drop an unsynced file");
            dropped += 1;
        }
    }
    let reopened = SilverCatalog::open_local(&root.join("silver"))
        .await
        .expect("catalog after the crash");
    let table = reopened
        .load("iot_events")
        .await
        .expect("load after the crash");
    let batches: Vec<_> = table
        .scan()
        .build()
        .expect("scan")
        .to_arrow()
        .await
        .expect("to_arrow")
        .try_collect()
        .await
        .expect("read after the crash");
    let read: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(
        read, rows,
        "rows after the crash ({dropped} unsynced files dropped)"
    );
}
