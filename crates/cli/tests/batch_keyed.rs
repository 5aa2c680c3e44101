//! Keyed tables through `strata batch` as a user runs it: `pipelines/orders.yaml` (snapshot) and
//! its `output.also` table `orders_history` (historical), written in the same pass, over CDC events in many small bronze files, with
//! the process SIGKILLed again and again in the middle of its overwrite commits. After every
//! kill the tables are readable; after the final run they equal those of an uninterrupted run:
//! every change landed exactly once.

use std::path::Path;
use std::process::{Command, Stdio};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use strata_layers::silver::SilverCatalog;

/// The tables `pipelines/orders.yaml` writes in one pass.
const TABLES: [&str; 2] = ["orders", "orders_history"];

fn pipeline(name: &str) -> String {
    format!("{}/../../pipelines/{name}.yaml", env!("CARGO_MANIFEST_DIR"))
}

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

fn batch_args<'a>(lake: &'a str, pipeline: &'a str) -> Vec<&'a str> {
    vec![
        "batch",
        "--lake",
        lake,
        "--source",
        "mysql.shop.orders",
        "--pipeline",
        pipeline,
        // One commit per bronze file: 30 overwrite commits to interrupt.
        "--commit-files",
        "1",
    ]
}

/// (order_id, binlog_pos, status, valid_to?, is_current?) of every row, sorted.
type Row = (i64, i64, String, Option<i64>, Option<bool>);

fn rows(dir: &Path, lake: &str, table: &str) -> Vec<Row> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let batches: Vec<RecordBatch> = rt.block_on(async {
        let catalog = SilverCatalog::open_local(&dir.join(lake).join("catalog"))
            .await
            .expect("catalog");
        catalog
            .read_table(table)
            .await
            .expect("the table stays readable")
    });
    let mut out = Vec::new();
    for b in &batches {
        let id = b
            .column_by_name("order_id")
            .unwrap()
            .as_primitive::<Int64Type>();
        let pos = b
            .column_by_name("binlog_pos")
            .unwrap()
            .as_primitive::<Int64Type>();
        let status = b.column_by_name("status").unwrap().as_string::<i32>();
        let valid_to = b
            .column_by_name("valid_to")
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).unwrap());
        let current = b
            .column_by_name("is_current")
            .map(|c| c.as_boolean().clone());
        for i in 0..b.num_rows() {
            out.push((
                id.value(i),
                pos.value(i),
                status.value(i).to_string(),
                valid_to.as_ref().and_then(|v| {
                    let v = v.as_primitive::<Int64Type>();
                    v.is_valid(i).then(|| v.value(i))
                }),
                current.as_ref().map(|c| c.value(i)),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn kill_9_during_overwrite_commits_then_rerun_lands_every_change_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let lines = strata_core::sample::mysql_order_changes(12_000, 17, 1_763_646_312_000);
    std::fs::write(d.join("changes.ndjson"), lines.join("\n") + "\n").expect("write");
    for lake in ["lake", "reference"] {
        ok(strata(d).args([
            "bronze",
            "put",
            "--lake",
            lake,
            "--source",
            "mysql.shop.orders",
            "--date",
            "2025-11-20",
            "--input",
            "changes.ndjson",
            "--lines-per-file",
            "400",
        ]));
    }
    // One pass writes both tables: `orders` (snapshot) and its `also` table `orders_history`.
    let p = pipeline("orders");
    ok(strata(d).args(batch_args("reference", &p)));
    // SIGKILL at moments spread over a run of 30 commits; the tables must stay readable.
    let mut kills = 0;
    for delay_ms in [120u64, 260, 400, 550, 700, 900, 1100, 1400, 1800, 2300] {
        let mut child = strata(d)
            .args(batch_args("lake", &p))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().expect("wait").is_none() {
            kills += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        if d.join("lake/catalog/catalog.db").exists() {
            for name in TABLES {
                rows(d, "lake", name);
            }
        }
    }
    assert!(kills >= 5, "only {kills} runs were killed mid-way");
    ok(strata(d).args(batch_args("lake", &p)));
    for name in TABLES {
        let (got, want) = (rows(d, "lake", name), rows(d, "reference", name));
        assert!(!want.is_empty(), "{name}");
        assert_eq!(got.len(), want.len(), "{name}");
        assert_eq!(got, want, "{name}: every change exactly once");
    }
    // A table added to `also` after the pipeline wrote rows would only get what comes next: the
    // run is refused, naming it, until a full refresh rebuilds every table.
    let text = std::fs::read_to_string(&p).expect("pipeline");
    let added = text.replace(
        "    - { name: orders_history, kind: historical }\n",
        "    - { name: orders_history, kind: historical }\n    - { name: orders_log, kind: append }\n",
    );
    assert_ne!(added, text);
    std::fs::write(d.join("orders-more.yaml"), added).expect("write");
    let out = strata(d)
        .args(batch_args("lake", "orders-more.yaml"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("orders_log") && err.contains("--full-refresh"),
        "{err}"
    );
    let mut refresh = batch_args("lake", "orders-more.yaml");
    refresh.push("--full-refresh");
    ok(strata(d).args(refresh));
    assert_eq!(rows(d, "lake", "orders"), rows(d, "reference", "orders"));
}
