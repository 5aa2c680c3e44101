//! The `encrypt` mask end to end, as a user runs it: generated IoT events through bronze and
//! `strata batch` into silver with `owner_email` encrypted, then a key rotation and more data.
//! - No Parquet file of the silver table, no log line (JSON, driver debug lines on) and no
//!   Avro datum written from the same rows holds a plaintext address.
//! - Equal addresses are equal tokens: `count(DISTINCT owner_email)` is the plaintext's.
//! - `strata decrypt` gives back exactly the input's addresses with both keys, and names the
//!   missing key when only the new one is given.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use base64::Engine;

const KEY_1: [u8; 32] = [11; 32];
const KEY_2: [u8; 32] = [22; 32];

fn strata(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.current_dir(dir)
        .env(
            "TEST_KEY_1",
            base64::engine::general_purpose::STANDARD.encode(KEY_1),
        )
        .env(
            "TEST_KEY_2",
            base64::engine::general_purpose::STANDARD.encode(KEY_2),
        );
    c
}

fn run(c: &mut Command) -> (String, String) {
    let out = c.output().expect("run strata");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// `pipelines/iot.yaml` with `owner_email` encrypted under `key_id` (its key in `key_env`).
fn pipeline(dir: &Path, key_id: &str, key_env: &str) -> std::path::PathBuf {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot.yaml"
    ))
    .expect("iot.yaml");
    let text = shipped.replace(
        "owner_email: { method: sha256 }",
        &format!("owner_email: {{ method: encrypt, key_env: {key_env}, key_id: {key_id} }}"),
    );
    assert_ne!(text, shipped, "the shipped pipeline masks owner_email");
    let path = dir.join(format!("iot-{key_id}.yaml"));
    std::fs::write(&path, text).expect("pipeline");
    path
}

/// Generated events put into bronze on `date`; returns the plaintext addresses.
fn land(dir: &Path, date: &str, seed: &str) -> BTreeSet<String> {
    let file = format!("in-{date}.ndjson");
    run(strata(dir).args([
        "generate",
        "iot",
        "--events",
        "3000",
        "--seed",
        seed,
        "--malformed",
        "0",
        "--invalid",
        "0",
        "--out",
        &file,
    ]));
    run(strata(dir).args([
        "bronze", "put", "--lake", "lake", "--source", "iot", "--date", date, "--input", &file,
    ]));
    std::fs::read_to_string(dir.join(&file))
        .expect("input")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["owner_email"].as_str().map(str::to_string))
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn encrypted_columns_never_show_plaintext_and_decrypt_across_a_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let first = land(d, "2025-11-20", "1");
    assert!(
        first.iter().all(|e| e.ends_with("@example.com")),
        "{first:?}"
    );
    let batch = |pipeline: &Path| {
        let mut c = strata(d);
        c.env("STRATA_LOG", "debug")
            .args([
                "--log-format",
                "json",
                "batch",
                "--lake",
                "lake",
                "--source",
                "iot",
            ])
            .arg("--pipeline")
            .arg(pipeline);
        run(&mut c)
    };
    let (out1, log1) = batch(&pipeline(d, "k1", "TEST_KEY_1"));

    // Equal addresses, equal tokens: the distinct count survives encryption.
    let (distinct, _) = run(strata(d).args([
        "sql",
        "--lake",
        "lake",
        "SELECT count(DISTINCT owner_email) AS n FROM iot_events",
    ]));
    assert!(
        distinct.contains(&format!("| {} ", first.len())),
        "{distinct} vs {}",
        first.len()
    );

    // Rotation: new data under k2.
    let second = land(d, "2025-11-21", "2");
    let (out2, log2) = batch(&pipeline(d, "k2", "TEST_KEY_2"));

    // Nothing plaintext in the table's files or in any log line.
    let mut files = Vec::new();
    files_under(
        &d.join("lake/catalog/warehouse/silver/iot_events"),
        &mut files,
    );
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "parquet"))
    );
    for f in &files {
        let bytes = std::fs::read(f).expect("file");
        assert!(
            !bytes.windows(12).any(|w| w == b"@example.com"),
            "plaintext in {}",
            f.display()
        );
    }
    for text in [&out1, &log1, &out2, &log2] {
        assert!(
            !text.contains("@example.com"),
            "plaintext in the output or logs"
        );
    }

    // Avro, as `stream avro` encodes rows: the silver rows' datums hold tokens only.
    let rows = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let catalog = strata_layers::silver::SilverCatalog::open_local(&d.join("lake/catalog"))
                .await
                .expect("catalog");
            catalog.read_table("iot_events").await.expect("read")
        });
    // The data columns, as `stream avro` writes them (silver's bronze lineage columns are
    // run-end encoded and have no Avro form).
    let data: Vec<usize> = (0..rows[0].num_columns())
        .filter(|i| !rows[0].schema().field(*i).name().starts_with('_'))
        .collect();
    let rows: Vec<arrow::array::RecordBatch> = rows
        .iter()
        .map(|b| b.project(&data).expect("project"))
        .collect();
    let schema = rows[0].schema();
    let avro = strata_connectors::avro::arrow_to_avro(&schema, "iot_events", None).expect("avro");
    let encoder = strata_connectors::avro::AvroEncoder::new(schema.clone(), avro, 1);
    let mut datums = 0;
    for batch in &rows {
        for datum in encoder.encode_batch(batch).expect("encode") {
            assert!(
                !datum.windows(12).any(|w| w == b"@example.com"),
                "plaintext in Avro"
            );
            datums += 1;
        }
    }
    assert!(datums > 0);

    // Only the new key: the old data's key is named, nothing is passed through.
    let query = "SELECT DISTINCT owner_email FROM iot_events";
    let only_new = strata(d)
        .args([
            "decrypt",
            query,
            "--lake",
            "lake",
            "--key",
            "k2=env:TEST_KEY_2",
        ])
        .output()
        .expect("decrypt");
    assert!(!only_new.status.success());
    let err = String::from_utf8_lossy(&only_new.stderr);
    assert!(err.contains("key `k1`, which was not given"), "{err}");
    assert!(!err.contains("@example.com"), "{err}");

    // Both keys: exactly the addresses that went in.
    let (csv, _) = run(strata(d).args([
        "decrypt",
        query,
        "--lake",
        "lake",
        "--key",
        "k1=env:TEST_KEY_1",
        "--key",
        "k2=env:TEST_KEY_2",
        "--format",
        "csv",
    ]));
    let got: BTreeSet<String> = csv.lines().skip(1).map(str::to_string).collect();
    let want: BTreeSet<String> = first.union(&second).cloned().collect();
    assert_eq!(got, want);
}
