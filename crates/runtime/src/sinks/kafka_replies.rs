//! Records of waiting requests to Kafka, each request answered with its own record's outcome
//! (`strata serve webhooks`).
//!
//! A batch from [`crate::sources::webhook::WebhookSource`] is produced at once on a task of its
//! own (batches overlap in the producer, as concurrent requests do) and every acknowledgement
//! awaited; each row's request is told "stored" or why not. A broker that is
//! down or slow is not a failure of the run: the requests concerned are answered 503 by the
//! receiver and retried by their senders, and the run goes on. A producer that can no longer
//! produce (a fenced idempotence epoch after a broker restart) is replaced
//! ([`ProducerSlot::replace_if_fatal`]). The commit stores nothing: the answers are the commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::UInt64Type;
use strata_connectors::kafka::ProducerSlot;

use crate::contract::{CommitReport, Committed, Committer, Sink, StateUpdate};
use crate::error::{Result, RuntimeError};
use crate::position::Position;
use crate::sinks::kafka_records::records_of;
use crate::sources::webhook::PendingReplies;

/// Produces request records and answers each request.
pub struct RepliedRecordsSink {
    producer: Arc<ProducerSlot>,
    replies: Arc<PendingReplies>,
    ack_timeout: Duration,
    stored: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    since_commit: u64,
    in_flight: tokio::task::JoinSet<()>,
}

impl std::fmt::Debug for RepliedRecordsSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepliedRecordsSink")
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl RepliedRecordsSink {
    /// A sink producing through `producer`, answering `replies`, waiting at most `ack_timeout`
    /// for a batch's acknowledgements.
    pub fn new(
        producer: Arc<ProducerSlot>,
        replies: Arc<PendingReplies>,
        ack_timeout: Duration,
    ) -> Self {
        RepliedRecordsSink {
            producer,
            replies,
            ack_timeout,
            stored: Arc::new(AtomicU64::new(0)),
            failed: Arc::new(AtomicU64::new(0)),
            since_commit: 0,
            in_flight: tokio::task::JoinSet::new(),
        }
    }

    /// Records acknowledged, and records answered as not stored (shared counters).
    pub fn counts(&self) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
        (self.stored.clone(), self.failed.clone())
    }
}

/// Produces one batch and answers each of its requests (its own task, so batches overlap in the
/// producer the way concurrent requests did).
async fn deliver_batch(
    producer: Arc<ProducerSlot>,
    replies: Arc<PendingReplies>,
    ack_timeout: Duration,
    ids: Vec<u64>,
    records: Vec<strata_connectors::kafka::OutRecord>,
    counts: (Arc<AtomicU64>, Arc<AtomicU64>),
) {
    let sink = producer.get();
    let outcomes: Vec<std::result::Result<(), String>> =
        match tokio::time::timeout(ack_timeout, sink.send_each(&records)).await {
            Ok(outcomes) => outcomes
                .into_iter()
                .map(|o| o.map_err(|e| e.to_string()))
                .collect(),
            Err(_) => {
                let why = format!("no acknowledgement within {ack_timeout:?}");
                vec![Err(why); records.len()]
            }
        };
    let mut any_failed = false;
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        if outcome.is_ok() {
            counts.0.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.1.fetch_add(1, Ordering::Relaxed);
            any_failed = true;
        }
        replies.answer(id, outcome);
    }
    if any_failed {
        producer.replace_if_fatal(&sink);
    }
}

#[async_trait::async_trait]
impl Sink for RepliedRecordsSink {
    async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        let ids = rows
            .column_by_name("request")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| RuntimeError::Stage {
                stage: "sink",
                message: "a webhook batch without its `request` ids".into(),
            })?
            .values()
            .to_vec();
        let records = records_of(rows, "", &[])?;
        self.since_commit = self.since_commit.saturating_add(records.len() as u64);
        // Finished deliveries are reaped here, so the set holds only batches in flight (bounded
        // by the receiver's `max_in_flight` requests).
        while self.in_flight.try_join_next().is_some() {}
        self.in_flight.spawn(deliver_batch(
            self.producer.clone(),
            self.replies.clone(),
            self.ack_timeout,
            ids,
            records,
            (self.stored.clone(), self.failed.clone()),
        ));
        Ok(())
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        Err(RuntimeError::Stage {
            stage: "sink",
            message: format!(
                "{} quarantined rows reached the webhook sink, which has no quarantine",
                rows.num_rows()
            ),
        })
    }

    async fn close(&mut self) -> Result<()> {
        // Every request taken is answered before the producer is flushed.
        while self.in_flight.join_next().await.is_some() {}
        let producer = self.producer.get();
        tokio::task::spawn_blocking(move || producer.flush().map_err(RuntimeError::from))
            .await
            .map_err(|e| RuntimeError::Stage {
                stage: "sink",
                message: format!("flushing the producer: {e}"),
            })??;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Committer for RepliedRecordsSink {
    async fn committed(&mut self) -> Result<Committed> {
        Ok(Committed::default())
    }

    async fn commit(&mut self, position: &Position, _state: StateUpdate) -> Result<CommitReport> {
        let rows = std::mem::take(&mut self.since_commit);
        Ok(CommitReport {
            rows,
            quarantined: 0,
            covers: position.to_json(),
            units: 0,
            conflicts: 0,
        })
    }
}
