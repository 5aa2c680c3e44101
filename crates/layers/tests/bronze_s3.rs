//! Bronze against a real S3-compatible server (moto, started by `scripts/services.sh up`):
//! create-only puts through `If-None-Match`, a race of 16 writers with exactly one winner,
//! listing and streaming read-back over HTTP.
//!
//! Outside CI, without the server, the tests say so loudly and pass; with `CI` set they fail.

use std::sync::Arc;

use strata_layers::bronze::{BronzeDate, BronzeReader, BronzeWriter, PutOutcome};
use strata_layers::error::LayersError;
use strata_layers::lake::Lake;

fn s3_lake(test: &str) -> Option<Lake> {
    let Ok(endpoint) = std::env::var("STRATA_TEST_S3_ENDPOINT") else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "CI is set but STRATA_TEST_S3_ENDPOINT is not: run `scripts/services.sh up` and source its env"
            );
        }
        eprintln!(
            "SKIPPED {test}: no S3 server (run `scripts/services.sh up` and `source $(scripts/services.sh env)`)"
        );
        return None;
    };
    let bucket = std::env::var("STRATA_TEST_S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let unique = format!(
        "{test}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let url = format!("s3://{bucket}/{unique}");
    let options = [
        ("aws_endpoint", endpoint),
        ("aws_allow_http", "true".to_string()),
        ("aws_region", "us-east-1".to_string()),
        ("aws_access_key_id", "test".to_string()),
        ("aws_secret_access_key", "test".to_string()),
    ];
    Some(Lake::open_with_options(&url, options).unwrap_or_else(|e| panic!("{e}")))
}

fn records(n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("{{\"i\":{i},\"tag\":\"{tag}\"}}"))
        .collect()
}

fn date() -> BronzeDate {
    BronzeDate::parse("2026-11-24").unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn s3_put_is_create_only_and_retries_are_recognised() {
    let Some(lake) = s3_lake("create_only") else {
        return;
    };
    let w = BronzeWriter::new(lake.clone());
    let first = w
        .put_ndjson("iot", date(), "p0-0-99", &records(100, "a"))
        .await
        .expect("put");
    assert!(matches!(first, PutOutcome::Created { .. }), "{first:?}");
    let again = w
        .put_ndjson("iot", date(), "p0-0-99", &records(100, "a"))
        .await
        .expect("retry");
    assert!(
        matches!(again, PutOutcome::AlreadyPresent { .. }),
        "{again:?}"
    );
    let other = w
        .put_ndjson("iot", date(), "p0-0-99", &records(100, "b"))
        .await
        .expect_err("conflict");
    assert!(
        matches!(other, LayersError::BronzeConflict { .. }),
        "{other}"
    );

    let r = BronzeReader::new(lake);
    let files = r.list("iot", None, None).await.expect("list");
    assert_eq!(files.len(), 1);
    let mut f = r.open(&files[0], 30, usize::MAX, 0).await.expect("open");
    let mut n = 0;
    while let Some(b) = f.next_batch().await.expect("read") {
        n += b.num_rows();
    }
    assert_eq!(n, 100);
}

#[tokio::test]
async fn s3_race_of_16_writers_has_exactly_one_winner() {
    let Some(lake) = s3_lake("race") else { return };
    let w = Arc::new(BronzeWriter::new(lake));
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let w = w.clone();
            tokio::spawn(async move {
                w.put_ndjson("iot", date(), "p9-0-9", &records(10, &format!("w{i}")))
                    .await
            })
        })
        .collect();
    let (mut created, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.expect("join") {
            Ok(PutOutcome::Created { .. }) => created += 1,
            Err(LayersError::BronzeConflict { .. }) => conflicts += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, conflicts), (1, 15));
}
