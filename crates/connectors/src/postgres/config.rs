//! The configuration of a PostgreSQL full / incremental load: a connection profile (one server,
//! one database) and the tables to read from it.
//!
//! Parsed with `deny_unknown_fields`, then checked in one place ([`PgSourceConfig::validate`])
//! which reports every problem at once with its YAML path. The password never appears in the
//! file: `connection.password_env` names the environment variable that holds it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{ConnectorError, Result};

/// A whole load: where to connect, how to read and which tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgSourceConfig {
    /// The server, database and credentials.
    pub connection: PgConnection,
    /// Parallel readers (connections) sharing one exported snapshot. Default 3.
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    /// Rows per Arrow batch. Default 65,536.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Rows per emitted part (one bronze object): bounds memory per reader. Default 500,000.
    #[serde(default = "default_part_rows")]
    pub part_rows: usize,
    /// Attempts after the first for a chunk that failed with a transient error. Default 3.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First retry delay in milliseconds, doubled at each attempt. Default 200.
    #[serde(default = "default_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// JSON file keeping the watermarks of incremental tables (required when one is incremental).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Tables to read.
    pub tables: Vec<PgTableConfig>,
}

/// A connection profile: a URL, or host / port / user / database. The password comes from the
/// environment variable named by `password_env`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgConnection {
    /// `postgres://user@host:port/db` (no password in it: use `password_env`).
    #[serde(default)]
    pub url: Option<String>,
    /// Host name or address (when no `url`).
    #[serde(default)]
    pub host: Option<String>,
    /// Port (default 5432).
    #[serde(default)]
    pub port: Option<u16>,
    /// Role to connect as.
    #[serde(default)]
    pub user: Option<String>,
    /// Database name.
    #[serde(default)]
    pub database: Option<String>,
    /// Name of the environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Connect timeout in seconds (default 10).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Prefix of the sessions' `application_name` (default `strata-load`): the coordinator is
    /// `<prefix>-coordinator`, readers `<prefix>-reader-<n>` in `pg_stat_activity`.
    #[serde(default)]
    pub application_name: Option<String>,
    /// libpq's `sslmode`: `disable`, `prefer` (default), `require`, `verify-ca`,
    /// `verify-full` (see [`super::tls`]); a `sslmode` in the URL wins.
    #[serde(default)]
    pub sslmode: Option<String>,
    /// PEM file of the certificate authorities to trust (default: the system's roots).
    #[serde(default)]
    pub sslrootcert: Option<std::path::PathBuf>,
}

/// What to do with `numeric` columns declared without precision and scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnconstrainedNumeric {
    /// `Decimal128(38, 10)`: a value with more than 10 fractional digits, more than 28 integer
    /// digits, or NaN / ±Infinity fails the load with an error naming the column.
    #[default]
    Decimal,
    /// The value's text, exactly as PostgreSQL prints it (`Utf8`).
    Text,
}

/// Incremental reading of a table by a watermark column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementalConfig {
    /// A column that grows with every insert / update (`updated_at`, a sequence).
    pub column: String,
}

/// One table to read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PgTableConfig {
    /// Schema (default `public`).
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Table (or view / materialized view) name, as in `pg_class` (case-sensitive).
    pub name: String,
    /// Columns to read, in this order (default: all, in table order).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// An SQL condition added to every chunk's query (`WHERE (...)`).
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// Number of chunks (default: `parallelism`).
    #[serde(default)]
    pub chunks: Option<usize>,
    /// Columns read through a `::text` cast whatever their type.
    #[serde(default)]
    pub text_columns: Vec<String>,
    /// Mapping of `numeric` without precision and scale.
    #[serde(default)]
    pub numeric_unconstrained: UnconstrainedNumeric,
    /// Read only rows whose watermark grew since the last run.
    #[serde(default)]
    pub incremental: Option<IncrementalConfig>,
}

fn default_parallelism() -> usize {
    3
}
fn default_batch_rows() -> usize {
    65_536
}
fn default_part_rows() -> usize {
    500_000
}
fn default_max_retries() -> u32 {
    3
}
fn default_backoff_ms() -> u64 {
    200
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_schema() -> String {
    "public".into()
}

impl PgTableConfig {
    /// A table of `public` with every default.
    pub fn new(schema: &str, name: &str) -> Self {
        PgTableConfig {
            schema: schema.to_string(),
            name: name.to_string(),
            columns: None,
            filter: None,
            chunks: None,
            text_columns: Vec::new(),
            numeric_unconstrained: UnconstrainedNumeric::Decimal,
            incremental: None,
        }
    }

    /// `schema.table` as written in messages and in the state file.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

impl PgConnection {
    /// A profile from a URL.
    pub fn from_url(url: &str) -> Self {
        PgConnection {
            url: Some(url.to_string()),
            connect_timeout_secs: default_connect_timeout(),
            ..PgConnection::default()
        }
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs.max(1))
    }
}

impl PgSourceConfig {
    /// A config with defaults for `connection` and `tables`.
    pub fn new(connection: PgConnection, tables: Vec<PgTableConfig>) -> Self {
        PgSourceConfig {
            connection,
            parallelism: default_parallelism(),
            batch_rows: default_batch_rows(),
            part_rows: default_part_rows(),
            max_retries: default_max_retries(),
            retry_backoff_ms: default_backoff_ms(),
            state_file: None,
            tables,
        }
    }

    /// Parses YAML and validates it.
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config: PgSourceConfig =
            serde_yaml_ng::from_str(text).map_err(|e| ConnectorError::PgConfig {
                problems: vec![e.to_string()],
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the whole config and reports every problem at once, each with its YAML path.
    pub fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        let c = &self.connection;
        match (&c.url, &c.host) {
            (Some(_), Some(_)) => problems.push(
                "connection: give either `url` or `host`/`port`/`user`/`database`, not both".into(),
            ),
            (None, None) => {
                problems.push("connection: `url` or `host` is required".into());
            }
            (Some(url), None) => {
                if c.user.is_some() || c.database.is_some() || c.port.is_some() {
                    problems.push(
                        "connection: `user`/`database`/`port` go in the `url` when a `url` is given"
                            .into(),
                    );
                }
                match url.parse::<tokio_postgres::Config>() {
                    Err(e) => problems.push(format!("connection.url: {e}")),
                    Ok(parsed) => {
                        if parsed.get_password().is_some() {
                            problems.push(
                                "connection.url: holds a password; put it in an environment \
                                 variable named by `password_env`"
                                    .into(),
                            );
                        }
                    }
                }
            }
            (None, Some(_)) => {
                if c.user.is_none() {
                    problems.push("connection.user: required with `host`".into());
                }
                if c.database.is_none() {
                    problems.push("connection.database: required with `host`".into());
                }
            }
        }
        if let Some(var) = &c.password_env
            && var.trim().is_empty()
        {
            problems.push("connection.password_env: empty variable name".into());
        }
        if !(1..=64).contains(&self.parallelism) {
            problems.push(format!(
                "parallelism: {} is out of range 1..=64",
                self.parallelism
            ));
        }
        if self.batch_rows == 0 {
            problems.push("batch_rows: must be at least 1".into());
        }
        if self.part_rows == 0 {
            problems.push("part_rows: must be at least 1".into());
        }
        if self.max_retries > 20 {
            problems.push(format!("max_retries: {} is above 20", self.max_retries));
        }
        if self.tables.is_empty() {
            problems.push("tables: at least one table is required".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, t) in self.tables.iter().enumerate() {
            let at = format!("tables[{i}]");
            if t.name.is_empty() {
                problems.push(format!("{at}.name: empty"));
            }
            if t.schema.is_empty() {
                problems.push(format!("{at}.schema: empty"));
            }
            if !seen.insert(t.qualified()) {
                problems.push(format!("{at}: `{}` is listed twice", t.qualified()));
            }
            if let Some(cols) = &t.columns {
                if cols.is_empty() {
                    problems.push(format!("{at}.columns: empty list (omit it to read all)"));
                }
                let mut names = std::collections::BTreeSet::new();
                for col in cols {
                    if !names.insert(col) {
                        problems.push(format!("{at}.columns: `{col}` is listed twice"));
                    }
                }
            }
            if t.chunks == Some(0) || t.chunks.is_some_and(|n| n > 10_000) {
                problems.push(format!("{at}.chunks: must be 1..=10000"));
            }
            if let Some(f) = &t.filter
                && (f.trim().is_empty() || f.contains(';'))
            {
                problems.push(format!(
                    "{at}.where: must be one SQL condition (non-empty, no `;`)"
                ));
            }
            if let Some(inc) = &t.incremental {
                if inc.column.is_empty() {
                    problems.push(format!("{at}.incremental.column: empty"));
                }
                if self.state_file.is_none() {
                    problems.push(format!(
                        "{at}.incremental: needs a top-level `state_file` to keep the watermark"
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConnectorError::PgConfig { problems })
        }
    }

    /// The chunk count of `table`.
    pub fn chunks_of(&self, table: &PgTableConfig) -> usize {
        table.chunks.unwrap_or(self.parallelism).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_config() {
        let c = PgSourceConfig::from_yaml(
            r#"
connection: { url: "postgres://app@db:5432/crm", password_env: CRM_PASSWORD }
parallelism: 4
state_file: state/crm.json
tables:
  - name: customers
    columns: [id, email]
    where: "country = 'BR'"
    chunks: 8
  - schema: sales
    name: orders
    text_columns: [geom]
    numeric_unconstrained: text
    incremental: { column: updated_at }
"#,
        )
        .expect("valid");
        assert_eq!(c.parallelism, 4);
        assert_eq!(c.tables[0].schema, "public");
        assert_eq!(c.tables[0].filter.as_deref(), Some("country = 'BR'"));
        assert_eq!(c.chunks_of(&c.tables[0]), 8);
        assert_eq!(c.chunks_of(&c.tables[1]), 4);
        assert_eq!(
            c.tables[1].numeric_unconstrained,
            UnconstrainedNumeric::Text
        );
        assert_eq!(c.part_rows, 500_000);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let err = PgSourceConfig::from_yaml(
            r#"
connection: { url: "postgres://app:secret@db/crm", host: db }
parallelism: 0
tables:
  - name: a
    incremental: { column: updated_at }
  - name: a
    where: "x = 1; DROP TABLE a"
"#,
        )
        .expect_err("invalid");
        let ConnectorError::PgConfig { problems } = &err else {
            panic!("{err}");
        };
        let text = problems.join("\n");
        for needle in [
            "not both",
            "parallelism",
            "state_file",
            "listed twice",
            "tables[1].where",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
    }

    #[test]
    fn the_documented_example_config_is_valid() {
        let doc = include_str!("../../../../docs/sources.md");
        let start = doc
            .find("```yaml\nconnection:")
            .expect("example in docs/sources.md")
            + 8;
        let end = start + doc[start..].find("```").expect("end of the example");
        let c = PgSourceConfig::from_yaml(&doc[start..end]).expect("documented config is valid");
        assert_eq!(c.tables.len(), 2);
        assert!(c.tables[1].incremental.is_some());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = PgSourceConfig::from_yaml(
            "connection: { url: 'postgres://a@b/c' }\ntables: [{ name: t, colums: [a] }]",
        )
        .expect_err("typo");
        assert!(err.to_string().contains("colums"), "{err}");
    }
}
