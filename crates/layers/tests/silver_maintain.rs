//! `maintain` on real tables: compaction and manifest merging keep the rows, expiry keeps what
//! was covered, unreferenced files go and referenced ones stay, checkpoints no snapshot names
//! are pruned; and maintenance running beside a writer loses nothing.

mod common;
use common::iot_output;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use strata_layers::lake::Lake;
use strata_layers::silver::{
    CatalogConfig, Coverage, CoverageIndex, IcebergTable, LiveFiles, MaintainOptions, SilverAppend,
    SilverCatalog, WriteOptions, maintain,
};

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

async fn rows(catalog: &SilverCatalog, table: &str) -> usize {
    let batches = catalog.read_table(table).await.expect("read");
    batches.iter().map(|b| b.num_rows()).sum()
}

async fn append_one(
    catalog: &SilverCatalog,
    table: &IcebergTable,
    batches: &[arrow::array::RecordBatch],
    covers: String,
    extra: &[(String, String)],
    index: &mut CoverageIndex,
) -> IcebergTable {
    let mut w = SilverAppend::start(table, &WriteOptions::default())
        .await
        .expect("start");
    for b in batches {
        w.write(b).await.expect("write");
    }
    let done = w
        .commit_indexed(catalog, &[covers], extra, index)
        .await
        .expect("commit");
    assert!(!done.report.skipped);
    done.table
}

#[tokio::test]
async fn maintain_compacts_expires_and_deletes_only_what_nothing_needs() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake = Lake::open(&lake_dir.display().to_string()).unwrap();
    let config = CatalogConfig::for_lake(&lake_dir.display().to_string(), None).unwrap();
    let catalog = SilverCatalog::open(&config).await.unwrap();
    let (schema, batches) = iot_output(300, 4);
    let mut table = catalog
        .ensure_table("events", &schema, Some("ts"))
        .await
        .unwrap();
    let mut index = CoverageIndex::default();
    // 30 small appends, each naming a checkpoint as the runtime does.
    for i in 0..30 {
        let ckpt = format!("catalog/state/events/run-{i:03}.ckpt");
        lake.put_new(&ckpt, bytes::Bytes::from_static(b"state"))
            .await
            .unwrap();
        let extra = [("strata.state".to_string(), ckpt)];
        table = append_one(
            &catalog,
            &table,
            &batches,
            format!("bronze/{i}"),
            &extra,
            &mut index,
        )
        .await;
    }
    // A stray file from a failed write, and the rows before.
    let data_dir = lake_dir.join("catalog/warehouse/silver/events/data");
    std::fs::write(data_dir.join("orphan-from-a-crash.parquet"), b"junk").unwrap();
    let before = rows(&catalog, "events").await;
    let live_before = LiveFiles::read(&table).await.unwrap();
    assert_eq!(live_before.manifest_count(), 30);
    let files_before = live_before.data_files().count();

    let options = MaintainOptions {
        keep_snapshots: 1,
        grace_ms: 0,
        ..MaintainOptions::default()
    };
    let report = maintain(&catalog, &lake, "events", &options).await.unwrap();
    assert_eq!(report.compacted.0, files_before, "{report:?}");
    assert!(report.compacted.1 < files_before, "{report:?}");
    assert_eq!(report.manifests, (30, 1));
    assert_eq!(report.snapshots, (30, 1), "{report:?}");
    assert!(report.files_deleted.0 > files_before, "{report:?}");
    assert_eq!(
        report.checkpoints_deleted, 29,
        "the kept snapshot names the last one"
    );

    let table = catalog.load("events").await.unwrap();
    assert_eq!(rows(&catalog, "events").await, before);
    // The writer's state survives the maintenance commit.
    let state = table
        .metadata()
        .current_snapshot()
        .unwrap()
        .summary()
        .additional_properties
        .get("strata.state")
        .cloned();
    assert_eq!(state.as_deref(), Some("catalog/state/events/run-029.ckpt"));
    assert!(lake_dir.join("catalog/state/events/run-029.ckpt").exists());
    // Every file on disk below the table is referenced, every referenced one exists.
    let live = LiveFiles::read(&table).await.unwrap();
    let on_disk: HashSet<String> = walk(&data_dir)
        .into_iter()
        .map(|p| format!("file://{}", std::fs::canonicalize(p).unwrap().display()))
        .collect();
    let referenced: HashSet<String> = live.paths().into_iter().map(str::to_string).collect();
    assert_eq!(on_disk, referenced);
    // Expired snapshots' coverage is archived: an old input is still committed.
    let mut fresh = CoverageIndex::default();
    fresh.load(&table).await.unwrap();
    assert_eq!(
        fresh.state(&table, &["bronze/0".to_string()]).unwrap(),
        Coverage::Done
    );
    assert_eq!(
        fresh.state(&table, &["bronze/30".to_string()]).unwrap(),
        Coverage::New
    );
    // pyiceberg-style readers open old metadata files only through the log: nothing dangling.
    let metadata_files = walk(&lake_dir.join("catalog/warehouse/silver/events/metadata")).len();
    assert!(
        metadata_files < 30 * 3,
        "{metadata_files} metadata files left"
    );
}

/// A writer appends every few milliseconds while maintenance runs again and again: every
/// commit lands, no row is lost, and no live file is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_beside_a_running_writer_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake = Lake::open(&lake_dir.display().to_string()).unwrap();
    let config = CatalogConfig::for_lake(&lake_dir.display().to_string(), None).unwrap();
    let catalog = SilverCatalog::open(&config).await.unwrap();
    let (schema, batches) = iot_output(100, 5);
    let per_append: usize = batches.iter().map(|b| b.num_rows()).sum();
    catalog
        .ensure_table("busy", &schema, Some("ts"))
        .await
        .unwrap();
    const APPENDS: usize = 40;
    let writer = {
        let config = config.clone();
        tokio::spawn(async move {
            let catalog = SilverCatalog::open(&config).await.unwrap();
            let mut table = catalog.load("busy").await.unwrap();
            let mut index = CoverageIndex::default();
            for i in 0..APPENDS {
                table = append_one(
                    &catalog,
                    &table,
                    &batches,
                    format!("in/{i}"),
                    &[],
                    &mut index,
                )
                .await;
            }
        })
    };
    let options = MaintainOptions {
        keep_snapshots: 2,
        // Longer than the writer takes from writing a file to committing it.
        grace_ms: 2_000,
        ..MaintainOptions::default()
    };
    let mut runs = 0;
    while !writer.is_finished() {
        maintain(&catalog, &lake, "busy", &options)
            .await
            .expect("maintain");
        runs += 1;
    }
    writer.await.expect("writer");
    maintain(&catalog, &lake, "busy", &options)
        .await
        .expect("maintain");
    assert!(runs >= 2, "maintenance ran {runs} times beside the writer");
    assert_eq!(rows(&catalog, "busy").await, APPENDS * per_append);
    let table = catalog.load("busy").await.unwrap();
    for path in LiveFiles::read(&table).await.unwrap().paths() {
        assert!(
            Path::new(path.trim_start_matches("file://")).exists(),
            "{path} is gone"
        );
    }
}
