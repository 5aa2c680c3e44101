//! The same file gives the same rows and the same quarantine under `strata transform` (local
//! file reader) and `strata batch` (bronze reader): one NDJSON line decoder, CRLF handled one
//! way, content recognised whatever the name (`.json` as Kafka Connect's S3 sink writes), and a
//! `timestamp(ms)` output column stored by the silver writer. Also `strata validate FILE` on every
//! shipped pipeline against the input it declares, and sink type limits refused by validation.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow::array::{Array, AsArray, RecordBatch};
use strata_layers::silver::SilverCatalog;

fn strata(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.current_dir(dir);
    c
}

fn ok(c: &mut Command) -> String {
    let out = c.output().expect("run strata");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn find(dir: &Path, name: &str) -> PathBuf {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            let found = find(&p, name);
            if found.exists() {
                return found;
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return p;
        }
    }
    dir.join("__missing__")
}

fn parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024)
        .expect("parquet")
        .map(|b| b.expect("batch"))
        .collect()
}

fn table(dir: &Path, name: &str) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let catalog = SilverCatalog::open_local(&dir.join("lake/catalog"))
            .await
            .expect("catalog");
        catalog.read_table(name).await.expect("read")
    })
}

/// `(id, ts in µs)` of the rows, and the `_raw` of the quarantine.
fn rows_and_raw(
    rows: &[RecordBatch],
    quarantine: &[RecordBatch],
) -> (BTreeSet<(i64, i64)>, BTreeSet<Vec<u8>>) {
    let mut got = BTreeSet::new();
    for b in rows {
        let id = b
            .column_by_name("id")
            .expect("id")
            .as_primitive::<arrow::datatypes::Int64Type>();
        let ts = arrow::compute::cast(
            b.column_by_name("ts").expect("ts"),
            &arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )
        .expect("cast");
        let ts = ts.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            got.insert((id.value(i), ts.value(i)));
        }
    }
    let mut raw = BTreeSet::new();
    for b in quarantine {
        let r = arrow::compute::cast(
            b.column_by_name("_raw").expect("_raw"),
            &arrow::datatypes::DataType::Binary,
        )
        .expect("cast _raw");
        let r = r.as_binary::<i32>();
        for i in 0..r.len() {
            raw.insert(r.value(i).to_vec());
        }
    }
    (got, raw)
}

const SPEC: &str = "name: crlf\nsteps:\n  - type: parse_json\n    schema: {id: int64 not null, ts: timestamp(ms) not null}\noutput:\n  event_time: ts\n  partition_by: [\"day(ts)\"]\n  schema: {id: int64 not null, ts: timestamp(ms) not null}\n";

#[test]
fn crlf_json_file_gives_the_same_rows_and_quarantine_under_transform_and_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("crlf.yaml"), SPEC).expect("spec");
    let text = "{\"id\":1,\"ts\":\"2025-11-20T10:00:00.123Z\"}\r\n\
                {\"id\":2,\"ts\":1763632800456}\r\n\
                {\"id\":3,\"ts\":\r\n\
                \r\n\
                not json\r\n\
                {\"id\":4,\"ts\":\"2025-11-21T00:00:00Z\"}";
    std::fs::write(d.join("crlf.json"), text).expect("input");
    ok(strata(d).args([
        "transform",
        "--input",
        "crlf.json",
        "--out",
        "t",
        "--pipeline",
        "crlf.yaml",
    ]));
    let from_transform = rows_and_raw(
        &parquet(&find(&d.join("t"), "crlf.parquet")),
        &parquet(&find(&d.join("t"), "crlf_quarantine.parquet")),
    );
    // The same bytes dropped into bronze as another tool would (name and all).
    let bronze = d.join("lake/bronze/source=kc/date=2025-11-20");
    std::fs::create_dir_all(&bronze).expect("bronze dir");
    std::fs::write(bronze.join("kc-part-0001.json"), text).expect("bronze file");
    ok(strata(d).args([
        "batch",
        "--lake",
        "lake",
        "--source",
        "kc",
        "--pipeline",
        "crlf.yaml",
    ]));
    let from_batch = rows_and_raw(&table(d, "crlf"), &table(d, "crlf_quarantine"));
    assert_eq!(from_transform.0.len(), 3, "{from_transform:?}");
    assert_eq!(from_transform.1.len(), 3, "{from_transform:?}");
    assert!(
        from_transform.1.contains(b"not json".as_slice()),
        "no \\r kept: {from_transform:?}"
    );
    assert_eq!(from_transform, from_batch);
}

#[test]
fn every_shipped_pipeline_validates_as_a_plain_argument() {
    let pipelines = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "iot",
        "pipefy",
        "card_phases",
        "x_posts",
        "mysql_orders_cdc",
        "orders",
        "pg_customers",
    ] {
        let out = ok(strata(dir.path())
            .arg("validate")
            .arg(pipelines.join(format!("{name}.yaml"))));
        assert!(out.contains("is valid"), "{name}: {out}");
    }
}

#[test]
fn an_output_type_silver_cannot_store_is_refused_by_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("ns.yaml");
    std::fs::write(
        &spec,
        SPEC.replace(
            "ts: timestamp(ms) not null}\n",
            "ts: timestamp(ns) not null}\n",
        ),
    )
    .expect("spec");
    let out = strata(dir.path())
        .arg("validate")
        .arg(&spec)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`ts`") && err.contains("timestamp(ns)"),
        "{err}"
    );
}
