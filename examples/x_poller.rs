//! Active API stage: poll X API v2 recent search into Kafka — pages, `since_id` cursor, rate
//! limits — each record holding the post and the request that produced it.
//!
//! ```bash
//! ./scripts/services.sh up && source "$(./scripts/services.sh env)"
//! export X_BEARER_TOKEN=...            # from the X developer portal; never logged
//! cargo run -p strata-examples --example x_poller -- "#iot lang:pt" raw.x.posts
//! ```
//! Runs one cycle (all pages newer than the saved cursor) and prints its report; run it again
//! to get only what is new. `X_API_URL` points it at another server that follows the same
//! contract (the tests use a local one). The same config as a YAML file runs with
//! `strata ingest http --config …` (see docs/api-sources.md).

use std::collections::BTreeMap;

use strata_connectors::http::HttpPoller;
use strata_connectors::http::config::{
    AuthConfig, KafkaTarget, PollerConfig, RateLimitConfig, RequestConfig, RetryConfig,
};

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
    let mut poller = tokio::task::spawn_blocking(move || HttpPoller::new(config).map_err(Box::new))
        .await?
        .map_err(|e| *e)?;
    println!("cursor before: {:?}", poller.state().cursor);
    let report = poller.run_cycle().await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
