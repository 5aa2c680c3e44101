//! A gold model: one `.sql` file whose leading `--` comment lines are a YAML header.
//!
//! ```sql
//! -- name: fact_orders            (default: the file's stem)
//! -- kind: fact                   (fact | dimension | aggregation | view)
//! -- grain: [order_id]
//! -- partition_by: ["month(ordered_at)"]
//! -- materialization: full
//! -- owner: sales-data
//! -- tags: [orders, finance]
//! -- description: One row per live order, with its customer's segment.
//! -- columns:
//! --   order_id: The shop's order id.
//! -- audits:
//! --   - unique: [order_id]
//! SELECT o.order_id, c.segment FROM orders o JOIN gold.dim_customer c USING (customer_id)
//! ```
//!
//! The header stays a SQL comment, so the file is plain SQL for any editor or linter, and the
//! SQL parser's line and column numbers are the file's own. Upstream tables are found in the
//! SQL by DataFusion's parser: `gold.<name>` is another model, a bare or `silver.` name a
//! silver table.
//!
//! A YAML file beside the model (`fact_orders.yaml`) may add `audits` (see [`super::audit`])
//! and `tests` (see [`super::unit_test`]).

use std::path::{Path, PathBuf};

use datafusion::sql::TableReference;
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::resolve::resolve_table_references;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::audit::Audit;
use super::incremental::{EPOCH, FAR_FUTURE};
use super::unit_test::UnitTest;
use crate::error::{LayersError, Result};

/// The schema (Iceberg namespace) gold models are written to and referenced by.
pub const GOLD: &str = "gold";

/// What a model's table is, for readers and the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// Events or transactions at a declared grain.
    Fact,
    /// Entities (customers, devices), one row per key.
    Dimension,
    /// Measures rolled up by dimensions and time.
    Aggregation,
    /// A named query, not materialised.
    View,
}

/// How a model's table is refreshed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Materialization {
    /// The whole table is recomputed and replaced in one commit.
    #[default]
    Full,
    /// Rows from `@start` (the newest `time_column` value minus `lookback`) are recomputed
    /// and replace the table's rows from then on.
    IncrementalByTime,
    /// The output's rows replace the table's rows of the same grain key.
    IncrementalByKey,
}

/// The header of a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelHeader {
    /// The model's (and its gold table's) name; default: the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// What the table is.
    pub kind: ModelKind,
    /// The columns one row is unique by.
    #[serde(default)]
    pub grain: Vec<String>,
    /// Partition transforms of the gold table (`month(col)`, `bucket(16, col)`, …).
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// How the table is refreshed.
    #[serde(default)]
    pub materialization: Materialization,
    /// Who answers for it.
    #[serde(default)]
    pub owner: Option<String>,
    /// Free tags (`tag:x` selects them).
    #[serde(default)]
    pub tags: Vec<String>,
    /// What it holds.
    #[serde(default)]
    pub description: Option<String>,
    /// Per-column descriptions.
    #[serde(default)]
    pub columns: IndexMap<String, String>,
    /// The output's time column (incremental models).
    #[serde(default)]
    pub time_column: Option<String>,
    /// How far before the newest time an incremental run starts (`2h`, `1d`; default 0).
    #[serde(default)]
    pub lookback: Option<String>,
    /// Checks the output must pass before it is published.
    #[serde(default)]
    pub audits: Vec<Audit>,
}

/// The YAML beside a model (`<model>.yaml`): more audits, and unit tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSidecar {
    /// Audits, added to the header's.
    #[serde(default)]
    pub audits: Vec<Audit>,
    /// Unit tests.
    #[serde(default)]
    pub tests: Vec<UnitTest>,
}

/// A parsed model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Its name.
    pub name: String,
    /// Where it was read from.
    pub file: PathBuf,
    /// Its header.
    pub header: ModelHeader,
    /// The whole file text (header comments included), as run.
    pub sql: String,
    /// Other models it reads (`gold.<name>`), sorted.
    pub upstream_models: Vec<String>,
    /// Silver tables it reads, sorted.
    pub upstream_tables: Vec<String>,
    /// SHA-256 of the SQL and header: what `plan` compares to the table's last run.
    pub fingerprint: String,
    /// Audits (header and sidecar).
    pub audits: Vec<Audit>,
    /// Unit tests (sidecar).
    pub tests: Vec<UnitTest>,
    /// The sidecar YAML, when there is one.
    pub sidecar: Option<PathBuf>,
    /// The lookback of an incremental model, in microseconds (0 without one).
    pub lookback_micros: i64,
}

fn model_err(
    file: &Path,
    at: String,
    problem: impl Into<String>,
    hint: &'static str,
) -> LayersError {
    LayersError::Model {
        file: file.display().to_string(),
        at,
        problem: problem.into(),
        hint,
    }
}

/// `:line:column` from a sqlparser message (`… at Line: 3, Column: 8`), if it has one.
fn position_in(message: &str) -> String {
    let number_after = |key: &str| -> Option<u64> {
        let rest = &message[message.find(key)? + key.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    };
    match (number_after("Line: "), number_after("Column: ")) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        _ => String::new(),
    }
}

impl Model {
    /// Reads and parses the model in `file`, with the YAML beside it if there is one.
    pub fn read(file: &Path) -> Result<Model> {
        let text = std::fs::read_to_string(file).map_err(|source| LayersError::Io {
            path: file.display().to_string(),
            source,
        })?;
        let mut model = Model::parse(file, &text)?;
        for ext in ["yaml", "yml"] {
            let path = file.with_extension(ext);
            if !path.exists() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| LayersError::Io {
                path: path.display().to_string(),
                source,
            })?;
            let sidecar: ModelSidecar = serde_yaml_ng::from_str(&text).map_err(|e| {
                let at = e
                    .location()
                    .map(|l| format!(":{}:{}", l.line(), l.column()))
                    .unwrap_or_default();
                model_err(
                    &path,
                    at,
                    e.to_string(),
                    "the YAML beside a model has `audits` and `tests`",
                )
            })?;
            model.audits.extend(sidecar.audits);
            model.tests = sidecar.tests;
            model.sidecar = Some(path);
            break;
        }
        Ok(model)
    }

    /// The models this one needs to run first: those its SQL reads and those its audits read.
    pub fn depends_on(&self) -> Vec<String> {
        let mut all: Vec<String> = self.upstream_models.clone();
        all.extend(
            self.audits
                .iter()
                .filter_map(|a| a.check.reads_model())
                .filter(|m| *m != self.name)
                .map(str::to_string),
        );
        all.sort();
        all.dedup();
        all
    }

    /// The SQL to run, with `@start` and `@end` as timestamp literals.
    pub fn sql_for_interval(&self, start: &str, end: &str) -> String {
        with_interval(&self.sql, start, end)
    }

    /// Parses the model text `text` of `file` (the header, the SQL and its upstream tables).
    pub fn parse(file: &Path, text: &str) -> Result<Model> {
        let header_text: String = text
            .lines()
            .take_while(|l| l.trim_start().starts_with("--"))
            .map(|l| {
                let body = l.trim_start().trim_start_matches("--");
                body.strip_prefix(' ').unwrap_or(body).to_string() + "\n"
            })
            .collect();
        if header_text.trim().is_empty() {
            return Err(model_err(
                file,
                ":1:1".into(),
                "has no header",
                "start the file with `-- kind: fact` (and name, grain, … ) comment lines",
            ));
        }
        let header: ModelHeader = serde_yaml_ng::from_str(&header_text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column() + 3))
                .unwrap_or_default();
            model_err(
                file,
                at,
                format!("header: {e}"),
                "the header is YAML in `-- ` comment lines: kind, name, grain, partition_by, materialization, owner, tags, description, columns",
            )
        })?;
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let name = header.name.clone().unwrap_or(stem);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(model_err(
                file,
                String::new(),
                format!("`{name}` cannot name a gold table"),
                "use letters, digits and _ (set `-- name:` or rename the file)",
            ));
        }
        match header.materialization {
            Materialization::IncrementalByTime if header.time_column.is_none() => {
                return Err(model_err(
                    file,
                    String::new(),
                    "is incremental_by_time without a time_column",
                    "name the output's time column: `-- time_column: hour`",
                ));
            }
            Materialization::IncrementalByKey if header.grain.is_empty() => {
                return Err(model_err(
                    file,
                    String::new(),
                    "is incremental_by_key without a grain",
                    "name the key columns: `-- grain: [order_id]`",
                ));
            }
            _ => {}
        }
        let lookback_micros = match &header.lookback {
            None => 0,
            Some(text) => strata_core::spec::parse_duration_micros(text).map_err(|e| {
                model_err(
                    file,
                    String::new(),
                    format!("lookback `{text}`: {e}"),
                    "write a duration such as 2h or 1d",
                )
            })?,
        };
        // `@start` / `@end` stand for literals at run time; they are replaced in place, so
        // line numbers in errors stay the file's own.
        let parsed_text = with_interval(text, EPOCH, FAR_FUTURE);
        let mut statements = DFParser::parse_sql_with_dialect(&parsed_text, &GenericDialect {})
            .map_err(|e| {
                let message = e.to_string();
                model_err(file, position_in(&message), message, "fix the SQL")
            })?;
        let statement = match (statements.pop_front(), statements.is_empty()) {
            (Some(s @ Statement::Statement(_)), true) => s,
            (None, _) => {
                return Err(model_err(
                    file,
                    String::new(),
                    "has no query",
                    "write one SELECT after the header",
                ));
            }
            _ => {
                return Err(model_err(
                    file,
                    String::new(),
                    "must be exactly one query",
                    "a model is one SELECT (use CTEs for steps)",
                ));
            }
        };
        if let Statement::Statement(s) = &statement
            && !matches!(**s, datafusion::sql::sqlparser::ast::Statement::Query(_))
        {
            return Err(model_err(
                file,
                String::new(),
                "is not a query",
                "a model is one SELECT: the table it fills is written by `strata models run`",
            ));
        }
        let (references, _ctes) = resolve_table_references(&statement, true)
            .map_err(|e| model_err(file, String::new(), e.to_string(), "fix the SQL"))?;
        let (mut upstream_models, mut upstream_tables) = (Vec::new(), Vec::new());
        for r in references {
            match &r {
                TableReference::Bare { table } => upstream_tables.push(table.to_string()),
                TableReference::Partial { schema, table } if schema.as_ref() == GOLD => {
                    upstream_models.push(table.to_string())
                }
                TableReference::Partial { schema, table } if schema.as_ref() == "silver" => {
                    upstream_tables.push(table.to_string())
                }
                TableReference::Full {
                    catalog,
                    schema,
                    table,
                } if catalog.as_ref() == "lake" && schema.as_ref() == GOLD => {
                    upstream_models.push(table.to_string())
                }
                TableReference::Full {
                    catalog,
                    schema,
                    table,
                } if catalog.as_ref() == "lake" && schema.as_ref() == "silver" => {
                    upstream_tables.push(table.to_string())
                }
                other => {
                    return Err(model_err(
                        file,
                        String::new(),
                        format!(
                            "reads `{other}`, which is neither a silver table nor a gold model"
                        ),
                        "read silver tables by name and other models as gold.<name>",
                    ));
                }
            }
        }
        upstream_models.sort();
        upstream_models.dedup();
        upstream_tables.sort();
        upstream_tables.dedup();
        if upstream_models.contains(&name) {
            return Err(model_err(
                file,
                String::new(),
                format!("reads its own table gold.{name}"),
                "a full model recomputes its table from upstream; read the upstream tables",
            ));
        }
        let fingerprint = hex::encode(Sha256::digest(text.as_bytes()));
        let audits = header.audits.clone();
        Ok(Model {
            name,
            file: file.to_path_buf(),
            header,
            sql: text.to_string(),
            upstream_models,
            upstream_tables,
            fingerprint,
            audits,
            tests: Vec::new(),
            sidecar: None,
            lookback_micros,
        })
    }
}

/// `text` with `@start` / `@end` replaced by `TIMESTAMP '<start>'` / `TIMESTAMP '<end>'`.
fn with_interval(text: &str, start: &str, end: &str) -> String {
    text.replace("@start", &format!("TIMESTAMP '{start}'"))
        .replace("@end", &format!("TIMESTAMP '{end}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Model> {
        Model::parse(Path::new("models/fact_orders.sql"), text)
    }

    #[test]
    fn the_header_and_upstream_tables_come_from_the_file() {
        let m = parse(
            "-- kind: fact\n-- grain: [order_id]\n-- owner: sales\n-- tags: [orders]\n-- columns:\n--   order_id: the id\nWITH o AS (SELECT * FROM orders)\nSELECT o.order_id, c.segment FROM o JOIN gold.dim_customer c USING (customer_id) JOIN silver.customers s USING (customer_id)\n",
        )
        .unwrap();
        assert_eq!(m.name, "fact_orders");
        assert_eq!(m.header.kind, ModelKind::Fact);
        assert_eq!(m.header.grain, vec!["order_id".to_string()]);
        assert_eq!(
            m.header.columns.get("order_id").map(String::as_str),
            Some("the id")
        );
        assert_eq!(m.upstream_models, vec!["dim_customer".to_string()]);
        // The CTE `o` is not a table.
        assert_eq!(
            m.upstream_tables,
            vec!["customers".to_string(), "orders".to_string()]
        );
        assert_eq!(m.fingerprint.len(), 64);
    }

    #[test]
    fn mistakes_name_the_file_and_where() {
        let e = parse("SELECT 1").unwrap_err().to_string();
        assert!(
            e.contains("models/fact_orders.sql:1:1") && e.contains("no header"),
            "{e}"
        );
        let e = parse("-- kind: fakt\nSELECT 1").unwrap_err().to_string();
        assert!(
            e.contains("models/fact_orders.sql:1:") && e.contains("fakt"),
            "{e}"
        );
        let e = parse("-- kind: fact\n-- grian: [a]\nSELECT 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("grian"), "{e}");
        let e = parse("-- kind: fact\nSELECT a\n  FROM orders WHERE ) AND 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("models/fact_orders.sql:3:"), "{e}");
        let e = parse("-- kind: fact\nDROP TABLE orders")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a query"), "{e}");
        let e = parse("-- kind: fact\nSELECT 1; SELECT 2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one query"), "{e}");
        let e = parse("-- kind: fact\nSELECT * FROM gold.fact_orders")
            .unwrap_err()
            .to_string();
        assert!(e.contains("its own table"), "{e}");
        let e = parse("-- kind: fact\nSELECT * FROM other.db.t")
            .unwrap_err()
            .to_string();
        assert!(e.contains("neither a silver table nor a gold model"), "{e}");
        let e = parse("-- kind: fact\n-- name: bad-name\nSELECT 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad-name"), "{e}");
    }
}
