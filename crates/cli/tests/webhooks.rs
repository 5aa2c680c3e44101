//! `strata serve webhooks` as a process, driven by a real HTTP client (reqwest), storing into
//! the real broker: every kind of request gets its status and lands where it should (events
//! topic, dead-letter topic, or nowhere); 20,000 signed requests at concurrency 50 all
//! acknowledged and all in Kafka exactly as counted; a broker stopped mid-run turns requests
//! into 503 + Retry-After and, after its restart, every 2xx-answered event is in Kafka;
//! SIGTERM finishes cleanly.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use support::{DurableBroker, broker, create_topics, read_all, unique};

const PIPEFY_SECRET: &str = "pipefy-signing-secret";
const GENERIC_SECRET: &str = "generic-signing-secret";
const GENERIC_TOKEN: &str = "generic-shared-token";

fn sign(secret: &str, payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

struct Topics {
    pipefy: String,
    generic: String,
    dlq: String,
}

fn topics(prefix: &str) -> Topics {
    let p = unique(prefix);
    Topics {
        pipefy: format!("{p}.pipefy"),
        generic: format!("{p}.generic"),
        dlq: format!("{p}.dlq"),
    }
}

fn write_config(dir: &Path, brokers: &str, t: &Topics, ack_timeout_ms: u64) -> std::path::PathBuf {
    let path = dir.join("webhooks.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:0\nkafka: {{brokers: '{brokers}'}}\ndead_letter_topic: {dlq}\n\
             ack_timeout_ms: {ack_timeout_ms}\nretry_after_secs: 1\nsources:\n  pipefy:\n    \
             preset: pipefy\n    topic: {pipefy}\n    hmac: {{secret_env: TEST_PIPEFY_SECRET}}\n    \
             idempotency_header: X-Request-Id\n  generic:\n    topic: {generic}\n    \
             secret_header: {{name: X-Token, value_env: TEST_GENERIC_TOKEN}}\n    \
             hmac: {{header: X-Signature, secret_env: TEST_GENERIC_SECRET, prefix: 'sha256=', \
             signed: timestamp.body}}\n    timestamp: {{header: X-Timestamp, tolerance_secs: 300}}\n    \
             max_body_bytes: 2048\n",
            dlq = t.dlq,
            pipefy = t.pipefy,
            generic = t.generic,
        ),
    )
    .expect("config");
    path
}

struct Receiver {
    child: Child,
    base: String,
}

impl Receiver {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["serve", "webhooks", "--config"])
            .arg(config)
            // Lineage events beside the config: the receiver's run, START to COMPLETE.
            .env(
                "STRATA_LINEAGE",
                config
                    .with_file_name("lineage.ndjson")
                    .display()
                    .to_string(),
            )
            .env("TEST_PIPEFY_SECRET", PIPEFY_SECRET)
            .env("TEST_GENERIC_SECRET", GENERIC_SECRET)
            .env("TEST_GENERIC_TOKEN", GENERIC_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start receiver");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        Receiver { child, base }
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        self.child.wait().expect("wait")
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipefy_event(action: &str, card: u64) -> Vec<u8> {
    json!({"data": {"action": action, "card": {"id": card, "title": format!("Pedido {card}"),
        "pipe_id": "302554109"}, "from": {"id": 1, "name": "Em análise"},
        "to": {"id": 2, "name": "Aprovado"}}})
    .to_string()
    .into_bytes()
}

async fn post_pipefy(
    client: &reqwest::Client,
    base: &str,
    body: Vec<u8>,
    id: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/webhooks/pipefy"))
        .header("content-type", "application/json")
        .header("X-Pipefy-Signature", sign(PIPEFY_SECRET, &body))
        .header("X-Request-Id", id)
        .body(body)
        .send()
        .await
        .expect("send")
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_request_gets_its_status_and_its_place() {
    let Some(brokers) = broker("each_kind_of_request_gets_its_status_and_its_place") else {
        return;
    };
    let t = topics("wh");
    create_topics(&brokers, &[(&t.pipefy, 2), (&t.generic, 1), (&t.dlq, 1)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&write_config(dir.path(), &brokers, &t, 5000));
    let base = receiver.base.clone();
    let client = reqwest::Client::new();

    let mut want_events = Vec::new();
    // Pipefy: every documented action, signed.
    for (i, action) in [
        "card.create",
        "card.move",
        "card.field_update",
        "card.done",
        "card.delete",
    ]
    .iter()
    .enumerate()
    {
        let r = post_pipefy(
            &client,
            &base,
            pipefy_event(action, 904_512_377),
            &format!("ok-{i}"),
        )
        .await;
        assert_eq!(
            r.status(),
            200,
            "{action}: {}",
            r.text().await.unwrap_or_default()
        );
        want_events.push(format!("ok-{i}"));
    }
    // A bad signature: 401, nothing stored.
    let body = pipefy_event("card.move", 1);
    let r = client
        .post(format!("{base}/webhooks/pipefy"))
        .header("content-type", "application/json")
        .header("X-Pipefy-Signature", sign("not-the-secret", &body))
        .header("X-Request-Id", "forged")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    // Wrong content type: 415.
    let body = pipefy_event("card.move", 2);
    let r = client
        .post(format!("{base}/webhooks/pipefy"))
        .header("content-type", "text/plain")
        .header("X-Pipefy-Signature", sign(PIPEFY_SECRET, &body))
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 415);
    // Malformed JSON, correctly signed: 400, raw body in the dead-letter topic.
    let r = post_pipefy(
        &client,
        &base,
        b"{\"data\": {\"action\": ".to_vec(),
        "broken",
    )
    .await;
    assert_eq!(r.status(), 400);
    // An action the preset does not accept: kept in the dead-letter topic, answered 202.
    let r = post_pipefy(&client, &base, pipefy_event("card.late", 3), "late").await;
    assert_eq!(r.status(), 202);
    // Unknown source: 404.
    let r = client
        .post(format!("{base}/webhooks/nope"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);

    // Generic source: shared token + signed timestamp + tolerance + size limit.
    let generic = |body: &[u8], ts: u64, token: &str| {
        let signed = [ts.to_string().as_bytes(), b".", body].concat();
        client
            .post(format!("{base}/webhooks/generic"))
            .header("content-type", "application/json; charset=utf-8")
            .header("X-Token", token)
            .header("X-Timestamp", ts.to_string())
            .header(
                "X-Signature",
                format!("sha256={}", sign(GENERIC_SECRET, &signed)),
            )
            .body(body.to_vec())
    };
    let ok_body = br#"{"device":"d1","reading":21.5}"#;
    let r = generic(ok_body, now_secs(), GENERIC_TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let r = generic(ok_body, now_secs() - 3600, GENERIC_TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401, "stale timestamp");
    let r = generic(ok_body, now_secs(), "wrong-token")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401, "wrong shared token");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(4096));
    let r = generic(big.as_bytes(), now_secs(), GENERIC_TOKEN)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);

    // Probes and metrics.
    let health = client
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200);
    let ready = client
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for needle in [
        r#"strata_webhook_requests_total{source="pipefy",status="200"} 5"#,
        r#"strata_webhook_requests_total{source="pipefy",status="401"} 1"#,
        r#"strata_webhook_requests_total{source="pipefy",status="415"} 1"#,
        r#"strata_webhook_dead_letters_total{source="pipefy",reason="malformed_json"} 1"#,
        r#"strata_webhook_dead_letters_total{source="pipefy",reason="event_not_accepted"} 1"#,
        r#"strata_webhook_rejected_total{source="generic",check="stale_timestamp"} 1"#,
        r#"strata_webhook_rejected_total{source="generic",check="bad_secret"} 1"#,
        r#"strata_webhook_events_total{source="generic"} 1"#,
    ] {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    assert!(receiver.terminate().success(), "SIGTERM exits 0");

    // The receiver's OpenLineage run: from each source's endpoint to its topic and the dead
    // letters, started and completed, with no HMAC secret or token in any event.
    let lineage = std::fs::read_to_string(dir.path().join("lineage.ndjson")).expect("lineage");
    for secret in [PIPEFY_SECRET, GENERIC_SECRET, GENERIC_TOKEN] {
        assert!(!lineage.contains(secret), "a secret in the lineage events");
    }
    let runs: Vec<Value> = lineage
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    let states: Vec<&str> = runs
        .iter()
        .filter(|e| e["job"]["name"] == "webhooks")
        .map(|e| e["eventType"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["START", "COMPLETE"], "{lineage}");
    let done = &runs[runs.len() - 1];
    let inputs: BTreeSet<&str> = done["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        inputs,
        BTreeSet::from(["/webhooks/generic", "/webhooks/pipefy"])
    );
    let outputs: BTreeSet<&str> = done["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        outputs,
        BTreeSet::from([t.pipefy.as_str(), t.generic.as_str(), t.dlq.as_str()])
    );

    let events = read_all(&brokers, &t.pipefy, 2, Duration::from_secs(4)).await;
    let keys: Vec<String> = events
        .iter()
        .map(|r| r.headers["strata.sender_idempotency_key"].clone())
        .collect();
    assert_eq!(
        keys, want_events,
        "the five actions, once each, in order (one card = one key)"
    );
    for r in &events {
        assert_eq!(
            r.key.as_deref(),
            Some(&b"904512377"[..]),
            "keyed by card id"
        );
        let v = r.json();
        assert_eq!(v["source"], "pipefy");
        assert_eq!(v["event"]["data"]["card"]["id"], 904_512_377);
        assert!(v["received_at"].as_str().is_some_and(|s| s.ends_with('Z')));
    }
    let actions: Vec<Value> = events
        .iter()
        .map(|r| r.json()["event_type"].clone())
        .collect();
    assert_eq!(actions[1], "card.move");
    let generic_events = read_all(&brokers, &t.generic, 1, Duration::from_secs(3)).await;
    assert_eq!(generic_events.len(), 1);
    assert_eq!(generic_events[0].json()["event"]["reading"], 21.5);
    let dead = read_all(&brokers, &t.dlq, 1, Duration::from_secs(3)).await;
    let reasons: BTreeMap<String, String> = dead
        .iter()
        .map(|r| {
            (
                r.headers["strata.sender_idempotency_key"].clone(),
                r.headers["strata.reason_code"].clone(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("broken".into(), "malformed_json".into()),
            ("late".into(), "event_not_accepted".into())
        ])
    );
    let broken = dead
        .iter()
        .find(|r| r.headers["strata.sender_idempotency_key"] == "broken")
        .expect("dlq");
    assert_eq!(
        broken.value.as_deref(),
        Some(&b"{\"data\": {\"action\": "[..]),
        "raw body kept"
    );
    assert!(broken.headers["strata.reason"].contains("malformed JSON"));
}

/// Sends `n` signed Pipefy events at `concurrency`; returns (request id, status, has Retry-After).
async fn load(base: &str, n: usize, concurrency: usize, prefix: &str) -> Vec<(String, u16, bool)> {
    load_from(base, 0, n, concurrency, prefix).await
}

/// As [`load`], for cards `first..first + n`: distinct events need distinct bodies, since an
/// identical signed body inside the replay window is an exact replay (answered 200, not stored).
async fn load_from(
    base: &str,
    first: usize,
    n: usize,
    concurrency: usize,
    prefix: &str,
) -> Vec<(String, u16, bool)> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let base = Arc::new(base.to_string());
    futures::stream::iter(0..n)
        .map(|i| {
            let (client, base) = (client.clone(), base.clone());
            let id = format!("{prefix}-{i}");
            async move {
                let body = pipefy_event("card.move", (first + i) as u64);
                let sent = client
                    .post(format!("{base}/webhooks/pipefy"))
                    .header("content-type", "application/json")
                    .header("X-Pipefy-Signature", sign(PIPEFY_SECRET, &body))
                    .header("X-Request-Id", &id)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) => {
                        let retry = r.headers().contains_key("retry-after");
                        (id, r.status().as_u16(), retry)
                    }
                    Err(_) => (id, 0, false),
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_requests_at_concurrency_50_all_land_once() {
    let Some(brokers) = broker("twenty_thousand_requests_at_concurrency_50_all_land_once") else {
        return;
    };
    let t = topics("whload");
    create_topics(&brokers, &[(&t.pipefy, 3), (&t.generic, 1), (&t.dlq, 1)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&write_config(dir.path(), &brokers, &t, 10_000));
    let started = Instant::now();
    let answers = load(&receiver.base, 20_000, 50, "load").await;
    let secs = started.elapsed().as_secs_f64();
    let by_status: BTreeMap<u16, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.1).or_default() += 1;
        m
    });
    eprintln!("20,000 requests in {secs:.1} s: {by_status:?}");
    assert_eq!(by_status, BTreeMap::from([(200, 20_000)]), "zero errors");
    assert!(receiver.terminate().success());
    let events = read_all(&brokers, &t.pipefy, 3, Duration::from_secs(6)).await;
    let keys: BTreeSet<String> = events
        .iter()
        .map(|r| r.headers["strata.sender_idempotency_key"].clone())
        .collect();
    assert_eq!(
        events.len(),
        20_000,
        "Kafka holds exactly the accepted count"
    );
    assert_eq!(keys.len(), 20_000, "each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_answers_503_and_loses_no_acknowledged_event() {
    if broker("a_broker_outage_answers_503_and_loses_no_acknowledged_event").is_none() {
        return;
    }
    let mut kafka = DurableBroker::create();
    let brokers = kafka.brokers();
    let t = topics("whdown");
    create_topics(&brokers, &[(&t.pipefy, 1), (&t.generic, 1), (&t.dlq, 1)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&write_config(dir.path(), &brokers, &t, 1500));
    let base = receiver.base.clone();
    let run = tokio::spawn(async move {
        let mut all = Vec::new();
        // Waves, so that requests keep arriving before, during and after the outage.
        for wave in 0..16 {
            all.extend(load_from(&base, wave * 500, 500, 50, &format!("w{wave}")).await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        all
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut kafka = tokio::task::spawn_blocking(move || {
        kafka.stop();
        kafka
    })
    .await
    .expect("stop");
    let probe = reqwest::Client::new();
    let ready = format!("{}/ready", receiver.base);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down = probe.get(&ready).send().await.expect("ready").status();
    assert_eq!(down, 503, "not ready while the broker is down");
    let health = probe
        .get(format!("{}/health", receiver.base))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status(), 200, "alive all the same");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kafka = tokio::task::spawn_blocking(move || {
        kafka.start_again();
        kafka
    })
    .await
    .expect("start again");
    let answers = run.await.expect("load");
    let up = probe.get(&ready).send().await.expect("ready").status();
    assert_eq!(up, 200, "ready again after the restart");
    let by_status: BTreeMap<u16, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.1).or_default() += 1;
        m
    });
    eprintln!("outage run: {by_status:?}");
    assert!(
        by_status.get(&503).is_some_and(|n| *n > 0),
        "the outage was seen: {by_status:?}"
    );
    assert!(
        by_status.keys().all(|s| *s == 200 || *s == 503),
        "only 200 or 503: {by_status:?}"
    );
    assert!(
        answers.iter().filter(|a| a.1 == 503).all(|a| a.2),
        "every 503 says Retry-After"
    );
    let last_wave_ok = answers
        .iter()
        .filter(|a| a.0.starts_with("w15-") && a.1 == 200)
        .count();
    assert!(
        last_wave_ok > 0,
        "requests succeed again after the restart: {by_status:?}"
    );
    assert!(receiver.terminate().success());
    let events = read_all(&brokers, &t.pipefy, 1, Duration::from_secs(6)).await;
    let stored: BTreeSet<String> = events
        .iter()
        .map(|r| r.headers["strata.sender_idempotency_key"].clone())
        .collect();
    let acknowledged: BTreeSet<String> = answers
        .iter()
        .filter(|a| a.1 == 200)
        .map(|a| a.0.clone())
        .collect();
    let lost: Vec<&String> = acknowledged.difference(&stored).take(5).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events missing, e.g. {lost:?}",
        acknowledged.difference(&stored).count()
    );
    drop(kafka);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_load_answers_what_it_accepted_and_loses_nothing() {
    let Some(brokers) = broker("sigterm_mid_load_answers_what_it_accepted_and_loses_nothing")
    else {
        return;
    };
    let t = topics("whterm");
    create_topics(&brokers, &[(&t.pipefy, 1), (&t.generic, 1), (&t.dlq, 1)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&write_config(dir.path(), &brokers, &t, 5000));
    let base = receiver.base.clone();
    let run = tokio::spawn(async move { load(&base, 20_000, 50, "term").await });
    // Into the steady state (the first produce waits for the producer's id), then SIGTERM.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = tokio::task::spawn_blocking(move || receiver.terminate())
        .await
        .expect("terminate");
    assert!(status.success(), "SIGTERM under load exits 0");
    let answers = run.await.expect("load");
    let by_status: BTreeMap<u16, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.1).or_default() += 1;
        m
    });
    eprintln!("SIGTERM mid-load: {by_status:?} (0 = connection refused after the listener closed)");
    assert!(by_status.get(&200).is_some_and(|n| *n > 0), "{by_status:?}");
    assert!(
        by_status.keys().all(|s| *s == 200 || *s == 0),
        "an accepted request is answered 200, never dropped with a 5xx: {by_status:?}"
    );
    let stored: BTreeSet<String> = read_all(&brokers, &t.pipefy, 1, Duration::from_secs(4))
        .await
        .iter()
        .map(|r| r.headers["strata.sender_idempotency_key"].clone())
        .collect();
    let acknowledged: BTreeSet<String> = answers
        .iter()
        .filter(|a| a.1 == 200)
        .map(|a| a.0.clone())
        .collect();
    assert!(acknowledged.is_subset(&stored), "every 200 is in Kafka");
}

/// The contract between the receiver and `pipelines/pipefy.yaml`: Pipefy's documented payloads
/// (samples/pipefy/, plus done and delete) POSTed to the real receiver, read back from Kafka
/// exactly as stored, then run through the shipped pipeline: nothing quarantined, and every
/// column each event provides is filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_output_passes_the_shipped_pipefy_pipeline() {
    let Some(brokers) = broker("receiver_output_passes_the_shipped_pipefy_pipeline") else {
        return;
    };
    let t = topics("whc");
    create_topics(&brokers, &[(&t.pipefy, 1), (&t.generic, 1), (&t.dlq, 1)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&write_config(dir.path(), &brokers, &t, 5000));
    let client = reqwest::Client::new();
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/pipefy");
    let mut bodies: Vec<Vec<u8>> = ["create", "move", "field_update"]
        .iter()
        .map(|a| std::fs::read(samples.join(format!("pipefy_card_{a}.json"))).expect("sample"))
        .collect();
    bodies.push(pipefy_event("card.done", 904_512_377));
    bodies.push(pipefy_event("card.delete", 904_512_401));
    for (i, body) in bodies.iter().enumerate() {
        let r = post_pipefy(&client, &receiver.base, body.clone(), &format!("c-{i}")).await;
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }
    let stored: Vec<Vec<u8>> = read_all(&brokers, &t.pipefy, 1, Duration::from_secs(3))
        .await
        .into_iter()
        .filter_map(|r| r.value)
        .collect();
    assert_eq!(stored.len(), bodies.len());
    let (rows, quarantine) = support::contract::run_shipped("pipefy.yaml", &stored);
    support::contract::assert_nothing_quarantined(&quarantine);
    assert_eq!(rows.num_rows(), bodies.len());
    let action = |i| support::contract::text(&rows, "action", i).unwrap_or_default();
    for column in [
        "received_at",
        "idempotency_key",
        "action",
        "card_id",
        "card_title",
        "pipe_id",
    ] {
        assert_eq!(
            support::contract::nulls_where(&rows, column, |_| true),
            0,
            "{column}"
        );
    }
    let moves = |i: usize| action(i) == "card.move";
    for column in ["from_phase", "to_phase"] {
        assert_eq!(
            support::contract::nulls_where(&rows, column, moves),
            0,
            "{column}"
        );
    }
    let updates = |i: usize| action(i) == "card.field_update";
    for column in ["field_id", "new_value"] {
        assert_eq!(
            support::contract::nulls_where(&rows, column, updates),
            0,
            "{column}"
        );
    }
    let has_actor =
        |i: usize| ["card.create", "card.move", "card.field_update"].contains(&action(i).as_str());
    assert_eq!(
        support::contract::nulls_where(&rows, "actor_email", has_actor),
        0
    );
    let mut actions: Vec<String> = (0..rows.num_rows()).map(action).collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "card.create",
            "card.delete",
            "card.done",
            "card.field_update",
            "card.move"
        ]
    );
}

/// The reported loss: 5,000 requests, then 20,000 with the broker stopped by SIGTERM 3 s into
/// them and started again 5 s later, then 5,000 more, against tansu on S3 storage; every
/// request answered 200 must be in the topic afterwards. (The run that lost four of 30,043
/// used the same shape; a SIGKILL lost nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_broker_restart_mid_load_loses_no_acknowledged_event() {
    if broker("sigterm_broker_restart_mid_load_loses_no_acknowledged_event").is_none() {
        return;
    }
    let mut kafka = DurableBroker::create();
    let brokers = kafka.brokers();
    let t = topics("whterm");
    create_topics(&brokers, &[(&t.pipefy, 1), (&t.generic, 1), (&t.dlq, 1)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let receiver = Receiver::start(&write_config(dir.path(), &brokers, &t, 1500));
    let mut answers = load_from(&receiver.base, 0, 5_000, 50, "before").await;
    let base = receiver.base.clone();
    let during = tokio::spawn(async move {
        let mut all = Vec::new();
        // Waves, so that the load spans the stop and the restart.
        for wave in 0..10 {
            let first = 5_000 + wave * 2_000;
            all.extend(load_from(&base, first, 2_000, 50, &format!("during{wave}")).await);
        }
        all
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut kafka = tokio::task::spawn_blocking(move || {
        kafka.stop_gracefully();
        std::thread::sleep(Duration::from_secs(5));
        kafka.start_again();
        kafka
    })
    .await
    .expect("SIGTERM and restart");
    answers.extend(during.await.expect("load"));
    answers.extend(load_from(&receiver.base, 25_000, 5_000, 50, "after").await);
    let by_status: BTreeMap<u16, usize> = answers.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.1).or_default() += 1;
        m
    });
    eprintln!("SIGTERM restart run: {by_status:?}");
    assert!(receiver.terminate().success());
    let events = read_all(&brokers, &t.pipefy, 1, Duration::from_secs(8)).await;
    let stored: BTreeSet<String> = events
        .iter()
        .map(|r| r.headers["strata.sender_idempotency_key"].clone())
        .collect();
    let acknowledged: BTreeSet<String> = answers
        .iter()
        .filter(|a| a.1 == 200)
        .map(|a| a.0.clone())
        .collect();
    assert!(acknowledged.len() > 20_000, "{by_status:?}");
    let lost: Vec<&String> = acknowledged.difference(&stored).take(5).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events missing after a SIGTERM restart, e.g. {lost:?}",
        acknowledged.difference(&stored).count(),
        acknowledged.len()
    );
    kafka.stop();
}
