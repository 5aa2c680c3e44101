//! Active API stage: poll X API v2 recent search into Kafka — pages, `since_id` cursor, rate
//! limits — each record holding the post and the request that produced it.
//!
//! ```bash
//! ./scripts/services.sh up && source "$(./scripts/services.sh env)"
//! export X_BEARER_TOKEN=...            # from the X developer portal; never logged
//! cargo run -p strata-examples --example x_poller -- "#iot lang:pt" raw.x.posts
//! ```
//! Runs one cycle (all pages newer than the saved cursor) through the runtime's driver (the
//! state saved after every acknowledged page) and prints its report; run it again to get only
//! what is new. `X_API_URL` points it at another server that follows the same
//! contract (the tests use a local one). The same config as a YAML file runs with
//! `strata ingest http --config …` (see docs/api-sources.md).

use std::collections::BTreeMap;

use std::time::Duration;

use strata_connectors::http::config::{
    AuthConfig, KafkaTarget, PollerConfig, RateLimitConfig, RequestConfig, RetryConfig,
};
use strata_runtime::sources::open_http_ingest;
use strata_runtime::{CommitPolicy, Driver, DriverOptions, Passthrough};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let query = args.next().unwrap_or_else(|| "#iot".into());
    let topic = args.next().unwrap_or_else(|| "raw.x.posts".into());
    let brokers = std::env::var("STRATA_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let config = PollerConfig {
        name: "x_example".into(),
        preset: Some("x_recent_search".into()),
        request: RequestConfig {
            url: std::env::var("X_API_URL").ok(),
            query: BTreeMap::from([("query".into(), query)]),
            ..RequestConfig::default()
        },
        auth: AuthConfig::Bearer {
            token_env: "X_BEARER_TOKEN".into(),
        },
        pagination: None,
        cursor: None,
        records: None,
        response_fields: Vec::new(),
        rate_limit: RateLimitConfig::default(),
        retry: RetryConfig::default(),
        kafka: KafkaTarget {
            brokers,
            topic,
            key: None,
            properties: BTreeMap::new(),
        },
        schedule: None,
        state_file: Some("out/x_example_state.json".into()),
        file: String::new(),
    }
    .resolved("(example)")?;
    let (source, sink) = tokio::task::spawn_blocking(move || open_http_ingest(config)).await??;
    let log = source.log();
    let options = DriverOptions {
        commit: CommitPolicy::every(Duration::ZERO, 1),
        ..DriverOptions::default()
    };
    let run = Driver::new(source, Passthrough::new("x_example"), sink, options)
        .run(std::future::pending())
        .await?;
    let at = run.position.as_ref().map(|p| p.to_json());
    println!(
        "stopped: {:?}, {} commits, at {at:?}",
        run.stopped, run.commits
    );
    let log = log.lock().map(|l| l.clone()).unwrap_or_default();
    for (_, report) in &log.cycles {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
}
