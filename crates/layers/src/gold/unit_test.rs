//! Unit tests of a model (the SQLMesh-test role): input rows per upstream table and the rows the
//! model must output, run in memory on DataFusion with no catalog or lake touched.
//!
//! In the YAML beside the model (`models/fact_orders.yaml`):
//!
//! ```yaml
//! tests:
//!   - name: orders_get_their_customers_segment
//!     inputs:
//!       orders:                       # a silver table: a list of rows …
//!         - {order_id: 1, customer: ann, amount: 10.5}
//!       gold.dim_customer:            # … or rows with declared types
//!         types: {created_at: timestamp}
//!         rows:
//!           - {customer_id: 7, name: ann, segment: retail, created_at: "2026-01-01 10:00:00"}
//!     expect:                         # only the columns named are compared, in any row order
//!       - {order_id: 1, segment: retail}
//! ```
//!
//! Column types come from the YAML values (integers, floats, text, booleans) unless `types`
//! names them in the pipeline spec's type language. Values compare as numbers when both sides
//! are numbers and as instants when both are timestamps, else as text.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::catalog::{MemoryCatalogProvider, MemorySchemaProvider};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::model::{GOLD, Model};
use crate::error::{LayersError, Result};

/// One unit test of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitTest {
    /// Its name.
    pub name: String,
    /// Rows of each table the model reads (`orders`, `gold.dim_customer`).
    pub inputs: IndexMap<String, Fixture>,
    /// The rows the model must output (only the columns named are compared).
    pub expect: Vec<IndexMap<String, serde_json::Value>>,
    /// `@start` / `@end` of an incremental model (default: the whole time line).
    #[serde(default)]
    pub start: Option<String>,
    /// See `start`.
    #[serde(default)]
    pub end: Option<String>,
}

/// The rows of one input table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Fixture {
    /// Rows, typed from their values.
    Rows(Vec<IndexMap<String, serde_json::Value>>),
    /// Rows with some column types declared.
    Typed {
        /// `column: type` (`timestamp`, `decimal(12,2)`, `int32`, …).
        #[serde(default)]
        types: IndexMap<String, String>,
        /// The rows.
        rows: Vec<IndexMap<String, serde_json::Value>>,
    },
}

/// What running one unit test found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitTestOutcome {
    /// The model.
    pub model: String,
    /// The test.
    pub test: String,
    /// `- {…}` expected rows not output and `+ {…}` output rows not expected; empty: passed.
    pub diff: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
}

impl UnitTestOutcome {
    /// Whether the output matched.
    pub fn passed(&self) -> bool {
        self.diff.is_empty()
    }
}

/// Runs `test` of `model` in memory; `file` names the YAML in errors.
pub async fn run_unit_test(model: &Model, test: &UnitTest, file: &str) -> Result<UnitTestOutcome> {
    let started = Instant::now();
    let err = |problem: String, hint: &'static str| LayersError::Model {
        file: file.to_string(),
        at: String::new(),
        problem: format!("test `{}` of model {}: {problem}", test.name, model.name),
        hint,
    };
    let reads: BTreeSet<String> = model
        .upstream_tables
        .iter()
        .cloned()
        .chain(model.upstream_models.iter().map(|m| format!("{GOLD}.{m}")))
        .collect();
    let given: BTreeSet<String> = test
        .inputs
        .keys()
        .map(|k| k.strip_prefix("silver.").unwrap_or(k).to_string())
        .collect();
    if let Some(extra) = given.difference(&reads).next() {
        return Err(err(
            format!(
                "gives rows for `{extra}`, which the model does not read (it reads: {})",
                reads.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            "name inputs as the SQL does: silver tables bare, models as gold.<name>",
        ));
    }
    if let Some(missing) = reads.difference(&given).next() {
        return Err(err(
            format!("gives no rows for `{missing}`, which the model reads"),
            "add it under inputs (an empty list with `types` is an empty table)",
        ));
    }

    let silver = Arc::new(MemorySchemaProvider::new());
    let gold = Arc::new(MemorySchemaProvider::new());
    for (name, fixture) in &test.inputs {
        let batch = fixture_batch(fixture).map_err(|e| {
            err(
                format!("input `{name}`: {e}"),
                "give each column one type of value, or declare it under `types`",
            )
        })?;
        let (schema, table) = match name.split_once('.') {
            Some((GOLD, t)) => (&gold, t),
            Some((_, t)) => (&silver, t),
            None => (&silver, name.as_str()),
        };
        let mem = MemTable::try_new(batch.schema(), vec![vec![batch]])
            .map_err(|e| err(format!("input `{name}`: {e}"), "check the rows"))?;
        datafusion::catalog::SchemaProvider::register_table(
            schema.as_ref(),
            table.to_string(),
            Arc::new(mem),
        )
        .map_err(|e| err(e.to_string(), "check the input names"))?;
    }
    let catalog = MemoryCatalogProvider::new();
    datafusion::catalog::CatalogProvider::register_schema(&catalog, "silver", silver)
        .map_err(|e| err(e.to_string(), "internal"))?;
    datafusion::catalog::CatalogProvider::register_schema(&catalog, GOLD, gold)
        .map_err(|e| err(e.to_string(), "internal"))?;
    let ctx = SessionContext::new_with_config(
        SessionConfig::new().with_default_catalog_and_schema("lake", "silver"),
    );
    ctx.register_catalog("lake", Arc::new(catalog));

    let sql = model.sql_for_interval(
        test.start.as_deref().unwrap_or(super::incremental::EPOCH),
        test.end
            .as_deref()
            .unwrap_or(super::incremental::FAR_FUTURE),
    );
    let run = |e: datafusion::error::DataFusionError| {
        err(
            e.to_string(),
            "the inputs' columns must be the ones the SQL reads",
        )
    };
    let output = ctx
        .sql(&sql)
        .await
        .map_err(run)?
        .collect()
        .await
        .map_err(run)?;

    let columns: Vec<String> = {
        let mut seen = IndexMap::new();
        for row in &test.expect {
            for k in row.keys() {
                seen.insert(k.clone(), ());
            }
        }
        seen.into_keys().collect()
    };
    let out_schema = match output.first() {
        Some(b) => b.schema(),
        None => Arc::new(
            ctx.sql(&sql)
                .await
                .map_err(run)?
                .schema()
                .as_arrow()
                .clone(),
        ),
    };
    if let Some(unknown) = columns
        .iter()
        .find(|c| out_schema.index_of(c.as_str()).is_err())
    {
        let outputs: Vec<&str> = out_schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        return Err(err(
            format!(
                "expects a column `{unknown}`, which the model does not output (it outputs: {})",
                outputs.join(", ")
            ),
            "fix the column name under expect",
        ));
    }
    let actual = output_rows(&output, &columns);
    // A column an expected row leaves out is not compared for that row.
    let expected: Vec<Vec<Option<Option<String>>>> = test
        .expect
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(c).map(|v| yaml_text(Some(v))))
                .collect()
        })
        .collect();
    Ok(UnitTestOutcome {
        model: model.name.clone(),
        test: test.name.clone(),
        diff: diff_rows(&columns, &expected, &actual),
        elapsed: started.elapsed(),
    })
}

/// The fixture's rows as one batch, typed from values and `types`.
fn fixture_batch(fixture: &Fixture) -> std::result::Result<RecordBatch, String> {
    let (types, rows) = match fixture {
        Fixture::Rows(rows) => (IndexMap::new(), rows),
        Fixture::Typed { types, rows } => (types.clone(), rows),
    };
    let values: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| serde_json::Value::Object(r.clone().into_iter().collect()))
        .collect();
    let inferred = arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok))
        .map_err(|e| e.to_string())?;
    // Declared types are read as text first, then cast (timestamps and decimals from strings).
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for name in types.keys() {
        if !fields.iter().any(|f| f.name() == name) {
            fields.push(Field::new(name, arrow::datatypes::DataType::Utf8, true));
        }
    }
    let read_schema = Arc::new(Schema::new(
        fields
            .iter()
            .map(|f| {
                if types.contains_key(f.name()) {
                    Field::new(f.name(), arrow::datatypes::DataType::Utf8, true)
                } else {
                    f.clone()
                }
            })
            .collect::<Vec<_>>(),
    ));
    let text: Vec<serde_json::Value> = values
        .into_iter()
        .map(|mut v| {
            if let Some(obj) = v.as_object_mut() {
                for name in types.keys() {
                    if let Some(x) = obj.get_mut(name)
                        && !x.is_string()
                        && !x.is_null()
                    {
                        *x = serde_json::Value::String(x.to_string());
                    }
                }
            }
            v
        })
        .collect();
    let mut decoder = arrow::json::ReaderBuilder::new(read_schema.clone())
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.serialize(&text).map_err(|e| e.to_string())?;
    let batch = decoder
        .flush()
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| RecordBatch::new_empty(read_schema.clone()));
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    let mut out_fields = Vec::with_capacity(batch.num_columns());
    for (field, column) in read_schema.fields().iter().zip(batch.columns()) {
        match types.get(field.name()) {
            Some(t) => {
                let ty = strata_core::types::parse_column_type(t)
                    .map_err(|e| format!("type of `{}`: {e}", field.name()))?;
                let cast = arrow::compute::cast(column, &ty.data_type)
                    .map_err(|e| format!("column `{}` as {t}: {e}", field.name()))?;
                if cast.null_count() > column.null_count() {
                    return Err(format!(
                        "column `{}` has values that are not {t}",
                        field.name()
                    ));
                }
                out_fields.push(Field::new(field.name(), ty.data_type, true));
                columns.push(cast);
            }
            None => {
                out_fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(out_fields)), columns).map_err(|e| e.to_string())
}

/// The output's `columns` as text per row (null as `None`).
fn output_rows(batches: &[RecordBatch], columns: &[String]) -> Vec<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for b in batches {
        let picked: Vec<&ArrayRef> = columns
            .iter()
            .filter_map(|c| b.schema().index_of(c).ok().map(|i| b.column(i)))
            .collect();
        let formatters: Vec<_> = picked
            .iter()
            .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for row in 0..b.num_rows() {
            rows.push(
                picked
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    rows
}

fn yaml_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether an output value equals an expected one: as numbers, as instants, else as text.
fn same_value(actual: &Option<String>, expected: &Option<String>) -> bool {
    match (actual, expected) {
        (None, None) => true,
        (Some(a), Some(e)) => {
            if a == e {
                return true;
            }
            if let (Ok(x), Ok(y)) = (a.parse::<f64>(), e.parse::<f64>()) {
                return (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0);
            }
            use arrow::compute::kernels::cast_utils::string_to_timestamp_nanos;
            match (string_to_timestamp_nanos(a), string_to_timestamp_nanos(e)) {
                (Ok(x), Ok(y)) => x == y,
                _ => false,
            }
        }
        _ => false,
    }
}

fn render(columns: &[String], row: &[Option<Option<String>>]) -> String {
    let cells: Vec<String> = columns
        .iter()
        .zip(row)
        .filter_map(|(c, v)| {
            let v = v.as_ref()?;
            Some(format!("{c}: {}", v.as_deref().unwrap_or("null")))
        })
        .collect();
    format!("{{{}}}", cells.join(", "))
}

/// `- {…}` for expected rows no output row matches, `+ {…}` for output rows left over.
fn diff_rows(
    columns: &[String],
    expected: &[Vec<Option<Option<String>>>],
    actual: &[Vec<Option<String>>],
) -> Vec<String> {
    let mut unmatched: Vec<bool> = vec![true; actual.len()];
    let mut diff = Vec::new();
    for e in expected {
        let found = actual.iter().enumerate().position(|(i, a)| {
            unmatched[i]
                && a.iter()
                    .zip(e)
                    .all(|(x, y)| y.as_ref().is_none_or(|y| same_value(x, y)))
        });
        match found {
            Some(i) => unmatched[i] = false,
            None => diff.push(format!("- {}", render(columns, e))),
        }
    }
    for (i, a) in actual.iter().enumerate() {
        if unmatched[i] {
            let shown: Vec<Option<Option<String>>> = a.iter().cloned().map(Some).collect();
            diff.push(format!("+ {}", render(columns, &shown)));
        }
    }
    diff
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn model() -> Model {
        Model::parse(
            Path::new("models/fact_orders.sql"),
            "-- kind: fact\nSELECT o.order_id, c.segment, o.amount * 2 AS doubled, date_trunc('hour', o.at) AS hour\nFROM orders o LEFT JOIN gold.dim_customer c ON o.customer = c.name\n",
        )
        .unwrap()
    }

    fn test(yaml: &str) -> UnitTest {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    const INPUTS: &str = "name: t\ninputs:\n  orders:\n    types: {at: timestamp}\n    rows:\n      - {order_id: 1, customer: ann, amount: 10.5, at: '2026-01-01 10:20:00'}\n      - {order_id: 2, customer: bob, amount: 1, at: '2026-01-01 11:00:00'}\n  gold.dim_customer:\n    - {name: ann, segment: retail}\n";

    #[tokio::test]
    async fn a_fixture_that_matches_passes_in_any_row_order() {
        let t = test(&format!(
            "{INPUTS}expect:\n  - {{order_id: 2, segment: null, doubled: 2}}\n  - {{order_id: 1, segment: retail, doubled: 21.0, hour: '2026-01-01 10:00:00'}}\n"
        ));
        let out = run_unit_test(&model(), &t, "f.yaml").await.unwrap();
        assert!(out.passed(), "{:?}", out.diff);
    }

    #[tokio::test]
    async fn a_failing_fixture_shows_the_row_diff() {
        let t = test(&format!(
            "{INPUTS}expect:\n  - {{order_id: 1, segment: wholesale}}\n  - {{order_id: 2, segment: null}}\n"
        ));
        let out = run_unit_test(&model(), &t, "f.yaml").await.unwrap();
        assert_eq!(
            out.diff,
            vec![
                "- {order_id: 1, segment: wholesale}".to_string(),
                "+ {order_id: 1, segment: retail}".to_string()
            ]
        );
    }

    #[tokio::test]
    async fn typos_are_clear_errors() {
        let t = test(&format!("{INPUTS}expect:\n  - {{order_idd: 1}}\n"));
        let e = run_unit_test(&model(), &t, "f.yaml")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.yaml") && e.contains("`order_idd`") && e.contains("order_id, segment"),
            "{e}"
        );
        let t = test(&format!(
            "{}expect: []\n",
            INPUTS
                .replace("customer: ann", "custmer: ann")
                .replace("customer: bob", "custmer: bob")
        ));
        let e = run_unit_test(&model(), &t, "f.yaml")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("customer") && e.contains("test `t`"), "{e}");
        let t = test(&format!(
            "{}expect: []\n",
            INPUTS.replace("gold.dim_customer", "gold.dim_custom")
        ));
        let e = run_unit_test(&model(), &t, "f.yaml")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dim_custom`") && e.contains("does not read"),
            "{e}"
        );
    }
}
