//! Audits: checks a model's new output must pass before readers see it (write-audit-publish).
//!
//! Declared in the model's header or in the YAML beside it:
//!
//! ```yaml
//! audits:
//!   - not_null: [order_id, amount]
//!   - unique: [order_id]                       # one or more columns together
//!   - accepted_values: {column: status, values: [new, paid, shipped]}
//!   - relationships: {column: customer_id, to: gold.dim_customer, field: customer_id}
//!   - row_count: {min: 1, max: 10000000}
//!   - freshness: {column: changed_at, max_age: 2d}
//!   - sql: SELECT * FROM @this WHERE amount < 0   # rows returned are failures
//!     name: no_negative_amounts
//!     severity: warn                           # default: blocking
//! ```
//!
//! Each audit is one SQL query returning the offending rows, run on DataFusion against the
//! staged snapshot (`@this`), with the lake's silver and gold tables beside it. Identifiers are
//! quoted and values escaped when the query is built, so a column named `select` works.

use std::fmt::Write as _;

use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::error::{LayersError, Result};

/// Rows of a failing audit kept as a sample for the report.
pub const SAMPLE_ROWS: usize = 5;

/// Whether a failing audit stops the publish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The new snapshot is not published; downstream models do not run.
    #[default]
    Blocking,
    /// Reported, and the snapshot is published anyway.
    Warn,
}

/// What an audit checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditCheck {
    /// None of these columns is null.
    NotNull(Vec<String>),
    /// No two rows share these columns' values.
    Unique(Vec<String>),
    /// The column holds only these values (or null).
    AcceptedValues {
        /// The column.
        column: String,
        /// The values allowed, compared as text.
        values: Vec<serde_json::Value>,
    },
    /// Every non-null value of the column exists in `field` of the table `to`.
    Relationships {
        /// The column.
        column: String,
        /// `gold.<model>` or a silver table.
        to: String,
        /// The column of `to` (default: the same name).
        #[serde(default)]
        field: Option<String>,
    },
    /// The table's row count lies in these bounds.
    RowCount {
        /// At least.
        #[serde(default)]
        min: Option<u64>,
        /// At most.
        #[serde(default)]
        max: Option<u64>,
    },
    /// The newest value of a time column is at most `max_age` old (`30m`, `6h`, `2d`).
    Freshness {
        /// The time column.
        column: String,
        /// The largest age allowed.
        max_age: String,
    },
    /// A query over `@this` whose rows are failures.
    Sql(String),
}

/// One declared audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub struct Audit {
    /// What it checks.
    pub check: AuditCheck,
    /// Blocking or a warning.
    pub severity: Severity,
    /// Its name in reports (default: derived from the check).
    pub name: String,
}

const CHECKS: [&str; 7] = [
    "not_null",
    "unique",
    "accepted_values",
    "relationships",
    "row_count",
    "freshness",
    "sql",
];

impl TryFrom<serde_yaml_ng::Value> for Audit {
    type Error = String;

    fn try_from(value: serde_yaml_ng::Value) -> std::result::Result<Self, String> {
        let serde_yaml_ng::Value::Mapping(map) = value else {
            return Err("an audit is a mapping such as `not_null: [col]`".into());
        };
        let mut check = None;
        let mut severity = Severity::default();
        let mut name = None;
        for (k, v) in map {
            let key = k.as_str().unwrap_or_default().to_string();
            match key.as_str() {
                "severity" => {
                    severity = serde_yaml_ng::from_value(v)
                        .map_err(|e| format!("audit severity: {e} (blocking or warn)"))?
                }
                "name" => name = v.as_str().map(str::to_string),
                k if CHECKS.contains(&k) => {
                    if check.is_some() {
                        return Err(format!(
                            "an audit has one check; `{k}` is a second one (write it as its own list item)"
                        ));
                    }
                    let mut one = serde_yaml_ng::Mapping::new();
                    one.insert(serde_yaml_ng::Value::String(key.clone()), v);
                    // Through JSON: serde_yaml_ng reads enums only from `!tagged` values, and
                    // `{check: options}` reads better.
                    let json = serde_json::to_value(serde_yaml_ng::Value::Mapping(one))
                        .map_err(|e| format!("audit `{key}`: {e}"))?;
                    check = Some(
                        serde_json::from_value::<AuditCheck>(json)
                            .map_err(|e| format!("audit `{key}`: {e}"))?,
                    );
                }
                other => {
                    return Err(format!(
                        "unknown audit field `{other}` (checks: {}; options: severity, name)",
                        CHECKS.join(", ")
                    ));
                }
            }
        }
        let check = check
            .ok_or_else(|| format!("an audit needs one of the checks {}", CHECKS.join(", ")))?;
        let name = name.unwrap_or_else(|| check.default_name());
        Ok(Audit {
            check,
            severity,
            name,
        })
    }
}

impl AuditCheck {
    fn default_name(&self) -> String {
        match self {
            AuditCheck::NotNull(c) => format!("not_null({})", c.join(", ")),
            AuditCheck::Unique(c) => format!("unique({})", c.join(", ")),
            AuditCheck::AcceptedValues { column, .. } => format!("accepted_values({column})"),
            AuditCheck::Relationships { column, to, field } => format!(
                "relationships({column} → {to}.{})",
                field.as_deref().unwrap_or(column)
            ),
            AuditCheck::RowCount { .. } => "row_count".into(),
            AuditCheck::Freshness { column, .. } => format!("freshness({column})"),
            AuditCheck::Sql(_) => "sql".into(),
        }
    }

    /// The gold model this check reads besides the audited table, if any (a DAG edge).
    pub fn reads_model(&self) -> Option<&str> {
        match self {
            AuditCheck::Relationships { to, .. } => to
                .strip_prefix("gold.")
                .or_else(|| to.strip_prefix("lake.gold.")),
            _ => None,
        }
    }

    /// The query returning this check's failures, over the table named `this` (already
    /// quoted SQL).
    pub fn failures_sql(&self, this: &str) -> Result<String> {
        Ok(match self {
            AuditCheck::NotNull(columns) => {
                let any_null = columns
                    .iter()
                    .map(|c| format!("{} IS NULL", ident(c)))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                format!("SELECT * FROM {this} WHERE {any_null}")
            }
            AuditCheck::Unique(columns) => {
                let cols = columns.iter().map(|c| ident(c)).collect::<Vec<_>>();
                let cols = cols.join(", ");
                format!(
                    "SELECT {cols}, count(*) AS copies FROM {this} GROUP BY {cols} HAVING count(*) > 1"
                )
            }
            AuditCheck::AcceptedValues { column, values } => {
                let list = values
                    .iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => literal(s),
                        other => literal(&other.to_string()),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let c = ident(column);
                format!(
                    "SELECT * FROM {this} WHERE {c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({list})"
                )
            }
            AuditCheck::Relationships { column, to, field } => {
                let target = table_ref(to)?;
                let c = ident(column);
                let f = ident(field.as_deref().unwrap_or(column));
                format!(
                    "SELECT * FROM {this} AS audited WHERE audited.{c} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {target} AS target WHERE target.{f} = audited.{c})"
                )
            }
            AuditCheck::RowCount { min, max } => {
                let mut bad = Vec::new();
                if let Some(min) = min {
                    bad.push(format!("count(*) < {min}"));
                }
                if let Some(max) = max {
                    bad.push(format!("count(*) > {max}"));
                }
                if bad.is_empty() {
                    bad.push("false".into());
                }
                format!(
                    "SELECT count(*) AS row_count FROM {this} HAVING {}",
                    bad.join(" OR ")
                )
            }
            AuditCheck::Freshness { column, max_age } => {
                let micros = strata_core::spec::parse_duration_micros(max_age).map_err(|e| {
                    LayersError::Internal(format!("freshness max_age `{max_age}`: {e}"))
                })?;
                let seconds = micros as f64 / 1e6;
                let c = ident(column);
                format!(
                    "SELECT max({c}) AS newest FROM {this} HAVING max({c}) IS NULL OR to_unixtime(max({c})) < to_unixtime(now()) - {seconds}"
                )
            }
            AuditCheck::Sql(query) => {
                format!("SELECT * FROM ({}) AS custom", query.replace("@this", this))
            }
        })
    }
}

/// A SQL identifier, quoted.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The catalog path of `gold.<m>`, `silver.<t>` or a bare silver table, quoted.
fn table_ref(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let (schema, table) = match parts.as_slice() {
        [t] => ("silver", *t),
        [s @ ("gold" | "silver"), t] => (*s, *t),
        ["lake", s @ ("gold" | "silver"), t] => (*s, *t),
        _ => {
            return Err(LayersError::Internal(format!(
                "relationships target `{name}` is neither gold.<model> nor a silver table"
            )));
        }
    };
    Ok(format!("lake.{}.{}", ident(schema), ident(table)))
}

/// What one audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditOutcome {
    /// The audit's name.
    pub name: String,
    /// Blocking or a warning.
    pub severity: Severity,
    /// Offending rows (for `unique`, duplicated key groups; for `row_count` and `freshness`,
    /// 1 when failing).
    pub failing: u64,
    /// Up to [`SAMPLE_ROWS`] offending rows, one `{col: value, …}` line each.
    pub sample: Vec<String>,
    /// The query that found them.
    pub sql: String,
}

impl AuditOutcome {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        self.failing == 0
    }

    /// Whether it failed and stops the publish.
    pub fn blocks(&self) -> bool {
        !self.passed() && self.severity == Severity::Blocking
    }
}

/// Runs `audits` in `ctx` against the table `this` (quoted SQL name); `file` names the model
/// in errors.
pub async fn run_audits(
    ctx: &SessionContext,
    this: &str,
    audits: &[Audit],
    file: &str,
) -> Result<Vec<AuditOutcome>> {
    let mut outcomes = Vec::with_capacity(audits.len());
    for audit in audits {
        let query = audit.check.failures_sql(this)?;
        let fail = |e: datafusion::error::DataFusionError| LayersError::Model {
            file: file.to_string(),
            at: String::new(),
            problem: format!("audit `{}` cannot run: {e}", audit.name),
            hint: "audits name columns of the model's output; custom SQL reads it as @this",
        };
        let count_sql = format!("SELECT count(*) FROM ({query}) AS failures");
        let counted = ctx
            .sql(&count_sql)
            .await
            .map_err(fail)?
            .collect()
            .await
            .map_err(fail)?;
        let failing = counted
            .first()
            .filter(|b| b.num_rows() > 0)
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .map(|a| a.value(0))
            })
            .unwrap_or_default();
        let failing = u64::try_from(failing).unwrap_or_default();
        let mut sample = Vec::new();
        if failing > 0 {
            let rows = ctx
                .sql(&format!("{query} LIMIT {SAMPLE_ROWS}"))
                .await
                .map_err(fail)?
                .collect()
                .await
                .map_err(fail)?;
            sample = render_rows(&rows);
        }
        outcomes.push(AuditOutcome {
            name: audit.name.clone(),
            severity: audit.severity,
            failing,
            sample,
            sql: query,
        });
    }
    Ok(outcomes)
}

/// `{col: value, …}` per row.
pub(crate) fn render_rows(batches: &[arrow::array::RecordBatch]) -> Vec<String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let options = FormatOptions::default().with_null("null");
    let mut lines = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .filter_map(|c| ArrayFormatter::try_new(c.as_ref(), &options).ok())
            .collect();
        for row in 0..batch.num_rows() {
            let mut line = String::from("{");
            for (i, (field, f)) in batch.schema().fields().iter().zip(&formatters).enumerate() {
                if i > 0 {
                    line.push_str(", ");
                }
                let _ = write!(line, "{}: {}", field.name(), f.value(row));
            }
            line.push('}');
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audits(yaml: &str) -> std::result::Result<Vec<Audit>, String> {
        serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn every_check_reads_from_yaml_with_its_options() {
        let a = audits(
            "- not_null: [a, b]\n- unique: [a]\n  severity: warn\n- accepted_values: {column: s, values: [x, 1]}\n- relationships: {column: c, to: gold.dim}\n- row_count: {min: 1}\n- freshness: {column: t, max_age: 2d}\n- sql: SELECT * FROM @this WHERE a < 0\n  name: no_negatives\n",
        )
        .unwrap();
        assert_eq!(a.len(), 7);
        assert_eq!(a[0].name, "not_null(a, b)");
        assert_eq!(a[1].severity, Severity::Warn);
        assert_eq!(a[3].check.reads_model(), Some("dim"));
        assert_eq!(a[6].name, "no_negatives");
        assert!(
            a[6].check
                .failures_sql("t")
                .unwrap()
                .contains("FROM t WHERE a < 0")
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = audits("- not_nul: [a]").unwrap_err();
        assert!(e.contains("not_nul") && e.contains("not_null"), "{e}");
        let e = audits("- not_null: [a]\n  unique: [a]").unwrap_err();
        assert!(e.contains("second"), "{e}");
        let e = audits("- unique: [a]\n  severity: fatal").unwrap_err();
        assert!(e.contains("severity"), "{e}");
        let e = audits("- relationships: {column: c}").unwrap_err();
        assert!(e.contains("to"), "{e}");
    }

    #[test]
    fn identifiers_and_values_are_quoted() {
        let check = AuditCheck::AcceptedValues {
            column: "we\"ird".into(),
            values: vec![serde_json::json!("o'k")],
        };
        let sql = check.failures_sql("t").unwrap();
        assert!(
            sql.contains("\"we\"\"ird\"") && sql.contains("'o''k'"),
            "{sql}"
        );
    }

    #[tokio::test]
    async fn audits_find_their_failures_with_a_sample() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t AS VALUES (1, 'paid'), (2, 'lost'), (2, NULL), (NULL, 'new')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let a = audits(
            "- not_null: [column1]\n- unique: [column1]\n- accepted_values: {column: column2, values: [paid, new]}\n- row_count: {max: 3}\n  severity: warn\n- row_count: {min: 1, max: 4}\n",
        )
        .unwrap();
        let out = run_audits(&ctx, "t", &a, "m.sql").await.unwrap();
        let failing: Vec<u64> = out.iter().map(|o| o.failing).collect();
        assert_eq!(failing, vec![1, 1, 1, 1, 0]);
        assert!(out[0].blocks() && !out[3].blocks() && out[4].passed());
        assert_eq!(
            out[2].sample,
            vec!["{column1: 2, column2: lost}".to_string()]
        );
        let e = run_audits(&ctx, "t", &audits("- not_null: [nope]").unwrap(), "m.sql")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.sql") && e.contains("not_null(nope)"), "{e}");
    }
}
