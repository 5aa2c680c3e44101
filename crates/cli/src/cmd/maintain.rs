//! `strata maintain`: compaction, snapshot expiry, unreferenced-file and checkpoint cleanup for
//! the lake's silver tables (see `strata_layers::silver::maintain`). Safe while writers run.

use strata_layers::lake::Lake;
use strata_layers::silver::{CatalogConfig, MaintainOptions, SilverCatalog, maintain};

use crate::Failure;

/// Flags of `maintain`.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    /// Tables to maintain (repeatable); default: every silver table.
    #[arg(long = "table")]
    pub tables: Vec<String>,
    /// Newest snapshots to keep per table (the current one is always kept).
    #[arg(long, default_value_t = 10)]
    pub keep_snapshots: usize,
    /// Keep snapshots, and never delete files or checkpoints, younger than this; it must
    /// outlast the longest commit interval of any writer.
    #[arg(long, default_value_t = 86_400)]
    pub grace_seconds: u64,
    /// Skip compaction (small files and manifests).
    #[arg(long)]
    pub no_compact: bool,
    /// Data files below this size are compacted.
    #[arg(long, default_value_t = 32)]
    pub small_file_mb: u64,
    /// Size compacted files aim at.
    #[arg(long, default_value_t = 128)]
    pub target_file_mb: usize,
    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Maintains the tables and prints one line per table.
pub async fn run(args: &Args) -> Result<(), Failure> {
    let lake = Lake::open(&args.lake).map_err(Failure::config)?;
    let config =
        CatalogConfig::for_lake(&args.lake, args.catalog.as_deref()).map_err(Failure::config)?;
    let catalog = SilverCatalog::open(&config)
        .await
        .map_err(Failure::runtime)?;
    let grace_ms = i64::try_from(args.grace_seconds.saturating_mul(1000)).map_err(|_| {
        Failure::config(anyhow::anyhow!(
            "--grace-seconds {} is too large",
            args.grace_seconds
        ))
    })?;
    let options = MaintainOptions {
        keep_snapshots: args.keep_snapshots,
        grace_ms,
        compact: !args.no_compact,
        small_file_bytes: args.small_file_mb.saturating_mul(1 << 20),
        target_file_bytes: args.target_file_mb.saturating_mul(1 << 20),
        dry_run: args.dry_run,
    };
    let tables = if args.tables.is_empty() {
        catalog.table_names().await.map_err(Failure::runtime)?
    } else {
        args.tables
            .iter()
            .map(|t| silver_name(t).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?
    };
    let verb = if args.dry_run { "would " } else { "" };
    for table in tables {
        let r = maintain(&catalog, &lake, &table, &options)
            .await
            .map_err(Failure::runtime)?;
        println!(
            "{table}: {verb}compact {} small files into {}, manifests {} -> {}; {verb}expire {} snapshots (kept {}); {verb}delete {} unreferenced files ({} bytes) and {} checkpoints",
            r.compacted.0,
            r.compacted.1,
            r.manifests.0,
            r.manifests.1,
            r.snapshots.0,
            r.snapshots.1,
            r.files_deleted.0,
            r.files_deleted.1,
            r.checkpoints_deleted
        );
    }
    Ok(())
}

/// A `--table` as `maintain` takes it: `name` or `silver.name` (as `strata.Lake.tables()` and
/// the analytics API list it). Gold tables are refused with the reason: each `models run`
/// rewrites them through an audit branch, which compaction and expiry here do not know.
fn silver_name(table: &str) -> Result<&str, Failure> {
    match table.split_once('.') {
        None => Ok(table),
        Some(("silver", name)) => Ok(name),
        Some((layer, _)) => Err(Failure::config(anyhow::anyhow!(
            "--table {table}: `maintain` covers silver tables (`name` or `silver.name`), not the \
             `{layer}` layer"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::silver_name;

    #[test]
    fn a_table_is_named_bare_or_with_its_silver_layer() {
        assert_eq!(silver_name("iot_events").ok(), Some("iot_events"));
        assert_eq!(silver_name("silver.iot_events").ok(), Some("iot_events"));
        let err = silver_name("gold.agg_device_hourly").expect_err("gold is refused");
        assert!(format!("{:#}", err.error()).contains("not the `gold` layer"));
    }
}
