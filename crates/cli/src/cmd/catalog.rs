//! `strata catalog list | show | lineage | export-datahub`: the data catalog built from the lake's
//! tables, the pipeline specs and models, and the OpenLineage events the jobs wrote
//! (`strata_runtime::catalog`).

use std::path::PathBuf;

use anyhow::anyhow;
use strata_layers::gold::ModelGraph;
use strata_layers::silver::{CatalogConfig, SilverCatalog};
use strata_runtime::catalog::{
    CatalogInputs, DatasetEntry, PII, build, datahub, find, parse_events, walk,
};

use crate::Failure;

/// `catalog` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Every dataset: layer, rows, freshness, owner, tags.
    List(ListArgs),
    /// One dataset: description, owner, tags, columns (PII marked), rows, freshness, last run,
    /// quality, upstream and downstream.
    Show(ShowArgs),
    /// What a dataset is computed from (`--upstream`) or what is computed from it
    /// (`--downstream`), transitively.
    Lineage(LineageArgs),
    /// Write the catalog as DataHub metadata change proposals (JSON), for DataHub's `file`
    /// source.
    ExportDatahub(ExportArgs),
}

/// Where the catalog is read from.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
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
    /// The OpenLineage NDJSON file the jobs wrote (`--lineage FILE`): the graph, last runs and
    /// quality. Without it, only tables and specs are shown.
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<PathBuf>,
    /// Folder of pipeline specs (owner, tags, description; masks make PII tags).
    #[arg(long, default_value = "pipelines")]
    pub pipelines: PathBuf,
    /// Folder of gold models (owner, tags, descriptions).
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// The analytics API's serve config: its semantic-layer metrics join the graph, each
    /// downstream of the tables it reads (`metric.<name>`).
    #[arg(long)]
    pub serve_config: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `catalog list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    common: Args,
}

/// Flags of `catalog show`.
#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// The dataset: `silver.orders`, `orders`, `gold.fact_orders`, `bronze.iot`.
    pub dataset: String,
    #[command(flatten)]
    common: Args,
}

/// Flags of `catalog lineage`.
#[derive(Debug, clap::Args)]
pub struct LineageArgs {
    /// The dataset.
    pub dataset: String,
    /// Only what it is computed from.
    #[arg(long, conflicts_with = "downstream")]
    pub upstream: bool,
    /// Only what is computed from it.
    #[arg(long)]
    pub downstream: bool,
    #[command(flatten)]
    common: Args,
}

/// Flags of `catalog export-datahub`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The MCP JSON file to write.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    common: Args,
}

/// Pipeline specs of a folder; a file that is not a spec is reported and skipped.
async fn entries(args: &Args) -> Result<Vec<DatasetEntry>, Failure> {
    let config =
        CatalogConfig::for_lake(&args.lake, args.catalog.as_deref()).map_err(Failure::config)?;
    let catalog = SilverCatalog::open(&config)
        .await
        .map_err(Failure::runtime)?;
    let events = match &args.lineage {
        Some(file) if file.exists() => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::config(anyhow!("{}: {e}", file.display())))?;
            parse_events(&text, &file.display().to_string()).map_err(Failure::config)?
        }
        Some(file) => {
            return Err(Failure::config(anyhow!(
                "{}: no such lineage file (jobs write it with --lineage {})",
                file.display(),
                file.display()
            )));
        }
        None => Vec::new(),
    };
    let pipelines = strata_runtime::catalog::load_pipelines(&args.pipelines);
    let models = if args.models.is_dir() {
        Some(ModelGraph::load(&args.models).map_err(Failure::config)?)
    } else {
        None
    };
    let metrics = match &args.serve_config {
        Some(file) => {
            let config = strata_serving::ServeConfig::from_file(file).map_err(Failure::config)?;
            strata_serving::semantic::metric_nodes(&config.metrics)
        }
        None => Vec::new(),
    };
    build(&CatalogInputs {
        catalog: &catalog,
        pipelines: &pipelines,
        models: models.as_ref(),
        events: &events,
        metrics: &metrics,
    })
    .await
    .map_err(Failure::runtime)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(Failure::runtime)?;
    println!("{text}");
    Ok(())
}

fn show(e: &DatasetEntry) {
    println!("{} ({})", e.name, e.layer);
    println!("  location: {}/{}", e.namespace, e.dataset);
    if let Some(d) = &e.description {
        println!("  description: {d}");
    }
    println!("  owner: {}", e.owner.as_deref().unwrap_or("-"));
    println!("  tags: {}", e.tags.join(", "));
    if let Some(rows) = e.row_count {
        println!("  rows: {rows}");
    }
    if let Some(t) = &e.last_commit {
        println!(
            "  last commit: {t} (snapshot {})",
            e.snapshot_id.unwrap_or_default()
        );
    }
    if let Some(r) = &e.last_run {
        println!("  last run: {} {} at {}", r.job, r.state, r.time);
    }
    for q in &e.quality {
        let verdict = if q.success { "pass" } else { "FAIL" };
        println!("  quality {verdict}: {} {}", q.assertion, q.name);
    }
    if !e.columns.is_empty() {
        println!("  columns:");
        for c in &e.columns {
            let pii = if c.tags.iter().any(|t| t == PII) {
                " [pii]"
            } else {
                ""
            };
            let doc = c
                .description
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default();
            println!("    {} {}{pii}{doc}", c.name, c.data_type);
        }
    }
    println!("  upstream: {}", e.upstream.join(", "));
    println!("  downstream: {}", e.downstream.join(", "));
}

/// Runs a `catalog` subcommand.
pub async fn run(command: &CatalogCommand) -> Result<(), Failure> {
    match command {
        CatalogCommand::List(a) => {
            let all = entries(&a.common).await?;
            if a.common.json {
                return print_json(&all);
            }
            println!(
                "{:<36} {:<8} {:>10} {:<24} {:<12} tags",
                "dataset", "layer", "rows", "last commit", "owner"
            );
            for e in &all {
                println!(
                    "{:<36} {:<8} {:>10} {:<24} {:<12} {}",
                    e.name,
                    e.layer,
                    e.row_count.map(|r| r.to_string()).unwrap_or_default(),
                    e.last_commit.as_deref().unwrap_or(""),
                    e.owner.as_deref().unwrap_or(""),
                    e.tags.join(",")
                );
            }
            Ok(())
        }
        CatalogCommand::Show(a) => {
            let all = entries(&a.common).await?;
            let e = find(&all, &a.dataset).map_err(Failure::config)?;
            if a.common.json {
                return print_json(e);
            }
            show(e);
            Ok(())
        }
        CatalogCommand::Lineage(a) => {
            let all = entries(&a.common).await?;
            let e = find(&all, &a.dataset).map_err(Failure::config)?;
            let both = !a.upstream && !a.downstream;
            let up = (a.upstream || both).then(|| walk(&all, &e.name, true));
            let down = (a.downstream || both).then(|| walk(&all, &e.name, false));
            if a.common.json {
                return print_json(&serde_json::json!({
                    "dataset": e.name,
                    "upstream": up.as_ref().map(|v| v.iter().map(|(d, n)| serde_json::json!({"name": n, "depth": d})).collect::<Vec<_>>()),
                    "downstream": down.as_ref().map(|v| v.iter().map(|(d, n)| serde_json::json!({"name": n, "depth": d})).collect::<Vec<_>>()),
                }));
            }
            println!("{}", e.name);
            for (label, list) in [("upstream", up), ("downstream", down)] {
                let Some(list) = list else { continue };
                println!("  {label}:");
                for (depth, name) in list {
                    println!("    {}{name}", "  ".repeat(depth.saturating_sub(1)));
                }
            }
            Ok(())
        }
        CatalogCommand::ExportDatahub(a) => {
            let all = entries(&a.common).await?;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let mcps = datahub::export(&all, now_ms);
            let text = serde_json::to_string_pretty(&mcps).map_err(Failure::runtime)?;
            std::fs::write(&a.out, text)
                .map_err(|e| Failure::config(anyhow!("{}: {e}", a.out.display())))?;
            println!(
                "{} metadata change proposals for {} datasets written to {}",
                mcps.len(),
                all.len(),
                a.out.display()
            );
            Ok(())
        }
    }
}
