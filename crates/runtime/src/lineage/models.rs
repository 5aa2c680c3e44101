//! A [`ModelObserver`] that emits each gold model run as an OpenLineage job
//! (`model.<name>`): START, then COMPLETE when it was published, or FAIL when its SQL failed or
//! a blocking audit held it back. Events carry the SQL, the tables read, the gold table written
//! with its column lineage, its audits as `dataQualityAssertions`, and the rows written.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use strata_layers::gold::{
    AuditCheck, ColumnLineage, GOLD, Model, ModelObserver, ModelRun, ModelStatus, Severity,
};
use strata_layers::silver::SilverCatalog;

use super::event::{Assertion, Dataset, EventType, InputField, JobRun, dataset_for_location};
use super::transport::LineageEmitter;

/// Emits model runs' events.
#[derive(Debug)]
pub struct ModelLineage {
    emitter: Arc<LineageEmitter>,
    silver: SilverCatalog,
    gold: SilverCatalog,
    lineage: BTreeMap<String, Vec<ColumnLineage>>,
    runs: Mutex<HashMap<String, JobRun>>,
}

impl ModelLineage {
    /// Events to `emitter`; table locations from the `silver` and `gold` catalogs; each
    /// model's column lineage (by model name) as computed before the run.
    pub fn new(
        emitter: Arc<LineageEmitter>,
        silver: SilverCatalog,
        gold: SilverCatalog,
        lineage: BTreeMap<String, Vec<ColumnLineage>>,
    ) -> Self {
        ModelLineage {
            emitter,
            silver,
            gold,
            lineage,
            runs: Mutex::default(),
        }
    }

    fn table(&self, qualified: &str) -> Dataset {
        match qualified.split_once('.') {
            Some((GOLD, t)) => dataset_for_location(&self.gold.table_location(t)),
            Some((_, t)) => dataset_for_location(&self.silver.table_location(t)),
            None => dataset_for_location(&self.silver.table_location(qualified)),
        }
    }

    fn datasets(&self, model: &Model) -> (Vec<Dataset>, Dataset) {
        let inputs = model
            .upstream_tables
            .iter()
            .map(|t| self.table(t))
            .chain(
                model
                    .upstream_models
                    .iter()
                    .map(|m| self.table(&format!("{GOLD}.{m}"))),
            )
            .collect();
        let mut output = self.table(&format!("{GOLD}.{}", model.name));
        if let Some(columns) = self.lineage.get(&model.name) {
            let fields: Vec<(String, Vec<InputField>)> = columns
                .iter()
                .map(|c| {
                    let inputs = c
                        .sources
                        .iter()
                        .filter_map(|s| {
                            let (table, field) = s.rsplit_once('.')?;
                            let d = self.table(table);
                            Some(InputField {
                                namespace: d.namespace,
                                name: d.name,
                                field: field.to_string(),
                            })
                        })
                        .collect();
                    (c.column.clone(), inputs)
                })
                .collect();
            output = output.with_column_lineage(&fields);
        }
        (inputs, output)
    }
}

fn assertion_kind(check: &AuditCheck) -> (&'static str, Option<String>) {
    match check {
        AuditCheck::NotNull(c) => ("not_null", (c.len() == 1).then(|| c[0].clone())),
        AuditCheck::Unique(c) => ("unique", (c.len() == 1).then(|| c[0].clone())),
        AuditCheck::AcceptedValues { column, .. } => ("accepted_values", Some(column.clone())),
        AuditCheck::Relationships { column, .. } => ("relationships", Some(column.clone())),
        AuditCheck::RowCount { .. } => ("row_count", None),
        AuditCheck::Freshness { column, .. } => ("freshness", Some(column.clone())),
        AuditCheck::Sql(_) => ("custom_sql", None),
    }
}

impl ModelObserver for ModelLineage {
    fn started(&self, model: &Model) {
        let mut run = JobRun::new(format!("model.{}", model.name), "BATCH", "MODEL");
        run.sql = Some(model.sql.clone());
        let (inputs, output) = self.datasets(model);
        self.emitter
            .emit(run.event(EventType::Start, &inputs, &[output], None));
        if let Ok(mut runs) = self.runs.lock() {
            runs.insert(model.name.clone(), run);
        }
    }

    fn finished(&self, model: &Model, outcome: &ModelRun) {
        let Some(run) = self
            .runs
            .lock()
            .ok()
            .and_then(|mut r| r.remove(&model.name))
        else {
            return;
        };
        let (inputs, mut output) = self.datasets(model);
        let assertions: Vec<_> = model
            .audits
            .iter()
            .zip(&outcome.audits)
            .map(|(audit, found)| {
                let (kind, column) = assertion_kind(&audit.check);
                let severity = match found.severity {
                    Severity::Blocking => "error",
                    Severity::Warn => "warn",
                };
                Assertion {
                    kind: kind.to_string(),
                    name: audit.name.clone(),
                    success: found.passed(),
                    column,
                    severity: severity.to_string(),
                }
            })
            .collect();
        if !assertions.is_empty() {
            output = output.with_assertions(&assertions);
        }
        let event = match &outcome.status {
            ModelStatus::Published => {
                let output =
                    output.with_output_statistics(outcome.rows, None, Some(outcome.files as u64));
                run.event(EventType::Complete, &inputs, &[output], None)
            }
            ModelStatus::AuditFailed => {
                let failed: Vec<&str> = outcome
                    .audits
                    .iter()
                    .filter(|a| a.blocks())
                    .map(|a| a.name.as_str())
                    .collect();
                let message = format!(
                    "not published: blocking audits failed: {}",
                    failed.join(", ")
                );
                run.event(EventType::Fail, &inputs, &[output], Some(&message))
            }
            ModelStatus::Failed(message) => {
                run.event(EventType::Fail, &inputs, &[output], Some(message))
            }
            ModelStatus::Skipped { .. } => return,
        };
        self.emitter.emit(event);
    }
}
