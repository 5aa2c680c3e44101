//! Prometheus metrics of the receiver (`GET /metrics`, OpenMetrics text) with the
//! `prometheus-client` crate: requests by source and status, events stored, dead letters by
//! reason, rejections by check, and the time from a request's arrival to the broker's
//! acknowledgement.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// More OpenMetrics text served on the receiver's `/metrics` (the delivery driver's series).
pub type ExtraMetrics = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

/// Every metric of the receiver.
pub struct WebhookMetrics {
    registry: Registry,
    extra: std::sync::Mutex<Option<ExtraMetrics>>,
    requests: Family<Labels, Counter>,
    stored: Family<Labels, Counter>,
    dead_letters: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    ack_seconds: Histogram,
    in_flight: Gauge,
    totals: [AtomicU64; 5],
    connections: std::sync::Arc<crate::http_serve::ConnectionCounters>,
    connections_open: Gauge,
    connections_refused: Counter,
}

/// What the receiver handled since it started, over every source (logged at shutdown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookTotals {
    /// Requests answered.
    pub requests: u64,
    /// Events acknowledged by Kafka.
    pub events: u64,
    /// Authentic requests stored in the dead-letter topic.
    pub dead_letters: u64,
    /// Requests refused by an authenticity check.
    pub rejected: u64,
    /// Requests answered 503 (Kafka unavailable or too many waiting).
    pub unavailable: u64,
}

const REQUESTS: usize = 0;
const EVENTS: usize = 1;
const DEAD_LETTERS: usize = 2;
const REJECTED: usize = 3;
const UNAVAILABLE: usize = 4;

impl Default for WebhookMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("strata_webhook");
        let requests = Family::<Labels, Counter>::default();
        let stored = Family::<Labels, Counter>::default();
        let dead_letters = Family::<Labels, Counter>::default();
        let rejected = Family::<Labels, Counter>::default();
        let ack_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let in_flight = Gauge::default();
        registry.register(
            "requests",
            "Requests by source and HTTP status",
            requests.clone(),
        );
        registry.register(
            "events",
            "Events acknowledged by Kafka, by source",
            stored.clone(),
        );
        registry.register(
            "dead_letters",
            "Authentic requests stored in the dead-letter topic, by reason",
            dead_letters.clone(),
        );
        registry.register(
            "rejected",
            "Requests refused by an authenticity check, by check",
            rejected.clone(),
        );
        registry.register(
            "ack_seconds",
            "From the request's arrival to Kafka's acknowledgement",
            ack_seconds.clone(),
        );
        registry.register("in_flight", "Requests waiting on Kafka", in_flight.clone());
        let connections_open = Gauge::default();
        let connections_refused = Counter::default();
        registry.register(
            "connections_open",
            "HTTP connections open",
            connections_open.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed on accept because max_connections were open",
            connections_refused.clone(),
        );
        WebhookMetrics {
            extra: std::sync::Mutex::new(None),
            connections: Default::default(),
            connections_open,
            connections_refused,
            registry,
            requests,
            stored,
            dead_letters,
            rejected,
            ack_seconds,
            in_flight,
            totals: Default::default(),
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl WebhookMetrics {
    /// One answered request.
    pub fn request(&self, source: &str, status: u16) {
        self.requests
            .get_or_create(&labels(&[
                ("source", source),
                ("status", &status.to_string()),
            ]))
            .inc();
        self.count(REQUESTS);
        if status == 503 {
            self.count(UNAVAILABLE);
        }
    }

    fn count(&self, which: usize) {
        self.totals[which].fetch_add(1, Ordering::Relaxed);
    }

    /// The totals over every source.
    pub fn totals(&self) -> WebhookTotals {
        let get = |which: usize| self.totals[which].load(Ordering::Relaxed);
        WebhookTotals {
            requests: get(REQUESTS),
            events: get(EVENTS),
            dead_letters: get(DEAD_LETTERS),
            rejected: get(REJECTED),
            unavailable: get(UNAVAILABLE),
        }
    }

    /// One event acknowledged, after `seconds`.
    pub fn stored(&self, source: &str, seconds: f64) {
        self.stored
            .get_or_create(&labels(&[("source", source)]))
            .inc();
        self.ack_seconds.observe(seconds);
        self.count(EVENTS);
    }

    /// One dead letter.
    pub fn dead_letter(&self, source: &str, reason: &str) {
        self.dead_letters
            .get_or_create(&labels(&[("source", source), ("reason", reason)]))
            .inc();
        self.count(DEAD_LETTERS);
    }

    /// One rejection.
    pub fn rejected(&self, source: &str, check: &str) {
        self.rejected
            .get_or_create(&labels(&[("source", source), ("check", check)]))
            .inc();
        self.count(REJECTED);
    }

    /// The in-flight gauge.
    pub fn in_flight(&self) -> &Gauge {
        &self.in_flight
    }

    /// The accept loop's connection counters (shared with it).
    pub fn connections(&self) -> std::sync::Arc<crate::http_serve::ConnectionCounters> {
        self.connections.clone()
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let open = self.connections.open.load(Ordering::Relaxed);
        self.connections_open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
        let refused = self.connections.refused.load(Ordering::Relaxed);
        self.connections_refused
            .inc_by(refused.saturating_sub(self.connections_refused.get()));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        let extra = self.extra.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match extra {
            // One exposition: a single `# EOF`, at the end.
            Some(extra) => {
                let ours = out.strip_suffix("# EOF\n").unwrap_or(&out);
                format!("{ours}{}", extra())
            }
            None => out,
        }
    }

    /// Serves `extra`'s text after the receiver's own series (it must be OpenMetrics text
    /// with distinct metric names, ending in `# EOF`).
    pub fn also_serve(&self, extra: ExtraMetrics) {
        *self.extra.lock().unwrap_or_else(|p| p.into_inner()) = Some(extra);
    }
}

impl std::fmt::Debug for WebhookMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookMetrics")
            .field("totals", &self.totals)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = WebhookMetrics::default();
        m.request("pipefy", 200);
        m.request("pipefy", 200);
        m.dead_letter("pipefy", "malformed_json");
        m.stored("pipefy", 0.003);
        let text = m.render();
        assert!(
            text.contains(r#"strata_webhook_requests_total{source="pipefy",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains(
            r#"strata_webhook_dead_letters_total{source="pipefy",reason="malformed_json"} 1"#
        ));
        assert!(text.contains("strata_webhook_ack_seconds_count 1"));
    }

    #[test]
    fn totals_add_up_every_source() {
        let m = WebhookMetrics::default();
        m.request("pipefy", 200);
        m.request("generic", 401);
        m.request("generic", 503);
        m.request("unknown", 404);
        m.stored("pipefy", 0.001);
        m.rejected("generic", "bad_signature");
        m.dead_letter("pipefy", "malformed_json");
        m.dead_letter("generic", "event_not_accepted");
        assert_eq!(
            m.totals(),
            WebhookTotals {
                requests: 4,
                events: 1,
                dead_letters: 2,
                rejected: 1,
                unavailable: 1,
            }
        );
    }
}
