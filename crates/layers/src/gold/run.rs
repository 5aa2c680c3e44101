//! Planning and running models: each selected model whose SQL, inputs or upstream models
//! changed is recomputed on DataFusion over the lake and replaces its gold table in one
//! overwrite commit.
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

use super::dag::ModelGraph;
use super::model::{GOLD, Model};
use crate::error::{LayersError, Result};
use crate::silver::{
    IcebergTable, LiveFiles, SilverAppend, SilverCatalog, WriteOptions, commit_overwrite,
    current_summary_property, session,
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

/// What running one model did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRun {
    /// The model.
    pub name: String,
    /// Rows written to its gold table.
    pub rows: u64,
    /// Data files written.
    pub files: usize,
    /// The gold snapshot committed.
    pub snapshot_id: Option<i64>,
    /// Wall time.
    pub elapsed: Duration,
}

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

/// Runs the planned models that have a reason to run (all of them with `force`), wave by wave,
/// and returns what each wrote. The first failure stops the run after its wave: later waves,
/// which may read its table, do not run.
pub async fn run(
    silver: &SilverCatalog,
    graph: &ModelGraph,
    selected: &BTreeSet<String>,
    force: bool,
) -> Result<Vec<ModelRun>> {
    let gold = silver.in_namespace(GOLD).await?;
    let planned = plan(silver, graph, selected).await?;
    let waves = planned.iter().map(|p| p.wave).max().map_or(0, |w| w + 1);
    let mut runs = Vec::new();
    for wave in 0..waves {
        let models: Vec<&Model> = planned
            .iter()
            .filter(|p| p.wave == wave && (force || !p.reasons.is_empty()))
            .filter_map(|p| graph.model(&p.name))
            .collect();
        if models.is_empty() {
            continue;
        }
        // A new session per wave: it lists the gold tables the waves before created.
        let results =
            futures::future::join_all(models.iter().map(|m| run_one(silver, &gold, m))).await;
        for r in results {
            runs.push(r?);
        }
    }
    Ok(runs)
}

/// Computes one model and replaces its gold table.
async fn run_one(silver: &SilverCatalog, gold: &SilverCatalog, model: &Model) -> Result<ModelRun> {
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
    let df = ctx.sql(&model.sql).await.map_err(query_err)?;
    let schema = storable(df.schema().as_arrow());
    let batches = df.collect().await.map_err(query_err)?;
    let batches = batches
        .iter()
        .map(|b| to_storable(b, &schema))
        .collect::<Result<Vec<_>>>()?;
    let table = gold
        .ensure_table_partitioned(&model.name, &schema, &model.header.partition_by)
        .await?;
    let (table, rows, files) = replace_rows(gold, table, &batches, model, &inputs).await?;
    Ok(ModelRun {
        name: model.name.clone(),
        rows,
        files,
        snapshot_id: table.metadata().current_snapshot_id(),
        elapsed: started.elapsed(),
    })
}

/// Replaces every row of `table` with `batches` in one overwrite commit recording the model's
/// fingerprint and inputs.
async fn replace_rows(
    gold: &SilverCatalog,
    table: IcebergTable,
    batches: &[RecordBatch],
    model: &Model,
    inputs: &BTreeMap<String, Option<i64>>,
) -> Result<(IcebergTable, u64, usize)> {
    let mut writer = SilverAppend::start(&table, &WriteOptions::default()).await?;
    let mut rows = 0u64;
    for b in batches {
        rows += b.num_rows() as u64;
        writer.write(b).await?;
    }
    let files = writer.into_files().await?;
    let written = files.len();
    let live = LiveFiles::read(&table).await?;
    let remove: HashSet<String> = live
        .data_files()
        .map(|e| e.file_path().to_string())
        .collect();
    let summary = HashMap::from([
        (FINGERPRINT_KEY.to_string(), model.fingerprint.clone()),
        (
            INPUTS_KEY.to_string(),
            serde_json::to_string(inputs).map_err(|e| LayersError::Internal(e.to_string()))?,
        ),
    ]);
    match commit_overwrite(gold, &table, &live, &remove, files, summary).await? {
        Some((table, _)) => Ok((table, rows, written)),
        None => Err(LayersError::CommitConflict {
            table: format!("{GOLD}.{}", model.name),
            attempts: 1,
        }),
    }
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
