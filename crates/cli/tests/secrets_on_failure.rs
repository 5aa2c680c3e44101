//! Every command that takes a credential, run the way it fails in production — the server
//! unreachable, the wrong port — with the same secret in every channel it accepts (URLs with a
//! password, password variables, `-X sasl.password`, a `--kafka-config` file, token and HMAC
//! variables): the secret must not appear in stdout, stderr (text and JSON logs), or any file
//! the run leaves in its working directory — lineage events and metrics files included. Error
//! paths are where connection strings leak.

use std::path::Path;
use std::process::Command;

const SECRET: &str = "hunter2-S3CRET-on-failure";

/// Runs `strata args…` in `dir` with every secret variable set; everything it printed, and
/// the text of every file it left in `dir` (besides the inputs written before).
fn run(dir: &Path, log_format: &str, args: &[&str], inputs: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["--log-format", log_format])
        .args(args)
        .current_dir(dir)
        // Lineage events and a metrics file land in the working directory, which is searched.
        .env("STRATA_LINEAGE", "lineage.ndjson")
        .env("STRATA_METRICS_FILE", "metrics.prom")
        .env("STRATA_TEST_SECRET", SECRET)
        .env("STRATA_REGISTRY_PASSWORD", SECRET)
        .env(
            "STRATA_CATALOG",
            format!("postgres://u:{SECRET}@127.0.0.1:1/catalog"),
        )
        // Debug logs too: a secret must not reach them either.
        .env("RUST_LOG", "debug")
        .output()
        .expect("run strata");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = String::new();
    for entry in walk(dir) {
        let name = entry.file_name().map(|n| n.to_string_lossy().to_string());
        if name.as_deref().is_some_and(|n| inputs.contains(&n)) {
            continue;
        }
        if let Ok(bytes) = std::fs::read(&entry) {
            files.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    (printed, files)
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn no_failing_command_prints_or_stores_its_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let write = |name: &str, text: String| std::fs::write(d.join(name), text).expect("input");
    write(
        "pg.yaml",
        "connection: { url: \"postgres://loader@127.0.0.1:1/crm?sslmode=disable\", \
         password_env: STRATA_TEST_SECRET, connect_timeout_secs: 1 }\n\
         tables:\n  - schema: public\n    name: customers\n"
            .to_string(),
    );
    write(
        "cdc.yaml",
        format!(
            "url: mysql://cdc:{SECRET}@127.0.0.1:1\ntables: [shop.orders]\n\
             state_file: cdc-state.json\nkafka_brokers: 127.0.0.1:1\n\
             kafka_properties: {{sasl.password: {SECRET}}}\n"
        ),
    );
    write(
        "x.yaml",
        format!(
            "name: x_iot\npreset: x_recent_search\nrequest:\n  url: http://127.0.0.1:1/2/tweets/search/recent?api_key={SECRET}\n  \
             query:\n    query: '#iot'\nauth: {{type: bearer, token_env: STRATA_TEST_SECRET}}\n\
             retry: {{base_ms: 10, max_ms: 20, max_attempts: 1}}\n\
             kafka: {{brokers: '127.0.0.1:1', topic: t}}\nstate_file: x-state.json\n"
        ),
    );
    write(
        "webhooks.yaml",
        "listen: 127.0.0.1:0\nkafka: {brokers: '127.0.0.1:1'}\ndead_letter_topic: dlq\n\
         sources:\n  pipefy:\n    preset: pipefy\n    topic: t\n    \
         hmac: {secret_env: STRATA_TEST_SECRET}\n"
            .to_string(),
    );
    write(
        "kafka.properties",
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.username=u\nsasl.password={SECRET}\n"
        ),
    );
    let inputs = [
        "pg.yaml",
        "cdc.yaml",
        "x.yaml",
        "webhooks.yaml",
        "kafka.properties",
    ];
    let sasl = format!("sasl.password={SECRET}");
    let pipeline = concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/iot.yaml");
    let registry = format!("http://u:{SECRET}@127.0.0.1:1");
    let commands: Vec<Vec<String>> = vec![
        vec![
            "ingest", "postgres", "--config", "pg.yaml", "--lake", "lake",
        ],
        vec![
            "cdc",
            "mysql",
            "--config",
            "cdc.yaml",
            "--kafka-config",
            "kafka.properties",
        ],
        vec![
            "ingest", "http", "--config", "x.yaml", "--once", "-X", &sasl,
        ],
        vec![
            "serve",
            "webhooks",
            "--config",
            "webhooks.yaml",
            "--kafka-config",
            "kafka.properties",
        ],
        vec![
            "stream",
            "avro",
            "--brokers",
            "127.0.0.1:1",
            "-X",
            &sasl,
            "--input-topic",
            "in",
            "--output-topic",
            "out",
            "--pipeline",
            pipeline,
            "--registry",
            &registry,
            "--registry-user",
            "u",
            "--stop-when-idle-ms",
            "1500",
        ],
        vec!["sql", "SELECT 1", "--lake", "lake"],
        vec![
            "batch",
            "--source",
            "iot",
            "--pipeline",
            pipeline,
            "--lake",
            "lake",
        ],
    ]
    .into_iter()
    .map(|c| c.into_iter().map(str::to_string).collect())
    .collect();
    for (args, log_format) in commands.iter().flat_map(|c| [(c, "text"), (c, "json")]) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (printed, files) = run(d, log_format, &args, &inputs);
        assert!(
            !printed.contains(SECRET),
            "`strata {}` ({log_format} logs) printed the secret:\n{printed}",
            args.join(" ")
        );
        assert!(
            !files.contains(SECRET),
            "`strata {}` left the secret in a file",
            args.join(" ")
        );
        assert!(
            !printed.is_empty(),
            "`strata {}` said nothing",
            args.join(" ")
        );
    }
}
