//! Kafka: a consumer that hands the pipeline batches with lineage columns and manual offsets, and
//! an idempotent (optionally transactional) producer that returns only once the broker has
//! acknowledged every record.
//!
//! Built on rdkafka with its bundled librdkafka. Every librdkafka property can be passed through
//! ([`KafkaConfig::properties`]: TLS, SASL, timeouts), so the same code runs against a managed
//! cluster; Strata only fixes what correctness needs (no auto commit, no auto offset store,
//! `enable.idempotence`, `acks=all`, `isolation.level=read_committed`). Properties may come from
//! a properties file ([`KafkaPropertiesFile`], `--kafka-config`) and are layered with the other
//! places settings come from by [`KafkaLayers`].

mod config;
mod producer_slot;
mod properties;
mod sink;
mod source;

pub(crate) use config::Role;
pub use config::{KafkaConfig, partitions_of};
pub use producer_slot::ProducerSlot;
pub use properties::{
    FileProperty, KafkaLayers, KafkaPropertiesFile, is_secret_property, redacted,
};
pub use sink::{KafkaSink, OutRecord};
pub(crate) use source::is_transient;
pub use source::{Assignment, GroupHandle, KafkaSource, Positions, group_offsets};
