//! The active API source: a generic HTTP poller configured in YAML (see [`config`]) that runs a
//! request, follows its pages, keeps an incremental cursor and writes every record to Kafka
//! together with the request that produced it.
//!
//! * [`config`] — the YAML file, validation and the `x_recent_search` preset.
//! * [`auth`] — bearer tokens and OAuth2 client credentials from environment variables.
//! * [`rate_limit`] — 429 / `Retry-After` / `x-rate-limit-*` handling and jittered backoff.
//! * [`poller`] — the loop: fetch, produce, acknowledge, then save the cursor.

pub mod auth;
pub mod config;
pub mod poller;
pub mod rate_limit;

pub use config::PollerConfig;
pub use poller::{CycleProgress, CycleReport, HttpPoller, Page, PollerState, PollerTotals};
