//! `strata cdc mysql --binlog-files`: archived binlog files written by MariaDB 10.5 and MySQL 9.0
//! (the connectors crate's fixtures) → the same Debezium topics as the live reader, against the
//! real broker of `scripts/services.sh`; a rerun continues from the state file, and a run that
//! lost its state file finds everything already in Kafka (the read-back) and sends nothing twice.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../connectors/tests/fixtures/mysql-binlogs")
        .join(name)
}

fn run(config: &Path, files: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["cdc", "mysql", "--config"])
        .arg(config)
        .arg("--binlog-files")
        .arg(files)
        .env(
            "STRATA_LINEAGE",
            config
                .with_file_name("lineage.ndjson")
                .display()
                .to_string(),
        )
        .env(
            "STRATA_METRICS_FILE",
            config.with_file_name("metrics.prom").display().to_string(),
        )
        .output()
        .expect("strata runs");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_binlog_files_become_debezium_topics_exactly_once() {
    let Some(brokers) = support::broker("cdc_binlog_files") else {
        return;
    };
    let prefix = support::unique("binlogs");
    let topics = [
        format!("{prefix}.dtb.foo"),
        format!("{prefix}.dtb.bar"),
        format!("{prefix}.toddy_test.outbox"),
    ];
    let names: Vec<(&str, i32)> = topics.iter().map(|t| (t.as_str(), 1)).collect();
    support::create_topics(&brokers, &names).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let files = dir.path().join("binlogs");
    std::fs::create_dir(&files).expect("dir");
    std::fs::copy(fixture("mariadb-bin.000001"), files.join("binlog.000009")).expect("copy");
    std::fs::copy(fixture("vector.binlog"), files.join("binlog.000010")).expect("copy");
    let state = dir.path().join("state.json");
    let config = dir.path().join("cdc.yaml");
    // No `url`: the files need no server.
    std::fs::write(
        &config,
        format!(
            "tables: [dtb.foo, dtb.bar, toddy_test.outbox]\nstate_file: {}\n\
             topic_prefix: {prefix}\nkafka_brokers: {brokers}\nmax_batch_events: 3\n",
            state.display()
        ),
    )
    .expect("config");

    let first = run(&config, &files);
    assert!(first.contains("12 events"), "{first}");
    // CDC lag comes from the binlog events' own times: the fixtures were written long ago.
    let metrics = std::fs::read_to_string(dir.path().join("metrics.prom")).expect("metrics");
    let lag: f64 = metrics
        .lines()
        .find(|l| l.starts_with("strata_source_lag_seconds{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no lag in\n{metrics}"));
    assert!(lag > 30.0 * 86_400.0, "lag {lag} s");
    assert!(
        metrics.contains(&format!(
            "strata_pipeline_records_read_total{{pipeline=\"cdc.{prefix}\"}}"
        )),
        "{metrics}"
    );
    // The run's OpenLineage events: each table of the files in, its topic out.
    let lineage = std::fs::read_to_string(dir.path().join("lineage.ndjson")).expect("lineage");
    let events: Vec<serde_json::Value> = lineage
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    let states: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["START", "COMPLETE"], "{lineage}");
    assert_eq!(events[1]["job"]["name"], format!("cdc.{prefix}"));
    let names = |side: &str| -> Vec<String> {
        events[1][side]
            .as_array()
            .expect("datasets")
            .iter()
            .map(|d| d["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names("outputs"), topics.to_vec());
    let inputs = names("inputs");
    assert!(
        inputs[0].ends_with("binlogs/dtb.foo") && inputs[2].ends_with("binlogs/toddy_test.outbox"),
        "{inputs:?}"
    );
    let read = |t: &str| {
        let brokers = brokers.clone();
        let t = t.to_string();
        async move { support::read_all(&brokers, &t, 1, Duration::from_secs(3)).await }
    };
    let bar = read(&topics[1]).await;
    // 5 inserts, 1 delete and its tombstone.
    assert_eq!(bar.len(), 7);
    let deleted = bar
        .iter()
        .position(|r| r.value.is_some() && r.json()["op"] == "d");
    let d = deleted.expect("a delete");
    assert!(
        bar[d + 1].value.is_none(),
        "a tombstone right after the delete"
    );
    assert_eq!(bar[d].key, bar[d + 1].key);
    let inserted = bar[1].json();
    assert_eq!(
        inserted["after"],
        json!({"id": 2, "vector_column": [1.01, -1.01], "foo": "bar",
               "vector_column2": [42.0, 43.0, 44.0, 45.0]})
    );
    assert_eq!(inserted["source"]["file"], "binlog.000010");
    let outbox = read(&topics[2]).await;
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[1].json()["source"]["gtid"], "0-1-2");
    assert_eq!(read(&topics[0]).await.len(), 4);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).expect("state")).expect("json");
    assert_eq!(saved["position"]["file"], "binlog.000010");
    assert_eq!(saved["position"]["pos"], 3443, "after the last commit");

    // A rerun continues after the saved position: nothing new.
    let again = run(&config, &files);
    assert!(again.contains("0 events"), "{again}");
    // Without the state file the files are read again, and the read-back finds every event
    // already in Kafka.
    std::fs::remove_file(&state).expect("rm");
    let lost = run(&config, &files);
    assert!(lost.contains("12 already in Kafka skipped"), "{lost}");
    assert_eq!(read(&topics[1]).await.len(), 7, "nothing sent twice");
    assert_eq!(read(&topics[2]).await.len(), 2);
}
