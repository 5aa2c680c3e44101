//! The data catalog: every dataset Strata knows, with what a user needs to find and trust it.
//!
//! Built from three sources, none of them a database of its own:
//! - **the Iceberg catalog** (silver and gold tables): schema with column docs, row count and
//!   time of the current snapshot;
//! - **the specs**: pipeline specs (owner, tags, description; `mask` steps make PII tags) and
//!   model headers (owner, tags, description, column descriptions);
//! - **the OpenLineage events** the jobs wrote (an NDJSON file): the graph (upstream /
//!   downstream), each dataset's last run and its quality results, and column lineage, through
//!   which PII tags travel downstream (a gold column computed from a masked silver column is
//!   PII too).
//!
//! [`datahub`] exports the result as DataHub metadata change proposals.

pub mod datahub;
mod graph;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use strata_core::PipelineSpec;
use strata_core::spec::StepSpec;
use strata_layers::gold::ModelGraph;
use strata_layers::silver::SilverCatalog;

pub use graph::LineageGraph;

use crate::error::{Result, RuntimeError};
use crate::lineage::dataset_for_location;

/// The tag of columns holding personal data.
pub const PII: &str = "pii";

/// One column of a dataset.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ColumnEntry {
    /// Its name.
    pub name: String,
    /// Its type, as Iceberg names it.
    #[serde(rename = "type")]
    pub data_type: String,
    /// From the table's column doc or the model header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `pii` for masked columns and the columns computed from them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A quality result of the last run that wrote a dataset.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QualityResult {
    /// `expectation`, `quarantine`, or an audit's kind.
    pub assertion: String,
    /// What was checked, with its counts.
    pub name: String,
    /// Whether it passed.
    pub success: bool,
}

/// The last run that wrote a dataset.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastRun {
    /// The job (`batch.orders`, `model.fact_orders`).
    pub job: String,
    /// `COMPLETE`, `FAIL`, …
    pub state: String,
    /// When the run ended.
    pub time: String,
}

/// Everything the catalog says about one dataset.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DatasetEntry {
    /// Short name: `silver.orders`, `gold.fact_orders`, `bronze.iot`, `kafka.<topic>`.
    pub name: String,
    /// `bronze`, `silver`, `gold`, `kafka`, or `external`.
    pub layer: String,
    /// The OpenLineage namespace and name (how lineage events name it).
    pub namespace: String,
    /// See `namespace`.
    pub dataset: String,
    /// For humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who answers for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Free tags (`pii` when a column is).
    pub tags: Vec<String>,
    /// Columns (tables only).
    pub columns: Vec<ColumnEntry>,
    /// Hidden partitioning of the table's default spec (`day(ts)`, `bucket(16, id)`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitioning: Vec<String>,
    /// Rows in the current snapshot (tables only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub row_count: Option<u64>,
    /// When the current snapshot was committed: its freshness.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<String>,
    /// The current snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<i64>,
    /// The last run that wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<LastRun>,
    /// That run's expectation, quarantine and audit results.
    pub quality: Vec<QualityResult>,
    /// Datasets it is computed from (direct).
    pub upstream: Vec<String>,
    /// Datasets computed from it (direct).
    pub downstream: Vec<String>,
}

impl DatasetEntry {
    fn new(namespace: &str, dataset: &str) -> Self {
        let (layer, name) = short_name(namespace, dataset);
        DatasetEntry {
            name,
            layer,
            namespace: namespace.to_string(),
            dataset: dataset.to_string(),
            description: None,
            owner: None,
            tags: Vec::new(),
            columns: Vec::new(),
            partitioning: Vec::new(),
            row_count: None,
            last_commit: None,
            snapshot_id: None,
            last_run: None,
            quality: Vec::new(),
            upstream: Vec::new(),
            downstream: Vec::new(),
        }
    }

    /// The OpenLineage key.
    fn key(&self) -> (String, String) {
        (self.namespace.clone(), self.dataset.clone())
    }
}

/// `(layer, short name)` of an OpenLineage dataset.
pub fn short_name(namespace: &str, dataset: &str) -> (String, String) {
    let path = dataset.trim_end_matches('/');
    let mut parts = path.rsplit('/');
    let last = parts.next().unwrap_or(path);
    let parent = parts.next().unwrap_or("");
    if namespace.starts_with("kafka://") {
        return ("kafka".into(), format!("kafka.{dataset}"));
    }
    if let Some(source) = last.strip_prefix("source=")
        && parent == "bronze"
    {
        return ("bronze".into(), format!("bronze.{source}"));
    }
    match parent {
        "silver" | "gold" => (parent.to_string(), format!("{parent}.{last}")),
        _ => ("external".into(), format!("{namespace}/{dataset}")),
    }
}

/// What the catalog is built from.
pub struct CatalogInputs<'a> {
    /// The lake's Iceberg catalog.
    pub catalog: &'a SilverCatalog,
    /// Pipeline specs (owner, tags, description, masks).
    pub pipelines: &'a [PipelineSpec],
    /// The gold models, when a models folder exists.
    pub models: Option<&'a ModelGraph>,
    /// OpenLineage events, oldest first.
    pub events: &'a [Value],
    /// The semantic layer's metrics (the analytics API's serve config): the graph's last hop.
    pub metrics: &'a [MetricNode],
}

/// A semantic-layer metric, as the catalog shows it: a dataset downstream of the tables it
/// reads (`metric.<name>`, layer `metric`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricNode {
    /// The metric's name (`GET /metrics/{name}`).
    pub name: String,
    /// What it means.
    pub description: Option<String>,
    /// The tables it reads, as short names (`gold.fact_orders`, `silver.iot_events`).
    pub tables: Vec<String>,
}

/// The OpenLineage-style namespace of metric datasets.
pub const METRIC_NAMESPACE: &str = "strata-metrics";

/// Reads OpenLineage events from NDJSON text; a line that is not JSON is an error naming it.
pub fn parse_events(text: &str, file: &str) -> Result<Vec<Value>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| RuntimeError::Config {
                what: format!("{file}:{}", i + 1),
                problem: format!("not an OpenLineage event (JSON): {e}"),
                hint: "pass the NDJSON file the jobs' --lineage wrote",
            })
        })
        .collect()
}

/// Builds the catalog: every table, and every dataset the lineage events name.
pub async fn build(inputs: &CatalogInputs<'_>) -> Result<Vec<DatasetEntry>> {
    let graph = LineageGraph::from_events(inputs.events);
    let mut entries: BTreeMap<(String, String), DatasetEntry> = BTreeMap::new();
    for namespace in ["silver", "gold"] {
        let catalog = inputs.catalog.in_namespace(namespace).await?;
        for table in catalog.table_names().await? {
            let loc = dataset_for_location(&catalog.table_location(&table));
            let mut entry = DatasetEntry::new(&loc.namespace, &loc.name);
            describe_table(&catalog, &table, &mut entry).await?;
            entries.insert(entry.key(), entry);
        }
    }
    for key in graph.datasets() {
        entries
            .entry(key.clone())
            .or_insert_with(|| DatasetEntry::new(&key.0, &key.1));
    }
    let by_name: BTreeMap<String, (String, String)> = entries
        .values()
        .map(|e| (e.name.clone(), e.key()))
        .collect();
    for spec in inputs.pipelines {
        apply_pipeline(spec, &by_name, &mut entries);
    }
    if let Some(models) = inputs.models {
        for model in models.models() {
            let Some(key) = by_name.get(&format!("gold.{}", model.name)) else {
                continue;
            };
            let Some(entry) = entries.get_mut(key) else {
                continue;
            };
            let h = &model.header;
            entry.owner = h.owner.clone().or(entry.owner.take());
            entry.description = h.description.clone().or(entry.description.take());
            merge_tags(&mut entry.tags, &h.tags);
            for column in &mut entry.columns {
                if let Some(d) = h.columns.get(&column.name) {
                    column.description = Some(d.clone());
                }
            }
        }
    }
    let names: BTreeMap<(String, String), String> = entries
        .iter()
        .map(|(k, e)| (k.clone(), e.name.clone()))
        .collect();
    let display = |k: &(String, String)| names.get(k).cloned().unwrap_or_else(|| k.1.clone());
    for (key, entry) in entries.iter_mut() {
        entry.upstream = graph.upstream(key).iter().map(display).collect();
        entry.downstream = graph.downstream(key).iter().map(display).collect();
        if let Some(run) = graph.last_run(key) {
            entry.last_run = Some(run.run.clone());
            entry.quality = run.quality.clone();
        }
    }
    add_metrics(inputs.metrics, &mut entries);
    propagate_pii(&graph, &mut entries);
    for entry in entries.values_mut() {
        if entry
            .columns
            .iter()
            .any(|c| c.tags.iter().any(|t| t == PII))
        {
            merge_tags(&mut entry.tags, &[PII.to_string()]);
        }
    }
    Ok(entries.into_values().collect())
}

/// Adds each metric as a dataset downstream of the tables it reads (a table the catalog does
/// not know yet is still named upstream: the metric says what it needs).
fn add_metrics(metrics: &[MetricNode], entries: &mut BTreeMap<(String, String), DatasetEntry>) {
    for metric in metrics {
        let name = format!("metric.{}", metric.name);
        let mut entry = DatasetEntry::new(METRIC_NAMESPACE, &metric.name);
        entry.name = name.clone();
        entry.layer = "metric".into();
        entry.description = metric.description.clone();
        entry.upstream = metric.tables.clone();
        for table in entries
            .values_mut()
            .filter(|e| metric.tables.contains(&e.name))
        {
            if !table.downstream.contains(&name) {
                table.downstream.push(name.clone());
            }
        }
        entries.insert(entry.key(), entry);
    }
}

/// `day(ts)` from Iceberg's transform name (`day`, `bucket[16]`, `identity`) and its column.
fn partition_text(transform: &str, column: &str) -> String {
    match transform.split_once('[') {
        _ if transform == "identity" => column.to_string(),
        Some((name, arg)) => format!("{name}({}, {column})", arg.trim_end_matches(']')),
        None => format!("{transform}({column})"),
    }
}

/// Reads every pipeline spec (`*.yaml`, `*.yml`, `*.json`) in `dir`, sorted by file name; a
/// file that is not a spec is skipped with a warning (the catalog is still useful without it).
pub fn load_pipelines(dir: &std::path::Path) -> Vec<PipelineSpec> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<std::path::PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(&f).ok()?;
            let spec = if f.extension().is_some_and(|e| e == "json") {
                PipelineSpec::from_json(&text)
            } else {
                PipelineSpec::from_yaml(&text)
            };
            match spec {
                Ok(spec) => Some(spec),
                Err(e) => {
                    tracing::warn!(file = %f.display(), error = %e, "not a pipeline spec: skipped");
                    None
                }
            }
        })
        .collect()
}

fn merge_tags(tags: &mut Vec<String>, more: &[String]) {
    for t in more {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
}

async fn describe_table(
    catalog: &SilverCatalog,
    table: &str,
    entry: &mut DatasetEntry,
) -> Result<()> {
    let loaded = catalog.load(table).await?;
    let metadata = loaded.metadata();
    entry.columns = metadata
        .current_schema()
        .as_struct()
        .fields()
        .iter()
        .map(|f| ColumnEntry {
            name: f.name.clone(),
            data_type: f.field_type.to_string(),
            description: f.doc.clone(),
            tags: Vec::new(),
        })
        .collect();
    let schema = metadata.current_schema();
    entry.partitioning = metadata
        .default_partition_spec()
        .fields()
        .iter()
        .map(|f| {
            let source = schema
                .field_by_id(f.source_id)
                .map_or_else(|| f.name.clone(), |c| c.name.clone());
            partition_text(&f.transform.to_string(), &source)
        })
        .collect();
    if let Some(snapshot) = metadata.current_snapshot() {
        entry.snapshot_id = Some(snapshot.snapshot_id());
        entry.row_count = snapshot
            .summary()
            .additional_properties
            .get("total-records")
            .and_then(|v| v.parse().ok());
        entry.last_commit = Some(rfc3339_millis(snapshot.timestamp_ms()));
    }
    if let Some(d) = metadata.properties().get("comment") {
        entry.description = Some(d.clone());
    }
    Ok(())
}

/// `2026-12-07T10:00:00.123Z` from milliseconds since the epoch.
pub fn rfc3339_millis(ms: i64) -> String {
    arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Owner, tags, description and PII columns of the silver table a pipeline writes.
fn apply_pipeline(
    spec: &PipelineSpec,
    by_name: &BTreeMap<String, (String, String)>,
    entries: &mut BTreeMap<(String, String), DatasetEntry>,
) {
    let Some(entry) = by_name
        .get(&format!("silver.{}", spec.name))
        .and_then(|k| entries.get_mut(k))
    else {
        return;
    };
    entry.description = spec.description.clone().or(entry.description.take());
    entry.owner = spec.owner.clone().or(entry.owner.take());
    merge_tags(&mut entry.tags, &spec.tags);
    let masked: BTreeSet<&str> = spec
        .steps
        .iter()
        .filter_map(|s| match s {
            StepSpec::Mask(m) => Some(m.columns.keys().map(String::as_str)),
            _ => None,
        })
        .flatten()
        .collect();
    for column in &mut entry.columns {
        if masked.contains(column.name.as_str()) {
            merge_tags(&mut column.tags, &[PII.to_string()]);
        }
    }
}

/// Tags a column PII when its column lineage reads a PII column, until nothing changes (a
/// chain silver → gold → gold is followed to its end).
fn propagate_pii(graph: &LineageGraph, entries: &mut BTreeMap<(String, String), DatasetEntry>) {
    loop {
        let pii: BTreeSet<(String, String, String)> = entries
            .iter()
            .flat_map(|(k, e)| {
                e.columns
                    .iter()
                    .filter(|c| c.tags.iter().any(|t| t == PII))
                    .map(move |c| (k.0.clone(), k.1.clone(), c.name.clone()))
            })
            .collect();
        let mut changed = false;
        for (key, entry) in entries.iter_mut() {
            for column in &mut entry.columns {
                if column.tags.iter().any(|t| t == PII) {
                    continue;
                }
                let reads_pii = graph
                    .column_inputs(key, &column.name)
                    .iter()
                    .any(|input| pii.contains(input));
                if reads_pii {
                    column.tags.push(PII.to_string());
                    changed = true;
                }
            }
        }
        if !changed {
            return;
        }
    }
}

/// The entry named `name`: a short name (`silver.orders`), a bare table name when only one
/// layer has it, or an OpenLineage `namespace/name`.
pub fn find<'a>(entries: &'a [DatasetEntry], name: &str) -> Result<&'a DatasetEntry> {
    let exact = entries
        .iter()
        .find(|e| e.name == name || format!("{}/{}", e.namespace, e.dataset) == name);
    if let Some(e) = exact {
        return Ok(e);
    }
    let bare: Vec<&DatasetEntry> = entries
        .iter()
        .filter(|e| e.name.split_once('.').is_some_and(|(_, t)| t == name))
        .collect();
    match bare.as_slice() {
        [one] => Ok(one),
        [] => Err(RuntimeError::Config {
            what: name.to_string(),
            problem: "no such dataset in the catalog".into(),
            hint: "`strata catalog list` shows every dataset",
        }),
        many => Err(RuntimeError::Config {
            what: name.to_string(),
            problem: format!(
                "ambiguous: {}",
                many.iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            hint: "name the layer too (`silver.orders`)",
        }),
    }
}

/// The datasets upstream (or downstream) of `start`, transitively, nearest first, each with its
/// distance.
pub fn walk(entries: &[DatasetEntry], start: &str, upstream: bool) -> Vec<(usize, String)> {
    let by_name: BTreeMap<&str, &DatasetEntry> =
        entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut seen = BTreeSet::from([start.to_string()]);
    let mut frontier = vec![start.to_string()];
    let mut out = Vec::new();
    let mut depth = 0;
    while !frontier.is_empty() {
        depth += 1;
        let mut next = Vec::new();
        for name in &frontier {
            let Some(e) = by_name.get(name.as_str()) else {
                continue;
            };
            let edges = if upstream { &e.upstream } else { &e.downstream };
            for n in edges {
                if seen.insert(n.clone()) {
                    out.push((depth, n.clone()));
                    next.push(n.clone());
                }
            }
        }
        frontier = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_follow_the_lake_layout() {
        assert_eq!(
            short_name("file", "/x/lake/catalog/warehouse/silver/orders"),
            ("silver".into(), "silver.orders".into())
        );
        assert_eq!(
            short_name("s3://b", "lake/catalog/warehouse/gold/fact_orders"),
            ("gold".into(), "gold.fact_orders".into())
        );
        assert_eq!(
            short_name("file", "/x/lake/bronze/source=iot"),
            ("bronze".into(), "bronze.iot".into())
        );
        assert_eq!(
            short_name("kafka://127.0.0.1:9092", "iot"),
            ("kafka".into(), "kafka.iot".into())
        );
        assert_eq!(
            short_name("postgres://db:5432", "shop.public.customers"),
            (
                "external".into(),
                "postgres://db:5432/shop.public.customers".into()
            )
        );
    }

    #[test]
    fn a_walk_follows_edges_transitively_without_looping() {
        let mut a = DatasetEntry::new("file", "/l/bronze/source=a");
        let mut b = DatasetEntry::new("file", "/l/silver/b");
        let mut c = DatasetEntry::new("file", "/l/gold/c");
        a.downstream = vec!["silver.b".into()];
        b.upstream = vec!["bronze.a".into()];
        b.downstream = vec!["gold.c".into()];
        c.upstream = vec!["silver.b".into(), "gold.c".into()];
        let entries = vec![a, b, c];
        assert_eq!(
            walk(&entries, "gold.c", true),
            vec![(1, "silver.b".to_string()), (2, "bronze.a".to_string())]
        );
        assert_eq!(
            walk(&entries, "bronze.a", false),
            vec![(1, "silver.b".to_string()), (2, "gold.c".to_string())]
        );
        assert!(find(&entries, "b").is_ok());
        assert!(find(&entries, "nope").is_err());
    }
}
