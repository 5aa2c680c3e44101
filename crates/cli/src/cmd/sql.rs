//! `strata sql "<query>"`: DataFusion SQL over the lake's silver tables (default schema
//! `silver`, so `SELECT … FROM iot_events` works). Filters on a table's event time prune its
//! hidden `day(...)` partitions.

use strata_layers::silver::{CatalogConfig, SilverCatalog, sql_reading};

use crate::Failure;

/// Flags of `sql`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The query.
    pub query: String,
    /// Lake root: a folder, `file:///…` or `s3://bucket/prefix`.
    #[arg(
        long,
        env = "STRATA_LAKE",
        hide_env_values = true,
        default_value = "lake"
    )]
    pub lake: String,
    /// Catalog database (`sqlite:<file>` or `postgres://…`); default for a local lake:
    /// `<lake>/catalog/catalog.db`.
    #[arg(long, env = "STRATA_CATALOG", hide_env_values = true)]
    pub catalog: Option<String>,
}

/// Runs the query and prints the result as a table.
pub async fn run(args: &Args) -> Result<(), Failure> {
    if args.catalog.is_none() && !args.lake.starts_with("s3://") {
        let local = args.lake.strip_prefix("file://").unwrap_or(&args.lake);
        let db = std::path::Path::new(local).join("catalog/catalog.db");
        if !db.exists() {
            return Err(Failure::config(anyhow::anyhow!(
                "no catalog at {} (run `strata batch` or `strata demo` first, or pass --lake)",
                db.display()
            )));
        }
    }
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
    println!(
        "{}",
        arrow::util::pretty::pretty_format_batches(&batches).map_err(Failure::runtime)?
    );
    Ok(())
}
