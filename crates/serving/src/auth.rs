//! API keys: `Authorization: Bearer <key>` or `X-API-Key: <key>`, compared in constant time.
//! Each key has a name (what logs and errors show), a dataset allow-list (`gold.*`,
//! `silver.iot_events`, `*`) and a rate limit (a token bucket refilled per minute); a spent
//! bucket answers 429 with the seconds until the next token.

use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::{Result, ServingError};

/// The `auth` section of the serve config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Serve without keys (local development only; every dataset is readable).
    #[serde(default)]
    pub open: bool,
    /// The keys.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
}

/// One API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// A name for logs, errors and metrics.
    pub name: String,
    /// The key itself; `${env:NAME}` reads it from the environment.
    pub key: String,
    /// Datasets the key may read: `layer.table`, `layer.*` or `*`.
    #[serde(default = "all")]
    pub datasets: Vec<String>,
    /// Requests per minute (a burst of this many, refilled evenly).
    #[serde(default = "default_rate")]
    pub requests_per_minute: u32,
}

fn all() -> Vec<String> {
    vec!["*".into()]
}

fn default_rate() -> u32 {
    600
}

/// A key allowed through: its name and what it may read.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's name (`anonymous` when auth is open).
    pub name: String,
    datasets: Vec<String>,
}

impl Caller {
    /// A caller that may read everything: the server's own jobs (scheduled reports) and
    /// in-process use by a Rust program that holds the config anyway.
    pub fn unrestricted(name: &str) -> Self {
        Caller {
            name: name.to_string(),
            datasets: all(),
        }
    }

    /// Whether this caller may read `layer.table`.
    pub fn may_read(&self, dataset: &str) -> bool {
        self.datasets.iter().any(|p| {
            p == "*"
                || p == dataset
                || p.strip_suffix(".*")
                    .is_some_and(|layer| dataset.split_once('.').is_some_and(|(l, _)| l == layer))
        })
    }

    /// Fails with 403 unless this caller may read `dataset`.
    pub fn check(&self, dataset: &str) -> Result<()> {
        if self.may_read(dataset) {
            Ok(())
        } else {
            Err(ServingError::Forbidden {
                key: self.name.clone(),
                dataset: dataset.to_string(),
            })
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Key {
    name: String,
    secret: Vec<u8>,
    datasets: Vec<String>,
    per_minute: f64,
    bucket: Mutex<Bucket>,
}

/// The keys, ready to check requests.
pub struct Keys {
    open: bool,
    keys: Vec<Key>,
}

/// Reads `${env:NAME}` (the whole value) from the environment.
pub fn expand_env(what: &str, value: &str) -> Result<String> {
    match value
        .strip_prefix("${env:")
        .and_then(|r| r.strip_suffix('}'))
    {
        Some(name) => std::env::var(name).map_err(|_| {
            ServingError::config(what, format!("environment variable `{name}` is not set"))
        }),
        None => Ok(value.to_string()),
    }
}

impl Keys {
    /// Checks and loads the `auth` section.
    pub fn from_config(config: &AuthConfig) -> Result<Self> {
        if !config.open && config.keys.is_empty() {
            return Err(ServingError::config(
                "auth",
                "no keys: declare `auth.keys`, or `auth.open: true` to serve without keys",
            ));
        }
        let mut keys = Vec::new();
        for (i, k) in config.keys.iter().enumerate() {
            let secret = expand_env(&format!("auth.keys[{i}].key"), &k.key)?;
            if secret.len() < 16 {
                return Err(ServingError::config(
                    format!("auth.keys[{i}].key"),
                    "a key must be at least 16 characters",
                ));
            }
            if k.requests_per_minute == 0 {
                return Err(ServingError::config(
                    format!("auth.keys[{i}].requests_per_minute"),
                    "must be at least 1",
                ));
            }
            let per_minute = f64::from(k.requests_per_minute);
            keys.push(Key {
                name: k.name.clone(),
                secret: secret.into_bytes(),
                datasets: k.datasets.clone(),
                per_minute,
                bucket: Mutex::new(Bucket {
                    tokens: per_minute,
                    at: Instant::now(),
                }),
            });
        }
        Ok(Keys {
            open: config.open,
            keys,
        })
    }

    /// Finds the caller of a request from its presented key, and takes one token of its rate.
    pub fn authenticate(&self, presented: Option<&str>) -> Result<Caller> {
        let Some(presented) = presented else {
            if self.open {
                return Ok(Caller {
                    name: "anonymous".into(),
                    datasets: all(),
                });
            }
            return Err(ServingError::Unauthorized {
                reason: "no API key (send `Authorization: Bearer <key>` or `X-API-Key`)",
            });
        };
        let mut found = None;
        for k in &self.keys {
            if bool::from(k.secret.as_slice().ct_eq(presented.as_bytes())) {
                found = Some(k);
            }
        }
        let Some(key) = found else {
            return Err(ServingError::Unauthorized {
                reason: "unknown API key",
            });
        };
        let mut bucket = key.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(bucket.at).as_secs_f64() * key.per_minute / 60.0;
        bucket.tokens = (bucket.tokens + refill).min(key.per_minute);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            let wait = (1.0 - bucket.tokens) * 60.0 / key.per_minute;
            return Err(ServingError::RateLimited {
                key: key.name.clone(),
                retry_after_s: wait.ceil().max(1.0) as u64,
            });
        }
        bucket.tokens -= 1.0;
        Ok(Caller {
            name: key.name.clone(),
            datasets: key.datasets.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(rate: u32) -> Keys {
        Keys::from_config(&AuthConfig {
            open: false,
            keys: vec![KeyConfig {
                name: "dash".into(),
                key: "0123456789abcdef-dash".into(),
                datasets: vec!["gold.*".into(), "silver.iot_events".into()],
                requests_per_minute: rate,
            }],
        })
        .unwrap()
    }

    #[test]
    fn keys_allow_their_datasets_only() {
        let k = keys(10);
        assert!(matches!(
            k.authenticate(None),
            Err(ServingError::Unauthorized { .. })
        ));
        assert!(matches!(
            k.authenticate(Some("0123456789abcdef-wrong")),
            Err(ServingError::Unauthorized { .. })
        ));
        let c = k.authenticate(Some("0123456789abcdef-dash")).unwrap();
        assert!(c.may_read("gold.fact_orders"));
        assert!(c.may_read("silver.iot_events"));
        assert!(!c.may_read("silver.orders"));
        assert!(!c.may_read("goldx.t"));
    }

    #[test]
    fn the_bucket_runs_dry_and_names_the_wait() {
        let k = keys(2);
        k.authenticate(Some("0123456789abcdef-dash")).unwrap();
        k.authenticate(Some("0123456789abcdef-dash")).unwrap();
        match k.authenticate(Some("0123456789abcdef-dash")) {
            Err(ServingError::RateLimited { retry_after_s, .. }) => {
                assert!((1..=30).contains(&retry_after_s))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_keys_is_a_config_error_unless_open() {
        assert!(Keys::from_config(&AuthConfig::default()).is_err());
        let open = Keys::from_config(&AuthConfig {
            open: true,
            keys: vec![],
        })
        .unwrap();
        assert!(open.authenticate(None).is_ok());
    }
}
