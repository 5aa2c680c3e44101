//! Connection settings shared by the consumer and the producer, and topic checks that turn
//! librdkafka's silent retries into clear errors.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{ConnectorError, Result};

/// Where the cluster is and how to talk to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`, …),
    /// applied last so they can override Strata's defaults except the correctness ones.
    pub properties: BTreeMap<String, String>,
    /// How long to wait for the cluster's metadata before calling it unreachable.
    pub metadata_timeout: Duration,
}

impl KafkaConfig {
    /// Brokers with default settings.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            properties: BTreeMap::new(),
            metadata_timeout: Duration::from_secs(10),
        }
    }

    /// A librdkafka config with the brokers and the pass-through properties.
    pub(crate) fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    pub(crate) fn kafka_error(&self, topic: &str, e: KafkaError) -> ConnectorError {
        let hint = match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed,
            ) => "check the credentials / ACLs passed with -X (sasl.*, ssl.*)",
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                "create the topic first (Strata does not auto-create topics)"
            }
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::MessageTimedOut,
            ) => "is the broker reachable at the configured address?",
            _ => "see the librdkafka error",
        };
        ConnectorError::Kafka {
            brokers: self.brokers.clone(),
            topic: topic.to_string(),
            message: e.to_string(),
            hint,
        }
    }
}

/// The partitions of `topic`, or a clear error when the cluster is unreachable, the topic does
/// not exist or access is denied.
pub fn partitions_of(config: &KafkaConfig, topic: &str) -> Result<Vec<i32>> {
    let consumer: BaseConsumer = config
        .client_config()
        .create()
        .map_err(|e| config.kafka_error(topic, e))?;
    let metadata = consumer
        .fetch_metadata(Some(topic), config.metadata_timeout)
        .map_err(|e| config.kafka_error(topic, e))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(ConnectorError::Kafka {
            brokers: config.brokers.clone(),
            topic: topic.to_string(),
            message: "the cluster returned no metadata for it".into(),
            hint: "create the topic first (Strata does not auto-create topics)",
        });
    };
    if let Some(err) = t.error() {
        let code = RDKafkaErrorCode::from(err);
        return Err(config.kafka_error(topic, KafkaError::MetadataFetch(code)));
    }
    if t.partitions().is_empty() {
        return Err(ConnectorError::Kafka {
            brokers: config.brokers.clone(),
            topic: topic.to_string(),
            message: "the topic does not exist (no partitions)".into(),
            hint: "create the topic first (Strata does not auto-create topics)",
        });
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    ids.sort_unstable();
    Ok(ids)
}
