//! The one Kafka profile as a user meets it: a `-X` property that would break exactly-once is
//! refused before anything connects (exit 2, naming the key), and a secret given as
//! `${env:NAME}` with the variable missing is named — no broker needed for either. Every command
//! that talks to Kafka reads `--kafka-config` (a bad line is named, its text never printed), and
//! a real run takes the broker address from that file alone, with `-X` over it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

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

/// A properties file whose second line has no `=` and carries a would-be secret.
fn bad_properties(dir: &Path) -> PathBuf {
    let path = dir.join("client.properties");
    std::fs::write(
        &path,
        "# Kafka client config\nbootstrap.servers=127.0.0.1:9\nsasl.password hunter2-SECRET\n",
    )
    .expect("write");
    path
}

/// Minimal configs of the commands whose Kafka settings start in their own YAML.
fn command_configs(dir: &Path) -> Vec<(Vec<&'static str>, PathBuf)> {
    let cdc = dir.join("cdc.yaml");
    std::fs::write(
        &cdc,
        "url: mysql://root@127.0.0.1:9/\ntables: [shop.orders]\nstate_file: cdc-state.json\n\
         kafka_brokers: 127.0.0.1:9\n",
    )
    .expect("write");
    let http = dir.join("http.yaml");
    std::fs::write(
        &http,
        "name: api\nrequest: {url: 'http://127.0.0.1:9/items'}\n\
         kafka: {brokers: '127.0.0.1:9', topic: items}\nstate_file: http-state.json\n",
    )
    .expect("write");
    let hooks = dir.join("webhooks.yaml");
    std::fs::write(
        &hooks,
        "listen: 127.0.0.1:0\nkafka: {brokers: '127.0.0.1:9'}\ndead_letter_topic: dlq\n\
         sources:\n  generic:\n    topic: events\n",
    )
    .expect("write");
    vec![
        (vec!["cdc", "mysql"], cdc.clone()),
        (vec!["ingest", "mysql-cdc"], cdc),
        (vec!["ingest", "http"], http),
        (vec!["serve", "webhooks"], hooks),
    ]
}

#[test]
fn every_kafka_command_reads_kafka_config_and_names_the_bad_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let props = bad_properties(dir.path());
    let check = |what: String, out: std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(
            err.contains("client.properties") && err.contains("line 3"),
            "{what}: {err}"
        );
        assert!(!err.contains("hunter2"), "{what} prints the line: {err}");
    };
    for command in ["silver", "avro", "bronze"] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.current_dir(dir.path())
            .args(["stream", command, "--input-topic", "in", "--kafka-config"])
            .arg(&props)
            .env_remove("STRATA_KAFKA_BROKERS");
        if command != "bronze" {
            c.args(["--pipeline", PIPELINE]);
        }
        if command == "avro" {
            c.args(["--output-topic", "out"]);
        }
        check(format!("stream {command}"), c.output().expect("run"));
    }
    for (words, config) in command_configs(dir.path()) {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .current_dir(dir.path())
            .args(&words)
            .arg("--config")
            .arg(&config)
            .arg("--kafka-config")
            .arg(&props)
            .env_remove("STRATA_KAFKA_BROKERS")
            .output()
            .expect("run");
        check(words.join(" "), out);
    }
}

#[test]
fn a_property_in_the_file_that_breaks_exactly_once_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let props = dir.path().join("client.properties");
    std::fs::write(&props, "linger.ms=5\n\nenable.auto.commit=true\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .current_dir(dir.path())
        .args(["stream", "bronze", "--input-topic", "in", "--kafka-config"])
        .arg(&props)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("line 3") && err.contains("enable.auto.commit"),
        "{err}"
    );
}

/// `stream bronze` against the real broker whose address is only in `--kafka-config` (no
/// `--brokers`, no `STRATA_KAFKA_BROKERS`); then with a file pointing nowhere that `-X`
/// overrides.
#[tokio::test]
async fn the_broker_address_can_come_from_the_kafka_config_file_only() {
    let Some(brokers) =
        support::broker("the_broker_address_can_come_from_the_kafka_config_file_only")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let topic = support::unique("kafka-config");
    support::create_topics(&brokers, &[(&topic, 1)]).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("producer");
    for i in 0..5 {
        let value = format!("{{\"n\":{i}}}");
        producer
            .send(
                FutureRecord::<(), _>::to(&topic).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
    }
    let file = dir.path().join("client.properties");
    std::fs::write(
        &file,
        format!("# only here\nbootstrap.servers = {brokers}\nclient.id=strata-kafka-config-test\n"),
    )
    .expect("write");
    let bronze = |properties: &Path, extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .current_dir(dir.path())
            .args([
                "stream",
                "bronze",
                "--input-topic",
                &topic,
                "--lake",
                "lake",
            ])
            .args([
                "--source",
                "kc",
                "--stop-when-idle-ms",
                "1500",
                "--max-wait-ms",
                "50",
            ])
            .arg("--kafka-config")
            .arg(properties)
            .args(extra)
            .env_remove("STRATA_KAFKA_BROKERS")
            .env_remove("STRATA_KAFKA_CONFIG")
            .output()
            .expect("run");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{text}");
        text
    };
    let text = bronze(&file, &[]);
    assert!(text.contains("5 records copied"), "{text}");

    let nowhere = dir.path().join("nowhere.properties");
    std::fs::write(&nowhere, "bootstrap.servers=127.0.0.1:9\n").expect("write");
    let over = format!("bootstrap.servers={brokers}");
    let text = bronze(&nowhere, &["-X", &over]);
    assert!(
        text.contains("0 records copied"),
        "resumed from bronze: {text}"
    );
}
