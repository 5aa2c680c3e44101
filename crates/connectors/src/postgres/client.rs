//! Connecting to PostgreSQL and turning its errors into [`ConnectorError`]s that say what to fix.
//!
//! Every connection gets an `application_name` (`strata-load-…`) so an operator can see and, if
//! needed, end the load's sessions in `pg_stat_activity`. Errors are classified by SQLSTATE:
//! authentication (28P01, 28000), unknown database (3D000), missing privilege (42501), missing
//! table / column (42P01 / 42703) get their own variants; a lost connection, an administrator
//! shutdown (57P01) or a serialization failure is retryable.

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use super::config::PgConnection;
use crate::error::{ConnectorError, Result};

/// A resolved connection profile.
#[derive(Clone)]
pub struct Endpoint {
    config: Config,
    tls: super::tls::TlsSettings,
    /// `host:port` for messages.
    pub host: String,
    /// Database name.
    pub database: String,
    /// Role name.
    pub user: String,
    password_env: Option<String>,
    /// Prefix of `application_name`.
    pub application_prefix: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("database", &self.database)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Builds the connection settings; reads the password from its environment variable.
    pub fn new(c: &PgConnection) -> Result<Self> {
        let (url, url_mode, url_root) = match &c.url {
            Some(url) => {
                let (rest, mode, root) = super::tls::split_url(url);
                (Some(rest), mode, root)
            }
            None => (None, None, None),
        };
        let tls = super::tls::TlsSettings {
            mode: match url_mode.as_deref().or(c.sslmode.as_deref()) {
                Some(m) => super::tls::SslMode::parse(m)?,
                None => super::tls::SslMode::default(),
            },
            root_cert: url_root.or_else(|| c.sslrootcert.clone()),
        };
        let mut config = match (&url, &c.host) {
            (Some(url), _) => url
                .parse::<Config>()
                .map_err(|e| ConnectorError::PgConfig {
                    problems: vec![format!("connection.url: {e}")],
                })?,
            (None, Some(host)) => {
                let mut config = Config::new();
                config.host(host).port(c.port.unwrap_or(5432));
                if let Some(u) = &c.user {
                    config.user(u);
                }
                if let Some(d) = &c.database {
                    config.dbname(d);
                }
                config
            }
            (None, None) => {
                return Err(ConnectorError::PgConfig {
                    problems: vec!["connection: `url` or `host` is required".into()],
                });
            }
        };
        if let Some(var) = &c.password_env {
            let password = std::env::var(var).map_err(|_| ConnectorError::PgConfig {
                problems: vec![format!(
                    "connection.password_env: environment variable `{var}` is not set"
                )],
            })?;
            config.password(password);
        }
        config.connect_timeout(c.connect_timeout());
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or_default().to_string();
        if user.is_empty() {
            return Err(ConnectorError::PgConfig {
                problems: vec!["connection: no user (add it to the url or set `user`)".into()],
            });
        }
        let database = config.get_dbname().unwrap_or(&user).to_string();
        // Fails early on an unreadable root file rather than at the first connection.
        super::tls::connector(&tls)?;
        config.ssl_mode(match tls.mode {
            super::tls::SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            super::tls::SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        Ok(Endpoint {
            config,
            tls,
            host: format!("{host}:{port}"),
            database,
            user,
            password_env: c.password_env.clone(),
            application_prefix: c
                .application_name
                .clone()
                .unwrap_or_else(|| "strata-load".into()),
        })
    }

    /// Opens a session named `application_name`; its connection task runs on the runtime.
    pub async fn connect(&self, application_name: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.application_name(application_name);
        let client = match super::tls::connector(&self.tls)? {
            None => {
                let (client, connection) = config
                    .connect(NoTls)
                    .await
                    .map_err(|e| self.connect_error(&e))?;
                // Errors surface on the client's next call.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
            Some(tls) => {
                let (client, connection) = config
                    .connect(tls)
                    .await
                    .map_err(|e| self.connect_error(&e))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(client)
    }

    /// The error for a failed connection attempt.
    pub fn connect_error(&self, e: &tokio_postgres::Error) -> ConnectorError {
        let (hint, retryable) = match e.code() {
            Some(c) if *c == SqlState::INVALID_PASSWORD => (
                match &self.password_env {
                    Some(var) => format!(
                        "wrong password for role `{}`: check the environment variable `{var}`",
                        self.user
                    ),
                    None => format!(
                        "role `{}` needs a password: set `connection.password_env`",
                        self.user
                    ),
                },
                false,
            ),
            Some(c) if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION => (
                format!(
                    "role `{}` may not connect (unknown role, or pg_hba.conf refuses it)",
                    self.user
                ),
                false,
            ),
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => (
                format!(
                    "database `{}` does not exist on {}",
                    self.database, self.host
                ),
                false,
            ),
            Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS => (
                "the server is out of connections: lower `parallelism` or raise max_connections"
                    .into(),
                true,
            ),
            Some(_) => ("see the server's message".into(), false),
            None => (
                format!(
                    "is PostgreSQL running and reachable at {} (firewall, listen_addresses)?",
                    self.host
                ),
                true,
            ),
        };
        ConnectorError::PgConnect {
            host: self.host.clone(),
            database: self.database.clone(),
            user: self.user.clone(),
            message: error_text(e),
            hint,
            retryable,
        }
    }

    /// The error for a failed statement on `table` (chunk `chunk`).
    pub fn query_error(
        &self,
        e: &tokio_postgres::Error,
        table: &str,
        chunk: &str,
    ) -> ConnectorError {
        let code = e.code();
        if code == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            return ConnectorError::PgPermission {
                table: table.to_string(),
                user: self.user.clone(),
                privilege: "SELECT",
                message: error_text(e),
                hint: format!(
                    "GRANT USAGE ON SCHEMA <schema> and GRANT SELECT ON {table} TO {}",
                    self.user
                ),
            };
        }
        if code == Some(&SqlState::UNDEFINED_TABLE) {
            return ConnectorError::PgTableNotFound {
                database: self.database.clone(),
                table: table.to_string(),
                hint: "check `schema` and `name` in the config (names are case-sensitive)".into(),
            };
        }
        ConnectorError::PgQuery {
            table: table.to_string(),
            chunk: chunk.to_string(),
            code: code.map(|c| c.code().to_string()).unwrap_or_default(),
            message: error_text(e),
            hint: if code == Some(&SqlState::UNDEFINED_COLUMN) {
                "a column in `columns`, `where` or `incremental` does not exist".into()
            } else if retryable_code(code.map(SqlState::code)) || e.is_closed() {
                "the connection was lost; the chunk is retried within the same snapshot".into()
            } else {
                "see the server's message".into()
            },
            retryable: e.is_closed() || retryable_code(code.map(SqlState::code)),
        }
    }
}

/// The server's message with its detail, or the client's description of an I/O failure.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{}: {} ({d})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        },
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let s_text = s.to_string();
                if !text.contains(&s_text) {
                    text.push_str(": ");
                    text.push_str(&s_text);
                }
                source = s.source();
            }
            text
        }
    }
}

/// True for SQLSTATEs after which the same statement may succeed: no code (I/O), connection
/// exceptions (class 08), server shutdown (57P01–57P03), serialization failures and deadlocks
/// (40001, 40P01), insufficient resources (class 53).
pub fn retryable_code(code: Option<&str>) -> bool {
    match code {
        None => true,
        Some(c) => {
            c.starts_with("08")
                || c.starts_with("53")
                || matches!(c, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes() {
        assert!(retryable_code(None));
        assert!(retryable_code(Some("08006")));
        assert!(retryable_code(Some("57P01")));
        assert!(retryable_code(Some("40001")));
        assert!(!retryable_code(Some("42501")));
        assert!(!retryable_code(Some("42P01")));
        assert!(!retryable_code(Some("22P02")));
    }

    #[test]
    fn endpoint_from_parts_and_url() {
        let e = Endpoint::new(&PgConnection {
            host: Some("db.internal".into()),
            port: Some(6543),
            user: Some("loader".into()),
            database: Some("crm".into()),
            connect_timeout_secs: 5,
            ..PgConnection::default()
        })
        .expect("endpoint");
        assert_eq!(
            (e.host.as_str(), e.database.as_str()),
            ("db.internal:6543", "crm")
        );
        let e = Endpoint::new(&PgConnection::from_url("postgres://app@localhost/shop"))
            .expect("endpoint");
        assert_eq!((e.user.as_str(), e.database.as_str()), ("app", "shop"));
        let err = Endpoint::new(&PgConnection {
            password_env: Some("STRATA_SURELY_UNSET_VARIABLE".into()),
            ..PgConnection::from_url("postgres://app@localhost/shop")
        })
        .expect_err("unset variable");
        assert!(
            err.to_string().contains("STRATA_SURELY_UNSET_VARIABLE"),
            "{err}"
        );
    }
}
