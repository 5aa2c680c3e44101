//! `stream silver` restarts on real Iceberg tables: a run that dies mid-way resumes from the
//! positions, the writer epoch and the pipeline state chain (a full checkpoint and its deltas)
//! the rows table's last snapshot names, and the table ends up holding exactly what one clean
//! run writes. Each restart claims a new epoch with an empty commit first, so the state chain
//! must survive that commit too (a claim that kept only the full checkpoint let a duplicate
//! whose first copy was in a delta through a second time).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use strata_core::{BuildContext, Pipeline};
use strata_layers::lake::Lake;
use strata_layers::silver::{CatalogConfig, SilverCatalog, WriteOptions};
use strata_runtime::sinks::{SilverStreamSink, SilverTables};
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Source, StopReason};

mod common;
use common::{ScriptedLog, events, spec};

/// Runs the IoT pipeline from the log into silver under `lake`, failing at each of
/// `failures` (a source call count) in turn, until one run reaches the end.
async fn run_through_failures(lake: &str, records: &Arc<Vec<String>>, failures: &[usize]) {
    for attempt in 0..=failures.len() {
        let source = ScriptedLog {
            records: records.clone(),
            next: 0,
            sizes: vec![37, 11, 53],
            calls: 0,
            fail_at: failures.get(attempt).copied(),
        };
        let pipeline =
            Pipeline::build(&spec(), source.schema(), &BuildContext::default()).expect("pipeline");
        let config = CatalogConfig::for_lake(lake, None).expect("catalog config");
        let catalog = SilverCatalog::open(&config).await.expect("catalog");
        let tables = SilverTables::open(
            catalog,
            Lake::open(lake).expect("lake"),
            &pipeline,
            false,
            (WriteOptions::default(), WriteOptions::default()),
        )
        .await
        .expect("tables");
        let options = DriverOptions {
            commit: CommitPolicy::every(std::time::Duration::MAX, 1),
            channel_depth: 2,
            stop_when_idle: None,
            crash_after_commits: None,
        };
        let outcome = Driver::new(source, pipeline, SilverStreamSink::new(tables), options)
            .run(std::future::pending())
            .await;
        match outcome {
            Ok(report) => {
                assert_eq!(report.stopped, StopReason::EndOfInput);
                return;
            }
            Err(e) => assert!(
                e.to_string().contains("scripted failure"),
                "attempt {attempt}: {e}"
            ),
        }
    }
    panic!("the last run was meant to reach the end");
}

/// (device_id, seq) → copies in the rows table, and the quarantine table's row count.
async fn held(lake: &str) -> (BTreeMap<(String, i64), usize>, usize) {
    let config = CatalogConfig::for_lake(lake, None).expect("catalog config");
    let catalog = SilverCatalog::open(&config).await.expect("catalog");
    let mut keys = BTreeMap::new();
    for b in catalog.read_table("iot_events").await.expect("rows") {
        let ids = b.column_by_name("device_id").expect("device_id");
        let seqs = b.column_by_name("seq").expect("seq");
        let (ids, seqs) = (ids.as_string::<i32>(), seqs.as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            *keys
                .entry((ids.value(i).to_string(), seqs.value(i)))
                .or_insert(0) += 1;
        }
    }
    let quarantined = catalog
        .read_table("iot_events_quarantine")
        .await
        .expect("quarantine")
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    (keys, quarantined)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_through_epoch_claims_keep_the_whole_state_chain() {
    let records = Arc::new(events());
    let clean = tempfile::tempdir().expect("tempdir");
    let clean_lake = clean.path().to_str().expect("utf-8 path");
    run_through_failures(clean_lake, &records, &[]).await;
    let (want, want_quarantined) = held(clean_lake).await;
    assert!(want.values().all(|n| *n == 1), "the clean run deduplicates");

    let broken = tempfile::tempdir().expect("tempdir");
    let broken_lake = broken.path().to_str().expect("utf-8 path");
    // Each run commits after every batch (full states and deltas between them), then dies.
    run_through_failures(broken_lake, &records, &[9, 7, 12, 5, 10]).await;
    let (got, quarantined) = held(broken_lake).await;
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "held more than once: {twice:?}");
    assert_eq!(got, want, "the same rows as one clean run");
    assert_eq!(quarantined, want_quarantined, "the same quarantine");
}
