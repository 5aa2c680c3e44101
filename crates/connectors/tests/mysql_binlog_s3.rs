//! `binlog_files: s3://…`: archived binlog files written by real MySQL / MariaDB servers, put
//! into the S3 server of `scripts/services.sh` (moto), read by the CDC source exactly as the
//! same files in a local folder are, and resumed from a saved position without fetching the
//! objects before it. Its own test binary: it sets the `AWS_*` environment the store reads.
//! Skips loudly without `STRATA_TEST_S3_ENDPOINT` unless `CI` is set (then it fails).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use strata_connectors::mysql_cdc::{CdcState, ChangeEvent, MysqlCdcConfig, MysqlCdcSource};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mysql-binlogs")
        .join(name)
}

async fn read_all(config: MysqlCdcConfig) -> (Vec<ChangeEvent>, Vec<CdcState>) {
    let mut src = MysqlCdcSource::open(config).await.unwrap();
    let (mut events, mut states) = (Vec::new(), Vec::new());
    while let Some(batch) = src.next_batch(Duration::from_millis(10)).await.unwrap() {
        events.extend(batch.events);
        if let Some(s) = batch.state {
            src.commit(&s).unwrap();
            states.push(s);
        }
    }
    (events, states)
}

fn rows(events: &[ChangeEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let j = e.to_json();
            format!("{} {} {}", j["op"], j["after"], j["source"]["pos"])
        })
        .collect()
}

#[tokio::test]
async fn binlog_objects_on_s3_read_like_a_local_folder_and_resume() {
    let endpoint = match std::env::var("STRATA_TEST_S3_ENDPOINT") {
        Ok(e) => e,
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but STRATA_TEST_S3_ENDPOINT is not: run scripts/services.sh up")
        }
        Err(_) => {
            eprintln!("SKIPPED: no S3 server (run scripts/services.sh up)");
            return;
        }
    };
    let bucket = std::env::var("STRATA_TEST_S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    // SAFETY: this test binary has this one test, which sets the environment before any thread
    // of its own reads it.
    unsafe {
        std::env::set_var("AWS_ENDPOINT", &endpoint);
        std::env::set_var("AWS_ALLOW_HTTP", "true");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    }
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_virtual_hosted_style_request(false)
            .build()
            .unwrap(),
    );
    let prefix = format!("binlogs-{}", std::process::id());
    // Numeric order (9 before 10), an index object that is not a binlog.
    let local = tempfile::tempdir().unwrap();
    for (name, from) in [
        ("binlog.000009", "mariadb-bin.000001"),
        ("binlog.000010", "vector.binlog"),
    ] {
        let bytes = std::fs::read(fixture(from)).unwrap();
        std::fs::write(local.path().join(name), &bytes).unwrap();
        store
            .put(
                &ObjectPath::from(format!("{prefix}/{name}")),
                PutPayload::from(bytes),
            )
            .await
            .unwrap();
    }
    store
        .put(
            &ObjectPath::from(format!("{prefix}/binlog.index")),
            PutPayload::from_static(b"./binlog.000009\n"),
        )
        .await
        .unwrap();

    let tables = vec![
        "toddy_test.outbox".into(),
        "dtb.foo".into(),
        "dtb.bar".into(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let config = |state: &str, files: String| {
        let mut c = MysqlCdcConfig::new("", tables.clone(), dir.path().join(state));
        c.binlog_files = Some(PathBuf::from(files));
        c.max_transaction_events = 1;
        c.max_batch_events = 1;
        c
    };
    let url = format!("s3://{bucket}/{prefix}/");
    let (from_s3, states) = read_all(config("s3.json", url.clone())).await;
    let (from_folder, _) = read_all(config("local.json", local.path().display().to_string())).await;
    assert_eq!(from_s3.len(), 12);
    assert_eq!(rows(&from_s3), rows(&from_folder));
    assert!(dir.path().join("s3.json.binlogs/binlog.000010").is_file());

    // Resume from a position inside the second file: objects before it are neither fetched
    // again nor kept (the first file's copy is removed), and a half-written copy left by an
    // interrupted run is removed too.
    let inside = states
        .iter()
        .find(|s| s.position.file == "binlog.000010" && s.position.part.is_some())
        .expect("a part position in the second file")
        .clone();
    let staging = dir.path().join("s3.json.binlogs");
    assert!(staging.join("binlog.000009").is_file());
    std::fs::copy(
        staging.join("binlog.000010"),
        staging.join("binlog.000011.staging"),
    )
    .unwrap();
    strata_connectors::mysql_cdc::StateFile::new(dir.path().join("s3.json"))
        .save(&inside)
        .unwrap();
    let (rest, _) = read_all(config("s3.json", url)).await;
    let handed: usize = from_s3
        .iter()
        .filter(|e| {
            inside
                .position
                .covers(&e.source.file, e.source.pos, e.source.row)
        })
        .count();
    assert_eq!(rows(&rest), rows(&from_s3[handed..]));
    assert!(
        !staging.join("binlog.000009").exists(),
        "a file before the position stayed"
    );
    assert!(
        !staging.join("binlog.000011.staging").exists(),
        "a half copy stayed"
    );
    assert!(staging.join("binlog.000010").is_file());
}
