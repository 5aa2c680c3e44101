//! The page fetcher of the HTTP poller: request a page (with retries, rate-limit waits and
//! credentials) and turn its records into Kafka messages that carry the request that produced
//! them, together with the [`PollerState`] that holds once those messages are in Kafka.
//!
//! The fetcher keeps no position of its own: [`HttpPoller::next_page`] takes the committed state
//! and returns the next one, so the runtime's driver owns the loop, the produce and the commit
//! (the state is saved after the page's records are acknowledged). A crash can therefore repeat
//! at most the pages whose records were acknowledged but whose state was not saved; records
//! are keyed by the item's id so a compacted topic or a downstream `dedup` step absorbs that
//! repeat.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::auth::{self, ConfigValue, Credentials};
use super::config::{CursorPick, PollerConfig};
use super::rate_limit::{self, Verdict};
use crate::error::{ConnectorError, Result};
use crate::json_path;
use crate::kafka::OutRecord;

/// What is saved between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollerState {
    /// Cursor to send on the next cycle.
    pub cursor: Option<String>,
    /// A cycle whose pagination was cut off: it resumes here.
    pub in_progress: Option<CycleProgress>,
    /// Cycles completed.
    pub cycles: u64,
}

/// What this poller fetched since it was created, counted as it happens (so a cycle cut off by
/// a shutdown counts too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PollerTotals {
    /// Pages fetched.
    pub pages: u64,
    /// Records fetched (handed out for Kafka).
    pub records: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
}

/// Where an unfinished cycle resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleProgress {
    /// The cursor this cycle sends on every page.
    pub cursor_sent: Option<String>,
    /// Token of the next page.
    pub next_token: String,
    /// Number of the next page (1-based).
    pub next_page: u32,
    /// The cursor this cycle will leave, as far as seen.
    pub new_cursor: Option<String>,
}

/// What one cycle did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CycleReport {
    /// Pages fetched.
    pub pages: u32,
    /// Records fetched for Kafka.
    pub records: u64,
    /// HTTP requests sent, retries included.
    pub requests: u32,
    /// Retries after 5xx / network errors.
    pub retries: u32,
    /// Waits after a 429.
    pub rate_limited: u32,
    /// Proactive slowdowns from the remaining-requests header.
    pub slowdowns: u32,
    /// The cursor after the cycle.
    pub cursor: Option<String>,
}

/// One page fetched: the Kafka records it gives and the state once they are in Kafka.
#[derive(Debug, Clone)]
pub struct Page {
    /// The records, in the API's order.
    pub records: Vec<OutRecord>,
    /// The state to save once `records` are acknowledged.
    pub state: PollerState,
    /// This page ended its cycle (the next call starts a new one from the new cursor).
    pub cycle_done: bool,
}

/// An HTTP poller: the API's pages, one at a time, from a given state.
pub struct HttpPoller {
    config: PollerConfig,
    http: reqwest::Client,
    credentials: Credentials,
    query: Vec<(String, ConfigValue)>,
    headers: Vec<(String, ConfigValue)>,
    rng: StdRng,
    pace: Option<Duration>,
    totals: PollerTotals,
}

impl std::fmt::Debug for HttpPoller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPoller")
            .field("name", &self.config.name)
            .field("totals", &self.totals)
            .finish()
    }
}

/// A request's parameters: name, value sent, value shown.
type Params = Vec<(String, String, String)>;

impl HttpPoller {
    /// Resolves secrets and builds the HTTP client (no request is sent yet).
    pub fn new(config: PollerConfig) -> Result<Self> {
        // Start-up problems are the config file's (not the state file's): each names the
        // field's YAML path and, for a secret, the variable.
        let file = if config.file.is_empty() {
            format!("(poller `{}`)", config.name)
        } else {
            config.file.clone()
        };
        let mut problems = Vec::new();
        let credentials = Credentials::from_config(&config.auth).unwrap_or_else(|e| {
            problems.extend(e);
            Credentials::None
        });
        let mut resolve = |section: &str, map: &std::collections::BTreeMap<String, String>| {
            map.iter()
                .filter_map(|(k, v)| match ConfigValue::resolve(v) {
                    Ok(value) => Some((k.clone(), value)),
                    Err(e) => {
                        problems.push(format!("request.{section}.{k}: {e}"));
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let query = resolve("query", &config.request.query);
        let headers = resolve("headers", &config.request.headers);
        if !problems.is_empty() {
            return Err(ConnectorError::ApiConfig {
                what: "HTTP poller",
                file,
                problems,
            });
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout())
            .user_agent(concat!("strata/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::Internal(format!("HTTP client: {e}")))?;
        Ok(HttpPoller {
            config,
            http,
            credentials,
            query,
            headers,
            rng: StdRng::from_os_rng(),
            pace: None,
            totals: PollerTotals::default(),
        })
    }

    /// The config.
    pub fn config(&self) -> &PollerConfig {
        &self.config
    }

    /// Pages, records and requests since this poller was created.
    pub fn totals(&self) -> PollerTotals {
        self.totals
    }

    /// Fetches the page `state` points at: the unfinished cycle's next page, or the first page
    /// of a new cycle from the saved cursor. `report` counts the cycle's requests, retries and
    /// waits as they happen. Nothing is saved here: the caller saves [`Page::state`] once the
    /// records are in Kafka.
    pub async fn next_page(
        &mut self,
        state: &PollerState,
        report: &mut CycleReport,
    ) -> Result<Page> {
        let (cursor_sent, next_token, page, mut new_cursor) = match state.in_progress.clone() {
            Some(p) => (p.cursor_sent, Some(p.next_token), p.next_page, p.new_cursor),
            None => (
                state
                    .cursor
                    .clone()
                    .or_else(|| self.config.cursor.as_ref()?.initial.clone()),
                None,
                1,
                None,
            ),
        };
        let max_pages = self
            .config
            .pagination
            .as_ref()
            .and_then(|p| p.max_pages)
            .unwrap_or(1000);
        let params = self.params(cursor_sent.as_deref(), next_token.as_deref());
        let (status, doc, requested_at) = self.fetch(&params, page, report).await?;
        let records = self.records_of(&doc, &params, page, status, requested_at);
        let fetched = records.len() as u64;
        report.records += fetched;
        report.pages += 1;
        self.totals.records += fetched;
        self.totals.pages += 1;
        if let Some(c) = &self.config.cursor
            && let Some(seen) = json_path::lookup_scalar(&doc, &c.from)
            && (c.pick == CursorPick::Last || new_cursor.is_none())
        {
            new_cursor = Some(seen);
        }
        let token = self
            .config
            .pagination
            .as_ref()
            .and_then(|p| json_path::lookup_scalar(&doc, &p.next_field))
            .filter(|t| !t.is_empty());
        let mut next = state.clone();
        let cycle_done = match token {
            Some(t) if page < max_pages => {
                next.in_progress = Some(CycleProgress {
                    cursor_sent,
                    next_token: t,
                    next_page: page + 1,
                    new_cursor,
                });
                false
            }
            other => {
                if other.is_some() {
                    tracing::warn!(
                        source = %self.config.name,
                        max_pages,
                        "stopped at pagination.max_pages; the rest is picked up through the cursor"
                    );
                }
                next.cursor = new_cursor.or(cursor_sent);
                next.in_progress = None;
                next.cycles = next.cycles.saturating_add(1);
                report.cursor = next.cursor.clone();
                true
            }
        };
        Ok(Page {
            records,
            state: next,
            cycle_done,
        })
    }

    fn params(&self, cursor: Option<&str>, next_token: Option<&str>) -> Params {
        let mut params: Params = self
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string(), v.shown().to_string()))
            .collect();
        let mut set = |name: &str, value: &str| {
            params.retain(|(k, _, _)| k != name);
            params.push((name.to_string(), value.to_string(), value.to_string()));
        };
        if let (Some(c), Some(cfg)) = (cursor, &self.config.cursor) {
            set(&cfg.param, c);
        }
        if let (Some(t), Some(cfg)) = (next_token, &self.config.pagination) {
            set(&cfg.param, t);
        }
        params
    }

    fn url(&self) -> &str {
        self.config.request.url.as_deref().unwrap_or_default()
    }

    fn http_error(
        &self,
        status: Option<u16>,
        message: String,
        hint: impl Into<String>,
    ) -> ConnectorError {
        ConnectorError::Http {
            source_name: self.config.name.clone(),
            request: format!("{} {}", self.config.method(), self.url()),
            status,
            message,
            hint: hint.into(),
        }
    }

    fn request(&self, params: &Params, auth: Option<&str>) -> reqwest::RequestBuilder {
        let url = self.url();
        let mut req = if self.config.method() == "POST" {
            let mut body = match &self.config.request.body {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            for (k, v, _) in params {
                body.insert(k.clone(), Value::String(v.clone()));
            }
            self.http.post(url).json(&body)
        } else {
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v, _)| (k.as_str(), v.as_str()))
                .collect();
            self.http.get(url).query(&pairs)
        };
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.expose());
        }
        if let Some(a) = auth {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        req
    }

    /// One page, with every retry and wait; returns (status, JSON body, request time ms).
    async fn fetch(
        &mut self,
        params: &Params,
        page: u32,
        report: &mut CycleReport,
    ) -> Result<(u16, Value, i64)> {
        if let Some(wait) = self.pace.take() {
            report.slowdowns += 1;
            tracing::info!(source = %self.config.name, wait_ms = wait.as_millis() as u64,
                "few requests left in the rate-limit window: slowing down");
            tokio::time::sleep(wait).await;
        }
        let mut failures = 0u32;
        let mut rate_waits = 0u32;
        let mut refreshed = false;
        loop {
            let auth = match self.credentials.header(&self.http).await {
                Ok(a) => a,
                Err(e) if e.retryable => {
                    self.transient(&mut failures, report, None, &e.message)
                        .await?;
                    continue;
                }
                Err(e) => {
                    return Err(self.http_error(None, e.message, "check the OAuth2 settings"));
                }
            };
            let requested_at = epoch_ms();
            report.requests += 1;
            self.totals.requests += 1;
            let sent = self
                .request(params, auth.as_ref().map(|a| a.expose()))
                .send()
                .await;
            let (status, headers, body) = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(b) => (status, headers, b),
                        Err(e) => {
                            self.transient(&mut failures, report, None, &e.to_string())
                                .await?;
                            continue;
                        }
                    }
                }
                Err(e) => {
                    // reqwest's error text names the URL with its query; ours carries no
                    // secrets in the query unless configured via ${env:…}, which is redacted
                    // from what we print: print the kind, not the URL.
                    let what = if e.is_timeout() {
                        "timed out".to_string()
                    } else if e.is_connect() {
                        "connection failed".to_string()
                    } else {
                        "transport error".to_string()
                    };
                    self.transient(&mut failures, report, None, &what).await?;
                    continue;
                }
            };
            match rate_limit::classify(status, &headers, SystemTime::now(), &self.config.rate_limit)
            {
                Verdict::Proceed { pace } => {
                    self.pace = pace;
                    let doc: Value = serde_json::from_slice(&body).map_err(|e| {
                        self.http_error(
                            Some(status),
                            format!("page {page}: the response is not JSON: {e}"),
                            "check request.url: it must answer JSON",
                        )
                    })?;
                    return Ok((status, doc, requested_at));
                }
                Verdict::RateLimited { wait } => {
                    rate_waits += 1;
                    report.rate_limited += 1;
                    if rate_waits > 20 {
                        return Err(self.http_error(
                            Some(429),
                            "still rate limited after 20 waits".into(),
                            "another client shares this token's quota; lower the schedule",
                        ));
                    }
                    tracing::warn!(source = %self.config.name, wait_ms = wait.as_millis() as u64,
                        "rate limited (429): waiting for the window to reset");
                    tokio::time::sleep(wait).await;
                }
                Verdict::Transient => {
                    let text = snippet(&body);
                    self.transient(&mut failures, report, Some(status), &text)
                        .await?;
                }
                Verdict::Unauthorized if self.credentials.can_refresh() && !refreshed => {
                    refreshed = true;
                    self.credentials.invalidate();
                }
                Verdict::Unauthorized => {
                    return Err(self.http_error(
                        Some(401),
                        snippet(&body),
                        auth::refused_hint(&self.config.auth),
                    ));
                }
                Verdict::Fatal { hint } => {
                    return Err(self.http_error(Some(status), snippet(&body), hint));
                }
            }
        }
    }

    async fn transient(
        &mut self,
        failures: &mut u32,
        report: &mut CycleReport,
        status: Option<u16>,
        what: &str,
    ) -> Result<()> {
        *failures += 1;
        if *failures >= self.config.retry.max_attempts {
            return Err(self.http_error(
                status,
                format!("{what} (gave up after {failures} attempts)"),
                "the API or the network kept failing: the cursor is unchanged, run again later",
            ));
        }
        report.retries += 1;
        let wait = rate_limit::backoff(*failures, &self.config.retry, &mut self.rng);
        tracing::warn!(source = %self.config.name, status, attempt = *failures,
            wait_ms = wait.as_millis() as u64, "transient failure: {what}; retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn records_of(
        &self,
        doc: &Value,
        params: &Params,
        page: u32,
        status: u16,
        requested_at: i64,
    ) -> Vec<OutRecord> {
        let items: Vec<&Value> = match self.config.records.as_deref() {
            None => vec![doc],
            Some(path) => match json_path::lookup(doc, path) {
                Some(Value::Array(a)) => a.iter().collect(),
                Some(Value::Null) | None => Vec::new(),
                Some(one) => vec![one],
            },
        };
        let shown: Map<String, Value> = params
            .iter()
            .map(|(k, _, s)| (k.clone(), Value::String(s.clone())))
            .collect();
        let request = json!({
            "source": self.config.name,
            "method": self.config.method(),
            // A literal `?api_key=` in the configured URL must not travel into every record.
            "url": crate::secret::redact_url(self.url()),
            "params": shown,
            "page": page,
            "status": status,
            "requested_at": strata_core::sample::iso_millis(requested_at),
        });
        let response: Map<String, Value> = self
            .config
            .response_fields
            .iter()
            .filter_map(|f| Some((f.clone(), json_path::lookup(doc, f)?.clone())))
            .collect();
        items
            .into_iter()
            .map(|item| {
                let key = self
                    .config
                    .kafka
                    .key
                    .as_deref()
                    .and_then(|k| json_path::lookup_scalar(item, k))
                    .map(String::into_bytes);
                let value = if response.is_empty() {
                    json!({ "item": item, "request": request })
                } else {
                    json!({ "item": item, "request": request, "response": response })
                };
                OutRecord {
                    topic: self.config.kafka.topic.clone(),
                    key,
                    value: Some(value.to_string().into_bytes()),
                    headers: vec![(
                        "strata.source".into(),
                        self.config.name.clone().into_bytes(),
                    )],
                }
            })
            .collect()
    }
}

fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The start of a response body, for error messages.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        s.push('…');
    }
    if s.is_empty() {
        "(empty body)".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_names_the_config_file_the_field_and_the_variable() {
        let config: PollerConfig = serde_yaml_ng::from_str(
            "name: x\npreset: x_recent_search\n\
             auth: {type: bearer, token_env: STRATA_SURELY_UNSET_TOKEN}\n\
             request: {headers: {X-Key: '${env:STRATA_SURELY_UNSET_KEY}'}}\n\
             kafka: {brokers: '127.0.0.1:1', topic: t}\nstate_file: state/x.json\n",
        )
        .expect("yaml");
        let config = config.resolved("conf/x_poller.yaml").expect("valid");
        // The secrets are resolved before Kafka is contacted: no broker is needed.
        let err = HttpPoller::new(config).expect_err("unset variables");
        assert!(
            matches!(&err, ConnectorError::ApiConfig { file, .. } if file == "conf/x_poller.yaml"),
            "{err:?}"
        );
        let text = err.to_string();
        for needle in [
            "`conf/x_poller.yaml`",
            "auth.token_env: environment variable STRATA_SURELY_UNSET_TOKEN is not set",
            "request.headers.X-Key: environment variable STRATA_SURELY_UNSET_KEY is not set",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in {text}");
        }
        assert!(!text.contains("state/x.json"), "{text}");
    }
}
