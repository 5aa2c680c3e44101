//! REST client for a Confluent-compatible Schema Registry.
//!
//! Speaks `application/vnd.schemaregistry.v1+json`, optionally with HTTP basic auth (Confluent
//! Cloud: API key + secret) or a bearer token, sent with every request (reads and writes). Schemas fetched by id and ids of registered schemas are cached in
//! memory (ids are immutable in a registry), so a decoder asks the registry once per writer
//! schema. Every registry refusal becomes [`ConnectorError::Registry`] with the HTTP status, the
//! registry's `error_code` and `message`; network failures are
//! [`ConnectorError::RegistryUnreachable`] (retryable).
//!
//! Writers call [`RegistryClient::ensure_registered`]: it returns the id of a schema already
//! registered under the subject, and otherwise checks compatibility with the latest version
//! first, so an incompatible schema is refused with the subject, the level and the reasons —
//! before anything is produced with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value as Json, json};

use super::compat::CompatibilityLevel;
use crate::avro::decode::WriterSchema;
use crate::secret::{Secret, redact_url};
use crate::{ConnectorError, Result};

/// The Schema Registry content type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Where the registry is and how to authenticate. `Debug` shows the URL redacted and never the
/// password or the token. Basic auth and a bearer token exclude each other (one
/// `Authorization` header): [`RegistryClient::new`] refuses both.
#[derive(Clone)]
pub struct RegistryConfig {
    /// Base URL, e.g. `http://127.0.0.1:8081` or `https://psrc-xxxx.confluent.cloud`.
    pub url: String,
    /// Basic-auth user (Confluent Cloud: the API key).
    pub username: Option<String>,
    /// Basic-auth password (Confluent Cloud: the API secret).
    pub password: Option<Secret>,
    /// Bearer token (`Authorization: Bearer …`).
    pub token: Option<Secret>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl RegistryConfig {
    /// A registry at `url`, no auth, 30 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RegistryConfig {
            url: url.into(),
            username: None,
            password: None,
            token: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// Adds basic auth.
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = Some(user.into());
        self.password = Some(Secret::new(password));
        self
    }

    /// Adds a bearer token.
    pub fn with_bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret::new(token));
        self
    }
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How a topic maps to a subject (Confluent's `subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `{topic}-value` / `{topic}-key` (Confluent's default).
    #[default]
    TopicName,
    /// The record's full name.
    RecordName,
    /// `{topic}-{record full name}`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    /// The subject for `topic`'s values (or keys) whose record full name is `record`.
    ///
    /// ```
    /// use strata_connectors::registry::SubjectNameStrategy;
    /// assert_eq!(SubjectNameStrategy::TopicName.subject("iot", false, "strata.iot_events"), "iot-value");
    /// assert_eq!(SubjectNameStrategy::TopicName.subject("iot", true, "k"), "iot-key");
    /// assert_eq!(SubjectNameStrategy::TopicRecordName.subject("iot", false, "strata.e"), "iot-strata.e");
    /// ```
    pub fn subject(self, topic: &str, key: bool, record: &str) -> String {
        match self {
            SubjectNameStrategy::TopicName => {
                format!("{topic}-{}", if key { "key" } else { "value" })
            }
            SubjectNameStrategy::RecordName => record.to_string(),
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{record}"),
        }
    }
}

/// One version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    /// Subject name.
    pub subject: String,
    /// Version number (1-based).
    pub version: u32,
    /// Global schema id.
    pub id: u32,
    /// Schema text.
    pub schema: String,
}

/// The answer of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompatibilityReport {
    /// True when the schema may be registered.
    pub is_compatible: bool,
    /// Reasons given by the registry (when it gives any).
    pub messages: Vec<String>,
}

#[derive(Debug, Default)]
struct Cache {
    by_id: HashMap<u32, Arc<WriterSchema>>,
    ids: HashMap<(String, String), u32>,
}

/// A Confluent Schema Registry client with an id ↔ schema cache.
#[derive(Debug)]
pub struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    config: RegistryConfig,
    cache: Mutex<Cache>,
}

impl RegistryClient {
    /// A client for `config`; fails on a malformed URL, or on basic auth and a token together.
    pub fn new(config: RegistryConfig) -> Result<Self> {
        if config.username.is_some() && config.token.is_some() {
            return Err(ConnectorError::Registry {
                operation: format!("connect to `{}`", redact_url(&config.url)),
                status: 0,
                error_code: 0,
                message: "both basic auth (a user) and a bearer token are set".into(),
                hint: "give either --registry-user / --registry-password or --registry-token",
            });
        }
        let base = Url::parse(&config.url).map_err(|e| ConnectorError::Registry {
            operation: format!("connect to `{}`", redact_url(&config.url)),
            status: 0,
            error_code: 0,
            message: format!("not a valid URL: {e}"),
            hint: "give the registry URL as http(s)://host:port",
        })?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| ConnectorError::RegistryUnreachable {
                url: redact_url(&config.url),
                operation: "build the HTTP client".into(),
                source: e,
                hint: "TLS setup failed",
            })?;
        Ok(RegistryClient {
            http,
            base,
            config,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// A client for `url` without auth.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::new(RegistryConfig::new(url))
    }

    /// The registry's base URL.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding the lock cannot leave the maps inconsistent (single inserts).
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn url_for(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// One request; `Ok(None)` when the status is 404 and `allow_404` (for lookups).
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<Json>,
        operation: &str,
    ) -> Result<Json> {
        let url = self.url_for(segments, query);
        let mut req = self
            .http
            .request(method, url.clone())
            .header(reqwest::header::ACCEPT, CONTENT_TYPE);
        if let Some(user) = &self.config.username {
            req = req.basic_auth(user, self.config.password.as_ref().map(Secret::expose));
        } else if let Some(token) = &self.config.token {
            req = req.bearer_auth(token.expose());
        }
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(body.to_string());
        }
        let unreachable = |e: reqwest::Error| ConnectorError::RegistryUnreachable {
            url: redact_url(url.as_str()),
            operation: operation.to_string(),
            // reqwest's message repeats the URL, credentials and all.
            source: e.without_url(),
            hint: "check the registry URL and that it is running; retrying may help",
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(unreachable)?;
        let parsed: Option<Json> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return parsed.ok_or_else(|| ConnectorError::Registry {
                operation: operation.to_string(),
                status: status.as_u16(),
                error_code: 0,
                message: format!(
                    "the answer is not JSON: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ),
                hint: "the URL does not point at a Schema Registry",
            });
        }
        let (error_code, message) = match &parsed {
            Some(j) => (
                j.get("error_code")
                    .and_then(Json::as_i64)
                    .unwrap_or(i64::from(status.as_u16())),
                j.get("message")
                    .and_then(Json::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| j.to_string()),
            ),
            None => (
                i64::from(status.as_u16()),
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            ),
        };
        Err(ConnectorError::Registry {
            operation: operation.to_string(),
            status: status.as_u16(),
            error_code,
            message,
            hint: hint_for(status, error_code),
        })
    }

    /// Registers `schema` (Avro JSON text) under `subject`; returns its global id. The registry
    /// itself enforces the subject's compatibility level (409 when incompatible). Prefer
    /// [`Self::ensure_registered`].
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32> {
        if let Some(id) = self
            .cache()
            .ids
            .get(&(subject.to_string(), schema.to_string()))
        {
            return Ok(*id);
        }
        let op = format!("register a schema under subject `{subject}`");
        let res = self
            .call(
                Method::POST,
                &["subjects", subject, "versions"],
                &[],
                Some(json!({"schema": schema, "schemaType": "AVRO"})),
                &op,
            )
            .await;
        let res = match res {
            Err(ConnectorError::Registry {
                status: 409,
                message,
                ..
            }) => {
                let level = self
                    .compatibility(Some(subject))
                    .await
                    .map(|l| l.to_string())
                    .unwrap_or_else(|_| "the configured".into());
                return Err(ConnectorError::SchemaIncompatible {
                    subject: subject.to_string(),
                    level,
                    reasons: message,
                });
            }
            other => other?,
        };
        let id = id_of(&res, &op)?;
        self.cache()
            .ids
            .insert((subject.to_string(), schema.to_string()), id);
        Ok(id)
    }

    /// The version of `subject` holding `schema`, if registered there (`POST /subjects/{s}`).
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<SubjectVersion>> {
        let op = format!("look up a schema under subject `{subject}`");
        match self
            .call(
                Method::POST,
                &["subjects", subject],
                &[],
                Some(json!({"schema": schema, "schemaType": "AVRO"})),
                &op,
            )
            .await
        {
            Ok(j) => {
                let v = subject_version(&j, subject, &op)?;
                self.cache()
                    .ids
                    .insert((subject.to_string(), schema.to_string()), v.id);
                Ok(Some(v))
            }
            Err(ConnectorError::Registry {
                error_code: 40401 | 40403,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The schema with global id `id` (`GET /schemas/ids/{id}`), cached.
    pub async fn schema_by_id(&self, id: u32) -> Result<Arc<WriterSchema>> {
        if let Some(s) = self.cache().by_id.get(&id) {
            return Ok(Arc::clone(s));
        }
        let op = format!("get the schema with id {id}");
        let id_text = id.to_string();
        let j = self
            .call(Method::GET, &["schemas", "ids", &id_text], &[], None, &op)
            .await?;
        if let Some(t) = j.get("schemaType").and_then(Json::as_str)
            && t != "AVRO"
        {
            return Err(ConnectorError::Registry {
                operation: op,
                status: 200,
                error_code: 0,
                message: format!("schema {id} is a {t} schema"),
                hint: "only AVRO schemas can be decoded",
            });
        }
        let text = j
            .get("schema")
            .and_then(Json::as_str)
            .ok_or_else(|| missing(&op, "schema"))?;
        let writer = Arc::new(WriterSchema::parse(id, text)?);
        self.cache().by_id.insert(id, Arc::clone(&writer));
        Ok(writer)
    }

    /// The latest version of `subject`, or `None` when the subject does not exist.
    pub async fn latest_version(&self, subject: &str) -> Result<Option<SubjectVersion>> {
        let op = format!("get the latest version of subject `{subject}`");
        match self
            .call(
                Method::GET,
                &["subjects", subject, "versions", "latest"],
                &[],
                None,
                &op,
            )
            .await
        {
            Ok(j) => Ok(Some(subject_version(&j, subject, &op)?)),
            Err(ConnectorError::Registry {
                error_code: 40401 | 40402,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Version `version` of `subject`.
    pub async fn version(&self, subject: &str, version: u32) -> Result<SubjectVersion> {
        let op = format!("get version {version} of subject `{subject}`");
        let v = version.to_string();
        let j = self
            .call(
                Method::GET,
                &["subjects", subject, "versions", &v],
                &[],
                None,
                &op,
            )
            .await?;
        subject_version(&j, subject, &op)
    }

    /// Every (not deleted) subject.
    pub async fn subjects(&self) -> Result<Vec<String>> {
        let op = "list subjects";
        let j = self.call(Method::GET, &["subjects"], &[], None, op).await?;
        serde_json::from_value(j).map_err(|_| missing(op, "a list of subjects"))
    }

    /// The version numbers of `subject`.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>> {
        let op = format!("list versions of subject `{subject}`");
        let j = self
            .call(
                Method::GET,
                &["subjects", subject, "versions"],
                &[],
                None,
                &op,
            )
            .await?;
        serde_json::from_value(j).map_err(|_| missing(&op, "a list of versions"))
    }

    /// Whether `schema` is compatible with `version` of `subject` (`None`: the latest) under
    /// the subject's level. A subject without versions accepts anything.
    pub async fn test_compatibility(
        &self,
        subject: &str,
        schema: &str,
        version: Option<u32>,
    ) -> Result<CompatibilityReport> {
        let v = version.map_or_else(|| "latest".to_string(), |v| v.to_string());
        let op = format!("check compatibility with version {v} of subject `{subject}`");
        let res = self
            .call(
                Method::POST,
                &["compatibility", "subjects", subject, "versions", &v],
                &[("verbose", "true")],
                Some(json!({"schema": schema, "schemaType": "AVRO"})),
                &op,
            )
            .await;
        let j = match res {
            // Older registries answer 404 for a subject without versions: nothing to break.
            Err(ConnectorError::Registry {
                error_code: 40401 | 40402,
                ..
            }) if version.is_none() => {
                return Ok(CompatibilityReport {
                    is_compatible: true,
                    messages: vec![],
                });
            }
            other => other?,
        };
        let is_compatible = j
            .get("is_compatible")
            .and_then(Json::as_bool)
            .ok_or_else(|| missing(&op, "is_compatible"))?;
        let messages = j
            .get("messages")
            .and_then(Json::as_array)
            .map(|m| {
                m.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok(CompatibilityReport {
            is_compatible,
            messages,
        })
    }

    /// The compatibility level of `subject` (falling back to the global one), or the global
    /// level when `subject` is `None`.
    pub async fn compatibility(&self, subject: Option<&str>) -> Result<CompatibilityLevel> {
        let op = match subject {
            Some(s) => format!("get the compatibility level of subject `{s}`"),
            None => "get the global compatibility level".to_string(),
        };
        let j = match subject {
            Some(s) => {
                self.call(
                    Method::GET,
                    &["config", s],
                    &[("defaultToGlobal", "true")],
                    None,
                    &op,
                )
                .await?
            }
            None => self.call(Method::GET, &["config"], &[], None, &op).await?,
        };
        level_of(&j, "compatibilityLevel", &op)
    }

    /// Sets the compatibility level of `subject` (or the global one).
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: CompatibilityLevel,
    ) -> Result<CompatibilityLevel> {
        let op = format!(
            "set the compatibility level of {} to {level}",
            subject.map_or_else(|| "the registry".to_string(), |s| format!("subject `{s}`"))
        );
        let segments: Vec<&str> = match subject {
            Some(s) => vec!["config", s],
            None => vec!["config"],
        };
        let j = self
            .call(
                Method::PUT,
                &segments,
                &[],
                Some(json!({"compatibility": level.as_str()})),
                &op,
            )
            .await?;
        level_of(&j, "compatibility", &op)
    }

    /// Deletes `subject` (soft, or `permanent` after a soft delete); returns the versions.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<u32>> {
        let op = format!("delete subject `{subject}`");
        let q: &[(&str, &str)] = if permanent {
            &[("permanent", "true")]
        } else {
            &[]
        };
        let j = self
            .call(Method::DELETE, &["subjects", subject], q, None, &op)
            .await?;
        self.cache().ids.retain(|(s, _), _| s != subject);
        serde_json::from_value(j).map_err(|_| missing(&op, "a list of versions"))
    }

    /// The id of `schema` under `subject`, registering it when it is new — after checking it
    /// is compatible with the subject's latest version under the subject's level. An
    /// incompatible schema is [`ConnectorError::SchemaIncompatible`] naming the subject, the
    /// level and the reasons; a transitive level is enforced by the registry on registration
    /// and reported the same way.
    pub async fn ensure_registered(&self, subject: &str, schema: &str) -> Result<u32> {
        if let Some(id) = self
            .cache()
            .ids
            .get(&(subject.to_string(), schema.to_string()))
        {
            return Ok(*id);
        }
        if let Some(found) = self.lookup(subject, schema).await? {
            return Ok(found.id);
        }
        let report = self.test_compatibility(subject, schema, None).await?;
        if !report.is_compatible {
            let level = self.compatibility(Some(subject)).await?;
            return Err(ConnectorError::SchemaIncompatible {
                subject: subject.to_string(),
                level: level.to_string(),
                reasons: if report.messages.is_empty() {
                    "the registry gave no details".into()
                } else {
                    report.messages.join("; ")
                },
            });
        }
        self.register(subject, schema).await
    }
}

fn hint_for(status: StatusCode, error_code: i64) -> &'static str {
    match (status.as_u16(), error_code) {
        (_, 40401) => "the subject does not exist: check the topic and the subject name strategy",
        (_, 40402) => "the subject has no such version",
        (_, 40403) => {
            "the registry has no schema with this id: the data was written against another registry"
        }
        (_, 409) => "the schema breaks the subject's compatibility level",
        (_, 42201) => "the registry refused the schema as invalid Avro",
        (_, 42203) => {
            "use one of BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE"
        }
        (401 | 403, _) => {
            "check the registry credentials (basic auth user / password, or the bearer token)"
        }
        (s, _) if s >= 500 => "registry-side failure: retrying may help",
        _ => "see the registry's message",
    }
}

fn missing(op: &str, what: &str) -> ConnectorError {
    ConnectorError::Registry {
        operation: op.to_string(),
        status: 200,
        error_code: 0,
        message: format!("the answer has no {what}"),
        hint: "the URL does not point at a Confluent-compatible Schema Registry",
    }
}

fn id_of(j: &Json, op: &str) -> Result<u32> {
    j.get("id")
        .and_then(Json::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| missing(op, "id"))
}

fn subject_version(j: &Json, subject: &str, op: &str) -> Result<SubjectVersion> {
    Ok(SubjectVersion {
        subject: j
            .get("subject")
            .and_then(Json::as_str)
            .unwrap_or(subject)
            .to_string(),
        version: j
            .get("version")
            .and_then(Json::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| missing(op, "version"))?,
        id: id_of(j, op)?,
        schema: j
            .get("schema")
            .and_then(Json::as_str)
            .ok_or_else(|| missing(op, "schema"))?
            .to_string(),
    })
}

fn level_of(j: &Json, key: &str, op: &str) -> Result<CompatibilityLevel> {
    let text = j
        .get(key)
        .or_else(|| j.get("compatibilityLevel"))
        .and_then(Json::as_str)
        .ok_or_else(|| missing(op, key))?;
    text.parse().map_err(|e: String| ConnectorError::Registry {
        operation: op.to_string(),
        status: 200,
        error_code: 0,
        message: e,
        hint: "the registry reports a level this client does not know",
    })
}
