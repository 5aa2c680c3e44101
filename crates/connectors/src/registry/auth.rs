//! Who may write to (and, optionally, read from) the embedded registry.
//!
//! Why: a registry's writes decide which schema ids producers embed in every record; an open
//! `POST /subjects/{s}/versions` lets anyone on the network register, delete or change the
//! compatibility level of a subject. [`RegistryAuth`] holds HTTP basic credentials (the user
//! and password Confluent's clients send with `basic.auth.user.info`) and/or a bearer token
//! (`bearer.auth.token`); either one grants access.
//!
//! Invariants: writes (every method but `GET`, `HEAD` and `OPTIONS` — also `POST` look-ups and
//! compatibility checks, which carry a schema body) need valid credentials as soon as any are
//! configured; reads need them only with [`RegistryAuth::protect_reads`]. Credentials are
//! compared in constant time (SHA-256 digests compared with `subtle`, so neither the content
//! nor the length of a secret leaks through timing); the user and the password are both
//! compared before the answer is decided. Secrets are [`Secret`]s: `Debug` and serde show
//! `***`. A refusal is `401` with a Confluent-style body (`{"error_code": 40101, …}`) and a
//! `WWW-Authenticate` challenge per accepted scheme.

use axum::http::{HeaderMap, Method, header};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;
use crate::{ConnectorError, Result};

/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "strata-registry";

/// Credentials the registry server accepts. The default accepts everyone.
#[derive(Debug, Clone, Default)]
pub struct RegistryAuth {
    basic: Option<(String, Secret)>,
    token: Option<Secret>,
    protect_reads: bool,
}

impl RegistryAuth {
    /// No authentication (the default): every request is served.
    pub fn none() -> Self {
        Self::default()
    }

    /// From optional flag values: basic auth needs both a user and a password, a token must
    /// not be empty, and protecting reads needs some credential. Every refusal names the flag.
    pub fn from_parts(
        user: Option<&str>,
        password: Option<Secret>,
        token: Option<Secret>,
        protect_reads: bool,
    ) -> Result<Self> {
        let problem = |reason: &str| ConnectorError::RegistryAuth {
            reason: reason.to_string(),
        };
        let basic = match (user, password) {
            (None, None) => None,
            (Some(_), None) => return Err(problem("--auth-user is given without --auth-password")),
            (None, Some(_)) => return Err(problem("--auth-password is given without --auth-user")),
            (Some(u), Some(p)) => {
                if u.is_empty() || u.contains(':') {
                    return Err(problem(
                        "--auth-user must be non-empty and must not contain `:`",
                    ));
                }
                if p.expose().is_empty() {
                    return Err(problem("--auth-password is empty"));
                }
                Some((u.to_string(), p))
            }
        };
        if token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
            return Err(problem("--auth-token is empty"));
        }
        if protect_reads && basic.is_none() && token.is_none() {
            return Err(problem(
                "--auth-reads needs credentials (--auth-user and --auth-password, or --auth-token)",
            ));
        }
        Ok(RegistryAuth {
            basic,
            token,
            protect_reads,
        })
    }

    /// Accepts HTTP basic auth with `user` and `password`.
    pub fn with_basic(mut self, user: impl Into<String>, password: Secret) -> Self {
        self.basic = Some((user.into(), password));
        self
    }

    /// Accepts `Authorization: Bearer <token>`.
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token = Some(token);
        self
    }

    /// Requires credentials for reads too (by default only writes need them).
    pub fn protect_reads(mut self, yes: bool) -> Self {
        self.protect_reads = yes;
        self
    }

    /// Whether any credential is configured.
    pub fn is_enabled(&self) -> bool {
        self.basic.is_some() || self.token.is_some()
    }

    /// Whether reads need credentials too.
    pub fn reads_protected(&self) -> bool {
        self.protect_reads && self.is_enabled()
    }

    /// One line for the startup log: which schemes are accepted and what they protect.
    pub fn describe(&self) -> String {
        if !self.is_enabled() {
            return "no authentication".into();
        }
        let schemes: Vec<&str> = [
            self.basic.as_ref().map(|_| "basic auth"),
            self.token.as_ref().map(|_| "a bearer token"),
        ]
        .into_iter()
        .flatten()
        .collect();
        format!(
            "{} need {}",
            if self.protect_reads {
                "reads and writes"
            } else {
                "writes"
            },
            schemes.join(" or ")
        )
    }

    /// Whether a request with `method` needs credentials.
    pub fn required_for(&self, method: &Method) -> bool {
        let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        self.is_enabled() && (!read || self.protect_reads)
    }

    /// Whether the request's `Authorization` header grants access.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("basic") {
            let Some((user, password)) = &self.basic else {
                return false;
            };
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
                return false;
            };
            let text = String::from_utf8_lossy(&decoded);
            let (given_user, given_password) = text.split_once(':').unwrap_or((&text, ""));
            // Both compared, whatever the first answer: the time does not tell which was wrong.
            let user_ok = same(given_user, user);
            let password_ok = same(given_password, password.expose());
            bool::from(user_ok & password_ok)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            match &self.token {
                Some(token) => bool::from(same(credentials, token.expose())),
                None => false,
            }
        } else {
            false
        }
    }

    /// The `WWW-Authenticate` challenges of a refusal, one per accepted scheme.
    pub fn challenges(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.basic.is_some() {
            out.push(format!("Basic realm=\"{REALM}\", charset=\"UTF-8\""));
        }
        if self.token.is_some() {
            out.push(format!("Bearer realm=\"{REALM}\""));
        }
        out
    }
}

/// Constant-time equality of two texts of any lengths (their SHA-256 digests are compared).
fn same(given: &str, expected: &str) -> subtle::Choice {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        h
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers(&format!("Basic {encoded}"))
    }

    #[test]
    fn basic_credentials_and_tokens_are_checked() {
        let auth = RegistryAuth::none()
            .with_basic("sr", Secret::new("pw"))
            .with_token(Secret::new("t0k"));
        assert!(auth.allows(&basic("sr", "pw")));
        assert!(auth.allows(&headers("bearer t0k")));
        assert!(!auth.allows(&basic("sr", "pw2")));
        assert!(!auth.allows(&basic("sr2", "pw")));
        assert!(!auth.allows(&basic("sr", "")));
        assert!(!auth.allows(&headers("Bearer t0")));
        assert!(!auth.allows(&headers("Basic not-base64!")));
        assert!(!auth.allows(&headers("Digest x")));
        assert!(!auth.allows(&HeaderMap::new()));
        // A password may contain `:`; only the first one separates the user.
        let colon = RegistryAuth::none().with_basic("u", Secret::new("a:b"));
        assert!(colon.allows(&basic("u", "a:b")));
    }

    #[test]
    fn only_writes_need_credentials_unless_reads_are_protected() {
        let open = RegistryAuth::none();
        assert!(!open.required_for(&Method::POST));
        let writes = RegistryAuth::none().with_token(Secret::new("t"));
        assert!(writes.required_for(&Method::POST));
        assert!(writes.required_for(&Method::PUT));
        assert!(writes.required_for(&Method::DELETE));
        assert!(!writes.required_for(&Method::GET));
        let reads = writes.protect_reads(true);
        assert!(reads.required_for(&Method::GET));
    }

    #[test]
    fn flag_combinations_are_checked_and_secrets_never_print() {
        let e = |u: Option<&str>, p: Option<&str>, t: Option<&str>, r: bool| {
            RegistryAuth::from_parts(u, p.map(Secret::new), t.map(Secret::new), r)
                .expect_err("refused")
                .to_string()
        };
        assert!(e(Some("u"), None, None, false).contains("--auth-password"));
        assert!(e(None, Some("p"), None, false).contains("--auth-user"));
        assert!(e(Some("u"), Some(""), None, false).contains("empty"));
        assert!(e(None, None, Some(" "), false).contains("--auth-token"));
        assert!(e(None, None, None, true).contains("--auth-reads"));
        let auth = RegistryAuth::from_parts(
            Some("sr"),
            Some(Secret::new("hunter2")),
            Some(Secret::new("t0ken")),
            true,
        )
        .expect("valid");
        let shown = format!("{auth:?} {}", auth.describe());
        assert!(
            !shown.contains("hunter2") && !shown.contains("t0ken"),
            "{shown}"
        );
        assert_eq!(
            auth.describe(),
            "reads and writes need basic auth or a bearer token"
        );
    }
}
