//! The YAML config of an HTTP poller, its validation (every problem at once, with its YAML path)
//! and presets. A preset fills the fields a vendor's contract fixes (URL, pagination, cursor,
//! record path, rate-limit headers); the file only adds what is the user's (query, token, topic).
//!
//! ```yaml
//! name: x_iot_posts
//! preset: x_recent_search          # optional
//! request:
//!   method: GET
//!   url: https://api.x.com/2/tweets/search/recent
//!   query: { query: "#iot lang:pt", max_results: "100" }
//!   headers: { Accept: application/json }
//! auth: { type: bearer, token_env: X_BEARER_TOKEN }
//! pagination: { next_field: meta.next_token, param: next_token }
//! cursor: { from: meta.newest_id, param: since_id }
//! records: data
//! kafka: { brokers: 127.0.0.1:9092, topic: raw.x.posts, key: id }
//! schedule: { interval_secs: 60 }  # absent: one cycle, then exit (for Airflow)
//! state_file: state/x_iot_posts.json
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{ConnectorError, Result};
use crate::json_path;

/// A whole poller config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerConfig {
    /// Name of this source: in records, logs and the default state file.
    pub name: String,
    /// A vendor preset whose defaults fill the fields left out (`x_recent_search`).
    #[serde(default)]
    pub preset: Option<String>,
    /// What to request.
    #[serde(default)]
    pub request: RequestConfig,
    /// How to authenticate.
    #[serde(default)]
    pub auth: AuthConfig,
    /// How pages chain (absent: one page per cycle).
    #[serde(default)]
    pub pagination: Option<PaginationConfig>,
    /// The incremental cursor (absent: every cycle asks for everything).
    #[serde(default)]
    pub cursor: Option<CursorConfig>,
    /// Path of the record array in a response (`data`); empty: the response is one record.
    #[serde(default)]
    pub records: Option<String>,
    /// Response fields copied into every record of the page under `response` (X: `includes`,
    /// the expanded authors and media the posts refer to; `meta`), so nothing the API returned
    /// beside the records is lost.
    #[serde(default)]
    pub response_fields: Vec<String>,
    /// Rate-limit headers and slowdown.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Retries of 5xx and network errors.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Where records go.
    pub kafka: KafkaTarget,
    /// Poll every `interval_secs`; absent: one cycle, then exit.
    #[serde(default)]
    pub schedule: Option<Schedule>,
    /// Cursor state file (default `state/http/<name>.json`).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// The config file this was read from (set by [`PollerConfig::resolved`]), named by the
    /// errors found at start-up (a secret's variable missing).
    #[serde(skip)]
    pub file: String,
}

/// The request of every page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestConfig {
    /// `GET` (default) or `POST`.
    #[serde(default)]
    pub method: Option<String>,
    /// The endpoint.
    #[serde(default)]
    pub url: Option<String>,
    /// Query parameters; a value `${env:NAME}` is read from the environment and treated as a
    /// secret (redacted in records and logs).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Extra headers (values may use `${env:NAME}`; headers are never recorded).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body of a POST; pagination and cursor parameters are then set as its top-level
    /// fields instead of the query.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// Per-request timeout (default 30 s).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Authentication. Secrets are named by environment variable, never written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No authentication.
    #[default]
    None,
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// Variable holding the token.
        token_env: String,
    },
    /// OAuth2 client credentials: a token from `token_url`, refreshed before it expires and
    /// once on a 401.
    Oauth2ClientCredentials {
        /// Token endpoint.
        token_url: String,
        /// Variable holding the client id.
        client_id_env: String,
        /// Variable holding the client secret.
        client_secret_env: String,
        /// Requested scope.
        #[serde(default)]
        scope: Option<String>,
    },
}

/// Page chaining: a response field becomes a request parameter of the next page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaginationConfig {
    /// Response field holding the next page's token (`meta.next_token`); absent: last page.
    pub next_field: String,
    /// Request parameter that carries it (`next_token`).
    pub param: String,
    /// Safety stop: at most this many pages per cycle (default 1000).
    #[serde(default)]
    pub max_pages: Option<u32>,
}

/// The incremental cursor: a response field whose value is sent on the next cycle.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorConfig {
    /// Response field with the new cursor (`meta.newest_id`).
    pub from: String,
    /// Request parameter that carries it (`since_id`).
    pub param: String,
    /// Which page of a cycle gives the new cursor: `first` (newest-first APIs such as X) or
    /// `last` (oldest-first APIs).
    #[serde(default)]
    pub pick: CursorPick,
    /// Cursor of the very first cycle (absent: no parameter).
    #[serde(default)]
    pub initial: Option<String>,
}

/// Which page gives the new cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorPick {
    /// The first page that has the field.
    #[default]
    First,
    /// The last page that has the field.
    Last,
}

/// Rate-limit headers (X's names by default) and the proactive slowdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests left in the window.
    pub remaining_header: String,
    /// Window end, epoch seconds.
    pub reset_header: String,
    /// Below this many requests left, spread the rest evenly until the reset.
    pub slow_below: u64,
    /// Longest wait for a reset or `Retry-After` before giving up (default 900 s).
    pub max_wait_secs: u64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            remaining_header: "x-rate-limit-remaining".into(),
            reset_header: "x-rate-limit-reset".into(),
            slow_below: 5,
            max_wait_secs: 900,
        }
    }
}

/// Exponential backoff with jitter for 5xx and network errors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// First backoff.
    pub base_ms: u64,
    /// Backoff ceiling.
    pub max_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 8,
            base_ms: 500,
            max_ms: 60_000,
        }
    }
}

/// The Kafka target.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTarget {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic of the records.
    pub topic: String,
    /// Record field used as the message key (`id`), so one item's versions share a partition.
    #[serde(default)]
    pub key: Option<String>,
    /// Extra librdkafka properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Secret-looking property values show as `***`.
impl std::fmt::Debug for KafkaTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTarget")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("properties", &crate::kafka::redacted(&self.properties))
            .finish()
    }
}

/// Polling schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Seconds between the start of one cycle and the next.
    pub interval_secs: u64,
}

impl PollerConfig {
    /// Reads, applies the preset and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let problem = |p: String| ConnectorError::ApiConfig {
            what: "HTTP poller",
            file: path.display().to_string(),
            problems: vec![p],
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| problem(format!("cannot read: {e}")))?;
        let config: PollerConfig =
            serde_yaml_ng::from_str(&text).map_err(|e| problem(e.to_string()))?;
        config.resolved(&path.display().to_string())
    }

    /// The config with its preset applied, validated.
    pub fn resolved(mut self, file: &str) -> Result<Self> {
        self.file = file.to_string();
        let mut problems = Vec::new();
        match self.preset.as_deref() {
            None => {}
            Some("x_recent_search") => self.apply_x_recent_search(),
            Some(other) => problems.push(format!(
                "preset: unknown preset `{other}` (known: x_recent_search)"
            )),
        }
        self.validate(&mut problems);
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConnectorError::ApiConfig {
                what: "HTTP poller",
                file: file.to_string(),
                problems,
            })
        }
    }

    /// X API v2 recent search: newest first, `next_token` pages, `since_id` polling, `data[]`.
    fn apply_x_recent_search(&mut self) {
        let r = &mut self.request;
        r.url
            .get_or_insert_with(|| "https://api.x.com/2/tweets/search/recent".into());
        r.query
            .entry("max_results".into())
            .or_insert_with(|| "100".into());
        r.query
            .entry("tweet.fields".into())
            .or_insert_with(|| "created_at,author_id,lang,public_metrics".into());
        self.pagination.get_or_insert_with(|| PaginationConfig {
            next_field: "meta.next_token".into(),
            param: "next_token".into(),
            max_pages: None,
        });
        self.cursor.get_or_insert_with(|| CursorConfig {
            from: "meta.newest_id".into(),
            param: "since_id".into(),
            pick: CursorPick::First,
            initial: None,
        });
        self.records.get_or_insert_with(|| "data".into());
        if self.response_fields.is_empty() {
            self.response_fields = vec!["includes".into()];
        }
        if self.kafka.key.is_none() {
            self.kafka.key = Some("id".into());
        }
        if matches!(self.auth, AuthConfig::None) {
            self.auth = AuthConfig::Bearer {
                token_env: "X_BEARER_TOKEN".into(),
            };
        }
    }

    fn validate(&self, problems: &mut Vec<String>) {
        if self.name.trim().is_empty() {
            problems.push("name: must not be empty".into());
        }
        match self.request.url.as_deref() {
            None => problems.push("request.url: required (or a preset)".into()),
            Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                problems.push(format!("request.url: `{u}` is not an http(s) URL"))
            }
            Some(_) => {}
        }
        match self.method() {
            "GET" | "POST" => {}
            m => problems.push(format!("request.method: `{m}` (use GET or POST)")),
        }
        if self.request.body.is_some() && self.method() == "GET" {
            problems.push("request.body: a GET has no body (set method: POST)".into());
        }
        let mut paths = vec![];
        if let Some(p) = &self.pagination {
            paths.push(("pagination.next_field", p.next_field.as_str()));
        }
        if let Some(c) = &self.cursor {
            paths.push(("cursor.from", c.from.as_str()));
        }
        if let Some(r) = &self.records {
            paths.push(("records", r.as_str()));
        }
        if let Some(k) = &self.kafka.key {
            paths.push(("kafka.key", k.as_str()));
        }
        for f in &self.response_fields {
            paths.push(("response_fields", f.as_str()));
        }
        for (field, path) in paths {
            if !json_path::is_valid(path) {
                problems.push(format!("{field}: `{path}` has an empty segment"));
            }
        }
        if self.kafka.topic.is_empty() {
            problems.push("kafka.topic: must not be empty".into());
        }
        if self.schedule.as_ref().is_some_and(|s| s.interval_secs == 0) {
            problems.push("schedule.interval_secs: must be at least 1".into());
        }
        if self.retry.max_attempts == 0 {
            problems.push("retry.max_attempts: must be at least 1".into());
        }
    }

    /// The HTTP method, upper case.
    pub fn method(&self) -> &str {
        match self.request.method.as_deref() {
            Some(m) if m.eq_ignore_ascii_case("post") => "POST",
            Some(m) if m.eq_ignore_ascii_case("get") => "GET",
            Some(m) => m,
            None => "GET",
        }
    }

    /// The request timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.request.timeout_secs.unwrap_or(30))
    }

    /// The state file path.
    pub fn state_path(&self) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("state/http/{}.json", self.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<PollerConfig> {
        let c: PollerConfig = serde_yaml_ng::from_str(yaml).expect("yaml");
        c.resolved("test.yaml")
    }

    #[test]
    fn the_x_preset_fills_the_contract() {
        let c = parse(
            "name: x\npreset: x_recent_search\nrequest: {query: {query: '#iot'}}\n\
             kafka: {brokers: b, topic: t}\n",
        )
        .expect("valid");
        assert_eq!(
            c.pagination.as_ref().map(|p| p.param.as_str()),
            Some("next_token")
        );
        assert_eq!(
            c.cursor.as_ref().map(|p| p.from.as_str()),
            Some("meta.newest_id")
        );
        assert_eq!(c.records.as_deref(), Some("data"));
        assert_eq!(c.kafka.key.as_deref(), Some("id"));
        assert!(
            matches!(c.auth, AuthConfig::Bearer { ref token_env } if token_env == "X_BEARER_TOKEN")
        );
        assert_eq!(
            c.request.query.get("query").map(String::as_str),
            Some("#iot")
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_path() {
        let err = parse(
            "name: ''\npreset: nope\nrequest: {url: ftp://x, method: PUT}\n\
             records: 'a..b'\nkafka: {brokers: b, topic: ''}\nschedule: {interval_secs: 0}\n",
        )
        .expect_err("invalid");
        let text = err.to_string();
        for needle in [
            "name:",
            "preset: unknown preset `nope`",
            "request.url: `ftp://x`",
            "request.method: `PUT`",
            "records: `a..b`",
            "kafka.topic",
            "schedule.interval_secs",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in {text}");
        }
    }
}
