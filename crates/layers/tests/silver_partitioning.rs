//! `output.partition_by` is honoured: every transform lays files out by its values, a changed
//! declaration evolves the spec of an existing table (old files stay readable, new ones use the
//! new spec), and a keyed rewrite and compaction move old files to the current spec.

mod common;
use common::iot_output;

use std::collections::HashSet;

use strata_layers::lake::Lake;
use strata_layers::silver::{
    CatalogConfig, CoverageIndex, LiveFiles, MaintainOptions, SilverAppend, SilverCatalog,
    WriteOptions, maintain,
};

async fn append(
    catalog: &SilverCatalog,
    table: &strata_layers::silver::IcebergTable,
    batches: &[arrow::array::RecordBatch],
    covers: &str,
) {
    let mut w = SilverAppend::start(table, &WriteOptions::default())
        .await
        .unwrap();
    for b in batches {
        w.write(b).await.unwrap();
    }
    w.commit_indexed(
        catalog,
        &[covers.to_string()],
        &[],
        &mut CoverageIndex::default(),
    )
    .await
    .unwrap();
}

fn transforms(table: &strata_layers::silver::IcebergTable) -> Vec<String> {
    table
        .metadata()
        .default_partition_spec()
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name, f.transform))
        .collect()
}

#[tokio::test]
async fn each_transform_lays_out_files_and_a_new_declaration_evolves_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let lake_url = dir.path().join("lake").display().to_string();
    let catalog = SilverCatalog::open(&CatalogConfig::for_lake(&lake_url, None).unwrap())
        .await
        .unwrap();
    let (schema, batches) = iot_output(2_000, 8);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    for (i, partition_by) in [
        vec!["hour(ts)"],
        vec!["bucket(4, device_id)"],
        vec!["truncate(2, location_site)"],
        vec!["location_site"],
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("t{i}");
        let declared: Vec<String> = partition_by.iter().map(|s| s.to_string()).collect();
        let table = catalog
            .ensure_table_partitioned(&name, &schema, &declared)
            .await
            .unwrap();
        assert_eq!(transforms(&table).len(), 1, "{declared:?}");
        append(&catalog, &table, &batches, "in").await;
        let table = catalog.load(&name).await.unwrap();
        let live = LiveFiles::read(&table).await.unwrap();
        let partitions: HashSet<String> = live
            .data_files()
            .map(|e| format!("{:?}", e.data_file().partition()))
            .collect();
        // The generated events span less than an hour: one hour partition, several of the rest.
        let want = if i == 0 { 1 } else { 2 };
        assert!(partitions.len() >= want, "{declared:?}: {partitions:?}");
        assert!(
            !partitions.iter().any(|p| p.contains("None")),
            "{partitions:?}"
        );
        let read: usize = catalog
            .read_table(&name)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(read, rows, "{declared:?}");
    }
    let bucketed = catalog.load("t1").await.unwrap();
    assert_eq!(transforms(&bucketed), vec!["device_id_bucket_4:bucket[4]"]);

    // Spec evolution: day(ts) → day(ts) + bucket(4, device_id) on a table with data.
    let day = vec!["day(ts)".to_string()];
    let table = catalog
        .ensure_table_partitioned("evolving", &schema, &day)
        .await
        .unwrap();
    append(&catalog, &table, &batches, "before").await;
    let both = vec!["day(ts)".to_string(), "bucket(4, device_id)".to_string()];
    let table = catalog
        .ensure_table_partitioned("evolving", &schema, &both)
        .await
        .unwrap();
    assert_eq!(table.metadata().default_partition_spec_id(), 1);
    assert_eq!(
        transforms(&table),
        vec!["ts_day:day", "device_id_bucket_4:bucket[4]"]
    );
    // Declaring the same again changes nothing.
    let again = catalog
        .ensure_table_partitioned("evolving", &schema, &both)
        .await
        .unwrap();
    assert_eq!(again.metadata().partition_specs_iter().count(), 2);
    append(&catalog, &again, &batches, "after").await;
    let read: usize = catalog
        .read_table("evolving")
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(read, 2 * rows);
    let live = LiveFiles::read(&catalog.load("evolving").await.unwrap())
        .await
        .unwrap();
    let specs: HashSet<i32> = live.data_files_with_spec().map(|(s, _)| s).collect();
    assert_eq!(specs, HashSet::from([0, 1]), "old files keep their spec");

    // Compaction rewrites the old-spec files into the current spec.
    let lake = Lake::open(&lake_url).unwrap();
    let options = MaintainOptions {
        grace_ms: 0,
        keep_snapshots: 1,
        ..MaintainOptions::default()
    };
    maintain(&catalog, &lake, "evolving", &options)
        .await
        .unwrap();
    let table = catalog.load("evolving").await.unwrap();
    let live = LiveFiles::read(&table).await.unwrap();
    let specs: HashSet<i32> = live.data_files_with_spec().map(|(s, _)| s).collect();
    assert_eq!(specs, HashSet::from([1]));
    let read: usize = catalog
        .read_table("evolving")
        .await
        .unwrap()
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(read, 2 * rows);
}

#[tokio::test]
async fn an_undeclared_column_or_transform_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = SilverCatalog::open_local(dir.path()).await.unwrap();
    let (schema, _) = iot_output(10, 1);
    for (declared, says) in [
        ("bucket(4, nope)", "`nope` is not a column"),
        ("week(ts)", "unknown transform"),
    ] {
        let e = catalog
            .ensure_table_partitioned("bad", &schema, &[declared.to_string()])
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{declared}: {e}");
    }
}
