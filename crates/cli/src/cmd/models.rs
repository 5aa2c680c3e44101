//! `strata models plan | run | test | audit | docs`: the gold models of a `models/` folder (see
//! `strata_layers::gold`): what would run and why, running them into gold Iceberg tables
//! through write-audit-publish, their unit tests, their audits, and a documentation page.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use strata_layers::gold::incremental::{EPOCH, FAR_FUTURE};
use strata_layers::gold::{
    AuditOutcome, GOLD, ModelGraph, ModelStatus, RunOptions, Severity, audit_published,
    column_lineage, docs_html, model_facts, plan, run_observed, run_unit_test,
};
use strata_layers::silver::{CatalogConfig, SilverCatalog, session, tables_read};
use strata_runtime::lineage::{LineageEmitter, ModelLineage};

use crate::Failure;

/// `models` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// What would run, wave by wave, and why (new model, changed SQL, changed input), with each
    /// output column's input columns; writes nothing.
    Plan(Args),
    /// Recompute the models that have a reason to run: each is staged, audited, and published
    /// only if its blocking audits pass.
    Run(RunArgs),
    /// Run the models' unit tests (the YAML beside each model), in memory.
    Test(TestArgs),
    /// Run the models' audits against their published tables.
    Audit(Args),
    /// Write a static HTML page of the models, their columns, owners, tags and DAG.
    Docs(DocsArgs),
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
    /// Recompute incremental models over their whole input.
    #[arg(long)]
    pub full_refresh: bool,
    /// OpenLineage events of each model run: an NDJSON file, or an HTTP endpoint.
    #[arg(long, env = "STRATA_LINEAGE", hide_env_values = true)]
    pub lineage: Option<String>,
    /// Prometheus metrics of the run (`--pushgateway`, `--metrics-file`).
    #[command(flatten)]
    pub metrics: super::metrics_args::MetricsArgs,
}

/// Flags of `models test` (no lake is read).
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// The folder of model `.sql` files.
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Models to take (as for `run`).
    #[arg(long = "select")]
    pub select: Vec<String>,
}

/// Flags of `models docs`.
#[derive(Debug, clap::Args)]
pub struct DocsArgs {
    #[command(flatten)]
    common: Args,
    /// Where to write the page.
    #[arg(long, default_value = "models.html")]
    pub out: PathBuf,
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

fn print_audits(model: &str, audits: &[AuditOutcome]) {
    for a in audits {
        let verdict = match (a.passed(), a.severity) {
            (true, _) => "passed".to_string(),
            (false, Severity::Blocking) => format!("FAILED ({} failing)", a.failing),
            (false, Severity::Warn) => format!("warning ({} failing)", a.failing),
        };
        println!("  audit {model} {}: {verdict}", a.name);
        for row in &a.sample {
            println!("    {row}");
        }
    }
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
            let ctx = session(&catalog).await.map_err(Failure::runtime)?;
            for p in &planned {
                let Some(model) = graph.model(&p.name) else {
                    continue;
                };
                let models = model.upstream_models.iter().map(|u| format!("gold.{u}"));
                let tables = model.upstream_tables.iter().map(|t| format!("silver.{t}"));
                let reads = models.chain(tables).collect::<Vec<_>>().join(", ");
                let why = if p.reasons.is_empty() {
                    "up to date".to_string()
                } else {
                    format!("runs: {}", p.reasons.join("; "))
                };
                println!("wave {} {}: {why} (reads {reads})", p.wave + 1, p.name);
                // Lineage needs the tables it reads; a model over a gold table not built yet
                // has none until then.
                if let Ok(lineage) =
                    column_lineage(&ctx, &model.sql_for_interval(EPOCH, FAR_FUTURE)).await
                {
                    for l in lineage {
                        let from = if l.sources.is_empty() {
                            "(no input column, e.g. count(*))".to_string()
                        } else {
                            l.sources.join(", ")
                        };
                        println!("    {} ← {from}", l.column);
                    }
                }
            }
            let runs = planned.iter().filter(|p| !p.reasons.is_empty()).count();
            println!("{runs} of {} models would run", planned.len());
            Ok(())
        }
        ModelsCommand::Run(args) => {
            let (catalog, graph) = open(&args.common).await?;
            let selected = graph.select(&args.common.select).map_err(Failure::config)?;
            let options = RunOptions {
                force: args.force,
                full_refresh: args.full_refresh,
            };
            let emitter = Arc::new(LineageEmitter::for_target(args.lineage.as_deref()));
            let mut lineage = BTreeMap::new();
            if emitter.enabled() {
                let ctx = session(&catalog).await.map_err(Failure::runtime)?;
                for m in graph.models().filter(|m| selected.contains(&m.name)) {
                    let sql = m.sql_for_interval(EPOCH, FAR_FUTURE);
                    if let Ok(columns) = column_lineage(&ctx, &sql).await {
                        lineage.insert(m.name.clone(), columns);
                    }
                }
            }
            let gold = catalog.in_namespace(GOLD).await.map_err(Failure::runtime)?;
            let observer = ModelLineage::new(emitter.clone(), catalog.clone(), gold, lineage);
            let export = args.metrics.start().await?;
            let outcome = run_observed(&catalog, &graph, &selected, options, &observer).await;
            record_model_reads(&args.common.lake, &catalog, &graph, &selected).await;
            let lineage_stats = emitter.close(Duration::from_secs(5)).await;
            export.metrics.lineage_dropped(lineage_stats.dropped);
            if let Ok(report) = &outcome {
                for r in &report.models {
                    let failed: Vec<String> = r
                        .audits
                        .iter()
                        .filter(|a| a.failing > 0)
                        .map(|a| a.name.clone())
                        .collect();
                    let status = match r.status {
                        ModelStatus::Published => "published",
                        ModelStatus::AuditFailed => "audit_failed",
                        ModelStatus::Failed(_) => "failed",
                        ModelStatus::Skipped { .. } => "skipped",
                    };
                    let rows = (r.status == ModelStatus::Published).then_some(r.rows);
                    export.metrics.model_run(
                        &r.name,
                        status,
                        rows,
                        r.elapsed.as_secs_f64(),
                        &failed,
                    );
                }
            }
            export.finish("models").await?;
            let report = outcome.map_err(Failure::runtime)?;
            let mut failures = Vec::new();
            for r in &report.models {
                let interval = r
                    .interval_start
                    .as_ref()
                    .map(|s| format!(" from {s}, {} rows replaced", r.replaced_rows))
                    .unwrap_or_default();
                match &r.status {
                    ModelStatus::Published => println!(
                        "model {}: {} rows in {} files{interval}, published snapshot {} ({:.2} s)",
                        r.name,
                        r.rows,
                        r.files,
                        r.snapshot_id.unwrap_or_default(),
                        r.elapsed.as_secs_f64()
                    ),
                    ModelStatus::AuditFailed => {
                        println!(
                            "model {}: NOT PUBLISHED, a blocking audit failed; readers keep the previous snapshot (the new one, {}, is staged on branch {})",
                            r.name,
                            r.snapshot_id.unwrap_or_default(),
                            strata_layers::gold::STAGE_BRANCH
                        );
                        failures.push(format!("{}: audit failed", r.name));
                    }
                    ModelStatus::Failed(e) => {
                        println!("model {}: FAILED: {e}", r.name);
                        failures.push(e.clone());
                    }
                    ModelStatus::Skipped { upstream } => {
                        println!("model {}: skipped, {GOLD}.{upstream} failed", r.name);
                    }
                }
                print_audits(&r.name, &r.audits);
            }
            let ran = report.models.len();
            println!(
                "{ran} models ran, {} up to date",
                selected.len().saturating_sub(ran)
            );
            if report.succeeded() {
                return Ok(());
            }
            let message = anyhow!("models not published: {}", failures.join("; "));
            let sql_failed = report
                .models
                .iter()
                .any(|m| matches!(m.status, ModelStatus::Failed(_)));
            let audit_failed = report
                .models
                .iter()
                .any(|m| matches!(m.status, ModelStatus::AuditFailed));
            Err(if sql_failed {
                Failure::config(message)
            } else if audit_failed {
                Failure::audit(message)
            } else {
                Failure::runtime(message)
            })
        }
        ModelsCommand::Test(args) => {
            let graph = ModelGraph::load(&args.models).map_err(Failure::config)?;
            let selected = graph.select(&args.select).map_err(Failure::config)?;
            let (mut passed, mut failed) = (0usize, 0usize);
            for model in graph.models().filter(|m| selected.contains(&m.name)) {
                let file = model
                    .sidecar
                    .as_ref()
                    .unwrap_or(&model.file)
                    .display()
                    .to_string();
                for test in &model.tests {
                    let out = run_unit_test(model, test, &file)
                        .await
                        .map_err(Failure::config)?;
                    if out.passed() {
                        passed += 1;
                        println!(
                            "test {}::{} passed ({:.0} ms)",
                            out.model,
                            out.test,
                            out.elapsed.as_secs_f64() * 1000.0
                        );
                    } else {
                        failed += 1;
                        println!("test {}::{} FAILED, rows differ:", out.model, out.test);
                        for line in &out.diff {
                            println!("    {line}");
                        }
                    }
                }
            }
            println!("{passed} tests passed, {failed} failed");
            if failed > 0 {
                return Err(Failure::runtime(anyhow!("{failed} model tests failed")));
            }
            Ok(())
        }
        ModelsCommand::Audit(args) => {
            let (catalog, graph) = open(args).await?;
            let selected = graph.select(&args.select).map_err(Failure::config)?;
            let found = audit_published(&catalog, &graph, &selected)
                .await
                .map_err(Failure::config)?;
            let mut blocking = 0usize;
            for (model, outcomes) in &found {
                print_audits(model, outcomes);
                blocking += outcomes.iter().filter(|a| a.blocks()).count();
            }
            println!(
                "{} audits on {} models, {blocking} blocking failures",
                found.iter().map(|(_, o)| o.len()).sum::<usize>(),
                found.len()
            );
            if blocking > 0 {
                return Err(Failure::audit(anyhow!("{blocking} audits failed")));
            }
            Ok(())
        }
        ModelsCommand::Docs(args) => {
            let (catalog, graph) = open(&args.common).await?;
            let facts = model_facts(&catalog, &graph)
                .await
                .map_err(Failure::runtime)?;
            std::fs::write(&args.out, docs_html(&graph, &facts)).map_err(Failure::runtime)?;
            println!(
                "wrote {} ({} models)",
                args.out.display(),
                graph.models().count()
            );
            Ok(())
        }
    }
}

/// Records the tables the selected models read in the lake's access log (it keeps them warm;
/// see `strata lake cool`). Best effort: a model whose SQL does not plan records nothing.
async fn record_model_reads(
    lake: &str,
    catalog: &SilverCatalog,
    graph: &ModelGraph,
    selected: &std::collections::BTreeSet<String>,
) {
    let Ok(lake) = strata_layers::lake::Lake::open(lake) else {
        return;
    };
    if !lake.url().starts_with("s3://") {
        return;
    }
    for model in graph.models().filter(|m| selected.contains(&m.name)) {
        if let Ok(tables) = tables_read(catalog, &model.sql_for_interval(EPOCH, FAR_FUTURE)).await {
            for table in tables {
                strata_layers::access::record_read(&lake, &table).await;
            }
        }
    }
}
