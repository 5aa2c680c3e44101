//! `strata bronze put`: load an NDJSON file into bronze as raw records, in objects named by
//! the file and line range they hold — so loading the same file again creates nothing.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray};
use strata_connectors::file::{NdjsonReader, ReaderOptions};
use strata_layers::bronze::{BronzeDate, BronzeWriter, PutOutcome};
use strata_layers::lake::Lake;

use crate::Failure;

/// Flags of `bronze put`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Lake root (local path, file:// or s3://bucket/prefix).
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// Source name (the `source=` partition).
    #[arg(long, env = "STRATA_SOURCE", hide_env_values = true)]
    pub source: String,
    /// Date partition YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    pub date: Option<String>,
    /// NDJSON input (plain, .gz or .zst).
    #[arg(long)]
    pub input: PathBuf,
    /// Records per bronze object.
    #[arg(long, default_value_t = 100_000)]
    pub lines_per_file: usize,
}

/// Runs the load.
pub async fn run(args: &Args) -> Result<(), Failure> {
    if args.lines_per_file == 0 {
        return Err(Failure::config(anyhow::anyhow!(
            "--lines-per-file must be at least 1"
        )));
    }
    let date = match &args.date {
        Some(d) => BronzeDate::parse(d).map_err(Failure::config)?,
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(Failure::runtime)?;
            BronzeDate::from_epoch_micros(now.as_micros() as i64)
        }
    };
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let writer = BronzeWriter::new(lake);
    let stem = stem_of(&args.input);
    // Objects are sized by record count, not by the reader's default byte budget.
    let options = ReaderOptions {
        batch_rows: args.lines_per_file,
        batch_bytes: usize::MAX,
        ..ReaderOptions::default()
    };
    let (mut created, mut present, mut records) = (0, 0, 0usize);
    let mut first_line = 1usize;
    for batch in NdjsonReader::open(&args.input, options).map_err(Failure::runtime)? {
        let batch = batch.map_err(Failure::runtime)?;
        let raw = batch.column(0).as_binary::<i32>();
        let lines: Vec<&[u8]> = (0..raw.len()).map(|i| raw.value(i)).collect();
        let last_line = first_line + lines.len() - 1;
        let name = format!("{stem}-{first_line:012}-{last_line:012}");
        match writer
            .put_ndjson(&args.source, date, &name, &lines)
            .await
            .map_err(Failure::runtime)?
        {
            PutOutcome::Created { path, bytes } => {
                created += 1;
                println!("created {path} ({} records, {bytes} bytes)", lines.len());
            }
            PutOutcome::AlreadyPresent { path } => {
                present += 1;
                println!("already present {path}");
            }
        }
        records += lines.len();
        first_line = last_line + 1;
    }
    println!(
        "bronze put: {records} records from {} → {created} objects created, {present} already present",
        args.input.display()
    );
    Ok(())
}

/// The input file name without compression / format extensions, reduced to safe characters.
fn stem_of(path: &std::path::Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut stem = name.as_str();
    for ext in [".zst", ".gz", ".ndjson", ".jsonl", ".json"] {
        stem = stem.strip_suffix(ext).unwrap_or(stem);
    }
    let safe: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "input".into()
    } else {
        safe
    }
}
