//! The analytics API: an axum router over [`AnalyticsApi`], served by Strata's hardened accept
//! loop ([`strata_connectors::http_serve`]).
//!
//! | route | what |
//! |---|---|
//! | `GET /health` | liveness (open) |
//! | `GET /ready` | the catalog answers (open) |
//! | `GET /datasets`, `GET /datasets/{name}` | the catalog, as far as the key may read |
//! | `POST /query` | one read-only, bounded SQL query |
//! | `GET /metrics/{name}` | a semantic-layer metric |
//! | `GET /metrics` | Prometheus exposition of the API itself |
//! | `GET /openapi.json` | the OpenAPI 3.1 description |

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use datafusion::dataframe::DataFrame;
use datafusion::execution::context::SQLOptions;
use serde_json::json;
use strata_layers::gold::ModelGraph;
use strata_layers::silver::{CatalogConfig, SilverCatalog};
use strata_runtime::catalog::{CatalogInputs, DatasetEntry, build, parse_events};
use tokio::sync::Semaphore;

use crate::api_metrics::ApiMetrics;
use crate::cache::{CacheStatus, ResponseCache, key};
use crate::config::ServeConfig;
use crate::error::{Result, ServingError};
use crate::execute::{Answer, QueryCounters, QueryRuntime, run};
use crate::format::{AnswerFacts, Format, encode, pack, unpack};
use crate::redis::{RedisClient, RedisTarget};
use crate::semantic::{MetricRequest, bind};
use crate::tables::{LakeTables, PinnedTables, qualified};
use crate::{auth, readonly};

/// The API's state, shared by every request.
pub struct AnalyticsApi {
    config: ServeConfig,
    catalog: SilverCatalog,
    tables: LakeTables,
    scheduled: Vec<(crate::report::ReportSpec, Duration)>,
    keys: auth::Keys,
    cache: Option<ResponseCache>,
    slots: Semaphore,
    queries: Arc<QueryCounters>,
    runtime: QueryRuntime,
    metrics: ApiMetrics,
}

impl AnalyticsApi {
    /// Opens the lake's catalog and checks the config's keys and cache.
    pub async fn open(config: ServeConfig) -> Result<Arc<Self>> {
        let keys = auth::Keys::from_config(&config.auth)?;
        let catalog_config = CatalogConfig::for_lake(&config.lake, config.catalog.as_deref())
            .map_err(|e| ServingError::config("lake", e.to_string()))?;
        let catalog = SilverCatalog::open(&catalog_config)
            .await
            .map_err(ServingError::lake)?;
        let cache = if config.cache.disabled {
            None
        } else {
            let redis = match &config.cache.redis {
                Some(url) => {
                    let url = auth::expand_env("cache.redis", url)?;
                    Some(RedisClient::new(
                        RedisTarget::parse(&url)?,
                        8,
                        Duration::from_millis(config.cache.redis_timeout_ms),
                    ))
                }
                None => None,
            };
            Some(ResponseCache::new(
                config.cache.max_entries,
                config.cache.max_mb.saturating_mul(1 << 20),
                Duration::from_secs(config.cache.ttl_seconds),
                redis,
            ))
        };
        let mut views = Vec::with_capacity(config.live.len());
        if !config.live.is_empty() {
            let lake = strata_layers::lake::Lake::open(&config.lake)
                .map_err(|e| ServingError::config("lake", e.to_string()))?;
            let silver = catalog
                .in_namespace("silver")
                .await
                .map_err(ServingError::lake)?;
            for live in &config.live {
                views.push(crate::live::LiveView::spawn(
                    live.clone(),
                    silver.clone(),
                    lake.clone(),
                )?);
            }
        }
        let tables = LakeTables::open(&catalog)
            .await?
            .with_live(views)
            .with_access_log(strata_layers::lake::Lake::open(&config.lake).ok());
        let mut scheduled = Vec::new();
        for r in &config.reports {
            if r.every_seconds == 0 {
                return Err(ServingError::config(
                    format!("reports ({})", r.file.display()),
                    "every_seconds must be at least 1",
                ));
            }
            scheduled.push((
                crate::report::ReportSpec::from_file(&r.file)?,
                Duration::from_secs(r.every_seconds),
            ));
        }
        Ok(Arc::new(AnalyticsApi {
            scheduled,
            tables,
            slots: Semaphore::new(config.query.max_concurrent),
            config,
            catalog,
            keys,
            cache,
            queries: Arc::new(QueryCounters::default()),
            runtime: QueryRuntime::new(config_threads()).map_err(ServingError::lake)?,
            metrics: ApiMetrics::default(),
        }))
    }

    /// The config it serves.
    pub fn config(&self) -> &ServeConfig {
        &self.config
    }

    /// Query counters (running, cancelled, timed out).
    pub fn queries(&self) -> &Arc<QueryCounters> {
        &self.queries
    }

    /// The router.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/ready", get(ready))
            .route("/openapi.json", get(openapi))
            .route("/datasets", get(datasets))
            .route("/datasets/{name}", get(dataset))
            .route("/query", post(query))
            .route("/metrics", get(prometheus))
            .route("/metrics/{name}", get(metric))
            .route("/", get(page))
            .route("/dashboard.json", get(dashboard_config))
            .route("/assets/{file}", get(asset))
            .fallback(not_found)
            .with_state(self.clone())
    }

    fn caller(&self, headers: &HeaderMap) -> Result<auth::Caller> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
        self.keys.authenticate(presented.map(str::trim))
    }

    /// The catalog entries (tables, plus what lineage and specs say).
    pub async fn catalog_entries(&self) -> Result<Vec<DatasetEntry>> {
        let events = match &self.config.lineage {
            Some(file) if file.exists() => {
                let text = std::fs::read_to_string(file).map_err(ServingError::lake)?;
                parse_events(&text, &file.display().to_string()).map_err(ServingError::lake)?
            }
            _ => Vec::new(),
        };
        let pipelines = match &self.config.pipelines {
            Some(dir) => strata_runtime::catalog::load_pipelines(dir),
            None => Vec::new(),
        };
        let models = match &self.config.models {
            Some(dir) if dir.is_dir() => Some(ModelGraph::load(dir).map_err(ServingError::lake)?),
            _ => None,
        };
        let metrics = crate::semantic::metric_nodes(&self.config.metrics);
        build(&CatalogInputs {
            catalog: &self.catalog,
            pipelines: &pipelines,
            models: models.as_ref(),
            events: &events,
            metrics: &metrics,
        })
        .await
        .map_err(ServingError::lake)
    }

    /// Runs one read-only query for `caller`.
    pub async fn run_query(
        &self,
        caller: &auth::Caller,
        sql: &str,
        format: Format,
        use_cache: bool,
    ) -> Result<(Vec<u8>, AnswerFacts, CacheStatus)> {
        let checked = readonly::check(sql)?;
        let mut names = Vec::new();
        for reference in &checked.tables {
            let (layer, table) = qualified(reference)?;
            caller.check(&format!("{layer}.{table}"))?;
            names.push((layer, table));
        }
        let pinned = self.tables.pin(&names).await?;
        let cache_key = key(&[
            "query",
            &checked.normalised,
            format.name(),
            &pinned.snapshot_key(),
        ]);
        self.cached(&cache_key, use_cache, || async {
            let ctx = self.session(&pinned).await?;
            let state = ctx.state();
            let plan = state
                .statement_to_plan(checked.statement)
                .await
                .map_err(crate::execute::plan_error)?;
            SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false)
                .verify_plan(&plan)
                .map_err(|e| ServingError::Refused {
                    kind: "statement".into(),
                    reason: e.strip_backtrace(),
                })?;
            let frame = DataFrame::new(state, plan);
            let answer = self.bounded(frame, None).await?;
            let facts = facts(&answer, &pinned, None, Vec::new());
            Ok((encode(&answer, &facts, format)?, facts))
        })
        .await
    }

    /// Answers a semantic-layer metric for `caller`.
    pub async fn run_metric(
        &self,
        caller: &auth::Caller,
        name: &str,
        pairs: &[(String, String)],
        format: Format,
        use_cache: bool,
    ) -> Result<(Vec<u8>, AnswerFacts, CacheStatus)> {
        let (request, built, pinned) = self.prepare_metric(caller, name, pairs).await?;
        let cache_key = key(&[
            "metric",
            name,
            &request.canonical(),
            format.name(),
            &pinned.snapshot_key(),
        ]);
        self.cached(&cache_key, use_cache, || async {
            let (answer, facts) = self.metric_answer(&built, &pinned, request.limit).await?;
            Ok((encode(&answer, &facts, format)?, facts))
        })
        .await
    }

    /// Runs a semantic-layer metric for `caller` and returns its rows, uncached (reports).
    pub async fn metric_rows(
        &self,
        caller: &auth::Caller,
        name: &str,
        pairs: &[(String, String)],
    ) -> Result<(Answer, AnswerFacts)> {
        let (request, built, pinned) = self.prepare_metric(caller, name, pairs).await?;
        self.metric_answer(&built, &pinned, request.limit).await
    }

    /// A metric request checked (the metric exists, the caller may read its tables, the
    /// parameters parse), its SQL built, and its tables pinned.
    async fn prepare_metric(
        &self,
        caller: &auth::Caller,
        name: &str,
        pairs: &[(String, String)],
    ) -> Result<(MetricRequest, crate::semantic::MetricSql, PinnedTables)> {
        let Some(def) = self.config.metrics.get(name) else {
            return Err(ServingError::NotFound {
                what: "metric",
                name: name.to_string(),
            });
        };
        for (layer, table) in def.tables() {
            caller.check(&format!("{layer}.{table}"))?;
        }
        let request = MetricRequest::from_pairs(pairs)?;
        let built = def.to_sql(&request)?;
        let pinned = self.tables.pin(&built.tables).await?;
        Ok((request, built, pinned))
    }

    async fn metric_answer(
        &self,
        built: &crate::semantic::MetricSql,
        pinned: &PinnedTables,
        limit: Option<usize>,
    ) -> Result<(Answer, AnswerFacts)> {
        let ctx = self.session(pinned).await?;
        let frame = ctx
            .sql(&built.sql)
            .await
            .map_err(crate::execute::plan_error)?;
        let types = frame
            .logical_plan()
            .get_parameter_types()
            .map_err(crate::execute::plan_error)?;
        let values = bind(&built.params, &types.into_iter().collect())?;
        let frame = frame
            .with_param_values(values)
            .map_err(crate::execute::plan_error)?;
        let answer = self.bounded(frame, limit).await?;
        let params = built.params.iter().map(|(_, _, v)| v.clone()).collect();
        let facts = facts(&answer, pinned, Some(built.sql.clone()), params);
        Ok((answer, facts))
    }

    async fn session(&self, pinned: &PinnedTables) -> Result<datafusion::prelude::SessionContext> {
        let memory = usize::try_from(self.config.query.memory_mb.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX);
        pinned.session(memory, 8192).await
    }

    async fn bounded(&self, frame: DataFrame, limit: Option<usize>) -> Result<Answer> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| ServingError::Execution {
                message: "the server is shutting down".into(),
            })?;
        let mut bounds = self.config.query.bounds();
        if let Some(l) = limit {
            bounds.max_rows = bounds.max_rows.min(l);
        }
        run(frame, bounds, &self.queries, &self.runtime).await
    }

    async fn cached<F, Fut>(
        &self,
        cache_key: &str,
        use_cache: bool,
        compute: F,
    ) -> Result<(Vec<u8>, AnswerFacts, CacheStatus)>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<u8>, AnswerFacts)>>,
    {
        let Some(cache) = self.cache.as_ref().filter(|_| use_cache) else {
            let (body, facts) = compute().await?;
            return Ok((body, facts, CacheStatus::Bypass));
        };
        let (found, status) = cache.get(cache_key).await;
        if let Some((facts, body)) = found.as_deref().and_then(unpack) {
            return Ok((body.to_vec(), facts, CacheStatus::Hit));
        }
        let (body, facts) = compute().await?;
        if status == CacheStatus::Miss {
            cache.put(cache_key, pack(&facts, &body)).await;
        }
        Ok((body, facts, status))
    }
}

/// Query threads: one per core.
fn config_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn facts(
    answer: &Answer,
    pinned: &PinnedTables,
    sql: Option<String>,
    params: Vec<String>,
) -> AnswerFacts {
    AnswerFacts {
        row_count: answer.row_count(),
        truncated: answer.truncated,
        snapshots: pinned.snapshots(),
        live: pinned.live(),
        sql,
        params,
        elapsed_ms: u64::try_from(answer.elapsed.as_millis()).unwrap_or(u64::MAX),
    }
}

type Api = State<Arc<AnalyticsApi>>;

/// An error as a JSON response with its kind, and `Retry-After` for 429.
fn error_response(e: &ServingError) -> Response {
    let status = e.status();
    if status.is_server_error() {
        tracing::warn!(error = %e, "request failed");
    }
    let mut response = (
        status,
        axum::Json(json!({"error": e.kind(), "message": e.to_string()})),
    )
        .into_response();
    if let ServingError::RateLimited { retry_after_s, .. } = e
        && let Ok(v) = HeaderValue::from_str(&retry_after_s.to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"strata\""),
        );
    }
    response
}

fn answer_response(
    body: Vec<u8>,
    facts: &AnswerFacts,
    status: CacheStatus,
    format: Format,
) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert("x-strata-cache", HeaderValue::from_static(status.header()));
    h.insert(
        "x-strata-truncated",
        HeaderValue::from_static(if facts.truncated { "true" } else { "false" }),
    );
    if let Ok(v) = HeaderValue::from_str(&facts.row_count.to_string()) {
        h.insert("x-strata-row-count", v);
    }
    let snapshots = facts
        .snapshots
        .iter()
        .map(|(t, s)| format!("{t}={}", s.map_or("none".to_string(), |s| s.to_string())))
        .collect::<Vec<_>>()
        .join(",");
    if let Ok(v) = HeaderValue::from_str(&snapshots) {
        h.insert("x-strata-snapshots", v);
    }
    response
}

async fn observed<F>(api: &AnalyticsApi, route: &'static str, work: F) -> Response
where
    F: std::future::Future<Output = Result<Response>>,
{
    let started = Instant::now();
    let response = match work.await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    api.metrics
        .observe(route, response.status().as_u16(), started.elapsed());
    response
}

async fn health() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

async fn ready(State(api): Api) -> Response {
    match api.catalog.table_names().await {
        Ok(_) => axum::Json(json!({"status": "ready"})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "not ready", "message": e.to_string()})),
        )
            .into_response(),
    }
}

async fn openapi(State(api): Api, headers: HeaderMap) -> Response {
    observed(&api, "/openapi.json", async {
        api.caller(&headers)?;
        Ok(axum::Json(crate::openapi::document(&api.config)).into_response())
    })
    .await
}

async fn prometheus(State(api): Api, headers: HeaderMap) -> Response {
    observed(&api, "/metrics", async {
        api.caller(&headers)?;
        let cache = api.cache.as_ref().map(|c| (&c.counters, c.backend()));
        let text = api.metrics.render(&api.queries, cache);
        Ok((
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response())
    })
    .await
}

async fn datasets(State(api): Api, headers: HeaderMap) -> Response {
    observed(&api, "/datasets", async {
        let caller = api.caller(&headers)?;
        let entries: Vec<DatasetEntry> = api
            .catalog_entries()
            .await?
            .into_iter()
            .filter(|e| caller.may_read(&e.name))
            .collect();
        Ok(axum::Json(json!({"datasets": entries})).into_response())
    })
    .await
}

async fn dataset(State(api): Api, headers: HeaderMap, Path(name): Path<String>) -> Response {
    observed(&api, "/datasets/{name}", async {
        let caller = api.caller(&headers)?;
        let entries = api.catalog_entries().await?;
        let entry =
            strata_runtime::catalog::find(&entries, &name).map_err(|_| ServingError::NotFound {
                what: "dataset",
                name: name.clone(),
            })?;
        caller.check(&entry.name)?;
        Ok(axum::Json(entry).into_response())
    })
    .await
}

fn use_cache(headers: &HeaderMap) -> bool {
    !headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("no-cache") || v.contains("no-store"))
}

fn accept(headers: &HeaderMap) -> Format {
    Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
}

/// `POST /query`: `{"sql": "…"}` (JSON) or the SQL as the body (`text/plain`, `application/sql`).
async fn query(State(api): Api, headers: HeaderMap, body: Bytes) -> Response {
    observed(&api, "/query", async {
        let caller = api.caller(&headers)?;
        let json_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("application/json"));
        let sql = if json_body {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct QueryBody {
                sql: String,
            }
            serde_json::from_slice::<QueryBody>(&body)
                .map_err(|e| {
                    ServingError::bad("body", format!("expected {{\"sql\": \"…\"}}: {e}"))
                })?
                .sql
        } else {
            String::from_utf8(body.to_vec())
                .map_err(|_| ServingError::bad("body", "the SQL is not UTF-8"))?
        };
        let format = accept(&headers);
        let (body, facts, status) = api
            .run_query(&caller, &sql, format, use_cache(&headers))
            .await?;
        Ok(answer_response(body, &facts, status, format))
    })
    .await
}

async fn metric(
    State(api): Api,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    observed(&api, "/metrics/{name}", async {
        let caller = api.caller(&headers)?;
        let pairs: Vec<(String, String)> =
            serde_urlencoded_pairs(raw.as_deref().unwrap_or_default())?;
        let format = accept(&headers);
        let (body, facts, status) = api
            .run_metric(&caller, &name, &pairs, format, use_cache(&headers))
            .await?;
        Ok(answer_response(body, &facts, status, format))
    })
    .await
}

/// Static content of the dashboard: its own scripts only, no inline script, no other origin.
fn static_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn page(State(api): Api) -> Response {
    observed(&api, "/", async {
        if api.config.dashboard.is_none() {
            return Err(ServingError::NotFound {
                what: "dashboard",
                name: "(add `dashboard:` to the serve config)".into(),
            });
        }
        Ok(static_response(
            "text/html; charset=utf-8",
            crate::dashboard::INDEX_HTML,
        ))
    })
    .await
}

async fn asset(State(api): Api, Path(file): Path<String>) -> Response {
    observed(&api, "/assets/{file}", async move {
        use crate::dashboard::{DASHBOARD_JS, UPLOT_CSS, UPLOT_JS};
        match file.as_str() {
            "uPlot.iife.min.js" => Ok(static_response("text/javascript; charset=utf-8", UPLOT_JS)),
            "uPlot.min.css" => Ok(static_response("text/css; charset=utf-8", UPLOT_CSS)),
            "dashboard.js" => Ok(static_response(
                "text/javascript; charset=utf-8",
                DASHBOARD_JS,
            )),
            _ => Err(ServingError::NotFound {
                what: "asset",
                name: file.clone(),
            }),
        }
    })
    .await
}

async fn dashboard_config(State(api): Api, headers: HeaderMap) -> Response {
    observed(&api, "/dashboard.json", async {
        api.caller(&headers)?;
        match &api.config.dashboard {
            Some(d) => Ok(axum::Json(d).into_response()),
            None => Err(ServingError::NotFound {
                what: "dashboard",
                name: "(add `dashboard:` to the serve config)".into(),
            }),
        }
    })
    .await
}

async fn not_found(State(api): Api) -> Response {
    observed(&api, "other", async {
        Err::<Response, _>(ServingError::NotFound {
            what: "route",
            name: "(see /openapi.json)".into(),
        })
    })
    .await
}

/// Decodes `a=1&b=x%20y` into pairs, keeping repeats in order.
fn serde_urlencoded_pairs(raw: &str) -> Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for part in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((percent_decode(k)?, percent_decode(v)?));
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ServingError::bad("query string", "bad %-escape"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ServingError::bad("query string", "not UTF-8"))
}

/// Serves `api` on `listener` until `shutdown` resolves.
pub async fn serve(
    api: Arc<AnalyticsApi>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let router = api.router();
    let reports = (!api.scheduled.is_empty())
        .then(|| tokio::spawn(crate::report::schedule(api.clone(), api.scheduled.clone())));
    let served = strata_connectors::http_serve::serve(
        listener,
        router,
        strata_connectors::http_serve::ServeLimits::default(),
        Arc::new(strata_connectors::http_serve::ConnectionCounters::default()),
        shutdown,
    )
    .await;
    if let Some(r) = reports {
        r.abort();
    }
    served
}

/// Where `serve.yaml` paths point, for messages.
pub fn describe(config: &ServeConfig) -> String {
    let p = |p: &Option<PathBuf>| {
        p.as_ref()
            .map_or("-".to_string(), |p| p.display().to_string())
    };
    format!(
        "lake {}, pipelines {}, models {}, lineage {}, {} metrics",
        config.lake,
        p(&config.pipelines),
        p(&config.models),
        p(&config.lineage),
        config.metrics.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_with_repeats() {
        let p = serde_urlencoded_pairs("by=day%2Csite&where=site:s%201&where=x:a+b").unwrap();
        assert_eq!(p[0], ("by".into(), "day,site".into()));
        assert_eq!(p[1], ("where".into(), "site:s 1".into()));
        assert_eq!(p[2], ("where".into(), "x:a b".into()));
        assert!(serde_urlencoded_pairs("a=%zz").is_err());
    }
}
