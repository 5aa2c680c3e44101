//! `strata models plan | run` as a user runs them: the shipped `models/` over the lake the demo
//! builds, then changes to one model, a broken model and a cycle.

use std::path::{Path, PathBuf};
use std::process::Command;

fn strata(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.current_dir(dir);
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().expect("run strata");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn ok(c: &mut Command) -> String {
    let (code, out, err) = run(c);
    assert_eq!(code, 0, "{out}\n{err}");
    out
}

fn copy_models(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
    std::fs::create_dir_all(to).expect("models dir");
    for entry in std::fs::read_dir(from).expect("shipped models") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, to.join(path.file_name().expect("name"))).expect("copy");
    }
}

fn models(d: &Path, lake: &Path, verb: &str, extra: &[&str]) -> (i32, String, String) {
    run(strata(d)
        .args(["models", verb, "--models", "models", "--lake"])
        .arg(lake)
        .args(extra))
}

fn count(d: &Path, lake: &Path, query: &str) -> String {
    ok(strata(d).arg("sql").arg("--lake").arg(lake).arg(query))
}

#[test]
fn models_run_in_waves_into_gold_and_rerun_only_what_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    ok(strata(d).args(["demo", "--out", "demo", "--events", "2000"]));
    let lake: PathBuf = std::fs::read_dir(d.join("demo"))
        .expect("demo dir")
        .next()
        .expect("a run")
        .expect("entry")
        .path();
    copy_models(&d.join("models"));

    // The demo ran the shipped models already: the same files are up to date.
    let (code, out, err) = models(d, &lake, "plan", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0 of 6 models would run"), "{out}");
    assert!(
        out.contains("wave 2 fact_orders: up to date")
            && out.contains("wave 3 agg_revenue_by_segment"),
        "{out}"
    );
    let (code, out, err) = models(d, &lake, "run", &["--force"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("6 models ran, 0 up to date"), "{out}");
    // Gold holds what the models compute from silver.
    let same = count(
        d,
        &lake,
        "SELECT (SELECT count(*) FROM gold.dim_customer) = (SELECT count(*) FROM customers) AS same, \
         (SELECT sum(orders) FROM gold.agg_revenue_by_segment) = (SELECT count(*) FROM orders) AS all_orders",
    );
    assert!(same.contains("| true | true "), "{same}");

    // Plan shows each output column's inputs, from the logical plan.
    let (_, out, _) = models(d, &lake, "plan", &[]);
    assert!(
        out.contains("    segment ← gold.dim_customer.segment")
            && out.contains("    avg_temp_c ← silver.iot_events.temperature"),
        "{out}"
    );
    // The published tables pass their audits; the docs page has every model and the DAG.
    let (code, out, err) = models(d, &lake, "audit", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("0 blocking failures"), "{out}");
    let (code, out, err) = models(d, &lake, "docs", &["--out", "models.html"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let html = std::fs::read_to_string(d.join("models.html")).expect("docs page");
    assert!(
        html.contains("<svg") && html.contains("gold.fact_orders") && html.contains("crm-data"),
        "{html}"
    );

    // Nothing changed: nothing runs.
    let (_, out, _) = models(d, &lake, "run", &[]);
    assert!(out.contains("0 models ran, 6 up to date"), "{out}");

    // One model's SQL changes: it runs, and so does what reads it, and nothing else.
    let fact = d.join("models/fact_orders.sql");
    let text = std::fs::read_to_string(&fact).expect("model");
    std::fs::write(&fact, text.replace("o.changed_at", "o.changed_at, o.op")).expect("edit");
    let (_, out, _) = models(d, &lake, "plan", &[]);
    assert!(
        out.contains("fact_orders: runs: its SQL or header changed"),
        "{out}"
    );
    assert!(
        out.contains("agg_revenue_by_segment: runs: upstream model gold.fact_orders runs"),
        "{out}"
    );
    assert!(out.contains("2 of 6 models would run"), "{out}");
    let (_, out, _) = models(d, &lake, "run", &["--select", "fact_orders"]);
    assert!(out.contains("1 models ran, 0 up to date"), "{out}");
    let (_, out, _) = models(d, &lake, "plan", &[]);
    assert!(
        out.contains("agg_revenue_by_segment: runs: input gold.fact_orders changed"),
        "{out}"
    );

    // A broken model names its file and stops before the models that read it.
    std::fs::write(
        d.join("models/dim_customer.sql"),
        "-- kind: dimension\nSELECT customer_id, no_such_column FROM customers\n",
    )
    .expect("edit");
    let (code, out, err) = models(d, &lake, "run", &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        err.contains("models/dim_customer.sql") && err.contains("no_such_column"),
        "{err}"
    );
    // Unit tests: the shipped ones pass; a wrong expectation shows the row diff; a typo in a
    // column is a clear error.
    let (code, out, err) = run(strata(d).args(["models", "test", "--models", "models"]));
    assert_eq!(code, 2, "dim_customer is broken: {out}\n{err}");
    for shipped in ["dim_customer.sql", "fact_orders.sql"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../models")
                .join(shipped),
            d.join("models").join(shipped),
        )
        .expect("restore");
    }
    let out = ok(strata(d).args(["models", "test", "--models", "models"]));
    assert!(out.contains("2 tests passed, 0 failed"), "{out}");
    let tests = d.join("models/fact_orders.yaml");
    let text = std::fs::read_to_string(&tests).expect("tests");
    std::fs::write(
        &tests,
        text.replace("segment: retail, amount", "segment: wholesale, amount"),
    )
    .expect("edit");
    let (code, out, _) = run(strata(d).args(["models", "test", "--models", "models"]));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAILED, rows differ")
            && out.contains("- {order_id: 1, customer_id: 7, segment: wholesale, amount: 10.5}")
            && out.contains("+ {order_id: 1, customer_id: 7, segment: retail, amount: 10.5}"),
        "{out}"
    );
    std::fs::write(&tests, text.replace("customer: ", "custmer: ")).expect("edit");
    let (code, _, err) = run(strata(d).args(["models", "test", "--models", "models"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("fact_orders.yaml") && err.contains("customer"),
        "{err}"
    );

    // A cycle is refused with its path.
    std::fs::write(
        d.join("models/dim_customer.sql"),
        "-- kind: dimension\nSELECT * FROM gold.agg_revenue_by_segment\n",
    )
    .expect("edit");
    let (code, _, err) = models(d, &lake, "plan", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cycle"), "{err}");
}
