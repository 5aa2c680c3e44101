//! Secrets that never print: [`Secret`] (a value only [`Secret::expose`] gives out) and
//! [`redact_url`] (a URL with its password and secret-looking query values masked), for every
//! config struct, error and record that could otherwise carry a credential into logs, `Debug`
//! output or Kafka.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret value. Only [`Secret::expose`] gives it out, at the one place it is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Serialised as `***`: a config written back out (a dump, an echo) never carries the value.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

/// Query parameter names whose values are credentials (compared case-insensitively, `-`/`_`
/// ignored).
const SECRET_PARAMS: &[&str] = &[
    "apikey",
    "key",
    "token",
    "accesstoken",
    "authtoken",
    "secret",
    "clientsecret",
    "password",
    "pass",
    "pwd",
    "sig",
    "signature",
    "code",
];

/// Whether a query parameter or property name looks like it holds a credential.
pub fn is_secret_name(name: &str) -> bool {
    let norm: String = name
        .chars()
        .filter(|c| *c != '_' && *c != '-' && *c != '.')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_PARAMS.contains(&norm.as_str())
        || norm.ends_with("password")
        || norm.ends_with("secret")
        || norm.ends_with("token")
        || norm.ends_with("apikey")
}

/// `url` with the userinfo password and the values of secret-looking query parameters replaced
/// by `***`. Text that is not a URL is returned with anything after an `@` masked.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        return match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_string(),
        };
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_name(&k) {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_secret_query_values() {
        assert_eq!(
            redact_url("https://user:hunter2@sr.example:8081/subjects"),
            "https://user:***@sr.example:8081/subjects"
        );
        assert_eq!(
            redact_url("https://api.example/v2/search?q=rust&api_key=hunter2&X-Token=t0k"),
            "https://api.example/v2/search?q=rust&api_key=***&X-Token=***"
        );
        assert_eq!(
            redact_url("mysql://root:pw@127.0.0.1:3306"),
            "mysql://root:***@127.0.0.1:3306"
        );
        assert_eq!(redact_url("not a url user:pw@host"), "***@host");
        assert_eq!(
            redact_url("http://127.0.0.1:8081"),
            "http://127.0.0.1:8081/"
        );
    }

    #[test]
    fn a_secret_never_prints_or_serialises() {
        let s: Secret = serde_json::from_str("\"hunter2\"").expect("parse");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).expect("json"), "\"***\"");
    }
}
