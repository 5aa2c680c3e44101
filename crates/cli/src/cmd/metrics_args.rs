//! The Prometheus flags every job command shares: `--metrics-addr` serves `GET /metrics` while
//! the command runs; `--metrics-file` and `--pushgateway` hand a batch job's metrics on when it
//! ends (a scrape would miss a job that is over).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use strata_runtime::metrics::StrataMetrics;
use strata_runtime::metrics::export::{MetricsServer, push, write_textfile};

use crate::Failure;

/// Where a command's metrics go.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics on `GET /metrics` at this address while the command runs
    /// (e.g. 127.0.0.1:9464).
    #[arg(long, env = "STRATA_METRICS_ADDR", hide_env_values = true)]
    pub metrics_addr: Option<SocketAddr>,
    /// When the command ends, write its metrics (Prometheus text format) to this file, for
    /// node_exporter's textfile collector.
    #[arg(long, env = "STRATA_METRICS_FILE", hide_env_values = true)]
    pub metrics_file: Option<PathBuf>,
    /// When the command ends, push its metrics to this Prometheus Pushgateway
    /// (`http://host:9091`).
    #[arg(long, env = "STRATA_PUSHGATEWAY", hide_env_values = true)]
    pub pushgateway: Option<String>,
}

/// The metrics of a running command and where they go.
pub struct MetricsExport {
    /// The registry the command's hooks count into.
    pub metrics: Arc<StrataMetrics>,
    server: Option<MetricsServer>,
    args: MetricsArgs,
}

impl MetricsArgs {
    /// A registry, with `/metrics` served when `--metrics-addr` is set.
    pub async fn start(&self) -> Result<MetricsExport, Failure> {
        let metrics = Arc::new(StrataMetrics::default());
        let server = match self.metrics_addr {
            Some(addr) => Some(
                MetricsServer::bind(addr, metrics.clone())
                    .await
                    .map_err(Failure::config)?,
            ),
            None => None,
        };
        Ok(MetricsExport {
            metrics,
            server,
            args: self.clone(),
        })
    }
}

impl MetricsExport {
    /// Writes the textfile, pushes to the gateway (as `job`) and stops `/metrics`. A push that
    /// fails is logged, not raised: the job's own outcome is what the command reports.
    pub async fn finish(self, job: &str) -> Result<(), Failure> {
        if let Some(path) = &self.args.metrics_file {
            write_textfile(path, &self.metrics).map_err(Failure::config)?;
        }
        if let Some(gateway) = &self.args.pushgateway
            && let Err(e) = push(gateway, job, &self.metrics).await
        {
            tracing::warn!(error = %e, job, "metrics were not pushed");
        }
        if let Some(server) = self.server {
            server.stop().await;
        }
        Ok(())
    }
}
