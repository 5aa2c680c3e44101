//! Passive API stage, under load: sends signed Pipefy `card.move` webhooks to a running
//! `strata serve webhooks` at a chosen concurrency and reports requests/s and latency
//! percentiles (the figures in docs/performance.md come from this program).
//!
//! ```bash
//! cargo run --release -p strata-examples --example webhook_load -- \
//!     http://127.0.0.1:8080/webhooks/pipefy 20000 50
//! ```
//! The signing secret comes from `PIPEFY_WEBHOOK_SECRET` (the receiver's `hmac.secret_env`).
//! Prints one JSON line: requests, concurrency, seconds, requests/s, p50/p99/max ms, statuses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:8080/webhooks/pipefy".into());
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let concurrency: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(50);
    let secret = std::env::var("PIPEFY_WEBHOOK_SECRET").unwrap_or_else(|_| "secret".into());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let url = Arc::new(url);
    let secret = Arc::new(secret);
    let started = Instant::now();
    let results: Vec<(u16, Duration)> = futures::stream::iter(0..n)
        .map(|i| {
            let (client, url, secret) = (client.clone(), url.clone(), secret.clone());
            async move {
                let body = format!(
                    r#"{{"data":{{"action":"card.move","card":{{"id":{i},"title":"Pedido {i}","pipe_id":"302554109"}},"from":{{"id":1,"name":"Em análise"}},"to":{{"id":2,"name":"Aprovado"}}}}}}"#
                );
                let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
                    Ok(m) => m,
                    Err(_) => return (0, Duration::ZERO),
                };
                mac.update(body.as_bytes());
                let signature = hex::encode(mac.finalize().into_bytes());
                let sent = Instant::now();
                let status = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .header("X-Pipefy-Signature", signature)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                (status, sent.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let secs = started.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = results.iter().map(|r| r.1).collect();
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    let statuses: BTreeMap<u16, usize> = results.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.0).or_default() += 1;
        m
    });
    println!(
        "{}",
        serde_json::json!({
            "requests": n, "concurrency": concurrency, "seconds": secs,
            "requests_per_s": n as f64 / secs, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "max_ms": pct(1.0), "statuses": statuses,
        })
    );
    Ok(())
}
