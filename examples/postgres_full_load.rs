//! Stage: ingest — a consistent full load of a PostgreSQL table into Parquet bronze, with the
//! library API (the same path as `strata ingest postgres`).
//!
//! ```text
//! scripts/services.sh up && source /tmp/strata-services/env
//! cargo run -p strata-examples --example postgres_full_load -- [postgres-url] [lake-dir]
//! ```
//! Defaults: `$STRATA_TEST_PG_URL` (else `postgres://postgres@127.0.0.1:55432/postgres`) and
//! `out/example-lake`. The program creates `strata_example.customers` (10,000 rows) if it is
//! missing, loads it with 3 readers sharing one exported snapshot, and writes one Parquet object
//! per chunk part under `bronze/source=postgres.<db>.strata_example.customers/date=<today>/`.

use std::path::PathBuf;

use anyhow::Context;
use strata_connectors::postgres::{
    BoxError, PgConnection, PgLoader, PgSourceConfig, PgTableConfig,
};
use strata_layers::bronze::{BronzeDate, BronzeWriter, PutOutcome};
use strata_layers::lake::Lake;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("STRATA_TEST_PG_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:55432/postgres".into());
    let lake_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("out/example-lake"));

    // A small table to load (skipped when it already exists).
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE SCHEMA IF NOT EXISTS strata_example;
             CREATE TABLE IF NOT EXISTS strata_example.customers (
               customer_id int8 PRIMARY KEY, name text, email text, segment text,
               credit_limit numeric(12,2), tags text[], created_at timestamptz NOT NULL);
             INSERT INTO strata_example.customers
               SELECT g, 'Cliente ' || g, 'cliente' || g || '@example.com',
                      (ARRAY['retail','wholesale','enterprise'])[g % 3 + 1],
                      (g % 50000) * 1.25, ARRAY['t' || g % 7],
                      timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
               FROM generate_series(1, 10000) g
             ON CONFLICT DO NOTHING;",
        )
        .await
        .context("creating strata_example.customers")?;

    let mut config = PgSourceConfig::new(
        PgConnection::from_url(&url),
        vec![PgTableConfig::new("strata_example", "customers")],
    );
    config.parallelism = 3;
    config.part_rows = 2_500;
    let loader = PgLoader::new(config)?;

    std::fs::create_dir_all(&lake_dir)?;
    let writer = BronzeWriter::new(Lake::open(&lake_dir.display().to_string())?);
    let report = loader
        .run(
            |part| {
                let writer = writer.clone();
                async move {
                    let date = BronzeDate::parse(&part.snapshot.date)?;
                    let metadata = part.metadata();
                    let kv: Vec<(&str, &str)> = metadata
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let outcome = writer
                        .put_parquet(
                            &part.source_name(),
                            date,
                            &part.object_stem(),
                            &part.batches,
                            &kv,
                        )
                        .await?;
                    match outcome {
                        PutOutcome::Created { path, bytes } => {
                            println!("created {path} ({} rows, {bytes} bytes)", part.rows)
                        }
                        PutOutcome::AlreadyPresent { path } => println!("already present {path}"),
                    }
                    Ok::<(), BoxError>(())
                }
            },
            &|p| {
                eprintln!(
                    "  {} rows, {:.0} rows/s, chunks {}/{}",
                    p.rows, p.rows_per_sec, p.chunks_done, p.chunks_total
                )
            },
        )
        .await?;
    println!(
        "snapshot {}: {} rows of strata_example.customers in {:.2} s into {}",
        report.snapshot.time,
        report.rows,
        report.elapsed.as_secs_f64(),
        lake_dir.display()
    );
    Ok(())
}
