//! `strata bronze put` + `strata batch` as a user runs them, including a process that dies
//! (abort, like kill -9) after some commits: the re-run leaves every row in silver exactly once.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use strata_layers::silver::SilverCatalog;

const PIPELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/iot.yaml");

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

fn read(dir: &Path, table: &str) -> Vec<arrow::array::RecordBatch> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let catalog = SilverCatalog::open_local(&dir.join("lake/catalog"))
            .await
            .expect("catalog");
        catalog.read_table(table).await.expect("read")
    })
}

/// Generates IoT events with 3% duplicates, loads them into bronze in objects of
/// `lines_per_file`, and returns the uninterrupted `strata transform` (rows, quarantined).
fn prepare(d: &Path, events: &str, lines_per_file: &str) -> (usize, usize) {
    ok(strata(d).args([
        "generate",
        "iot",
        "--events",
        events,
        "--duplicates",
        "0.03",
        "--out",
        "in.ndjson.zst",
    ]));
    put_bronze(d, "lake", lines_per_file);
    let expected = ok(strata(d).args([
        "transform",
        "--json",
        "--input",
        "in.ndjson.zst",
        "--out",
        "t",
        "--pipeline",
        PIPELINE,
    ]));
    let expected: serde_json::Value = serde_json::from_str(&expected).expect("json");
    let count = |k: &str| expected["metrics"][k].as_u64().unwrap_or(0) as usize;
    (count("rows_out"), count("quarantined"))
}

/// `in.ndjson.zst` into the bronze of `lake`, cut into files of `lines_per_file` lines.
fn put_bronze(d: &Path, lake: &str, lines_per_file: &str) {
    ok(strata(d).args([
        "bronze",
        "put",
        "--lake",
        lake,
        "--source",
        "iot",
        "--date",
        "2025-11-20",
        "--input",
        "in.ndjson.zst",
        "--lines-per-file",
        lines_per_file,
    ]));
}

/// Asserts no (device_id, seq) appears twice and returns the row count.
fn each_key_once(rows: &[arrow::array::RecordBatch]) -> usize {
    let mut keys = HashSet::new();
    for b in rows {
        let ids = b
            .column_by_name("device_id")
            .expect("device_id")
            .as_string::<i32>();
        let seqs = b
            .column_by_name("seq")
            .expect("seq")
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert!(
                keys.insert((ids.value(i).to_string(), seqs.value(i))),
                "duplicate row in silver"
            );
        }
    }
    keys.len()
}

#[test]
fn crash_mid_run_then_rerun_gives_every_row_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (want_rows, want_quarantined) = prepare(d, "20000", "2500");

    for crash_after in ["2", "3"] {
        let out = strata(d)
            .args([
                "batch",
                "--lake",
                "lake",
                "--source",
                "iot",
                "--pipeline",
                PIPELINE,
                "--commit-files",
                "1",
            ])
            .env("STRATA_TEST_CRASH_AFTER_COMMITS", crash_after)
            .output()
            .expect("run");
        assert!(
            !out.status.success(),
            "the crash hook must kill the process"
        );
    }
    let last = ok(strata(d).args([
        "batch",
        "--lake",
        "lake",
        "--source",
        "iot",
        "--pipeline",
        PIPELINE,
    ]));
    assert!(last.contains("5 already committed, 3 to process"), "{last}");

    assert_eq!(
        each_key_once(&read(d, "iot_events")),
        want_rows,
        "silver equals the uninterrupted transform"
    );
    let q: usize = read(d, "iot_events_quarantine")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(q, want_quarantined);

    let again = ok(strata(d).args([
        "batch",
        "--lake",
        "lake",
        "--source",
        "iot",
        "--pipeline",
        PIPELINE,
    ]));
    assert!(again.contains("0 to process"), "{again}");
    let full = ok(strata(d).args([
        "batch",
        "--lake",
        "lake",
        "--source",
        "iot",
        "--pipeline",
        PIPELINE,
        "--full-refresh",
    ]));
    assert!(full.contains("8 to process"), "{full}");
    assert_eq!(
        read(d, "iot_events")
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        want_rows
    );
}

/// Several bronze files per commit (`--commit-files 3`): a crash after the first commit and a
/// re-run still give every row exactly once, and each commit lists every file it covers.
#[test]
fn several_files_per_commit_stay_exactly_once_across_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (want_rows, want_quarantined) = prepare(d, "20000", "2500");
    let batch = |extra: &[&str]| {
        let mut c = strata(d);
        c.args([
            "batch",
            "--lake",
            "lake",
            "--source",
            "iot",
            "--pipeline",
            PIPELINE,
        ])
        .args(["--commit-files", "3"])
        .args(extra);
        c
    };
    let out = batch(&[])
        .env("STRATA_TEST_CRASH_AFTER_COMMITS", "1")
        .output()
        .expect("run");
    assert!(
        !out.status.success(),
        "the crash hook must kill the process"
    );
    let last = ok(&mut batch(&[]));
    assert!(last.contains("3 already committed, 5 to process"), "{last}");
    assert_eq!(each_key_once(&read(d, "iot_events")), want_rows);
    let q: usize = read(d, "iot_events_quarantine")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(q, want_quarantined);
    // 8 files in commits of 3: the re-run made two (3 + 2 files).
    assert!(
        last.contains("[3/5]") && last.contains("[5/5]") && !last.contains("[4/5]"),
        "{last}"
    );
}

/// Many small bronze files share commits, bounded by records (`--commit-rows`): a crash after
/// two commits and a re-run still give every row exactly once, each commit covering whole files;
/// with the defaults, 20 small files are one commit.
#[test]
fn small_files_share_commits_by_rows_and_stay_exactly_once_across_a_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (want_rows, want_quarantined) = prepare(d, "20000", "1000");
    let batch = |lake: &str, extra: &[&str]| {
        let mut c = strata(d);
        c.args([
            "batch",
            "--lake",
            lake,
            "--source",
            "iot",
            "--pipeline",
            PIPELINE,
        ])
        .args(extra);
        c
    };
    let out = batch("lake", &["--commit-rows", "3500"])
        .env("STRATA_TEST_CRASH_AFTER_COMMITS", "2")
        .output()
        .expect("run");
    assert!(
        !out.status.success(),
        "the crash hook must kill the process"
    );
    let last = ok(&mut batch("lake", &["--commit-rows", "3500"]));
    // 20 files of 1,000 lines, commits at the file that reaches 3,500 records: 4 files each.
    assert!(
        last.contains("8 already committed, 12 to process"),
        "{last}"
    );
    assert!(
        last.contains("[4/12]") && last.contains("[8/12]") && last.contains("[12/12]"),
        "{last}"
    );
    assert!(
        !last.contains("[1/12]") && !last.contains("[5/12]"),
        "{last}"
    );
    assert_eq!(each_key_once(&read(d, "iot_events")), want_rows);
    let q: usize = read(d, "iot_events_quarantine")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(q, want_quarantined);

    // Defaults: the 20 files are well under a million records, so one commit covers them all.
    put_bronze(d, "lake2", "1000");
    let copy = ok(&mut batch("lake2", &[]));
    assert!(
        copy.contains("[20/20]") && !copy.contains("[19/20]"),
        "{copy}"
    );
}

#[test]
fn demo_runs_every_source_to_silver_and_gold_without_servers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = ok(strata(dir.path()).args(["demo", "--out", "demo", "--events", "5000"]));
    for expected in [
        "bronze: 5000 records of `iot`",
        "batch `pipefy_card_events`",
        "batch `x_posts`",
        "batch `orders_changes`",
        "gold: model dim_customer → Published",
        "gold: model fact_orders → Published",
        "4/4 audits passed",
        "gold — IoT: readings per site and hour (gold.agg_device_hourly",
        "gold — Orders (MySQL CDC): current status of live orders (gold.fact_orders)",
        "bronze: 2000 rows of `postgres.crm.customers` (full load 1, Parquet)",
        "bronze: 1950 rows of `postgres.crm.customers` (full load 2, Parquet)",
        "batch `customers`",
        "2000 rows in",
        "gold — Orders × customers (PostgreSQL full load): live revenue per segment",
        "demo done in",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in\n{out}");
    }
    let lake = std::fs::read_dir(dir.path().join("demo"))
        .expect("demo dir")
        .next()
        .expect("a run")
        .expect("entry")
        .path();
    let q = ok(strata(dir.path()).arg("sql").arg("--lake").arg(&lake).arg(
        "SELECT count(*) AS n FROM x_posts WHERE created_at >= TIMESTAMP '2025-11-20T00:00:00Z'",
    ));
    assert!(q.contains("| n "), "{q}");
    // The second full load replaced the customers snapshot: its valid rows, and no others.
    let second = &out[out.find("(full load 2, Parquet)").expect("second load")..];
    let done = second
        .lines()
        .find(|l| l.starts_with("done in"))
        .expect("second customers batch");
    let kept: u64 = done
        .split(", ")
        .find_map(|part| part.strip_suffix(" out"))
        .and_then(|n| n.parse().ok())
        .expect("rows out");
    let q = ok(strata(dir.path())
        .arg("sql")
        .arg("--lake")
        .arg(&lake)
        .arg("SELECT count(*) AS n, count(DISTINCT customer_id) AS k FROM customers"));
    assert!(
        q.contains(&format!("| {kept} | {kept} |")),
        "customers after the second load should be its {kept} valid rows:\n{q}"
    );
    // The demo's gold models were published from those tables.
    let g = ok(strata(dir.path()).arg("sql").arg("--lake").arg(&lake).arg(
        "SELECT (SELECT count(*) FROM gold.dim_customer) AS dim, \
         (SELECT sum(orders) FROM gold.agg_revenue_by_segment) = (SELECT count(*) FROM orders) AS all_orders",
    ));
    assert!(g.contains(&format!("| {kept} | true ")), "{g}");
    demo_lineage_reaches_every_metric_from_its_sources(dir.path(), &lake);
}

/// The demo's lineage, as `strata catalog` builds it from the events the demo's jobs wrote and
/// the analytics API's serve config: every metric of `deploy/analytics/serve.yaml` is reached
/// from a generated source through bronze, silver and gold.
fn demo_lineage_reaches_every_metric_from_its_sources(dir: &Path, lake: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let serve = root.join("deploy/analytics/serve.yaml");
    let config = std::fs::read_to_string(&serve).expect("serve.yaml");
    let metrics: Vec<String> = serde_yaml_ng::from_str::<serde_json::Value>(&config).expect("yaml")
        ["metrics"]
        .as_object()
        .expect("metrics")
        .keys()
        .cloned()
        .collect();
    assert!(metrics.len() >= 4, "{metrics:?}");
    for metric in &metrics {
        let out = ok(strata(dir)
            .args([
                "catalog",
                "lineage",
                &format!("metric.{metric}"),
                "--upstream",
                "--json",
            ])
            .arg("--lake")
            .arg(lake)
            .arg("--lineage")
            .arg(lake.join("lineage/events.ndjson"))
            .arg("--models")
            .arg(lake.join("models"))
            .arg("--pipelines")
            .arg(root.join("pipelines"))
            .arg("--serve-config")
            .arg(&serve));
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        let names: Vec<&str> = v["upstream"]
            .as_array()
            .expect("upstream")
            .iter()
            .filter_map(|n| n["name"].as_str())
            .collect();
        for layer in ["gold.", "silver.", "bronze.", "demo://generator/"] {
            assert!(
                names.iter().any(|n| n.starts_with(layer)),
                "metric.{metric} is not reached from {layer}…: {names:?}"
            );
        }
    }
}

#[test]
fn kill_9_at_several_moments_then_rerun_gives_every_row_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (want_rows, _) = prepare(d, "40000", "2000");

    // SIGKILL (Child::kill) at moments spread over a run; whatever was committed stays, the rest
    // is redone by the next run.
    for delay_ms in [150u64, 400, 700, 1000, 1500] {
        let mut child = strata(d)
            .args([
                "batch",
                "--lake",
                "lake",
                "--source",
                "iot",
                "--pipeline",
                PIPELINE,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    ok(strata(d).args([
        "batch",
        "--lake",
        "lake",
        "--source",
        "iot",
        "--pipeline",
        PIPELINE,
    ]));
    assert_eq!(
        each_key_once(&read(d, "iot_events")),
        want_rows,
        "every row exactly once"
    );
}

/// The S3 settings of the test server for a child process, or `None` (skip) outside CI.
fn s3_env(test: &str) -> Option<Vec<(&'static str, String)>> {
    let Ok(endpoint) = std::env::var("STRATA_TEST_S3_ENDPOINT") else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but STRATA_TEST_S3_ENDPOINT is not: run `scripts/services.sh up`");
        }
        eprintln!("SKIPPED {test}: no S3 server (run `scripts/services.sh up`)");
        return None;
    };
    Some(vec![
        ("AWS_ENDPOINT", endpoint),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
    ])
}

#[test]
fn s3_lake_two_concurrent_writers_then_rerun_give_every_row_exactly_once() {
    let Some(env) = s3_env("s3_lake_two_concurrent_writers") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (want_rows, _) = prepare(d, "30000", "2000");
    let bucket = std::env::var("STRATA_TEST_S3_BUCKET").unwrap_or_else(|_| "strata-test".into());
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_nanos())
        .unwrap_or_default();
    let lake = format!("s3://{bucket}/batch-{unique}");
    let catalog = format!("sqlite:{}", d.join("catalog.db").display());
    ok(strata(d).envs(env.clone()).args([
        "bronze",
        "put",
        "--lake",
        &lake,
        "--source",
        "iot",
        "--date",
        "2025-11-20",
        "--input",
        "in.ndjson.zst",
        "--lines-per-file",
        "2000",
    ]));
    let batch = || {
        let mut c = strata(d);
        c.envs(env.clone()).args([
            "batch",
            "--lake",
            &lake,
            "--catalog",
            &catalog,
            "--source",
            "iot",
            "--pipeline",
            PIPELINE,
        ]);
        c
    };
    // Two writers at once on the same table: each bronze file is committed by one of them; a
    // writer that loses a file stops with an error saying so.
    let spawn = || {
        batch()
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let outs = [
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    ];
    assert!(
        outs.iter().any(|o| o.status.success()),
        "one writer finishes: {outs:?}"
    );
    for o in outs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("another writer committed"), "{err}");
    }
    let again = ok(&mut batch());
    assert!(again.contains("0 to process"), "{again}");
    let rows = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            let mut config = strata_layers::silver::CatalogConfig::for_lake(&lake, Some(&catalog))
                .expect("config");
            config.s3_options = env
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let catalog = SilverCatalog::open(&config).await.expect("catalog");
            catalog.read_table("iot_events").await.expect("read")
        });
    assert_eq!(each_key_once(&rows), want_rows);
}

/// `--log-format json` with the driver's debug lines on: every line is JSON, and each commit
/// and each batch is logged inside the run's `job` span (naming the pipeline) and its own
/// `commit` / `batch` span, so a log search can follow one job, one batch or one commit.
#[test]
fn json_logs_carry_job_batch_and_commit_spans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    prepare(d, "6000", "2000");
    let out = strata(d)
        .env("STRATA_LOG", "warn,strata_runtime=debug")
        .args(["--log-format", "json", "batch", "--lake", "lake"])
        .args(["--source", "iot", "--pipeline", PIPELINE])
        .args(["--commit-files", "1"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let spans = |line: &serde_json::Value| -> Vec<String> {
        line["spans"]
            .as_array()
            .map(|s| {
                s.iter()
                    .map(|s| s["name"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let with = |message: &str| -> Vec<&serde_json::Value> {
        lines
            .iter()
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    };
    let input = zstd::decode_all(std::fs::File::open(d.join("in.ndjson.zst")).expect("input"))
        .expect("zstd");
    // Every line is a record (a blank one is quarantined, not skipped).
    let records = input
        .strip_suffix(b"\n")
        .unwrap_or(&input)
        .split(|b| *b == b'\n')
        .count() as u64;
    let commits = with("committed");
    // One bronze file of 2,000 lines per commit.
    assert_eq!(commits.len() as u64, records.div_ceil(2000), "{stderr}");
    for (i, c) in commits.iter().enumerate() {
        assert_eq!(spans(c), ["job", "commit"], "{c}");
        assert_eq!(c["spans"][0]["pipeline"], "iot_events", "{c}");
        assert_eq!(c["span"]["number"], i as u64 + 1, "{c}");
    }
    let batches = with("batch processed");
    assert!(!batches.is_empty(), "{stderr}");
    for b in &batches {
        assert_eq!(spans(b), ["job", "batch"], "{b}");
    }
    let rows: u64 = batches
        .iter()
        .map(|b| b["fields"]["rows_in"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(rows, records, "every record is in a logged batch");
}
