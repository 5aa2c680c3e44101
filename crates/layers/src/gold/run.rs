//! Planning and running models: each selected model whose SQL, inputs or upstream models
//! changed is recomputed on DataFusion over the lake, written as a snapshot staged on the
//! [`STAGE_BRANCH`] branch, audited there, and only then published as the table's `main`
//! (write-audit-publish): readers never see output that failed a blocking audit.
//!
//! A gold table's snapshot summary records what it was computed from: the model's fingerprint
//! ([`FINGERPRINT_KEY`]) and the snapshot id of every table it read ([`INPUTS_KEY`]). `plan`
//! compares them with the lake as it is now, so a re-run with nothing changed writes nothing.
//! Models run wave by wave ([`ModelGraph::levels`]); the models of one wave run concurrently.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::prelude::SessionContext;
use iceberg::spec::Operation;
use iceberg_datafusion::IcebergStaticTableProvider;

use super::audit::{AuditOutcome, ident, run_audits};
use super::dag::ModelGraph;
use super::incremental::{
    KeySet, check_output_interval, field_id, may_reach, newest_time, rows_before, timestamp_text,
};
use super::model::{GOLD, Materialization, Model};
use crate::error::{LayersError, Result};
use crate::silver::{
    IcebergTable, LiveFiles, RewritePlan, SilverAppend, SilverCatalog, WriteOptions,
    commit_rewrite, current_summary_property, publish_staged, read_data_files, ref_snapshot_id,
    session,
};

/// Summary key of a gold snapshot: the fingerprint of the model that computed it.
pub const FINGERPRINT_KEY: &str = "strata.model.fingerprint";
/// Summary key of a gold snapshot: `{"silver.orders": <snapshot id>, "gold.dim": …}` read.
pub const INPUTS_KEY: &str = "strata.model.inputs";

/// Why a model runs (or that it does not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedModel {
    /// The model.
    pub name: String,
    /// Its wave (0 first).
    pub wave: usize,
    /// Why it runs; empty when it is up to date.
    pub reasons: Vec<String>,
}

/// How a model's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// Its new snapshot passed every blocking audit and is `main`.
    Published,
    /// A blocking audit failed: readers stay on the previous snapshot; the new one is left
    /// staged on the [`STAGE_BRANCH`] branch for inspection.
    AuditFailed,
    /// Its SQL (or an audit's) could not run; the message names the file and why.
    Failed(String),
    /// A model it reads failed, so it did not run.
    Skipped {
        /// The failed upstream model.
        upstream: String,
    },
}

/// What running one model did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRun {
    /// The model.
    pub name: String,
    /// How it ended.
    pub status: ModelStatus,
    /// Rows the model output (for an incremental model, those of its interval).
    pub rows: u64,
    /// Data files written.
    pub files: usize,
    /// Rows of earlier runs replaced (incremental models).
    pub replaced_rows: u64,
    /// The snapshot committed (published, or staged when an audit failed).
    pub snapshot_id: Option<i64>,
    /// `@start` of an incremental run; `None` when the whole table was recomputed.
    pub interval_start: Option<String>,
    /// The audits' outcomes.
    pub audits: Vec<AuditOutcome>,
    /// Wall time.
    pub elapsed: Duration,
}

impl ModelRun {
    fn not_run(name: &str, status: ModelStatus) -> ModelRun {
        ModelRun {
            name: name.to_string(),
            status,
            rows: 0,
            files: 0,
            replaced_rows: 0,
            snapshot_id: None,
            interval_start: None,
            audits: Vec::new(),
            elapsed: Duration::ZERO,
        }
    }
}

/// Everything a `run` did, model by model in run order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Each model that had a reason to run (or was skipped).
    pub models: Vec<ModelRun>,
}

impl RunReport {
    /// Whether every model that ran was published.
    pub fn succeeded(&self) -> bool {
        self.models
            .iter()
            .all(|m| m.status == ModelStatus::Published)
    }
}

/// How `run` treats up-to-date and incremental models.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Run the selected models even when nothing they depend on changed.
    pub force: bool,
    /// Recompute incremental models over the whole time line.
    pub full_refresh: bool,
}

/// The branch a model's new snapshot is staged on while its audits run.
pub const STAGE_BRANCH: &str = "strata-audit";

/// The current snapshot id of every table a model reads (`silver.<t>` / `gold.<m>`), or
/// `None` for a table that does not exist yet.
async fn input_versions(
    silver: &SilverCatalog,
    gold: &SilverCatalog,
    model: &Model,
) -> Result<BTreeMap<String, Option<i64>>> {
    let mut versions = BTreeMap::new();
    let tables = model.upstream_tables.iter().map(|t| (silver, "silver", t));
    let models = model.upstream_models.iter().map(|t| (gold, GOLD, t));
    for (catalog, ns, name) in tables.chain(models) {
        let id = match catalog.load(name).await {
            Ok(t) => t.metadata().current_snapshot_id(),
            Err(_) => None,
        };
        versions.insert(format!("{ns}.{name}"), id);
    }
    Ok(versions)
}

/// What `run` would do for the `selected` models, wave by wave, and why; nothing is written
/// (the gold namespace is created if missing).
pub async fn plan(
    silver: &SilverCatalog,
    graph: &ModelGraph,
    selected: &BTreeSet<String>,
) -> Result<Vec<PlannedModel>> {
    let gold = silver.in_namespace(GOLD).await?;
    let mut planned: Vec<PlannedModel> = Vec::new();
    let mut running: HashSet<String> = HashSet::new();
    for (wave, level) in graph.levels().iter().enumerate() {
        for name in level.iter().filter(|n| selected.contains(*n)) {
            let Some(model) = graph.model(name) else {
                continue;
            };
            let mut reasons = Vec::new();
            match gold.load(name).await {
                Err(_) => reasons.push("new model (no gold table yet)".to_string()),
                Ok(table) => {
                    let recorded_fp = current_summary_property(&table, FINGERPRINT_KEY);
                    if recorded_fp.as_deref() != Some(model.fingerprint.as_str()) {
                        reasons.push("its SQL or header changed".to_string());
                    }
                    let recorded: BTreeMap<String, Option<i64>> =
                        current_summary_property(&table, INPUTS_KEY)
                            .and_then(|j| serde_json::from_str(&j).ok())
                            .unwrap_or_default();
                    let now = input_versions(silver, &gold, model).await?;
                    for (input, version) in &now {
                        let upstream_runs = input
                            .strip_prefix("gold.")
                            .is_some_and(|m| running.contains(m));
                        if upstream_runs {
                            reasons.push(format!("upstream model {input} runs"));
                        } else if recorded.get(input) != Some(version) {
                            reasons.push(format!("input {input} changed"));
                        }
                    }
                }
            }
            if !reasons.is_empty() {
                running.insert(name.clone());
            }
            planned.push(PlannedModel {
                name: name.clone(),
                wave,
                reasons,
            });
        }
    }
    Ok(planned)
}

/// Told when each model starts and ends (lineage, metrics). Calls come from the run's task and
/// must be quick.
pub trait ModelObserver: Send + Sync {
    /// A model starts computing.
    fn started(&self, _model: &Model) {}
    /// A model that started has ended (published, audit failed, or failed).
    fn finished(&self, _model: &Model, _run: &ModelRun) {}
}

/// An observer that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl ModelObserver for NoObserver {}

/// Runs the planned models that have a reason to run (all of them with `force`), wave by wave,
/// and reports each. A model whose SQL fails or whose blocking audit fails is not published,
/// and the models that read it, directly or not, are skipped; other models still run.
pub async fn run(
    silver: &SilverCatalog,
    graph: &ModelGraph,
    selected: &BTreeSet<String>,
    options: RunOptions,
) -> Result<RunReport> {
    run_observed(silver, graph, selected, options, &NoObserver).await
}

/// [`run`], telling `observer` when each model starts and ends.
pub async fn run_observed(
    silver: &SilverCatalog,
    graph: &ModelGraph,
    selected: &BTreeSet<String>,
    options: RunOptions,
    observer: &dyn ModelObserver,
) -> Result<RunReport> {
    let gold = silver.in_namespace(GOLD).await?;
    let planned = plan(silver, graph, selected).await?;
    let waves = planned.iter().map(|p| p.wave).max().map_or(0, |w| w + 1);
    let mut report = RunReport::default();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for wave in 0..waves {
        let mut models: Vec<&Model> = Vec::new();
        for p in planned
            .iter()
            .filter(|p| p.wave == wave && (options.force || !p.reasons.is_empty()))
        {
            let Some(model) = graph.model(&p.name) else {
                continue;
            };
            match graph.upstream(&p.name).intersection(&failed).next() {
                Some(upstream) => {
                    report.models.push(ModelRun::not_run(
                        &p.name,
                        ModelStatus::Skipped {
                            upstream: upstream.clone(),
                        },
                    ));
                    failed.insert(p.name.clone());
                }
                None => models.push(model),
            }
        }
        for m in &models {
            observer.started(m);
        }
        let results = futures::future::join_all(
            models
                .iter()
                .map(|m| run_one(silver, &gold, m, options.full_refresh)),
        )
        .await;
        for (model, result) in models.iter().zip(results) {
            let run = match result {
                Ok(run) => run,
                Err(e @ LayersError::Model { .. }) => {
                    ModelRun::not_run(&model.name, ModelStatus::Failed(e.to_string()))
                }
                Err(other) => return Err(other),
            };
            if run.status != ModelStatus::Published {
                failed.insert(model.name.clone());
            }
            observer.finished(model, &run);
            report.models.push(run);
        }
    }
    Ok(report)
}

/// What a run replaces in the table.
enum Replace {
    /// Every row.
    All,
    /// Rows at or after this instant (µs).
    FromTime(i64),
    /// Rows whose grain key the output has.
    Keys,
}

/// Computes one model, stages its new snapshot, audits it and publishes it.
async fn run_one(
    silver: &SilverCatalog,
    gold: &SilverCatalog,
    model: &Model,
    full_refresh: bool,
) -> Result<ModelRun> {
    let started = Instant::now();
    let file = model.file.display().to_string();
    let query_err = |e: datafusion::error::DataFusionError| LayersError::Model {
        file: file.clone(),
        at: String::new(),
        problem: e.to_string(),
        hint: "fix the model's SQL (tables: silver by bare name, other models as gold.<name>)",
    };
    let inputs = input_versions(silver, gold, model).await?;
    let ctx = session(silver).await?;
    let existing = gold.load(&model.name).await.ok();
    let same_sql = existing.as_ref().is_some_and(|t| {
        current_summary_property(t, FINGERPRINT_KEY).as_deref() == Some(model.fingerprint.as_str())
    });
    let this_table = format!("lake.{GOLD}.{}", ident(&model.name));
    let incremental_from = match (&model.header.time_column, same_sql && !full_refresh) {
        (Some(column), true) => newest_time(&ctx, &this_table, column, &file)
            .await?
            .map(|newest| newest.saturating_sub(model.lookback_micros)),
        _ => None,
    };
    let (sql_start, replace) = match model.header.materialization {
        Materialization::Full => (0, Replace::All),
        Materialization::IncrementalByTime => match incremental_from {
            Some(start) => (start, Replace::FromTime(start)),
            None => (0, Replace::All),
        },
        Materialization::IncrementalByKey if same_sql && !full_refresh => {
            (incremental_from.unwrap_or(0), Replace::Keys)
        }
        Materialization::IncrementalByKey => (0, Replace::All),
    };
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    let sql = model.sql_for_interval(&timestamp_text(sql_start), &timestamp_text(now_us));
    let df = ctx.sql(&sql).await.map_err(query_err)?;
    let schema = storable(df.schema().as_arrow());
    let batches = df.collect().await.map_err(query_err)?;
    let batches = batches
        .iter()
        .map(|b| to_storable(b, &schema))
        .collect::<Result<Vec<_>>>()?;
    let table = gold
        .ensure_table_partitioned(&model.name, &schema, &model.header.partition_by)
        .await?;
    let live = LiveFiles::read(&table).await?;

    // What stays of earlier runs: files outside the interval or without replaced keys are
    // untouched; the others are rewritten without the replaced rows.
    let mut remove: HashSet<String> = HashSet::new();
    let mut kept: Vec<RecordBatch> = Vec::new();
    let mut replaced_rows = 0u64;
    match &replace {
        Replace::All => {
            for e in live.data_files() {
                replaced_rows += e.record_count();
                remove.insert(e.file_path().to_string());
            }
        }
        Replace::FromTime(start) => {
            let column = model.header.time_column.as_deref().unwrap_or_default();
            check_output_interval(&batches, column, *start, &file)?;
            let id = field_id(&table, column);
            let touched: Vec<_> = live
                .data_files()
                .filter(|e| id.is_none_or(|id| may_reach(e, id, *start)))
                .cloned()
                .collect();
            for b in read_data_files(&table, &touched).await? {
                let before = rows_before(&b, column, *start)?;
                replaced_rows += (b.num_rows() - before.num_rows()) as u64;
                kept.push(before);
            }
            remove.extend(touched.iter().map(|e| e.file_path().to_string()));
        }
        Replace::Keys => {
            let keys = KeySet::of(&batches, &model.header.grain, &file)?;
            if !keys.is_empty() {
                for e in live.data_files() {
                    let mut rest = Vec::new();
                    let mut dropped = 0usize;
                    for b in read_data_files(&table, std::slice::from_ref(e)).await? {
                        let (k, d) = keys.rows_not_in(&b)?;
                        dropped += d;
                        rest.push(k);
                    }
                    if dropped > 0 {
                        replaced_rows += dropped as u64;
                        remove.insert(e.file_path().to_string());
                        kept.extend(rest);
                    }
                }
            }
        }
    }

    let mut writer = SilverAppend::start(&table, &WriteOptions::default()).await?;
    let mut rows = 0u64;
    for b in &batches {
        rows += b.num_rows() as u64;
        writer.write(b).await?;
    }
    for b in &kept {
        writer.write(b).await?;
    }
    let files = writer.into_files().await?;
    let written = files.len();
    let summary = HashMap::from([
        (FINGERPRINT_KEY.to_string(), model.fingerprint.clone()),
        (
            INPUTS_KEY.to_string(),
            serde_json::to_string(&inputs).map_err(|e| LayersError::Internal(e.to_string()))?,
        ),
    ]);
    let stage = RewritePlan {
        operation: Operation::Overwrite,
        merge_manifests: false,
        stage_on: Some(STAGE_BRANCH.to_string()),
    };
    let Some((staged, _)) =
        commit_rewrite(gold, &table, &live, &remove, files, summary, stage).await?
    else {
        return Err(LayersError::CommitConflict {
            table: format!("{GOLD}.{}", model.name),
            attempts: 1,
        });
    };
    let staged_id = ref_snapshot_id(&staged, STAGE_BRANCH);
    let audits = match staged_id {
        Some(id) if !model.audits.is_empty() => {
            let audit_ctx = session(silver).await?;
            let this = register_snapshot(&audit_ctx, &staged, id, &model.name).await?;
            run_audits(&audit_ctx, &this, &model.audits, &file).await?
        }
        _ => Vec::new(),
    };
    let (status, snapshot_id) = if audits.iter().any(AuditOutcome::blocks) {
        (ModelStatus::AuditFailed, staged_id)
    } else {
        let published = publish_staged(gold, &staged, STAGE_BRANCH).await?;
        (
            ModelStatus::Published,
            published.metadata().current_snapshot_id(),
        )
    };
    Ok(ModelRun {
        name: model.name.clone(),
        status,
        rows,
        files: written,
        replaced_rows,
        snapshot_id,
        interval_start: match replace {
            Replace::All => None,
            _ => Some(timestamp_text(sql_start)),
        },
        audits,
        elapsed: started.elapsed(),
    })
}

/// Registers snapshot `snapshot_id` of `table` in `ctx` as `staged.gold.<name>` and returns
/// that (quoted) name.
pub(crate) async fn register_snapshot(
    ctx: &SessionContext,
    table: &IcebergTable,
    snapshot_id: i64,
    name: &str,
) -> Result<String> {
    let provider =
        IcebergStaticTableProvider::try_new_from_table_snapshot(table.clone(), snapshot_id)
            .await
            .map_err(|e| LayersError::Iceberg {
                context: format!("reading the staged snapshot {snapshot_id} of gold.{name}"),
                message: e.to_string(),
            })?;
    let schema = MemorySchemaProvider::new();
    schema
        .register_table(name.to_string(), Arc::new(provider))
        .map_err(|e| LayersError::Internal(e.to_string()))?;
    let catalog = MemoryCatalogProvider::new();
    catalog
        .register_schema(GOLD, Arc::new(schema))
        .map_err(|e| LayersError::Internal(e.to_string()))?;
    ctx.register_catalog("staged", Arc::new(catalog));
    Ok(format!("staged.{GOLD}.{}", ident(name)))
}

/// Runs the audits of the `selected` models against their published (`main`) snapshots.
pub async fn audit_published(
    silver: &SilverCatalog,
    graph: &ModelGraph,
    selected: &BTreeSet<String>,
) -> Result<Vec<(String, Vec<AuditOutcome>)>> {
    let ctx = session(silver).await?;
    let mut found = Vec::new();
    for level in graph.levels() {
        for name in level.iter().filter(|n| selected.contains(*n)) {
            let Some(model) = graph.model(name) else {
                continue;
            };
            if model.audits.is_empty() {
                continue;
            }
            let this = format!("lake.{GOLD}.{}", ident(name));
            let outcomes = run_audits(
                &ctx,
                &this,
                &model.audits,
                &model.file.display().to_string(),
            )
            .await?;
            found.push((name.clone(), outcomes));
        }
    }
    Ok(found)
}
/// The schema a gold table stores: DataFusion's view types as their plain forms (Iceberg has
/// no view types), every column nullable as Iceberg columns written by a query are.
fn storable(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            Field::new(f.name(), t, true)
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn to_storable(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| LayersError::Internal(format!("storing a model's rows: {e}")))?;
    RecordBatch::try_new(schema.clone(), columns)
        .map_err(|e| LayersError::Internal(format!("storing a model's rows: {e}")))
}
