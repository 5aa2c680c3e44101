//! Prometheus metrics of the registry (`GET /metrics`, open like `/` so a scraper needs no
//! credentials): requests by route, method and status, request latency by route, and the
//! schemas and subjects stored.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// Every metric of the registry.
#[derive(Debug)]
pub struct RegistryMetrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    seconds: Family<Labels, Histogram>,
    schemas: Gauge,
    subjects: Gauge,
}

impl Default for RegistryMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("strata_registry");
        let requests = Family::<Labels, Counter>::default();
        let seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        let schemas = Gauge::default();
        let subjects = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by route, method and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request, by route",
            seconds.clone(),
        );
        registry.register("schemas", "Schemas stored", schemas.clone());
        registry.register(
            "subjects",
            "Subjects stored (deleted ones included)",
            subjects.clone(),
        );
        RegistryMetrics {
            registry,
            requests,
            seconds,
            schemas,
            subjects,
        }
    }
}

impl RegistryMetrics {
    /// Records one answered request (`route` is the matched template, not the path).
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&vec![
                ("route".to_string(), route.to_string()),
                ("method".to_string(), method.to_string()),
                ("status".to_string(), status.to_string()),
            ])
            .inc();
        self.seconds
            .get_or_create(&vec![("route".to_string(), route.to_string())])
            .observe(seconds);
    }

    /// The text exposition, with the stored counts as of now.
    pub fn render(&self, schemas: usize, subjects: usize) -> String {
        self.schemas.set(i64::try_from(schemas).unwrap_or(i64::MAX));
        self.subjects
            .set(i64::try_from(subjects).unwrap_or(i64::MAX));
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
