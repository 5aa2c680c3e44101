//! The webhook receiver as a source: requests the HTTP server accepted, taken as batches of
//! Kafka records, each row with the id of the request waiting for it.
//!
//! The receiver ([`strata_connectors::webhook::WebhookServer`]) is given a [`WebhookInbox`] as
//! its [`Deliver`]: each accepted request submits its record and waits. [`WebhookSource`] hands
//! out what was submitted since the last batch (many concurrent requests share one produce), and
//! the sink ([`crate::sinks::RepliedRecordsSink`]) answers every request once the broker
//! acknowledged (or refused) its record. Nothing is seeked: a request that was not answered
//! "stored" is retried by its sender, so a restart starts empty. The source ends when the
//! receiver has stopped and dropped its inbox, after the requests in flight were answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use futures::future::BoxFuture;
use strata_connectors::kafka::{OutRecord, ProducerSlot};
use strata_connectors::webhook::Deliver;
use tokio::sync::{mpsc, oneshot};

use crate::contract::{Polled, Source};
use crate::error::{Result, RuntimeError};
use crate::position::Position;
use crate::sinks::kafka_records::{encode_headers, routed_columns, routed_records_schema};

/// How long a poll waits for the first request before the source reports idle.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// The answer a waiting request gets: stored, or why not.
pub type Reply = std::result::Result<(), String>;

/// Requests waiting for their answer, by id (shared by the source and the sink).
#[derive(Debug, Default)]
pub struct PendingReplies {
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
}

impl PendingReplies {
    fn park(&self, id: u64, reply: oneshot::Sender<Reply>) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id, reply);
        }
    }

    /// Answers request `id` (a request that gave up waiting is simply gone).
    pub fn answer(&self, id: u64, reply: Reply) {
        let sender = self.waiting.lock().ok().and_then(|mut w| w.remove(&id));
        if let Some(sender) = sender {
            let _ = sender.send(reply);
        }
    }
}

/// What a request submits.
struct Submission {
    record: OutRecord,
    reply: oneshot::Sender<Reply>,
}

/// The receiver's side: submit a record, wait for its answer.
pub struct WebhookInbox {
    submit: mpsc::Sender<Submission>,
    producer: Arc<ProducerSlot>,
    ack_timeout: Duration,
}

impl std::fmt::Debug for WebhookInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookInbox")
            .field("ack_timeout", &self.ack_timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookInbox {
    /// Records submitted and not yet taken by the source (the queue in front of the driver).
    pub fn waiting(&self) -> usize {
        self.submit.max_capacity() - self.submit.capacity()
    }
}

impl Deliver for WebhookInbox {
    fn deliver(&self, record: OutRecord) -> BoxFuture<'_, Reply> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let waited = tokio::time::timeout(self.ack_timeout, async {
                self.submit
                    .send(Submission { record, reply })
                    .await
                    .map_err(|_| "the delivery pipeline has stopped".to_string())?;
                answer
                    .await
                    .map_err(|_| "the delivery pipeline stopped before answering".to_string())?
            })
            .await;
            waited.unwrap_or_else(|_| {
                Err(format!("no acknowledgement within {:?}", self.ack_timeout))
            })
        })
    }

    fn reachable(&self, timeout: Duration) -> bool {
        self.producer.get().reachable(timeout)
    }

    fn finish(&self) -> BoxFuture<'_, strata_connectors::Result<()>> {
        // The driver flushes the producer when the source ends (after the inbox is dropped).
        Box::pin(async { Ok(()) })
    }
}

/// The schema of a webhook batch: [`routed_records_schema`], per-record `headers`, and the
/// `request` id the answer goes to.
pub fn webhook_records_schema() -> SchemaRef {
    let mut fields: Vec<_> = routed_records_schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new("headers", DataType::Utf8, false)));
    fields.push(Arc::new(Field::new("request", DataType::UInt64, false)));
    Arc::new(Schema::new(fields))
}

/// Requests taken from the inbox, a batch at a time.
pub struct WebhookSource {
    submissions: mpsc::Receiver<Submission>,
    replies: Arc<PendingReplies>,
    next_id: u64,
    max_batch: usize,
    schema: SchemaRef,
}

impl std::fmt::Debug for WebhookSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSource")
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

/// A source, the inbox the receiver submits to (at most `max_in_flight` waiting), and the
/// replies the sink answers.
pub fn webhook_source(
    producer: Arc<ProducerSlot>,
    ack_timeout: Duration,
    max_in_flight: usize,
) -> (WebhookSource, WebhookInbox, Arc<PendingReplies>) {
    let (submit, submissions) = mpsc::channel(max_in_flight.max(1));
    let replies = Arc::new(PendingReplies::default());
    let source = WebhookSource {
        submissions,
        replies: replies.clone(),
        next_id: 0,
        max_batch: 1024,
        schema: webhook_records_schema(),
    };
    let inbox = WebhookInbox {
        submit,
        producer,
        ack_timeout,
    };
    (source, inbox, replies)
}

impl WebhookSource {
    fn batch(&mut self, taken: Vec<Submission>) -> Result<(RecordBatch, u64)> {
        let mut ids = Vec::with_capacity(taken.len());
        let mut records = Vec::with_capacity(taken.len());
        for s in taken {
            let id = self.next_id;
            self.next_id += 1;
            self.replies.park(id, s.reply);
            ids.push(id);
            records.push(s.record);
        }
        let headers: StringArray = records
            .iter()
            .map(|r| Some(encode_headers(&r.headers)))
            .collect();
        let mut columns = routed_columns(&records);
        columns.push(Arc::new(headers));
        columns.push(Arc::new(UInt64Array::from(ids)));
        let batch = RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| {
            RuntimeError::Stage {
                stage: "source",
                message: format!("a webhook batch: {e}"),
            }
        })?;
        Ok((batch, self.next_id))
    }
}

#[async_trait::async_trait]
impl Source for WebhookSource {
    fn name(&self) -> String {
        "webhooks".into()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    async fn seek(&mut self, _committed: Option<&Position>) -> Result<()> {
        // Nothing to resume: unanswered requests are retried by their senders.
        Ok(())
    }

    async fn next(&mut self) -> Result<Polled> {
        let first = match tokio::time::timeout(POLL_WAIT, self.submissions.recv()).await {
            Err(_) => return Ok(Polled::Idle),
            Ok(None) => return Ok(Polled::End),
            Ok(Some(s)) => s,
        };
        let mut taken = vec![first];
        while taken.len() < self.max_batch {
            match self.submissions.try_recv() {
                Ok(s) => taken.push(s),
                Err(_) => break,
            }
        }
        let (batch, taken_so_far) = self.batch(taken)?;
        Ok(Polled::Batch {
            batch,
            position: Some(Position::Pushed {
                requests: taken_so_far,
            }),
        })
    }
}
