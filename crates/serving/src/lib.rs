//! Strata's analytics API (`strata serve analytics`): read-only, bounded SQL and a semantic
//! layer of named metrics over the lake's silver and gold Iceberg tables, with a cache keyed by
//! the snapshots each answer read (in process or in Redis), API keys with rate limits and
//! dataset allow-lists, the catalog at `/datasets`, Prometheus metrics and an OpenAPI document.
//!
//! A Rust service embeds it the way the CLI does:
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = strata_serving::ServeConfig::from_file("serve.yaml".as_ref())?;
//! let api = strata_serving::AnalyticsApi::open(config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
//! strata_serving::serve(api, listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod api_metrics;
pub mod auth;
pub mod cache;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod execute;
pub mod format;
pub mod live;
pub mod openapi;
pub mod readonly;
pub mod redis;
pub mod report;
pub mod semantic;
pub mod server;
pub mod svg;
pub mod tables;

pub use config::ServeConfig;
pub use error::{Result, ServingError};
pub use server::{AnalyticsApi, serve};
