//! Shared by the TLS tests: the server variables (a loud skip outside CI) and a second CA that
//! signed nothing the servers have.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable's value; `None` (with a message) outside CI when the servers are not up.
pub fn env(test: &str, var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {var} is not: run scripts/services.sh up")
        }
        Err(_) => {
            eprintln!("SKIPPED {test}: {var} is unset");
            None
        }
    }
}

/// A CA of our own (`openssl`), unrelated to the servers'.
pub fn other_ca(dir: &Path) -> PathBuf {
    let (key, pem) = (dir.join("other.key"), dir.join("other.pem"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=not-the-server-ca", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&pem)
        .output()
        .expect("openssl runs")
        .status
        .success();
    assert!(ok, "openssl made a CA");
    pem
}
