//! Commit latency as a silver table ages: COMMITS one-row appends (each with its coverage, as
//! `stream silver` and `batch` commit), timed per commit, without maintenance and with
//! `maintain` (compaction + manifest merge + expiry to 10 snapshots) every MAINTAIN_EVERY commits.
//! Prints the mean commit time over windows of the table's life: flat = cost does not grow.
//!
//!     cargo build --release --bin strata --bin commit_aging
//!     COMMITS=10000 MAINTAIN_EVERY=500 $CARGO_TARGET_DIR/release/commit_aging
//!
//! (A binary, not a `cargo bench` target: a bench target pulls the dev-dependencies in, whose
//! features force a second build of every dependency. Writes to a temporary local lake.)

use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use std::sync::Arc;
use strata_layers::lake::Lake;
use strata_layers::silver::{
    CatalogConfig, CoverageIndex, MaintainOptions, SilverAppend, SilverCatalog, WriteOptions,
    maintain,
};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(commits: usize, maintain_every: Option<usize>) -> Vec<f64> {
    let dir = std::env::temp_dir().join(format!(
        "strata-commit-aging-{}-{}",
        std::process::id(),
        maintain_every.unwrap_or(0)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let lake_url = dir.join("lake").display().to_string();
    let lake = Lake::open(&lake_url).expect("lake");
    let catalog = SilverCatalog::open(&CatalogConfig::for_lake(&lake_url, None).expect("config"))
        .await
        .expect("catalog");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let mut table = catalog
        .ensure_table("aging", &schema, None)
        .await
        .expect("table");
    let mut index = CoverageIndex::default();
    let mut times = Vec::with_capacity(commits);
    let options = MaintainOptions {
        keep_snapshots: 10,
        grace_ms: 0,
        ..MaintainOptions::default()
    };
    for i in 0..commits {
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![i as i64])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_763_646_312_000_000 + i as i64])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .expect("batch");
        let start = Instant::now();
        let mut w = SilverAppend::start(&table, &WriteOptions::default())
            .await
            .expect("start");
        w.write(&batch).await.expect("write");
        let done = w
            .commit_indexed(&catalog, &[format!("input-{i}")], &[], &mut index)
            .await
            .expect("commit");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        table = done.table;
        if let Some(every) = maintain_every
            && (i + 1) % every == 0
        {
            maintain(&catalog, &lake, "aging", &options)
                .await
                .expect("maintain");
            table = catalog.load("aging").await.expect("reload");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    times
}

fn window(times: &[f64], at: usize, width: usize) -> f64 {
    let end = (at + width).min(times.len());
    let start = end.saturating_sub(width);
    let part = &times[start..end];
    part.iter().sum::<f64>() / part.len().max(1) as f64
}

fn main() {
    let commits = env("COMMITS", 10_000);
    let every = env("MAINTAIN_EVERY", 500);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let with = rt.block_on(run(commits, Some(every)));
    let without = rt.block_on(run(commits.min(env("COMMITS_UNMAINTAINED", 3_000)), None));
    let marks = [0usize, 100, 1_000, 3_000, 5_000, 10_000];
    println!("\nmean commit ms over 100 commits starting at commit N (one-row appends)\n");
    println!("| commits so far | no maintenance | maintain every {every} |");
    println!("|---:|---:|---:|");
    for &m in marks.iter().filter(|&&m| m < commits) {
        let a = if m < without.len() {
            format!("{:.1}", window(&without, m, 100))
        } else {
            "—".into()
        };
        println!("| {m} | {a} | {:.1} |", window(&with, m, 100));
    }
    println!(
        "| last 100 ({} / {}) | {:.1} | {:.1} |",
        without.len(),
        with.len(),
        window(&without, without.len(), 100),
        window(&with, with.len(), 100)
    );
}
