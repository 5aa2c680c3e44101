//! The API's own Prometheus metrics (`GET /metrics`): requests by route and status, request
//! latency, queries running / cancelled / timed out, and cache hits, misses and Redis errors.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::cache::CacheCounters;
use crate::execute::QueryCounters;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request counters and latencies.
#[derive(Default)]
pub struct ApiMetrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
}

impl ApiMetrics {
    /// Records one request.
    pub fn observe(&self, route: &'static str, status: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((route, status))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let h = latency.entry(route).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The Prometheus text exposition.
    pub fn render(&self, queries: &QueryCounters, cache: Option<(&CacheCounters, &str)>) -> String {
        let mut out = String::new();
        out.push_str("# HELP strata_api_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE strata_api_requests_total counter\n");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "strata_api_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP strata_api_request_duration_seconds Request latency, by route.\n");
        out.push_str("# TYPE strata_api_request_duration_seconds histogram\n");
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "strata_api_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "strata_api_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "strata_api_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "strata_api_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let gauge = |out: &mut String, name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "strata_api_queries_running",
            "gauge",
            "Queries running now.",
            load(&queries.running),
        );
        gauge(
            &mut out,
            "strata_api_queries_completed_total",
            "counter",
            "Queries that finished.",
            load(&queries.completed),
        );
        gauge(
            &mut out,
            "strata_api_queries_cancelled_total",
            "counter",
            "Queries dropped because the client went away.",
            load(&queries.cancelled),
        );
        gauge(
            &mut out,
            "strata_api_queries_timed_out_total",
            "counter",
            "Queries stopped by their time limit.",
            load(&queries.timed_out),
        );
        if let Some((c, backend)) = cache {
            let _ = writeln!(
                out,
                "# HELP strata_api_cache_lookups_total Cache lookups, by result.\n# TYPE strata_api_cache_lookups_total counter\n\
                 strata_api_cache_lookups_total{{backend=\"{backend}\",result=\"hit\"}} {}\n\
                 strata_api_cache_lookups_total{{backend=\"{backend}\",result=\"miss\"}} {}",
                load(&c.hits),
                load(&c.misses)
            );
            gauge(
                &mut out,
                "strata_api_cache_redis_errors_total",
                "counter",
                "Redis operations that failed (answers served uncached).",
                load(&c.redis_errors),
            );
        }
        out
    }
}
