//! Where lineage events go, sent in the background so a job never waits on them.
//!
//! `emit` puts an event in a bounded buffer ([`BUFFER`] events) and returns at once. A task
//! sends the buffer in order: appended as one line to an NDJSON file, or posted to an
//! OpenLineage HTTP endpoint (`<url>/api/v1/lineage`, what Marquez and DataHub accept). An
//! endpoint that is down is retried with backoff while the buffer holds the events behind it;
//! once the buffer is full, new events are dropped and counted. At the end of the job,
//! [`LineageEmitter::close`] waits a bounded time for the buffer to drain and counts what is
//! left as dropped.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use strata_connectors::secret::redact_url;
use tokio::sync::mpsc;

/// Events held while the endpoint is slow or down.
pub const BUFFER: usize = 1024;

/// What the emitter did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineageStats {
    /// Events delivered.
    pub sent: u64,
    /// Events dropped (buffer full, or not delivered when the job ended).
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
}

/// Sends lineage events to a file or an HTTP endpoint, or nowhere.
#[derive(Debug)]
pub struct LineageEmitter {
    tx: Mutex<Option<mpsc::Sender<Value>>>,
    counters: Arc<Counters>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    target: String,
}

enum Target {
    File(std::path::PathBuf),
    Http(String),
}

impl LineageEmitter {
    /// An emitter that sends nothing.
    pub fn disabled() -> Self {
        LineageEmitter {
            tx: Mutex::new(None),
            counters: Arc::default(),
            task: Mutex::new(None),
            target: String::new(),
        }
    }

    /// Sends to `target`: `http(s)://host:port[/path]` (the OpenLineage HTTP transport; a URL
    /// without a path posts to `/api/v1/lineage`; `STRATA_LINEAGE_API_KEY`, if set, is sent as
    /// a bearer token), or an NDJSON file (`file://…` or a path). Must be called inside a tokio
    /// runtime.
    pub fn open(target: &str) -> Self {
        let parsed = if target.starts_with("http://") || target.starts_with("https://") {
            let rest = target.split_once("://").map(|(_, r)| r).unwrap_or_default();
            if rest.contains('/') {
                Target::Http(target.to_string())
            } else {
                Target::Http(format!("{target}/api/v1/lineage"))
            }
        } else {
            Target::File(target.strip_prefix("file://").unwrap_or(target).into())
        };
        let (tx, rx) = mpsc::channel(BUFFER);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(send_all(parsed, rx, counters.clone()));
        LineageEmitter {
            tx: Mutex::new(Some(tx)),
            counters,
            task: Mutex::new(Some(task)),
            target: redact_url(target),
        }
    }

    /// [`LineageEmitter::open`] for a configured target, else [`LineageEmitter::disabled`].
    pub fn for_target(target: Option<&str>) -> Self {
        target.map_or_else(LineageEmitter::disabled, LineageEmitter::open)
    }

    /// Whether events go anywhere.
    pub fn enabled(&self) -> bool {
        self.tx.lock().is_ok_and(|tx| tx.is_some())
    }

    /// Queues `event`; never waits. A full buffer drops it (counted).
    pub fn emit(&self, event: Value) {
        let Ok(guard) = self.tx.lock() else {
            return;
        };
        let Some(tx) = guard.as_ref() else {
            return;
        };
        match tx.try_send(event) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> LineageStats {
        LineageStats {
            sent: self.counters.sent.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
        }
    }

    /// Waits up to `within` for the queued events to be sent; what is left is dropped and
    /// counted. Logs a warning naming the target when anything was dropped.
    pub async fn close(&self, within: Duration) -> LineageStats {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let abort = task.abort_handle();
            if tokio::time::timeout(within, task).await.is_err() {
                abort.abort();
            }
        }
        let c = &self.counters;
        // Queued events the sender gave up on were taken off `queued` already.
        let left = c
            .queued
            .load(Ordering::Relaxed)
            .saturating_sub(c.sent.load(Ordering::Relaxed));
        c.dropped.fetch_add(left, Ordering::Relaxed);
        let stats = self.stats();
        if stats.dropped > 0 {
            tracing::warn!(
                target = %self.target,
                sent = stats.sent,
                dropped = stats.dropped,
                "lineage events dropped: the endpoint did not take them in time"
            );
        }
        stats
    }
}

async fn send_all(target: Target, mut rx: mpsc::Receiver<Value>, counters: Arc<Counters>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok();
    let api_key = std::env::var("STRATA_LINEAGE_API_KEY").ok();
    while let Some(event) = rx.recv().await {
        let delivered = match &target {
            Target::File(path) => append_line(path, &event),
            Target::Http(url) => {
                let Some(client) = &client else {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    counters.queued.fetch_sub(1, Ordering::Relaxed);
                    continue;
                };
                // Retried until it is taken: the job ends the wait (close), not the endpoint.
                let mut backoff = Duration::from_millis(50);
                let shown = redact_url(url);
                loop {
                    let mut request = client.post(url).json(&event);
                    if let Some(key) = &api_key {
                        request = request.bearer_auth(key);
                    }
                    match request.send().await {
                        Ok(r) if r.status().is_success() => break true,
                        Ok(r) if r.status().is_client_error() => {
                            tracing::warn!(status = %r.status(), url = %shown, "lineage endpoint refused an event");
                            break false;
                        }
                        _ => {
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(1));
                        }
                    }
                }
            }
        };
        if delivered {
            counters.sent.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            counters.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn append_line(path: &std::path::Path, event: &Value) -> bool {
    let mut line = event.to_string();
    line.push('\n');
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = &written {
        tracing::warn!(path = %path.display(), error = %e, "cannot write a lineage event");
    }
    written.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_gets_one_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lineage.ndjson");
        let e = LineageEmitter::open(&path.display().to_string());
        for i in 0..3 {
            e.emit(serde_json::json!({ "n": i }));
        }
        let stats = e.close(Duration::from_secs(5)).await;
        assert_eq!(
            stats,
            LineageStats {
                sent: 3,
                dropped: 0
            }
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
    }

    #[tokio::test]
    async fn a_down_endpoint_neither_blocks_nor_loses_events_silently() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = LineageEmitter::open(&format!("http://127.0.0.1:{port}"));
        let started = std::time::Instant::now();
        for i in 0..(BUFFER + 10) {
            e.emit(serde_json::json!({ "n": i }));
        }
        assert!(started.elapsed() < Duration::from_secs(1), "emit waited");
        let stats = e.close(Duration::from_millis(300)).await;
        assert_eq!(stats.sent, 0);
        assert_eq!(stats.dropped, (BUFFER + 10) as u64);
    }
}
