//! Connection settings shared by the consumer and the producer, and topic checks that turn
//! librdkafka's silent retries into clear errors. `Debug` output and errors never show the value
//! of a secret-looking property ([`super::is_secret_property`]): not even librdkafka's own
//! "invalid property" errors, which repeat the value.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::{ConnectorError, Result};

/// Where the cluster is and how to talk to it. `Debug` hides secret property values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`.
    pub brokers: String,
    /// Extra librdkafka properties (`security.protocol`, `sasl.mechanism`, `ssl.ca.location`, …),
    /// applied last so they can override Strata's defaults except the correctness ones.
    pub properties: BTreeMap<String, String>,
    /// How long to wait for the cluster's metadata before calling it unreachable.
    pub metadata_timeout: Duration,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &crate::secret::redact_url(&self.brokers))
            .field("properties", &super::properties::redacted(&self.properties))
            .field("metadata_timeout", &self.metadata_timeout)
            .finish()
    }
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

    /// Brokers and librdkafka properties whose values may be `${env:NAME}` (secrets stay out of
    /// config files and command lines); the result is [`KafkaConfig::check`]ed.
    pub fn from_profile(
        brokers: &str,
        properties: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut config = KafkaConfig::new(expand_env("brokers", brokers)?);
        for (key, value) in properties {
            let value = expand_env(&key, &value)?;
            config.properties.insert(key, value);
        }
        config.check()?;
        Ok(config)
    }

    /// Refuses a user property that contradicts a setting exactly-once depends on, naming it.
    /// Strata forces these on every client it opens, after the user's properties.
    pub fn check(&self) -> Result<()> {
        for (key, value) in &self.properties {
            if let Some(e) = forced_violation(key, value) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// A librdkafka config: the brokers, then `defaults` (which users may override), then the
    /// user's properties, then the correctness settings of `role` (which they may not).
    pub(crate) fn client_config_for(&self, role: Role, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers);
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        for (key, allowed, _) in FORCED.iter().filter(|(k, _, _)| role.forces(k)) {
            c.set(*key, allowed[0]);
        }
        c
    }

    /// A librdkafka config with the brokers and the pass-through properties (metadata clients).
    pub(crate) fn client_config(&self) -> ClientConfig {
        self.client_config_for(Role::Metadata, &[])
    }

    pub(crate) fn kafka_error(&self, topic: &str, e: KafkaError) -> ConnectorError {
        let hint = match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed,
            ) => {
                "check the credentials / ACLs passed with -X (sasl.*, ssl.*; values may be ${env:NAME})"
            }
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
        let message = match e {
            // rdkafka's text ends with the property's value: never show a secret one (an
            // unknown key may be a misspelt secret one too).
            KafkaError::ClientConfig(_, description, key, value) => {
                let unknown = description.starts_with("No such configuration property");
                let description = if !value.is_empty()
                    && (unknown || super::properties::is_secret_property(&key))
                {
                    description.replace(&value, "***")
                } else {
                    description
                };
                format!("client config error for property `{key}`: {description}")
            }
            e => e.to_string(),
        };
        ConnectorError::Kafka {
            brokers: self.brokers.clone(),
            topic: topic.to_string(),
            message,
            hint,
        }
    }
}

/// The refusal of `key=value` when it contradicts a setting exactly-once depends on.
pub(crate) fn forced_violation(key: &str, value: &str) -> Option<ConnectorError> {
    let (_, allowed, why) = FORCED.iter().find(|(k, _, _)| *k == key)?;
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim())) {
        return None;
    }
    Some(ConnectorError::KafkaProperty {
        key: key.to_string(),
        value: value.to_string(),
        required: allowed[0],
        why,
    })
}

/// What a client is for: which forced settings apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Reads records; its offsets are committed by Strata, after the output.
    Consumer,
    /// Writes records; every write must be acknowledged by all in-sync replicas, once.
    Producer,
    /// Reads metadata only.
    Metadata,
}

impl Role {
    fn forces(self, key: &str) -> bool {
        match self {
            Role::Consumer => CONSUMER_FORCED.contains(&key),
            Role::Producer => PRODUCER_FORCED.contains(&key),
            Role::Metadata => false,
        }
    }
}

/// Settings exactly-once depends on: (key, accepted values — the first is what Strata sets, why).
const FORCED: [(&str, &[&str], &str); 5] = [
    (
        "enable.auto.commit",
        &["false"],
        "offsets are committed by Strata after the output is durable; an automatic commit would skip records after a crash",
    ),
    (
        "enable.auto.offset.store",
        &["false"],
        "offsets are stored by Strata after the output is durable",
    ),
    (
        "isolation.level",
        &["read_committed"],
        "records of aborted transactions must not be read",
    ),
    (
        "enable.idempotence",
        &["true"],
        "a retried send must not write a record twice",
    ),
    (
        "acks",
        &["all", "-1"],
        "a record counts as written only once every in-sync replica has it",
    ),
];
const CONSUMER_FORCED: [&str; 3] = [
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
];
const PRODUCER_FORCED: [&str; 2] = ["enable.idempotence", "acks"];

/// Replaces `${env:NAME}` in `value` with the variable's value. Errors name the variable, never
/// the value.
pub(crate) fn expand_env(key: &str, value: &str) -> Result<String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let Some(end) = after.find('}') else {
            // Only the name-like start: the rest of the value may be a secret.
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            return Err(ConnectorError::KafkaEnv {
                key: key.to_string(),
                variable: name,
                problem: "is not closed with `}`",
            });
        };
        let name = &after[..end];
        match std::env::var(name) {
            Ok(v) => out.push_str(&v),
            Err(_) => {
                return Err(ConnectorError::KafkaEnv {
                    key: key.to_string(),
                    variable: name.to_string(),
                    problem: "is not set",
                });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_property_that_breaks_exactly_once_is_refused_naming_it() {
        for (key, value) in [
            ("enable.auto.commit", "true"),
            ("isolation.level", "read_uncommitted"),
            ("acks", "1"),
            ("enable.idempotence", "false"),
        ] {
            let e = KafkaConfig::from_profile("b:9092", [(key.to_string(), value.to_string())])
                .expect_err(key);
            assert!(e.to_string().contains(key), "{e}");
        }
        // Harmless repeats of the forced values are accepted.
        KafkaConfig::from_profile("b:9092", [("acks".to_string(), "-1".to_string())])
            .expect("acks=-1 means all");
    }

    #[test]
    fn forced_settings_win_over_user_properties_and_defaults_do_not() {
        let mut config = KafkaConfig::new("b:9092");
        config
            .properties
            .insert("enable.auto.commit".into(), "true".into());
        config.properties.insert("linger.ms".into(), "50".into());
        let c = config.client_config_for(Role::Consumer, &[("linger.ms", "5")]);
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("isolation.level"), Some("read_committed"));
        assert_eq!(c.get("linger.ms"), Some("50"));
        let p = config.client_config_for(Role::Producer, &[]);
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn librdkafka_config_errors_never_show_a_secret_value() {
        // A misspelt secret key: librdkafka refuses it, and rdkafka's text would end with it.
        let mut config = KafkaConfig::new("127.0.0.1:9");
        config
            .properties
            .insert("sasl.pasword".into(), "hunter2".into());
        let e = partitions_of(&config, "t").expect_err("unknown property");
        let text = format!("{e} {e:?}");
        assert!(
            text.contains("sasl.pasword") && !text.contains("hunter2"),
            "{text}"
        );
        // A value that is not secret is still shown, so the user sees what is wrong.
        let mut config = KafkaConfig::new("127.0.0.1:9");
        config
            .properties
            .insert("security.protocol".into(), "plaintextt".into());
        let e = partitions_of(&config, "t").expect_err("invalid value");
        assert!(e.to_string().contains("plaintextt"), "{e}");
    }

    #[test]
    fn an_unclosed_env_reference_names_only_the_variable() {
        let e = KafkaConfig::from_profile(
            "b:9092",
            [(
                "sasl.password".to_string(),
                "${env:KAFKA_PW hunter2".to_string(),
            )],
        )
        .expect_err("unclosed")
        .to_string();
        assert!(e.contains("KAFKA_PW") && !e.contains("hunter2"), "{e}");
    }

    #[test]
    fn env_references_are_expanded_and_a_missing_one_is_named() {
        // SAFETY of the test: the variable name is unique to this test.
        unsafe { std::env::set_var("STRATA_TEST_KAFKA_SECRET_1", "s3cret") };
        let c = KafkaConfig::from_profile(
            "b:9092",
            [(
                "sasl.password".to_string(),
                "${env:STRATA_TEST_KAFKA_SECRET_1}".to_string(),
            )],
        )
        .expect("expanded");
        assert_eq!(c.properties["sasl.password"], "s3cret");
        let e = KafkaConfig::from_profile(
            "b:9092",
            [(
                "sasl.password".to_string(),
                "${env:STRATA_TEST_KAFKA_NOT_SET}".to_string(),
            )],
        )
        .expect_err("missing");
        let text = e.to_string();
        assert!(
            text.contains("sasl.password") && text.contains("STRATA_TEST_KAFKA_NOT_SET"),
            "{text}"
        );
    }
}
