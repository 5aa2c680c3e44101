//! The lineage graph as OpenLineage events describe it: an edge from each input to each output
//! of a run, each output's last finished run with its quality results, and its column lineage.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{LastRun, QualityResult};

/// A dataset's OpenLineage key: `(namespace, name)`.
pub type Key = (String, String);

/// A column: `(namespace, name, field)`.
pub type ColumnKey = (String, String, String);

/// The last finished run that wrote a dataset.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// Job, state, time.
    pub run: LastRun,
    /// Its data-quality assertions (on its inputs and outputs).
    pub quality: Vec<QualityResult>,
}

/// Edges, runs and column lineage from a sequence of events.
#[derive(Debug, Default)]
pub struct LineageGraph {
    upstream: BTreeMap<Key, BTreeSet<Key>>,
    downstream: BTreeMap<Key, BTreeSet<Key>>,
    last_runs: BTreeMap<Key, RunRecord>,
    columns: BTreeMap<Key, BTreeMap<String, Vec<ColumnKey>>>,
}

fn key(dataset: &Value) -> Option<Key> {
    Some((
        dataset.get("namespace")?.as_str()?.to_string(),
        dataset.get("name")?.as_str()?.to_string(),
    ))
}

fn assertions(dataset: &Value, holder: &str) -> Vec<QualityResult> {
    dataset
        .pointer(&format!("/{holder}/dataQualityAssertions/assertions"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|a| {
                    Some(QualityResult {
                        assertion: a.get("assertion")?.as_str()?.to_string(),
                        name: ["name", "column"]
                            .iter()
                            .find_map(|k| a.get(*k).and_then(Value::as_str))
                            .unwrap_or_default()
                            .to_string(),
                        success: a.get("success")?.as_bool()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl LineageGraph {
    /// The graph of `events` (in the order they were written; later runs win).
    pub fn from_events(events: &[Value]) -> Self {
        let mut g = LineageGraph::default();
        for event in events {
            let inputs: Vec<&Value> = event
                .get("inputs")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let outputs: Vec<&Value> = event
                .get("outputs")
                .and_then(Value::as_array)
                .map(|a| a.iter().collect())
                .unwrap_or_default();
            let input_keys: Vec<Key> = inputs.iter().filter_map(|d| key(d)).collect();
            for output in &outputs {
                let Some(out) = key(output) else { continue };
                g.downstream.entry(out.clone()).or_default();
                g.upstream.entry(out.clone()).or_default();
                for input in &input_keys {
                    if input == &out {
                        continue;
                    }
                    g.upstream
                        .entry(out.clone())
                        .or_default()
                        .insert(input.clone());
                    g.downstream
                        .entry(input.clone())
                        .or_default()
                        .insert(out.clone());
                }
                if let Some(fields) = output
                    .pointer("/facets/columnLineage/fields")
                    .and_then(Value::as_object)
                {
                    let columns = fields
                        .iter()
                        .map(|(column, spec)| {
                            let inputs = spec
                                .get("inputFields")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|f| {
                                            Some((
                                                f.get("namespace")?.as_str()?.to_string(),
                                                f.get("name")?.as_str()?.to_string(),
                                                f.get("field")?.as_str()?.to_string(),
                                            ))
                                        })
                                        .collect()
                                })
                                .unwrap_or_default();
                            (column.clone(), inputs)
                        })
                        .collect();
                    g.columns.insert(out.clone(), columns);
                }
            }
            let state = event
                .get("eventType")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if state != "COMPLETE" && state != "FAIL" {
                continue;
            }
            let mut quality = Vec::new();
            for d in &inputs {
                quality.extend(assertions(d, "inputFacets"));
            }
            for d in &outputs {
                quality.extend(assertions(d, "facets"));
            }
            let run = LastRun {
                job: event
                    .pointer("/job/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                state: state.to_string(),
                time: event
                    .get("eventTime")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            };
            for output in &outputs {
                if let Some(out) = key(output) {
                    g.last_runs.insert(
                        out,
                        RunRecord {
                            run: run.clone(),
                            quality: quality.clone(),
                        },
                    );
                }
            }
        }
        for inputs in g.upstream.clone().values() {
            for i in inputs {
                g.upstream.entry(i.clone()).or_default();
            }
        }
        g
    }

    /// Every dataset an event names.
    pub fn datasets(&self) -> impl Iterator<Item = &Key> {
        self.upstream.keys()
    }

    /// Direct inputs of `dataset`.
    pub fn upstream(&self, dataset: &Key) -> Vec<Key> {
        self.upstream
            .get(dataset)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Direct outputs computed from `dataset`.
    pub fn downstream(&self, dataset: &Key) -> Vec<Key> {
        self.downstream
            .get(dataset)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The last finished run that wrote `dataset`.
    pub fn last_run(&self, dataset: &Key) -> Option<&RunRecord> {
        self.last_runs.get(dataset)
    }

    /// The input columns `column` of `dataset` is computed from (its last column lineage).
    pub fn column_inputs(&self, dataset: &Key, column: &str) -> Vec<ColumnKey> {
        self.columns
            .get(dataset)
            .and_then(|c| c.get(column))
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn edges_runs_and_columns_come_from_the_events() {
        let events = vec![
            json!({"eventType": "START", "eventTime": "t0", "job": {"name": "batch.s"},
                   "inputs": [{"namespace": "file", "name": "/l/bronze/source=b"}],
                   "outputs": [{"namespace": "file", "name": "/l/silver/s"}]}),
            json!({"eventType": "COMPLETE", "eventTime": "t1", "job": {"name": "batch.s"},
                   "inputs": [{"namespace": "file", "name": "/l/bronze/source=b", "inputFacets":
                       {"dataQualityAssertions": {"assertions": [
                           {"assertion": "quarantine", "success": false, "name": "3 of 10"}]}}}],
                   "outputs": [{"namespace": "file", "name": "/l/silver/s"}]}),
            json!({"eventType": "COMPLETE", "eventTime": "t2", "job": {"name": "model.g"},
                   "inputs": [{"namespace": "file", "name": "/l/silver/s"}],
                   "outputs": [{"namespace": "file", "name": "/l/gold/g", "facets": {"columnLineage": {"fields": {
                       "email_hash": {"inputFields": [{"namespace": "file", "name": "/l/silver/s", "field": "email"}]}}}}}]}),
        ];
        let g = LineageGraph::from_events(&events);
        let silver = ("file".to_string(), "/l/silver/s".to_string());
        let gold = ("file".to_string(), "/l/gold/g".to_string());
        let bronze = ("file".to_string(), "/l/bronze/source=b".to_string());
        assert_eq!(g.upstream(&silver), vec![bronze.clone()]);
        assert_eq!(g.downstream(&silver), vec![gold.clone()]);
        assert_eq!(g.datasets().count(), 3);
        let run = g.last_run(&silver).expect("run");
        assert_eq!(run.run.state, "COMPLETE");
        assert_eq!(run.quality.len(), 1);
        assert!(!run.quality[0].success);
        assert_eq!(
            g.column_inputs(&gold, "email_hash"),
            vec![("file".into(), "/l/silver/s".into(), "email".into())]
        );
    }
}
