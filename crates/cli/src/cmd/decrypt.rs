//! `strata decrypt "<query>" --key <id>=env:<VAR>`: the query's result with every value the
//! `encrypt` mask wrote decrypted, for holders of the keys. Several `--key`s read data written
//! before and after a key rotation; a value whose key was not given is an error naming the key,
//! the column and the row, never a silent pass-through.

use std::path::PathBuf;

use anyhow::anyhow;
use strata_core::encryption::{ColumnCipher, KeyRing, decrypt_batch};
use strata_layers::silver::{CatalogConfig, SilverCatalog, sql_reading};

use crate::Failure;

/// Flags of `decrypt`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query (DataFusion SQL over silver and gold, as `strata sql` runs it).
    pub query: String,
    /// A key: `<id>=env:<VAR>` (base64 in an environment variable) or `<id>=file:<path>`
    /// (base64 in a file). Repeat it for the keys of older data after a rotation.
    #[arg(long = "key", required = true)]
    pub keys: Vec<String>,
    /// Lake root: a folder, `file:///…` or `s3://bucket/prefix`.
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// Catalog database (`sqlite:<file>` or `postgres://…`).
    #[arg(long, env = "STRATA_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,
    /// `table` (default), `csv` or `json` (one object per line).
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
    pub format: String,
}

/// The ring of `--key` arguments; a key's text is never printed.
pub fn key_ring(keys: &[String]) -> Result<KeyRing, Failure> {
    let mut ring = KeyRing::new();
    for arg in keys {
        let (id, source) = arg.split_once('=').ok_or_else(|| {
            Failure::config(anyhow!(
                "--key {arg}: write it as <id>=env:<VAR> or <id>=file:<path>"
            ))
        })?;
        let text = if let Some(var) = source.strip_prefix("env:") {
            std::env::var(var).map_err(|_| {
                Failure::config(anyhow!(
                    "--key {id}: environment variable `{var}` is not set"
                ))
            })?
        } else if let Some(path) = source.strip_prefix("file:") {
            let path = PathBuf::from(path);
            std::fs::read_to_string(&path).map_err(|e| {
                Failure::config(anyhow!("--key {id}: cannot read {}: {e}", path.display()))
            })?
        } else {
            return Err(Failure::config(anyhow!(
                "--key {id}: the key comes from `env:<VAR>` or `file:<path>`, never the command line"
            )));
        };
        let cipher = ColumnCipher::from_base64(id, &text)
            .map_err(|e| Failure::config(anyhow!("--key: {e}")))?;
        ring.add(cipher);
    }
    Ok(ring)
}

/// Runs the query, decrypts, prints.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let ring = key_ring(&args.keys)?;
    let config =
        CatalogConfig::for_lake(&args.lake, args.catalog.as_deref()).map_err(Failure::config)?;
    let catalog = SilverCatalog::open(&config)
        .await
        .map_err(Failure::runtime)?;
    let (batches, read) = sql_reading(&catalog, &args.query)
        .await
        .map_err(Failure::runtime)?;
    // What was read stays warm: the lake's access log (see `strata lake cool`).
    if let Ok(lake) = strata_layers::lake::Lake::open(&args.lake) {
        for table in &read {
            strata_layers::access::record_read(&lake, table).await;
        }
    }
    let plain = batches
        .iter()
        .map(|b| decrypt_batch(b, &ring))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::config(anyhow!("{e} (pass its key with --key <id>=env:<VAR>)")))?;
    match args.format.as_str() {
        "csv" => {
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in &plain {
                    w.write(b).map_err(Failure::runtime)?;
                }
            }
            print!("{}", String::from_utf8_lossy(&out));
        }
        "json" => {
            let mut w = arrow::json::LineDelimitedWriter::new(std::io::stdout().lock());
            for b in &plain {
                w.write(b).map_err(Failure::runtime)?;
            }
            w.finish().map_err(Failure::runtime)?;
        }
        _ => println!(
            "{}",
            arrow::util::pretty::pretty_format_batches(&plain).map_err(Failure::runtime)?
        ),
    }
    Ok(())
}
