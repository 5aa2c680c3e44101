//! # strata-connectors
//!
//! Sources and sinks: they read or write external systems and hand the core raw records with
//! their lineage columns (see `strata_core::lineage`). No transformation logic lives here.
//!
//! * [`file::NdjsonReader`] — streams newline-delimited records from local files (plain, gzip
//!   or zstd) in bounded batches, each record tagged with its file and line.
//! * [`kafka`] — consumer micro-batches with topic / partition / offset lineage and manual
//!   offsets; an idempotent, optionally transactional producer.
//! * [`postgres`] — full load (and incremental load by a watermark) of PostgreSQL tables from one
//!   exported snapshot with parallel readers, binary COPY decoded into Arrow batches.
//! * [`mysql_cdc`] — MySQL / MariaDB binlog CDC: consistent snapshot then committed
//!   transactions as Debezium-compatible change events (JSON / Arrow), position in a state file.
//! * [`avro`] — pipeline output as Avro in the Confluent wire format, and back.
//! * [`http`] — the active API source: an HTTP poller (pages, cursor, rate limits) into Kafka.
//! * [`webhook`] — the passive API source: a webhook receiver that answers 2xx only once the
//!   event is in Kafka.
//! * [`registry`] — Confluent Schema Registry client, compatibility rules and a small server.

pub mod avro;
pub mod error;
pub mod file;
pub mod http;
pub mod http_serve;
pub mod json_path;
pub mod kafka;
pub mod mysql_cdc;
pub mod no_panic;
pub mod postgres;
pub mod registry;
pub mod secret;
pub mod state_file;
pub mod webhook;

pub use error::{ConnectorError, Result};

/// Standard base64 with padding: how JSON renderings (Debezium events, decoded Avro) carry bytes.
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
