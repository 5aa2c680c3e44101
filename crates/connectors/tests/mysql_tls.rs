//! TLS to MySQL / MariaDB with MySQL's `--ssl-mode` meanings, against the private MariaDB of
//! `scripts/services.sh` (TLS with a CA it makes; the server certificate names `localhost`
//! only) and a second CA made here. The server says whether each session is encrypted
//! (`Ssl_cipher`), and a CDC source opens (its checks run) over a verified connection.

mod tls_support;

use std::path::{Path, PathBuf};

use tls_support::{env, other_ca};

use mysql_async::prelude::Queryable;
use strata_connectors::mysql_cdc::MysqlCdcConfig;
use strata_connectors::mysql_cdc::checks::{connect, connect_and_check, opts};

fn config(url: &str, mode: &str, ca: Option<&Path>) -> MysqlCdcConfig {
    let mut c = MysqlCdcConfig::new(url, vec!["mysql.user".into()], "/nonexistent/state.json");
    c.ssl_mode = Some(mode.into());
    c.ssl_ca = ca.map(Path::to_path_buf);
    c
}

/// `Ok(cipher)` of a session (empty: not encrypted), or the error text.
async fn session(url: &str, mode: &str, ca: Option<&Path>) -> Result<String, String> {
    let opts = opts(&config(url, mode, ca)).map_err(|e| e.to_string())?;
    let mut conn = connect(&opts).await.map_err(|e| e.to_string())?;
    let row: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.disconnect().await;
    Ok(row.map(|r| r.1).unwrap_or_default())
}

#[tokio::test]
async fn every_ssl_mode_does_what_mysql_does() {
    let (Some(url), Some(ca)) = (
        env("mysql_tls", "STRATA_TEST_MYSQL_URL"),
        env("mysql_tls", "STRATA_TEST_MYSQL_CA"),
    ) else {
        return;
    };
    let ca = PathBuf::from(ca);
    let dir = tempfile::tempdir().expect("tempdir");
    let other = other_ca(dir.path());
    let by_name = url.replace("127.0.0.1", "localhost");

    assert_eq!(session(&url, "disabled", None).await, Ok(String::new()));
    let cipher = session(&url, "required", None).await.expect("required");
    assert!(!cipher.is_empty(), "encrypted");
    // verify_ca is refused: the driver cannot check the chain without the name.
    let e = session(&url, "verify_ca", Some(&ca)).await.unwrap_err();
    assert!(e.contains("verify_identity"), "{e}");
    assert!(
        !session(&by_name, "verify_identity", Some(&ca))
            .await
            .expect("verify_identity by name")
            .is_empty()
    );
    // The certificate names `localhost` only.
    assert!(session(&url, "verify_identity", Some(&ca)).await.is_err());
    // A CA that signed nothing the server has.
    let e = session(&by_name, "verify_identity", Some(&other))
        .await
        .unwrap_err();
    assert!(e.to_lowercase().contains("issuer"), "{e}");
    let e = session(
        &url,
        "verify_identity",
        Some(Path::new("/nonexistent/ca.pem")),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("ssl_ca") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
    let e = session(&url, "verify-full", None).await.unwrap_err();
    assert!(e.contains("ssl_mode"), "{e}");
    // The CDC source's start-up checks over a verified connection.
    let (mut conn, info) = connect_and_check(&config(&by_name, "verify_identity", Some(&ca)))
        .await
        .expect("checks over TLS");
    assert!(info.mariadb);
    let row: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .expect("status");
    assert!(!row.expect("row").1.is_empty());
}
