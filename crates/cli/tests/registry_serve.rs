//! `strata registry serve` as an operator meets it, checked with `curl` (a client we did not
//! write): a missing state file is refused unless `--init` is given, and `--init` on an
//! existing registry keeps it; with `--auth-user` / `--auth-password` (the password from the
//! environment) writes need the credentials and reads do not; the growth flags reach the server.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SCHEMA: &str = r#"{"schema": "{\"type\":\"record\",\"name\":\"r\",\"fields\":[{\"name\":\"a\",\"type\":\"long\"}]}"}"#;

/// A running `strata registry serve` on a free port, killed when dropped.
struct Registry {
    child: Child,
    url: String,
    first_line: String,
}

impl Registry {
    fn start(state: &Path, flags: &[&str], env: &[(&str, &str)]) -> Registry {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.args(["registry", "serve", "--listen", "127.0.0.1:0", "--state"])
            .arg(state)
            .args(flags)
            .env_remove("STRATA_REGISTRY_USER")
            .env_remove("STRATA_REGISTRY_PASSWORD")
            .env_remove("STRATA_REGISTRY_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("spawn strata");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .split("listening on ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        Registry {
            child,
            url,
            first_line: line,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `registry serve` that is expected to refuse to start: its output once it exited, or a panic
/// (after killing it) when it is still serving after 30 s.
fn run_serve(state: &Path, flags: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["registry", "serve", "--listen", "127.0.0.1:0", "--state"])
        .arg(state)
        .args(flags)
        .env_remove("STRATA_REGISTRY_USER")
        .env_remove("STRATA_REGISTRY_PASSWORD")
        .env_remove("STRATA_REGISTRY_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run strata");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`registry serve {flags:?}` started serving instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// `curl` with `args`; returns (HTTP status, response headers + body).
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-i", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), rest.to_string())
}

fn register(url: &str, auth: &[&str]) -> (u16, String) {
    let target = format!("{url}/subjects/t-value/versions");
    let mut args = vec![
        "-X",
        "POST",
        "-H",
        "Content-Type: application/vnd.schemaregistry.v1+json",
        "--data",
        SCHEMA,
    ];
    args.extend_from_slice(auth);
    args.push(&target);
    curl(&args)
}

#[test]
fn a_missing_state_file_needs_init_and_init_keeps_an_existing_registry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("sr").join("registry-state.json");
    let out = run_serve(&state, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&state.display().to_string()) && err.contains("--init"),
        "{err}"
    );
    assert!(!state.parent().expect("dir").exists(), "nothing created");

    {
        let r = Registry::start(&state, &["--init"], &[]);
        assert_eq!(register(&r.url, &[]).0, 200);
    }
    // `--init` again: the registry is loaded, not wiped.
    let r = Registry::start(&state, &["--init"], &[]);
    let (status, body) = curl(&[&format!("{}/subjects/t-value/versions", r.url)]);
    assert_eq!(status, 200, "{body}");
    assert!(body.ends_with("[1]"), "{body}");
}

#[test]
fn writes_need_the_credentials_and_reads_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("registry-state.json");
    let r = Registry::start(
        &state,
        &["--init", "--auth-user", "sr-user"],
        &[("STRATA_REGISTRY_PASSWORD", "sr-pass")],
    );
    assert!(
        r.first_line.contains("writes need basic auth"),
        "{}",
        r.first_line
    );
    assert!(!r.first_line.contains("sr-pass"), "{}", r.first_line);

    let (status, text) = register(&r.url, &[]);
    assert_eq!(status, 401, "{text}");
    assert!(text.contains("\"error_code\":40101"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"strata-registry\""),
        "{text}"
    );
    assert_eq!(register(&r.url, &["-u", "sr-user:wrong"]).0, 401);
    let (status, text) = register(&r.url, &["-u", "sr-user:sr-pass"]);
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("{\"id\":1}"), "{text}");
    let (status, text) = curl(&[&format!("{}/schemas/ids/1", r.url)]);
    assert_eq!(status, 200, "reads stay open: {text}");
}

#[test]
fn protected_reads_and_growth_bounds_reach_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("registry-state.json");
    let r = Registry::start(
        &state,
        &["--init", "--auth-reads", "--max-schema-bytes", "40"],
        &[("STRATA_REGISTRY_TOKEN", "t0ken")],
    );
    let (status, text) = curl(&[&format!("{}/subjects", r.url)]);
    assert_eq!(status, 401, "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{text}"
    );
    let (status, text) = curl(&[
        "-H",
        "Authorization: Bearer t0ken",
        &format!("{}/subjects", r.url),
    ]);
    assert_eq!(status, 200, "{text}");
    let (status, text) = register(&r.url, &["-H", "Authorization: Bearer t0ken"]);
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("--max-schema-bytes"), "{text}");

    // Contradictory flags are refused before anything starts.
    let out = run_serve(&state, &["--auth-reads"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth-reads"));
}
