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
    let mut api = api.lock().expect("lock");
    api.requests += 1;
    let n = api.requests;
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

/// Runs one cycle as its own process; returns (success, stdout, stderr).
async fn run_once(config: &Path, token: &str) -> (Option<i32>, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(["ingest", "http", "--once", "--config"])
        .arg(config)
        .env("X_BEARER_TOKEN", token)
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

    // Run 3: nothing new, nothing sent, cursor kept.
    let (code, out, err) = run_once(&config, &token).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let third: Value = serde_json::from_str(out.lines().last().expect("summary")).expect("json");
    assert_eq!(third["cycle"]["records"], 0);
    assert_eq!(third["cycle"]["cursor"], "1046");

    // A wrong token: 401 → exit 2 with a clear error, nothing sent, cursor untouched.
    api.lock().expect("lock").posts.push(1_047);
    let (code, out, err) = run_once(&config, "wrong-token").await;
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
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
    assert!(
        err.contains("auth: environment variable STRATA_NO_SUCH_TOKEN is not set"),
        "{err}"
    );
}
