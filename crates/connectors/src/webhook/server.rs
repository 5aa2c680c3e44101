//! The receiver: `POST /webhooks/{source}`, `GET /health`, `GET /ready`, `GET /metrics`.
//!
//! A request is answered 2xx only after Kafka acknowledged its event (`acks=all`, idempotent
//! producer), so the sender's retry covers every failure before that point: the broker down or
//! slow → 503 with `Retry-After`; more requests waiting on Kafka than `max_in_flight` → 503 at
//! once. The order of checks makes the answer tell the sender what to fix: unknown source 404,
//! content type 415, size 413, authenticity 401 (nothing stored), then parsing — an authentic
//! but malformed body is kept in the dead-letter topic with the reason and answered 400.
//! Duplicates (a sender retrying after a lost answer) are expected; every event carries an
//! idempotency key (the sender's header, or SHA-256 of the body) for downstream `dedup`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::config::{Source, WebhookConfig};
use super::deliver::{Deliver, DirectDelivery};
use super::metrics::{WebhookMetrics, WebhookTotals};
use super::replay::ReplayCache;
use super::verify;
use crate::error::{ConnectorError, Result};
use crate::json_path;
use crate::kafka::{KafkaConfig, OutRecord};

/// The shortest replay memory (for senders that sign no timestamp).
const REPLAY_WINDOW_MIN: Duration = Duration::from_secs(600);
/// The most stored requests remembered for replay detection (about 100 bytes each).
const REPLAY_CAPACITY: usize = 200_000;

struct App {
    sources: HashMap<String, Source>,
    /// Where accepted records go; a request is answered 2xx only once it says "stored".
    deliver: Arc<dyn Deliver>,
    dead_letter_topic: String,
    retry_after: HeaderValue,
    permits: Semaphore,
    metrics: WebhookMetrics,
    draining: AtomicBool,
    /// Requests recently stored: an exact replay is answered 200 and not stored again.
    replays: ReplayCache,
    /// The last readiness probe and when it ran: `/ready` probes Kafka at most once per
    /// [`READY_CACHE`], however often it is called (each probe blocks a thread up to 2 s).
    readiness: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// How long a readiness probe's answer is reused.
const READY_CACHE: Duration = Duration::from_secs(1);
/// Longest time a client may take to send a request body (a trickling client holds a permit).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, not yet serving receiver.
pub struct WebhookServer {
    listener: TcpListener,
    app: Arc<App>,
    limits: crate::http_serve::ServeLimits,
}

impl std::fmt::Debug for WebhookServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookServer")
            .field("addr", &self.listener.local_addr().ok())
            .finish()
    }
}

impl WebhookServer {
    /// Serves `extra`'s OpenMetrics text on `/metrics` after the receiver's own series (the
    /// delivery driver's `strata_pipeline_*` series, so one scrape sees the whole process).
    pub fn also_serve_metrics(&self, extra: super::ExtraMetrics) {
        self.app.metrics.also_serve(extra);
    }

    /// The Kafka profile records are produced with: the config's, with `message.timeout.ms`
    /// set to the acknowledgement timeout (a record Kafka has not acknowledged when the request
    /// gives up is not worth keeping queued: the sender was told 503 and will retry). User
    /// properties come after it.
    pub fn kafka_config(config: &WebhookConfig) -> Result<KafkaConfig> {
        let mut properties = vec![(
            "message.timeout.ms".to_string(),
            config.ack_timeout().as_millis().to_string(),
        )];
        properties.extend(config.kafka.properties.clone());
        KafkaConfig::from_profile(&config.kafka.brokers, properties)
    }

    /// Resolves the config (presets, secrets), checks that every topic exists, connects a
    /// producer of its own ([`DirectDelivery`]) and binds the listener.
    pub async fn bind(config: &WebhookConfig, file: &str) -> Result<Self> {
        let kafka = Self::kafka_config(config)?;
        let deliver = DirectDelivery::open(&kafka, config.ack_timeout())?;
        Self::bind_with(config, file, Arc::new(deliver)).await
    }

    /// As [`WebhookServer::bind`], storing records through `deliver`.
    pub async fn bind_with(
        config: &WebhookConfig,
        file: &str,
        deliver: Arc<dyn Deliver>,
    ) -> Result<Self> {
        let sources = config.resolve(file)?;
        let kafka = Self::kafka_config(config)?;
        let mut topics: Vec<&str> = sources.iter().map(|s| s.topic.as_str()).collect();
        topics.push(&config.dead_letter_topic);
        for topic in topics {
            let (k, t) = (kafka.clone(), topic.to_string());
            tokio::task::spawn_blocking(move || crate::kafka::partitions_of(&k, &t))
                .await
                .map_err(|e| ConnectorError::Internal(e.to_string()))??;
        }
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|e| ConnectorError::Listen {
                    addr: config.listen.clone(),
                    source: e,
                })?;
        let retry_after = HeaderValue::from(config.retry_after_secs.unwrap_or(5));
        // Remembered at least as long as any source's timestamp is valid (10 min without one).
        let window = sources
            .iter()
            .filter_map(|s| s.timestamp.as_ref().map(|(_, t)| *t))
            .max()
            .unwrap_or(Duration::ZERO)
            .max(REPLAY_WINDOW_MIN);
        let app = App {
            sources: sources.into_iter().map(|s| (s.name.clone(), s)).collect(),
            deliver,
            dead_letter_topic: config.dead_letter_topic.clone(),
            retry_after,
            permits: Semaphore::new(config.max_in_flight()),
            metrics: WebhookMetrics::default(),
            draining: AtomicBool::new(false),
            replays: ReplayCache::new(window, REPLAY_CAPACITY),
            readiness: tokio::sync::Mutex::new(None),
        };
        Ok(WebhookServer {
            listener,
            app: Arc::new(app),
            limits: config.serve_limits(),
        })
    }

    /// The bound address (port 0 in the config picks a free one).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| ConnectorError::Internal(e.to_string()))
    }

    /// Serves until `shutdown` resolves, then stops accepting, finishes the requests in flight
    /// (each still waits for its acknowledgement) and flushes the producer. Returns what this
    /// run handled.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<WebhookTotals> {
        let app = self.app.clone();
        let draining = self.app.clone();
        let router = Router::new()
            .route("/webhooks/{source}", post(receive))
            .route("/health", get(|| async { "ok" }))
            .route("/ready", get(ready))
            .route("/metrics", get(metrics))
            .with_state(app);
        let addr = self.listener.local_addr().ok();
        let counters = self.app.metrics.connections();
        crate::http_serve::serve(self.listener, router, self.limits, counters, async move {
            shutdown.await;
            draining.draining.store(true, Ordering::SeqCst);
            tracing::info!("shutting down: finishing requests in flight");
        })
        .await
        .map_err(|e| ConnectorError::Listen {
            addr: addr.map(|a| a.to_string()).unwrap_or_default(),
            source: e,
        })?;
        self.app.deliver.finish().await?;
        Ok(self.app.metrics.totals())
    }
}

fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.draining.load(Ordering::SeqCst) {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "shutting down"}),
        );
    }
    // One probe at a time, its answer reused for READY_CACHE: callers queue on the lock.
    let ok = {
        let mut cached = app.readiness.lock().await;
        match *cached {
            Some((at, ok)) if at.elapsed() < READY_CACHE => ok,
            _ => {
                let probe = app.clone();
                let ok = tokio::task::spawn_blocking(move || {
                    probe.deliver.reachable(Duration::from_secs(2))
                })
                .await
                .unwrap_or(false);
                *cached = Some((Instant::now(), ok));
                ok
            }
        }
    };
    if ok {
        answer(StatusCode::OK, json!({"ready": true}))
    } else {
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "Kafka is not reachable"}),
        )
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}

fn unavailable(app: &App, reason: &str) -> Response {
    let mut r = answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"status": "unavailable", "reason": reason}),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, app.retry_after.clone());
    r
}

fn content_type_ok(source: &Source, headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    source.content_types.contains(&media)
}

async fn receive(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let arrived = Instant::now();
    let Some(source) = app.sources.get(&name) else {
        app.metrics.request("unknown", 404);
        return answer(
            StatusCode::NOT_FOUND,
            json!({"status": "unknown source", "source": name}),
        );
    };
    let response = handle(&app, source, &headers, body, arrived).await;
    app.metrics
        .request(&source.name, response.status().as_u16());
    response
}

async fn handle(
    app: &App,
    source: &Source,
    headers: &HeaderMap,
    body: Body,
    arrived: Instant,
) -> Response {
    if !content_type_ok(source, headers) {
        return answer(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({"status": "rejected", "reason": format!("content type must be one of {:?}", source.content_types)}),
        );
    }
    let too_large = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            json!({"status": "rejected", "reason": format!("body larger than {} bytes", source.max_body_bytes)}),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > source.max_body_bytes) {
        return too_large();
    }
    // The permit is taken before the body is read: a flood of slow or huge bodies waits
    // for (or is refused) a permit instead of each holding its bytes in memory.
    let Ok(_permit) = app.permits.try_acquire() else {
        return unavailable(app, "too many requests waiting on Kafka");
    };
    let bytes = match tokio::time::timeout(
        BODY_TIMEOUT,
        axum::body::to_bytes(body, source.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                json!({"status": "rejected", "reason": format!("the body took over {} s", BODY_TIMEOUT.as_secs())}),
            );
        }
    };
    if let Err(why) = verify::check(source, headers, &bytes, SystemTime::now()) {
        app.metrics.rejected(&source.name, why.label());
        tracing::warn!(source = %source.name, check = why.label(), "refused: {why}");
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"status": "rejected", "reason": "not authentic"}),
        );
    }
    let stamp = source
        .timestamp
        .as_ref()
        .and_then(|(name, _)| headers.get(name.as_str()))
        .and_then(|v| v.to_str().ok());
    let digest = ReplayCache::digest(&source.name, stamp, &bytes);
    if app.replays.seen(&digest, Instant::now()) {
        app.metrics.rejected(&source.name, "replay");
        tracing::info!(source = %source.name, "an exact replay of a stored request: not stored again");
        return answer(
            StatusCode::OK,
            json!({"status": "duplicate", "idempotency_key": idempotency_key(source, headers, &bytes)}),
        );
    }
    app.metrics.in_flight().inc();
    let response = store(app, source, headers, &bytes, arrived).await;
    app.metrics.in_flight().dec();
    // Only a stored request is remembered: one answered 503 must be stored when retried.
    if response.status() == StatusCode::OK {
        app.replays.remember(digest, Instant::now());
    }
    response
}

/// The sender's idempotency header, if configured and present.
fn sender_key(source: &Source, headers: &HeaderMap) -> Option<String> {
    source
        .idempotency_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The key downstream `dedup` uses. With an HMAC check, the idempotency header is not covered
/// by the signature — a replayer could put any value there and pass a captured body off as a
/// new event — so the key is the SHA-256 of exactly what is signed (`<timestamp>.<body>` or the
/// body); the sender's header is still carried, as `sender_idempotency_key`. Without an HMAC
/// nothing is signed, and the sender's header (else the body's hash) is the key.
fn idempotency_key(source: &Source, headers: &HeaderMap, body: &[u8]) -> String {
    let signed = |signs_timestamp: bool| {
        let mut digest = Sha256::new();
        if signs_timestamp
            && let Some((name, _)) = &source.timestamp
            && let Some(ts) = headers.get(name.as_str())
        {
            digest.update(ts.as_bytes());
            digest.update(b".");
        }
        digest.update(body);
        hex::encode(digest.finalize())
    };
    match &source.hmac {
        Some(h) => signed(h.signs_timestamp),
        None => sender_key(source, headers).unwrap_or_else(|| signed(false)),
    }
}

async fn produce(app: &App, record: OutRecord) -> std::result::Result<(), String> {
    app.deliver.deliver(record).await
}

async fn store(
    app: &App,
    source: &Source,
    headers: &HeaderMap,
    bytes: &[u8],
    arrived: Instant,
) -> Response {
    let received_at = strata_core::sample::iso_millis(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default(),
    );
    let key = idempotency_key(source, headers, bytes);
    let mut common = vec![
        (
            "strata.source".to_string(),
            source.name.clone().into_bytes(),
        ),
        (
            "strata.idempotency_key".to_string(),
            key.clone().into_bytes(),
        ),
        (
            "strata.received_at".to_string(),
            received_at.clone().into_bytes(),
        ),
    ];
    if let Some(sender) = sender_key(source, headers) {
        common.push((
            "strata.sender_idempotency_key".to_string(),
            sender.into_bytes(),
        ));
    }
    let dead_letter = |reason: String, label: &'static str| {
        let mut h = common.clone();
        h.push(("strata.reason".into(), reason.into_bytes()));
        h.push(("strata.reason_code".into(), label.as_bytes().to_vec()));
        OutRecord {
            topic: app.dead_letter_topic.clone(),
            key: Some(key.clone().into_bytes()),
            value: Some(bytes.to_vec()),
            headers: h,
        }
    };
    let event: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            let reason = format!("malformed JSON: {e}");
            return match produce(app, dead_letter(reason.clone(), "malformed_json")).await {
                Ok(()) => {
                    app.metrics.dead_letter(&source.name, "malformed_json");
                    answer(
                        StatusCode::BAD_REQUEST,
                        json!({"status": "dead_lettered", "reason": reason}),
                    )
                }
                Err(why) => {
                    tracing::warn!(source = %source.name, "dead letter not stored: {why}");
                    unavailable(app, "Kafka unavailable")
                }
            };
        }
    };
    let event_type = source
        .event_type
        .as_deref()
        .and_then(|p| json_path::lookup_scalar(&event, p));
    if !source.accepted_events.is_empty()
        && !event_type
            .as_ref()
            .is_some_and(|t| source.accepted_events.contains(t))
    {
        let reason = format!(
            "event type {} is not among the accepted {:?}",
            event_type.as_deref().unwrap_or("(missing)"),
            source.accepted_events
        );
        return match produce(app, dead_letter(reason.clone(), "event_not_accepted")).await {
            Ok(()) => {
                app.metrics.dead_letter(&source.name, "event_not_accepted");
                answer(
                    StatusCode::ACCEPTED,
                    json!({"status": "dead_lettered", "reason": reason}),
                )
            }
            Err(_) => unavailable(app, "Kafka unavailable"),
        };
    }
    let message_key = source
        .key
        .as_deref()
        .and_then(|p| json_path::lookup_scalar(&event, p))
        .unwrap_or_else(|| key.clone());
    let mut h = common.clone();
    if let Some(t) = &event_type {
        h.push(("strata.event_type".into(), t.clone().into_bytes()));
    }
    let envelope = json!({
        "source": source.name,
        "received_at": received_at,
        "idempotency_key": key,
        "sender_idempotency_key": sender_key(source, headers),
        "event_type": event_type,
        "event": event,
    });
    let record = OutRecord {
        topic: source.topic.clone(),
        key: Some(message_key.into_bytes()),
        value: Some(envelope.to_string().into_bytes()),
        headers: h,
    };
    match produce(app, record).await {
        Ok(()) => {
            app.metrics
                .stored(&source.name, arrived.elapsed().as_secs_f64());
            answer(
                StatusCode::OK,
                json!({"status": "stored", "idempotency_key": key}),
            )
        }
        Err(why) => {
            tracing::warn!(source = %source.name, "event not acknowledged: {why}");
            unavailable(app, "Kafka unavailable")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::webhook::config::{HmacCheck, SignatureEncoding};

    fn source(hmac: bool) -> Source {
        Source {
            name: "s".into(),
            topic: "t".into(),
            secret_header: None,
            hmac: hmac.then(|| HmacCheck {
                header: "x-sig".into(),
                secret: Secret::new("key"),
                encoding: SignatureEncoding::Hex,
                prefix: String::new(),
                signs_timestamp: true,
            }),
            timestamp: Some(("x-ts".into(), Duration::from_secs(300))),
            max_body_bytes: 1024,
            content_types: vec!["application/json".into()],
            idempotency_header: Some("idempotency-key".into()),
            key: None,
            event_type: None,
            accepted_events: vec![],
        }
    }

    fn headers(ts: &str, key: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-ts", HeaderValue::from_str(ts).expect("ts"));
        h.insert("idempotency-key", HeaderValue::from_str(key).expect("key"));
        h
    }

    #[test]
    fn an_unsigned_idempotency_header_cannot_make_a_replay_new() {
        let signed = source(true);
        let body = br#"{"a":1}"#;
        // A captured request replayed with another idempotency header: the same key.
        assert_eq!(
            idempotency_key(&signed, &headers("100", "first"), body),
            idempotency_key(&signed, &headers("100", "forged"), body)
        );
        // The signed timestamp is part of what is signed, so of the key.
        assert_ne!(
            idempotency_key(&signed, &headers("100", "first"), body),
            idempotency_key(&signed, &headers("101", "first"), body)
        );
        assert_eq!(
            sender_key(&signed, &headers("100", "first")).as_deref(),
            Some("first")
        );
        // Nothing signed: the sender's header is the key.
        let open = source(false);
        assert_eq!(idempotency_key(&open, &headers("1", "k-7"), body), "k-7");
    }
}
