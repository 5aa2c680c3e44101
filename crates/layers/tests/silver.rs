//! Silver on the embedded catalog (SQLite + local warehouse): the IoT pipeline's output appended
//! with what each commit covers, re-runs skipped, read back with iceberg-rust's own scan.

mod common;
use common::iot_output;

use std::collections::HashSet;

use arrow::array::AsArray;
use futures::TryStreamExt;
use strata_layers::silver::{
    CoverageIndex, SilverAppend, SilverCatalog, WriteOptions, append, committed_coverage,
};

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
        .await
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

/// A writer's coverage index reads each snapshot once however many commits it makes (the check
/// no longer re-parses every snapshot's coverage per commit), and still sees another writer's
/// commits: a file it committed is skipped, a chunk mixing it with a new one is refused.
#[tokio::test]
async fn a_coverage_index_reads_each_snapshot_once_and_sees_other_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = SilverCatalog::open_local(dir.path())
        .await
        .expect("catalog");
    let (schema, batches) = iot_output(200, 3);
    let mut table = catalog
        .ensure_table("aged", &schema, Some("ts"))
        .await
        .expect("table");
    let mut index = CoverageIndex::default();
    for i in 0..12 {
        let mut writer = SilverAppend::start(&table, &WriteOptions::default())
            .await
            .expect("start");
        for b in &batches {
            writer.write(b).await.expect("write");
        }
        let done = writer
            .commit_indexed(&catalog, &[format!("bronze/{i}.ndjson")], &[], &mut index)
            .await
            .expect("commit");
        assert!(!done.report.skipped);
        table = done.table;
    }
    // 12 commits, each checked against the version it commits onto: 11 snapshots existed
    // before the last one, each read once (without the index: 0 + 1 + … + 11 = 66 reads).
    assert_eq!(index.snapshots_read(), 11);
    // Another writer commits file 12 behind this writer's back.
    let other = append(
        &catalog,
        &table,
        &batches,
        &["bronze/12.ndjson".into()],
        &[],
    )
    .await
    .expect("other writer");
    assert!(!other.skipped);
    let mut writer = SilverAppend::start(&table, &WriteOptions::default())
        .await
        .expect("start");
    writer.write(&batches[0]).await.expect("write");
    let again = writer
        .commit_indexed(&catalog, &["bronze/12.ndjson".into()], &[], &mut index)
        .await
        .expect("commit");
    assert!(
        again.report.skipped && again.report.lost_race,
        "{:?}",
        again.report
    );
    let mut writer = SilverAppend::start(&again.table, &WriteOptions::default())
        .await
        .expect("start");
    writer.write(&batches[0]).await.expect("write");
    let mixed = writer
        .commit_indexed(
            &catalog,
            &["bronze/12.ndjson".into(), "bronze/13.ndjson".into()],
            &[],
            &mut index,
        )
        .await;
    assert!(
        mixed.is_err(),
        "a chunk mixing a committed file with a new one"
    );
    assert_eq!(index.snapshots_read(), 13);
}

/// An append reads no manifest of earlier snapshots (their number grows with every commit, so
/// reading them made each commit slower than the one before): with the manifests of all earlier
/// commits gone from disk, one more append still commits.
#[tokio::test]
async fn an_append_reads_no_manifest_of_earlier_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = SilverCatalog::open_local(dir.path())
        .await
        .expect("catalog");
    let (schema, batches) = iot_output(300, 4);
    let mut table = catalog
        .ensure_table("aging", &schema, Some("ts"))
        .await
        .expect("table");
    for i in 0..3 {
        let done = append(&catalog, &table, &batches, &[format!("bronze/{i}")], &[])
            .await
            .expect("append");
        assert!(!done.skipped);
        table = catalog
            .ensure_table("aging", &schema, Some("ts"))
            .await
            .expect("reload");
    }
    let manifests: Vec<_> = walk(&dir.path().join("warehouse"))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            name.is_some_and(|n| n.ends_with(".avro") && !n.starts_with("snap-"))
        })
        .collect();
    assert!(manifests.len() >= 3, "{manifests:?}");
    for m in &manifests {
        std::fs::remove_file(m).expect("remove");
    }
    let done = append(&catalog, &table, &batches, &["bronze/3".to_string()], &[])
        .await
        .expect("an append must not read earlier manifests");
    assert!(!done.skipped);
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

fn schema(fields: &[(&str, arrow::datatypes::DataType, bool)]) -> arrow::datatypes::Schema {
    arrow::datatypes::Schema::new(
        fields
            .iter()
            .map(|(n, t, null)| arrow::datatypes::Field::new(*n, t.clone(), *null))
            .collect::<Vec<_>>(),
    )
}

#[tokio::test]
async fn schema_evolution_adds_optional_columns_and_refuses_the_rest() {
    use arrow::datatypes::DataType::{Float64, Int32, Int64, Utf8};
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = SilverCatalog::open_local(dir.path())
        .await
        .expect("catalog");
    let v1 = schema(&[
        ("id", Int64, false),
        ("small", Int32, true),
        ("name", Utf8, true),
    ]);
    let t = catalog
        .ensure_table("evo", &v1, None)
        .await
        .expect("create");
    let b1 = arrow::array::RecordBatch::try_new(
        Arc::new(v1.clone()),
        vec![
            Arc::new(arrow::array::Int64Array::from(vec![1, 2])),
            Arc::new(arrow::array::Int32Array::from(vec![Some(1), None])),
            Arc::new(arrow::array::StringArray::from(vec!["a", "b"])),
        ],
    )
    .expect("batch");
    append(&catalog, &t, &[b1], &["f1".into()], &[])
        .await
        .expect("append v1");

    // v2 adds a nullable column: the table follows, old rows read it as null.
    let v2 = schema(&[
        ("id", Int64, false),
        ("small", Int32, true),
        ("name", Utf8, true),
        ("score", Float64, true),
    ]);
    let t = catalog
        .ensure_table("evo", &v2, None)
        .await
        .expect("evolve");
    let b2 = arrow::array::RecordBatch::try_new(
        Arc::new(v2.clone()),
        vec![
            Arc::new(arrow::array::Int64Array::from(vec![3])),
            Arc::new(arrow::array::Int32Array::from(vec![Some(3)])),
            Arc::new(arrow::array::StringArray::from(vec!["c"])),
            Arc::new(arrow::array::Float64Array::from(vec![0.5])),
        ],
    )
    .expect("batch");
    append(&catalog, &t, &[b2], &["f2".into()], &[])
        .await
        .expect("append v2");
    let rows = catalog.read_table("evo").await.expect("read");
    let total: usize = rows.iter().map(|b| b.num_rows()).sum();
    assert_eq!(total, 3);
    let nulls: usize = rows
        .iter()
        .map(|b| {
            b.column_by_name("score")
                .map(|c| c.null_count())
                .unwrap_or(b.num_rows())
        })
        .sum();
    assert_eq!(nulls, 2, "old rows read the new column as null");

    for (bad, column, words) in [
        (
            schema(&[
                ("id", Int64, false),
                ("small", Int32, true),
                ("name", Int64, true),
                ("score", Float64, true),
            ]),
            "name",
            "changes type",
        ),
        (
            schema(&[
                ("id", Int64, false),
                ("small", Int32, true),
                ("name", Utf8, true),
                ("score", Float64, true),
                ("must", Utf8, false),
            ]),
            "must",
            "NOT NULL",
        ),
        (
            schema(&[
                ("id", Int64, true),
                ("small", Int32, true),
                ("name", Utf8, true),
                ("score", Float64, true),
            ]),
            "id",
            "became nullable",
        ),
        (
            schema(&[
                ("small", Int32, true),
                ("name", Utf8, true),
                ("score", Float64, true),
            ]),
            "id",
            "no longer produces",
        ),
    ] {
        let e = catalog
            .ensure_table("evo", &bad, None)
            .await
            .expect_err("incompatible");
        let text = e.to_string();
        assert!(
            text.contains(&format!("column `{column}`")) && text.contains(words),
            "{text}"
        );
    }

    // Widening is committed through Strata's own metadata commit: same field id, new type; old
    // files are read promoted, new rows can use the wider range.
    let before = catalog.load("evo").await.expect("load");
    let small_id = before
        .metadata()
        .current_schema()
        .field_by_name("small")
        .expect("small")
        .id;
    let v3 = schema(&[
        ("id", Int64, false),
        ("small", Int64, true),
        ("name", Utf8, true),
        ("score", Float64, true),
    ]);
    let t = catalog.ensure_table("evo", &v3, None).await.expect("widen");
    let field = t
        .metadata()
        .current_schema()
        .field_by_name("small")
        .expect("small")
        .clone();
    assert_eq!(field.id, small_id, "the widened column keeps its field id");
    assert_eq!(
        *field.field_type,
        iceberg::spec::Type::Primitive(iceberg::spec::PrimitiveType::Long)
    );
    let b3 = arrow::array::RecordBatch::try_new(
        Arc::new(v3.clone()),
        vec![
            Arc::new(arrow::array::Int64Array::from(vec![4])),
            Arc::new(arrow::array::Int64Array::from(vec![Some(5_000_000_000)])),
            Arc::new(arrow::array::StringArray::from(vec!["d"])),
            Arc::new(arrow::array::Float64Array::from(vec![1.5])),
        ],
    )
    .expect("batch");
    append(&catalog, &t, &[b3], &["f3".into()], &[])
        .await
        .expect("append v3");
    let rows = catalog.read_table("evo").await.expect("read");
    let mut small: Vec<Option<i64>> = Vec::new();
    let mut ids: Vec<i64> = Vec::new();
    for b in &rows {
        let col = b.column_by_name("small").expect("small");
        assert_eq!(col.data_type(), &Int64, "old files are read promoted");
        small.extend(col.as_primitive::<arrow::datatypes::Int64Type>().iter());
        ids.extend(
            b.column_by_name("id")
                .expect("id")
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .iter(),
        );
    }
    let mut pairs: Vec<(i64, Option<i64>)> = ids.into_iter().zip(small).collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            (1, Some(1)),
            (2, None),
            (3, Some(3)),
            (4, Some(5_000_000_000))
        ]
    );
    // Narrowing back is a type change, refused.
    let e = catalog
        .ensure_table("evo", &v2, None)
        .await
        .expect_err("narrowing");
    assert!(e.to_string().contains("column `small`"), "{e}");
}

#[tokio::test]
async fn a_small_memory_budget_flushes_files_early_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = SilverCatalog::open_local(dir.path())
        .await
        .expect("catalog");
    let (schema, batches) = iot_output(4000, 3);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let table = catalog
        .ensure_table("iot_events", &schema, Some("ts"))
        .await
        .expect("table");
    let slices: Vec<_> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows())
                .step_by(500)
                .map(move |o| b.slice(o, 500.min(b.num_rows() - o)))
        })
        .collect();
    // A budget below one batch: every write closes the open files.
    let options = WriteOptions {
        flush_bytes: 1,
        ..WriteOptions::default()
    };
    let mut w = SilverAppend::start(&table, &options).await.expect("start");
    for s in &slices {
        w.write(s).await.expect("write");
    }
    assert_eq!(w.rows() as usize, rows);
    let done = w
        .commit(&catalog, &["bronze/one-big-file".to_string()], &[])
        .await
        .expect("commit");
    assert!(
        done.report.data_files >= slices.len(),
        "{} files for {} writes",
        done.report.data_files,
        slices.len()
    );
    assert_eq!(count_rows(&done.table).await, rows);
}
