//! What the runtime's integration tests share: the IoT pipeline, its events, a scripted
//! one-partition log that fails where told, and the servers of `scripts/services.sh`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use strata_core::PipelineSpec;
use strata_runtime::{Polled, Position, Result, RuntimeError, Source};

pub fn spec() -> PipelineSpec {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../pipelines/iot.yaml"
    ))
    .expect("iot.yaml");
    PipelineSpec::from_yaml(&text).expect("spec")
}

pub fn events() -> Vec<String> {
    let faults = strata_core::sample::IotFaults {
        malformed: 0.03,
        invalid: 0.03,
        duplicates: 0.05,
    };
    strata_core::sample::iot_events(1_500, 11, faults, 1_763_646_312_000)
}

pub fn failure(what: &str) -> RuntimeError {
    RuntimeError::Stage {
        stage: "source",
        message: format!("scripted failure: {what}"),
    }
}

/// A one-partition log: batches of scripted sizes, each a commit boundary at its next offset;
/// fails once at `fail_at` (a call count) if set.
pub struct ScriptedLog {
    pub records: Arc<Vec<String>>,
    pub next: usize,
    pub sizes: Vec<usize>,
    pub calls: usize,
    pub fail_at: Option<usize>,
}

#[async_trait::async_trait]
impl Source for ScriptedLog {
    fn name(&self) -> String {
        "scripted".into()
    }

    fn schema(&self) -> SchemaRef {
        strata_core::lineage::file_input_schema()
    }

    async fn seek(&mut self, committed: Option<&Position>) -> Result<()> {
        self.next = committed
            .and_then(|p| p.kafka_offsets())
            .and_then(|o| o.get(&0))
            .map_or(0, |o| *o as usize);
        Ok(())
    }

    async fn next(&mut self) -> Result<Polled> {
        self.calls += 1;
        if self.fail_at == Some(self.calls) {
            return Err(failure("the source broke"));
        }
        if self.next >= self.records.len() {
            return Ok(Polled::End);
        }
        let size = self.sizes[self.calls % self.sizes.len()].max(1);
        let end = (self.next + size).min(self.records.len());
        let batch = strata_core::lineage::file_batch(
            &self.records[self.next..end],
            "iot",
            "log",
            self.next as u64 + 1,
            0,
        )?;
        self.next = end;
        Ok(Polled::Batch {
            batch,
            position: Some(Position::kafka(BTreeMap::from([(0, end as i64)]))),
        })
    }
}

/// The address in `var` (set by `scripts/services.sh env`); `None` (the test skips, saying so)
/// when unset, a panic when `CI` is set.
pub fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {var} is not: run scripts/services.sh up")
        }
        Err(_) => {
            eprintln!("SKIPPED: {var} is unset (source \"$(scripts/services.sh env)\")");
            None
        }
    }
}

/// A name no other run uses: `prefix_pid_nanos`.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// Creates one-partition topics on `brokers`.
pub async fn create_topics(brokers: &str, topics: &[&str]) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin");
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic");
    }
}
