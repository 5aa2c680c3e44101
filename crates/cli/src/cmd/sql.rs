//! `strata sql "<query>"`: DataFusion SQL over the lake's silver tables (default schema
//! `silver`, so `SELECT … FROM iot_events` works). Filters on a table's event time prune its
//! hidden `day(...)` partitions.

use std::path::PathBuf;

use strata_layers::silver::{SilverCatalog, sql};

use crate::Failure;

/// Flags of `sql`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query.
    pub query: String,
    /// Lake root folder (the catalog lives in `<lake>/catalog`).
    #[arg(long, env = "STRATA_LAKE", default_value = "lake")]
    pub lake: PathBuf,
}

/// Runs the query and prints the result as a table.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let catalog_dir = args.lake.join("catalog");
    if !catalog_dir.join("catalog.db").exists() {
        return Err(Failure::config(anyhow::anyhow!(
            "no catalog at {} (run `strata batch` or `strata demo` first, or pass --lake)",
            catalog_dir.display()
        )));
    }
    let catalog = SilverCatalog::open_local(&catalog_dir)
        .await
        .map_err(Failure::runtime)?;
    let batches = sql(&catalog, &args.query).await.map_err(Failure::runtime)?;
    println!(
        "{}",
        arrow::util::pretty::pretty_format_batches(&batches).map_err(Failure::runtime)?
    );
    Ok(())
}
