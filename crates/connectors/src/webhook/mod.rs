//! The passive API source: a webhook receiver (axum) that stores each authentic event in Kafka
//! before answering 2xx.
//!
//! * [`config`] — the YAML file, presets (`pipefy`) and secret resolution.
//! * [`verify`] — shared-secret header, HMAC-SHA256 signature, timestamp tolerance.
//! * [`server`] — routes, the store-then-answer rule, dead letters, readiness, shutdown.
//! * [`deliver`] — where an accepted record is stored before the answer.
//! * [`metrics`] — Prometheus counters and the acknowledgement-latency histogram.

pub mod config;
pub mod deliver;
pub mod metrics;
pub mod replay;
pub mod server;
pub mod verify;

pub use config::WebhookConfig;
pub use deliver::{Deliver, DirectDelivery};
pub use metrics::{ExtraMetrics, WebhookTotals};
pub use server::WebhookServer;
