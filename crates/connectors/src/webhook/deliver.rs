//! Where the receiver stores an accepted request's record, and what "stored" means: the
//! request is answered 2xx only once [`Deliver::deliver`] says the broker acknowledged it.
//!
//! [`DirectDelivery`] produces each request's record on its own (the receiver as a library on
//! its own). `strata serve webhooks` hands records to the runtime's driver instead, whose Kafka
//! sink produces what many requests submitted together and answers each one.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::Result;
use crate::kafka::{KafkaConfig, OutRecord, ProducerSlot};

/// Stores records for the receiver.
pub trait Deliver: Send + Sync + 'static {
    /// Stores one record; `Ok` once the broker acknowledged it, `Err(why)` when it is not
    /// known to be stored (the request is answered 503 and its sender retries).
    fn deliver(&self, record: OutRecord) -> BoxFuture<'_, std::result::Result<(), String>>;

    /// Whether the broker answers within `timeout` (readiness). Blocking.
    fn reachable(&self, timeout: Duration) -> bool;

    /// Called once the receiver stopped accepting requests: waits until everything delivered
    /// is durable.
    fn finish(&self) -> BoxFuture<'_, Result<()>>;
}

/// Produces each record on its own, waiting at most `ack_timeout` for its acknowledgement.
#[derive(Debug)]
pub struct DirectDelivery {
    producer: Arc<ProducerSlot>,
    ack_timeout: Duration,
}

impl DirectDelivery {
    /// A producer on `kafka`.
    pub fn open(kafka: &KafkaConfig, ack_timeout: Duration) -> Result<Self> {
        Ok(DirectDelivery {
            producer: Arc::new(ProducerSlot::open(kafka)?),
            ack_timeout,
        })
    }
}

impl Deliver for DirectDelivery {
    fn deliver(&self, record: OutRecord) -> BoxFuture<'_, std::result::Result<(), String>> {
        Box::pin(async move {
            let sink = self.producer.get();
            let sent = tokio::time::timeout(self.ack_timeout, sink.send_all(&[record])).await;
            let result = match sent {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no acknowledgement within {:?}", self.ack_timeout)),
            };
            self.producer.replace_if_fatal(&sink);
            result
        })
    }

    fn reachable(&self, timeout: Duration) -> bool {
        self.producer.get().reachable(timeout)
    }

    fn finish(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let sink = self.producer.get();
            tokio::task::spawn_blocking(move || sink.flush())
                .await
                .map_err(|e| crate::error::ConnectorError::Internal(e.to_string()))?
        })
    }
}
