//! Start-up checks: connection, privileges and the binlog settings row-based CDC needs.
//!
//! [`check_settings`] is a pure function of the server's variables, so every refusal is
//! testable without reconfiguring a server; [`connect_and_check`] reads them and applies it.
//! Each failure names the variable or privilege and the line to put in `my.cnf` / the GRANT.

use std::collections::BTreeMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use super::config::{MysqlCdcConfig, redact};
use crate::error::{ConnectorError, Result};

/// What the checks found that is allowed but worth a warning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// `binlog_row_metadata=FULL`: column names come with every TABLE_MAP event.
    pub full_metadata: bool,
    /// MariaDB (GTID events are MariaDB's `domain-server-seq`).
    pub mariadb: bool,
    /// The server writes GTIDs (MariaDB always; MySQL with `gtid_mode=ON`), so positions can be
    /// resumed by GTID.
    pub gtid: bool,
    /// Warnings to log.
    pub warnings: Vec<String>,
}

/// Maps a client error to a [`ConnectorError::MysqlQuery`].
pub fn query_error(operation: &str, e: mysql_async::Error) -> ConnectorError {
    let retryable = match &e {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Server(s) => connection_lost(s.code, &s.message),
        _ => false,
    };
    let hint = match &e {
        mysql_async::Error::Server(s) if s.code == 1227 || s.code == 1045 || s.code == 1142 => {
            "grant the CDC user SELECT on the tables and REPLICATION SLAVE, REPLICATION CLIENT \
             ON *.*"
        }
        mysql_async::Error::Server(s)
            if s.code == 4052 || s.code == 1236 && s.message.contains("server_id") =>
        {
            "another replica with the same server_id is connected (or the previous run's \
             connection is not closed yet): retry, or give this reader a unique `server_id`"
        }
        mysql_async::Error::Server(s) if s.code == 1236 && s.message.contains("GTID") => {
            "the server does not have the saved GTID position in its binlog: a replica that has \
             not caught up yet (start it again once it has), or a server that diverged or purged \
             those binlogs (re-snapshot by deleting the state file)"
        }
        mysql_async::Error::Io(_) => "the connection was lost: the reader can be restarted",
        _ => "see the server's message",
    };
    ConnectorError::MysqlQuery {
        operation: operation.to_string(),
        message: e.to_string(),
        hint: hint.into(),
        retryable,
    }
}

/// Server errors that end a connection without anything being wrong with the data or the
/// config: killed connection (1927, 1317), shutdown (1053), network timeouts (1159, 1161),
/// aborted packets (1152-1158), too many connections (1040), and a replica with the same id
/// still registered (MariaDB 4052; MySQL 1236 naming the server id).
pub fn connection_lost(code: u16, message: &str) -> bool {
    matches!(
        code,
        1040 | 1053 | 1152..=1161 | 1317 | 1927 | 2006 | 2013 | 4052
    ) || code == 1236 && message.contains("server_id")
}

/// The client options of a config (URL + optional password).
pub fn opts(config: &MysqlCdcConfig) -> Result<Opts> {
    let url = config.url.replacen("mariadb://", "mysql://", 1);
    let opts = Opts::from_url(&url).map_err(|e| ConnectorError::MysqlConfig {
        problems: vec![format!("url: `{}`: {e}", redact(&config.url))],
    })?;
    let mut b = OptsBuilder::from_opts(opts);
    if let Some(p) = &config.password {
        b = b.pass(Some(p.expose().to_string()));
    }
    b = b.ssl_opts(ssl_opts(config)?);
    Ok(Opts::from(b))
}

/// TLS options for `ssl_mode` / `ssl_ca` (`None`: plain TCP).
fn ssl_opts(config: &MysqlCdcConfig) -> Result<Option<mysql_async::SslOpts>> {
    let mode = config
        .ssl_mode
        .as_deref()
        .unwrap_or("disabled")
        .to_ascii_lowercase();
    let (verify_ca, verify_name) = match mode.as_str() {
        "disabled" => return Ok(None),
        "required" => (false, false),
        // mysql_async 0.37 recognises a name mismatch by the text "NotValidForName" in the
        // rustls error, which rustls 0.23 no longer prints: its chain-only mode checks the
        // name anyway. Refused rather than silently stricter (or, worse, looser later).
        "verify_ca" => {
            return Err(ConnectorError::MysqlConfig {
                problems: vec![
                    "ssl_mode: `verify_ca` (the chain without the host name) is not available \
                     with this MySQL driver; use `verify_identity` with a host name the server's \
                     certificate names"
                        .into(),
                ],
            });
        }
        "verify_identity" => (true, true),
        other => {
            return Err(ConnectorError::MysqlConfig {
                problems: vec![format!(
                    "ssl_mode: `{other}` is not disabled, required, verify_ca or verify_identity"
                )],
            });
        }
    };
    let mut ssl = mysql_async::SslOpts::default()
        .with_danger_accept_invalid_certs(!verify_ca)
        .with_danger_skip_domain_validation(!verify_name);
    if let Some(ca) = &config.ssl_ca {
        let pem = std::fs::read(ca).map_err(|e| ConnectorError::MysqlConfig {
            problems: vec![format!("ssl_ca: cannot read `{}`: {e}", ca.display())],
        })?;
        if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConnectorError::MysqlConfig {
                problems: vec![format!(
                    "ssl_ca: `{}` holds no PEM certificate",
                    ca.display()
                )],
            });
        }
        ssl = ssl
            .with_root_certs(vec![pem.into()])
            .with_disable_built_in_roots(true);
    }
    Ok(Some(ssl))
}

/// Opens a connection, with errors naming what to fix.
pub async fn connect(opts: &Opts) -> Result<Conn> {
    let host = format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port());
    let user = opts.user().unwrap_or("").to_string();
    Conn::new(opts.clone()).await.map_err(|e| {
        let (hint, retryable) = match &e {
            mysql_async::Error::Server(s) if s.code == 1045 => (
                "wrong user or password: check the URL's credentials (or `password`)".to_string(),
                false,
            ),
            mysql_async::Error::Server(s) if s.code == 1044 || s.code == 1049 => (
                "the user may not use that database: drop it from the URL".to_string(),
                false,
            ),
            mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => (
                format!(
                    "is the server running and reachable at {host}? check host, port and firewall"
                ),
                true,
            ),
            _ => ("see the server's message".to_string(), false),
        };
        ConnectorError::MysqlConnect {
            host: host.clone(),
            user: user.clone(),
            message: e.to_string(),
            hint,
            retryable,
        }
    })
}

fn setting(variable: &str, actual: &str, expected: &str, line: &str) -> ConnectorError {
    ConnectorError::MysqlSetting {
        variable: variable.into(),
        actual: actual.into(),
        expected: expected.into(),
        hint: format!("set `{line}` in the server's config (my.cnf, [mysqld]) and restart it"),
    }
}

/// Checks the server variables (lower-case names → values) for row-based CDC.
pub fn check_settings(vars: &BTreeMap<String, String>) -> Result<ServerInfo> {
    let get = |k: &str| vars.get(k).map(|v| v.to_ascii_uppercase());
    let log_bin = get("log_bin").unwrap_or_else(|| "OFF".into());
    if log_bin != "ON" && log_bin != "1" {
        return Err(setting("log_bin", &log_bin, "ON", "log-bin=mysql-bin"));
    }
    let format = get("binlog_format").unwrap_or_default();
    if format != "ROW" {
        return Err(setting(
            "binlog_format",
            &format,
            "ROW",
            "binlog_format=ROW",
        ));
    }
    let image = get("binlog_row_image").unwrap_or_else(|| "FULL".into());
    if image != "FULL" {
        return Err(setting(
            "binlog_row_image",
            &image,
            "FULL",
            "binlog_row_image=FULL",
        ));
    }
    // MySQL's `binlog_transaction_compression` (TRANSACTION_PAYLOAD events) is read
    // ([`super::payload`]); MariaDB's compressed events are not.
    for (var, line) in [("log_bin_compress", "log_bin_compress=OFF")] {
        if let Some(v) = get(var)
            && (v == "ON" || v == "1")
        {
            return Err(setting(
                var,
                &v,
                "OFF (compressed binlog events are not decoded)",
                line,
            ));
        }
    }
    for (var, line) in [
        ("encrypt_binlog", "encrypt_binlog=OFF"),
        ("binlog_encryption", "binlog_encryption=OFF"),
    ] {
        if let Some(v) = get(var)
            && (v == "ON" || v == "1")
        {
            return Err(setting(var, &v, "OFF (encrypted binlog)", line));
        }
    }
    if let Some(v) = get("binlog_row_value_options")
        && v.contains("PARTIAL_JSON")
    {
        return Err(setting(
            "binlog_row_value_options",
            &v,
            "'' (partial JSON updates carry only the changed paths, not the document)",
            "binlog_row_value_options=''",
        ));
    }
    let mut info = ServerInfo {
        mariadb: vars
            .get("version")
            .is_some_and(|v| v.to_ascii_lowercase().contains("mariadb")),
        ..ServerInfo::default()
    };
    info.gtid = info.mariadb || get("gtid_mode").is_some_and(|m| m == "ON");
    match get("binlog_row_metadata").as_deref() {
        Some("FULL") => info.full_metadata = true,
        other => info.warnings.push(format!(
            "binlog_row_metadata is {}: column names are read from information_schema (the \
             current schema), so events written before an ALTER TABLE may be mislabelled; set \
             binlog_row_metadata=FULL",
            other.unwrap_or("not supported")
        )),
    }
    Ok(info)
}

/// Reads the variables [`check_settings`] looks at.
pub async fn read_settings(conn: &mut Conn) -> Result<BTreeMap<String, String>> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', \
             'binlog_row_image', 'binlog_row_metadata', 'log_bin_compress', \
             'binlog_transaction_compression', 'encrypt_binlog', 'binlog_encryption', \
             'binlog_row_value_options', 'version', 'gtid_mode')",
        )
        .await
        .map_err(|e| query_error("reading the binlog settings", e))?;
    Ok(rows
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect())
}

/// Checks that the grants include replication (binlog dump) rights.
pub fn check_grants(user: &str, grants: &[String]) -> Result<()> {
    let ok = grants.iter().any(|g| {
        let g = g.to_ascii_uppercase();
        g.contains(" ON *.*") && (g.contains("ALL PRIVILEGES") || g.contains("REPLICATION SLAVE"))
    });
    if ok {
        Ok(())
    } else {
        Err(ConnectorError::MysqlPrivilege {
            user: user.to_string(),
            privilege: "REPLICATION SLAVE".into(),
            message: format!("grants are: {}", grants.join("; ")),
            hint: format!(
                "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'%'"
            ),
        })
    }
}

/// Connects, checks privileges and binlog settings.
pub async fn connect_and_check(config: &MysqlCdcConfig) -> Result<(Conn, ServerInfo)> {
    config.validate()?;
    let opts = opts(config)?;
    let mut conn = connect(&opts).await?;
    let grants: Vec<String> = conn
        .query("SHOW GRANTS FOR CURRENT_USER()")
        .await
        .map_err(|e| query_error("reading the user's grants", e))?;
    check_grants(opts.user().unwrap_or(""), &grants)?;
    let vars = read_settings(&mut conn).await?;
    let info = check_settings(&vars)?;
    Ok((conn, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn refuses_what_cannot_work() {
        let ok = [
            ("log_bin", "ON"),
            ("binlog_format", "ROW"),
            ("binlog_row_image", "FULL"),
            ("binlog_row_metadata", "FULL"),
        ];
        let info = check_settings(&vars(&ok)).unwrap();
        assert!(info.full_metadata && !info.gtid);
        let mut v = vars(&ok);
        v.insert("gtid_mode".into(), "ON".into());
        assert!(check_settings(&v).unwrap().gtid);
        v.insert("gtid_mode".into(), "OFF_PERMISSIVE".into());
        assert!(!check_settings(&v).unwrap().gtid);
        v.insert("version".into(), "10.11.6-MariaDB".into());
        assert!(check_settings(&v).unwrap().gtid, "MariaDB always has GTIDs");
        let mut v = vars(&ok);
        v.insert("binlog_format".into(), "MIXED".into());
        let e = check_settings(&v).unwrap_err().to_string();
        assert!(
            e.contains("binlog_format") && e.contains("binlog_format=ROW"),
            "{e}"
        );
        let mut v = vars(&ok);
        v.insert("log_bin".into(), "OFF".into());
        assert!(
            check_settings(&v)
                .unwrap_err()
                .to_string()
                .contains("log_bin")
        );
        let mut v = vars(&ok);
        v.insert("binlog_row_image".into(), "MINIMAL".into());
        assert!(
            check_settings(&v)
                .unwrap_err()
                .to_string()
                .contains("binlog_row_image")
        );
        let mut v = vars(&ok);
        v.insert("log_bin_compress".into(), "ON".into());
        assert!(
            check_settings(&v)
                .unwrap_err()
                .to_string()
                .contains("compressed")
        );
        let mut v = vars(&ok);
        v.insert("encrypt_binlog".into(), "ON".into());
        assert!(
            check_settings(&v)
                .unwrap_err()
                .to_string()
                .contains("encrypt")
        );
        let mut v = vars(&ok);
        v.insert("binlog_row_value_options".into(), "PARTIAL_JSON".into());
        let e = check_settings(&v).unwrap_err().to_string();
        assert!(e.contains("binlog_row_value_options=''"), "{e}");
        v.insert("binlog_row_value_options".into(), "".into());
        assert!(check_settings(&v).is_ok());
        let mut v = vars(&ok);
        v.insert("binlog_row_metadata".into(), "MINIMAL".into());
        let info = check_settings(&v).unwrap();
        assert!(!info.full_metadata && info.warnings[0].contains("information_schema"));
    }

    #[test]
    fn grants() {
        assert!(check_grants("u", &["GRANT ALL PRIVILEGES ON *.* TO `root`@`%`".into()]).is_ok());
        let e = check_grants("u", &["GRANT USAGE ON *.* TO `u`@`%`".into()]).unwrap_err();
        assert!(e.to_string().contains("GRANT REPLICATION SLAVE"));
    }
}
