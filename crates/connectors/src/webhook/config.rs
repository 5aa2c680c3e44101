//! The YAML config of the webhook receiver: where to listen, the Kafka cluster, and one entry
//! per source (`POST /webhooks/{source}`) with its authenticity checks and limits. Secrets are
//! named by environment variable and resolved at start-up (a missing one is a config error).
//!
//! ```yaml
//! listen: 0.0.0.0:8080
//! kafka: { brokers: 127.0.0.1:9092 }
//! dead_letter_topic: webhooks.dead_letter
//! sources:
//!   pipefy:
//!     preset: pipefy                       # signature header, key, accepted actions
//!     topic: raw.pipefy.events
//!     hmac: { secret_env: PIPEFY_WEBHOOK_SECRET }
//!     secret_header: { name: X-Strata-Token, value_env: PIPEFY_SHARED_TOKEN }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{ConnectorError, Result};
use crate::http::auth::{Secret, env_secret};
use crate::json_path;

/// The receiver's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `host:port` to listen on (default `127.0.0.1:8080`).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The Kafka cluster.
    pub kafka: KafkaCluster,
    /// Topic for authentic requests that cannot be stored as events (malformed JSON, an
    /// action not accepted), raw body + reason headers.
    pub dead_letter_topic: String,
    /// How long a request waits for the broker's acknowledgement before answering 503
    /// (default 5000 ms).
    #[serde(default)]
    pub ack_timeout_ms: Option<u64>,
    /// `Retry-After` seconds sent with a 503 (default 5).
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    /// Requests waiting on Kafka at once; more are answered 503 at once (default 4096).
    #[serde(default)]
    pub max_in_flight: Option<usize>,
    /// Connections open at once; more are closed on accept, so slow or idle clients cannot
    /// crowd out real senders (default 1024).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Longest wait for a request's headers, also between keep-alive requests (default 10 s).
    #[serde(default)]
    pub header_timeout_ms: Option<u64>,
    /// The sources, by the name in the path.
    pub sources: BTreeMap<String, SourceConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// The Kafka cluster.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaCluster {
    /// Bootstrap servers.
    pub brokers: String,
    /// Extra librdkafka properties.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Secret-looking property values show as `***`.
impl std::fmt::Debug for KafkaCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaCluster")
            .field("brokers", &self.brokers)
            .field("properties", &crate::kafka::redacted(&self.properties))
            .finish()
    }
}

/// One webhook source as written in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A vendor preset (`pipefy`).
    #[serde(default)]
    pub preset: Option<String>,
    /// Topic of the events.
    #[serde(default)]
    pub topic: String,
    /// A shared secret the sender puts in a header.
    #[serde(default)]
    pub secret_header: Option<SecretHeaderConfig>,
    /// An HMAC-SHA256 signature of the body.
    #[serde(default)]
    pub hmac: Option<HmacConfig>,
    /// A timestamp header checked against the clock.
    #[serde(default)]
    pub timestamp: Option<TimestampConfig>,
    /// Largest body accepted (default 1 MiB).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Accepted content types (default `application/json`); parameters such as `charset`
    /// are ignored.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// Header carrying the sender's idempotency key (absent or missing: SHA-256 of the body).
    #[serde(default)]
    pub idempotency_header: Option<String>,
    /// Event field used as the Kafka key (absent: the idempotency key).
    #[serde(default)]
    pub key: Option<String>,
    /// Event field naming the event type (recorded; checked against `accepted_events`).
    #[serde(default)]
    pub event_type: Option<String>,
    /// Event types stored as events; others go to the dead-letter topic (empty: all).
    #[serde(default)]
    pub accepted_events: Vec<String>,
}

/// A shared-secret header.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretHeaderConfig {
    /// Header name.
    pub name: String,
    /// Variable holding the expected value.
    pub value_env: String,
}

/// HMAC-SHA256 signature settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// Header with the signature (a preset may fill it).
    #[serde(default)]
    pub header: Option<String>,
    /// Variable holding the signing secret.
    pub secret_env: String,
    /// `hex` (default) or `base64`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// A prefix before the signature (`sha256=`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// What is signed: `body` (default) or `timestamp.body` (`<timestamp>.<body>`, which binds
    /// the timestamp so a replay cannot refresh it).
    #[serde(default)]
    pub signed: Option<String>,
}

/// Timestamp tolerance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    /// Header with the send time in epoch seconds.
    pub header: String,
    /// Largest accepted distance from the receiver's clock.
    pub tolerance_secs: u64,
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureEncoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// A source ready to serve: secrets resolved, preset applied.
#[derive(Debug, Clone)]
pub struct Source {
    /// Name (the path segment).
    pub name: String,
    /// Events topic.
    pub topic: String,
    /// Shared-secret header name and value.
    pub secret_header: Option<(String, Secret)>,
    /// HMAC header, secret, encoding, prefix, and whether the timestamp is signed.
    pub hmac: Option<HmacCheck>,
    /// Timestamp header and tolerance.
    pub timestamp: Option<(String, Duration)>,
    /// Body limit.
    pub max_body_bytes: usize,
    /// Accepted content types, lower case.
    pub content_types: Vec<String>,
    /// Idempotency header.
    pub idempotency_header: Option<String>,
    /// Key field.
    pub key: Option<String>,
    /// Event type field.
    pub event_type: Option<String>,
    /// Accepted event types (empty: all).
    pub accepted_events: Vec<String>,
}

/// A resolved HMAC check.
#[derive(Debug, Clone)]
pub struct HmacCheck {
    /// Header with the signature.
    pub header: String,
    /// The signing secret.
    pub secret: Secret,
    /// How the signature is written.
    pub encoding: SignatureEncoding,
    /// Prefix before the signature.
    pub prefix: String,
    /// `<timestamp>.<body>` is signed instead of the body.
    pub signs_timestamp: bool,
}

impl WebhookConfig {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConnectorError::ApiConfig {
            what: "webhook receiver",
            file: file.clone(),
            problems: vec![format!("cannot read: {e}")],
        })?;
        serde_yaml_ng::from_str(&text).map_err(|e| ConnectorError::ApiConfig {
            what: "webhook receiver",
            file,
            problems: vec![e.to_string()],
        })
    }

    /// Acknowledgement timeout.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms.unwrap_or(5000))
    }

    /// The accept loop's bounds.
    pub fn serve_limits(&self) -> crate::http_serve::ServeLimits {
        let d = crate::http_serve::ServeLimits::default();
        crate::http_serve::ServeLimits {
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            header_timeout: self
                .header_timeout_ms
                .map_or(d.header_timeout, Duration::from_millis),
            drain_timeout: d.drain_timeout,
        }
    }

    /// Requests that may wait on Kafka at once (default 4,096); more are answered 503.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.unwrap_or(4096)
    }

    /// Applies presets, resolves secrets and checks everything; every problem is listed.
    pub fn resolve(&self, file: &str) -> Result<Vec<Source>> {
        let mut problems = Vec::new();
        if self.sources.is_empty() {
            problems.push("sources: at least one source is needed".into());
        }
        if self.dead_letter_topic.is_empty() {
            problems.push("dead_letter_topic: must not be empty".into());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!("listen: `{}` is not host:port", self.listen));
        }
        let mut sources = Vec::new();
        for (name, raw) in &self.sources {
            if let Some(s) = resolve_source(name, raw, &mut problems) {
                sources.push(s);
            }
        }
        if problems.is_empty() {
            Ok(sources)
        } else {
            Err(ConnectorError::ApiConfig {
                what: "webhook receiver",
                file: file.to_string(),
                problems,
            })
        }
    }
}

/// Pipefy: signs the body with HMAC-SHA256 in `X-Pipefy-Signature` (hex); the event is under
/// `data`, `data.action` names it, a card's events share the key `data.card.id`.
fn apply_pipefy(s: &mut SourceConfig) {
    if let Some(h) = s.hmac.as_mut() {
        h.header.get_or_insert_with(|| "X-Pipefy-Signature".into());
    }
    s.key.get_or_insert_with(|| "data.card.id".into());
    s.event_type.get_or_insert_with(|| "data.action".into());
    if s.accepted_events.is_empty() {
        s.accepted_events = [
            "card.create",
            "card.move",
            "card.field_update",
            "card.done",
            "card.delete",
        ]
        .map(String::from)
        .to_vec();
    }
}

fn resolve_source(name: &str, raw: &SourceConfig, problems: &mut Vec<String>) -> Option<Source> {
    let at = |field: &str| format!("sources.{name}.{field}");
    let mut c = raw.clone();
    match c.preset.as_deref() {
        None => {}
        Some("pipefy") => apply_pipefy(&mut c),
        Some(other) => problems.push(format!(
            "{}: unknown preset `{other}` (known: pipefy)",
            at("preset")
        )),
    }
    let before = problems.len();
    if name.is_empty()
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
    {
        problems.push(format!(
            "sources.{name}: a name is letters, digits, `-`, `_`, `.`"
        ));
    }
    if c.topic.is_empty() {
        problems.push(format!("{}: required", at("topic")));
    }
    if c.secret_header.is_none() && c.hmac.is_none() {
        problems.push(format!(
            "sources.{name}: no authenticity check — set `hmac` and/or `secret_header` \
             (an open endpoint would store anyone's events)"
        ));
    }
    let secret = |env: &str, field: &str, problems: &mut Vec<String>| match env_secret(env) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.push(format!("{}: {e}", at(field)));
            None
        }
    };
    let secret_header = c.secret_header.as_ref().and_then(|h| {
        secret(&h.value_env, "secret_header.value_env", problems).map(|s| (h.name.clone(), s))
    });
    let hmac = c.hmac.as_ref().and_then(|h| {
        let header = h.header.clone().or_else(|| {
            problems.push(format!("{}: required (or a preset)", at("hmac.header")));
            None
        })?;
        let encoding = match h.encoding.as_deref() {
            None | Some("hex") => SignatureEncoding::Hex,
            Some("base64") => SignatureEncoding::Base64,
            Some(o) => {
                problems.push(format!("{}: `{o}` (hex or base64)", at("hmac.encoding")));
                SignatureEncoding::Hex
            }
        };
        let signs_timestamp = match h.signed.as_deref() {
            None | Some("body") => false,
            Some("timestamp.body") => true,
            Some(o) => {
                problems.push(format!(
                    "{}: `{o}` (body or timestamp.body)",
                    at("hmac.signed")
                ));
                false
            }
        };
        if !signs_timestamp && c.timestamp.is_some() {
            problems.push(format!(
                "{}: the timestamp is not signed, so a replayer just sends a fresh one and the \
                 tolerance protects nothing: set `hmac.signed: timestamp.body` (if the sender \
                 signs `<timestamp>.<body>`), or remove `timestamp` (exact replays are then \
                 caught by the receiver's replay memory)",
                at("timestamp")
            ));
        }
        if signs_timestamp && c.timestamp.is_none() {
            problems.push(format!(
                "{}: timestamp.body needs a `timestamp` section",
                at("hmac.signed")
            ));
        }
        let secret = secret(&h.secret_env, "hmac.secret_env", problems)?;
        Some(HmacCheck {
            header,
            secret,
            encoding,
            prefix: h.prefix.clone().unwrap_or_default(),
            signs_timestamp,
        })
    });
    if c.timestamp.is_some() && c.hmac.is_none() {
        problems.push(format!(
            "{}: without `hmac` nothing signs the timestamp, so it cannot stop replays: sign it \
             (`hmac.signed: timestamp.body`) or remove it",
            at("timestamp")
        ));
    }
    for (field, path) in [("key", &c.key), ("event_type", &c.event_type)] {
        if let Some(p) = path
            && !json_path::is_valid(p)
        {
            problems.push(format!("{}: `{p}` has an empty segment", at(field)));
        }
    }
    if !c.accepted_events.is_empty() && c.event_type.is_none() {
        problems.push(format!("{}: needs `event_type`", at("accepted_events")));
    }
    if problems.len() > before {
        return None;
    }
    let content_types = if c.content_types.is_empty() {
        vec!["application/json".to_string()]
    } else {
        c.content_types
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .collect()
    };
    Some(Source {
        name: name.to_string(),
        topic: c.topic.clone(),
        secret_header,
        hmac,
        timestamp: c
            .timestamp
            .as_ref()
            .map(|t| (t.header.clone(), Duration::from_secs(t.tolerance_secs))),
        max_body_bytes: c.max_body_bytes.unwrap_or(1 << 20),
        content_types,
        idempotency_header: c.idempotency_header.clone(),
        key: c.key.clone(),
        event_type: c.event_type.clone(),
        accepted_events: c.accepted_events.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> WebhookConfig {
        serde_yaml_ng::from_str(yaml).expect("yaml")
    }

    #[test]
    fn the_pipefy_preset_fills_header_key_and_actions() {
        // SAFETY of the test: the variable name is unique to this test.
        unsafe { std::env::set_var("STRATA_TEST_PIPEFY_SECRET_1", "s3cret") };
        let c = config(
            "kafka: {brokers: b}\ndead_letter_topic: dlq\nsources:\n  pipefy:\n    \
             preset: pipefy\n    topic: raw.pipefy\n    hmac: {secret_env: STRATA_TEST_PIPEFY_SECRET_1}\n",
        );
        let s = c.resolve("w.yaml").expect("valid");
        let p = &s[0];
        assert_eq!(
            p.hmac.as_ref().map(|h| h.header.as_str()),
            Some("X-Pipefy-Signature")
        );
        assert_eq!(p.key.as_deref(), Some("data.card.id"));
        assert_eq!(p.accepted_events.len(), 5);
        assert_eq!(p.content_types, vec!["application/json"]);
    }

    #[test]
    fn a_missing_secret_names_the_config_file_the_field_and_the_variable() {
        let c = config(
            "kafka: {brokers: b}\ndead_letter_topic: dlq\nsources:\n  pipefy:\n    \
             preset: pipefy\n    topic: raw.pipefy\n    \
             hmac: {secret_env: STRATA_SURELY_UNSET_HMAC}\n    \
             secret_header: {name: X-Token, value_env: STRATA_SURELY_UNSET_TOKEN}\n",
        );
        let err = c.resolve("conf/webhooks.yaml").expect_err("unset");
        assert!(
            matches!(&err, ConnectorError::ApiConfig { file, .. } if file == "conf/webhooks.yaml"),
            "{err:?}"
        );
        let text = err.to_string();
        for needle in [
            "invalid webhook receiver config `conf/webhooks.yaml`",
            "sources.pipefy.hmac.secret_env: environment variable STRATA_SURELY_UNSET_HMAC is not set",
            "sources.pipefy.secret_header.value_env: environment variable \
             STRATA_SURELY_UNSET_TOKEN is not set",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in {text}");
        }
    }

    #[test]
    fn an_unsigned_timestamp_check_is_refused() {
        let c = config(
            "kafka: {brokers: b}\ndead_letter_topic: dlq\nsources:\n  a:\n    topic: t\n    \
             hmac: {header: X-Sig, secret_env: PATH}\n    \
             timestamp: {header: X-Ts, tolerance_secs: 300}\n  b:\n    topic: t\n    \
             secret_header: {name: X-Token, value_env: PATH}\n    \
             timestamp: {header: X-Ts, tolerance_secs: 300}\n",
        );
        let err = c.resolve("w.yaml").expect_err("refused").to_string();
        assert!(
            err.contains("sources.a.timestamp: the timestamp is not signed"),
            "{err}"
        );
        assert!(err.contains("sources.b.timestamp: without `hmac`"), "{err}");
    }

    #[test]
    fn every_problem_is_listed() {
        let c = config(
            "listen: nowhere\nkafka: {brokers: b}\ndead_letter_topic: ''\nsources:\n  \
             'bad name':\n    topic: ''\n  open:\n    topic: t\n  nosecret:\n    topic: t\n    \
             hmac: {header: X-Sig, secret_env: STRATA_SURELY_UNSET_VAR, encoding: rot13}\n",
        );
        let text = c.resolve("w.yaml").expect_err("invalid").to_string();
        for needle in [
            "listen: `nowhere`",
            "dead_letter_topic",
            "sources.bad name: a name is",
            "sources.open: no authenticity check",
            "STRATA_SURELY_UNSET_VAR is not set",
            "hmac.encoding: `rot13`",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in {text}");
        }
    }
}
