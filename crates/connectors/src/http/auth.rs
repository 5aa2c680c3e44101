//! Credentials of the poller: read from environment variables, held in [`Secret`] (whose
//! `Debug` / `Display` print `***`, so no log line or error can carry one), and turned into an
//! `Authorization` header per request. OAuth2 client-credential tokens are fetched lazily,
//! refreshed 30 s before they expire and once more when the API answers 401.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::config::AuthConfig;

pub use crate::secret::Secret;

/// A config value: literal, or `${env:NAME}` (a secret read from the environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// Written in the config: recorded as is.
    Plain(String),
    /// From the environment: sent, never recorded.
    Secret(Secret),
}

impl ConfigValue {
    /// Resolves `${env:NAME}`; the error names the missing variable.
    pub fn resolve(raw: &str) -> Result<Self, String> {
        match raw.strip_prefix("${env:").and_then(|r| r.strip_suffix('}')) {
            Some(name) => env_secret(name).map(ConfigValue::Secret),
            None => Ok(ConfigValue::Plain(raw.to_string())),
        }
    }

    /// What is sent.
    pub fn expose(&self) -> &str {
        match self {
            ConfigValue::Plain(s) => s,
            ConfigValue::Secret(s) => s.expose(),
        }
    }

    /// What records and logs show.
    pub fn shown(&self) -> &str {
        match self {
            ConfigValue::Plain(s) => s,
            ConfigValue::Secret(_) => "***",
        }
    }
}

/// A secret from the environment; the error names the variable (never a value).
pub fn env_secret(name: &str) -> Result<Secret, String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        Ok(_) => Err(format!("environment variable {name} is empty")),
        Err(_) => Err(format!("environment variable {name} is not set")),
    }
}

/// The secret of `auth.<field>`, or a problem naming that path and the variable.
fn auth_secret(field: &str, name: &str, problems: &mut Vec<String>) -> Option<Secret> {
    env_secret(name)
        .map_err(|e| problems.push(format!("auth.{field}: {e}")))
        .ok()
}

/// What to check when the API answered 401 (after a token refresh, for OAuth2): the variables
/// the credentials came from, by name (never a value).
pub fn refused_hint(auth: &AuthConfig) -> String {
    match auth {
        AuthConfig::None => "the API wants credentials: set `auth` in the config (or send them \
                             with a `${env:NAME}` value in request.headers / request.query)"
            .into(),
        AuthConfig::Bearer { token_env } => format!(
            "the API refused the bearer token: check the token in the environment variable \
             {token_env} (auth.token_env)"
        ),
        AuthConfig::Oauth2ClientCredentials {
            client_id_env,
            client_secret_env,
            ..
        } => format!(
            "the API refused a freshly issued OAuth2 token: check the client in the environment \
             variables {client_id_env} / {client_secret_env} (auth.client_id_env / \
             auth.client_secret_env) and auth.scope"
        ),
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// True for transport errors and 5xx / 429 answers.
    pub retryable: bool,
    /// What happened (never a secret).
    pub message: String,
}

/// Resolved credentials.
#[derive(Debug)]
pub enum Credentials {
    /// Nothing to send.
    None,
    /// A static bearer token.
    Bearer(Secret),
    /// Client credentials and the current token.
    Oauth2 {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: Secret,
        /// Client secret.
        client_secret: Secret,
        /// Scope.
        scope: Option<String>,
        /// The token and when to refresh it.
        token: Option<(Secret, Instant)>,
    },
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The longest token lifetime believed (a day): a server's `expires_in` beyond it, or one that
/// would overflow the clock, still gets refreshed daily instead of panicking the poller.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// When to refresh a token issued at `now` for `expires_in` seconds (an hour when unsaid):
/// 30 s before it expires, the lifetime clamped to [`MAX_TOKEN_LIFETIME`].
fn refresh_deadline(now: Instant, expires_in: Option<u64>) -> Instant {
    let lifetime = Duration::from_secs(expires_in.unwrap_or(3600)).min(MAX_TOKEN_LIFETIME);
    now.checked_add(lifetime.saturating_sub(Duration::from_secs(30)))
        .unwrap_or(now)
}

impl Credentials {
    /// Reads the variables the config names. Each problem names the field's YAML path and the
    /// variable (`auth.token_env: environment variable X_BEARER_TOKEN is not set`).
    pub fn from_config(auth: &AuthConfig) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let credentials = match auth {
            AuthConfig::None => Some(Credentials::None),
            AuthConfig::Bearer { token_env } => {
                auth_secret("token_env", token_env, &mut problems).map(Credentials::Bearer)
            }
            AuthConfig::Oauth2ClientCredentials {
                token_url,
                client_id_env,
                client_secret_env,
                scope,
            } => {
                let client_id = auth_secret("client_id_env", client_id_env, &mut problems);
                let client_secret =
                    auth_secret("client_secret_env", client_secret_env, &mut problems);
                client_id
                    .zip(client_secret)
                    .map(|(client_id, client_secret)| Credentials::Oauth2 {
                        token_url: token_url.clone(),
                        client_id,
                        client_secret,
                        scope: scope.clone(),
                        token: None,
                    })
            }
        };
        match credentials {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(problems),
        }
    }

    /// True when a 401 may be cured by fetching a new token.
    pub fn can_refresh(&self) -> bool {
        matches!(self, Credentials::Oauth2 { .. })
    }

    /// Drops a cached OAuth2 token (after a 401).
    pub fn invalidate(&mut self) {
        if let Credentials::Oauth2 { token, .. } = self {
            *token = None;
        }
    }

    /// The `Authorization` header value, fetching a token first when needed. The error says
    /// whether retrying can help (a transport error or a 5xx of the token endpoint) or not
    /// (credentials refused).
    pub async fn header(&mut self, http: &reqwest::Client) -> Result<Option<Secret>, TokenError> {
        match self {
            Credentials::None => Ok(None),
            Credentials::Bearer(t) => Ok(Some(Secret::new(format!("Bearer {}", t.expose())))),
            Credentials::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
                token,
            } => {
                if let Some((t, refresh_at)) = token.as_ref()
                    && Instant::now() < *refresh_at
                {
                    return Ok(Some(Secret::new(format!("Bearer {}", t.expose()))));
                }
                let mut form = vec![("grant_type", "client_credentials".to_string())];
                if let Some(s) = scope {
                    form.push(("scope", s.clone()));
                }
                let response = http
                    .post(token_url.as_str())
                    .basic_auth(client_id.expose(), Some(client_secret.expose()))
                    .form(&form)
                    .send()
                    .await
                    .map_err(|e| TokenError {
                        retryable: true,
                        message: format!(
                            "token request to {token_url} failed ({})",
                            if e.is_timeout() {
                                "timed out"
                            } else {
                                "transport error"
                            }
                        ),
                    })?;
                let status = response.status();
                if !status.is_success() {
                    return Err(TokenError {
                        retryable: status.is_server_error() || status.as_u16() == 429,
                        message: format!(
                            "token endpoint {token_url} answered {status}: check the client id / \
                             secret variables and the scope"
                        ),
                    });
                }
                let parsed: TokenResponse = response.json().await.map_err(|e| TokenError {
                    retryable: false,
                    message: format!("token endpoint {token_url}: unreadable answer: {e}"),
                })?;
                let refresh_at = refresh_deadline(Instant::now(), parsed.expires_in);
                let value = Secret::new(format!("Bearer {}", parsed.access_token));
                *token = Some((Secret::new(parsed.access_token), refresh_at));
                Ok(Some(value))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_token_lifetime_is_clamped_not_a_panic() {
        let now = Instant::now();
        let at = refresh_deadline(now, Some(u64::MAX));
        assert_eq!(at - now, MAX_TOKEN_LIFETIME - Duration::from_secs(30));
        assert_eq!(refresh_deadline(now, None) - now, Duration::from_secs(3570));
        assert_eq!(refresh_deadline(now, Some(5)), now);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        let v = ConfigValue::Secret(s);
        assert_eq!(v.shown(), "***");
        assert!(!format!("{v:?}").contains("hunter2"));
        assert_eq!(v.expose(), "hunter2");
    }

    #[test]
    fn a_missing_auth_variable_is_named_with_its_yaml_path() {
        let problems = Credentials::from_config(&AuthConfig::Oauth2ClientCredentials {
            token_url: "https://auth.example/token".into(),
            client_id_env: "STRATA_SURELY_UNSET_ID".into(),
            client_secret_env: "STRATA_SURELY_UNSET_SECRET".into(),
            scope: None,
        })
        .expect_err("unset");
        assert_eq!(
            problems,
            vec![
                "auth.client_id_env: environment variable STRATA_SURELY_UNSET_ID is not set",
                "auth.client_secret_env: environment variable STRATA_SURELY_UNSET_SECRET is not set",
            ]
        );
    }

    #[test]
    fn the_401_hint_names_the_token_variable() {
        let hint = refused_hint(&AuthConfig::Bearer {
            token_env: "X_BEARER_TOKEN".into(),
        });
        assert!(hint.contains("X_BEARER_TOKEN"), "{hint}");
        assert!(hint.contains("auth.token_env"), "{hint}");
        let hint = refused_hint(&AuthConfig::Oauth2ClientCredentials {
            token_url: "https://auth.example/token".into(),
            client_id_env: "CRM_CLIENT_ID".into(),
            client_secret_env: "CRM_CLIENT_SECRET".into(),
            scope: None,
        });
        assert!(
            hint.contains("CRM_CLIENT_ID") && hint.contains("CRM_CLIENT_SECRET"),
            "{hint}"
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = ConfigValue::resolve("${env:STRATA_SURELY_UNSET_VAR}").expect_err("unset");
        assert!(err.contains("STRATA_SURELY_UNSET_VAR"), "{err}");
        assert_eq!(
            ConfigValue::resolve("plain").expect("plain"),
            ConfigValue::Plain("plain".into())
        );
    }
}
