//! `strata ingest http` (X API v2 recent-search preset) against a local server that follows the
//! X contract — newest-first pages chained by `next_token`, polling by `since_id`, rate-limit
//! headers — and injects a 429 with a reset header, a burst of 503s and, for a wrong token, a
//! 401; records go to the real broker. Checks: every post arrives once and in order across
//! separate runs (the cursor survives the restart), each record carries its request, the token
//! appears in no log line and no record, a 401 stops with a clear error and leaves the cursor
//! alone.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use support::{broker, create_topics, read_all, unique};

/// The fake API's data and fault plan.
#[derive(Default)]
struct Api {
    /// Post ids, ascending.
    posts: Vec<u64>,
    token: String,
    requests: u32,
    /// Request numbers (1-based) answered 429 / 503.
    throttle_at: BTreeSet<u32>,
    fail_at: BTreeSet<u32>,
    answered_429: u32,
    answered_503: u32,
    answered_401: u32,
    /// Request numbers answered only after a pause (a slow page to kill the poller in).
    slow_at: BTreeSet<u32>,
}

type Shared = Arc<Mutex<Api>>;

fn epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn recent(
    State(api): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let (n, slow) = {
        let mut api = api.lock().expect("lock");
        api.requests += 1;
        (api.requests, api.slow_at.contains(&api.requests))
    };
    if slow {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mut api = api.lock().expect("lock");
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {}", api.token) {
        api.answered_401 += 1;
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(
                json!({"title": "Unauthorized", "type": "about:blank", "status": 401,
                "detail": "Unauthorized"}),
            ),
        )
            .into_response();
    }
    if api.throttle_at.contains(&n) {
        api.answered_429 += 1;
        let reset = (epoch() + 1).to_string();
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [
                ("x-rate-limit-limit", "450".to_string()),
                ("x-rate-limit-remaining", "0".to_string()),
                ("x-rate-limit-reset", reset),
            ],
            axum::Json(json!({"title": "Too Many Requests", "status": 429})),
        )
            .into_response();
    }
    if api.fail_at.contains(&n) {
        api.answered_503 += 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "over capacity").into_response();
    }
    let since: u64 = q.get("since_id").and_then(|s| s.parse().ok()).unwrap_or(0);
    let size: usize = q
        .get("max_results")
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    assert!((10..=100).contains(&size), "X accepts max_results 10–100");
    let offset: usize = q
        .get("next_token")
        .map(|t| t.trim_start_matches("tok").parse().expect("our token"))
        .unwrap_or(0);
    let matching: Vec<u64> = api
        .posts
        .iter()
        .rev()
        .copied()
        .filter(|id| *id > since)
        .collect();
    let page: Vec<u64> = matching.iter().skip(offset).take(size).copied().collect();
    let mut meta = json!({"result_count": page.len()});
    if let (Some(first), Some(last)) = (matching.first(), page.last()) {
        meta["newest_id"] = json!(first.to_string());
        meta["oldest_id"] = json!(last.to_string());
    }
    if offset + size < matching.len() {
        meta["next_token"] = json!(format!("tok{}", offset + size));
    }
    let data: Vec<Value> = page
        .iter()
        .map(|id| json!({"id": id.to_string(), "text": format!("post {id} #iot"), "author_id": "42"}))
        .collect();
    let mut body = json!({"meta": meta});
    if !data.is_empty() {
        body["data"] = json!(data);
        body["includes"] = json!({"users": [{"id": "42", "name": "Fábrica Norte",
            "username": "fabrica_norte"}]});
    }
    let reset = (epoch() + 900).to_string();
    (
        [
            ("x-rate-limit-limit", "450".to_string()),
            ("x-rate-limit-remaining", "400".to_string()),
            ("x-rate-limit-reset", reset),
        ],
        axum::Json(body),
    )
        .into_response()
}

async fn serve(api: Shared) -> String {
    let app = axum::Router::new()
        .route("/2/tweets/search/recent", axum::routing::get(recent))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/2/tweets/search/recent")
}

fn write_config(dir: &Path, url: &str, brokers: &str, topic: &str) -> std::path::PathBuf {
    let path = dir.join("x.yaml");
    std::fs::write(
        &path,
        format!(
            "name: x_iot\npreset: x_recent_search\nrequest:\n  url: {url}\n  query:\n    \
             query: '#iot lang:pt'\n    max_results: '10'\nretry: {{base_ms: 20, max_ms: 200}}\n\
             kafka: {{brokers: '{brokers}', topic: {topic}}}\nstate_file: {}\n",
            dir.join("state/x_iot.json").display()
        ),
    )
    .expect("config");
    path
}

/// The X post ids in `topic`, in topic order.
async fn post_ids(brokers: &str, topic: &str) -> Vec<u64> {
    read_all(brokers, topic, 1, Duration::from_secs(4))
        .await
        .iter()
        .map(|r| {
            r.json()["item"]["id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("num")
        })
        .collect()
}

/// Runs one cycle as its own process; returns (success, stdout, stderr).
async fn run_once(config: &Path, token: &str) -> (Option<i32>, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(["ingest", "http", "--once", "--config"])
        .arg(config)
        .env("X_BEARER_TOKEN", token)
        .env(
            "STRATA_LINEAGE",
            config
                .with_file_name("lineage.ndjson")
                .display()
                .to_string(),
        )
        .env(
            "STRATA_METRICS_FILE",
            config.with_file_name("metrics.prom").display().to_string(),
        )
        .env("STRATA_LOG", "debug");
    let out = tokio::task::spawn_blocking(move || c.output().expect("run"))
        .await
        .expect("join");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_every_post_once_in_order_across_restarts_and_faults() {
    let Some(brokers) = broker("polls_every_post_once_in_order_across_restarts_and_faults") else {
        return;
    };
    let topic = unique("x-posts");
    create_topics(&brokers, &[(&topic, 1)]).await;
    let token = format!("tok-SECRET-{}", unique("x"));
    let api: Shared = Arc::new(Mutex::new(Api {
        posts: (1_000..1_035).collect(),
        token: token.clone(),
        // Request 2 is rate limited; requests 4–6 are a 503 burst.
        throttle_at: [2].into(),
        fail_at: [4, 5, 6].into(),
        ..Api::default()
    }));
    let url = serve(api.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &url, &brokers, &topic);

    let mut logs = String::new();
    // Run 1: 35 posts in 4 pages, through the 429 and the 503 burst.
    let (code, out, err) = run_once(&config, &token).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    logs.push_str(&out);
    logs.push_str(&err);
    let first: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    assert_eq!(first["cycle"]["records"], 35, "{out}");
    assert_eq!(first["cycle"]["pages"], 4);
    assert_eq!(first["cycle"]["cursor"], "1034");
    // The cycle's OpenLineage run: the API's host and path in, the topic out, no token.
    let lineage = std::fs::read_to_string(dir.path().join("lineage.ndjson")).expect("lineage");
    assert!(
        !lineage.contains(&token),
        "the token reached the lineage events"
    );
    let events: Vec<Value> = lineage
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    let states: Vec<&str> = events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["START", "COMPLETE"], "{lineage}");
    let done = &events[1];
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    assert_eq!(done["inputs"][0]["namespace"], format!("http://{host}"));
    assert_eq!(done["outputs"][0]["name"], topic.as_str());
    assert_eq!(
        done["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"],
        35
    );
    assert!(err.contains("rate limited"), "the wait is logged: {err}");
    {
        let a = api.lock().expect("lock");
        assert_eq!((a.answered_429, a.answered_503), (1, 3));
    }

    // Run 2 (a new process: the cursor comes from the state file): only the 12 new posts.
    api.lock().expect("lock").posts.extend(1_035..1_047);
    let (code, out, err) = run_once(&config, &token).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    logs.push_str(&out);
    logs.push_str(&err);
    let second: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    assert_eq!(second["cycle"]["records"], 12, "{out}");
    assert_eq!(second["cycle"]["cursor"], "1046");
    let cursor_age = || {
        let text = std::fs::read_to_string(dir.path().join("metrics.prom")).expect("metrics");
        text.lines()
            .find(|l| l.starts_with("strata_poller_cursor_age_seconds{"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no cursor age in\n{text}"))
    };
    assert!(cursor_age() < 60.0, "the cursor just moved");

    // Run 3: nothing new, nothing sent, cursor kept. The cursor last moved when the state file
    // was written: two hours ago, as far as its clock says.
    let state_path = dir.path().join("state/x_iot.json");
    let touched = Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(&state_path)
        .status()
        .expect("touch");
    assert!(touched.success());
    let (code, out, err) = run_once(&config, &token).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let third: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    assert_eq!(third["cycle"]["records"], 0);
    assert_eq!(third["cycle"]["cursor"], "1046");
    let age = cursor_age();
    assert!((7_000.0..7_400.0).contains(&age), "cursor age {age} s");

    // A wrong token: 401 → exit 2 with a clear error, nothing sent, cursor untouched.
    api.lock().expect("lock").posts.push(1_047);
    let (code, out, err) = run_once(&config, "wrong-token").await;
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("401") && err.contains("X_BEARER_TOKEN"),
        "{err}"
    );
    let state = std::fs::read_to_string(dir.path().join("state/x_iot.json")).expect("state");
    assert!(state.contains("1046"), "{state}");

    let records = read_all(&brokers, &topic, 1, Duration::from_secs(5)).await;
    let ids: Vec<u64> = records
        .iter()
        .map(|r| {
            r.json()["item"]["id"]
                .as_str()
                .expect("id")
                .parse()
                .expect("num")
        })
        .collect();
    let mut want: Vec<u64> = (1_000..1_035).rev().collect();
    want.extend((1_035..1_047).rev());
    assert_eq!(
        ids, want,
        "every post once, in the API's order, cycle after cycle"
    );
    for r in &records {
        let v = r.json();
        let id = v["item"]["id"].as_str().expect("id");
        assert_eq!(r.key.as_deref(), Some(id.as_bytes()), "keyed by post id");
        let req = &v["request"];
        assert_eq!(req["source"], "x_iot");
        assert_eq!(req["status"], 200);
        assert_eq!(req["params"]["query"], "#iot lang:pt");
        assert!(req["page"].as_u64().is_some_and(|p| p >= 1));
        assert!(
            req["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/2/tweets/search/recent"))
        );
        assert!(
            req["requested_at"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
    }
    assert_eq!(
        records[34].json()["request"]["params"]["next_token"],
        "tok30"
    );
    assert_eq!(records[40].json()["request"]["params"]["since_id"], "1034");
    assert_eq!(
        records[0].json()["response"]["includes"]["users"][0]["username"],
        "fabrica_norte",
        "the page's expansions travel with its posts"
    );
    let everything: String = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert!(!everything.contains(&token), "the token is in a record");
    assert!(!logs.contains(&token), "the token is in the logs");
    assert!(
        !err.contains("wrong-token"),
        "a refused token is not logged either"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_pagination_resumes_at_the_next_page_without_repeats() {
    let Some(brokers) = broker("a_kill_mid_pagination_resumes_at_the_next_page_without_repeats")
    else {
        return;
    };
    let topic = unique("x-kill");
    create_topics(&brokers, &[(&topic, 1)]).await;
    let token = "tok-kill".to_string();
    let api: Shared = Arc::new(Mutex::new(Api {
        posts: (5_000..5_035).collect(),
        token: token.clone(),
        slow_at: [3].into(),
        ..Api::default()
    }));
    let url = serve(api.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &url, &brokers, &topic);
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["ingest", "http", "--once", "--config"])
        .arg(&config)
        .env("X_BEARER_TOKEN", &token)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    // Kill it while it waits for page 3, once pages 1 and 2 are acknowledged and saved (the
    // reader may fetch ahead of the producer; what counts is the saved state).
    let state_path = dir.path().join("state/x_iot.json");
    let saved =
        |p: &std::path::Path| std::fs::read_to_string(p).is_ok_and(|s| s.contains("\"tok20\""));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while api.lock().expect("lock").requests < 3 || !saved(&state_path) {
        assert!(
            std::time::Instant::now() < deadline,
            "page 2 was never saved"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_path).expect("state")).expect("json");
    assert_eq!(state["in_progress"]["next_token"], "tok20", "{state}");
    assert_eq!(state["in_progress"]["new_cursor"], "5034");
    let (code, out, err) = run_once(&config, &token).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let report: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    assert_eq!(report["cycle"]["records"], 15, "pages 3 and 4 only: {out}");
    assert_eq!(report["cycle"]["cursor"], "5034");
    let ids: Vec<u64> = post_ids(&brokers, &topic).await;
    assert_eq!(
        ids,
        (5_000..5_035).rev().collect::<Vec<_>>(),
        "each post once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_variable_and_a_bad_config_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "name: x\npreset: x_recent_search\nauth: {type: bearer, token_env: STRATA_NO_SUCH_TOKEN}\n\
         request: {url: 'ftp://nope'}\nkafka: {brokers: '127.0.0.1:1', topic: t}\n",
    )
    .expect("config");
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(["ingest", "http", "--config"]).arg(&path);
    let out = c.output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("request.url: `ftp://nope`"), "{err}");

    std::fs::write(
        &path,
        "name: x\npreset: x_recent_search\nauth: {type: bearer, token_env: STRATA_NO_SUCH_TOKEN}\n\
         kafka: {brokers: '127.0.0.1:1', topic: t}\n",
    )
    .expect("config");
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(["ingest", "http", "--config"]).arg(&path);
    let out = c.output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("`{}`", path.display())), "{err}");
    assert!(
        err.contains("auth.token_env: environment variable STRATA_NO_SUCH_TOKEN is not set"),
        "{err}"
    );
}

/// A generic oldest-first JSON API behind OAuth2 client credentials, with an API key in the
/// query: `GET /items?updated_since=&page_token=&api_key=` → `{items, next, max_updated}`.
#[derive(Default)]
struct Generic {
    items: Vec<u64>,
    api_key: String,
    tokens_issued: u32,
    /// Only the newest token is valid (the server rotates on every issue).
    valid_token: String,
    /// Tokens are revoked after this many API requests (forcing a refresh on a 401).
    revoke_after: u32,
    api_requests: u32,
    answered_401: u32,
    bad_client: u32,
    /// The token endpoint answers 503 this many times first.
    token_outages: u32,
}

type SharedGeneric = Arc<Mutex<Generic>>;

async fn token(State(api): State<SharedGeneric>, headers: HeaderMap, body: String) -> Response {
    use base64::Engine;
    let mut api = api.lock().expect("lock");
    if api.token_outages > 0 {
        api.token_outages -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
    }
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("client-1:client-secret-1")
    );
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(want.as_str()) || !body.contains("grant_type=client_credentials") {
        api.bad_client += 1;
        return (StatusCode::UNAUTHORIZED, "invalid_client").into_response();
    }
    api.tokens_issued += 1;
    api.valid_token = format!("access-{}", api.tokens_issued);
    axum::Json(json!({"access_token": api.valid_token, "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn items(
    State(api): State<SharedGeneric>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut api = api.lock().expect("lock");
    api.api_requests += 1;
    if api.api_requests == api.revoke_after {
        api.valid_token = "revoked".into();
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(format!("Bearer {}", api.valid_token).as_str())
        || q.get("api_key") != Some(&api.api_key)
    {
        api.answered_401 += 1;
        return (StatusCode::UNAUTHORIZED, "token expired").into_response();
    }
    let since: u64 = q
        .get("updated_since")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let offset: usize = q
        .get("page_token")
        .map(|t| t.trim_start_matches('p').parse().expect("ours"))
        .unwrap_or(0);
    let matching: Vec<u64> = api.items.iter().copied().filter(|i| *i > since).collect();
    let page: Vec<u64> = matching.iter().skip(offset).take(10).copied().collect();
    let mut body = json!({"items": page.iter().map(|i| json!({"id": i, "name": format!("item {i}")})).collect::<Vec<_>>()});
    if let Some(max) = page.last() {
        body["max_updated"] = json!(max);
    }
    if offset + 10 < matching.len() {
        body["next"] = json!(format!("p{}", offset + 10));
    }
    // One request left in a window ending 1–2 s from now: the poller slows down.
    let reset = (epoch() + 2).to_string();
    (
        [
            ("x-rate-limit-remaining", "1".to_string()),
            ("x-rate-limit-reset", reset),
        ],
        axum::Json(body),
    )
        .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_refresh_secret_query_parameters_and_proactive_slowdown() {
    let Some(brokers) = broker("oauth2_refresh_secret_query_parameters_and_proactive_slowdown")
    else {
        return;
    };
    let topic = unique("generic-items");
    create_topics(&brokers, &[(&topic, 1)]).await;
    let api_key = format!("key-SECRET-{}", unique("k"));
    let api: SharedGeneric = Arc::new(Mutex::new(Generic {
        items: (1..=25).collect(),
        api_key: api_key.clone(),
        revoke_after: 2,
        token_outages: 1,
        ..Generic::default()
    }));
    let app = axum::Router::new()
        .route("/oauth2/token", axum::routing::post(token))
        .route("/items", axum::routing::get(items))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("generic.yaml");
    std::fs::write(
        &config,
        format!(
            "name: items\nrequest:\n  url: '{base}/items?tenant=t1&access_token=url-literal-SECRET-1'\n  query: {{api_key: '${{env:TEST_API_KEY}}'}}\n\
             auth: {{type: oauth2_client_credentials, token_url: '{base}/oauth2/token', \
             client_id_env: TEST_CLIENT_ID, client_secret_env: TEST_CLIENT_SECRET}}\n\
             pagination: {{next_field: next, param: page_token}}\n\
             cursor: {{from: max_updated, param: updated_since, pick: last}}\n\
             records: items\nkafka: {{brokers: '{brokers}', topic: {topic}, key: id}}\n\
             state_file: {}\n",
            dir.path().join("items.json").display()
        ),
    )
    .expect("config");
    let run = |config: std::path::PathBuf| async move {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.args(["ingest", "http", "--once", "--config"])
            .arg(config)
            .env("TEST_API_KEY", "")
            .env("TEST_CLIENT_ID", "client-1")
            .env("TEST_CLIENT_SECRET", "client-secret-1")
            .env("STRATA_LOG", "debug");
        tokio::task::spawn_blocking(move || c.output().expect("run"))
            .await
            .expect("join")
    };
    // An empty secret variable is a config error naming it.
    let out = run(config.clone()).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TEST_API_KEY is empty"));

    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(["ingest", "http", "--once", "--config"])
        .arg(&config)
        .env("TEST_API_KEY", &api_key)
        .env("TEST_CLIENT_ID", "client-1")
        .env("TEST_CLIENT_SECRET", "client-secret-1")
        .env("STRATA_LOG", "debug");
    let out = tokio::task::spawn_blocking(move || c.output().expect("run"))
        .await
        .expect("join");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: Value =
        serde_json::from_str(stdout.lines().last().expect("summary")).expect("json");
    assert_eq!(report["cycle"]["records"], 25, "{stdout}");
    assert_eq!(
        report["cycle"]["cursor"], "25",
        "the last page's max_updated"
    );
    assert!(
        report["cycle"]["slowdowns"]
            .as_u64()
            .is_some_and(|n| n >= 2),
        "{stdout}"
    );
    assert!(stderr.contains("slowing down"), "{stderr}");
    assert!(
        stderr.contains("token endpoint") && stderr.contains("503"),
        "the token endpoint's 503 was retried: {stderr}"
    );
    {
        let a = api.lock().expect("lock");
        assert_eq!(
            a.tokens_issued, 2,
            "one token, then one refresh after the 401"
        );
        assert_eq!((a.answered_401, a.bad_client, a.token_outages), (1, 0, 0));
    }
    let records = read_all(&brokers, &topic, 1, Duration::from_secs(4)).await;
    let ids: Vec<u64> = records
        .iter()
        .map(|r| r.json()["item"]["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, (1..=25).collect::<Vec<_>>());
    let first = records[0].json();
    assert_eq!(
        first["request"]["params"]["api_key"], "***",
        "secret parameter redacted"
    );
    let everything: String = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    // A credential written literally in the URL is masked in the record's `request.url` too.
    assert_eq!(
        first["request"]["url"],
        format!("{base}/items?tenant=t1&access_token=***"),
    );
    for secret in [
        api_key.as_str(),
        "client-secret-1",
        "access-1",
        "access-2",
        "url-literal-SECRET-1",
    ] {
        assert!(!everything.contains(secret), "{secret} in a record");
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{secret} in the logs"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_poller_picks_up_new_posts_each_cycle_and_stops_on_sigterm() {
    let Some(brokers) = broker("a_scheduled_poller_picks_up_new_posts_each_cycle") else {
        return;
    };
    let topic = unique("x-sched");
    create_topics(&brokers, &[(&topic, 1)]).await;
    let token = "tok-sched".to_string();
    let api: Shared = Arc::new(Mutex::new(Api {
        posts: (7_000..7_015).collect(),
        token: token.clone(),
        ..Api::default()
    }));
    let url = serve(api.clone()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &url, &brokers, &topic);
    let mut yaml = std::fs::read_to_string(&config).expect("config");
    yaml.push_str("schedule: {interval_secs: 1}\n");
    std::fs::write(&config, yaml).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["ingest", "http", "--config"])
        .arg(&config)
        .env("X_BEARER_TOKEN", &token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    // New posts appear while it runs; each cycle asks only for what is newer than the cursor.
    for batch in 0..3u64 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let start = 7_015 + batch * 5;
        api.lock().expect("lock").posts.extend(start..start + 5);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert!(
        out.status.success(),
        "SIGTERM stops a scheduled poller with exit 0"
    );
    let cycles = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(cycles >= 4, "several cycles ran: {cycles}");
    let ids: Vec<u64> = post_ids(&brokers, &topic).await;
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (7_000..7_030).collect::<Vec<_>>(),
        "every post once"
    );
    let state = std::fs::read_to_string(dir.path().join("state/x_iot.json")).expect("state");
    assert!(state.contains("7029"), "{state}");
}
