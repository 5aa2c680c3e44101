//! The one Kafka profile as a user meets it: a `-X` property that would break exactly-once is
//! refused before anything connects (exit 2, naming the key), and a secret given as
//! `${env:NAME}` with the variable missing is named — no broker needed for either.

use std::process::Command;

const PIPELINE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/iot.yaml");

fn stream(command: &str, property: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.current_dir(dir.path()).args([
        "stream",
        command,
        "--brokers",
        "127.0.0.1:9",
        "--input-topic",
        "in",
        "-X",
        property,
    ]);
    if command != "bronze" {
        c.args(["--pipeline", PIPELINE]);
    }
    if command == "avro" {
        c.args(["--output-topic", "out"]);
    }
    let out = c.output().expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_property_contradicting_exactly_once_is_refused_naming_it() {
    for command in ["silver", "avro", "bronze"] {
        let (code, err) = stream(command, "enable.auto.commit=true");
        assert_eq!(code, Some(2), "{command}: {err}");
        assert!(err.contains("enable.auto.commit"), "{command}: {err}");
    }
    let (code, err) = stream("avro", "acks=1");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("acks"), "{err}");
}

#[test]
fn a_missing_secret_variable_is_named() {
    let (code, err) = stream("silver", "sasl.password=${env:STRATA_TEST_NO_SUCH_SECRET}");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("sasl.password") && err.contains("STRATA_TEST_NO_SUCH_SECRET"),
        "{err}"
    );
}
