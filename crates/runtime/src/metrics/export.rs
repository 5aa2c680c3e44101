//! Where [`StrataMetrics`] go:
//! - [`MetricsServer`]: `GET /metrics` (OpenMetrics text) for long-running commands, scraped
//!   by Prometheus, behind the same connection limit and header timeout as Strata's other
//!   servers;
//! - [`write_textfile`]: the Prometheus text format, written atomically (temporary file and
//!   rename) for node_exporter's textfile collector, after a batch job;
//! - [`push`]: the same text `PUT` to a Pushgateway under `job/<job>`, after a batch job.
//!
//! Batch jobs end before a scrape would see them, which is why they push or write a file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use strata_connectors::http_serve::{ConnectionCounters, ServeLimits, serve};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::StrataMetrics;
use crate::error::{Result, RuntimeError};

/// The OpenMetrics content type `GET /metrics` answers with.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A running `GET /metrics` endpoint.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves `metrics` until [`MetricsServer::stop`].
    pub async fn bind(addr: SocketAddr, metrics: Arc<StrataMetrics>) -> Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| RuntimeError::Config {
                what: "--metrics-addr".to_string(),
                problem: format!("cannot listen on {addr} for /metrics: {e}"),
                hint: "pick a free port with --metrics-addr (e.g. 127.0.0.1:9464)",
            })?;
        let local_addr = listener.local_addr().unwrap_or(addr);
        let router = Router::new().route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { ([(CONTENT_TYPE, OPENMETRICS)], metrics.render()).into_response() }
            }),
        );
        let limits = ServeLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(2),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            router,
            limits,
            Arc::new(ConnectionCounters::default()),
            async move {
                let _ = stopped.await;
            },
        ));
        tracing::info!(addr = %local_addr, "serving Prometheus metrics on /metrics");
        Ok(MetricsServer {
            local_addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on (the port, when bound to 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting and lets a scrape in flight finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// The registry in the Prometheus text format (0.0.4), which node_exporter's textfile collector
/// and the Pushgateway parse: OpenMetrics counters are typed under their `_total` name, and the
/// `# UNIT` and `# EOF` lines are left out.
pub fn text_format(metrics: &StrataMetrics) -> String {
    let open = metrics.render();
    let mut out = String::with_capacity(open.len());
    let mut help: Option<&str> = None;
    for line in open.lines() {
        if line.starts_with("# EOF") || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some(h) = help.take() {
                let text = h.split_once(' ').map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Writes the metrics to `path` atomically, for node_exporter's textfile collector.
pub fn write_textfile(path: &Path, metrics: &StrataMetrics) -> Result<()> {
    let io = |e: std::io::Error| RuntimeError::Config {
        what: "--metrics-file".to_string(),
        problem: format!("cannot write metrics to {}: {e}", path.display()),
        hint: "--metrics-file must name a file in a writable folder",
    };
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, text_format(metrics)).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// `PUT`s the metrics to a Pushgateway as job `job` (replacing that job's previous push).
pub async fn push(gateway: &str, job: &str, metrics: &StrataMetrics) -> Result<()> {
    let url = format!(
        "{}/metrics/job/{}",
        gateway.trim_end_matches('/'),
        url_segment(job)
    );
    let transient = |problem: String| RuntimeError::Stage {
        stage: "metrics",
        message: problem,
    };
    let response = reqwest::Client::new()
        .put(&url)
        .header(CONTENT_TYPE.as_str(), "text/plain; version=0.0.4")
        .timeout(Duration::from_secs(10))
        .body(text_format(metrics))
        .send()
        .await
        .map_err(|e| transient(format!("pushing metrics to the Pushgateway failed: {e}")))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(transient(format!(
            "the Pushgateway answered {status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    Ok(())
}

/// `job` percent-encoded for one URL path segment.
fn url_segment(job: &str) -> String {
    job.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_types_counters_under_their_total_name() {
        let m = StrataMetrics::default();
        m.model_run("m", "published", Some(1), 0.2, &[]);
        let text = text_format(&m);
        assert!(
            text.contains("# TYPE strata_model_runs_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# HELP strata_model_runs_total Model runs"),
            "{text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        assert!(!text.contains("# TYPE strata_model_runs counter"), "{text}");
        assert_eq!(url_segment("batch iot/x"), "batch%20iot%2Fx");
    }
}
