//! Silver on the embedded catalog (SQLite + local warehouse): the IoT pipeline's output appended
//! with what each commit covers, re-runs skipped, read back with iceberg-rust's own scan.

use std::collections::HashSet;

use futures::TryStreamExt;
use strata_core::lineage::{file_batch, file_input_schema};
use strata_core::sample::{IotFaults, iot_events};
use strata_core::{BuildContext, Pipeline, PipelineSpec};
use strata_layers::silver::{SilverCatalog, append, committed_coverage};

fn iot_output(
    n: usize,
    seed: u64,
) -> (arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot.yaml"
    ))
    .expect("iot.yaml");
    let spec = PipelineSpec::from_yaml(&text).expect("spec");
    let mut p =
        Pipeline::build(&spec, file_input_schema(), &BuildContext::default()).expect("build");
    let lines = iot_events(n, seed, IotFaults::default(), 1_763_646_312_000);
    let out = p
        .process(&file_batch(&lines, "iot", "bronze/x", 1, 0).expect("batch"))
        .expect("process");
    (p.output_schema(), out.rows)
}

async fn count_rows(table: &iceberg::table::Table) -> usize {
    let stream = table
        .scan()
        .build()
        .expect("scan")
        .to_arrow()
        .await
        .expect("to_arrow");
    let batches: Vec<_> = stream.try_collect().await.expect("read");
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test]
async fn appends_record_coverage_and_reruns_add_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = SilverCatalog::open_local(dir.path())
        .await
        .expect("catalog");
    let (schema, batches) = iot_output(3000, 1);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let table = catalog
        .ensure_table("iot_events", &schema, Some("ts"))
        .await
        .expect("table");

    let first = append(
        &catalog,
        &table,
        &batches,
        &["bronze/a.ndjson.zst".to_string()],
        &[],
    )
    .await
    .expect("append");
    assert_eq!((first.rows as usize, first.skipped), (rows, false));
    assert!(first.data_files >= 1);

    // A re-run over the same input commits nothing.
    let table = catalog
        .ensure_table("iot_events", &schema, Some("ts"))
        .await
        .expect("reload");
    let again = append(
        &catalog,
        &table,
        &batches,
        &["bronze/a.ndjson.zst".to_string()],
        &[],
    )
    .await
    .expect("rerun");
    assert!(again.skipped);
    assert_eq!(count_rows(&table).await, rows);

    // New input appends; mixing old and new inputs in one chunk is refused.
    let (_, more) = iot_output(1000, 2);
    let more_rows: usize = more.iter().map(|b| b.num_rows()).sum();
    append(
        &catalog,
        &table,
        &more,
        &["bronze/b.ndjson.zst".to_string()],
        &[],
    )
    .await
    .expect("append b");
    let table = catalog
        .ensure_table("iot_events", &schema, Some("ts"))
        .await
        .expect("reload");
    let mixed = append(
        &catalog,
        &table,
        &more,
        &[
            "bronze/b.ndjson.zst".to_string(),
            "bronze/c.ndjson.zst".to_string(),
        ],
        &[],
    )
    .await;
    assert!(mixed.is_err());
    assert_eq!(count_rows(&table).await, rows + more_rows);
    let covered: HashSet<String> = committed_coverage(&table)
        .expect("coverage")
        .into_iter()
        .collect();
    assert_eq!(
        covered,
        HashSet::from([
            "bronze/a.ndjson.zst".to_string(),
            "bronze/b.ndjson.zst".to_string()
        ])
    );

    // Hidden partitioning: data files live under ts_day=… folders.
    let data = dir.path().join("warehouse");
    let mut day_dirs = 0;
    for entry in walk(&data) {
        if entry.to_string_lossy().contains("ts_day=")
            && entry.extension().is_some_and(|e| e == "parquet")
        {
            day_dirs += 1;
        }
    }
    assert!(
        day_dirs >= 1,
        "no partitioned data files under {}",
        data.display()
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p))
            } else {
                out.push(p)
            }
        }
    }
    out
}
