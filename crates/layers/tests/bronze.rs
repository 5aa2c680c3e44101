//! Bronze on a real local lake (files on disk through object_store): append-only, retries
//! recognised, conflicts refused, paths validated, listing by date range, streaming read-back.

use std::sync::Arc;

use arrow::array::{AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use strata_layers::bronze::{BronzeDate, BronzeReader, BronzeWriter, PutOutcome};
use strata_layers::error::LayersError;
use strata_layers::lake::Lake;

fn date(s: &str) -> BronzeDate {
    BronzeDate::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

fn records(n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("{{\"i\":{i},\"tag\":\"{tag}\"}}"))
        .collect()
}

fn lake() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake = Lake::open(dir.path().to_str().expect("utf8 path")).expect("open lake");
    (dir, lake)
}

#[tokio::test]
async fn retried_write_is_recognised_and_a_conflict_is_refused() {
    let (dir, lake) = lake();
    let w = BronzeWriter::new(lake);
    let d = date("2026-11-20");
    let first = w
        .put_ndjson("iot", d, "p0-000000000000-000000000099", &records(100, "a"))
        .await
        .expect("put");
    assert!(
        matches!(&first, PutOutcome::Created { path, .. } if path == "bronze/source=iot/date=2026-11-20/p0-000000000000-000000000099.ndjson.zst"),
        "{first:?}"
    );
    let again = w
        .put_ndjson("iot", d, "p0-000000000000-000000000099", &records(100, "a"))
        .await
        .expect("retry");
    assert!(
        matches!(again, PutOutcome::AlreadyPresent { .. }),
        "{again:?}"
    );
    let other = w
        .put_ndjson("iot", d, "p0-000000000000-000000000099", &records(100, "b"))
        .await
        .expect_err("conflict");
    assert!(
        matches!(other, LayersError::BronzeConflict { .. }),
        "{other}"
    );
    // The first content is intact.
    let r = BronzeReader::new(Lake::open(dir.path().to_str().expect("utf8")).expect("lake"));
    let files = r.list("iot", None, None).await.expect("list");
    assert_eq!(files.len(), 1);
    let mut f = r.open(&files[0], 1000, usize::MAX, 0).await.expect("open");
    let b = f.next_batch().await.expect("read").expect("a batch");
    assert!(
        std::str::from_utf8(b.column(0).as_binary::<i32>().value(0))
            .expect("utf8")
            .contains("\"a\"")
    );
}

#[tokio::test]
async fn concurrent_writers_of_the_same_positions_have_exactly_one_winner() {
    let (_dir, lake) = lake();
    let w = Arc::new(BronzeWriter::new(lake));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            w.put_ndjson(
                "iot",
                date("2026-11-20"),
                "p1-000000000000-000000000009",
                &records(10, &format!("writer{i}")),
            )
            .await
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("join") {
            Ok(PutOutcome::Created { .. }) => created += 1,
            Err(LayersError::BronzeConflict { .. }) => conflicts += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, conflicts), (1, 15));
}

#[tokio::test]
async fn nothing_escapes_the_lake_root() {
    let (_dir, lake) = lake();
    let w = BronzeWriter::new(lake);
    let d = date("2026-11-20");
    for (source, stem) in [
        ("../etc", "x"),
        ("iot", "../../x"),
        ("iot/../../x", "x"),
        ("iot", "a/b"),
        ("io\nt", "x"),
        (".hidden", "x"),
    ] {
        let e = w
            .put_ndjson(source, d, stem, &records(1, "a"))
            .await
            .expect_err("refused");
        assert!(
            matches!(e, LayersError::BronzeName { .. }),
            "{source:?}/{stem:?}: {e}"
        );
    }
    assert!(BronzeDate::parse("2026-11-20/../..").is_err());
    let e = w
        .put_ndjson("iot", d, "x", &["a\nb"])
        .await
        .expect_err("newline");
    assert!(
        matches!(e, LayersError::RecordHasNewline { index: 0, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn lists_by_date_range_and_streams_back_every_line() {
    let (dir, lake) = lake();
    let w = BronzeWriter::new(lake.clone());
    for (d, n) in [("2026-11-19", 10), ("2026-11-20", 2500), ("2026-11-21", 7)] {
        w.put_ndjson("iot", date(d), "p0-a", &records(n, d))
            .await
            .expect("put");
    }
    w.put_ndjson("iot", date("2026-11-20"), "p0-b", &records(3, "b"))
        .await
        .expect("put");
    // A plain and a gzip file written by another tool in the same partition are read too.
    let part = dir.path().join("bronze/source=iot/date=2026-11-20");
    std::fs::write(part.join("z-plain.ndjson"), "{\"x\":1}\n{\"x\":2}\n").expect("write");
    let r = BronzeReader::new(lake);
    let files = r
        .list("iot", Some(date("2026-11-20")), Some(date("2026-11-21")))
        .await
        .expect("list");
    let names: Vec<&str> = files.iter().map(|f| f.relative.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "bronze/source=iot/date=2026-11-20/p0-a.ndjson.zst",
            "bronze/source=iot/date=2026-11-20/p0-b.ndjson.zst",
            "bronze/source=iot/date=2026-11-20/z-plain.ndjson",
            "bronze/source=iot/date=2026-11-21/p0-a.ndjson.zst",
        ]
    );
    let mut total = 0;
    let mut f = r.open(&files[0], 1000, usize::MAX, 0).await.expect("open");
    let mut last_line = 0;
    while let Some(b) = f.next_batch().await.expect("read") {
        assert!(b.num_rows() <= 1000);
        total += b.num_rows();
        let lines = b
            .column_by_name("_line")
            .expect("_line")
            .as_primitive::<UInt64Type>();
        last_line = lines.value(lines.len() - 1);
        assert_eq!(
            b.column_by_name("_file")
                .expect("_file")
                .as_string::<i32>()
                .value(0),
            files[0].relative
        );
    }
    assert_eq!((total, last_line), (2500, 2500));
    let mut plain = r.open(&files[2], 10, usize::MAX, 0).await.expect("open");
    assert_eq!(
        plain
            .next_batch()
            .await
            .expect("read")
            .expect("batch")
            .num_rows(),
        2
    );
    assert!(
        r.list("nope", None, None)
            .await
            .expect("empty list")
            .is_empty()
    );
}

#[tokio::test]
async fn a_truncated_object_is_a_clear_error_naming_it() {
    let (dir, lake) = lake();
    let w = BronzeWriter::new(lake.clone());
    w.put_ndjson("iot", date("2026-11-20"), "big", &records(50_000, "x"))
        .await
        .expect("put");
    let path = dir
        .path()
        .join("bronze/source=iot/date=2026-11-20/big.ndjson.zst");
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir
        .path()
        .join("bronze/source=iot/date=2026-11-20/cut.ndjson.zst");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let r = BronzeReader::new(lake);
    let files = r.list("iot", None, None).await.expect("list");
    let cut_file = files
        .iter()
        .find(|f| f.relative.ends_with("cut.ndjson.zst"))
        .expect("cut listed");
    let mut f = r.open(cut_file, 10_000, usize::MAX, 0).await.expect("open");
    let err = loop {
        match f.next_batch().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("truncation not detected"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            LayersError::Corrupt {
                compression: "zstd",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cut.ndjson.zst"), "{err}");
}

#[tokio::test]
async fn parquet_flavour_keeps_types_and_metadata() {
    let (dir, lake) = lake();
    let w = BronzeWriter::new(lake);
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])
        .expect("batch");
    let out = w
        .put_parquet(
            "postgres.shop.orders",
            date("2026-11-24"),
            "chunk-0000",
            &[batch],
            &[("strata.snapshot_time", "2026-11-24T10:00:00Z")],
        )
        .await
        .expect("put");
    assert!(matches!(out, PutOutcome::Created { .. }));
    let file = std::fs::File::open(
        dir.path()
            .join("bronze/source=postgres.shop.orders/date=2026-11-24/chunk-0000.parquet"),
    )
    .expect("open");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("parquet");
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .cloned()
        .unwrap_or_default();
    assert!(
        kv.iter().any(|k| k.key == "strata.snapshot_time"
            && k.value.as_deref() == Some("2026-11-24T10:00:00Z"))
    );
    assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
}

#[test]
fn unsupported_lake_urls_are_clear_errors() {
    let e = Lake::open("ftp://x/y").expect_err("ftp");
    assert!(e.to_string().contains("unsupported scheme"), "{e}");
    let e = Lake::open("s3://").expect_err("no bucket");
    assert!(e.to_string().contains("no bucket"), "{e}");
}

/// Reads every `_raw` value of one bronze file.
async fn raw_values(
    reader: &BronzeReader,
    file: &strata_layers::bronze::BronzeFile,
) -> Vec<Vec<u8>> {
    let mut f = reader.open(file, 2, usize::MAX, 0).await.expect("open");
    let mut out = Vec::new();
    while let Some(b) = f.next_batch().await.expect("read") {
        let raw = b.column(0).as_binary::<i32>();
        out.extend(raw.iter().map(|v| v.unwrap_or_default().to_vec()));
    }
    out
}

#[tokio::test]
async fn content_decides_the_format_and_crlf_is_one_line_ending() {
    let (_dir, lake) = lake();
    let text = b"{\"a\":1}\r\n{\"a\":2}\r\n\r\n{\"a\":\"x\ry\"}";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, text).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zst = zstd::encode_all(&text[..], 1).expect("zstd");
    let prefix = "bronze/source=kc/date=2026-11-20";
    for (name, bytes) in [
        ("a.json", text.to_vec()),
        ("b.jsonl", text.to_vec()),
        ("c.json.gz", gz.clone()),
        ("d-no-extension", zst),
        ("e.ndjson", gz),
    ] {
        lake.put_new(&format!("{prefix}/{name}"), bytes.into())
            .await
            .expect("put");
    }
    let r = BronzeReader::new(lake.clone());
    let files = r.list("kc", None, None).await.expect("list");
    assert_eq!(files.len(), 5);
    let want: Vec<Vec<u8>> = vec![
        b"{\"a\":1}".to_vec(),
        b"{\"a\":2}".to_vec(),
        b"".to_vec(),
        b"{\"a\":\"x\ry\"}".to_vec(),
    ];
    for f in &files {
        assert_eq!(raw_values(&r, f).await, want, "{}", f.relative);
    }
    // A binary object with a name that does not say NDJSON is refused, naming it.
    lake.put_new(&format!("{prefix}/f.bin"), vec![0u8, 1, 2, 3].into())
        .await
        .expect("put");
    let files = r.list("kc", None, None).await.expect("list");
    let bin = files
        .iter()
        .find(|f| f.relative.ends_with("f.bin"))
        .expect("f.bin");
    let err = r.open(bin, 10, usize::MAX, 0).await.expect_err("binary");
    assert!(
        matches!(&err, LayersError::NotLineFormat { path, .. } if path.ends_with("f.bin")),
        "{err}"
    );
}
