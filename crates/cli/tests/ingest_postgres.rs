//! `strata ingest postgres` then `strata batch` as a user runs them, against the PostgreSQL of
//! `scripts/services.sh up` (`STRATA_TEST_PG_URL`; tables created with `psql`): every row lands
//! in bronze as typed Parquet, the customers pipeline takes it to silver, and bad configs exit
//! with code 2 naming what to fix. Without the server the test says so loudly and passes; with
//! `CI` set it fails.

use std::path::Path;
use std::process::Command;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use strata_layers::silver::SilverCatalog;

const PIPELINE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../pipelines/pg_customers.yaml"
);

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

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .expect("psql (postgresql-client) is installed with the server");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ingest_postgres_into_bronze_then_batch_to_silver() {
    let Ok(url) = std::env::var("STRATA_TEST_PG_URL") else {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but STRATA_TEST_PG_URL is not: run `scripts/services.sh up`");
        }
        eprintln!("SKIPPED ingest_postgres_into_bronze_then_batch_to_silver: no PostgreSQL");
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let schema = format!("strata_cli_{nanos}");
    psql(
        &url,
        &format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.customers (customer_id int8 PRIMARY KEY, name text, email text,
               segment text, city text, credit_limit numeric(12,2),
               created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL);
             INSERT INTO {schema}.customers SELECT g, 'Cliente ' || g,
               CASE WHEN g % 100 = 0 THEN 'cliente' || g || '.example.com' ELSE 'cliente' || g || '@example.com' END,
               (ARRAY['retail','wholesale','enterprise'])[g % 3 + 1], 'Recife', g * 10.5,
               timestamptz '2026-01-01 00:00:00+00' + g * interval '1 hour',
               timestamptz '2026-02-01 00:00:00+00' + g * interval '1 hour'
             FROM generate_series(1, 3000) g;"
        ),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let config = d.join("pg.yaml");
    std::fs::write(
        &config,
        format!(
            "connection: {{ url: \"{url}\", application_name: {schema} }}\nparallelism: 3\npart_rows: 700\ntables:\n  - schema: {schema}\n    name: customers\n"
        ),
    )
    .expect("config");

    let ingest = |c: &mut Command| {
        c.args(["ingest", "postgres", "--config"])
            .arg(&config)
            .args(["--lake", "lake", "--date", "2026-11-24"]);
    };
    // A dry run reads and decodes everything and writes nothing.
    let mut cmd = strata(d);
    ingest(&mut cmd);
    let (code, out, err) = run(cmd.arg("--dry-run"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3000 rows in 3 chunks"), "{out}");
    assert!(!d.join("lake/bronze").exists(), "a dry run writes nothing");

    let mut cmd = strata(d);
    ingest(&mut cmd);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("3000 rows in 3 chunks"), "{out}");
    let source = format!("postgres.postgres.{schema}.customers");
    let files: Vec<_> =
        std::fs::read_dir(d.join(format!("lake/bronze/source={source}/date=2026-11-24")))
            .expect("bronze partition")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .collect();
    assert!(
        files.len() >= 6,
        "3 chunks of ~1000 rows, parts of 700: {files:?}"
    );
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("full-") && f.ends_with(".parquet")),
        "{files:?}"
    );

    // Batch: typed bronze → pipeline → silver; 30 invalid emails quarantined.
    let (code, out, err) = run(strata(d).args([
        "batch",
        "--lake",
        "lake",
        "--source",
        &source,
        "--pipeline",
        PIPELINE,
    ]));
    assert_eq!(code, 0, "{out}\n{err}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (rows, quarantined) = rt.block_on(async {
        let catalog = SilverCatalog::open_local(&d.join("lake/catalog"))
            .await
            .expect("catalog");
        (
            catalog.read_table("customers").await.expect("customers"),
            catalog
                .read_table("customers_quarantine")
                .await
                .expect("quarantine"),
        )
    });
    let mut ids: Vec<i64> = rows
        .iter()
        .flat_map(|b| {
            b.column_by_name("customer_id")
                .expect("customer_id")
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2970, "every valid customer once");
    // The contract: the source fills every column, so every declared column is filled.
    for b in &rows {
        for (field, column) in b.schema().fields().iter().zip(b.columns()) {
            assert_eq!(column.null_count(), 0, "column `{}`", field.name());
        }
    }
    assert_eq!(quarantined.iter().map(|b| b.num_rows()).sum::<usize>(), 30);

    // A second run is a new snapshot: new objects beside the first, never over them.
    let mut cmd = strata(d);
    ingest(&mut cmd);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    let again = std::fs::read_dir(d.join(format!("lake/bronze/source={source}/date=2026-11-24")))
        .expect("bronze partition")
        .count();
    assert_eq!(again, 2 * files.len(), "{out}");

    // The customers table mirrors the newest complete load (`full_load: replace`). Customers
    // deleted at the source disappear at the next load; one that changed is updated.
    psql(
        &url,
        &format!(
            "DELETE FROM {schema}.customers WHERE customer_id BETWEEN 101 AND 200;
             UPDATE {schema}.customers SET city = 'Olinda', updated_at = updated_at + interval '1 day'
               WHERE customer_id = 7;"
        ),
    );
    let mut cmd = strata(d);
    ingest(&mut cmd);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    let batch = |d: &Path| {
        let (code, out, err) = run(strata(d).args([
            "batch",
            "--lake",
            "lake",
            "--source",
            &source,
            "--pipeline",
            PIPELINE,
        ]));
        assert_eq!(code, 0, "{out}\n{err}");
        (out, err)
    };
    let (_, log) = batch(d);
    assert!(
        log.contains("reading the newest complete load whole"),
        "{log}"
    );
    let customers = |d: &Path| -> (Vec<i64>, Vec<String>) {
        let rows = rt.block_on(async {
            let catalog = SilverCatalog::open_local(&d.join("lake/catalog"))
                .await
                .expect("catalog");
            catalog.read_table("customers").await.expect("customers")
        });
        let mut pairs: Vec<(i64, String)> = rows
            .iter()
            .flat_map(|b| {
                let ids = b
                    .column_by_name("customer_id")
                    .expect("id")
                    .as_primitive::<Int64Type>()
                    .clone();
                let cities = b
                    .column_by_name("city")
                    .expect("city")
                    .as_string::<i32>()
                    .clone();
                (0..b.num_rows()).map(move |i| (ids.value(i), cities.value(i).to_string()))
            })
            .collect();
        pairs.sort();
        pairs.into_iter().unzip()
    };
    let (ids, cities) = customers(d);
    // 2,970 valid customers, less the 99 valid ones deleted (200 has an invalid email).
    assert_eq!(ids.len(), 2871, "one row per customer still at the source");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "no key twice");
    assert!(
        !ids.iter().any(|id| (101..=200).contains(id)),
        "deleted customers are gone"
    );
    assert_eq!(cities[ids.binary_search(&7).expect("customer 7")], "Olinda");

    // A load cut off before its end (no marker: the process died before the commit) is never
    // taken for the whole table, even though its parts are in bronze.
    psql(
        &url,
        &format!("DELETE FROM {schema}.customers WHERE customer_id > 1000"),
    );
    let mut cmd = strata(d);
    ingest(&mut cmd);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 0, "{out}\n{err}");
    let loads = d.join(format!("lake/bronze/source={source}/_loads"));
    let mut markers: Vec<_> = std::fs::read_dir(&loads)
        .expect("load markers")
        .map(|e| e.expect("entry").path())
        .collect();
    markers.sort();
    assert_eq!(markers.len(), 4, "{markers:?}");
    std::fs::remove_file(markers.last().expect("newest")).expect("remove marker");
    let (_, log) = batch(d);
    assert!(log.contains("of no complete load"), "{log}");
    assert_eq!(customers(d).0, ids, "a partial load changes nothing");

    // Bad input: exit code 2 and the message names what to fix.
    std::fs::write(
        &config,
        format!("connection: {{ url: \"{url}\" }}\ntables:\n  - schema: {schema}\n    name: no_such_table\n"),
    )
    .expect("config");
    let mut cmd = strata(d);
    ingest(&mut cmd);
    let (code, out, err) = run(&mut cmd);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains(&format!("{schema}.no_such_table")), "{err}");
    std::fs::write(
        &config,
        format!("connection: {{ url: \"{url}\" }}\nparalelism: 2\ntables: []\n"),
    )
    .expect("config");
    let mut cmd = strata(d);
    ingest(&mut cmd);
    let (code, _, err) = run(&mut cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("paralelism"), "{err}");

    psql(&url, &format!("DROP SCHEMA {schema} CASCADE"));
}
