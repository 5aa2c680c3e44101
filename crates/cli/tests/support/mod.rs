//! Helpers shared by the CLI's integration tests: the real broker from `scripts/services.sh`
//! (or a loud skip outside CI), topic creation, reading a topic back, and a private tansu broker
//! whose log lives in S3 so it can be stopped and started again mid-test.
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The test broker, or `None` (with a loud message) outside CI when services are not up.
pub fn broker(test: &str) -> Option<String> {
    match std::env::var("STRATA_TEST_KAFKA") {
        Ok(b) => Some(b),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but STRATA_TEST_KAFKA is not: run `scripts/services.sh up`")
        }
        Err(_) => {
            eprintln!("SKIPPED {test}: no Kafka broker (run `scripts/services.sh up`)");
            None
        }
    }
}

/// A name no other test run uses.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}-{nanos}")
}

/// Creates topics (name, partitions).
pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
}

/// A record read back.
#[derive(Debug, Clone)]
pub struct Record {
    /// Partition.
    pub partition: i32,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers as text.
    pub headers: HashMap<String, String>,
}

impl Record {
    /// The value as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(self.value.as_deref().expect("a value")).expect("JSON value")
    }
}

/// Everything in `topic` (all partitions, in partition then offset order), read until nothing
/// new arrives for `quiet` — the broker's reported end of a partition can't be trusted (see
/// ../shared/SERVERS.md).
pub async fn read_all(brokers: &str, topic: &str, partitions: i32, quiet: Duration) -> Vec<Record> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    // A broker just restarted (or a loaded machine) can take far longer than `quiet` to serve
    // the first fetch; when the topic holds anything, wait that long for the first record.
    let holds_records = topic_holds_records(brokers, topic, partitions).await;
    let mut out = Vec::new();
    loop {
        let wait = if out.is_empty() && holds_records {
            FIRST_RECORD_WAIT
        } else {
            quiet
        };
        let Ok(m) = tokio::time::timeout(wait, consumer.recv()).await else {
            break;
        };
        let m = m.expect("message");
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Record {
            partition: m.partition(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers,
        });
    }
    out
}

/// How long `read_all` waits for the first record of a topic that holds some.
const FIRST_RECORD_WAIT: Duration = Duration::from_secs(90);

/// Whether any partition of `topic` reports a high watermark above 0. tansu under-reports the
/// end of a partition but never reports an empty one as holding records, so this only decides
/// how long to wait for the first record, never where to stop.
async fn topic_holds_records(brokers: &str, topic: &str, partitions: i32) -> bool {
    let (brokers, topic) = (brokers.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let probe: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .expect("watermark probe");
        (0..partitions).any(|p| {
            probe
                .fetch_watermarks(&topic, p, Duration::from_secs(30))
                .is_ok_and(|(_, high)| high > 0)
        })
    })
    .await
    .expect("watermark probe task")
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A private broker whose log lives in S3 (moto), so it can be stopped and started again.
pub struct DurableBroker {
    child: std::process::Child,
    /// Its port.
    pub port: u16,
    bucket: String,
}

impl DurableBroker {
    /// Creates a bucket for the log and starts the broker on a free port.
    pub fn create() -> Self {
        let endpoint = std::env::var("STRATA_TEST_S3_ENDPOINT").expect("S3 for the broker's log");
        let bucket = unique("tansu");
        let created = Command::new("curl")
            .args(["-sf", "-X", "PUT", &format!("{endpoint}/{bucket}")])
            .status()
            .expect("curl");
        assert!(created.success(), "bucket for the broker's log");
        Self::start(free_port(), &bucket)
    }

    /// Starts a broker on `port` with its log in `bucket`.
    pub fn start(port: u16, bucket: &str) -> Self {
        let bin =
            std::env::var("STRATA_TANSU_BIN").expect("STRATA_TANSU_BIN (scripts/services.sh env)");
        let endpoint = std::env::var("STRATA_TEST_S3_ENDPOINT").expect("STRATA_TEST_S3_ENDPOINT");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", &format!("s3://{bucket}/")])
            .envs([
                ("AWS_ENDPOINT", endpoint.as_str()),
                ("AWS_ALLOW_HTTP", "true"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_REGION", "us-east-1"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        DurableBroker {
            child,
            port,
            bucket: bucket.to_string(),
        }
    }

    /// `host:port`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker.
    pub fn stop(&mut self) {
        self.child.kill().expect("stop tansu");
        let _ = self.child.wait();
    }

    /// Stops the broker with SIGTERM (a graceful shutdown), waiting for it to exit.
    pub fn stop_gracefully(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port and log.
    pub fn start_again(&mut self) {
        let again = Self::start(self.port, &self.bucket);
        *self = again;
    }

    /// Stops, waits `down_for`, starts again.
    pub fn restart(&mut self, down_for: Duration) {
        self.stop();
        std::thread::sleep(down_for);
        self.start_again();
    }
}

impl Drop for DurableBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub mod contract;
