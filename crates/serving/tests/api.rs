//! The analytics API over a real lake: IoT events through the shipped `pipelines/iot.yaml`,
//! committed to silver with the real writer, served over HTTP and asked with a real client.
//! Covers refusals (DDL, DML, COPY, several statements, table functions), typed metric
//! parameters (injection attempts are values or 400s), time and memory limits, a client that
//! goes away, formats, auth (401 / 403 / 429 with Retry-After), the catalog, and the cache: a hit
//! runs no query, a commit makes a new key, and a private Redis that stops and restarts.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::AsArray;
use serde_json::Value;
use strata_core::lineage::{file_batch, file_input_schema};
use strata_core::sample::{IotFaults, iot_events};
use strata_core::{BuildContext, Pipeline, PipelineSpec};
use strata_layers::silver::{CatalogConfig, SilverCatalog, append};
use strata_serving::{AnalyticsApi, ServeConfig};

const KEY: &str = "test-key-0123456789-all";
const IOT_ONLY: &str = "test-key-0123456789-iot";
const SLOW: &str = "test-key-0123456789-slow";

/// `n` IoT events (seed `seed`) through `pipelines/iot.yaml`.
fn iot_rows(n: usize, seed: u64) -> (arrow::datatypes::SchemaRef, Vec<arrow::array::RecordBatch>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot.yaml"
    ))
    .expect("iot.yaml");
    let spec = PipelineSpec::from_yaml(&text).expect("spec");
    let mut p =
        Pipeline::build(&spec, file_input_schema(), &BuildContext::default()).expect("build");
    let lines = iot_events(n, seed, IotFaults::default(), 1_763_646_312_000);
    let out = p
        .process(&file_batch(&lines, "iot", "bronze/x", 1, 0).expect("batch"))
        .expect("process");
    (p.output_schema(), out.rows)
}

async fn commit(lake: &std::path::Path, n: usize, seed: u64) -> usize {
    let config = CatalogConfig::for_lake(&lake.display().to_string(), None).expect("config");
    let catalog = SilverCatalog::open(&config).await.expect("catalog");
    let (schema, rows) = iot_rows(n, seed);
    let table = catalog
        .ensure_table("iot_events", &schema, Some("ts"))
        .await
        .expect("table");
    append(
        &catalog,
        &table,
        &rows,
        &[format!("bronze/iot-{seed}")],
        &[],
    )
    .await
    .expect("append");
    rows.iter().map(|b| b.num_rows()).sum()
}

fn config(lake: &std::path::Path, extra: &str) -> ServeConfig {
    config_with_memory(lake, extra, 16)
}

fn config_with_memory(lake: &std::path::Path, extra: &str, memory_mb: u64) -> ServeConfig {
    let yaml = format!(
        r#"
lake: {lake}
pipelines: {pipelines}
query: {{max_rows: 1000, timeout_ms: 1500, memory_mb: {memory_mb}, max_concurrent: 4}}
auth:
  keys:
    - {{name: all, key: {KEY}, requests_per_minute: 100000}}
    - {{name: iot, key: {IOT_ONLY}, datasets: [silver.iot_events]}}
    - {{name: slow, key: {SLOW}, requests_per_minute: 2}}
metrics:
  readings:
    table: silver.iot_events
    time: ts
    measures:
      readings: {{agg: count}}
      devices: {{agg: count_distinct, column: device_id}}
      avg_temperature: {{agg: avg, column: temperature}}
      max_temperature: {{agg: max, column: temperature}}
    dimensions:
      site: location_site
      device: device_id
      temperature: temperature
    filters:
      warm: "t.temperature > 25"
{extra}
"#,
        lake = lake.display(),
        pipelines = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines"),
    );
    ServeConfig::from_yaml(&yaml).expect("config")
}

struct Server {
    addr: SocketAddr,
    api: Arc<AnalyticsApi>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(config: ServeConfig) -> Server {
    let api = AnalyticsApi::open(config).await.expect("open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(strata_serving::serve(api.clone(), listener, async {
        let _ = rx.await;
    }));
    Server {
        addr,
        api,
        stop: Some(tx),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn query(&self, key: &str, sql: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = client()
            .post(self.url("/query"))
            .bearer_auth(key)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.json().await.expect("json body"))
    }

    async fn metric(
        &self,
        key: &str,
        path_and_query: &str,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = client()
            .get(self.url(path_and_query))
            .header("x-api-key", key)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, headers, r.json().await.expect("json body"))
    }

    async fn prometheus(&self, name: &str) -> f64 {
        let text = client()
            .get(self.url("/metrics"))
            .bearer_auth(KEY)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

fn count_of(body: &Value) -> i64 {
    body["rows"][0]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(Value::as_i64)
        .unwrap_or(-1)
}

fn cache_header(h: &reqwest::header::HeaderMap) -> String {
    h.get("x-strata-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_that_are_not_one_query_are_refused_by_kind() {
    let lake = tempfile::tempdir().expect("tmp");
    commit(lake.path(), 500, 1).await;
    let s = start(config(lake.path(), "")).await;
    for (sql, kind) in [
        ("CREATE TABLE x AS SELECT 1", "CREATE TABLE"),
        ("DROP TABLE iot_events", "DROP"),
        ("INSERT INTO iot_events SELECT * FROM iot_events", "INSERT"),
        ("DELETE FROM iot_events", "DELETE"),
        ("COPY (SELECT * FROM iot_events) TO '/tmp/leak.csv'", "COPY"),
        ("SET datafusion.execution.batch_size = 1", "SET"),
        (
            "CREATE EXTERNAL TABLE p STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE EXTERNAL TABLE",
        ),
        ("SELECT 1; DROP TABLE iot_events", "multiple statements"),
        (
            "SELECT * FROM read_parquet('/etc/passwd')",
            "table function read_parquet",
        ),
        (
            "SELECT * FROM generate_series(1, 10000000000)",
            "table function generate_series",
        ),
    ] {
        let (status, _, body) = s.query(KEY, sql).await;
        assert_eq!(status, 400, "{sql}: {body}");
        assert_eq!(body["error"], "refused", "{sql}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(kind),
            "{sql}: `{message}` does not name {kind}"
        );
    }
    // The lake is untouched and queries still answer.
    let (status, _, body) = s.query(KEY, "SELECT count(*) AS n FROM iot_events").await;
    assert_eq!(status, 200, "{body}");
    assert!(count_of(&body) > 400);
    let (status, _, body) = s.query(KEY, "SELECT * FROM silver.nope").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let (status, _, body) = s.query(KEY, "SELECT * FROM pg_catalog.pg_tables").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_parameters_are_typed_values_never_sql() {
    let lake = tempfile::tempdir().expect("tmp");
    commit(lake.path(), 2000, 2).await;
    let s = start(config(lake.path(), "")).await;
    let (status, _, body) = s.metric(KEY, "/metrics/readings?by=site").await;
    assert_eq!(status, 200, "{body}");
    let total: i64 = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["readings"].as_i64().unwrap_or(0))
        .sum();
    let (_, _, truth) = s.query(KEY, "SELECT count(*) FROM iot_events").await;
    assert_eq!(total, count_of(&truth));
    assert!(
        body["sql"].as_str().expect("sql").contains("GROUP BY"),
        "{body}"
    );

    // Each injection attempt is a value (matching nothing) or a 400 naming the parameter.
    for attack in [
        "where=site:x'%20OR%20'1'='1",
        "where=site:x%22;%20DROP%20TABLE%20iot_events;--",
        "where=device:dev-1')%20UNION%20SELECT%20*%20FROM%20iot_events--",
    ] {
        let (status, _, body) = s.metric(KEY, &format!("/metrics/readings?{attack}")).await;
        assert_eq!(status, 200, "{attack}: {body}");
        assert_eq!(body["rows"][0]["readings"], 0, "{attack}: {body}");
        assert!(!body["sql"].as_str().unwrap_or_default().contains("OR '1'"));
    }
    for (attack, parameter) in [
        ("by=site;DROP%20TABLE%20x", "by"),
        ("by=(SELECT%201)", "by"),
        ("measures=readings,sum(temperature)", "measures"),
        ("filter=1=1", "filter"),
        ("where=temperature:1%20OR%201=1", "where"),
        ("from=yesterday'--", "from"),
        ("limit=1;", "limit"),
        ("order=readings", "order"),
    ] {
        let (status, _, body) = s.metric(KEY, &format!("/metrics/readings?{attack}")).await;
        assert_eq!(status, 400, "{attack}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(parameter), "{attack}: {message}");
    }
    // Typed values work: a float dimension, a time range, a named filter, grains.
    let (status, _, body) = s
        .metric(
            KEY,
            "/metrics/readings?by=hour&from=2025-11-20&to=2025-11-21T12:00:00Z&filter=warm",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = s
        .metric(KEY, "/metrics/readings?where=temperature:21.5")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = s.metric(KEY, "/metrics/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_queries_time_out_and_departed_clients_cancel_theirs() {
    let lake = tempfile::tempdir().expect("tmp");
    commit(lake.path(), 3000, 3).await;
    let s = start(config_with_memory(lake.path(), "", 1024)).await;
    // 3,000³ row triples streamed through two hash joins on one key: hours of work in
    // little memory.
    let endless = "SELECT count(*) FROM (SELECT seq % 1 AS k FROM iot_events) a \
        JOIN (SELECT seq % 1 AS k FROM iot_events) b ON a.k = b.k \
        JOIN (SELECT seq % 1 AS k FROM iot_events) c ON b.k = c.k";
    let started = Instant::now();
    let (status, _, body) = s.query(KEY, endless).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (408, Some("timeout")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        s.prometheus("strata_api_queries_timed_out_total").await,
        1.0
    );
    assert_eq!(s.prometheus("strata_api_queries_running").await, 0.0);

    // A client that gives up after 200 ms: the server drops its query.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("client");
    let gone = quick
        .post(s.url("/query"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({ "sql": endless }))
        .send()
        .await;
    assert!(gone.is_err());
    let deadline = Instant::now() + Duration::from_secs(1);
    while s
        .api
        .queries()
        .cancelled
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(Instant::now() < deadline, "the query outlived its client");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(s.prometheus("strata_api_queries_running").await, 0.0);
    assert_eq!(
        s.prometheus("strata_api_queries_timed_out_total").await,
        1.0
    );

    // Memory: a join that must hold every row pair in a 16 MB pool.
    let s = start(config(lake.path(), "")).await;
    let (status, _, body) = s
        .query(KEY, "SELECT array_agg(a.device_id || b.device_id) FROM iot_events a CROSS JOIN iot_events b")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("memory_limit")),
        "{body}"
    );
    // And the row limit: 1,000 of 3,000 rows, said so.
    let (status, headers, body) = s.query(KEY, "SELECT * FROM iot_events").await;
    assert_eq!(status, 200);
    assert_eq!(body["row_count"], 1000);
    assert_eq!(body["truncated"], true);
    assert_eq!(headers["x-strata-truncated"], "true");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rates_and_allow_lists() {
    let lake = tempfile::tempdir().expect("tmp");
    commit(lake.path(), 200, 4).await;
    let s = start(config(lake.path(), "")).await;
    let r = client().get(s.url("/datasets")).send().await.expect("send");
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    let r = client().get(s.url("/health")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let (status, _, _) = s.metric("not-a-key-0000000000", "/datasets").await;
    assert_eq!(status, 401);
    let (status, _, body) = s
        .query(IOT_ONLY, "SELECT count(*) FROM gold.anything")
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, _, _) = s
        .query(IOT_ONLY, "SELECT count(*) FROM silver.iot_events")
        .await;
    assert_eq!(status, 200);

    for _ in 0..2 {
        let (status, _, _) = s.metric(SLOW, "/datasets").await;
        assert_eq!(status, 200);
    }
    let r = client()
        .get(s.url("/datasets"))
        .bearer_auth(SLOW)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&wait), "{wait}");

    // The catalog: the table with its schema, partitioning, rows, owner and tags.
    let (status, _, body) = s.metric(KEY, "/datasets/silver.iot_events").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["owner"], "iot-data");
    assert!(
        body["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .any(|t| t == "sensors")
    );
    assert_eq!(body["partitioning"][0], "day(ts)");
    assert!(body["row_count"].as_u64().expect("rows") > 150);
    assert!(
        body["columns"]
            .as_array()
            .expect("cols")
            .iter()
            .any(|c| c["name"] == "temperature")
    );
    let (_, _, listing) = s.metric(IOT_ONLY, "/datasets").await;
    let names: Vec<&str> = listing["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, vec!["silver.iot_events"]);
    let (_, _, doc) = s.metric(KEY, "/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["paths"]["/metrics/{name}"]["get"]["parameters"][0]["schema"]["enum"][0],
        "readings"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_as_json_csv_or_arrow() {
    let lake = tempfile::tempdir().expect("tmp");
    commit(lake.path(), 300, 5).await;
    let s = start(config(lake.path(), "")).await;
    let sql = "SELECT device_id, temperature FROM iot_events ORDER BY device_id, seq LIMIT 7";
    let csv = client()
        .post(s.url("/query"))
        .bearer_auth(KEY)
        .header("accept", "text/csv")
        .header("content-type", "text/plain")
        .body(sql)
        .send()
        .await
        .expect("csv");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.expect("text");
    assert_eq!(text.lines().count(), 8, "{text}");
    assert!(text.starts_with("device_id,temperature"));
    let arrow = client()
        .post(s.url("/query"))
        .bearer_auth(KEY)
        .header("accept", "application/vnd.apache.arrow.stream")
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .expect("arrow")
        .bytes()
        .await
        .expect("bytes");
    let reader =
        arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(arrow.to_vec()), None)
            .expect("ipc");
    let batches: Vec<_> = reader.map(|b| b.expect("batch")).collect();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 7);
    let first = batches[0]
        .column(0)
        .as_string_view_opt()
        .map(|a| a.value(0).to_string())
        .or_else(|| {
            batches[0]
                .column(0)
                .as_string_opt::<i32>()
                .map(|a| a.value(0).to_string())
        })
        .expect("a string column");
    let (_, _, json) = s.query(KEY, sql).await;
    assert_eq!(json["rows"][0]["device_id"], first.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_runs_no_query_and_a_commit_makes_a_new_answer() {
    let lake = tempfile::tempdir().expect("tmp");
    let first = commit(lake.path(), 1000, 6).await;
    let s = start(config(lake.path(), "")).await;
    let sql = "SELECT count(*) AS n FROM iot_events";
    let (_, h, body) = s.query(KEY, sql).await;
    assert_eq!(
        (cache_header(&h).as_str(), count_of(&body)),
        ("miss", first as i64)
    );
    let ran = s.prometheus("strata_api_queries_completed_total").await;
    // The same query, spelled differently: the same normalised statement, a hit.
    let (_, h, body) = s.query(KEY, "select   count(*) as n from iot_events").await;
    assert_eq!(
        (cache_header(&h).as_str(), count_of(&body)),
        ("hit", first as i64)
    );
    assert_eq!(
        s.prometheus("strata_api_queries_completed_total").await,
        ran
    );

    let more = commit(lake.path(), 500, 7).await;
    let (_, h, body) = s.query(KEY, sql).await;
    assert_eq!(
        (cache_header(&h).as_str(), count_of(&body)),
        ("miss", (first + more) as i64)
    );
    let (_, h, _) = s.metric(KEY, "/metrics/readings?by=site").await;
    assert_eq!(cache_header(&h), "miss");
    let (_, h, _) = s.metric(KEY, "/metrics/readings?by=site").await;
    assert_eq!(cache_header(&h), "hit");
    let r = client()
        .post(s.url("/query"))
        .bearer_auth(KEY)
        .header("cache-control", "no-cache")
        .json(&serde_json::json!({ "sql": sql }))
        .send()
        .await
        .expect("send");
    assert_eq!(cache_header(r.headers()), "bypass");
}

struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            port,
            child: Some(child),
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cache_survives_redis_stopping_and_restarting() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut redis = Redis::start(port);
    let lake = tempfile::tempdir().expect("tmp");
    let rows = commit(lake.path(), 800, 8).await as i64;
    let extra = format!(
        "cache: {{redis: 'redis://127.0.0.1:{}', redis_timeout_ms: 200}}",
        redis.port
    );
    let s = start(config(lake.path(), &extra)).await;
    let sql = "SELECT count(*) AS n FROM iot_events";
    let (_, h, body) = s.query(KEY, sql).await;
    assert_eq!((cache_header(&h).as_str(), count_of(&body)), ("miss", rows));
    let (_, h, body) = s.query(KEY, sql).await;
    assert_eq!((cache_header(&h).as_str(), count_of(&body)), ("hit", rows));

    redis.stop();
    for _ in 0..3 {
        let (status, h, body) = s.query(KEY, sql).await;
        assert_eq!(status, 200, "{body}");
        assert!(cache_header(&h).starts_with("unavailable"), "{h:?}");
        assert_eq!(count_of(&body), rows);
    }
    assert!(s.prometheus("strata_api_cache_redis_errors_total").await >= 1.0);

    let _redis = Redis::start(port);
    // The server leaves Redis alone for a second after a failure, then reconnects.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, h, _) = s.query(KEY, sql).await;
    assert_eq!(cache_header(&h), "miss", "a restarted Redis is empty");
    let (_, h, body) = s.query(KEY, sql).await;
    assert_eq!((cache_header(&h).as_str(), count_of(&body)), ("hit", rows));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_render_from_the_metrics_and_run_on_a_schedule_into_the_lake() {
    let lake = tempfile::tempdir().expect("tmp");
    commit(lake.path(), 1500, 9).await;
    let report = lake.path().join("report.yaml");
    std::fs::write(
        &report,
        r#"
name: sites
title: Readings <by> site
sections:
  - title: Readings per site
    metric: readings
    by: [site]
    chart: {type: bar, x: site, y: readings}
  - title: Hourly temperature
    metric: readings
    measures: [avg_temperature]
    by: [hour, site]
    chart: {type: line, split: site}
"#,
    )
    .expect("report");
    let extra = format!(
        "reports: [{{file: '{}', every_seconds: 1}}]",
        report.display()
    );
    let s = start(config(lake.path(), &extra)).await;
    let spec = strata_serving::report::ReportSpec::from_file(&report).expect("spec");
    let rendered = strata_serving::report::render(&s.api, &spec, "2026-12-07T00:00:00Z")
        .await
        .expect("render");
    let (_, _, by_site) = s.metric(KEY, "/metrics/readings?by=site").await;
    let sites = by_site["rows"].as_array().expect("rows").len();
    assert_eq!(rendered.rows[0], sites);
    assert!(
        rendered.html.contains("Readings &lt;by&gt; site"),
        "titles are escaped"
    );
    assert_eq!(rendered.html.matches("<svg").count(), 2);
    assert_eq!(rendered.html.matches("<polyline").count(), sites);
    let csv = String::from_utf8(rendered.csv[0].1.clone()).expect("utf8");
    assert_eq!(csv.lines().count(), sites + 1, "{csv}");

    // The API's schedule writes the same report into the lake.
    let deadline = Instant::now() + Duration::from_secs(20);
    let written = loop {
        let found: Vec<_> = glob_reports(&lake.path().join("reports"));
        if found.iter().any(|p| p.ends_with("sites.html")) {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled report in the lake: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        written
            .iter()
            .any(|p| p.to_string_lossy().contains("date=20"))
    );
    assert_eq!(
        written
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .count()
            % 2,
        0
    );
}

fn glob_reports(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(glob_reports(&p));
        } else {
            out.push(p);
        }
    }
    out
}
