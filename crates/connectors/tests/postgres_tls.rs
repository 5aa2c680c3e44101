//! TLS to PostgreSQL with libpq's `sslmode` meanings, against the private server of
//! `scripts/services.sh` (ssl=on with a CA it makes; the server certificate names `localhost`
//! only), and a second CA made here that signed nothing the server has. The server itself says
//! whether each session is encrypted (`pg_stat_ssl`).

mod tls_support;

use std::path::{Path, PathBuf};

use tls_support::{env, other_ca};

use strata_connectors::postgres::PgConnection;
use strata_connectors::postgres::client::Endpoint;

/// `Ok(encrypted)` of a session opened with `url` and `root`, or the error text.
async fn session(url: &str, root: Option<&Path>) -> Result<bool, String> {
    let endpoint = Endpoint::new(&PgConnection {
        sslrootcert: root.map(Path::to_path_buf),
        ..PgConnection::from_url(url)
    })
    .map_err(|e| e.to_string())?;
    let client = endpoint
        .connect("strata-tls-test")
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get::<_, bool>(0))
}

#[tokio::test]
async fn every_sslmode_does_what_libpq_does() {
    let (Some(url), Some(ca)) = (
        env("postgres_tls", "STRATA_TEST_PG_URL"),
        env("postgres_tls", "STRATA_TEST_PG_CA"),
    ) else {
        return;
    };
    let ca = PathBuf::from(ca);
    let dir = tempfile::tempdir().expect("tempdir");
    let other = other_ca(dir.path());
    let by_name = url.replace("127.0.0.1", "localhost");
    let with = |u: &str, mode: &str| format!("{u}?sslmode={mode}");

    assert_eq!(session(&with(&url, "disable"), None).await, Ok(false));
    assert_eq!(
        session(&url, None).await,
        Ok(true),
        "prefer: TLS when offered"
    );
    assert_eq!(session(&with(&url, "require"), None).await, Ok(true));
    // verify-full: the chain and the name (the certificate names `localhost` only).
    assert_eq!(
        session(&with(&by_name, "verify-full"), Some(&ca)).await,
        Ok(true)
    );
    let wrong_name = session(&with(&url, "verify-full"), Some(&ca)).await;
    assert!(
        wrong_name
            .as_ref()
            .is_err_and(|e| e.to_lowercase().contains("name")),
        "{wrong_name:?}"
    );
    // verify-ca: the chain only.
    assert_eq!(session(&with(&url, "verify-ca"), Some(&ca)).await, Ok(true));
    for mode in ["verify-ca", "verify-full", "require"] {
        let r = session(&with(&by_name, mode), Some(&other)).await;
        assert!(
            r.as_ref()
                .is_err_and(|e| e.to_lowercase().contains("issuer")),
            "{mode} with a CA that signed nothing: {r:?}"
        );
    }
    // The root file may also come in the URL; the URL's sslmode wins over the block's.
    let in_url = format!("{by_name}?sslmode=verify-full&sslrootcert={}", ca.display());
    assert_eq!(session(&in_url, None).await, Ok(true));
    let e = session(
        &with(&url, "verify-full"),
        Some(Path::new("/nonexistent/ca.pem")),
    )
    .await
    .unwrap_err();
    assert!(
        e.contains("sslrootcert") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
}
