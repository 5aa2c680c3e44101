//! The contract between the poller and `pipelines/x_posts.yaml`: a local server that answers
//! with the X API v2 recent-search payloads of `samples/x/` (two pages chained by
//! `meta.next_token`, fields returned only when asked for in `tweet.fields`, as X does), polled
//! by the real `strata ingest http` (preset `x_recent_search`) into the real broker; the records
//! read back are run through the shipped pipeline: nothing quarantined, every column filled.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use support::{broker, create_topics, read_all, unique};

const TOKEN: &str = "x-contract-token";

fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../samples/x")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).expect("sample")).expect("sample JSON")
}

/// A post keeps `id` and `text` (always returned) and the fields `tweet.fields` asked for.
fn with_fields(mut page: Value, fields: &str) -> Value {
    let asked: Vec<&str> = fields.split(',').collect();
    if let Some(posts) = page["data"].as_array_mut() {
        for post in posts {
            if let Some(obj) = post.as_object_mut() {
                obj.retain(|k, _| k == "id" || k == "text" || asked.contains(&k.as_str()));
            }
        }
    }
    page
}

async fn recent(headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {TOKEN}") {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    if q.contains_key("since_id") {
        return axum::Json(serde_json::json!({"meta": {"result_count": 0}})).into_response();
    }
    let fields = q.get("tweet.fields").cloned().unwrap_or_default();
    let page = match q.get("next_token").map(String::as_str) {
        None => sample("x_recent_search_page1.json"),
        Some("b26v89c19zqg8o3fr5a2m0") => sample("x_recent_search_page2.json"),
        Some(other) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("unknown next_token {other}"),
            )
                .into_response();
        }
    };
    axum::Json(with_fields(page, &fields)).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_output_passes_the_shipped_x_posts_pipeline() {
    let Some(brokers) = broker("poller_output_passes_the_shipped_x_posts_pipeline") else {
        return;
    };
    let topic = unique("xc.posts");
    create_topics(&brokers, &[(&topic, 1)]).await;
    let app = axum::Router::new().route("/2/tweets/search/recent", axum::routing::get(recent));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("x.yaml");
    std::fs::write(
        &config,
        format!(
            "name: x_iot\npreset: x_recent_search\nrequest:\n  url: http://{addr}/2/tweets/search/recent\n  \
             query:\n    query: '#iot lang:pt'\nkafka: {{brokers: '{brokers}', topic: {topic}}}\n\
             state_file: {}\n",
            dir.path().join("state.json").display()
        ),
    )
    .expect("config");
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(["ingest", "http", "--once", "--config"])
        .arg(&config)
        .env("X_BEARER_TOKEN", TOKEN);
    let out = tokio::task::spawn_blocking(move || c.output().expect("run"))
        .await
        .expect("join");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored: Vec<Vec<u8>> = read_all(&brokers, &topic, 1, Duration::from_secs(3))
        .await
        .into_iter()
        .filter_map(|r| r.value)
        .collect();
    assert_eq!(stored.len(), 3, "two posts on page 1, one on page 2");
    let (rows, quarantine) = support::contract::run_shipped("x_posts.yaml", &stored);
    support::contract::assert_nothing_quarantined(&quarantine);
    assert_eq!(rows.num_rows(), 3);
    for field in rows.schema().fields() {
        if field.name().starts_with('_') {
            continue;
        }
        assert_eq!(
            support::contract::nulls_where(&rows, field.name(), |_| true),
            0,
            "column `{}` is null",
            field.name()
        );
    }
    assert_eq!(
        support::contract::text(&rows, "search_query", 0).as_deref(),
        Some("#iot lang:pt")
    );
}
