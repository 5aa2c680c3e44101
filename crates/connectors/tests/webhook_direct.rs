//! The webhook receiver as a library on its own (`WebhookServer::bind`, one produce per request
//! through `DirectDelivery`), against the tansu of `scripts/services.sh`: a signed Pipefy event
//! is answered 200 only with its envelope in Kafka, keyed by card id; a bad signature is 401 and
//! stores nothing. Skips loudly without the broker unless `CI` is set (then it fails).

use std::time::Duration;

use hmac::{Hmac, Mac};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use strata_connectors::kafka::OutRecord;
use strata_connectors::webhook::deliver::{Deliver, DirectDelivery};
use strata_connectors::webhook::{WebhookConfig, WebhookServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "direct-pipefy-secret";

/// `DirectDelivery`, counting the readiness probes that reach Kafka.
struct CountingDelivery {
    inner: DirectDelivery,
    probes: Arc<AtomicUsize>,
}

impl Deliver for CountingDelivery {
    fn deliver(&self, record: OutRecord) -> BoxFuture<'_, std::result::Result<(), String>> {
        self.inner.deliver(record)
    }
    fn reachable(&self, timeout: Duration) -> bool {
        self.probes.fetch_add(1, Ordering::SeqCst);
        self.inner.reachable(timeout)
    }
    fn finish(&self) -> BoxFuture<'_, strata_connectors::Result<()>> {
        self.inner.finish()
    }
}

/// One GET over a fresh connection; the status code.
async fn get(addr: std::net::SocketAddr, path: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("read");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn sign(payload: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// One HTTP/1.1 POST over a fresh connection; the status code.
async fn post(addr: std::net::SocketAddr, body: &[u8], signature: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /webhooks/pipefy HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         X-Pipefy-Signature: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.expect("write");
    s.write_all(body).await.expect("write");
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.expect("read");
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_signed_event_is_stored_before_its_200_and_a_forged_one_is_not() {
    let Ok(brokers) = std::env::var("STRATA_TEST_KAFKA") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but STRATA_TEST_KAFKA is not: run scripts/services.sh up"
        );
        eprintln!("SKIPPED: STRATA_TEST_KAFKA is unset");
        return;
    };
    // SAFETY: set before any thread of this test exists (the runtime is built below).
    unsafe { std::env::set_var("TEST_DIRECT_PIPEFY_SECRET", SECRET) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let tag = format!(
            "{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        let (topic, dlq) = (format!("direct_pipefy_{tag}"), format!("direct_dlq_{tag}"));
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("admin");
        let new = [
            NewTopic::new(&topic, 1, TopicReplication::Fixed(1)),
            NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
        ];
        for r in admin
            .create_topics(&new, &AdminOptions::new())
            .await
            .expect("topics")
        {
            r.expect("topic");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("webhooks.yaml");
        std::fs::write(
            &file,
            format!(
                "listen: 127.0.0.1:0\nkafka: {{brokers: '{brokers}'}}\ndead_letter_topic: {dlq}\n\
                 sources:\n  pipefy:\n    preset: pipefy\n    topic: {topic}\n    \
                 hmac: {{secret_env: TEST_DIRECT_PIPEFY_SECRET}}\n"
            ),
        )
        .expect("config");
        let config = WebhookConfig::from_file(&file).expect("config");
        let probes = Arc::new(AtomicUsize::new(0));
        let deliver = CountingDelivery {
            inner: DirectDelivery::open(
                &WebhookServer::kafka_config(&config).expect("kafka"),
                config.ack_timeout(),
            )
            .expect("producer"),
            probes: probes.clone(),
        };
        let server = WebhookServer::bind_with(&config, "webhooks.yaml", Arc::new(deliver))
            .await
            .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));

        let body = br#"{"data":{"action":"card.move","card":{"id":4242,"title":"Pedido"}}}"#;
        assert_eq!(post(addr, body, &sign(body)).await, 200);
        // A captured request replayed as is: answered 200 (the sender may retry) but not stored
        // again (Pipefy signs no timestamp, so the signature alone never expires).
        assert_eq!(post(addr, body, &sign(body)).await, 200, "an exact replay");
        // Forty readiness checks at once cost one Kafka probe (the answer is reused for 1 s).
        let checks: Vec<_> = (0..40).map(|_| tokio::spawn(get(addr, "/ready"))).collect();
        for c in checks {
            assert_eq!(c.await.expect("task"), 200);
        }
        let n = probes.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} readiness probes for 40 checks");
        let forged = br#"{"data":{"action":"card.move","card":{"id":1,"title":"x"}}}"#;
        assert_eq!(post(addr, forged, &sign(b"something else")).await, 401);
        let _ = stop.send(());
        let totals = serving.await.expect("task").expect("serve");
        assert_eq!(totals.events, 1);

        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("direct-reader-{tag}"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .expect("partition");
        consumer.assign(&tpl).expect("assign");
        let mut got = Vec::new();
        while let Ok(m) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await {
            let m = m.expect("record");
            let value: serde_json::Value =
                serde_json::from_slice(m.payload().expect("value")).expect("json");
            got.push((
                m.key().map(|k| String::from_utf8_lossy(k).to_string()),
                value,
            ));
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0.as_deref(), Some("4242"));
        assert_eq!(got[0].1["event"]["data"]["card"]["id"], 4242);
        assert_eq!(got[0].1["source"], "pipefy");
    });
}
