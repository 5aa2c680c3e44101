//! A producer that is replaced when it can no longer produce, for services that run for months.
//!
//! An idempotent producer whose epoch was fenced (seen when a broker restarts and loses its
//! producer state) fails every later send, and librdkafka does not flag that as fatal for a
//! non-transactional producer. The first user to notice swaps in a new one; records the old one
//! still held failed and are retried by whoever sent them.

use std::sync::{Arc, RwLock};

use super::config::KafkaConfig;
use super::sink::KafkaSink;
use crate::error::Result;

/// The producer in use, shared by everyone who produces or probes.
#[derive(Debug)]
pub struct ProducerSlot {
    current: RwLock<Arc<KafkaSink>>,
    config: KafkaConfig,
}

impl ProducerSlot {
    /// Connects the first producer.
    pub fn open(config: &KafkaConfig) -> Result<Self> {
        Ok(ProducerSlot {
            current: RwLock::new(Arc::new(KafkaSink::open(config, None)?)),
            config: config.clone(),
        })
    }

    /// The producer to use now.
    pub fn get(&self) -> Arc<KafkaSink> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces `used` with a new producer if it hit a fatal error and nobody replaced it yet.
    pub fn replace_if_fatal(&self, used: &Arc<KafkaSink>) {
        let Some(why) = used.fatal_error() else {
            return;
        };
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !Arc::ptr_eq(&current, used) {
            return; // another user already replaced it
        }
        match KafkaSink::open(&self.config, None) {
            Ok(fresh) => {
                tracing::warn!("the Kafka producer hit a fatal error ({why}); replaced it");
                *current = Arc::new(fresh);
            }
            Err(e) => tracing::warn!(
                "the Kafka producer hit a fatal error ({why}); a new one failed: {e}"
            ),
        }
    }
}
