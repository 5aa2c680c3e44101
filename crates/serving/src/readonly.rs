//! The gate in front of `POST /query`: a statement is parsed (DataFusion's parser, PostgreSQL
//! dialect) and accepted only when it is exactly one query. DDL, DML, `COPY`, `SET`, `EXPLAIN`,
//! several statements, and table functions (which could read files or generate unbounded rows)
//! are refused with the statement kind named. The plan is checked again after planning
//! ([`datafusion::execution::context::SQLOptions::verify_plan`]), so nothing slips through a
//! form the AST check does not know.

use std::ops::ControlFlow;

use datafusion::sql::TableReference;
use datafusion::sql::parser::{DFParserBuilder, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Statement, TableFactor, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use crate::error::{Result, ServingError};

/// A statement accepted as a read-only query, with the tables it reads.
#[derive(Debug)]
pub struct ReadOnlyQuery {
    /// The parsed statement, ready to plan.
    pub statement: DfStatement,
    /// The tables it names (CTE names excluded), as written.
    pub tables: Vec<TableReference>,
    /// The statement as DataFusion prints it back: the normalised text the cache keys on.
    pub normalised: String,
}

/// Parses `sql` and accepts it only when it is a single read-only query.
pub fn check(sql: &str) -> Result<ReadOnlyQuery> {
    let dialect = PostgreSqlDialect {};
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .with_recursion_limit(64)
        .build()
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| ServingError::Plan {
            message: e.to_string(),
        })?;
    if statements.len() > 1 {
        return Err(ServingError::Refused {
            kind: "multiple statements".into(),
            reason: format!(
                "{} statements were sent; /query runs exactly one query",
                statements.len()
            ),
        });
    }
    let Some(statement) = statements.pop_front() else {
        return Err(ServingError::bad("sql", "the statement is empty"));
    };
    let inner = match &statement {
        DfStatement::Statement(inner) => inner.as_ref(),
        DfStatement::CreateExternalTable(_) => return Err(refused("CREATE EXTERNAL TABLE")),
        DfStatement::CopyTo(_) => return Err(refused("COPY")),
        DfStatement::Explain(_) => return Err(refused("EXPLAIN")),
        DfStatement::Reset(_) => return Err(refused("RESET")),
    };
    if !matches!(inner, Statement::Query(_)) {
        return Err(refused(&statement_kind(inner)));
    }
    let mut functions = TableFunctions::default();
    let _ = inner.visit(&mut functions);
    if let Some(name) = functions.found {
        return Err(ServingError::Refused {
            kind: format!("table function {name}"),
            reason: "table functions can read files or generate unbounded rows; query tables"
                .into(),
        });
    }
    let (tables, _ctes) = datafusion::sql::resolve::resolve_table_references(&statement, true)
        .map_err(|e| ServingError::Plan {
            message: e.to_string(),
        })?;
    let normalised = statement.to_string();
    Ok(ReadOnlyQuery {
        statement,
        tables,
        normalised,
    })
}

fn refused(kind: &str) -> ServingError {
    ServingError::Refused {
        kind: kind.to_string(),
        reason: "the analytics API is read-only: only a single SELECT / WITH … SELECT / VALUES \
                 query is accepted"
            .into(),
    }
}

/// `CREATE TABLE` from `CreateTable(…)`: the variant name of the statement, split into words.
fn statement_kind(statement: &Statement) -> String {
    let debug = format!("{statement:?}");
    let variant: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    let mut words = String::new();
    for (i, c) in variant.chars().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            words.push(' ');
        }
        words.push(c.to_ascii_uppercase());
    }
    if words.is_empty() {
        "statement".into()
    } else {
        words
    }
}

/// Finds the first table function (`FROM read_parquet('…')`, `FROM generate_series(…)`,
/// `LATERAL f(…)`) in a statement.
#[derive(Default)]
struct TableFunctions {
    found: Option<String>,
}

impl Visitor for TableFunctions {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        let name = match factor {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => Some(name.to_string()),
            TableFactor::Function { name, .. } => Some(name.to_string()),
            TableFactor::TableFunction { expr, .. } => Some(expr.to_string()),
            _ => None,
        };
        match name {
            Some(n) => {
                self.found = Some(n);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_kind(sql: &str) -> String {
        match check(sql) {
            Err(ServingError::Refused { kind, .. }) => kind,
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn queries_pass_with_their_tables() {
        let q = check("WITH x AS (SELECT * FROM gold.fact_orders) SELECT count(*) FROM x JOIN silver.orders o ON true").unwrap();
        let names: Vec<String> = q.tables.iter().map(|t| t.to_string()).collect();
        assert_eq!(names, vec!["gold.fact_orders", "silver.orders"]);
        assert!(check("VALUES (1)").is_ok());
    }

    #[test]
    fn every_writing_or_session_statement_is_refused_by_kind() {
        assert_eq!(refused_kind("CREATE TABLE t (a int)"), "CREATE TABLE");
        assert_eq!(refused_kind("DROP TABLE gold.fact_orders"), "DROP");
        assert_eq!(refused_kind("INSERT INTO t VALUES (1)"), "INSERT");
        assert_eq!(refused_kind("DELETE FROM t"), "DELETE");
        assert_eq!(refused_kind("UPDATE t SET a = 1"), "UPDATE");
        assert_eq!(refused_kind("COPY t TO '/tmp/x.csv'"), "COPY");
        assert_eq!(
            refused_kind("SET datafusion.execution.batch_size = 1"),
            "SET"
        );
        assert_eq!(
            refused_kind("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'"),
            "CREATE EXTERNAL TABLE"
        );
        assert_eq!(refused_kind("EXPLAIN SELECT 1"), "EXPLAIN");
        assert_eq!(
            refused_kind("SELECT 1; DROP TABLE t"),
            "multiple statements"
        );
    }

    #[test]
    fn table_functions_are_refused_wherever_they_hide() {
        for sql in [
            "SELECT * FROM read_parquet('/etc/passwd')",
            "SELECT * FROM generate_series(1, 100000000000)",
            "SELECT * FROM (SELECT * FROM read_csv('x.csv')) s",
            "WITH a AS (SELECT * FROM range(10)) SELECT * FROM a",
        ] {
            assert!(refused_kind(sql).starts_with("table function"), "{sql}");
        }
    }
}
