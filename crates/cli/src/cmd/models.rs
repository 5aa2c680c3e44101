//! `strata models plan | run`: the gold models of a `models/` folder (see
//! `strata_layers::gold`): what would run and why, then running it into gold Iceberg tables.

use std::path::PathBuf;

use strata_layers::gold::{ModelGraph, plan, run};
use strata_layers::silver::{CatalogConfig, SilverCatalog};

use crate::Failure;

/// `models` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// What would run, wave by wave, and why (new model, changed SQL, changed input); writes
    /// nothing.
    Plan(Args),
    /// Recompute the models that have a reason to run, into gold tables.
    Run(RunArgs),
}

/// Flags every `models` subcommand takes.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder of model `.sql` files.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
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
    /// Models to take (repeatable): `name`, `name+` (and what reads it), `+name` (and what it
    /// reads), `tag:x`; default: all.
    #[arg(long = "select")]
    pub select: Vec<String>,
}

/// Flags of `models run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    common: Args,
    /// Run the selected models even when nothing they depend on changed.
    #[arg(long)]
    pub force: bool,
}

async fn open(args: &Args) -> Result<(SilverCatalog, ModelGraph), Failure> {
    let graph = ModelGraph::load(&args.models).map_err(Failure::config)?;
    let config =
        CatalogConfig::for_lake(&args.lake, args.catalog.as_deref()).map_err(Failure::config)?;
    let catalog = SilverCatalog::open(&config)
        .await
        .map_err(Failure::runtime)?;
    Ok((catalog, graph))
}

/// Runs a `models` subcommand.
pub async fn run_command(command: &ModelsCommand) -> Result<(), Failure> {
    match command {
        ModelsCommand::Plan(args) => {
            let (catalog, graph) = open(args).await?;
            let selected = graph.select(&args.select).map_err(Failure::config)?;
            let planned = plan(&catalog, &graph, &selected)
                .await
                .map_err(Failure::runtime)?;
            for p in &planned {
                let model = graph.model(&p.name);
                let reads = model
                    .map(|m| {
                        let models = m.upstream_models.iter().map(|u| format!("gold.{u}"));
                        let tables = m.upstream_tables.iter().map(|t| format!("silver.{t}"));
                        models.chain(tables).collect::<Vec<_>>().join(", ")
                    })
                    .unwrap_or_default();
                let why = if p.reasons.is_empty() {
                    "up to date".to_string()
                } else {
                    format!("runs: {}", p.reasons.join("; "))
                };
                println!("wave {} {}: {why} (reads {reads})", p.wave + 1, p.name);
            }
            let runs = planned.iter().filter(|p| !p.reasons.is_empty()).count();
            println!("{runs} of {} models would run", planned.len());
            Ok(())
        }
        ModelsCommand::Run(args) => {
            let (catalog, graph) = open(&args.common).await?;
            let selected = graph.select(&args.common.select).map_err(Failure::config)?;
            let runs = run(&catalog, &graph, &selected, args.force)
                .await
                .map_err(|e| match e {
                    strata_layers::LayersError::Model { .. } => Failure::config(e),
                    other => Failure::runtime(other),
                })?;
            for r in &runs {
                println!(
                    "model {}: {} rows in {} files ({:.2} s)",
                    r.name,
                    r.rows,
                    r.files,
                    r.elapsed.as_secs_f64()
                );
            }
            println!(
                "{} models ran, {} up to date",
                runs.len(),
                selected.len() - runs.len()
            );
            Ok(())
        }
    }
}
