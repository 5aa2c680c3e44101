//! The semantic layer (the LookML role): metrics declared in YAML over gold and silver tables,
//! each with named measures, dimensions, time grains, joins and named filters. Clients ask by
//! name (`GET /metrics/revenue?by=day,country&where=country:BR&from=…`); the SQL is built from
//! the declaration only, and every client value is a typed parameter (`$1`, `$2`…) bound after
//! planning. No client text ever becomes SQL text: an unknown name is a 400, a value that does
//! not parse as its column's type is a 400.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ParamValues, ScalarValue};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{Result, ServingError};

/// The metrics as catalog nodes: each downstream of its table and its joins' tables.
pub fn metric_nodes(
    metrics: &IndexMap<String, MetricDef>,
) -> Vec<strata_runtime::catalog::MetricNode> {
    metrics
        .iter()
        .map(|(name, def)| strata_runtime::catalog::MetricNode {
            name: name.clone(),
            description: def.description.clone(),
            tables: def
                .tables()
                .into_iter()
                .map(|(layer, table)| format!("{layer}.{table}"))
                .collect(),
        })
        .collect()
}

/// One metric: a table, its measures and the ways to slice them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MetricDef {
    /// `layer.table` (`gold.fact_orders`); a bare name is a silver table.
    pub table: String,
    /// What the metric means, for `/openapi.json` and `/datasets`.
    #[serde(default)]
    pub description: Option<String>,
    /// The event-time column: time grains (`minute`…`month`) and `from` / `to` use it.
    #[serde(default)]
    pub time: Option<String>,
    /// Named aggregates.
    pub measures: IndexMap<String, Measure>,
    /// Named columns to group or filter by (`site: location_site`, or `{column, join}`).
    #[serde(default)]
    pub dimensions: IndexMap<String, Dimension>,
    /// Other tables joined to this one (left joins), by name.
    #[serde(default)]
    pub joins: IndexMap<String, Join>,
    /// Named conditions a client may switch on with `filter=<name>` (config SQL, trusted).
    #[serde(default)]
    pub filters: IndexMap<String, String>,
}

/// A measure: an aggregate of a column, or a ratio of two other measures.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Measure {
    /// `{agg: sum, column: amount}`; `count` needs no column.
    Aggregate {
        /// The aggregate.
        agg: Aggregate,
        /// The column (of the metric's table, or `join.column`).
        #[serde(default)]
        column: Option<String>,
    },
    /// `{ratio: [revenue, orders]}`: the first measure over the second (null when it is 0).
    Ratio {
        /// Numerator and denominator measure names.
        ratio: [String; 2],
    },
}

/// Aggregates a measure may use.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Rows (or non-null values of `column`).
    Count,
    /// Distinct non-null values.
    CountDistinct,
    /// Approximate distinct values (HyperLogLog).
    ApproxCountDistinct,
    /// Sum.
    Sum,
    /// Mean.
    Avg,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
}

/// A dimension: a column of the table or of a join.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Dimension {
    /// `site: location_site`.
    Column(String),
    /// `{column: segment, join: customers}`.
    Joined {
        /// The column.
        column: String,
        /// The join it comes from.
        #[serde(default)]
        join: Option<String>,
    },
}

/// A left join: `{table: gold.dim_customer, on: {customer: name}}` (this table's column →
/// the joined table's column).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// `layer.table`.
    pub table: String,
    /// Column pairs that must be equal.
    pub on: IndexMap<String, String>,
}

/// Time grains a client may group by.
pub const GRAINS: [&str; 5] = ["minute", "hour", "day", "week", "month"];

/// A parsed, checked request for a metric.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricRequest {
    /// Measures to compute (all when none were asked for).
    pub measures: Vec<String>,
    /// Dimensions and grains to group by, in order.
    pub by: Vec<String>,
    /// `dimension = value` conditions.
    pub conditions: Vec<(String, String)>,
    /// Named filters switched on.
    pub filters: Vec<String>,
    /// Inclusive lower bound of the time column.
    pub from: Option<String>,
    /// Exclusive upper bound of the time column.
    pub to: Option<String>,
    /// Rows returned at most (capped by the server's limit).
    pub limit: Option<usize>,
}

impl MetricRequest {
    /// Parses query-string pairs: `measures=a,b`, `by=day,site`, `where=site:s1` (repeatable;
    /// the value is everything after the first `:`), `filter=paid`, `from`, `to`, `limit`.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self> {
        let mut request = MetricRequest::default();
        let list = |v: &str| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        for (key, value) in pairs {
            match key.as_str() {
                "measures" => request.measures.extend(list(value)),
                "by" => request.by.extend(list(value)),
                "filter" => request.filters.extend(list(value)),
                "where" => {
                    let Some((dimension, v)) = value.split_once(':') else {
                        return Err(ServingError::bad(
                            "where",
                            format!("`{value}` is not `dimension:value`"),
                        ));
                    };
                    request
                        .conditions
                        .push((dimension.trim().to_string(), v.to_string()));
                }
                "from" => request.from = Some(value.clone()),
                "to" => request.to = Some(value.clone()),
                "limit" => {
                    let n: usize = value.parse().map_err(|_| {
                        ServingError::bad("limit", format!("`{value}` is not a row count"))
                    })?;
                    request.limit = Some(n);
                }
                other => {
                    return Err(ServingError::bad(
                        other,
                        "unknown parameter (known: measures, by, where, filter, from, to, limit)",
                    ));
                }
            }
        }
        Ok(request)
    }

    /// A canonical text of the request, for cache keys.
    pub fn canonical(&self) -> String {
        format!(
            "m={:?};by={:?};w={:?};f={:?};from={:?};to={:?};limit={:?}",
            self.measures, self.by, self.conditions, self.filters, self.from, self.to, self.limit
        )
    }
}

/// SQL built for a request: the text (config identifiers and `$n` placeholders only) and the
/// client values for the placeholders, still as text until their types are known.
#[derive(Debug, Clone)]
pub struct MetricSql {
    /// The statement.
    pub sql: String,
    /// `(placeholder number, parameter name, client text)`.
    pub params: Vec<(usize, String, String)>,
    /// Every table it reads, as `(layer, table)`.
    pub tables: Vec<(String, String)>,
}

/// `"name"` with inner quotes doubled: a config name as a SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `layer.table` → `(layer, table)`; a bare name is silver.
pub fn split_table(name: &str) -> (String, String) {
    match name.split_once('.') {
        Some((layer, table)) => (layer.to_string(), table.to_string()),
        None => ("silver".to_string(), name.to_string()),
    }
}

impl MetricDef {
    /// Checks the declaration: names resolve, ratios name aggregates, columns are given.
    pub fn validate(&self, metric: &str) -> Result<()> {
        let at = |what: String| format!("metrics.{metric}.{what}");
        for (name, measure) in &self.measures {
            match measure {
                Measure::Aggregate { agg, column } => {
                    if column.is_none() && *agg != Aggregate::Count {
                        return Err(ServingError::config(
                            at(format!("measures.{name}")),
                            "this aggregate needs a `column`",
                        ));
                    }
                    if let Some(c) = column {
                        self.column(c)
                            .map_err(|e| ServingError::config(at(format!("measures.{name}")), e))?;
                    }
                }
                Measure::Ratio { ratio } => {
                    for part in ratio {
                        match self.measures.get(part) {
                            Some(Measure::Aggregate { .. }) => {}
                            _ => {
                                return Err(ServingError::config(
                                    at(format!("measures.{name}")),
                                    format!("ratio part `{part}` is not an aggregate measure"),
                                ));
                            }
                        }
                    }
                }
            }
        }
        for (name, dimension) in &self.dimensions {
            if GRAINS.contains(&name.as_str()) {
                return Err(ServingError::config(
                    at(format!("dimensions.{name}")),
                    "this name is a time grain",
                ));
            }
            let (column, join) = dimension.parts();
            self.column_in(column, join)
                .map_err(|e| ServingError::config(at(format!("dimensions.{name}")), e))?;
        }
        if self.measures.is_empty() {
            return Err(ServingError::config(at("measures".into()), "no measures"));
        }
        Ok(())
    }

    /// `join.column` or `column` → a qualified SQL column.
    fn column(&self, reference: &str) -> std::result::Result<String, String> {
        match reference.split_once('.') {
            Some((join, column)) => self.column_in(column, Some(join)),
            None => self.column_in(reference, None),
        }
    }

    fn column_in(&self, column: &str, join: Option<&str>) -> std::result::Result<String, String> {
        match join {
            None => Ok(format!("t.{}", ident(column))),
            Some(j) if self.joins.contains_key(j) => Ok(format!("{}.{}", ident(j), ident(column))),
            Some(j) => Err(format!("no join named `{j}`")),
        }
    }

    fn aggregate_sql(&self, measure: &str) -> Result<String> {
        let Some(m) = self.measures.get(measure) else {
            return Err(ServingError::bad(
                "measures",
                format!("no measure `{measure}`"),
            ));
        };
        Ok(match m {
            Measure::Aggregate { agg, column } => {
                let col = match column {
                    Some(c) => self
                        .column(c)
                        .map_err(|e| ServingError::config(measure.to_string(), e))?,
                    None => "*".to_string(),
                };
                match agg {
                    Aggregate::Count => format!("count({col})"),
                    Aggregate::CountDistinct => format!("count(DISTINCT {col})"),
                    Aggregate::ApproxCountDistinct => format!("approx_distinct({col})"),
                    Aggregate::Sum => format!("sum({col})"),
                    Aggregate::Avg => format!("avg({col})"),
                    Aggregate::Min => format!("min({col})"),
                    Aggregate::Max => format!("max({col})"),
                }
            }
            Measure::Ratio { ratio } => format!(
                "CAST({} AS DOUBLE) / NULLIF(CAST({} AS DOUBLE), 0)",
                self.aggregate_sql(&ratio[0])?,
                self.aggregate_sql(&ratio[1])?
            ),
        })
    }

    /// Every table this metric reads.
    pub fn tables(&self) -> Vec<(String, String)> {
        let mut tables = vec![split_table(&self.table)];
        tables.extend(self.joins.values().map(|j| split_table(&j.table)));
        tables
    }

    /// Builds the statement for `request`.
    pub fn to_sql(&self, request: &MetricRequest) -> Result<MetricSql> {
        let measures: Vec<String> = if request.measures.is_empty() {
            self.measures.keys().cloned().collect()
        } else {
            request.measures.clone()
        };
        let mut select = Vec::new();
        let mut group = Vec::new();
        for (i, by) in request.by.iter().enumerate() {
            let expr = if GRAINS.contains(&by.as_str()) {
                let Some(time) = &self.time else {
                    return Err(ServingError::bad(
                        "by",
                        format!("`{by}` is a time grain but this metric has no time column"),
                    ));
                };
                format!("date_trunc('{by}', t.{})", ident(time))
            } else {
                self.dimension_sql("by", by)?
            };
            if request.by[..i].contains(by) {
                return Err(ServingError::bad("by", format!("`{by}` is named twice")));
            }
            select.push(format!("{expr} AS {}", ident(by)));
            group.push((i + 1).to_string());
        }
        for m in &measures {
            select.push(format!("{} AS {}", self.aggregate_sql(m)?, ident(m)));
        }
        let (layer, table) = split_table(&self.table);
        let mut sql = format!(
            "SELECT {} FROM {}.{} AS t",
            select.join(", "),
            ident(&layer),
            ident(&table)
        );
        for (name, join) in &self.joins {
            let (jl, jt) = split_table(&join.table);
            let on: Vec<String> = join
                .on
                .iter()
                .map(|(left, right)| {
                    format!("t.{} = {}.{}", ident(left), ident(name), ident(right))
                })
                .collect();
            sql.push_str(&format!(
                " LEFT JOIN {}.{} AS {} ON {}",
                ident(&jl),
                ident(&jt),
                ident(name),
                on.join(" AND ")
            ));
        }
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        for (dimension, value) in &request.conditions {
            let expr = self.dimension_sql("where", dimension)?;
            params.push((
                params.len() + 1,
                format!("where {dimension}"),
                value.clone(),
            ));
            conditions.push(format!("{expr} = ${}", params.len()));
        }
        for (bound, op, value) in [("from", ">=", &request.from), ("to", "<", &request.to)] {
            let Some(value) = value else { continue };
            let Some(time) = &self.time else {
                return Err(ServingError::bad(
                    bound,
                    "this metric has no time column to bound",
                ));
            };
            params.push((params.len() + 1, bound.to_string(), value.clone()));
            conditions.push(format!("t.{} {op} ${}", ident(time), params.len()));
        }
        for f in &request.filters {
            let Some(condition) = self.filters.get(f) else {
                return Err(ServingError::bad(
                    "filter",
                    format!(
                        "no filter `{f}` (known: {})",
                        self.filters.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            conditions.push(format!("({condition})"));
        }
        if !conditions.is_empty() {
            sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
        }
        if !group.is_empty() {
            sql.push_str(&format!(
                " GROUP BY {} ORDER BY {}",
                group.join(", "),
                group.join(", ")
            ));
        }
        Ok(MetricSql {
            sql,
            params,
            tables: self.tables(),
        })
    }

    fn dimension_sql(&self, parameter: &str, name: &str) -> Result<String> {
        let Some(d) = self.dimensions.get(name) else {
            let mut known: Vec<String> = self.dimensions.keys().cloned().collect();
            if self.time.is_some() {
                known.extend(GRAINS.iter().map(|g| g.to_string()));
            }
            return Err(ServingError::bad(
                parameter,
                format!("no dimension `{name}` (known: {})", known.join(", ")),
            ));
        };
        let (column, join) = d.parts();
        self.column_in(column, join)
            .map_err(|e| ServingError::config(name.to_string(), e))
    }
}

impl Dimension {
    fn parts(&self) -> (&str, Option<&str>) {
        match self {
            Dimension::Column(c) => (c, None),
            Dimension::Joined { column, join } => (column, join.as_deref()),
        }
    }
}

/// Turns the client texts into values of the types DataFusion inferred for the placeholders;
/// text that is not a value of its type is a 400 naming the parameter.
pub fn bind(
    params: &[(usize, String, String)],
    types: &BTreeMap<String, Option<DataType>>,
) -> Result<ParamValues> {
    let mut values = Vec::with_capacity(params.len());
    for (n, name, text) in params {
        let data_type = types
            .get(&format!("${n}"))
            .cloned()
            .flatten()
            .unwrap_or(DataType::Utf8);
        let value = parse_value(text, &data_type).map_err(|problem| {
            ServingError::bad(
                name.split(' ').next().unwrap_or(name),
                format!("`{text}` for {name}: {problem}"),
            )
        })?;
        values.push(value);
    }
    Ok(ParamValues::List(
        values.into_iter().map(Into::into).collect(),
    ))
}

fn parse_value(text: &str, data_type: &DataType) -> std::result::Result<ScalarValue, String> {
    let target = match data_type {
        // Text is taken as it came (it is a bound value, never SQL).
        DataType::Utf8View | DataType::LargeUtf8 | DataType::Utf8 => {
            return ScalarValue::Utf8(Some(text.to_string()))
                .cast_to(data_type)
                .map_err(|e| e.strip_backtrace());
        }
        other => other,
    };
    let value = ScalarValue::try_from_string(text.to_string(), target)
        .map_err(|_| format!("not a value of type {target}"))?;
    if value.is_null() {
        return Err(format!("not a value of type {target}"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> MetricDef {
        serde_yaml_ng::from_str(
            r#"
table: gold.fact_orders
time: changed_at
measures:
  revenue: {agg: sum, column: amount}
  orders: {agg: count}
  customers: {agg: count_distinct, column: customer_id}
  avg_order: {ratio: [revenue, orders]}
dimensions:
  status: status
  segment: {column: segment, join: customers}
joins:
  customers: {table: gold.dim_customer, on: {customer_id: customer_id}}
filters:
  paid: "t.status = 'paid'"
"#,
        )
        .unwrap()
    }

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn client_values_become_placeholders_never_sql_text() {
        let m = orders();
        m.validate("revenue").unwrap();
        let evil = "BR' OR '1'='1";
        let r = MetricRequest::from_pairs(&pairs(&[
            ("by", "day,segment"),
            ("where", &format!("status:{evil}")),
            ("from", "2026-01-01"),
        ]))
        .unwrap();
        let built = m.to_sql(&r).unwrap();
        assert!(!built.sql.contains(evil), "{}", built.sql);
        assert!(built.sql.contains("t.\"status\" = $1"), "{}", built.sql);
        assert!(
            built.sql.contains("t.\"changed_at\" >= $2"),
            "{}",
            built.sql
        );
        assert_eq!(built.params[0].2, evil);
        assert_eq!(built.tables.len(), 2);
    }

    #[test]
    fn unknown_names_are_400s_naming_what_exists() {
        let m = orders();
        for q in [
            vec![("by", "country")],
            vec![("by", "x\"; DROP TABLE t; --")],
            vec![("measures", "revenue,profit")],
            vec![("filter", "1=1")],
            vec![("where", "amount>5")],
        ] {
            let r = MetricRequest::from_pairs(&pairs(&q)).and_then(|r| m.to_sql(&r));
            assert!(
                matches!(r, Err(ServingError::BadParameter { .. })),
                "{q:?}: {r:?}"
            );
        }
        assert!(MetricRequest::from_pairs(&pairs(&[("limit", "-1")])).is_err());
        assert!(MetricRequest::from_pairs(&pairs(&[("order", "x")])).is_err());
    }

    #[test]
    fn values_are_checked_against_their_column_type() {
        let mut types = BTreeMap::new();
        types.insert("$1".to_string(), Some(DataType::Float64));
        let ok = bind(&[(1, "where amount".into(), "10.5".into())], &types).unwrap();
        assert!(matches!(ok, ParamValues::List(ref v) if v.len() == 1));
        let bad = bind(&[(1, "where amount".into(), "1; DROP".into())], &types);
        assert!(
            matches!(bad, Err(ServingError::BadParameter { .. })),
            "{bad:?}"
        );
    }

    #[test]
    fn declarations_are_checked() {
        let mut m = orders();
        m.measures.insert(
            "bad".into(),
            Measure::Ratio {
                ratio: ["revenue".into(), "nope".into()],
            },
        );
        assert!(m.validate("x").is_err());
    }
}
