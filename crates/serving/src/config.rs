//! The serve config (`serve.yaml`): where the lake is, what the catalog is built from, query
//! bounds, the cache, API keys and the semantic layer's metrics. Relative paths are relative to
//! the config file. Every problem is reported at once, each with its YAML path.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::error::{Result, ServingError};
use crate::execute::QueryBounds;
use crate::semantic::MetricDef;

/// `serve.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Lake root: a folder, `file:///…` or `s3://bucket/prefix`.
    #[serde(default = "default_lake")]
    pub lake: String,
    /// Catalog database; default `<lake>/catalog/catalog.db` for a local lake.
    #[serde(default)]
    pub catalog: Option<String>,
    /// Pipeline specs (owners, tags, masks) for `/datasets`.
    #[serde(default)]
    pub pipelines: Option<PathBuf>,
    /// Gold models (descriptions, owners, column docs) for `/datasets`.
    #[serde(default)]
    pub models: Option<PathBuf>,
    /// OpenLineage NDJSON the jobs wrote (upstream / downstream, quality) for `/datasets`.
    #[serde(default)]
    pub lineage: Option<PathBuf>,
    /// Bounds of each query.
    #[serde(default)]
    pub query: QueryConfig,
    /// The response cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// API keys.
    #[serde(default)]
    pub auth: AuthConfig,
    /// The semantic layer: named metrics.
    #[serde(default)]
    pub metrics: IndexMap<String, MetricDef>,
    /// The dashboard page served at `/` (charts of the metrics above).
    #[serde(default)]
    pub dashboard: Option<crate::dashboard::DashboardConfig>,
    /// Reports run on a schedule, written to the lake under `reports/date=<day>/`.
    #[serde(default)]
    pub reports: Vec<crate::report::ScheduledReport>,
    /// Silver tables served live: their committed snapshot plus the rows `stream silver` will
    /// commit next (see [`crate::live`]).
    #[serde(default)]
    pub live: Vec<crate::live::LiveConfig>,
}

/// `query:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Rows one answer holds at most.
    pub max_rows: usize,
    /// Milliseconds before a query is cancelled.
    pub timeout_ms: u64,
    /// Memory pool of one query, in MB.
    pub memory_mb: u64,
    /// Queries running at once; more wait.
    pub max_concurrent: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            max_rows: 10_000,
            timeout_ms: 30_000,
            memory_mb: 512,
            max_concurrent: 8,
        }
    }
}

impl QueryConfig {
    /// The bounds of one query.
    pub fn bounds(&self) -> QueryBounds {
        QueryBounds {
            max_rows: self.max_rows,
            timeout: Duration::from_millis(self.timeout_ms),
            memory_mb: self.memory_mb,
        }
    }
}

/// `cache:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Turn the cache off.
    pub disabled: bool,
    /// `redis://[:password@]host:port[/db]`; `${env:NAME}` reads it from the environment.
    pub redis: Option<String>,
    /// Entries kept in process at most.
    pub max_entries: usize,
    /// Bytes kept in process at most, in MB.
    pub max_mb: usize,
    /// Seconds an entry lives at most (answers are also keyed by snapshot, so this only
    /// bounds memory, never staleness).
    pub ttl_seconds: u64,
    /// Milliseconds to wait for Redis before serving uncached.
    pub redis_timeout_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            disabled: false,
            redis: None,
            max_entries: 4096,
            max_mb: 64,
            ttl_seconds: 3600,
            redis_timeout_ms: 250,
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8090".into()
}

fn default_lake() -> String {
    "lake".into()
}

impl ServeConfig {
    /// Reads and checks `path`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ServingError::config(path.display().to_string(), format!("cannot read: {e}"))
        })?;
        let mut config =
            Self::from_yaml(&text).map_err(|e| prefix(e, &path.display().to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses and checks YAML text (paths stay as written).
    pub fn from_yaml(text: &str) -> Result<Self> {
        let config: ServeConfig = serde_yaml_ng::from_str(text)
            .map_err(|e| ServingError::config("serve config", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        for (name, metric) in &self.metrics {
            if let Err(e) = metric.validate(name) {
                problems.push(e.to_string());
            }
        }
        if let Some(d) = &self.dashboard {
            problems.extend(d.problems(&self.metrics));
        }
        if self.query.max_rows == 0 {
            problems.push("query.max_rows: must be at least 1".into());
        }
        if self.query.max_concurrent == 0 {
            problems.push("query.max_concurrent: must be at least 1".into());
        }
        if !self.auth.open && self.auth.keys.is_empty() {
            problems.push(
                "auth: no keys; declare `auth.keys`, or `auth.open: true` to serve without keys"
                    .into(),
            );
        }
        let mut live_tables = std::collections::BTreeSet::new();
        for (i, live) in self.live.iter().enumerate() {
            if !live_tables.insert(live.table_name()) {
                problems.push(format!(
                    "live[{i}].table: `{}` is followed twice",
                    live.table
                ));
            }
            if live.table.contains('.') && !live.table.starts_with("silver.") {
                problems.push(format!(
                    "live[{i}].table: `{}` is not a silver table (gold models are rebuilt, not streamed)",
                    live.table
                ));
            }
            if live.max_mb == 0 || live.max_seconds == 0 {
                problems.push(format!(
                    "live[{i}]: max_mb and max_seconds must be at least 1"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ServingError::config("serve config", problems.join("; ")))
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let local = |p: &str| !p.contains("://") || p.starts_with("file://");
        if local(&self.lake) {
            let raw = self.lake.strip_prefix("file://").unwrap_or(&self.lake);
            if Path::new(raw).is_relative() {
                self.lake = base.join(raw).display().to_string();
            }
        }
        for p in [&mut self.pipelines, &mut self.models, &mut self.lineage]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for live in &mut self.live {
            if live.pipeline.is_relative() {
                live.pipeline = base.join(&live.pipeline);
            }
        }
        for r in &mut self.reports {
            if r.file.is_relative() {
                r.file = base.join(&r.file);
            }
        }
    }
}

fn prefix(e: ServingError, file: &str) -> ServingError {
    match e {
        ServingError::Config {
            what,
            problem,
            hint,
        } => ServingError::Config {
            what: format!("{file}: {what}"),
            problem,
            hint,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = ServeConfig::from_yaml(
            r#"
query: {max_rows: 0}
metrics:
  a: {table: gold.x, measures: {s: {agg: sum}}}
  b: {table: gold.x, measures: {r: {ratio: [x, y]}}}
"#,
        )
        .unwrap_err()
        .to_string();
        for needle in [
            "metrics.a.measures.s",
            "metrics.b.measures.r",
            "max_rows",
            "auth",
        ] {
            assert!(e.contains(needle), "{needle} missing from: {e}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = ServeConfig::from_yaml("auth: {open: true}\nlimits: {}\n").unwrap_err();
        assert!(e.to_string().contains("limits"), "{e}");
    }
}
